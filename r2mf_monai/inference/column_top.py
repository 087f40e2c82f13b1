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

"""A second look at the top of the column: the upper thoracic spine that a whole-film pass loses on real films.

On about one real AP film in eleven the shipped network's mask starts at T3-T5: between the shoulders the upper
thoracic spine is a faint strip, a few network pixels wide once a tall film is shrunk to the network's grid (paper
§4.11 names the same failure). Shown the upper half of the same film on its own, at twice the scale and with its own
contrast (the bundle's own preprocessing run on the crop), the same network finds more of it. This transform does
that after the mask is back on the film's grid: where the mask starts lower than ``min_top_fraction`` of the film's
height, it runs the network on the film's upper ``part`` and adds what the second look finds above the mask's top,
but only the pixels connected to the mask (a blob elsewhere in the crop is not the column's top).

It is off in the bundle (``column_top_second_look``): the second look finds the upper thoracic spine, but it does not
stop at T1 and takes the cervical spine with it. On films cropped tightly from the neck (AASCE) that is a gain over
T1-L5 (bundle docs, "A second look at the top of the column"); on films that show the neck above a column whose top
the first pass found (the synthetic whole-torso films, where most columns start at 8-20 % of the height) it adds the
neck and costs Dice.

Nothing in MONAI re-runs a network on a region chosen from a first pass's output (``SlidingWindowInferer`` tiles the
whole input blindly, ``TestTimeAugmentation`` repeats random transforms), so the rule is written here; the crop goes
through the bundle's own preprocessing and comes back through MONAI's ``Invertd``, as the first pass does.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.networks.utils import eval_mode
from monai.transforms import Invertd, MapTransform
from monai.utils import convert_to_dst_type, convert_to_numpy, convert_to_tensor
from scipy import ndimage

__all__ = ["ColumnTopSecondLookd", "ColumnTopSecondLookD", "ColumnTopSecondLookDict"]

logger = logging.getLogger(__name__)


class ColumnTopSecondLookd(MapTransform):
    """Extend a column mask upwards with a second pass of ``network`` on the film's upper part (module docstring).

    In MONAI's 2-D (W, H) layout: rows are the last axis, the film's top is row 0. ``keys`` are binary masks on the
    film's grid (after ``Invertd``), ``image_key`` the film as loaded (the bundle's ``raw`` copy, same grid).

    Args:
        keys: keys of the (1, W, H) masks to extend.
        network: the bundle's network, called on a (1, C, ...) batch in eval mode (restored afterwards) under
            ``torch.no_grad``.
        preprocessing: what the first pass did to the film after loading, as a dictionary transform on
            ``{"image": film}`` (scaling, resize, padding, CLAHE); it must be invertible back to the crop's grid by
            ``Invertd`` (MONAI's resize and pad are).
        image_key: key of the film as loaded. Defaults to ``"raw"``.
        min_top_fraction: look again only where the mask's first row lies lower than this fraction of the film's
            height. On the 150 AASCE selection films (tight crops from the neck to the pelvis) the masks that lose
            the upper thoracic spine start at 11-25 % of the height; most masks start in the top 5 %. Defaults to
            ``0.1``.
        part: the fraction of the film's height, from its top, shown to the second pass. Defaults to ``0.5``.
        threshold: probability above which the second pass's map is column. Defaults to ``0.5``.
        allow_missing_keys: don't raise for a key absent from the data. Defaults to ``False``.

    Raises:
        ValueError: ``min_top_fraction`` or ``part`` outside (0, 1], or ``threshold`` outside (0, 1).
    """

    def __init__(
        self,
        keys: KeysCollection,
        network: Callable[[torch.Tensor], torch.Tensor],
        preprocessing: Callable[[dict], Mapping[Hashable, Any]],
        image_key: str = "raw",
        min_top_fraction: float = 0.1,
        part: float = 0.5,
        threshold: float = 0.5,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        for name, value in (("min_top_fraction", min_top_fraction), ("part", part)):
            if not 0.0 < float(value) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value!r}.")
        if not 0.0 < float(threshold) < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold!r}.")
        self.network = network
        self.preprocessing = preprocessing
        self.image_key = image_key
        self.min_top_fraction = float(min_top_fraction)
        self.part = float(part)
        self.threshold = float(threshold)
        self._invert = Invertd(keys="pred", transform=preprocessing, orig_keys="image", nearest_interp=False)

    def second_look(self, film: torch.Tensor) -> np.ndarray:
        """The second pass's (W, H) column mask on the grid of ``film``, a (C, W, H) crop of the film as loaded."""
        data = dict(self.preprocessing({"image": MetaTensor(film)}))
        image = data["image"]
        is_module = isinstance(self.network, torch.nn.Module)
        device = next(self.network.parameters() if is_module else iter(()), image).device
        # in eval mode, as the first pass ran (an evaluator puts a training network back in training mode between
        # iterations); MONAI's eval_mode restores the mode afterwards and runs under no_grad
        with eval_mode(self.network) if is_module else torch.no_grad():
            logits = self.network(convert_to_tensor(image, track_meta=False)[None].to(device))
        pred = MetaTensor(convert_to_tensor(logits, track_meta=False)[0].float().cpu())
        data["pred"] = pred
        back = self._invert(data)["pred"]
        return convert_to_numpy(torch.sigmoid(convert_to_tensor(back, track_meta=False))[0]) > self.threshold

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """Extend each mask in ``keys`` (a copy; the input is not changed) where its top lies low on the film."""
        d = dict(data)
        film = convert_to_tensor(d[self.image_key], track_meta=False)
        for key in self.key_iterator(d):
            mask = convert_to_numpy(d[key])[0] > 0
            rows = np.nonzero(mask.any(axis=0))[0]
            height = mask.shape[-1]
            if rows.size == 0 or rows[0] < self.min_top_fraction * height:
                continue
            top = int(rows[0])
            crop_rows = min(height, math.ceil(self.part * height))
            if crop_rows <= top:  # the crop would not reach the mask: nothing it finds could connect
                continue
            found = np.zeros_like(mask)
            found[:, :crop_rows] = self.second_look(film[..., :crop_rows].clone())
            labels, _ = ndimage.label(mask | found, structure=np.ones((3, 3), bool))
            connected = np.isin(labels, np.unique(labels[:, top][mask[:, top]]))
            added = found & connected
            added[:, top:] = False
            name = d[key].meta.get("filename_or_obj", "") if isinstance(d[key], MetaTensor) else ""
            new_top = int(np.nonzero(added.any(axis=0))[0][0]) if added.any() else top
            logger.info(
                "column top: the mask of %s started at %.0f %% of the film's height; "
                "a second look at its upper %.0f %% moved the top to %.0f %%",
                name or "the image",
                100.0 * top / height,
                100.0 * self.part,
                100.0 * new_top / height,
            )
            if added.any():
                out = mask | added
                d[key] = convert_to_dst_type(out[None].astype(np.float32), d[key], dtype=d[key].dtype)[0]
        return d


ColumnTopSecondLookD = ColumnTopSecondLookDict = ColumnTopSecondLookd
