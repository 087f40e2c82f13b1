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

"""Random soft-tissue shadow over part of the column: the mediastinum, heart and bowel that hide real spines.

On real AP films the thoracic spine lies inside the dense mediastinum and behind the heart, where its vertebrae are
faint outlines in a bright band; models trained on crisp synthetic columns lose it (paper §4.11 names the same error).
MONAI's intensity augmentations act on the whole image; this one is label-aware: over a random stretch of the column
it blends the image towards a blurred, denser copy of itself, so the column keeps its place but loses contrast.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_dst_type, convert_to_numpy
from scipy import ndimage

__all__ = ["RandColumnShadowd", "RandColumnShadowD", "RandColumnShadowDict"]


class RandColumnShadowd(RandomizableTransform, MapTransform):
    """With probability ``prob``, lower the column's contrast over a random stretch of it, as overlying tissue does.

    In MONAI's 2-D (W, H) layout (``array[c, x, y]``). The stretch starts at the column's top with probability
    ``thoracic_prob`` (the mediastinum and heart) and anywhere otherwise (diaphragm, bowel); it spans ``span`` of the
    column's length and ``width`` column widths across, with soft edges. Inside it the image becomes
    ``(1 - w) * image + w * (blurred * contrast + brightness)``, ``w`` up to ``strength``.

    Args:
        keys: keys of the (C, W, H) images to shadow, intensities in [0, 1].
        label_key: key of the column mask that locates the spine. Defaults to ``"label"``.
        prob: probability of a shadow. Defaults to ``0.5``.
        thoracic_prob: probability that the stretch starts at the column's top. Defaults to ``0.7``.
        span: range of the stretch's length as a fraction of the column's. Defaults to ``(0.3, 0.7)``.
        width: range of the stretch's width in column widths. Defaults to ``(1.5, 4.0)``.
        strength: range of the largest blending weight. Defaults to ``(0.4, 0.9)``.
        brightness: range of the density added inside the shadow. Defaults to ``(0.0, 0.25)``.
        allow_missing_keys: don't raise for a key absent from the data. Defaults to ``False``.

    Raises:
        ValueError: ``prob`` or ``thoracic_prob`` outside [0, 1], or a range with low > high.
    """

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str = "label",
        prob: float = 0.5,
        thoracic_prob: float = 0.7,
        span: Sequence[float] = (0.3, 0.7),
        width: Sequence[float] = (1.5, 4.0),
        strength: Sequence[float] = (0.4, 0.9),
        brightness: Sequence[float] = (0.0, 0.25),
        allow_missing_keys: bool = False,
    ) -> None:
        for name, p in (("prob", prob), ("thoracic_prob", thoracic_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p!r}.")
        for name, r in (("span", span), ("width", width), ("strength", strength), ("brightness", brightness)):
            if len(r) != 2 or r[0] > r[1]:
                raise ValueError(f"{name} must be a (low, high) range, got {r!r}.")
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.label_key = label_key
        self.thoracic_prob = float(thoracic_prob)
        self.span, self.width, self.strength, self.brightness = span, width, strength, brightness

    def weight(self, label: np.ndarray | torch.Tensor) -> np.ndarray | None:
        """Draw the blending weight (W, H) in [0, strength] for one (C, W, H) label; ``None`` if it is empty."""
        fg = convert_to_numpy(label)[0] > 0
        rows = np.nonzero(fg.any(axis=0))[0]
        if rows.size == 0:
            return None
        top, bottom = rows[0], rows[-1] + 1
        length = bottom - top
        col_width = max(1.0, fg.sum() / length)
        span = self.R.uniform(*self.span) * length
        start = top if self.R.uniform() < self.thoracic_prob else top + self.R.uniform(0.0, max(1.0, length - span))
        region = np.zeros_like(fg)
        y0, y1 = int(start), int(min(bottom, start + span))
        region[:, y0:y1] = fg[:, y0:y1]
        half = max(1, int(round(0.5 * (self.R.uniform(*self.width) - 1.0) * col_width)))
        region = ndimage.binary_dilation(region, structure=np.ones((2 * half + 1, 1), bool))
        w = ndimage.gaussian_filter(region.astype(np.float32), sigma=0.5 * col_width)
        return w / max(float(w.max()), 1e-6) * self.R.uniform(*self.strength)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Shadow ``keys`` with probability ``prob`` (the stretch comes from ``label_key``).

        Args:
            data: a dictionary of channel-first 2-D images in [0, 1] and the column mask.
        """
        d = dict(data)
        self.randomize(None)
        if not self._do_transform or self.label_key not in d:
            return d
        w = self.weight(d[self.label_key])
        if w is None:
            return d
        contrast, offset = self.R.uniform(0.8, 1.2), self.R.uniform(*self.brightness)
        col_width = max(1.0, float((np.asarray(d[self.label_key])[0] > 0).sum(axis=0).max()))
        for key in self.key_iterator(d):
            img = d[key]
            arr = convert_to_numpy(img, dtype=np.float32)
            blurred = np.stack([ndimage.gaussian_filter(c, sigma=0.35 * col_width) for c in arr])
            out = (1.0 - w) * arr + w * (blurred * contrast + offset)
            d[key] = convert_to_dst_type(out, img, dtype=img.dtype)[0]  # same type, dtype, device and metadata
        return d


RandColumnShadowD = RandColumnShadowDict = RandColumnShadowd
