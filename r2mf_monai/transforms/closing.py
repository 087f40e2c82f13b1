# Copyright (c) r2mf-monai contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""Morphological closing of binary masks (paper §3.9, step 3: "morphological closing with a 3x3 structuring element").

MONAI has opening-like cleaning (``KeepLargestConnectedComponent``, ``RemoveSmallObjects``, ``FillHoles``) but no
closing, so this wraps ``scipy.ndimage.binary_closing`` as a MONAI transform.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_numpy
from scipy import ndimage

__all__ = ["BinaryClosing", "BinaryClosingd", "BinaryClosingD", "BinaryClosingDict"]


class BinaryClosing(Transform):
    """Binary morphological closing (dilation then erosion) of each channel with a full square/cube element.

    Closing fills gaps and holes narrower than the element (a 3x3 element closes gaps of 1 and 2 pixels) without
    growing the mask elsewhere (convex regions are unchanged). The image border is not eroded: the mask is
    edge-padded before closing and cropped after, so a mask that touches the border still touches it
    (``scipy.ndimage.binary_closing`` alone treats the outside as background and would eat a pixel of it).

    Works on channel-first numpy arrays, tensors and MetaTensors of any spatial rank, e.g. (C, W, H); values > 0 are
    foreground. The output has the input's type, dtype, device and (for a MetaTensor) metadata and applied
    operations, so ``Invertd`` still works afterwards. It moves no pixels and records no inverse.

    Args:
        kernel_size: side of the structuring element, an odd int or one per spatial dimension. Defaults to ``3``
            (§3.9).

    Raises:
        ValueError: when ``kernel_size`` is not a positive odd integer.
    """

    backend = [TransformBackends.NUMPY, TransformBackends.TORCH]

    def __init__(self, kernel_size: Sequence[int] | int = 3) -> None:
        sizes = [kernel_size] if not isinstance(kernel_size, Sequence) else list(kernel_size)
        if not sizes or any(not isinstance(k, (int, np.integer)) or k < 1 or k % 2 == 0 for k in sizes):
            raise ValueError(f"kernel_size must be a positive odd integer (or one per dimension), got {kernel_size}.")
        self.kernel_size = kernel_size

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """Close every channel of ``img``.

        Args:
            img: a channel-first binary (or 0/1-valued) mask.

        Raises:
            ValueError: when ``img`` has no spatial dimension or the kernel has the wrong number of sizes.
        """
        arr = convert_to_numpy(img)
        spatial = arr.ndim - 1
        if spatial < 1:
            raise ValueError(f"BinaryClosing expects a channel-first image (C, spatial...), got shape {arr.shape}.")
        sizes = (self.kernel_size,) * spatial if not isinstance(self.kernel_size, Sequence) else self.kernel_size
        if len(sizes) != spatial:
            raise ValueError(f"kernel_size {self.kernel_size} does not match the {spatial} spatial dims of the image.")
        structure = np.ones(sizes, dtype=bool)
        # padding by the full kernel size covers the reach of the dilation plus that of the erosion
        pad = [(0, 0)] + [(k, k) for k in sizes]
        crop = (slice(None),) + tuple(slice(k, k + n) for k, n in zip(sizes, arr.shape[1:], strict=True))
        padded = np.pad(arr > 0, pad, mode="edge")
        out = np.stack([ndimage.binary_closing(c, structure=structure) for c in padded])[crop]
        return convert_to_dst_type(out.astype(arr.dtype if arr.dtype != bool else bool), dst=img)[0]


class BinaryClosingd(MapTransform):
    """Dictionary version of :class:`BinaryClosing` (§3.9 step 3).

    Args:
        keys: keys of the masks to close.
        kernel_size: side of the structuring element. Defaults to ``3`` (§3.9).
        allow_missing_keys: don't raise for a key absent from the data. Defaults to ``False``.
    """

    backend = BinaryClosing.backend

    def __init__(
        self, keys: KeysCollection, kernel_size: Sequence[int] | int = 3, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.closer = BinaryClosing(kernel_size=kernel_size)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Close every mask under ``keys``.

        Args:
            data: a dictionary of channel-first masks.
        """
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.closer(d[key])
        return d


BinaryClosingD = BinaryClosingDict = BinaryClosingd
