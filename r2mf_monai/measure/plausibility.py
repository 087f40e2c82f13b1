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

"""Is it a spine? A plausibility check of a predicted mask before it is measured or sent to a PACS.

The network segments *something* on every picture: an ankle film gets a full-height band down a blank strip, a
cat's lateral film a blob. :func:`check_spine_mask` looks at the predicted mask (scikit-image ``regionprops`` of its
largest region), at what the film's DICOM header says it shows, and at the network's confidence inside the mask,
and says whether it is one elongated, roughly vertical column of plausible width and length for the film's size
(and pixel spacing when known). :class:`r2mf_monai.transforms.SpinePlausibilityd` runs it in the bundle's
inference post-processing and writes the verdict into the data (``data["spine"]``), where the writer (no DICOM SEG
or SC for a film without a spine), :class:`r2mf_monai.handlers.ReviewFlag` (``review.json``) and the measurement
(no angles: :func:`r2mf_monai.measure.measure_path` reads ``review.json``) read it. The measurement also checks
every mask it is given by shape alone (:func:`r2mf_monai.measure.measure_study`).

Every threshold is in :data:`LIMITS`, with where it comes from. They were set on the shipped weights' predictions
(the synthetic test split, held-out real AASCE films and pictures without a spine) never to fire on a spine film,
with a margin: the check is for pictures that are not spine radiographs at all, not a quality score (that is the
review score's job). A picture that happens to hold a column-like bright structure (a photograph of a tall object)
can pass it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["LIMITS", "LATERAL_VIEWS", "NO_SPINE_BODY_PARTS", "RADIOGRAPH_MODALITIES", "SpineCheck", "check_spine_mask"]

#: The thresholds of :func:`check_spine_mask`, each with where it comes from (kept in one place).
LIMITS: dict[str, float] = {
    # Measured on the shipped weights' predictions: the synthetic test split (120 films), 58 held-out real AASCE
    # films (every 4th; shape alone on all 232) and 44 pictures without a spine (crops of AASCE films beside the
    # spine, AASCE films turned on their side, pydicom's CT/MR/NM/secondary-capture test files, scikit-image's
    # photographs, a blank and a 1 x 1 picture). The lowest/highest value of each on spine films is given.
    #
    # a spinal column is a vertical structure on a coronal film: its long axis within 45 degrees of the image
    # vertical (closer to vertical than to horizontal). Spine films: at most 35 deg (a synthetic bending film; real
    # films at most 25); a film turned on its side leans ~90.
    "max_tilt_deg": 45.0,
    # length / width of the region's inertia ellipse: a column from T1 to the sacrum (45-60 cm, 3-6 cm wide) is 8-15
    # times as long as wide. Spine films: at least 2.8 (a short, strongly curved crop of a real film); blobs: < 2.
    "min_elongation": 2.5,
    # the column spans a good part of the film's height: a spine film is taken for the spine. Spine films: at least
    # 29 % (a real film reaching far below the pelvis); a speck on a photograph or a CT slice spans less.
    "min_height_fraction": 0.2,
    # mean width of the region (area / rows spanned) as a fraction of the film's width. Vertebral bodies (>= 3 cm)
    # on the widest cassette (43 cm) are 7 %; spine films: 8-27 % (AASCE films are cropped to the trunk). A thin
    # line (< 4 %) or a slab (> 45 %) is no column.
    "min_width_fraction": 0.04,
    "max_width_fraction": 0.45,
    # with a known pixel spacing: vertebral bodies, children to adults, are 15-60 mm wide; the mask's mean width must
    # lie in 10-120 mm (synthetic films: 31-51 mm) ...
    "min_width_mm": 10.0,
    "max_width_mm": 120.0,
    # ... and the column at least 10 cm long (a child's lumbar spine alone is ~ 12 cm; synthetic films: >= 39 cm)
    "min_length_mm": 100.0,
    # the network's confidence: mean sigmoid probability over the pixels it called spine (p > 0.5). Spine films:
    # synthetic >= 0.84, real >= 0.71; pictures without a spine 0.53-0.81, so this alone does not separate them and
    # is set below every spine film: it catches the masks the network barely believes.
    "min_confidence": 0.65,
}

#: DICOM Modality values of projection radiographs (CR, DX, RG, RF fluoroscopy, OT other / secondary capture): any
#: other modality (CT, MR, NM, US, MG, IO, PX, ...) is not a film this bundle reads.
RADIOGRAPH_MODALITIES = frozenset({"CR", "DX", "RG", "RF", "OT", "DR", "DF"})
#: DICOM BodyPartExamined values (CID 4031 code meanings in upper case) of films that cannot show the thoracolumbar
#: spine; an unknown or spinal body part (SPINE, TSPINE, LSPINE, CHEST, ABDOMEN, WHOLEBODY, ...) passes.
NO_SPINE_BODY_PARTS = frozenset(
    {
        "ANKLE", "FOOT", "TOE", "HEEL", "KNEE", "LEG", "LOWER LEG", "FEMUR", "THIGH", "HAND", "FINGER", "THUMB",
        "WRIST", "FOREARM", "ELBOW", "ARM", "UPPER ARM", "HUMERUS", "SHOULDER", "CLAVICLE", "SKULL", "HEAD", "FACE",
        "JAW", "TMJ", "SINUS", "ORBIT", "NOSE", "SELLA", "BREAST", "EXTREMITY", "UPPER LIMB", "LOWER LIMB",
    }
)  # fmt: skip
#: DICOM ViewPosition values of lateral films (left/right lateral, decubitus): not the coronal view that is measured
LATERAL_VIEWS = frozenset({"LL", "RL", "LLD", "RLD", "LAT", "LATERAL"})


@dataclass
class SpineCheck:
    """The verdict on one predicted mask.

    Attributes:
        spine_found: whether the mask is a plausible spinal column on a spine film.
        reasons: why not (empty when ``spine_found``).
        features: what was measured (tilt, elongation, height and width fractions, mm sizes, confidence).
    """

    spine_found: bool
    reasons: list[str] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        """The reasons as one sentence, prefixed ``"no spine found: "`` (empty when a spine was found)."""
        return "" if self.spine_found else "no spine found: " + "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``spine_found``, ``reason``, ``reasons`` and the (finite, rounded) ``features``."""
        feats = {k: round(float(v), 4) for k, v in self.features.items() if v is not None and math.isfinite(v)}
        return {
            "spine_found": self.spine_found,
            "reason": self.reason,
            "reasons": list(self.reasons),
            "features": feats,
        }


def _tag_reasons(modality: str, body_part: str, view_position: str) -> list[str]:
    reasons = []
    modality, body_part, view = (str(v or "").strip().upper() for v in (modality, body_part, view_position))
    if modality and modality not in RADIOGRAPH_MODALITIES:
        reasons.append(f"the DICOM Modality is {modality}, not a projection radiograph")
    if body_part in NO_SPINE_BODY_PARTS:
        reasons.append(f"the DICOM BodyPartExamined is {body_part}")
    if view in LATERAL_VIEWS:
        reasons.append(f"the DICOM ViewPosition is {view}, a lateral film (the measurement needs a coronal one)")
    return reasons


def check_spine_mask(
    mask: np.ndarray,
    spacing: tuple[float, float] | None = None,
    confidence: float | None = None,
    modality: str = "",
    body_part: str = "",
    view_position: str = "",
    limits: Mapping[str, float] | None = None,
) -> SpineCheck:
    """Whether a predicted mask is one elongated, roughly vertical column of plausible size on a spine film.

    Args:
        mask: (H, W) mask, row 0 at the top; values > 0.5 are the column. Its largest region is judged.
        spacing: ``(row, column)`` pixel spacing in mm, or ``None`` when unknown (the mm limits are then skipped).
        confidence: the network's mean probability over the pixels it called spine, or ``None`` (not judged).
        modality: the DICOM Modality, ``""`` when unknown.
        body_part: the DICOM BodyPartExamined, ``""`` when unknown.
        view_position: the DICOM ViewPosition, ``""`` when unknown.
        limits: overrides of :data:`LIMITS`.

    Returns:
        the :class:`SpineCheck`; every failed criterion is one reason.
    """
    from skimage.measure import label, regionprops

    lim = {**LIMITS, **dict(limits or {})}
    reasons = _tag_reasons(modality, body_part, view_position)
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"mask must be a 2-D (H, W) array, got shape {arr.shape}.")
    fg = arr > 0.5
    height, width = fg.shape
    feats: dict[str, float] = {}
    if confidence is not None:
        feats["confidence"] = float(confidence)
    if not fg.any():
        blank = " (the picture has a single value or pixel)" if height * width <= 1 else ""
        return SpineCheck(False, [*reasons, f"the predicted mask is empty{blank}"], feats)
    labels = label(fg, connectivity=2)
    region = max(regionprops(labels), key=lambda r: r.area)
    top, _, bottom, _ = region.bbox
    rows = bottom - top
    major, minor = region.axis_major_length, region.axis_minor_length
    # skimage's orientation: angle between the row axis (image vertical) and the major axis
    feats["tilt_deg"] = abs(math.degrees(region.orientation))
    feats["elongation"] = major / max(minor, 1.0)
    feats["height_fraction"] = rows / height
    feats["width_fraction"] = region.area / rows / width
    if feats["tilt_deg"] > lim["max_tilt_deg"]:
        reasons.append(f"the region is not vertical (its long axis is {feats['tilt_deg']:.0f} deg from vertical)")
    if feats["elongation"] < lim["min_elongation"]:
        reasons.append(f"the region is not elongated (length / width {feats['elongation']:.1f})")
    if feats["height_fraction"] < lim["min_height_fraction"]:
        reasons.append(f"the region spans only {feats['height_fraction']:.0%} of the film's height")
    if feats["width_fraction"] > lim["max_width_fraction"]:
        reasons.append(f"the region is {feats['width_fraction']:.0%} of the film's width, too wide for a column")
    if feats["width_fraction"] < lim["min_width_fraction"]:
        reasons.append(f"the region is {feats['width_fraction']:.1%} of the film's width, too thin for a column")
    if spacing is not None:
        row_mm, col_mm = (float(s) for s in spacing)
        feats["width_mm"] = region.area / rows * col_mm
        feats["length_mm"] = rows * row_mm
        if not lim["min_width_mm"] <= feats["width_mm"] <= lim["max_width_mm"]:
            reasons.append(
                f"the region is {feats['width_mm']:.0f} mm wide (a column: {lim['min_width_mm']:.0f}-"
                f"{lim['max_width_mm']:.0f} mm)"
            )
        if feats["length_mm"] < lim["min_length_mm"]:
            reasons.append(f"the region is only {feats['length_mm']:.0f} mm long")
    if confidence is not None and confidence < lim["min_confidence"]:
        reasons.append(f"the network is unsure of it (mean probability {confidence:.2f})")
    return SpineCheck(not reasons, reasons, feats)
