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

"""The study model: one patient's measured views and their Lenke classification (:class:`StudyReport`), and
:func:`measure_study`, which measures every view of a patient. Reading files is :mod:`.readers`' job, writing
reports and figures :mod:`.report`'s and :mod:`.figure`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from r2mf_monai import __version__
from r2mf_monai.measure.centreline import MaskNotMeasurableError
from r2mf_monai.measure.cobb import ViewMeasurement, measure_mask
from r2mf_monai.measure.film_tilt import FILM_WEIGHT
from r2mf_monai.measure.lenke import STRUCTURAL_RESIDUAL_DEG, LenkeClassification, classify_lenke
from r2mf_monai.measure.levels import LevelModel
from r2mf_monai.measure.plausibility import check_spine_mask

__all__ = ["CONVENTIONS", "StudyReport", "measure_study"]

_FORMAT = "r2mf-monai measurements 1"

CONVENTIONS = {
    "image_sides": "convexity and deviations are given in image sides (image_left/image_right); the patient's side "
    "follows from the display convention (PA: patient seen from behind, image right = patient right; AP/radiological:"
    " image right = patient left)",
    "endplate_tilt_deg": "tilt of the column axis from the image vertical at an end level, equal to the endplate's "
    "tilt from the horizontal; positive when the column runs towards the image right going down",
    "apex_deviation_from_csvl": "horizontal distance of the apex from the centre sacral vertical line (image vertical "
    "through the centre of the sacrum), positive towards the image right",
    "trunk_lean_deg": "angle from the image vertical of the line from the sacral centre to the top of the column, "
    "positive when the top is to the image right",
    "cobb_deg": "difference of the centreline's extreme tangent angles bounding the curve (endplates are "
    "perpendicular to the column axis)",
}


@dataclass
class StudyReport:
    """Measurements of one patient (one to three views) and their Lenke classification.

    Attributes:
        patient_id: the patient (or file) name.
        views: view name (or file stem for unnamed views) -> :class:`.cobb.ViewMeasurement`, for the measured views.
        lenke: the :class:`.lenke.LenkeClassification`, or ``None`` without a measured coronal view.
        masks: view -> the (H, W) boolean mask, measured or not (for the figure; not written to JSON).
        sources: view -> the file it came from.
        parameters: the parameters used.
        undetermined: what could not be determined.
        approximations: the approximations the numbers rest on.
        not_measured: view -> why its mask could not be measured (:class:`.centreline.MaskNotMeasurableError`: empty,
            a fragment, a looping centreline); such a view is in ``masks`` and ``sources`` but not in ``views``.
    """

    patient_id: str
    views: dict[str, ViewMeasurement]
    lenke: LenkeClassification | None = None
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    undetermined: list[str] = field(default_factory=list)
    approximations: list[str] = field(default_factory=list)
    not_measured: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The JSON report."""
        units = sorted({v.unit for v in self.views.values()})
        lengths = (units[0] if len(units) == 1 else "per view (see views)") if units else None
        return {
            "format": _FORMAT,
            "software": {"name": "r2mf-monai", "version": __version__},
            "patient_id": self.patient_id,
            "units": {"angles": "deg", "lengths": lengths},
            "sources": dict(self.sources),
            "views": {k: v.to_dict() for k, v in self.views.items()},
            "not_measured": {k: {"measured": False, "reason": r} for k, r in self.not_measured.items()},
            "flexibility": [] if self.lenke is None else [c.to_dict() for c in self.lenke.curves],
            "lenke": None if self.lenke is None else {k: v for k, v in self.lenke.to_dict().items() if k != "curves"},
            "undetermined": list(self.undetermined),
            "approximations": list(self.approximations),
            "conventions": CONVENTIONS,
            "parameters": dict(self.parameters),
        }


def measure_study(
    masks: Mapping[str, np.ndarray],
    spacing: float | tuple[float, float] | Mapping[str, Any] | None = None,
    patient_id: str = "patient",
    orientation: str = "auto",
    min_cobb: float = 5.0,
    smoothing: float = 0.1,
    levels: LevelModel | None = None,
    sources: Mapping[str, str] | None = None,
    lowest_level: str = "auto",
    refused: Mapping[str, str] | None = None,
    images: Mapping[str, np.ndarray] | None = None,
    film_weight: float = FILM_WEIGHT,
) -> StudyReport:
    """Measure every view of one patient and classify the curves (Lenke) when the coronal view is there.

    Args:
        masks: view -> (H, W) mask; views ``"coronal"``, ``"left_bending"``, ``"right_bending"`` (other names are
            measured but take no part in the classification).
        spacing: pixel spacing in mm for all views (a number or ``(row, column)``), or view -> spacing; ``None`` gives
            lengths in pixels.
        patient_id: the name written in the report.
        orientation: display convention ``"PA"``, ``"AP"`` or ``"auto"`` (see :func:`.lenke.resolve_orientation`).
        min_cobb: smallest Cobb angle reported, degrees. Defaults to ``5.0``.
        smoothing: centreline smoothing window as a fraction of the column length. Defaults to ``0.1``.
        levels: the vertebral level model. Defaults to ``LevelModel()``.
        sources: view -> file name, recorded in the report.
        lowest_level: where the masks end: ``"auto"``, ``"S"`` (sacrum included) or ``"L5"`` (see
            :func:`.cobb.measure_mask`). Defaults to ``"auto"``.
        refused: view -> why it is not measured at all (e.g. the inference's "no spine found" verdict, with the
            network's confidence and the DICOM header behind it); such a view is reported as not measured.
        images: view -> the film the mask was drawn on, on the mask's grid: a smooth mask's curves are then read from
            its tangent blended with the endplates seen on the film (:mod:`.film_tilt`), a corner-built mask's
            corners are placed with the film's endplate edges (:func:`.endplates.fit_vertebrae`); views without a film
            are read from the mask alone.
        film_weight: the film's weight in that blend; ``0`` reads every mask alone. Defaults to
            :data:`.film_tilt.FILM_WEIGHT`.

    A view whose mask carries no measurable column (:class:`.centreline.MaskNotMeasurableError`: empty, a fragment,
    a looping centreline) or no plausible spine (:func:`.plausibility.check_spine_mask` by shape: one elongated,
    roughly vertical column of plausible size for the film), or that is ``refused``, is reported in
    :attr:`StudyReport.not_measured` with the reason, and what needs it (flexibility, Lenke type) is left
    undetermined with that reason; the other views are measured as usual.

    Returns:
        the :class:`StudyReport`.

    Raises:
        ValueError: for no masks, a bad argument, or a malformed mask (not 2-D, not numeric; the view is named).
    """
    if not masks:
        raise ValueError("measure_study needs at least one mask.")
    if not min_cobb > 0:  # checked here: an unmeasurable mask must not hide a bad argument
        raise ValueError(f"min_cobb must be > 0 degrees, got {min_cobb}.")
    levels = LevelModel() if levels is None else levels
    views: dict[str, ViewMeasurement] = {}
    bool_masks: dict[str, np.ndarray] = {}
    not_measured: dict[str, str] = {}
    for name, mask in masks.items():
        sp = spacing.get(name) if isinstance(spacing, Mapping) else spacing
        src = (sources or {}).get(name, name)
        bool_masks[name] = np.asarray(mask) > 0.5
        if name in (refused or {}):
            not_measured[name] = str((refused or {})[name])
            continue
        try:
            vm = measure_mask(
                mask,
                spacing=sp,
                view=name,
                min_cobb=min_cobb,
                smoothing=smoothing,
                levels=levels,
                lowest_level=lowest_level,
                image=(images or {}).get(name),
                film_weight=film_weight,
            )
        except MaskNotMeasurableError as err:
            not_measured[name] = str(err)
        except ValueError as err:
            raise ValueError(f"{patient_id} {name} ({src}): {err}") from err
        else:
            # by shape relative to the film only: the mm limits are the inference's, on the film's own spacing
            spine = check_spine_mask(mask)
            if spine.spine_found:
                views[name] = vm
            else:
                not_measured[name] = spine.reason
    undetermined = [f"{name} view not measured: {why}" for name, why in not_measured.items()]
    approximations = [
        "centreline: mid-line of the mask smoothed over "
        f"{smoothing:.0%} of the column length; Cobb angles from its tangent, not from individual endplates, except "
        "on masks built from vertebra corners, whose endplates are read from the outline's notches"
        + (
            " and the film's endplate edges beside them"
            if any(v.vertebrae is not None and v.vertebrae.film_edges for v in views.values())
            else ""
        ),
        *(
            [
                f"where the film was at hand, the tangent blended ({film_weight:.0%} film) with the endplate tilt read "
                "from the film's edges along the column, one vertebra-tall window at a time"
            ]
            if any(v.film_tilt_deg is not None for v in views.values())
            else []
        ),
        "vertebral levels estimated from the column's arc length in typical vertebral-height proportions "
        f"({levels.top} to the bottom of a {levels.sacrum_mm:.0f} mm sacrum, or to L5 for masks that end there); "
        "labels may be off by about one level",
    ]
    if any(v.unit == "px" for v in views.values()):
        undetermined.append("lengths in mm for views without pixel spacing (given in pixels)")
    lenke = None
    if "coronal" in views:
        lenke = classify_lenke(
            views["coronal"], views.get("left_bending"), views.get("right_bending"), orientation=orientation
        )
        for a in lenke.curves:  # a curve left undecided for want of a bending view that was there but not measured
            if a.structural is None and a.bending_view in not_measured:
                bending = a.bending_view.replace("_", "-")
                a.reason = f"the {bending} view was not measured: {not_measured[a.bending_view]}"
        undetermined += lenke.undetermined
        approximations += [a for a in lenke.approximations if a not in approximations and "levels" not in a]
    elif "coronal" in not_measured:
        undetermined.append(
            f"flexibility and Lenke classification: the coronal view was not measured: {not_measured['coronal']}"
        )
    else:
        undetermined.append("flexibility and Lenke classification: need the coronal view (and the bending views)")
    return StudyReport(
        patient_id=patient_id,
        views=views,
        lenke=lenke,
        masks=bool_masks,
        sources=dict(sources or {}),
        parameters={
            "min_cobb_deg": float(min_cobb),
            "smoothing_fraction": float(smoothing),
            "lowest_level": lowest_level,
            "orientation": orientation,
            "level_model": levels.to_dict(),
            "structural_side_bending_cobb_deg": STRUCTURAL_RESIDUAL_DEG,
        },
        undetermined=undetermined,
        approximations=approximations,
        not_measured=not_measured,
    )
