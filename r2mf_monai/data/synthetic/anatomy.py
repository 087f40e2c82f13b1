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

"""Spine anatomy of a synthetic scoliosis patient: curves, flexibility, per-view geometry and Cobb angles.

The patient data of the paper (§4.1 of R2MF-Net: 228 coronal / left-bending / right-bending triplets) are private,
so the project generates its own. This module holds the geometry only (millimetres, no pixels):

* :func:`sample_patient` draws one patient: vertebral dimensions T1-L5 growing caudally, discs, a single or double
  scoliotic curve (Cobb 0-90 degrees, apex T6-L2) built from smooth tilt transitions, and a per-patient flexibility.
* :func:`view_geometry` turns a patient into the spine of one view. The bending views rescale each curve's tilt
  change the way a flexible or rigid curve behaves (bending towards the convex side reduces a curve by its
  flexibility, bending towards the concave side increases it a little) and add a trunk lean carried mostly by the
  lumbar spine; the pelvis stays in place.
* :func:`measure_curves` and :func:`cobb_between` measure Cobb angles from the vertebra corners the way a reader does
  on a radiograph: between the upper endplate of the upper end vertebra and the lower endplate of the lower end
  vertebra, the end vertebrae being the most tilted ones bounding the curve.

Conventions: image-like axes in mm, x to the image right, y down (towards the feet), origin at the centre of the
upper endplate of S1. The display convention is the radiological one (patient's right on the image left), so a
curve convex towards the image left is a *right* curve. A tilt angle is the angle of an endplate from the image
horizontal, positive when its right end is lower (clockwise on screen).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from r2mf_monai.constants import VERTEBRAE, VIEWS

__all__ = [
    "CERVICAL",
    "BodyHabitus",
    "DesignedCurve",
    "Patient",
    "ViewGeometry",
    "sample_patient",
    "view_geometry",
    "cobb_between",
    "endplate_angles",
    "measure_curves",
    "curve_region",
    "spine_mask_polygons",
]

CERVICAL: tuple[str, ...] = ("C3", "C4", "C5", "C6", "C7")

# Adult vertebral body heights and coronal widths, T1..L5, in mm (order of magnitude of morphometric tables such as
# Panjabi et al., Spine 1991/1992); disc heights below each vertebra (T1/T2 .. L5/S1). Scaled per patient.
_BODY_HEIGHT = np.array([14, 15, 16, 16.5, 17, 17.5, 18, 18.5, 19, 20, 21, 22, 24, 25, 26, 26, 25], dtype=float)
_BODY_WIDTH = np.array([27, 27, 27, 27.5, 28, 29, 30, 31, 32, 34, 36, 39, 42, 44, 46, 48, 50], dtype=float)
_DISC_HEIGHT = np.array([4, 4, 4.5, 4.5, 5, 5, 5, 5.5, 5.5, 6, 6, 7, 8, 9, 9.5, 10, 9], dtype=float)
_CERVICAL_HEIGHT = np.array([12, 12, 12.5, 13, 13.5], dtype=float)  # C3..C7
_CERVICAL_WIDTH = np.array([18, 19, 20, 22, 24], dtype=float)
_CERVICAL_DISC = np.array([4, 4, 4.5, 4.5, 4.5], dtype=float)  # below C3..C7 (C7/T1 last)

_STEP_CURVATURE_LIMIT = 0.5  # mean tilt change per mm (degrees) allowed in compensatory transitions


@dataclass
class DesignedCurve:
    """A structural curve as designed (the measured one is in the view's ground truth).

    Attributes:
        apex: index of the apex vertebra in :data:`VERTEBRAE`.
        upper: index of the upper end vertebra.
        lower: index of the lower end vertebra.
        cobb: designed Cobb angle in degrees (coronal view).
        side: ``"right"`` or ``"left"``, the patient side of the convexity.
        flexibility: fraction of the curve corrected when bending towards its convexity (0 rigid, 1 fully flexible).
    """

    apex: int
    upper: int
    lower: int
    cobb: float
    side: str
    flexibility: float


@dataclass
class BodyHabitus:
    """The build of a patient around the spine, drawn by the renderer (mm unless said otherwise).

    Attributes:
        shoulder: half width of the body at the shoulders.
        chest: half width of the chest.
        waist: half width at the waist.
        hip: half width at the hips.
        thickness: antero-posterior thickness of the trunk.
        rib_reach: factor on the lateral reach of the ribs.
        pelvis: factor on the size of the pelvis.
        shoulder_imbalance: height difference of the shoulders.
        gas: amount of bowel gas (0..1).
        heart: factor on the size of the heart shadow.
        dome: height of the diaphragm domes (factor on 18 mm, -0.5..1).
    """

    shoulder: float
    chest: float
    waist: float
    hip: float
    thickness: float
    rib_reach: float
    pelvis: float
    shoulder_imbalance: float
    gas: float
    heart: float
    dome: float


@dataclass
class _Transition:
    """A smooth change of tilt by ``delta`` degrees between arc lengths ``s0 < s1`` (going up the spine)."""

    s0: float
    s1: float
    delta: float
    flexibility: float
    curve: int  # index into Patient.curves, -1 for compensatory


@dataclass
class _Dimensions:
    """Sex, age, size and the dimensions of one patient's spine (mm; sagittal inclinations in degrees)."""

    sex: str
    age: int
    size: float
    heights: np.ndarray
    widths: np.ndarray
    discs: np.ndarray
    cervical_heights: np.ndarray
    cervical_widths: np.ndarray
    cervical_discs: np.ndarray
    sagittal: np.ndarray  # endplate inclination in the sagittal plane per vertebra (degrees), for projection


@dataclass
class Patient(_Dimensions):
    """Everything about one synthetic patient that is common to the three views (mm and degrees): sex, age, size
    and spine dimensions (the fields of ``_Dimensions``), then these."""

    index: int
    patient_id: str
    sacrum_height: float
    curve_type: str
    curves: list[DesignedCurve]
    transitions: list[_Transition]
    pelvic_obliquity: float
    flexibility: float
    lean: dict[str, float]
    pelvis_tilt_bending: dict[str, float]
    jitter_angle: np.ndarray  # per-vertebra extra rotation (degrees)
    jitter_width: np.ndarray
    body: BodyHabitus
    multipliers: dict[str, np.ndarray] = field(default_factory=dict)  # per view, per transition


@dataclass
class ViewGeometry:
    """The spine of one view in mm (origin: centre of the S1 upper endplate; x right, y down).

    Attributes:
        view: one of :data:`VIEWS`.
        corners: (17, 4, 2) corners of T1..L5: upper-left, upper-right, lower-right, lower-left, as [x, y].
        centres: (17, 2) vertebral body centres.
        tilt: (17,) tilt of the body axis normal (degrees, positive = right end lower).
        cervical: (5, 4, 2) corners of C3..C7 (drawn, not in the mask).
        sacrum: (K, 2) polygon of the sacrum as annotated in the mask (S1 endplate to the tip).
        centreline: (M, 2) points from the top of T1 down to the tip of the sacrum.
        axial_rotation: (17,) axial rotation (degrees, positive moves the spinous process to the image right).
        pelvis_angle: tilt of the pelvis / S1 endplate (degrees).
        s: arc-length grid (mm, 0 at S1, increasing upwards); ``theta`` the tilt on it; ``xy`` the points on it.
    """

    view: str
    corners: np.ndarray
    centres: np.ndarray
    tilt: np.ndarray
    cervical: np.ndarray
    sacrum: np.ndarray
    centreline: np.ndarray
    axial_rotation: np.ndarray
    pelvis_angle: float
    s: np.ndarray
    theta: np.ndarray
    xy: np.ndarray
    endplate_eps: np.ndarray  # (17,) half minor axis (mm) of the projected endplate rings


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _arc_layout(heights: np.ndarray, discs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arc lengths of the lower and upper endplates of T1..L5 above S1 (disc ``discs[i]`` lies below vertebra i)."""
    n = len(heights)
    s_lo = np.zeros(n)
    s_hi = np.zeros(n)
    s = 0.0
    for i in range(n - 1, -1, -1):
        s += discs[i]
        s_lo[i] = s
        s += heights[i]
        s_hi[i] = s
    return s_lo, s_hi


def curve_region(apex: int) -> str:
    """SRS region of a curve from its apex vertebra index: proximal/main thoracic, thoracolumbar or lumbar.

    Kept apart from the measurement's :func:`r2mf_monai.measure.levels.region_of` on purpose: these rules make the
    ground truth the measurement is scored against, so they must not be the code under test.
    """
    name = VERTEBRAE[apex]
    if name in ("T1", "T2", "T3", "T4", "T5"):
        return "proximal_thoracic"
    if name in ("T12", "L1"):
        return "thoracolumbar"
    if name.startswith("L"):
        return "lumbar"
    return "main_thoracic"


# ---------------------------------------------------------------------------------------------------------------
# sample_patient, section by section. The sections draw from the patient's generator in the order
# sample_patient calls them, each keeping its own draws in their order: the same seed gives the same patient.


def _sample_dimensions(rng: np.random.Generator) -> _Dimensions:
    """Sex, age and size; vertebral bodies and discs T1..L5 and C3..C7; the sagittal profile."""
    sex = "F" if rng.random() < 0.8 else "M"  # adolescent idiopathic scoliosis is mostly female
    age = int(rng.integers(10, 19)) if rng.random() < 0.8 else int(rng.integers(19, 70))
    size = float(
        np.clip(rng.normal(1.0, 0.05) * (0.95 if sex == "F" else 1.02) * (0.92 if age < 14 else 1.0), 0.8, 1.12)
    )
    heights = _BODY_HEIGHT * size * (1.0 + rng.normal(0, 0.025, 17))
    widths = _BODY_WIDTH * size * (1.0 + rng.normal(0, 0.03, 17))
    discs = _DISC_HEIGHT * size * np.clip(1.0 + rng.normal(0, 0.1, 17), 0.6, 1.4)
    if age > 45:  # degenerated discs
        discs *= rng.uniform(0.6, 0.9)
    c_h = _CERVICAL_HEIGHT * size * (1.0 + rng.normal(0, 0.03, 5))
    c_w = _CERVICAL_WIDTH * size * (1.0 + rng.normal(0, 0.03, 5))
    c_d = _CERVICAL_DISC * size * (1.0 + rng.normal(0, 0.08, 5))
    kyph = rng.uniform(20, 50)
    lord = rng.uniform(35, 60)
    lev = np.arange(17, dtype=float)
    sagittal = np.where(lev <= 11, kyph / 2 * np.cos(np.pi * lev / 11), -lord / 2 * np.cos(np.pi * (lev - 11) / 6))
    return _Dimensions(sex, age, size, heights, widths, discs, c_h, c_w, c_d, sagittal)


def _span(rng: np.random.Generator, cobb: float) -> tuple[int, int]:
    """Vertebrae from the apex up to the upper end vertebra and down to the lower one (larger curves are longer)."""
    extra = int(cobb > 45) + int(cobb > 70)
    return int(rng.integers(2, 4)) + extra, int(rng.integers(2, 4)) + extra


def _sample_curves(rng: np.random.Generator) -> tuple[str, list[DesignedCurve], float]:
    """The structural curves: single or double, Cobb 0-90 degrees, apex T6-L2, and their flexibilities.

    Returns:
        the curve type (``"single"`` or ``"double"``), the curves and the patient's flexibility parameter.
    """
    curve_type = "single" if rng.random() < 0.55 else "double"
    main = float(90.0 * rng.beta(1.5, 2.2))
    flex = float(rng.beta(2.0, 2.0))
    curves = _single_curve(rng, main) if curve_type == "single" else _double_curve(rng, main)
    for c in curves:
        lumbar_bonus = 0.1 if c.apex >= 11 else 0.0
        c.flexibility = float(np.clip((flex + rng.normal(0, 0.1) + lumbar_bonus) * (1.0 - 0.35 * c.cobb / 90.0), 0, 1))
    return curve_type, curves, flex


def _single_curve(rng: np.random.Generator, main: float) -> list[DesignedCurve]:
    """One curve of Cobb ``main``, apex T6..L2 (thoracic ones mostly convex to the right, lumbar ones to the left)."""
    apex = int(rng.integers(5, 14))  # T6..L2
    side = ("right" if rng.random() < 0.8 else "left") if apex <= 10 else ("left" if rng.random() < 0.65 else "right")
    up, down = _span(rng, main)
    upper, lower = max(1, apex - up), min(15, apex + down)
    return [DesignedCurve(apex, upper, lower, main, side, 0.0)]


def _double_curve(rng: np.random.Generator, main: float) -> list[DesignedCurve]:
    """A thoracic (apex T6..T10) and a thoracolumbar/lumbar (apex T12..L2) curve of opposite sides, one of Cobb
    ``main``, meeting at a junctional vertebra."""
    a1 = int(rng.integers(5, 10))  # T6..T10
    a2 = int(rng.integers(max(11, a1 + 3), 14))  # T12..L2
    second = float(np.clip(main * rng.uniform(0.55, 1.1), 0.0, 90.0))
    c1, c2 = (main, second) if rng.random() < 0.6 else (second, main)
    side1 = "right" if rng.random() < 0.85 else "left"
    side2 = "left" if side1 == "right" else "right"
    junction = int(np.clip(round((a1 + a2) / 2 + rng.integers(-1, 2)), a1 + 1, a2 - 1))
    up, _ = _span(rng, c1)
    _, down = _span(rng, c2)
    return [
        DesignedCurve(a1, max(1, a1 - up), junction, c1, side1, 0.0),
        DesignedCurve(a2, junction, min(15, a2 + down), c2, side2, 0.0),
    ]


def _delta_of(c: DesignedCurve) -> float:
    """Tilt change of a curve going up: > 0 bends the spine convex towards the image left = the patient's right."""
    return c.cobb if c.side == "right" else -c.cobb


def _tilt_transitions(
    rng: np.random.Generator, curves: list[DesignedCurve], s_c: np.ndarray, s_hi: np.ndarray
) -> tuple[float, list[_Transition]]:
    """Tilt transitions along the arc length, bottom to top: from the pelvis into the lowest curve (compensatory),
    the curves, and from the highest curve back towards upright (compensatory).

    Returns:
        the pelvic obliquity (degrees) and the transitions.
    """
    ordered = sorted(range(len(curves)), key=lambda k: -curves[k].lower)  # lowest curve first
    pelvic = float(rng.normal(0.0, 1.5))
    transitions: list[_Transition] = []
    low = curves[ordered[0]]
    bottom_len = s_c[low.lower]
    lam = float(rng.uniform(0.3, 0.65))
    d_low = _delta_of(low)
    if abs(d_low) > 1e-6:
        lam = min(lam, _STEP_CURVATURE_LIMIT * bottom_len / abs(d_low))
    tilt = pelvic
    target = -lam * d_low
    transitions.append(_Transition(0.0, bottom_len, target - tilt, 0.9, -1))
    tilt = target
    for k in ordered:
        c = curves[k]
        transitions.append(_Transition(s_c[c.lower], s_c[c.upper], _delta_of(c), c.flexibility, k))
        tilt += _delta_of(c)
    top = curves[ordered[-1]]
    top_len = s_hi[0] - s_c[top.upper]
    rho = float(rng.uniform(0.6, 1.0))
    if abs(tilt) > 1e-6:
        rho = min(rho, _STEP_CURVATURE_LIMIT * top_len / abs(tilt))
    transitions.append(_Transition(s_c[top.upper], s_hi[0], -rho * tilt + rng.normal(0, 1.0), 0.9, -1))
    return pelvic, transitions


def _bending(
    rng: np.random.Generator, transitions: list[_Transition], flex: float
) -> tuple[dict[str, float], dict[str, float], dict[str, np.ndarray]]:
    """Both bending views: per-transition multipliers, trunk lean and pelvis tilt (the coronal view has none).

    Returns:
        per view: the trunk lean (degrees), the pelvis tilt (degrees) and the multipliers of the transitions.
    """
    lean: dict[str, float] = {"coronal": 0.0}
    pelvis_b = {"coronal": 0.0}
    multipliers = {"coronal": np.ones(len(transitions))}
    for view, d in (("left_bending", 1.0), ("right_bending", -1.0)):
        pelvis_b[view] = d * float(rng.uniform(0.0, 3.0))
        m = _bending_multipliers(rng, transitions, d)
        target = d * float(rng.uniform(15.0, 35.0) * (0.4 + 0.6 * flex))
        lean[view] = _trunk_lean(m, transitions, d, target)
        multipliers[view] = m
    return lean, pelvis_b, multipliers


def _bending_multipliers(rng: np.random.Generator, transitions: list[_Transition], d: float) -> np.ndarray:
    """How much of each tilt change remains when bending to side ``d`` (1 left, -1 right): bending towards the
    convexity corrects a curve by its flexibility, bending towards the concavity increases it a little."""
    m = np.ones(len(transitions))
    for k, tr in enumerate(transitions):
        if tr.delta == 0:
            continue
        towards_convexity = np.sign(tr.delta) != np.sign(d)
        if towards_convexity:
            m[k] = 1.0 - tr.flexibility * rng.uniform(0.85, 1.15)
        else:
            m[k] = 1.0 + tr.flexibility * rng.uniform(0.1, 0.35)
    return m


def _trunk_lean(m: np.ndarray, transitions: list[_Transition], d: float, target: float) -> float:
    """The trunk lean (degrees) that makes the total trunk tilt plausible; limits the multipliers ``m`` in place.

    Every change bends the trunk towards the bending side. Keep the total trunk tilt (T1 relative to the pelvis)
    near ``target``: the compensatory curves give back first, a trunk lean carried by the mobile segments makes up
    the rest (at least a fifth of the target).
    """
    structural = np.array([tr.curve >= 0 for tr in transitions])
    deltas = np.array([tr.delta for tr in transitions])
    r_s = float(((m - 1.0) * deltas)[structural].sum())
    cap = max(1.3 * abs(target), 20.0)  # the trunk cannot bend further than this: it limits the correction
    if abs(r_s) > cap:
        m[structural] = 1.0 + (m[structural] - 1.0) * cap / abs(r_s)
        r_s = float(((m - 1.0) * deltas)[structural].sum())
    r_c = float(((m - 1.0) * deltas)[~structural].sum())
    extra = target - r_s - r_c
    if d * extra < 0.2 * abs(target):
        alpha = (0.8 * target - r_s) / r_c if abs(r_c) > 1e-6 else 0.0
        alpha = float(np.clip(alpha, 0.0, 1.0))
        m[~structural] = 1.0 + (m[~structural] - 1.0) * alpha
        extra = max(d * (target - r_s - alpha * r_c), 0.2 * abs(target)) * d
    return float(extra)


def _sample_body(rng: np.random.Generator, size: float, sex: str) -> BodyHabitus:
    """The build of the patient around the spine (the keyword arguments draw in their written order)."""
    return BodyHabitus(
        shoulder=float(rng.uniform(170, 205) * size * (1.08 if sex == "M" else 1.0)),
        chest=float(rng.uniform(130, 160) * size),
        waist=float(rng.uniform(110, 150) * size),
        hip=float(rng.uniform(150, 185) * size * (1.06 if sex == "F" else 1.0)),
        thickness=float(rng.uniform(170, 240) * size),
        rib_reach=float(rng.uniform(0.9, 1.08) * size),
        pelvis=float(rng.uniform(0.92, 1.08) * size * (1.05 if sex == "F" else 1.0)),
        shoulder_imbalance=float(rng.normal(0, 6.0)),
        gas=float(rng.beta(1.5, 2.5)),
        heart=float(rng.uniform(0.85, 1.15)),
        dome=float(rng.uniform(-0.5, 1.0)),
    )


def sample_patient(rng: np.random.Generator, index: int = 0) -> Patient:
    """Draw one synthetic patient: dimensions, curves (single or double, Cobb 0-90, apex T6-L2) and flexibility.

    Args:
        rng: the patient's own generator (derive it from the data set seed and the patient index).
        index: patient index; the patient id is ``P{index + 1:04d}``.
    """
    dim = _sample_dimensions(rng)
    s_lo, s_hi = _arc_layout(dim.heights, dim.discs)
    curve_type, curves, flex = _sample_curves(rng)
    pelvic, transitions = _tilt_transitions(rng, curves, (s_lo + s_hi) / 2, s_hi)
    lean, pelvis_b, multipliers = _bending(rng, transitions, flex)
    sacrum_height = float(75.0 * dim.size * rng.uniform(0.9, 1.1))
    body = _sample_body(rng, dim.size, dim.sex)
    return Patient(
        **vars(dim),
        index=index,
        patient_id=f"P{index + 1:04d}",
        sacrum_height=sacrum_height,
        curve_type=curve_type,
        curves=curves,
        transitions=transitions,
        pelvic_obliquity=pelvic,
        flexibility=flex,
        lean=lean,
        pelvis_tilt_bending=pelvis_b,
        jitter_angle=rng.normal(0.0, 0.6, 17),
        jitter_width=np.clip(1.0 + rng.normal(0.0, 0.02, 17), 0.94, 1.06),
        body=body,
        multipliers=multipliers,
    )


def _mobility(p: Patient, s: np.ndarray, s_hi: np.ndarray) -> np.ndarray:
    """Lateral-bending mobility along the spine: lumbar > thoracic (rib cage), reduced inside rigid curves."""
    w = np.where(s < s_hi[12], 1.0, 0.3)  # below the top of L1: lumbar
    for tr in p.transitions:
        if tr.curve >= 0:
            inside = (s >= tr.s0) & (s <= tr.s1)
            w = np.where(inside, w * (1.0 - 0.8 * (1.0 - tr.flexibility)), w)
    return w


def view_geometry(p: Patient, view: str) -> ViewGeometry:
    """The spine of ``p`` in ``view`` (mm): corners of T1-L5, cervical bodies, sacrum, centreline.

    Args:
        p: the patient.
        view: ``"coronal"``, ``"left_bending"`` (the patient bends to the left, the trunk moves to the image right)
            or ``"right_bending"``.

    Raises:
        ValueError: unknown view.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}.")
    s_lo, s_hi = _arc_layout(p.heights, p.discs)
    # cervical arc lengths above T1
    c_lo = np.zeros(5)
    c_hi = np.zeros(5)
    s = s_hi[0]
    for i in range(4, -1, -1):
        s += p.cervical_discs[i]
        c_lo[i] = s
        s += p.cervical_heights[i]
        c_hi[i] = s
    s_top = c_hi[0] + 5.0
    ds = 0.5
    grid = np.arange(0.0, s_top + ds, ds)

    pelvis = p.pelvic_obliquity + p.pelvis_tilt_bending[view]
    theta = np.full_like(grid, pelvis)
    mult = p.multipliers[view]
    for k, tr in enumerate(p.transitions):
        theta += mult[k] * tr.delta * _smoothstep((grid - tr.s0) / max(tr.s1 - tr.s0, 1e-6))
    if p.lean[view] != 0.0:
        w = _mobility(p, grid, s_hi)
        w = np.where(grid <= s_hi[0], w, 0.0)
        cum = np.cumsum(w)
        theta += p.lean[view] * cum / cum[-1]
    # the neck brings the head back towards upright
    t1 = float(np.interp(s_hi[0], grid, theta))
    theta += -t1 * 0.7 * _smoothstep((grid - s_hi[0]) / (c_hi[0] - s_hi[0]))

    th = np.deg2rad(theta)
    dx = np.sin(th)
    dy = -np.cos(th)
    x = np.concatenate([[0.0], np.cumsum((dx[1:] + dx[:-1]) / 2 * ds)])
    y = np.concatenate([[0.0], np.cumsum((dy[1:] + dy[:-1]) / 2 * ds)])
    xy = np.stack([x, y], axis=1)

    def at(sv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pts = np.stack([np.interp(sv, grid, x), np.interp(sv, grid, y)], axis=-1)
        ang = np.deg2rad(np.interp(sv, grid, theta))
        e = np.stack([np.cos(ang), np.sin(ang)], axis=-1)
        return pts, e

    def quads(lo: np.ndarray, hi: np.ndarray, widths: np.ndarray, jit: np.ndarray | None) -> np.ndarray:
        p_hi, e_hi = at(hi)
        p_lo, e_lo = at(lo)
        w_hi = widths * 0.97
        q = np.stack(
            [
                p_hi - (w_hi / 2)[:, None] * e_hi,
                p_hi + (w_hi / 2)[:, None] * e_hi,
                p_lo + (widths / 2)[:, None] * e_lo,
                p_lo - (widths / 2)[:, None] * e_lo,
            ],
            axis=1,
        )
        if jit is not None:
            c = q.mean(axis=1, keepdims=True)
            a = np.deg2rad(jit)[:, None]
            rel = q - c
            rot = np.stack(
                [rel[..., 0] * np.cos(a) - rel[..., 1] * np.sin(a), rel[..., 0] * np.sin(a) + rel[..., 1] * np.cos(a)],
                axis=-1,
            )
            q = c + rot
        return q

    corners = quads(s_lo, s_hi, p.widths * p.jitter_width, p.jitter_angle)
    cervical = quads(c_lo, c_hi, p.cervical_widths, None)
    centres = corners.mean(axis=1)
    tilt = np.rad2deg(np.arctan2(*(corners[:, 1] - corners[:, 0] + corners[:, 2] - corners[:, 3])[:, ::-1].T))

    # sacrum (as annotated): S1 endplate tapering to the tip, in the pelvis frame
    a = np.deg2rad(pelvis)
    lat = np.array([np.cos(a), np.sin(a)])
    down = np.array([-np.sin(a), np.cos(a)])
    w1 = p.widths[-1] * 1.02
    hs = p.sacrum_height
    prof = [(-0.5, 0.0), (-0.52, 0.12), (-0.47, 0.35), (-0.36, 0.62), (-0.22, 0.86), (-0.1, 1.0)]
    pts = [(u, v) for u, v in prof] + [(-u, v) for u, v in reversed(prof)]
    sacrum = np.array([u * w1 * lat + v * hs * down for u, v in pts])
    tip = 1.0 * hs * down

    # centreline: top of T1 down to the sacral tip
    s_pts = np.sort(np.concatenate([s_hi, s_lo, (s_hi + s_lo) / 2, [0.0]]))[::-1]
    cl, _ = at(s_pts)
    centreline = np.concatenate([cl, [0.5 * hs * down, tip]], axis=0)

    # axial rotation follows the lateral offset from the line S1 -> T1 (Nash-Moe: apical vertebrae rotate most)
    top_c = centres[0]
    axis = top_c / max(np.linalg.norm(top_c), 1e-6)
    offset = centres[:, 0] * (-axis[1]) + centres[:, 1] * axis[0]  # signed distance, + = image right of the axis
    axial = np.clip(-0.45 * offset, -35.0, 35.0)
    # projected endplate rings: deeper sagittal inclination shows the endplate as a flatter ellipse
    eps = 0.5 * 0.8 * p.widths * np.abs(np.sin(np.deg2rad(p.sagittal))) * 0.5 + 0.4
    return ViewGeometry(
        view=view,
        corners=corners,
        centres=centres,
        tilt=tilt,
        cervical=cervical,
        sacrum=sacrum,
        centreline=centreline,
        axial_rotation=axial,
        pelvis_angle=float(pelvis),
        s=grid,
        theta=theta,
        xy=xy,
        endplate_eps=eps,
    )


def endplate_angles(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper and lower endplate tilts (degrees, positive = right end lower) of (N, 4, 2) corners UL, UR, LR, LL."""
    c = np.asarray(corners, dtype=float)
    up = c[:, 1] - c[:, 0]
    lo = c[:, 2] - c[:, 3]
    return np.rad2deg(np.arctan2(up[:, 1], up[:, 0])), np.rad2deg(np.arctan2(lo[:, 1], lo[:, 0]))


def cobb_between(corners: np.ndarray, upper: int, lower: int) -> float:
    """Signed Cobb angle (degrees): lower endplate tilt of ``lower`` minus upper endplate tilt of ``upper``.

    The magnitude is the clinical Cobb angle between the two endplates; the sign says which way the curve bends
    (negative: convex towards the image left, i.e. the patient's right in radiological display).
    """
    up, lo = endplate_angles(corners)
    return float(lo[lower] - up[upper])


def _zigzag(t: np.ndarray, threshold: float) -> list[int]:
    """Turning points of a tilt sequence whose swings are at least ``threshold`` (hysteresis peak picking)."""
    n = len(t)
    pivots: list[int] = []
    trend = 0
    imax = imin = cand = 0
    for i in range(1, n):
        if trend == 0:
            if t[i] > t[imax]:
                imax = i
            if t[i] < t[imin]:
                imin = i
            if t[imax] - t[imin] >= threshold:
                if imin < imax:
                    pivots.append(imin)
                    trend, cand = 1, imax
                else:
                    pivots.append(imax)
                    trend, cand = -1, imin
        elif trend == 1:
            if t[i] > t[cand]:
                cand = i
            elif t[cand] - t[i] >= threshold:
                pivots.append(cand)
                trend, cand = -1, i
        else:
            if t[i] < t[cand]:
                cand = i
            elif t[i] - t[cand] >= threshold:
                pivots.append(cand)
                trend, cand = 1, i
    if trend != 0:
        pivots.append(cand)
    return pivots


def measure_curves(corners: np.ndarray, min_cobb: float = 5.0, names: tuple[str, ...] = VERTEBRAE) -> list[dict]:
    """Curves of a spine from its vertebra corners, top to bottom, as a reader measures them on a radiograph.

    Turning points of the vertebral tilt sequence delimit the curves (swings under ``min_cobb`` are ignored). Each
    curve's end vertebrae are the most tilted ones at its ends: the upper end vertebra maximises the tilt of its
    upper endplate, the lower one that of its lower endplate (in opposite directions); the Cobb angle is the angle
    between those two endplates. The apex is the vertebra farthest from the line joining the end vertebrae' centres.

    Args:
        corners: (N, 4, 2) corners UL, UR, LR, LL per vertebra in image coordinates [x, y] (y down).
        min_cobb: smallest Cobb angle (degrees) reported. Defaults to ``5.0``.
        names: vertebra names. Defaults to :data:`VERTEBRAE`.

    Returns:
        one dict per curve: ``cobb_deg``, ``upper_end``, ``lower_end``, ``apex`` (names), ``upper_end_index``,
        ``lower_end_index``, ``apex_index``, ``convexity`` (patient side, radiological display), ``convexity_image``
        (``"left"``/``"right"`` in the picture) and ``region``.
    """
    c = np.asarray(corners, dtype=float)
    n = len(c)
    up, lo = endplate_angles(c)
    t = (up + lo) / 2
    piv = _zigzag(t, min_cobb * 0.5)
    centres = c.mean(axis=1)
    curves = []
    for k, (a, b) in enumerate(zip(piv[:-1], piv[1:], strict=True)):
        g = 1.0 if t[b] > t[a] else -1.0
        # end vertebrae: the most tilted endplates between the neighbouring turning points (the pivots come from
        # mean body tilts, an endplate a level or two away can be tilted more)
        u_lo = piv[k - 1] + 1 if k > 0 else 0
        v_hi = piv[k + 2] - 1 if k + 2 < len(piv) else n - 1
        best = None
        for u in range(u_lo, b):
            for v in range(max(u + 1, a + 1), v_hi + 1):
                val = g * (lo[v] - up[u])
                if best is None or val > best[0]:
                    best = (val, u, v)
        if best is None or best[0] < min_cobb:
            continue
        cobb, u, v = best
        p0, p1 = centres[u], centres[v]
        d = p1 - p0
        norm = max(float(np.hypot(*d)), 1e-9)
        rel = centres[u : v + 1] - p0
        side = (d[0] * rel[:, 1] - d[1] * rel[:, 0]) / norm  # > 0: the apex lies to the image left of the line
        k = int(np.argmax(np.abs(side)))
        apex = u + k
        img = "left" if side[k] > 0 else "right"
        if curves and curves[-1]["lower_end_index"] > u:  # overlapping neighbours: keep the larger
            if curves[-1]["cobb_deg"] >= cobb:
                continue
            curves.pop()
        curves.append(
            {
                "cobb_deg": float(cobb),
                "upper_end": names[u],
                "lower_end": names[v],
                "apex": names[apex],
                "upper_end_index": int(u),
                "lower_end_index": int(v),
                "apex_index": int(apex),
                "convexity": "left" if img == "right" else "right",
                "convexity_image": img,
                "region": curve_region(apex) if names == VERTEBRAE else "",
            }
        )
    return curves


def spine_mask_polygons(corners: np.ndarray, sacrum: np.ndarray) -> list[np.ndarray]:
    """Polygons whose union is the annotated spinal column (§4.1): bodies, the discs between them and the sacrum.

    The first polygon is the whole outline (left side down, sacrum, right side up). The pieces follow: the 17
    bodies, the 16 discs between them, the L5/S1 disc and the sacrum; their union is the outline, and rasterising
    the pieces covers every vertebra even where an extreme curve would make the outline cross itself.
    """
    c = np.asarray(corners, dtype=float)
    left = c[:, [0, 3]].reshape(-1, 2)  # UL0, LL0, UL1, LL1, ...
    right = c[:, [1, 2]].reshape(-1, 2)  # UR0, LR0, ...
    outline = np.concatenate([left, sacrum, right[::-1]], axis=0)
    polys = [outline]
    polys.extend(c[i] for i in range(len(c)))
    for i in range(len(c) - 1):
        polys.append(np.array([c[i, 3], c[i, 2], c[i + 1, 1], c[i + 1, 0]]))
    polys.append(np.array([c[-1, 3], c[-1, 2], sacrum[-1], sacrum[0]]))
    polys.append(np.asarray(sacrum, dtype=float))
    return polys
