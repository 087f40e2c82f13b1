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

"""Random horizontal flip that keeps the view label true to the picture (paper §4.2, first augmentation)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from monai.config import KeysCollection
from monai.transforms import RandFlipd
from monai.utils import TraceKeys

__all__ = ["RandFlipViewd", "RandFlipViewD", "RandFlipViewDict", "MIRRORED_VIEWS", "mirror_view"]

#: the view a horizontally mirrored radiograph looks like
MIRRORED_VIEWS = {"coronal": "coronal", "left_bending": "right_bending", "right_bending": "left_bending"}


def mirror_view(view: Any) -> Any:
    """The view a horizontally mirrored radiograph of ``view`` looks like (left and right bending swap).

    Args:
        view: a view name; anything not in :data:`MIRRORED_VIEWS` (an unknown view, ``None``) is returned as is.
    """
    return MIRRORED_VIEWS.get(view, view) if isinstance(view, str) else view


class RandFlipViewd(RandFlipd):
    """Random horizontal flip of image and mask (§4.2: "random horizontal flipping, probability 0.5") that also
    swaps ``"left_bending"`` and ``"right_bending"`` in the view field.

    Semantics: a mirrored left-bending radiograph shows a spine bent towards the other side of the picture, i.e. it
    looks exactly like a right-bending radiograph (of a mirrored patient), so after the flip the view field says
    ``"right_bending"``, and vice versa; ``"coronal"`` stays ``"coronal"``. The view field therefore always describes
    the picture as it now is, which is what per-view metrics, the view-balanced sampler's statistics and the
    flexibility measurement (which compares the two bending views) need. The network itself never sees the view.

    With MONAI's 2-D (W, H) layout (``array[c, x, y]``, x = image column), the horizontal axis is spatial axis 0,
    the default. The flip is recorded like ``RandFlipd``'s, so ``inverse`` (and ``Invertd``) undo it; ``inverse``
    swaps the view back when the data it is given holds the view field.

    Args:
        keys: keys of the image-like items to flip (e.g. ``["image", "label"]``).
        prob: probability of flipping. Defaults to ``0.5`` (§4.2).
        spatial_axis: spatial axis to flip; 0 is horizontal in MONAI's (W, H) layout. Defaults to ``0``.
        view_key: key of the view name; ``None`` flips images only. A sample without this key is flipped without
            error (e.g. at inference, where the view may be unknown). Defaults to ``"view"``.
        allow_missing_keys: don't raise for an image key absent from the data. Defaults to ``False``.
        lazy: MONAI lazy resampling flag. Defaults to ``False``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.5,
        spatial_axis: Sequence[int] | int | None = 0,
        view_key: str | None = "view",
        allow_missing_keys: bool = False,
        lazy: bool = False,
    ) -> None:
        super().__init__(
            keys=keys, prob=prob, spatial_axis=spatial_axis, allow_missing_keys=allow_missing_keys, lazy=lazy
        )
        self.view_key = view_key

    def _swap_view(self, d: dict) -> None:
        if self.view_key is not None and self.view_key in d:
            d[self.view_key] = mirror_view(d[self.view_key])

    def __call__(self, data: Mapping[Hashable, Any], lazy: bool | None = None) -> dict[Hashable, Any]:
        """Flip with probability ``prob``; swap the bending views when flipped.

        Args:
            data: a dictionary with channel-first images under ``keys`` and the view under ``view_key``.
            lazy: MONAI lazy resampling flag for this call.
        """
        d = super().__call__(data, lazy=lazy)
        if self._do_transform:
            self._swap_view(d)
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Undo the flip of every key and, if it was flipped, swap the view back.

        Args:
            data: the output of :meth:`__call__` (or a dict holding some of its keys, as ``Invertd`` gives).
        """
        flipped = None
        for key in self.key_iterator(dict(data)):
            xform = self.get_most_recent_transform(data, key, check=False)
            flipped = bool(xform[TraceKeys.DO_TRANSFORM])
            break
        d = super().inverse(data)
        if flipped:
            self._swap_view(d)
        return d


RandFlipViewD = RandFlipViewDict = RandFlipViewd
