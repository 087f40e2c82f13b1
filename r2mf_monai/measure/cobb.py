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

"""Curves and Cobb angles of one view, from the tangent of the spinal centreline (blended with the endplates seen on
the film where it is given, :mod:`.film_tilt`; from vertebra tilts on masks built from vertebra corners).

The Cobb angle is the angle between the upper endplate of the upper end vertebra and the lower endplate of the lower
end vertebra, the end vertebrae being the most tilted ones (Cobb 1948; the measurement the paper's masks serve, §1
and §5). An endplate is perpendicular to the column's axis, so its tilt equals the tilt of the centreline's tangent,
and the end vertebrae of a curve are the *extremes* of the tangent angle (the inflection points of the centreline).
Hence: the curves of a view are the stretches between consecutive tangent extremes, and each curve's Cobb angle is
the difference of the tangent angles at its two ends. Ends are sought from the top of the column down to the upper
endplate of S1 (estimated with the level model): the sacrum below it is in the masks but carries no Cobb line.
Extremes are found with a hysteresis (a "zig-zag") of ``min_cobb`` degrees, so wiggles smaller than the threshold
neither make curves nor split them. The perpendicular endplate is an approximation (real vertebrae are wedged and
rotated, and a predicted mask spills over a curve's concave side): given the film, the profile the extremes are
sought on is the tangent blended with the endplate tilt read from the film (:func:`.film_tilt.blend_tilts`).

For each curve this module reports: Cobb angle, end and apex levels (estimated, see :mod:`.levels`), the Lenke region
of the apex, the convex side (``"image_left"``/``"image_right"``: sides of the *image*; they are the patient's sides
only on PA-convention display, i.e. the patient seen from behind; :mod:`.lenke` resolves the patient's side), the
apex (the centreline point farthest from the chord joining the curve's ends) and the apex's horizontal distance from
the centre sacral vertical line (CSVL: the image vertical through the centre of the sacrum, the lowest part of the
column; "vertical" is the image's, so a radiograph taken tilted tilts the CSVL with it), in mm where the pixel
spacing is known and in pixels otherwise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from r2mf_monai.measure.centreline import (
    Centreline,
    MaskNotMeasurableError,
    binarize_mask,
    extract_centreline,
    parse_spacing,
)
from r2mf_monai.measure.endplates import FIT_PX, NOTCH_PX, VertebraFit, detect_lowest_level, fit_vertebrae
from r2mf_monai.measure.film_tilt import FILM_WEIGHT, blend_tilts, film_tilts
from r2mf_monai.measure.levels import REGION_ABBREVIATIONS, REGIONS, LevelModel, region_of

__all__ = [
    "LOWEST_LEVELS",
    "Curve",
    "ViewMeasurement",
    "find_curves",
    "find_vertebra_curves",
    "measure_centreline",
    "measure_mask",
    "tangent_extremes",
]

LOWEST_LEVELS: tuple[str, ...] = ("auto", "S", "L5")
"""Where a mask ends: ``"S"`` (the sacrum included, the paper's annotation), ``"L5"`` (cut at the L5 endplate, the
AASCE annotation) or ``"auto"`` (:func:`.endplates.detect_lowest_level`)."""

_WORK_WIDTH_PX = 48.0
"""Column width (pixels) above which the centreline is extracted on a mask shrunk by a whole factor (speed: a
2500-row film took 3.6 s; the curves are hundreds of pixels long, the centreline's smoothing far wider than a pixel)."""

WOBBLE_REF = 0.007
"""Outline wobble (:attr:`.centreline.Centreline.wobble`) above which an outline is wobbly and the tangent's smoothing
grows with it (see :data:`WOBBLE_FULL`). The synthetic generator's ground-truth columns wobble by 0.003-0.007 and
keep the given smoothing; masks predicted on synthetic films wobble by 0.009-0.026 and on real films by 0.008-0.16
(median 0.019), vertebra by vertebra, which splits one curve into many and reads 60-90 degrees on straight spines at
10 % smoothing."""

WOBBLE_FULL = 0.015
"""Outline wobble from which a wobbly outline's tangent is smoothed over :data:`MAX_SMOOTHING`; between
:data:`WOBBLE_REF` and this the window grows linearly from the given smoothing (continuous, so that a mask rotated or
resampled across ``WOBBLE_REF`` reads the same angles). Bundle 0.6.0 grew the window as ``smoothing * wobble / 0.01``
from 0.01, reaching the full window only at 0.03: half the masks predicted on real films stayed under it and
over-read mild curves (+8 degrees under 20). Main-curve MAE of the 0.6.0 weights' masks, that rule -> this one: 150
AASCE selection films 7.11 -> 5.95 degrees (full window at 0.012: 5.99; a base smoothing of 15 % instead, which also
widens it on smooth masks: 5.93), the 120 synthetic test images 3.17 -> 2.72 (Lenke type 81 -> 89 %); the synthetic
ground-truth columns keep their smoothing."""

MAX_SMOOTHING = 0.3
"""Largest smoothing window (fraction of the column length, about three vertebrae either side) for wobbly masks."""

MIN_LENGTH_WIDTHS = 4.0
"""Shortest column measured, in column widths: a spinal column from T1 to the sacrum is about ten of its widths long
(9.6-10 on the AASCE films' columns); a mask a few widths long is a fragment (part of the lumbar spine, a blob in the
pelvis) whose curves and levels would be made up."""

MAX_TURN_DEG = 150.0
"""Largest spread of the centreline's tangent angle accepted: more means the line turns back on itself (a hooked or
looping mask); the largest Cobb angles reported in scoliosis are about 150 degrees."""

SRS_SCOLIOSIS_DEG = 10.0
"""The Scoliosis Research Society's threshold: a coronal Cobb angle of 10 degrees or more is scoliosis."""


@dataclass
class Curve:
    """One curve of a view.

    Attributes:
        cobb_deg: the Cobb angle in degrees.
        upper_level: estimated upper end vertebra, e.g. ``"T5"``.
        lower_level: estimated lower end vertebra.
        apex_level: estimated apical vertebra.
        region: Lenke region of the apex (one of :data:`.levels.REGIONS`).
        convex: ``"image_left"`` or ``"image_right"``: the side of the image the curve is convex towards.
        upper_tangent_deg: tilt of the column axis (and of the endplate) at the upper end, from the image vertical;
            positive when the column runs towards the image's right going down.
        lower_tangent_deg: the same at the lower end.
        upper_fraction: position of the upper end as a fraction of the column length (0 = top).
        lower_fraction: the same for the lower end.
        apex_fraction: the same for the apex.
        apex_deviation: signed horizontal distance of the apex from the CSVL, positive towards the image's right, in
            ``unit``; ``None`` when unknown.
        unit: ``"mm"`` or ``"px"``.
        upper_index: index of the upper end on the centreline (``None`` for curves made by hand).
        lower_index: index of the lower end on the centreline.
        apex_index: index of the apex on the centreline.
        patient_side: ``"right"``/``"left"`` convexity on the patient once the display orientation is known.
    """

    cobb_deg: float
    upper_level: str
    lower_level: str
    apex_level: str
    region: str
    convex: str
    upper_tangent_deg: float = 0.0
    lower_tangent_deg: float = 0.0
    upper_fraction: float | None = None
    lower_fraction: float | None = None
    apex_fraction: float | None = None
    apex_deviation: float | None = None
    unit: str = "px"
    upper_index: int | None = None
    lower_index: int | None = None
    apex_index: int | None = None
    patient_side: str | None = None

    @property
    def name(self) -> str:
        """Short name of the region: ``"PT"``, ``"MT"`` or ``"TL/L"``."""
        return REGION_ABBREVIATIONS.get(self.region, self.region)

    def to_dict(self) -> dict:
        """JSON-ready description (angles in degrees, lengths in ``unit``)."""
        return {
            "region": self.region,
            "name": self.name,
            "cobb_deg": round(float(self.cobb_deg), 1),
            "upper_end_vertebra": self.upper_level,
            "lower_end_vertebra": self.lower_level,
            "apex": self.apex_level,
            "convex_towards": self.convex,
            "convex_patient_side": self.patient_side,
            "upper_endplate_tilt_deg": round(float(self.upper_tangent_deg), 1),
            "lower_endplate_tilt_deg": round(float(self.lower_tangent_deg), 1),
            "apex_deviation_from_csvl": None if self.apex_deviation is None else round(float(self.apex_deviation), 1),
            "unit": self.unit,
        }


@dataclass
class ViewMeasurement:
    """Everything measured on one view.

    Attributes:
        curves: the curves of at least ``min_cobb`` degrees, top to bottom.
        view: ``"coronal"``, ``"left_bending"``, ``"right_bending"`` or ``None``.
        unit: ``"mm"`` or ``"px"`` for every length.
        spacing: ``(row, column)`` pixel spacing in mm, or ``None``.
        shape: ``(H, W)`` of the mask.
        centreline: the :class:`.centreline.Centreline` (``None`` for measurements made by hand).
        levels: the :class:`.levels.LevelModel` the level labels come from.
        csvl_col: column (pixels) of the centre sacral vertical line.
        lean_deg: trunk lean: angle from the image vertical of the line from the sacral centre to the top of the
            column, positive when the top lies to the image's right (a bending view leans towards the bending side).
        lumbar_apex: for the Lenke lumbar modifier: ``{"level", "offset", "half_width", "point"}`` with the signed
            horizontal offset of the lumbar apex's centre from the CSVL and the column's horizontal half-width there
            (``unit``), ``point`` in pixels (row, column).
        min_cobb: the threshold the curves were found with.
        notes: anything the user should know about this view (e.g. removed specks).
        lowest_level: where the mask ends: ``"S"`` (sacrum included) or ``"L5"``.
        vertebrae: the vertebrae read from the outline's notches (masks built from vertebra corners that end at L5),
            whose tilts gave the curves; ``None`` when the curves come from the centreline's tangent.
        film_tilt_deg: (N,) the tilt profile the curves were read from when the film was at hand: the centreline's
            tangent blended with the endplate tilt read from the film (:mod:`.film_tilt`); ``None`` when the curves
            come from the tangent alone (or from :attr:`vertebrae`).
    """

    curves: list[Curve]
    view: str | None = None
    unit: str = "px"
    spacing: tuple[float, float] | None = None
    shape: tuple[int, int] | None = None
    centreline: Centreline | None = None
    levels: LevelModel = field(default_factory=LevelModel)
    csvl_col: float | None = None
    lean_deg: float | None = None
    lumbar_apex: dict | None = None
    min_cobb: float = 5.0
    notes: list[str] = field(default_factory=list)
    lowest_level: str = "S"
    vertebrae: VertebraFit | None = None
    film_tilt_deg: np.ndarray | None = None

    @property
    def tilt_deg(self) -> np.ndarray | None:
        """(N,) the tilt profile along the centreline that the curves were read from: :attr:`film_tilt_deg` when the
        film was read, else the centreline's tangent; ``None`` without a centreline."""
        if self.film_tilt_deg is not None:
            return self.film_tilt_deg
        return None if self.centreline is None else self.centreline.tangent_deg

    @property
    def cobb_source(self) -> str:
        """What the Cobb angles were read from: ``"vertebra_tilts"`` (the vertebrae read off a corner-built outline),
        ``"vertebra_tilts_and_film"`` (their corners placed with the film's endplate edges too),
        ``"centreline_tangent"`` or ``"centreline_tangent_and_film"`` (the tangent blended with the film's reading)."""
        if self.vertebrae is not None:
            return "vertebra_tilts_and_film" if self.vertebrae.film_edges else "vertebra_tilts"
        return "centreline_tangent_and_film" if self.film_tilt_deg is not None else "centreline_tangent"

    def regional_cobb(self) -> dict[str, float]:
        """Cobb angle (degrees) of the largest curve of each Lenke region by apex, ``{"PT": .., "MT": .., "TL/L": ..}``;
        0.0 for a region without a curve of at least ``min_cobb``."""
        regions = self.by_region()
        return {REGION_ABBREVIATIONS[r]: float(regions[r].cobb_deg) if r in regions else 0.0 for r in REGIONS}

    def major(self) -> Curve | None:
        """The curve with the largest Cobb angle, or ``None``."""
        return max(self.curves, key=lambda c: c.cobb_deg) if self.curves else None

    def by_region(self) -> dict[str, Curve]:
        """The largest curve of each region that has one."""
        out: dict[str, Curve] = {}
        for c in self.curves:
            if c.region not in out or c.cobb_deg > out[c.region].cobb_deg:
                out[c.region] = c
        return out

    def turning_between(self, upper_fraction: float, lower_fraction: float) -> float | None:
        """Turning of the tilt profile (:attr:`tilt_deg`; degrees, lower minus upper) between two fractions of the
        column, ``None`` without a centreline. Used to read a bending view's Cobb angle between another view's end
        levels."""
        if self.centreline is None:
            return None
        t = self.tilt_deg
        return float(t[self.centreline.index_at(lower_fraction)] - t[self.centreline.index_at(upper_fraction)])

    def to_dict(self) -> dict:
        """JSON-ready description of the view."""
        c = self.centreline
        return {
            "view": self.view,
            "shape": None if self.shape is None else list(self.shape),
            "pixel_spacing_mm": None if self.spacing is None else list(self.spacing),
            "unit": self.unit,
            "column_length": None if c is None else round(float(c.length), 1),
            "column_top_px": None if c is None else [round(float(v), 1) for v in c.points[0]],
            "column_bottom_px": None if c is None else [round(float(v), 1) for v in c.points[-1]],
            "csvl_column_px": None if self.csvl_col is None else round(float(self.csvl_col), 1),
            "trunk_lean_deg": None if self.lean_deg is None else round(float(self.lean_deg), 1),
            "min_cobb_deg": self.min_cobb,
            "lowest_level": self.lowest_level,
            "cobb_source": self.cobb_source,
            "regional_cobb_deg": {k: round(v, 1) for k, v in self.regional_cobb().items()},
            "vertebra_tilts_deg": None
            if self.vertebrae is None
            else {n: round(float(t), 1) for n, t in zip(self.vertebrae.names, self.vertebrae.tilt_deg, strict=True)},
            "largest_cobb_deg": None if self.major() is None else round(float(self.major().cobb_deg), 1),
            "scoliosis": None if self.major() is None else bool(self.major().cobb_deg >= SRS_SCOLIOSIS_DEG),
            "curves": [cv.to_dict() for cv in self.curves],
            "lumbar_apex": None
            if self.lumbar_apex is None
            else {k: (round(float(v), 1) if isinstance(v, float) else v) for k, v in self.lumbar_apex.items()},
            "notes": list(self.notes),
        }


def tangent_extremes(tangent_deg: np.ndarray, threshold: float) -> list[int]:
    """Indices of alternating extremes of the tangent angle, each swing at least ``threshold`` degrees.

    A zig-zag (hysteresis) filter: a new extreme is confirmed once the angle has come back from it by ``threshold``,
    so oscillations smaller than the threshold are ignored. The stretches between consecutive returned indices are
    the curves; each has a Cobb angle of at least ``threshold``. Nothing is returned for a column whose tangent never
    swings by ``threshold``.
    """
    t = np.asarray(tangent_deg, dtype=float)
    if t.ndim != 1 or len(t) < 2:
        return []
    pivots: list[int] = []
    i_hi = i_lo = 0
    trend = 0
    ext = 0
    for i in range(1, len(t)):
        v = t[i]
        if trend == 0:
            if v > t[i_hi]:
                i_hi = i
            if v < t[i_lo]:
                i_lo = i
            if t[i_hi] - t[i_lo] >= threshold:
                if i == i_hi:
                    trend, ext = 1, i
                    pivots.append(i_lo)
                else:
                    trend, ext = -1, i
                    pivots.append(i_hi)
        elif trend == 1:
            if v > t[ext]:
                ext = i
            elif t[ext] - v >= threshold:
                pivots.append(ext)
                trend, ext = -1, i
        else:
            if v < t[ext]:
                ext = i
            elif v - t[ext] >= threshold:
                pivots.append(ext)
                trend, ext = 1, i
    if trend != 0:
        pivots.append(ext)
    return pivots


def _apex(points_mm: np.ndarray, i0: int, i1: int) -> tuple[int, float]:
    """Index of the point between i0 and i1 farthest from the chord, and its signed side (+: image right)."""
    seg = points_mm[i0 : i1 + 1]
    a, b = seg[0], seg[-1]
    chord = b - a
    norm = np.linalg.norm(chord)
    if norm == 0:
        return (i0 + i1) // 2, 0.0
    # signed distance: cross product of chord (row, col) with (point - a); positive = to the image right of the chord
    # when the chord runs downwards
    rel = seg - a
    signed = (chord[0] * rel[:, 1] - chord[1] * rel[:, 0]) / norm
    k = int(np.argmax(np.abs(signed)))
    return i0 + k, float(signed[k])


def find_curves(
    centreline: Centreline,
    min_cobb: float = 5.0,
    levels: LevelModel | None = None,
    csvl_col: float | None = None,
    tilt_deg: np.ndarray | None = None,
) -> list[Curve]:
    """Curves of a centreline: stretches between tangent extremes whose Cobb angle is at least ``min_cobb``.

    Args:
        centreline: the view's :class:`.centreline.Centreline`.
        min_cobb: smallest Cobb angle (degrees) reported; smaller wiggles are treated as noise. Defaults to ``5.0``
            (half the Scoliosis Research Society's 10 degree threshold for scoliosis).
        levels: the level model. Defaults to ``LevelModel()``.
        csvl_col: column (pixels) of the centre sacral vertical line; defaults to the bottom of the centreline.
        tilt_deg: (N,) tilt profile to read the curves from instead of the tangent (the film's blend, see
            :mod:`.film_tilt`); defaults to ``centreline.tangent_deg``.

    Returns:
        the curves, top to bottom.
    """
    levels = LevelModel() if levels is None else levels
    spacing = np.asarray(centreline.spacing if centreline.spacing is not None else (1.0, 1.0))
    pts_mm = centreline.points * spacing[None, :]
    frac = centreline.fraction
    t = centreline.tangent_deg if tilt_deg is None else np.asarray(tilt_deg, dtype=float)
    if t.shape != centreline.tangent_deg.shape:
        raise ValueError(f"tilt_deg has {t.shape[0]} points, the centreline {len(centreline.tangent_deg)}.")
    csvl = float(centreline.points[-1, 1]) if csvl_col is None else float(csvl_col)
    # Cobb lines lie on vertebral endplates: the lowest is the upper endplate of S1, so the sacrum below it (which the
    # masks include, paper section 4.1) bounds no curve
    n = max(int(np.searchsorted(frac, levels.s1_endplate, side="right")), 2)
    pivots = tangent_extremes(t[:n], min_cobb)
    curves = []
    for i0, i1 in zip(pivots[:-1], pivots[1:], strict=True):
        cobb = abs(float(t[i1] - t[i0]))
        if cobb < min_cobb:
            continue
        ia, side = _apex(pts_mm, i0, i1)
        if side == 0.0:  # a degenerate chord: fall back on the sense of turning (see the module docstring)
            side = -(t[i1] - t[i0])
        curves.append(
            Curve(
                cobb_deg=cobb,
                upper_level=levels.level(frac[i0]),
                lower_level=levels.level(frac[i1]),
                apex_level=levels.level(frac[ia]),
                region=region_of(levels.position(frac[ia]), levels),
                convex="image_right" if side > 0 else "image_left",
                upper_tangent_deg=float(t[i0]),
                lower_tangent_deg=float(t[i1]),
                upper_fraction=float(frac[i0]),
                lower_fraction=float(frac[i1]),
                apex_fraction=float(frac[ia]),
                apex_deviation=float((centreline.points[ia, 1] - csvl) * spacing[1]),
                unit=centreline.unit,
                upper_index=int(i0),
                lower_index=int(i1),
                apex_index=int(ia),
            )
        )
    return curves


def find_vertebra_curves(
    vertebrae: VertebraFit,
    centreline: Centreline,
    min_cobb: float = 5.0,
    csvl_col: float | None = None,
) -> list[Curve]:
    """Curves from vertebra tilts: stretches between alternating tilt extremes (the end vertebrae), as a reader
    measures Cobb angles on endplates (Cobb 1948), each at least ``min_cobb`` degrees.

    The main curve runs between the two most tilted vertebrae (the largest tilt difference, as the AASCE calculator
    and a reader take it): a zig-zag over all the tilts can end a curve early at a vertebra a few degrees out of line
    and report the main curve in pieces. The curves above and below it are the zig-zag's on the tilts there. Levels
    are the fitted vertebrae's own names; the apex is the vertebra whose centre lies farthest from the line joining the
    end vertebrae's centres. Positions along the column (fractions, indices) are those of the centreline
    points nearest to the vertebra centres.
    """
    spacing = np.asarray(centreline.spacing if centreline.spacing is not None else (1.0, 1.0))
    t = vertebrae.tilt_deg
    centres = vertebrae.centres
    near = np.argmin(np.linalg.norm(centres[:, None, :] - centreline.points[None, :, :], axis=2), axis=1)
    frac = centreline.fraction
    csvl = float(centreline.points[-1, 1]) if csvl_col is None else float(csvl_col)
    curves = []
    diff = np.abs(t[:, None] - t[None, :])
    upper, lower = sorted(np.unravel_index(int(np.argmax(diff)), diff.shape))
    pivots = [i for i in tangent_extremes(t[: upper + 1], min_cobb) if i < upper] + [int(upper), int(lower)]
    pivots += [int(lower) + i for i in tangent_extremes(t[lower:], min_cobb) if i > 0]
    keep = [pivots[0]]  # alternating extremes only: drop a pivot that lies between its neighbours' tilts
    for i, j in zip(pivots[1:-1], pivots[2:], strict=True):
        if (t[i] - t[keep[-1]]) * (t[j] - t[i]) < 0:
            keep.append(i)
    pivots = keep + pivots[-1:] if len(pivots) > 1 else pivots
    for i0, i1 in zip(pivots[:-1], pivots[1:], strict=True):
        cobb = abs(float(t[i1] - t[i0]))
        if cobb < min_cobb:
            continue
        k, side = _apex(centres * spacing[None, :], i0, i1)
        if side == 0.0:
            side = -(t[i1] - t[i0])
        curves.append(
            Curve(
                cobb_deg=cobb,
                upper_level=vertebrae.names[i0],
                lower_level=vertebrae.names[i1],
                apex_level=vertebrae.names[k],
                region=region_of(vertebrae.names[k]),
                convex="image_right" if side > 0 else "image_left",
                upper_tangent_deg=float(t[i0]),
                lower_tangent_deg=float(t[i1]),
                upper_fraction=float(frac[near[i0]]),
                lower_fraction=float(frac[near[i1]]),
                apex_fraction=float(frac[near[k]]),
                apex_deviation=float((centres[k, 1] - csvl) * spacing[1]),
                unit=centreline.unit,
                upper_index=int(near[i0]),
                lower_index=int(near[i1]),
                apex_index=int(near[k]),
            )
        )
    return curves


def _lumbar_apex(centreline: Centreline, curves: list[Curve], levels: LevelModel, csvl: float) -> dict | None:
    """The lumbar apex for Lenke's lumbar modifier and the column's horizontal half-width there.

    The apex of the thoracolumbar/lumbar curve if there is one, else the point of the lumbar spine (T12-L4) farthest
    from the CSVL (for a straight lumbar spine the CSVL then falls between the pedicles: modifier A).
    """
    spacing = np.asarray(centreline.spacing if centreline.spacing is not None else (1.0, 1.0))
    tll = [c for c in curves if c.region == "thoracolumbar_lumbar" and c.apex_index is not None]
    if tll:
        i = max(tll, key=lambda c: c.cobb_deg).apex_index
    else:
        pos = levels.position(centreline.fraction)
        sel = np.flatnonzero((pos >= levels.boundary("T12", body=True)) & (pos < levels.boundary("L5")))
        if len(sel) == 0:
            return None
        i = int(sel[np.argmax(np.abs(centreline.points[sel, 1] - csvl))])
    tilt = np.radians(centreline.tangent_deg[i])
    half = 0.5 * float(centreline.width[i]) / max(np.cos(tilt), 0.2)  # horizontal half-width of the tilted column
    return {
        "level": levels.level(centreline.fraction[i]),
        "offset": float((centreline.points[i, 1] - csvl) * spacing[1]),
        "half_width": half,
        "point": [round(float(v), 1) for v in centreline.points[i]],
    }


def measure_centreline(
    centreline: Centreline,
    view: str | None = None,
    min_cobb: float = 5.0,
    levels: LevelModel | None = None,
    shape: tuple[int, int] | None = None,
    vertebrae: VertebraFit | None = None,
    film_tilt_deg: np.ndarray | None = None,
) -> ViewMeasurement:
    """All measurements of one view from its centreline (see :func:`measure_mask`); with ``vertebrae`` the curves
    come from their tilts (:func:`find_vertebra_curves`), with ``film_tilt_deg`` (the tangent blended with the
    film's endplate tilt, :mod:`.film_tilt`) from that profile instead of the tangent."""
    if not min_cobb > 0:
        raise ValueError(f"min_cobb must be > 0 degrees, got {min_cobb}.")
    levels = LevelModel() if levels is None else levels
    pts = centreline.points
    spacing = np.asarray(centreline.spacing if centreline.spacing is not None else (1.0, 1.0))
    # the CSVL: the image vertical through the centre of the sacrum, the lowest part of the column: the mean column of
    # the centreline over the sacral segment of the level model (its bottom point when the model has no sacrum)
    sacral = centreline.fraction >= levels.edges[-2]
    csvl = float(pts[sacral, 1].mean()) if sacral.any() else float(pts[-1, 1])
    if vertebrae is not None:
        curves = find_vertebra_curves(vertebrae, centreline, min_cobb=min_cobb, csvl_col=csvl)
    else:
        curves = find_curves(centreline, min_cobb=min_cobb, levels=levels, csvl_col=csvl, tilt_deg=film_tilt_deg)
    d = (pts[0] - pts[-1]) * spacing
    lean = float(np.degrees(np.arctan2(d[1], -d[0])))
    return ViewMeasurement(
        curves=curves,
        view=view,
        unit=centreline.unit,
        spacing=centreline.spacing,
        shape=shape,
        centreline=centreline,
        levels=levels,
        csvl_col=csvl,
        lean_deg=lean,
        lumbar_apex=_lumbar_apex(centreline, curves, levels, csvl),
        min_cobb=float(min_cobb),
        lowest_level="L5" if levels.sacrum_mm == 0 else "S",
        vertebrae=vertebrae,
        film_tilt_deg=None if vertebrae is not None or film_tilt_deg is None else np.asarray(film_tilt_deg, float),
    )


def _centreline(fg: np.ndarray, spacing: tuple[float, float] | None, smoothing: float) -> Centreline:
    """The centreline, extracted on the mask shrunk by a whole factor when the column is wider than
    :data:`_WORK_WIDTH_PX` pixels, and given back in the mask's pixels."""
    rows = np.flatnonzero(fg.any(axis=1))
    width = fg.sum() / max(rows[-1] - rows[0] + 1, 1)
    f = int(width // _WORK_WIDTH_PX)
    if f < 2:
        return extract_centreline(fg, spacing=spacing, smoothing=smoothing, min_component=0.0)
    small = fg[f // 2 :: f, f // 2 :: f]
    c = extract_centreline(
        small, spacing=None if spacing is None else (spacing[0] * f, spacing[1] * f), smoothing=smoothing
    )
    scale = 1.0 if spacing is not None else float(f)  # lengths in pixels of the mask, or mm either way
    return dataclasses.replace(
        c,
        points=c.points * f + (f // 2),
        arc_length=c.arc_length * scale,
        width=c.width * scale,
        length=c.length * scale,
        spacing=spacing,
    )


def _check_column(centreline: Centreline, source: str = "the mask") -> None:
    """Refuse a mask whose centreline cannot carry Cobb angles, with the reason (see :data:`MIN_LENGTH_WIDTHS`,
    :data:`MAX_TURN_DEG`).

    Raises:
        MaskNotMeasurableError: for a fragment or a looping centreline.
    """
    width = float(np.median(centreline.width))
    if width > 0 and centreline.length < MIN_LENGTH_WIDTHS * width:
        raise MaskNotMeasurableError(
            f"{source} is {centreline.length / width:.1f} column widths long (a spine from T1 to the sacrum is about "
            f"10, at least {MIN_LENGTH_WIDTHS:g} are needed): a fragment of a column, not measured."
        )
    t = centreline.tangent_deg
    spread = float(np.max(t) - np.min(t))
    if spread > MAX_TURN_DEG:
        raise MaskNotMeasurableError(
            f"{source}'s centreline turns by {spread:.0f} degrees (more than {MAX_TURN_DEG:g}): it hooks or loops "
            "back on itself, so no Cobb angle is read from it."
        )


def measure_mask(
    mask: np.ndarray,
    spacing: float | tuple[float, float] | None = None,
    view: str | None = None,
    min_cobb: float = 5.0,
    smoothing: float = 0.1,
    levels: LevelModel | None = None,
    lowest_level: str = "auto",
    image: np.ndarray | None = None,
    film_weight: float = FILM_WEIGHT,
) -> ViewMeasurement:
    """Curves, Cobb angles, levels and apex deviations of one spinal-column mask.

    A mask that ends at L5 is labelled with a level model without sacrum. When its outline is built from vertebra
    corners (notched, :data:`.endplates.NOTCH_PX`), its vertebrae are read from the notches
    (:func:`.endplates.fit_vertebrae`) and the curves come from vertebra tilts, as Cobb angles are read on endplates;
    otherwise from the centreline's tangent. With ``lowest_level="auto"`` a mask is taken to end at L5 when it is cut
    square at its bottom (:func:`.endplates.detect_lowest_level`) *and* its outline is notched (the AASCE annotation
    made into masks by ``r2mf-monai landmarks2mask``); smooth masks (the bundle's predictions, which run on to the
    sacrum) are read as ending with the sacrum. A ``levels`` model without sacrum says the mask ends at L5, as
    ``lowest_level="L5"`` does; told so, a notched outline is read for vertebrae when its fit is close
    (:data:`.endplates.FIT_PX`) or, failing that, when it has no more vertices than its vertebrae have corners
    (:attr:`.endplates.VertebraFit.outline_vertices`: a vertebra jutting out of line spoils the fit, not the polygon).
    A smooth mask given its film (``image``) is read from the tangent blended with the endplate tilt seen on the film
    (:mod:`.film_tilt`), the tangent alone without it; a notched one's corners are placed with the film's endplate
    edges as well as its notches (:func:`.endplates.fit_vertebrae`).

    Args:
        mask: (H, W) array, row 0 at the top (the head); values > 0.5 are the column.
        spacing: pixel spacing in mm (one number or ``(row, column)``); ``None`` gives lengths in pixels.
        view: the view's name, kept in the result.
        min_cobb: smallest Cobb angle reported, in degrees. Defaults to ``5.0``.
        smoothing: centreline smoothing window as a fraction of the column length. Defaults to ``0.1``.
        levels: the vertebral level model. Defaults to ``LevelModel()`` (T1 to the bottom of the sacrum); a mask that
            ends at L5 uses the same model without sacrum.
        lowest_level: where the mask ends, one of :data:`LOWEST_LEVELS`. Defaults to ``"auto"``.
        image: the film the mask was drawn on, (H, W) (or an RGB picture of it) on the mask's grid; ``None`` reads
            the mask alone.
        film_weight: the film reading's weight in the tilt profile (:func:`.film_tilt.blend_tilts`); ``0`` reads the
            tangent alone, and the corners from the outline alone. Defaults to :data:`.film_tilt.FILM_WEIGHT`.

    Returns:
        the :class:`ViewMeasurement`.

    Raises:
        MaskNotMeasurableError: (a :class:`ValueError`) for a mask that carries no measurable column, with the reason:
            empty, a fragment shorter than :data:`MIN_LENGTH_WIDTHS` widths, a centreline turning by more than
            :data:`MAX_TURN_DEG`.
        ValueError: for a mask that is not 2-D, or a bad ``spacing``, ``min_cobb``, ``smoothing``, ``lowest_level``,
            ``film_weight``, or an ``image`` whose shape is not the mask's.
    """
    if lowest_level not in LOWEST_LEVELS:
        raise ValueError(f"lowest_level must be one of {LOWEST_LEVELS}, got {lowest_level!r}.")
    if not 0 < smoothing < 1:
        raise ValueError(f"smoothing must be a fraction of the column length in (0, 1), got {smoothing}.")
    if not 0.0 <= film_weight <= 1.0:
        raise ValueError(f"film_weight must be in [0, 1], got {film_weight}.")
    arr = np.asarray(mask)
    if image is not None and np.shape(image)[:2] != arr.shape[:2]:
        raise ValueError(f"the film has shape {np.shape(image)} but its mask {arr.shape}: they must share one grid.")
    sp = parse_spacing(spacing)
    fg = binarize_mask(arr)
    centreline = _centreline(fg, sp, smoothing)
    levels = LevelModel() if levels is None else levels
    # a level model without sacrum says the mask ends at L5 as lowest_level="L5" does
    end = "L5" if lowest_level == "auto" and levels.sacrum_mm == 0 else lowest_level
    told_l5 = end == "L5"
    vertebrae = None
    vm_note = None
    if end != "S" and (told_l5 or detect_lowest_level(fg, centreline) == "L5"):
        names = LevelModel(top=levels.top, sacrum_mm=0.0).vertebrae
        try:
            vertebrae = fit_vertebrae(fg, centreline, names=names, image=image if film_weight > 0 else None)
        except ValueError:  # an outline too short for its vertebrae: the centreline's tangent still measures it
            vertebrae = None
        if vertebrae is not None:
            # an upsampled staircase is rough but no polygon of corners: the fitted corners leave it far off, and it
            # needs more vertices than its vertebrae have corners. Told that the mask ends at L5, a corner-built
            # outline whose fit is poor (a vertebra jutting out of line) is still taken for one by its vertex count.
            polygon = vertebrae.fit_px <= FIT_PX or (told_l5 and vertebrae.outline_vertices <= 4 * len(names))
            if vertebrae.notch_px < NOTCH_PX or not polygon:  # a smooth outline has no notches to read endplates from
                vertebrae = None
        if end == "auto":  # only an outline built from vertebra corners is taken to end at L5 unasked
            end = "L5" if vertebrae is not None else "S"
    if vertebrae is None and centreline.wobble > WOBBLE_REF and smoothing < MAX_SMOOTHING:
        # a wobbly outline (a predicted mask): smooth in proportion, so vertebra-scale wobble makes no curves
        wobble = centreline.wobble
        ramp = min((wobble - WOBBLE_REF) / (WOBBLE_FULL - WOBBLE_REF), 1.0)
        wide = smoothing + ramp * (MAX_SMOOTHING - smoothing)
        if wide > smoothing:
            centreline = _centreline(fg, sp, wide)
            vm_note = f"wobbly outline ({wobble:.3f} of its width): centreline smoothed over {wide:.0%}"
    _check_column(centreline, source="the mask" if view is None else f"the {view} mask")
    if end == "L5" and levels.sacrum_mm > 0:
        levels = LevelModel(top=levels.top, sacrum_mm=0.0)
    film_deg = None
    if vertebrae is None and image is not None and film_weight > 0:
        # one vertebra and its disc: the column down to S1's endplate over the vertebrae above it
        pitch = levels.s1_endplate * centreline.length / len(levels.vertebrae)
        film_deg = blend_tilts(centreline.tangent_deg, film_tilts(image, centreline, pitch), film_weight)
    vm = measure_centreline(
        centreline,
        view=view,
        min_cobb=min_cobb,
        levels=levels,
        shape=tuple(arr.shape[:2]),
        vertebrae=vertebrae,
        film_tilt_deg=film_deg,
    )
    if vm_note is not None:
        vm.notes.append(vm_note)
    if vertebrae is not None and vertebrae.mended_note is not None:
        vm.notes.append(vertebrae.mended_note)
    if lowest_level == "auto" and not told_l5 and end == "L5":
        vm.notes.append("the mask is cut square at its bottom: taken to end at L5 (lowest_level='S' to override)")
    return vm
