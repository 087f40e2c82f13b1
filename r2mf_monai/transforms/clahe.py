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

"""Random contrast-limited adaptive histogram equalisation (CLAHE), the look of processed clinical films.

Clinical radiographs leave the modality already equalised (strong local contrast, flattened soft tissue); MONAI has
global histogram equalisation (``HistogramNormalized``) but no CLAHE, so this wraps scikit-image's
``exposure.equalize_adapthist`` as a random MONAI map transform.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_dst_type, convert_to_numpy
from skimage import exposure

__all__ = ["RandCLAHEd", "RandCLAHED", "RandCLAHEDict"]


class RandCLAHEd(RandomizableTransform, MapTransform):
    """With probability ``prob``, apply CLAHE with a random clip limit and tile size to images in [0, 1].

    Args:
        keys: keys of the (C, W, H) images, intensities in [0, 1].
        prob: probability of equalising. Defaults to ``0.3``.
        clip_limit: range of skimage's ``clip_limit`` (0..1, higher is stronger). Defaults to ``(0.005, 0.03)``.
        tiles: range of the number of tiles along the longer side. Defaults to ``(4, 12)``.
        allow_missing_keys: don't raise for a key absent from the data. Defaults to ``False``.

    Raises:
        ValueError: ``prob`` outside [0, 1] or a range with low > high.
    """

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.3,
        clip_limit: Sequence[float] = (0.005, 0.03),
        tiles: Sequence[int] = (4, 12),
        allow_missing_keys: bool = False,
    ) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob!r}.")
        if clip_limit[0] > clip_limit[1] or tiles[0] > tiles[1] or tiles[0] < 1:
            raise ValueError(f"clip_limit and tiles must be (low, high) ranges, got {clip_limit!r}, {tiles!r}.")
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.clip_limit = (float(clip_limit[0]), float(clip_limit[1]))
        self.tiles = (int(tiles[0]), int(tiles[1]))

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Equalise ``keys`` with probability ``prob`` (one draw of the parameters for all keys).

        Args:
            data: a dictionary of channel-first 2-D images with intensities in [0, 1].
        """
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        clip = self.R.uniform(*self.clip_limit)
        tiles = self.R.randint(self.tiles[0], self.tiles[1] + 1)
        for key in self.key_iterator(d):
            img = d[key]
            arr = convert_to_numpy(img, dtype=np.float64)
            kernel = max(8, max(arr.shape[1:]) // tiles)
            out = np.stack([exposure.equalize_adapthist(np.clip(c, 0.0, 1.0), kernel, clip) for c in arr])
            d[key] = convert_to_dst_type(out, img, dtype=img.dtype)[0]  # same type, dtype, device and metadata
        return d


RandCLAHED = RandCLAHEDict = RandCLAHEd
