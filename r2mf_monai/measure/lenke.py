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

"""Flexibility, structural curves and the Lenke classification from one patient's coronal and side-bending views.

The three views the paper segments (§1, §4.1: coronal standing, left-bending, right-bending) are what the Lenke
classification of adolescent idiopathic scoliosis needs besides a lateral film (Lenke et al., "Adolescent idiopathic
scoliosis: a new classification to determine extent of spinal arthrodesis", J Bone Joint Surg Am 2001;83:1169-1181):

- Curves are matched across views by Lenke region (proximal thoracic, main thoracic, thoracolumbar/lumbar, by apex).
- A curve is assessed on the side-bending film that bends *towards its convex side*: bending to the convex side opens
  the curve's concavity and straightens it (a right thoracic curve is corrected on the right-bending film, a left
  lumbar curve on the left-bending film; Lenke et al. 2001, and the supine side-bending technique they use). The
  residual Cobb angle there is the largest curve of the same region and convexity on that film; if the film has none,
  the curve bent out below ``min_cobb`` or reversed, and the residual is the signed tangent turning between the
  curve's own end levels (negative when over-corrected).
- Flexibility (%) = (coronal Cobb - residual Cobb) / coronal Cobb x 100.
- Structural: the major curve (the largest coronal Cobb angle among main thoracic and thoracolumbar/lumbar; when the
  proximal thoracic curve is the largest, the main thoracic curve is taken as major, as Lenke's worksheet does) is
  always structural; a minor curve is structural when its residual Cobb angle on side-bending is 25 degrees or more.
  Lenke's second criterion, kyphosis of at least +20 degrees (T2-T5 for proximal thoracic, T10-L2 for the others),
  needs a lateral radiograph and is *not* evaluated: a curve found non-structural here may still be structural.
- Curve type 1-6 from which regions are structural and which curve is major; where a needed bending film is missing
  the possible types are listed instead.
- Lumbar modifier (A/B/C) from the CSVL and the lumbar apex, *approximated* from the coronal mask: a mask has no
  pedicles, so the concave pedicle's medial border is placed at ``pedicle_ratio`` (0.5) of the apical column's
  half-width from its centre (lumbar interpedicular distance is about half the vertebral body's width): A when the
  CSVL lies within that, B when it lies between it and the column's edge (it touches the apical body), C when it
  misses the column.
- Sagittal thoracic modifier (-, N, +): needs T5-T12 kyphosis on a lateral radiograph: always reported undetermined.

Patient sides: the masks give image sides. On PA-convention display (patient seen from behind, the scoliosis
convention) the image's right is the patient's right; on AP (radiological) display it is the patient's left. The
caller says which file is the left- and which the right-bending view; ``orientation="auto"`` finds the display
convention from those views (the trunk leans towards the bending side) and falls back to PA with a note.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from r2mf_monai.measure.cobb import SRS_SCOLIOSIS_DEG, Curve, ViewMeasurement
from r2mf_monai.measure.levels import REGION_ABBREVIATIONS, REGIONS

__all__ = [
    "LENKE_TYPES",
    "STRUCTURAL_RESIDUAL_DEG",
    "CurveAssessment",
    "LenkeClassification",
    "classify_lenke",
    "lenke_curve_type",
    "lumbar_modifier",
    "resolve_orientation",
]

STRUCTURAL_RESIDUAL_DEG = 25.0
"""Lenke et al. 2001: a minor curve whose side-bending Cobb angle stays at 25 degrees or more is structural."""

LENKE_TYPES: dict[int, str] = {
    1: "main thoracic (MT)",
    2: "double thoracic (DT)",
    3: "double major (DM)",
    4: "triple major (TM)",
    5: "thoracolumbar/lumbar (TL/L)",
    6: "thoracolumbar/lumbar - main thoracic (TL/L-MT)",
}

PT, MT, TLL = REGIONS
_ORIENTATIONS = ("auto", "PA", "AP")
_LEAN_MIN_DEG = 3.0  # a bending view must lean at least this much more than the other (or the coronal) to count


@dataclass
class CurveAssessment:
    """A coronal curve assessed on its side-bending film.

    Attributes:
        region: Lenke region.
        coronal: the coronal :class:`.cobb.Curve`.
        major: whether it is the major curve.
        bending_view: the view bending towards its convexity, ``None`` when the orientation is unknown.
        residual_deg: Cobb angle left on that view (negative: over-corrected); ``None`` without that view.
        residual_source: ``"curve"`` (a curve of the same region and convexity on the bending view),
            ``"end_levels"`` (turning between the coronal end levels) or ``None``.
        flexibility_pct: (coronal - residual) / coronal x 100, ``None`` without the bending view.
        structural: ``True``/``False``, or ``None`` when undetermined.
        reason: why it is (non-)structural or undetermined.
    """

    region: str
    coronal: Curve
    major: bool = False
    bending_view: str | None = None
    residual_deg: float | None = None
    residual_source: str | None = None
    flexibility_pct: float | None = None
    structural: bool | None = None
    reason: str = ""

    def to_dict(self) -> dict:
        """JSON-ready description."""
        return {
            "region": self.region,
            "name": REGION_ABBREVIATIONS[self.region],
            "coronal_cobb_deg": round(float(self.coronal.cobb_deg), 1),
            "levels": f"{self.coronal.upper_level}-{self.coronal.lower_level}",
            "apex": self.coronal.apex_level,
            "convex_towards": self.coronal.convex,
            "convex_patient_side": self.coronal.patient_side,
            "major": self.major,
            "bending_view": self.bending_view,
            "bending_cobb_deg": None if self.residual_deg is None else round(float(self.residual_deg), 1),
            "bending_cobb_source": self.residual_source,
            "flexibility_pct": None if self.flexibility_pct is None else round(float(self.flexibility_pct), 1),
            "structural": self.structural,
            "structural_reason": self.reason,
        }


@dataclass
class LenkeClassification:
    """The Lenke classification of one patient, with what could not be decided.

    Attributes:
        curve_type: 1-6, or ``None`` when undecided or not applicable.
        candidates: the types still possible (one element when decided).
        lumbar_modifier: ``"A"``, ``"B"``, ``"C"`` (approximated from the coronal mask) or ``None``.
        lumbar_details: the numbers the lumbar modifier came from.
        sagittal_modifier: always ``None``: needs a lateral radiograph.
        curves: the assessed coronal curves, one per region that has a curve.
        orientation: the display convention used (``"PA"``/``"AP"``) and how it was found.
        undetermined: what could not be decided, in words.
        approximations: the approximations the result rests on, in words.
        notes: anything else worth knowing.
    """

    curve_type: int | None
    candidates: list[int]
    lumbar_modifier: str | None
    lumbar_details: dict | None
    curves: list[CurveAssessment]
    orientation: dict
    sagittal_modifier: str | None = None
    undetermined: list[str] = field(default_factory=list)
    approximations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """Short label such as ``"3C"``, ``"1A?"`` (sagittal modifier undetermined: ``?`` is not added) or
        ``"undetermined (1 or 3)"``."""
        if self.curve_type is None:
            if self.candidates:
                return "undetermined (" + " or ".join(str(c) for c in self.candidates) + ")"
            return "not classifiable"
        return f"{self.curve_type}{self.lumbar_modifier or ''}"

    def to_dict(self) -> dict:
        """JSON-ready description."""
        return {
            "label": self.label,
            "curve_type": self.curve_type,
            "curve_type_name": LENKE_TYPES.get(self.curve_type) if self.curve_type else None,
            "candidate_types": list(self.candidates),
            "lumbar_modifier": self.lumbar_modifier,
            "lumbar_modifier_details": self.lumbar_details,
            "sagittal_modifier": self.sagittal_modifier,
            "curves": [c.to_dict() for c in self.curves],
            "orientation": self.orientation,
            "undetermined": list(self.undetermined),
            "approximations": list(self.approximations),
            "notes": list(self.notes),
        }


def lenke_curve_type(structural: dict[str, bool | None], major: str) -> list[int]:
    """Lenke curve types consistent with the structural status of each region (Lenke et al. 2001, Table).

    ======  =========  =============  =============
    type    PT         MT             TL/L
    ======  =========  =============  =============
    1       -          major          -
    2       yes        major          -
    3       -          major          yes
    4       yes        major or yes   yes or major
    5       -          -              major
    6       -          yes            major
    ======  =========  =============  =============

    Args:
        structural: region -> ``True``/``False``/``None`` (undetermined); missing regions have no curve (``False``).
        major: the major curve's region (``"main_thoracic"`` or ``"thoracolumbar_lumbar"``).

    Returns:
        the sorted possible types: one when decided, several when a ``None`` leaves a choice, none when the pattern is
        not a Lenke type (e.g. a structural proximal thoracic curve over a non-structural main thoracic curve).

    Raises:
        ValueError: when ``major`` is not main thoracic or thoracolumbar/lumbar.
    """
    if major not in (MT, TLL):
        raise ValueError(f"major must be {MT!r} or {TLL!r}, got {major!r}.")
    options = []
    for r in REGIONS:
        if r == major:
            options.append([True])
        elif r in structural and structural[r] is None:
            options.append([True, False])
        else:
            options.append([bool(structural.get(r, False))])
    types = set()
    for pt, mt, tll in itertools.product(*options):
        if major == MT:
            t = {(False, False): 1, (True, False): 2, (False, True): 3, (True, True): 4}[(pt, tll)]
        else:
            t = {(False, False): 5, (False, True): 6, (True, True): 4}.get((pt, mt))
        if t is not None:
            types.add(t)
    return sorted(types)


def lumbar_modifier(offset: float, half_width: float, pedicle_ratio: float = 0.5) -> str:
    """Lenke lumbar modifier from the CSVL's offset from the lumbar apex, approximated without pedicles.

    Args:
        offset: horizontal distance between the CSVL and the centre of the column at the lumbar apex.
        half_width: the column's horizontal half-width there (same unit).
        pedicle_ratio: the concave pedicle's medial border as a fraction of the half-width from the centre. Defaults
            to ``0.5`` (lumbar interpedicular distance is about half the vertebral body's width).

    Returns:
        ``"A"`` (CSVL between the pedicles), ``"B"`` (CSVL touches the apical body) or ``"C"`` (CSVL misses it).

    Raises:
        ValueError: for a non-positive ``half_width`` or a ``pedicle_ratio`` outside (0, 1).
    """
    if not half_width > 0:
        raise ValueError(f"half_width must be > 0, got {half_width}.")
    if not 0 < pedicle_ratio < 1:
        raise ValueError(f"pedicle_ratio must be in (0, 1), got {pedicle_ratio}.")
    d = abs(offset)
    if d <= pedicle_ratio * half_width:
        return "A"
    return "B" if d <= half_width else "C"


def resolve_orientation(
    coronal: ViewMeasurement | None,
    left_bending: ViewMeasurement | None,
    right_bending: ViewMeasurement | None,
    orientation: str = "auto",
) -> dict:
    """Which image side is the patient's right: from the caller, or from how the bending views lean.

    A patient bending to the right leans the trunk to the right, so T1 moves to the patient's right of the sacrum. With
    both bending views the sign of (right lean - left lean) tells the display: positive = the patient's right is the
    image's right (PA display); with one bending view its lean is compared with the coronal view's.

    Args:
        coronal: the coronal view (for its lean), or ``None``.
        left_bending: the view the caller says is the left-bending one, or ``None``.
        right_bending: the view the caller says is the right-bending one, or ``None``.
        orientation: ``"PA"`` (image right = patient right), ``"AP"`` (image right = patient left) or ``"auto"``.
            Defaults to ``"auto"``.

    Returns:
        ``{"display": "PA"|"AP", "source": "caller"|"bending_views"|"assumed", "observed": "PA"|"AP"|None,
        "note": str}``.

    Raises:
        ValueError: for an unknown ``orientation``.
    """
    if orientation not in _ORIENTATIONS:
        raise ValueError(f"orientation must be one of {_ORIENTATIONS}, got {orientation!r}.")

    def lean(v: ViewMeasurement | None) -> float | None:
        return None if v is None else v.lean_deg

    observed = None
    lr, ll, lc = lean(right_bending), lean(left_bending), lean(coronal)
    if lr is not None and ll is not None:
        diff, basis = lr - ll, "right-bending minus left-bending lean"
    elif lr is not None and lc is not None:
        diff, basis = lr - lc, "right-bending minus coronal lean"
    elif ll is not None and lc is not None:
        diff, basis = lc - ll, "coronal minus left-bending lean"
    else:
        diff, basis = None, ""
    if diff is not None and abs(diff) >= _LEAN_MIN_DEG:
        observed = "PA" if diff > 0 else "AP"
    if orientation != "auto":
        note = f"display convention {orientation} given by the caller"
        if observed is not None and observed != orientation:
            note += (
                f"; but the bending views lean as on {observed} display: check which file is the left- and which "
                "the right-bending view, and the image orientation"
            )
        return {"display": orientation, "source": "caller", "observed": observed, "note": note}
    if observed is not None:
        return {
            "display": observed,
            "source": "bending_views",
            "observed": observed,
            "note": f"display convention {observed} inferred from the trunk lean of the bending views "
            f"({basis} {diff:+.1f} deg)",
        }
    why = "no bending view" if left_bending is None and right_bending is None else "the bending views lean too little"
    return {
        "display": "PA",
        "source": "assumed",
        "observed": None,
        "note": f"display convention unknown ({why}): patient sides not given; PA assumed (image right = patient "
        "right) to pair curves with bending views",
    }


def _patient_side(image_side: str, display: str) -> str:
    right = image_side == "image_right"
    return "right" if right == (display == "PA") else "left"


def _residual(curve: Curve, bending: ViewMeasurement) -> tuple[float, str]:
    same = [c for c in bending.curves if c.region == curve.region and c.convex == curve.convex]
    if same:
        return max(c.cobb_deg for c in same), "curve"
    if curve.upper_fraction is not None and curve.lower_fraction is not None:
        turn = bending.turning_between(curve.upper_fraction, curve.lower_fraction)
        if turn is not None:
            # the coronal curve's turning has the sign of its own (lower - upper) tangent difference
            sign = 1.0 if curve.lower_tangent_deg >= curve.upper_tangent_deg else -1.0
            return sign * turn, "end_levels"
    return 0.0, "end_levels"


def classify_lenke(
    coronal: ViewMeasurement,
    left_bending: ViewMeasurement | None = None,
    right_bending: ViewMeasurement | None = None,
    orientation: str = "auto",
    structural_deg: float = STRUCTURAL_RESIDUAL_DEG,
    pedicle_ratio: float = 0.5,
) -> LenkeClassification:
    """Flexibility, structural curves, Lenke curve type and lumbar modifier of one patient (see the module docstring).

    Args:
        coronal: the coronal view's measurement.
        left_bending: the left-bending view's measurement, if any.
        right_bending: the right-bending view's measurement, if any.
        orientation: display convention, ``"PA"``, ``"AP"`` or ``"auto"`` (see :func:`resolve_orientation`).
        structural_deg: residual side-bending Cobb angle from which a minor curve is structural. Defaults to ``25.0``
            (Lenke et al. 2001).
        pedicle_ratio: see :func:`lumbar_modifier`. Defaults to ``0.5``.

    Returns:
        the :class:`LenkeClassification`. The curves of the given views get their ``patient_side`` set.
    """
    orient = resolve_orientation(coronal, left_bending, right_bending, orientation)
    display = orient["display"]
    bending = {"left_bending": left_bending, "right_bending": right_bending}
    undetermined = [
        "sagittal thoracic modifier (-, N, +): needs T5-T12 kyphosis on a lateral radiograph",
        "structural status by sagittal criteria (T2-T5 or T10-L2 kyphosis >= +20 deg): needs a lateral radiograph",
    ]
    approximations = [
        "vertebral levels estimated from the column's arc length in typical vertebral-height proportions "
        "(T1 to the bottom of the sacrum); labels may be off by about one level",
        "lumbar modifier approximated from the mask: pedicles placed at half the apical half-width",
    ]
    notes: list[str] = []
    if orient["source"] != "caller" or orient["observed"] not in (None, display):
        notes.append(orient["note"])
    known = orient["source"] != "assumed"
    for views in (left_bending, right_bending, coronal):
        for c in [] if views is None else views.curves:
            c.patient_side = _patient_side(c.convex, display) if known else None

    regions = coronal.by_region()
    assessments: list[CurveAssessment] = []
    major_region = None
    if MT in regions or TLL in regions:
        major_region = max((r for r in (MT, TLL) if r in regions), key=lambda r: (regions[r].cobb_deg, r == MT))
        if PT in regions and regions[PT].cobb_deg > regions[major_region].cobb_deg and MT in regions:
            major_region = MT
            notes.append("the proximal thoracic curve is the largest; the main thoracic curve is taken as major")
        if MT in regions and TLL in regions and abs(regions[MT].cobb_deg - regions[TLL].cobb_deg) < 5.0:
            notes.append(
                "main thoracic and thoracolumbar/lumbar curves are within 5 deg of each other: the choice of the "
                "major curve (type 3 vs 6, or the major of type 4) is within measurement error"
            )
    for region in REGIONS:
        if region not in regions:
            continue
        curve = regions[region]
        a = CurveAssessment(region=region, coronal=curve, major=region == major_region)
        side = _patient_side(curve.convex, display)
        a.bending_view = f"{side}_bending"
        view = bending[a.bending_view]
        if view is not None:
            a.residual_deg, a.residual_source = _residual(curve, view)
            a.flexibility_pct = (curve.cobb_deg - a.residual_deg) / curve.cobb_deg * 100.0
        if a.major:
            a.structural, a.reason = True, "major curve (always structural)"
        elif a.residual_deg is None:
            a.structural, a.reason = None, f"no {a.bending_view.replace('_', '-')} view to assess it"
        elif a.residual_deg >= structural_deg:
            a.structural, a.reason = True, f"side-bending Cobb {a.residual_deg:.0f} >= {structural_deg:.0f} deg"
        else:
            a.structural, a.reason = False, f"side-bending Cobb {a.residual_deg:.0f} < {structural_deg:.0f} deg"
        assessments.append(a)

    candidates: list[int] = []
    curve_type = None
    if major_region is None:
        notes.append("no main thoracic or thoracolumbar/lumbar curve: not a Lenke curve pattern")
    elif regions[major_region].cobb_deg < SRS_SCOLIOSIS_DEG:
        notes.append(
            f"largest curve {regions[major_region].cobb_deg:.0f} deg < {SRS_SCOLIOSIS_DEG:.0f} deg: "
            "not scoliosis by the SRS definition; Lenke type not applicable"
        )
    else:
        structural = {a.region: a.structural for a in assessments}
        candidates = lenke_curve_type(structural, major_region)
        if len(candidates) == 1:
            curve_type = candidates[0]
        elif candidates:
            missing = sorted({a.bending_view.replace("_", "-") for a in assessments if a.structural is None})
            undetermined.insert(
                0, f"curve type ({' or '.join(map(str, candidates))}): needs the {' and '.join(missing)} view"
            )
        else:
            notes.append("structural pattern (structural proximal thoracic without main thoracic) is not a Lenke type")

    modifier, details = None, None
    if coronal.lumbar_apex is not None and coronal.lumbar_apex.get("half_width", 0) > 0:
        la = coronal.lumbar_apex
        modifier = lumbar_modifier(la["offset"], la["half_width"], pedicle_ratio)
        details = {
            "lumbar_apex": la.get("level"),
            "csvl_offset": round(float(la["offset"]), 1),
            "apical_half_width": round(float(la["half_width"]), 1),
            "pedicle_ratio": pedicle_ratio,
            "unit": coronal.unit,
        }
        if curve_type == 5 and modifier != "C":
            notes.append(f"type 5 curves have modifier C by definition; the approximate modifier gave {modifier}")
    else:
        undetermined.append("lumbar modifier: no lumbar apex found on the coronal mask")

    return LenkeClassification(
        curve_type=curve_type,
        candidates=candidates,
        lumbar_modifier=modifier,
        lumbar_details=details,
        curves=assessments,
        orientation=orient,
        undetermined=undetermined,
        approximations=approximations,
        notes=notes,
    )
