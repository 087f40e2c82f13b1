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

"""Vertebra corners and endplate tilts read from the notches of a column outline built from vertebra corners.

A column mask made from four corners a vertebra (the AASCE / SpineWeb 16 annotation, ``r2mf-monai landmarks2mask``:
each body a quadrilateral, each disc the quadrilateral between two bodies) is a polygon whose vertices are those
corners: down each side of the column the outline runs corner to corner, body side, disc side, body side, ... The
Cobb angles of such data are *vertebra* tilts (the AASCE calculator, ``anglecal_gitrepo.m`` of the dataset: the line
from the middle of a vertebra's left side to the middle of its right side, i.e. the mean of its two endplates), and
those differ from the centreline's tangent by several degrees vertebra by vertebra (wedged and rotated vertebrae):
read from the exact corners, a smoothed centreline's tangent still misses the dataset's main angle by 6.8 degrees on
average on the 481 training films. So the corners are recovered from the outline:

1. the outline (``skimage.measure.find_contours``) is split into a left and a right chain where the centreline's
   extensions cross the two end caps, each end's direction taken over a column width (the end vertebra), not over
   the last few pixels, which a vertebra jutting out of line hooks;
2. each chain is approximated by a polyline with exactly ``2 n`` interior vertices (the corners) by dynamic
   programming: the cost of a segment is the sum of squared distances of the outline points it spans to its chord
   (so vertices land on the notches), plus a prior on its length along the centreline from typical vertebral body and
   disc heights (:mod:`.levels`), which places the corners where the outline runs straight;
   2b. given the film, each corner also gains where the film shows its endplate just inside the outline: a body's
   upper corner where the film brightens going down the column, its lower corner where it darkens
   (:data:`EDGE_WEIGHT`); where a disc's side runs on in line with the bodies' the outline cannot tell a corner's
   place along it, and the film can;
3. the two chains are refitted in turn with a prior pulling each corner towards the arc-length position of its
   partner on the other side (an endplate crosses the column), which keeps the chains from slipping by a vertebra,
   once from each side first, keeping the fit with the lower total cost;
4. each corner slides along the outline, between the samples the programme works on, to where its two segments fit
   the outline best (half the corners within 0.7 px of the annotation's on the AASCE training columns, 1.7 px before);
5. where a disc's side runs on in line with the bodies' (sharp curves, wedged vertebrae) there is no notch to read and
   one side's corners can slip by a body or a disc against the other's, which tilts the vertebra between by 15-60
   degrees: a single vertebra whose tilt departs from its neighbours' far more than the column's tilts do elsewhere
   takes its neighbours' tilt (:func:`mend_slipped_tilts`).

On the 481 AASCE training films (``r2mf-monai evaluate-landmarks DATASET OUT --skip_inference``) the calculator on
the tilts read so misses the dataset's main angle by 2.40 degrees on average (median 1.22; 2.59 without the film,
step 2b, and 2.87 without step 5 either). Step 2b was chosen on 249 of them (2.49 -> 2.24) and moved the other 232 from
2.70 to 2.57. What still fails, looked at film by film: runs of two to four slipped vertebrae in the lumbar spine,
where the discs are thick and the film's edges faint beside them; and a few annotations are broken (corners folded
over, a 156 degree angle on a 40 degree spine).

The dynamic programme is written here (no library fits a polyline with a fixed vertex count and per-segment priors;
``skimage.measure.approximate_polygon`` takes a tolerance, not a count), and so is its film term (a directional
derivative sampled beside each outline point, which only the programme's vertex order gives a sign to). On smooth
outlines (predicted masks, the synthetic generator's columns) there are no notches to read, and :mod:`.cobb` keeps the
centreline's tangent there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage import measure as skmeasure

from r2mf_monai.measure.centreline import Centreline
from r2mf_monai.measure.film_tilt import film_crop, film_gray
from r2mf_monai.measure.levels import BODY_HEIGHT_MM, DISC_HEIGHT_MM, VERTEBRAE

__all__ = [
    "EDGE_DEPTH",
    "EDGE_SIGMA",
    "EDGE_WEIGHT",
    "FIT_PX",
    "NOTCH_PX",
    "VertebraFit",
    "aasce_angles",
    "bottom_fullness",
    "detect_lowest_level",
    "fit_vertebrae",
    "mend_slipped_tilts",
    "vertebra_tilts",
]

NOTCH_PX = 0.6
"""Outline roughness (:attr:`VertebraFit.notch_px`) from which the outline is read as built from vertebra corners:
0.67-6.2 px on the AASCE training columns (the least on the narrowest films, columns 57-112 px wide), 0.27-0.51 px on
the synthetic generator's and 0.22 px on smooth bands: halfway between the two."""

FIT_PX = 0.6
"""Largest root-mean-square distance (pixels) of the outline from the fitted polyline (:attr:`VertebraFit.fit_px`)
for an outline read as built from vertebra corners: 0.29-0.49 px on the AASCE training columns (a rasterised polygon),
0.7-9 px on masks predicted at 128-256 px and upsampled to the film, whose staircase is as rough as the notches."""


@dataclass
class VertebraFit:
    """Vertebrae recovered from a column outline.

    Attributes:
        names: the vertebrae, top to bottom (e.g. ``"T1"`` ... ``"L5"``).
        corners: (n, 4, 2) ``(row, column)`` pixel positions: upper-left, upper-right, lower-left, lower-right (image
            sides), the AASCE corner order.
        notch_px: root-mean-square distance (pixels) of the outline, away from the end caps, from itself smoothed
            over a fifth of the column width: the notches of a corner-built outline against a smooth one's pixel
            staircase; see :data:`NOTCH_PX`.
        tilt_deg: (n,) tilt of each vertebra (the line joining the middles of its left and right sides) from the image
            horizontal, in the sign of :attr:`.centreline.Centreline.tangent_deg` (positive when the column axis
            perpendicular to it runs towards the image's right going down).
        fit_px: root-mean-square distance (pixels) of the outline from the fitted polyline; see :data:`FIT_PX`.
        outline_vertices: vertices of the outline simplified to within a pixel or a hundredth of the column width
            (``skimage.measure.approximate_polygon``): a column built from ``n`` vertebrae has at most ``4 n`` corners
            (37-62 for T1-L5 on the AASCE training columns), a staircase upsampled from a 128-256 px prediction one
            at every step (66-180).
        mended: the vertebrae whose tilt was taken for a slip of the fitted corners and replaced by the mean of their
            neighbours' (:func:`mend_slipped_tilts`); their corners are kept as fitted.
        film_edges: whether the film's endplate edges placed the corners with the outline (:func:`fit_vertebrae`
            given its film).
    """

    names: tuple[str, ...]
    corners: np.ndarray
    tilt_deg: np.ndarray
    notch_px: float = 0.0
    fit_px: float = 0.0
    outline_vertices: int = 0
    mended: tuple[str, ...] = ()
    film_edges: bool = False

    @property
    def mended_note(self) -> str | None:
        """The note naming the :attr:`mended` vertebrae (the measurement's and its figure's), ``None`` for none."""
        if not self.mended:
            return None
        return (
            f"tilt of {', '.join(self.mended)} taken from the neighbouring vertebrae: its fitted corners slipped along "
            "the outline"
        )

    @property
    def centres(self) -> np.ndarray:
        """(n, 2) ``(row, column)`` centre of each vertebra."""
        return self.corners.mean(axis=1)

    def aasce_angles(self, image_height: int) -> tuple[float, float, float]:
        """The three angles of the AASCE table from these vertebrae (see :func:`aasce_angles`)."""
        return aasce_angles(self.tilt_deg, self.corners, image_height)


SLIP_SPREAD = 2.0
"""A vertebra's tilt is taken for a slip (:func:`mend_slipped_tilts`) when it departs from its neighbours' by more than
this many robust standard deviations of such departures along the column, plus :data:`SLIP_MIN_DEG`."""

SLIP_MIN_DEG = 8.0
"""Smallest departure (degrees) from the neighbours' tilt that :func:`mend_slipped_tilts` replaces, whatever the
spread: on the exact corners of the 249 AASCE fine-tuning films 2 spreads plus 8 degrees move 7 films' main angle by
more than a degree (plus 5 degrees: 12 films)."""

SLIP_END_MIN_DEG = 15.0
""":data:`SLIP_MIN_DEG` of an end vertebra (T1, L5), which has one neighbour: the fine-tuning films' ground-truth
columns read the same with 8 to 15 (one end slip of 37 degrees mended), and the exact corners' end vertebrae depart
from their neighbours' by up to 25 degrees (a lumbosacral take-off), so the highest."""


def mend_slipped_tilts(
    tilt_deg: np.ndarray,
    spread: float = SLIP_SPREAD,
    min_deg: float = SLIP_MIN_DEG,
    end_min_deg: float = SLIP_END_MIN_DEG,
) -> tuple[np.ndarray, np.ndarray]:
    """Vertebra tilts with single slipped vertebrae replaced by their neighbours' tilt.

    Where a disc's side runs on in line with the bodies', one side's fitted corners can slip along the outline against
    the other's, and the vertebra between reads 15-60 degrees off; the calculator's largest tilt difference then takes
    it for an end vertebra. A real spine's tilts change smoothly from vertebra to vertebra, in proportion to its
    curves, so a vertebra is taken for a slip when its tilt departs from the mean of its two neighbours' by more than
    ``spread`` robust standard deviations (1.4826 times the median absolute value) of that departure along the column,
    plus ``min_deg``; an end vertebra (one neighbour) when it departs from its neighbour's by more than ``spread``
    robust standard deviations of the tilt change from vertebra to vertebra, plus ``end_min_deg``. Each is replaced by
    that mean (that neighbour's tilt), the largest departure first, until none is left; a vertebra whose neighbour
    departs further is left alone (the neighbour's slip is what moves it), and so is a run of slipped vertebrae.

    On the ground-truth columns of the 248 AASCE fine-tuning films whose vertebrae are read: main-curve MAE 2.78 ->
    2.39 degrees (median 1.27 -> 1.27); on their exact corners it moves 7 films' main angle by more than a degree
    (MAE 0.24 degrees). Smoothing all tilts instead (a 3-vertebra median: 4.58; a [0.1, 0.8, 0.1] kernel: 2.67)
    flattens real curves, and clamping the tilt to within 6-15 degrees of the column axis (2.57-2.67) moves 14-38
    films' exact corners. No robust-statistics library offers a neighbour test along a sequence, so it is written
    here.

    Args:
        tilt_deg: (n,) tilts in degrees, top to bottom.
        spread: robust standard deviations of the departure. Defaults to :data:`SLIP_SPREAD`.
        min_deg: degrees added to an inner vertebra's threshold. Defaults to :data:`SLIP_MIN_DEG`.
        end_min_deg: degrees added to an end vertebra's threshold. Defaults to :data:`SLIP_END_MIN_DEG`.

    Returns:
        ``(tilts, replaced)``: the mended (n,) tilts and the (n,) boolean mask of the replaced vertebrae.

    Raises:
        ValueError: for a negative ``spread``, ``min_deg`` or ``end_min_deg``.
    """
    if min(spread, min_deg, end_min_deg) < 0:
        raise ValueError(f"spread, min_deg and end_min_deg must be >= 0, got {spread}, {min_deg} and {end_min_deg}.")
    t = np.asarray(tilt_deg, dtype=float).copy()
    replaced = np.zeros(t.shape, bool)
    if t.size < 3:
        return t, replaced

    def departures(tilts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        neighbours = np.empty_like(tilts)
        neighbours[1:-1] = 0.5 * (tilts[:-2] + tilts[2:])
        neighbours[0], neighbours[-1] = tilts[1], tilts[-2]
        return tilts - neighbours, neighbours

    departure, _ = departures(t)
    # an inner vertebra's departure is a second difference of the tilts, an end vertebra's a first difference: each
    # is judged on the spread of its own kind along the column (taken once, from the tilts as read)
    threshold = np.full(t.shape, spread * 1.4826 * float(np.median(np.abs(departure[1:-1]))) + min_deg)
    threshold[[0, -1]] = spread * 1.4826 * float(np.median(np.abs(np.diff(t)))) + end_min_deg
    # a slip also pulls its neighbours' departures (by half its own, twice that for an end's): only a vertebra whose
    # departure is the largest of its own and its neighbours' is a candidate, the largest first, and the neighbours
    # are judged again once it is replaced
    for _ in range(t.size):
        departure, neighbours = departures(t)
        size = np.abs(departure)
        peak = np.ones(t.shape, bool)
        peak[1:] &= size[1:] >= size[:-1]
        peak[:-1] &= size[:-1] >= size[1:]
        candidates = (size > threshold) & peak & ~replaced
        if not candidates.any():
            break
        worst = int(np.argmax(np.where(candidates, size, -1.0)))
        t[worst] = neighbours[worst]
        replaced[worst] = True
    return t, replaced


def vertebra_tilts(corners: np.ndarray, spacing: tuple[float, float] | None = None) -> np.ndarray:
    """(n,) tilt in degrees of each vertebra: the middle of its left side to the middle of its right side.

    Args:
        corners: (n, 4, 2) ``(row, column)`` pixels in the order upper-left, upper-right, lower-left, lower-right.
        spacing: ``(row, column)`` mm per pixel, so anisotropic pixels give true angles; ``None`` for square pixels.
    """
    c = np.asarray(corners, dtype=float)
    sp = np.asarray(spacing if spacing is not None else (1.0, 1.0), dtype=float)
    d = ((c[:, 1] + c[:, 3]) - (c[:, 0] + c[:, 2])) * sp  # right middle minus left middle, (row, col)
    return -np.degrees(np.arctan2(d[:, 0], d[:, 1]))


def aasce_angles(tilt_deg: np.ndarray, corners: np.ndarray, image_height: int) -> tuple[float, float, float]:
    """The AASCE 2019 challenge's three Cobb angles from vertebra tilts, as its calculator computes them.

    A port of ``anglecal_gitrepo.m`` / ``angleCal_demo.m`` (boostnet_labeldata; Wu et al., MICCAI 2017): its columns
    are named PT, MT, TL/L, but they are read by position, not by Lenke region. The first is the largest angle between
    any two vertebrae (the main curve). On a C-shaped spine (every vertebra centre on one side of the line from the
    first to the last) the second is the angle between the top vertebra and the main curve's upper end vertebra and the
    third between its lower end vertebra and the bottom one. On an S-shaped spine the second is the largest angle
    between the upper end vertebra and any vertebra above it; the third is the largest angle between the lower end
    vertebra and any below it when the main curve lies in the upper half of the image, else the largest angle above
    the second curve's upper end.

    Args:
        tilt_deg: (n,) vertebra tilts in degrees (any common sign convention).
        corners: (n, 4, 2) ``(row, column)`` corners (for the shape test and the upper-half rule).
        image_height: rows of the image.

    Returns:
        ``(main, second, third)`` in degrees.
    """
    t = np.asarray(tilt_deg, dtype=float)
    c = np.asarray(corners, dtype=float)
    n = len(t)
    diff = np.abs(t[:, None] - t[None, :])
    upper, lower = np.unravel_index(int(np.argmax(diff)), diff.shape)
    upper, lower = (upper, lower) if upper <= lower else (lower, upper)
    main = float(diff[upper, lower])
    # endplate middles (upper then lower of each vertebra), in (x, y) as the calculator holds them
    mids = np.stack([(c[:, 0] + c[:, 1]) / 2, (c[:, 2] + c[:, 3]) / 2], axis=1).reshape(-1, 2)[:, ::-1]
    first, last = mids[0], mids[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = (mids[:-2, 1] - last[1]) / (first[1] - last[1]) - (mids[:-2, 0] - last[0]) / (first[0] - last[0])
    prod = np.outer(ll, ll)
    s_shaped = bool(np.nansum(prod) != np.nansum(np.abs(prod)))
    if not s_shaped:
        return main, float(diff[0, upper]), float(diff[n - 1, lower])
    second_end = int(np.argmax(diff[upper, : upper + 1]))
    second = float(diff[upper, second_end])
    if mids[2 * upper + 1, 1] + mids[2 * lower + 1, 1] < image_height:
        third = float(np.max(diff[lower, lower:]))
    else:
        third = float(np.max(diff[second_end, : second_end + 1]))
    return main, second, third


def _outline(fg: np.ndarray) -> np.ndarray:
    """The mask's outer outline, (m, 2) ``(row, column)``, open (the first point not repeated)."""
    contours = skmeasure.find_contours(np.pad(fg.astype(np.float32), 1), 0.5)
    c = max(contours, key=len) - 1.0
    return c[:-1] if np.allclose(c[0], c[-1]) else c


def _chains(c: np.ndarray, points: np.ndarray, reach: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The outline's left and right chains, top to bottom, split where the centreline's extensions meet the caps
    (each end's direction taken over ``reach`` points: ``(top, bottom)``)."""

    def crossing(end: np.ndarray, inner: np.ndarray) -> int:
        d = (end - inner) / max(np.linalg.norm(end - inner), 1e-9)
        rel = c - end
        perp = np.abs(rel[:, 0] * d[1] - rel[:, 1] * d[0])
        return int(np.argmin(np.where(rel @ d > 0, perp, np.inf)))

    top, bottom = crossing(points[0], points[reach[0]]), crossing(points[-1], points[-1 - reach[1]])
    n = len(c)
    a = c[np.r_[top : bottom + 1]] if top <= bottom else c[np.r_[top:n, 0 : bottom + 1]]
    b = (c[np.r_[bottom : top + 1]] if bottom <= top else c[np.r_[bottom:n, 0 : top + 1]])[::-1]
    return (a, b) if a[:, 1].mean() <= b[:, 1].mean() else (b, a)


class _Chain:
    """An outline chain resampled at ``step`` pixels, with each point's arc-length position along the centreline."""

    def __init__(self, chain: np.ndarray, points: np.ndarray, arc: np.ndarray, step: float) -> None:
        seg = np.linalg.norm(np.diff(chain, axis=0), axis=1)
        s = np.concatenate([[0.0], np.cumsum(seg)])
        t = np.linspace(0.0, s[-1], max(int(s[-1] / step) + 1, 3))
        self.q = np.stack([np.interp(t, s, chain[:, k]) for k in range(2)], axis=1)
        self._chain, self._s = chain, s
        self.step = step
        _, j = cKDTree(points).query(self.q)
        tangent = np.gradient(points, axis=0)
        tangent /= np.linalg.norm(tangent, axis=1, keepdims=True) + 1e-12
        self.u = arc[j] + np.einsum("ij,ij->i", self.q - points[j], tangent[j])
        self.axis = tangent[j]  # the column's downward direction at each sample
        inward = points[j] - self.q
        self.inward = inward / (np.linalg.norm(inward, axis=1, keepdims=True) + 1e-12)

    def chord_costs(self, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``cost[b, w]``: squared distances of points ``b - w .. b`` to their chord; ``start[b, w] = b - w``."""
        n = len(self.q)
        b = np.arange(n)[:, None]
        w = np.arange(width)[None, :]
        valid = (b - w >= 0) & (w > 0)
        a = np.maximum(b - w, 0)
        cost = _segment_costs(self.q, _running_sums(self.q), a, b)
        cost[~valid] = np.inf
        return cost, a


EDGE_WEIGHT = 1.0
"""Weight of the film's endplate edges in the corner fit (:func:`fit_vertebrae` with its film): a corner on the
strongest edges (at the film's 90th percentile or beyond) gains this much against the outline's squared chord distances
(pixels^2) and the length priors. Main-curve MAE on the ground-truth columns of the 249 AASCE fine-tuning films
(``EDGE_SIGMA`` 0.07 unless said): 0 -> 2.39 degrees, 0.5 -> 2.28 (sigma 0.05), 0.75 -> 2.24, **1.0 -> 2.15** (19 films
more than a degree better, 3 worse), 1.25 -> 2.15, 1.5 -> 2.18 (26 better, 8 worse); weight 4 at 0.05 made it
worse (2.96 on the first 80 films against 2.94)."""

EDGE_SIGMA = 0.07
"""Scale of the film's Gaussian derivative as a fraction of the median column width (7 px on a 100 px AASCE column):
averaged over the annotated corners, the film drops by about a standard deviation of its profile into a disc over a
tenth of the column width, and the corners lie a few pixels off the steepest point (0.02: 2.21 degrees with weight 1,
0.05: 2.21, **0.07: 2.15**, 0.1: 2.31)."""

EDGE_DEPTH = (0.1, 0.3)
"""Where the edge is read: from this much to that much of the column width inside the outline, clear of the body's
bright side wall and of the soft tissue beside it ((0.05, 0.45): 2.22 degrees, (0.15, 0.35): 2.22)."""


def _chain_edges(
    chains: Sequence[_Chain], image: np.ndarray, fg: np.ndarray, width: float, sigma: float, depth: tuple[float, float]
) -> list[np.ndarray]:
    """The film's endplate edges beside each chain sample, in [-1, 1]: the derivative of the Gaussian-smoothed film down
    the column's axis, averaged over ``depth`` (fractions of ``width``) inward from the outline, positive where bone
    begins below (a body's upper endplate) and negative where it ends (its lower one), scaled by its 90th percentile
    over both chains. Bone is taken to be what is brighter: the column's inside against a band just outside it, which
    also reads an inverted film (MONOCHROME1 shown raw) the right way round."""
    img = film_gray(image)
    crop, lo = film_crop(img, np.concatenate([c.q for c in chains]), depth[1] * width + 4 * sigma + 2)
    inside = fg[lo[0] : lo[0] + crop.shape[0], lo[1] : lo[1] + crop.shape[1]]
    ring = ndimage.binary_dilation(inside, iterations=max(1, int(0.2 * width))) & ~inside
    polarity = 1.0 if not ring.any() or crop[inside].mean() >= crop[ring].mean() else -1.0
    g_row = ndimage.gaussian_filter(crop, sigma, order=(1, 0))
    g_col = ndimage.gaussian_filter(crop, sigma, order=(0, 1))
    out = []
    depths = np.linspace(depth[0], depth[1], 5) * width
    for c in chains:
        acc = np.zeros(len(c.q))
        for t in depths:
            at = (c.q + t * c.inward - lo).T
            g_r = ndimage.map_coordinates(g_row, at, order=1, mode="nearest")
            g_c = ndimage.map_coordinates(g_col, at, order=1, mode="nearest")
            acc += g_r * c.axis[:, 0] + g_c * c.axis[:, 1]
        out.append(polarity * acc / len(depths))
    scale = float(np.percentile(np.abs(np.concatenate(out)), 90))
    if not scale > 0:  # a blank film: no edges
        return [np.zeros_like(e) for e in out]
    return [np.clip(e / scale, -1.0, 1.0) for e in out]


def _running_sums(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running sums of the points ``q`` and of their outer products, each with a leading zero."""
    s1 = np.concatenate([[[0.0, 0.0]], np.cumsum(q, axis=0)])
    s2 = np.concatenate([np.zeros((1, 2, 2)), np.cumsum(q[:, :, None] * q[:, None, :], axis=0)])
    return s1, s2


def _segment_costs(q: np.ndarray, sums: tuple[np.ndarray, np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sum of squared distances of the points ``q[a..b]`` (inclusive) to the chord ``q[a] q[b]``, for index arrays
    (``sums``: :func:`_running_sums` of ``q``)."""
    s1, s2 = sums
    cnt = (b - a + 1).astype(float)
    m1, m2, qa = s1[b + 1] - s1[a], s2[b + 1] - s2[a], q[a]
    d = q[b] - qa
    normal = np.stack([-d[..., 1], d[..., 0]], axis=-1) / (np.linalg.norm(d, axis=-1, keepdims=True) + 1e-9)
    scatter = (
        m2
        - qa[..., :, None] * m1[..., None, :]
        - m1[..., :, None] * qa[..., None, :]
        + cnt[..., None, None] * qa[..., :, None] * qa[..., None, :]
    )
    return np.einsum("...i,...ij,...j->...", normal, scatter, normal)


def _refine(chain: _Chain, idx: np.ndarray, sub: int = 4, passes: int = 2) -> np.ndarray:
    """The polyline's interior vertices moved to within a ``sub``-th of the sampling step of the outline's corners.

    The dynamic programme places vertices on samples ``step`` apart (a 50th of the column width, 3 px on a 150 px
    column), so a corner lands up to half a step from the notch and a vertebra's tilt moves by about a degree; here
    each vertex in turn, its neighbours held, slides along the outline resampled ``sub`` times finer to where its
    two segments lie closest to the outline (a local search of one step either way; the priors, which vary over
    vertebra heights, do not change over a step and are left out).

    Returns:
        (len(idx), 2) ``(row, column)`` vertex positions.
    """
    t = np.linspace(0.0, chain._s[-1], (len(chain.q) - 1) * sub + 1)
    fine = np.stack([np.interp(t, chain._s, chain._chain[:, k]) for k in range(2)], axis=1)
    f = np.asarray(idx, dtype=np.int64) * sub
    sums = _running_sums(fine)
    for _ in range(passes):
        for k in range(1, len(f) - 1):
            cand = np.arange(max(f[k] - sub, f[k - 1] + 1), min(f[k] + sub, f[k + 1] - 1) + 1)
            if len(cand) < 2:
                continue
            before = _segment_costs(fine, sums, np.full_like(cand, f[k - 1]), cand)
            cost = before + _segment_costs(fine, sums, cand, np.full_like(cand, f[k + 1]))
            f[k] = cand[int(np.argmin(cost))]
    return fine[f]


def _fit_chain(
    chain: _Chain,
    lengths: np.ndarray,
    costs: tuple[np.ndarray, np.ndarray],
    weight: float,
    partner_u: np.ndarray | None = None,
    sigma: float = 1.0,
    partner_weight: float = 1.0,
    edge: np.ndarray | None = None,
    edge_weight: float = 0.0,
) -> tuple[np.ndarray, float]:
    """Indices of the polyline's vertices (first and last = the chain's ends) minimising chord cost plus priors, and
    that minimum."""
    cost, start = costs
    n, width = cost.shape
    u, step = chain.u, chain.step
    along_chain = np.arange(width) * chain.step
    along_axis = u[:, None] - u[start]
    best = np.full(n, np.inf)
    best[0] = 0.0
    back = []
    rows = np.arange(n)
    k_last = len(lengths) - 1
    for k, length in enumerate(lengths):
        scale = 0.5 * length + 2 * step
        if k in (0, k_last):  # the half end caps: measured along the outline
            prior = weight * ((along_chain[None, :] - length) / scale) ** 2
        else:
            prior = weight * ((along_axis - length) / scale) ** 2
            prior[along_axis < 0.35 * length] = np.inf
        total = best[start] + cost + prior
        if partner_u is not None and k < k_last:
            total = total + partner_weight * (((u - partner_u[k]) / sigma) ** 2)[:, None]
        if edge is not None and edge_weight > 0 and k < k_last:
            # the vertex ending a cap or a disc is a body's upper corner (the film brightens going down), the one
            # ending a body its lower corner (the film darkens)
            sign = 1.0 if k % 2 == 0 else -1.0
            total = total - edge_weight * np.clip(sign * edge, 0.0, None)[:, None]
        arg = np.argmin(total, axis=1)
        best = total[rows, arg]
        back.append(start[rows, arg])
    idx = [n - 1]
    for k in range(k_last, -1, -1):
        idx.append(int(back[k][idx[-1]]))
    return np.asarray(idx[::-1]), float(best[n - 1])


def fit_vertebrae(
    fg: np.ndarray,
    centreline: Centreline,
    names: Sequence[str] = VERTEBRAE,
    step: float | None = None,
    weight: float = 10.0,
    rounds: int = 2,
    partner_weight: float = 10.0,
    partner_sigma: float = 0.3,
    both_orders: bool = True,
    image: np.ndarray | None = None,
    edge_weight: float = EDGE_WEIGHT,
    edge_sigma: float = EDGE_SIGMA,
    edge_depth: tuple[float, float] = EDGE_DEPTH,
) -> VertebraFit:
    """Fit the corners of the vertebrae ``names`` (top to bottom, the mask ending at the last one) to a column outline.

    Args:
        fg: (H, W) boolean column mask (one component).
        centreline: its :class:`.centreline.Centreline`.
        names: the vertebrae the mask spans, top to bottom. Defaults to T1-L5 (the AASCE annotation).
        step: outline sampling in pixels. Defaults to a 50th of the median column width (at least 1).
        weight: weight of the segment-length prior against the squared chord distances (pixels^2). Defaults to ``10``.
        rounds: left/right refits with the partner prior. Defaults to ``2``.
        partner_weight: weight of the partner prior (a corner's arc-length distance from its partner on the other
            side, over ``partner_sigma`` column widths, squared) against the squared chord distances. Defaults to
            ``10``. Only the ratio ``partner_weight / partner_sigma**2`` matters; main-curve MAE on the ground-truth
            columns of the 249 AASCE fine-tuning films for that ratio: 11 -> 3.60 degrees (the two sides slip by a
            body or a disc where a vertebra is wedged or the curve is sharp), 33 -> 3.10 (the default until 0.6.0),
            **111 -> 2.88**, 160 -> 2.82, 200 -> 2.86, 333 -> 3.03 (the pull flattens real endplate tilts). 111 is
            the plateau's weakest pull: at 160 a ±6 degree vertebra-by-vertebra wobble on an S-curve (the tests'
            corner spine) is read 5 degrees flat, at 111 1.6. A fourth-power pull instead of the square (3.0 / 0.15,
            10 / 0.2: 2.95, 2.98), a sigma from the local column width (2.86) and more refit rounds (4: no change)
            were tried and are not used.
        partner_sigma: the partner prior's scale, in median column widths. Defaults to ``0.3``.
        both_orders: run the refits from either side first and keep the fit with the lower total cost (the refits
            in turn are a coordinate descent that stops near where it starts). Defaults to ``True``: on the 249
            fine-tuning films 2.88 -> 2.78 degrees (13 films better, 10 worse; three slipped runs of vertebrae put
            right, 15-18 degrees each, one new 15 degree slip).
        image: the film the mask was drawn on, (H, W) (or an RGB picture of it) on the mask's grid; ``None`` fits the
            outline alone. With it, each corner also gains where the film shows an endplate's edge just inside the
            outline (step 2b of the module's description).
        edge_weight: see :data:`EDGE_WEIGHT`; ``0`` ignores the film.
        edge_sigma: see :data:`EDGE_SIGMA`.
        edge_depth: see :data:`EDGE_DEPTH`.

    Returns:
        the :class:`VertebraFit`.

    Raises:
        ValueError: for an unknown vertebra name, a negative ``partner_weight`` or ``edge_weight``, a
            ``partner_sigma`` or ``edge_sigma`` that is not positive, an ``edge_depth`` that is not ``0 <= near <
            far``, a film whose shape is not the mask's, or an outline too short for the vertebrae.
    """
    unknown = [v for v in names if v not in VERTEBRAE]
    if unknown or not names:
        raise ValueError(f"names must be vertebrae of {VERTEBRAE}, got {list(names)}.")
    if partner_weight < 0 or not partner_sigma > 0:
        raise ValueError(
            f"partner_weight must be >= 0 and partner_sigma > 0, got partner_weight={partner_weight}, "
            f"partner_sigma={partner_sigma}."
        )
    if edge_weight < 0 or not edge_sigma > 0 or not 0 <= edge_depth[0] < edge_depth[1]:
        raise ValueError(
            f"edge_weight must be >= 0, edge_sigma > 0 and edge_depth (near, far) with 0 <= near < far, got "
            f"edge_weight={edge_weight}, edge_sigma={edge_sigma}, edge_depth={edge_depth}."
        )
    use_film = image is not None and edge_weight > 0
    if use_film and np.shape(image)[:2] != np.shape(fg):
        raise ValueError(f"the film has shape {np.shape(image)} but its mask {np.shape(fg)}: they must share one grid.")
    points = centreline.points
    # everything in pixels: the arc length of the (pixel) centreline and the width converted back
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    to_px = float(arc[-1]) / max(float(centreline.arc_length[-1] - centreline.arc_length[0]), 1e-9)
    arc = arc + float(centreline.arc_length[0]) * to_px
    length = float(centreline.length) * to_px
    width = float(np.median(centreline.width)) * to_px
    step = max(width / 50.0, 1.0) if step is None else float(step)
    heights = [BODY_HEIGHT_MM[names[0]]]
    for a in names[1:]:
        heights += [DISC_HEIGHT_MM[names[names.index(a) - 1]], BODY_HEIGHT_MM[a]]
    lengths = np.asarray([0.0, *heights, 0.0]) / sum(heights) * length
    lengths[0], lengths[-1] = 0.5 * centreline.width[0] * to_px, 0.5 * centreline.width[-1] * to_px
    outline = _outline(fg)
    # the end directions over one column width (about the end vertebra's height): a disc jutting out of line near an
    # end hooks the centreline's last few pixels, and a cap split along the hook hands part of it to one side
    reach = (
        int(np.clip(np.searchsorted(arc, arc[0] + width), 1, len(arc) - 1)),
        int(np.clip(len(arc) - 1 - np.searchsorted(arc, arc[-1] - width), 1, len(arc) - 1)),
    )
    left, right = (_Chain(c, points, arc, step) for c in _chains(outline, points, reach))
    if min(len(left.q), len(right.q)) < 2 * len(lengths):
        raise ValueError(f"the outline is too short for {len(names)} vertebrae.")
    span = int(3 * max(lengths) / step + 2)
    cl, cr = left.chord_costs(min(span, len(left.q))), right.chord_costs(min(span, len(right.q)))
    sigma = partner_sigma * width
    chains = {"left": (left, cl), "right": (right, cr)}
    edges = {"left": None, "right": None}
    if use_film:
        el, er = _chain_edges((left, right), image, fg, width, max(0.7, edge_sigma * width), edge_depth)
        edges = {"left": el, "right": er}
    alone = {
        side: _fit_chain(chain, lengths, costs, weight, edge=edges[side], edge_weight=edge_weight)[0]
        for side, (chain, costs) in chains.items()
    }

    def refit(side: str, idx: dict[str, np.ndarray]) -> tuple[np.ndarray, float, np.ndarray]:
        """One side refitted against the other's corners: its indices, its minimum (with the pull), the partners'
        arc-length positions it was pulled to."""
        chain, costs = chains[side]
        partner = chains[other[side]][0].u[idx[other[side]]]
        found, energy = _fit_chain(
            chain, lengths, costs, weight, partner[1:], sigma, partner_weight, edges[side], edge_weight
        )
        return found, energy, partner

    # the refits in turn are a coordinate descent on both sides' costs plus the pull, which stops where it starts it:
    # run from either side first and keep the lower sum (the last refit's minimum plus the first side's own costs)
    other = {"left": "right", "right": "left"}
    orders = (("left", "right"), ("right", "left"))[: 2 if both_orders else 1] if rounds > 0 else ()
    best_total, fits = np.inf, alone
    for first, second in orders:
        idx = dict(alone)
        for _ in range(rounds):
            idx[first], e_first, partner = refit(first, idx)
            idx[second], e_second, _ = refit(second, idx)
        pull_first = partner_weight * np.sum(((chains[first][0].u[idx[first]] - partner)[1:-1] / sigma) ** 2)
        total = e_second + e_first - float(pull_first)
        if total < best_total:
            best_total, fits = total, idx
    il, ir = fits["left"], fits["right"]
    vl, vr = _refine(left, il)[1:-1], _refine(right, ir)[1:-1]
    # how far the outline lies from the fitted polyline (sum of the chosen segments' chord costs)
    sq, npts = 0.0, 0
    for idx, (cost, _) in ((il, cl), (ir, cr)):
        w = np.diff(idx)
        sq += float(np.sum(cost[idx[1:], np.minimum(w, cost.shape[1] - 1)]))
        npts += int(idx[-1] - idx[0] + 1)
    corners = np.stack([vl[0::2], vr[0::2], vl[1::2], vr[1::2]], axis=1)
    sigma_pts = 0.2 * width / step
    rough = []
    for c in (left, right):  # away from the end caps' corners
        inner = slice(int(width / step), max(len(c.q) - int(width / step), int(width / step) + 1))
        smooth = ndimage.gaussian_filter1d(c.q, sigma_pts, axis=0, mode="nearest")
        rough.append(np.mean(np.sum((c.q - smooth)[inner] ** 2, axis=1)))
    tilts, replaced = mend_slipped_tilts(vertebra_tilts(corners, centreline.spacing))
    return VertebraFit(
        names=tuple(names),
        corners=corners,
        tilt_deg=tilts,
        mended=tuple(n for n, r in zip(names, replaced, strict=True) if r),
        film_edges=use_film,
        notch_px=float(np.sqrt(np.mean(rough))),
        fit_px=float(np.sqrt(sq / max(npts, 1))),
        # a pixel: the rasterised polygon's own staircase; a hundredth of the width: well under a notch's depth
        outline_vertices=len(skmeasure.approximate_polygon(outline, tolerance=max(1.0, 0.01 * width))),
    )


def bottom_fullness(fg: np.ndarray, centreline: Centreline) -> float:
    """How square the column's bottom end is: its mean width over the last column width (leaving out the last
    quarter, where a tilted endplate cuts in) over its widest stretch in the next one and a quarter widths up.

    A mask that ends at L5 (the AASCE annotation) is cut by the L5 endplate and stays full width to the end (about 1
    on the 481 AASCE training columns); one that runs on to the sacrum tapers with it (about 0.6 on the synthetic
    generator's). See :func:`detect_lowest_level`.
    """
    points = centreline.points
    sp = np.asarray(centreline.spacing if centreline.spacing is not None else (1.0, 1.0), dtype=float)
    reach = min(5, len(points) - 1)
    d = (points[-1] - points[-1 - reach]) * sp
    d /= max(np.linalg.norm(d), 1e-12)
    width = float(np.median(centreline.width))
    rows, cols = np.nonzero(fg)
    v = ((rows - points[-1, 0]) * sp[0]) * d[0] + ((cols - points[-1, 1]) * sp[1]) * d[1]
    depth = (float(v.max()) - v) / width  # column widths above the bottom tip
    bins = np.bincount(np.floor(depth[depth < 2.25] * 4).astype(np.int64), minlength=9)[:9]
    return float(bins[1:4].mean() / max(bins[4:9].max(), 1))


def detect_lowest_level(fg: np.ndarray, centreline: Centreline, threshold: float = 0.75) -> str:
    """``"L5"`` when the column is cut square at its bottom (:func:`bottom_fullness` >= ``threshold``), else ``"S"``."""
    return "L5" if bottom_fullness(fg, centreline) >= threshold else "S"
