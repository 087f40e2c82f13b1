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

"""Contrast-limited adaptive histogram equalisation (CLAHE): the look of processed clinical films, and a fixed
input normalisation.

Clinical radiographs leave the modality already equalised (strong local contrast, flattened soft tissue); MONAI has
global histogram equalisation (``HistogramNormalized``) but no CLAHE, so this wraps scikit-image's
``exposure.equalize_adapthist`` as MONAI map transforms: ``RandCLAHEd`` (an augmentation) and ``CLAHEd`` (the same
equalisation with fixed settings, applied to every image before the network in training and inference alike, so
that the network sees the dense mediastinum of a real film with the local contrast it learnt on).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_dst_type, convert_to_numpy
from skimage import exposure

__all__ = ["CLAHEd", "CLAHED", "CLAHEDict", "RandCLAHEd", "RandCLAHED", "RandCLAHEDict", "equalize_adapthist"]


def equalize_adapthist(img: Any, clip_limit: float, tiles: int) -> Any:
    """scikit-image's CLAHE of each channel of a channel-first 2-D image in [0, 1], ``tiles`` tiles along its longer
    side (tiles of at least 8 pixels); returns the same type, dtype, device and metadata."""
    arr = convert_to_numpy(img, dtype=np.float64)
    kernel = max(8, max(arr.shape[1:]) // int(tiles))
    out = np.stack([exposure.equalize_adapthist(np.clip(c, 0.0, 1.0), kernel, float(clip_limit)) for c in arr])
    return convert_to_dst_type(out, img, dtype=img.dtype)[0]


class CLAHEd(MapTransform):
    """CLAHE with fixed settings on ``keys`` (channel-first 2-D images with intensities in [0, 1]).

    Args:
        keys: keys of the (C, W, H) images.
        clip_limit: scikit-image's ``clip_limit`` (0..1, higher is stronger); ``None`` passes the images unchanged
            (weights trained without it: the bundle configs take it from the weights' ``model.json``). Defaults to
            ``0.015``.
        tiles: the number of tiles along the longer side. Defaults to ``8``.
        allow_missing_keys: don't raise for a key absent from the data. Defaults to ``False``.

    Raises:
        ValueError: ``clip_limit`` outside (0, 1] or ``tiles`` below 1.
    """

    def __init__(
        self, keys: KeysCollection, clip_limit: float | None = 0.015, tiles: int = 8, allow_missing_keys: bool = False
    ) -> None:
        if clip_limit is not None and not 0.0 < float(clip_limit) <= 1.0 or int(tiles) < 1:
            raise ValueError(f"clip_limit must be in (0, 1] (or None) and tiles >= 1, got {clip_limit!r}, {tiles!r}.")
        super().__init__(keys, allow_missing_keys)
        self.clip_limit = None if clip_limit is None else float(clip_limit)
        self.tiles = int(tiles)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.clip_limit is None:
            return d
        for key in self.key_iterator(d):
            d[key] = equalize_adapthist(d[key], self.clip_limit, self.tiles)
        return d


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
            d[key] = equalize_adapthist(d[key], clip, tiles)
        return d


CLAHED = CLAHEDict = CLAHEd
RandCLAHED = RandCLAHEDict = RandCLAHEd
