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

"""``SpinePlausibilityd``: the "is it a spine?" verdict on every predicted mask, in the inference post-processing.

See :mod:`r2mf_monai.measure.plausibility` for the check and its thresholds.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform

from r2mf_monai.measure.plausibility import LIMITS, check_spine_mask
from r2mf_monai.transforms.readers import pixel_spacing_from_meta

__all__ = ["SpinePlausibilityd", "SpinePlausibilityD", "SpinePlausibilityDict"]

logger = logging.getLogger(__name__)


def _meta_str(meta: Mapping, key: str) -> str:
    value = meta.get(key, "")
    if isinstance(value, (list, tuple)):  # a collated batch of one
        value = value[0] if value else ""
    return str(value or "")


class SpinePlausibilityd(MapTransform):
    """Judge the predicted mask with :func:`~r2mf_monai.measure.plausibility.check_spine_mask`; record the verdict.

    Place it at the end of the inference post-processing, after ``Invertd`` and the last ``AsDiscreted`` (the mask on
    the film's grid) and before the writer. It reads the film's pixel spacing and DICOM Modality, BodyPartExamined and
    ViewPosition from the prediction's metadata (the reader's, carried through ``Invertd``), and the network's
    confidence from ``prob_key`` (the sigmoid output copied before thresholding, on any grid), which it leaves in the
    data (the review flag reuses it as the plain probability map). It writes ``data[verdict_key]`` (what
    :meth:`~r2mf_monai.measure.plausibility.SpineCheck.to_dict` gives) and logs a WARNING naming the file when no
    spine is found; the mask itself is left as it is.

    Args:
        keys: the prediction (1, W, H). Defaults to ``"pred"``.
        prob_key: the probability map copied after the sigmoid; ``None`` leaves the confidence out.
            Defaults to ``"prob"``.
        verdict_key: where the verdict goes. Defaults to ``"spine"``.
        limits: overrides of :data:`~r2mf_monai.measure.plausibility.LIMITS`.
        allow_missing_keys: do not raise when a key is missing. Defaults to ``False``.

    Raises:
        ValueError: for unknown ``limits`` keys.
    """

    def __init__(
        self,
        keys: KeysCollection = "pred",
        prob_key: Hashable | None = "prob",
        verdict_key: Hashable = "spine",
        limits: Mapping[str, float] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.prob_key = prob_key
        self.verdict_key = verdict_key
        self.limits = dict(limits or {})
        unknown = set(self.limits) - set(LIMITS)
        if unknown:
            raise ValueError(f"limits has unknown keys {sorted(unknown)}; known: {sorted(LIMITS)}.")

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        prob = d.get(self.prob_key) if self.prob_key is not None else None
        for key in self.key_iterator(d):
            self._judge(d, d[key], prob)
        return d

    def _judge(self, d: dict[Hashable, Any], pred: Any, prob: Any) -> None:
        meta = dict(getattr(pred, "meta", {}) or {})
        arr = np.asarray(pred.detach().cpu() if hasattr(pred, "detach") else pred)
        arr = arr[0] if arr.ndim == 3 else arr
        confidence = None
        if prob is not None:
            prob = np.asarray(prob.detach().cpu() if hasattr(prob, "detach") else prob, dtype=np.float32)
            confidence = float(prob[prob > 0.5].mean()) if (prob > 0.5).any() else 0.0
        check = check_spine_mask(
            arr.T,  # (W, H) -> (H, W)
            spacing=pixel_spacing_from_meta(meta),
            confidence=confidence,
            modality=_meta_str(meta, "modality"),
            body_part=_meta_str(meta, "body_part_examined"),
            view_position=_meta_str(meta, "view_position"),
            limits=self.limits,
        )
        d[self.verdict_key] = check.to_dict()
        if not check.spine_found:
            name = _meta_str(meta, "filename_or_obj") or "an input"
            logger.warning("%s: %s", name, check.reason)


SpinePlausibilityD = SpinePlausibilityDict = SpinePlausibilityd
