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

"""Random clinical framing around the spinal column: the field-of-view augmentation for real films.

Real scoliosis films (e.g. the AASCE 2019 / SpineWeb 16 AP films) are tight crops from the neck to the pelvis, a
third as wide as they are tall, with the column anywhere from the centre to a quarter off it; the synthetic films
show the whole torso with arms. MONAI's crops are either random anywhere (``RandSpatialCropd``) or fixed around the
foreground (``CropForegroundd``); this transform draws a random box *around the labelled column* and crops it with
MONAI's ``SpatialCrop``. It is a training augmentation and not invertible (inference never crops).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform, SpatialCrop
from monai.utils import convert_to_numpy

__all__ = ["RandSpineFramingd", "RandSpineFramingD", "RandSpineFramingDict"]


def _pair(value: Sequence[float] | float, name: str) -> tuple[float, float]:
    lo, hi = (value, value) if isinstance(value, (int, float)) else tuple(value)
    if lo > hi:
        raise ValueError(f"{name} must be a (low, high) range, got {value!r}.")
    return float(lo), float(hi)


class RandSpineFramingd(RandomizableTransform, MapTransform):
    """Crop image and mask to a random clinical framing around the labelled column.

    In MONAI's 2-D (W, H) layout (``array[c, x, y]``, x = image column, y = image row). With probability ``prob``:

    1. find the column's bounding box in ``label_key`` (rows ``top..bottom``, columns ``left..right``; the column
       length is ``bottom - top``);
    2. extend it up and down by ``top_margin`` and ``bottom_margin`` times the length (negative values cut the column
       short, as films that stop at the iliac crests or start below C7 do);
    3. make the box ``width_ratio`` times its height wide, centred on the column's middle shifted sideways by
       ``offset`` times the box width, but never narrower than the column plus ``min_side_margin`` lengths a side;
    4. clip it to the image and crop every key with ``SpatialCrop``.

    A sample whose label is empty passes unchanged.

    Args:
        keys: keys of the image-like items to crop (e.g. ``["image", "label"]``).
        label_key: key of the column mask that locates the spine. Defaults to ``"label"``.
        prob: probability of reframing a sample. Defaults to ``0.7``.
        width_ratio: range of the box's width over its height. Defaults to ``(0.25, 0.5)``.
        top_margin: range of the margin above the column's top, in column lengths. Defaults to ``(-0.05, 0.12)``.
        bottom_margin: range of the margin below the column's bottom. Defaults to ``(-0.08, 0.15)``.
        offset: largest sideways shift of the column from the box centre, as a fraction of the box width.
            Defaults to ``0.15``.
        min_side_margin: least margin left and right of the column, in column lengths. Defaults to ``0.04``.
        allow_missing_keys: don't raise for a key absent from the data. Defaults to ``False``.

    Raises:
        ValueError: a range with low > high, ``prob`` outside [0, 1].
    """

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str = "label",
        prob: float = 0.7,
        width_ratio: Sequence[float] | float = (0.25, 0.5),
        top_margin: Sequence[float] | float = (-0.05, 0.12),
        bottom_margin: Sequence[float] | float = (-0.08, 0.15),
        offset: float = 0.15,
        min_side_margin: float = 0.04,
        allow_missing_keys: bool = False,
    ) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob!r}.")
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.label_key = label_key
        self.width_ratio = _pair(width_ratio, "width_ratio")
        self.top_margin = _pair(top_margin, "top_margin")
        self.bottom_margin = _pair(bottom_margin, "bottom_margin")
        self.offset = float(offset)
        self.min_side_margin = float(min_side_margin)

    def box(self, label: np.ndarray | torch.Tensor) -> tuple[list[int], list[int]] | None:
        """Draw a framing box for one (C, W, H) label: ``(roi_start, roi_end)`` in (x, y), or ``None`` if empty."""
        fg = convert_to_numpy(label)[0] > 0
        xs, ys = np.nonzero(fg)
        if xs.size == 0:
            return None
        width, height = fg.shape
        left, right, top, bottom = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        length = float(bottom - top)
        y0 = top - self.R.uniform(*self.top_margin) * length
        y1 = bottom + self.R.uniform(*self.bottom_margin) * length
        box_w = max(self.R.uniform(*self.width_ratio) * (y1 - y0), (right - left) + 2 * self.min_side_margin * length)
        cx = 0.5 * (left + right) + self.R.uniform(-self.offset, self.offset) * box_w
        x0 = int(np.clip(np.floor(cx - box_w / 2), 0, width - 1))
        x1 = int(np.clip(np.ceil(cx + box_w / 2), x0 + 1, width))
        y0 = int(np.clip(np.floor(y0), 0, height - 1))
        y1 = int(np.clip(np.ceil(y1), y0 + 1, height))
        return [x0, y0], [x1, y1]

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Reframe ``keys`` with probability ``prob`` (the box comes from ``label_key``).

        Args:
            data: a dictionary of channel-first 2-D arrays.
        """
        d = dict(data)
        self.randomize(None)
        if not self._do_transform or self.label_key not in d:
            return d
        roi = self.box(d[self.label_key])
        if roi is None:
            return d
        crop = SpatialCrop(roi_start=roi[0], roi_end=roi[1])
        for key in self.key_iterator(d):
            d[key] = crop(d[key])
        return d


RandSpineFramingD = RandSpineFramingDict = RandSpineFramingd
