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

"""The smoothed centreline of a spinal-column mask and its tangent angle (the input of every Cobb measurement).

The paper produces the mask (§3.9: threshold, largest component, closing) and leaves "centerline extraction and Cobb
angle measurement" to the downstream step (§3.9, §5); this module is that step's first half. The method:

1. binarise, fill holes and drop specks smaller than ``min_component`` of the largest component;
2. find the column's principal axis (PCA of the foreground pixels, in millimetres where the spacing is known) so that a
   tilted column (bending views tilt the whole trunk) is sliced across, not along;
3. take the mid-point of the column in each slice across the principal axis, following the run of foreground nearest
   to the previous slice's (so holes, a second run or noise beside the column do not pull the line);
4. smooth with a Savitzky-Golay filter (cubic) over a window proportional to the column length (``smoothing``), so
   256 px and 3000 px images are smoothed alike, then re-centre on sections *normal to the current centreline* until
   it settles: the line is then parametrised by arc length, and curves turning far from the principal axis are
   centred correctly;
5. drop the rounded end caps (half a column width at each end), where sections no longer cross the full column, and
   differentiate the Savitzky-Golay fit for the tangent (cubic inside, quadratic near the ends, see ``_tangent``).

Geometry is done in physical units (``spacing`` = (row, column) mm per pixel as DICOM PixelSpacing), so anisotropic
pixels give true angles; without spacing everything is in pixels.

No maintained library extracts a smoothed, arc-length-parametrised medial line with end-cap handling from a band-like
mask: skeletons (skimage) give spurs and stop half a width short of the ends, so the steps are written here on top of
SciPy (``ndimage``, ``signal.savgol_filter``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.signal import savgol_filter

__all__ = [
    "Centreline",
    "MaskNotMeasurableError",
    "binarize_mask",
    "extract_centreline",
    "keep_large_components",
    "parse_spacing",
]


class MaskNotMeasurableError(ValueError):
    """A well-formed mask that carries no measurable spinal column (empty, a few pixels, a fragment, a loop).

    Raised with the reason in words; callers that measure many views (:func:`.study.measure_study`) report such a
    view as not measured and go on with the others, whereas a malformed mask (not 2-D, not numeric) or a bad argument
    stays a plain :class:`ValueError`.
    """


@dataclass
class Centreline:
    """A smoothed spinal centreline, top (head) to bottom (sacrum), evenly sampled in arc length.

    Attributes:
        points: (N, 2) ``(row, column)`` positions in pixels.
        arc_length: (N,) distance along the column from the top tip of the mask, in ``unit`` (the trimmed end cap is
            counted, so ``arc_length / length`` is the fraction of the whole column).
        tangent_deg: (N,) angle of the downward tangent from the image vertical, in degrees; positive when the column
            runs towards the image's right (increasing column) going down. An endplate perpendicular to the axis is
            tilted from the horizontal by the same angle.
        width: (N,) width of the column across the centreline, in ``unit``.
        length: length of the whole column, tip to tip, in ``unit``.
        spacing: ``(row, column)`` pixel spacing in mm, or ``None``.
        unit: ``"mm"`` when ``spacing`` is known, otherwise ``"px"``.
        wobble: root-mean-square distance of the mid-points of the sections normal to the line from the line, over
            the median width: how much the outline wobbles about the smoothed line (below 0.01 on the synthetic
            generator's columns, 0.02-0.1 on masks a network predicted on real films).
    """

    points: np.ndarray
    arc_length: np.ndarray
    tangent_deg: np.ndarray
    width: np.ndarray
    length: float
    spacing: tuple[float, float] | None
    unit: str
    wobble: float = 0.0

    @property
    def fraction(self) -> np.ndarray:
        """(N,) position of each point as a fraction of the column length (0 = top tip, 1 = bottom tip)."""
        return self.arc_length / self.length

    def index_at(self, fraction: float) -> int:
        """Index of the centreline point nearest to a fraction of the column length (clipped to the ends)."""
        return int(np.argmin(np.abs(self.fraction - fraction)))


def parse_spacing(spacing: float | tuple[float, float] | list[float] | None) -> tuple[float, float] | None:
    """Normalise a pixel spacing argument to ``(row, column)`` mm or ``None``.

    Args:
        spacing: ``None``, one number (isotropic), or a pair ``(row, column)`` as in DICOM PixelSpacing.

    Raises:
        ValueError: when the spacing is not one or two positive finite numbers.
    """
    if spacing is None:
        return None
    values = np.atleast_1d(np.asarray(spacing, dtype=float)).ravel()
    if values.size == 1:
        values = np.repeat(values, 2)
    if values.size != 2 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(
            f"spacing must be None, one positive number or (row, column) positive numbers; got {spacing!r}"
        )
    return float(values[0]), float(values[1])


def binarize_mask(mask: np.ndarray, min_component: float = 0.01) -> np.ndarray:
    """Boolean (H, W) column mask: nonzero (> 0.5) foreground, holes filled, specks removed.

    Args:
        mask: (H, W) array; values > 0.5 are the column (0/1, 0/255 and probabilities all work).
        min_component: connected components smaller than this fraction of the largest one are removed as noise.
            Defaults to ``0.01``.

    Raises:
        ValueError: when ``mask`` is not 2-D or not numeric; :class:`MaskNotMeasurableError` when it has no
            foreground.
    """
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(
            f"mask must be a 2-D (H, W) array, got shape {arr.shape}; squeeze channel dimensions or pass one slice."
        )
    if arr.dtype == bool:
        fg = arr.copy()
    elif np.issubdtype(arr.dtype, np.number):
        fg = arr > 0.5
    else:
        raise ValueError(f"mask must be numeric or boolean, got dtype {arr.dtype}.")
    if not fg.any():
        raise MaskNotMeasurableError(f"mask of shape {arr.shape} is empty: no pixel above 0.5, nothing to measure.")
    return keep_large_components(ndimage.binary_fill_holes(fg), min_component)


def keep_large_components(fg: np.ndarray, min_fraction: float) -> np.ndarray:
    """``fg`` (boolean, any rank) without its connected components smaller than ``min_fraction`` of the largest one.

    Components connect through edges and corners (full connectivity). The rule of :func:`binarize_mask` and of the
    inference post-processing (:class:`r2mf_monai.transforms.KeepLargeComponentsd`).
    """
    labels, n = ndimage.label(fg, structure=np.ones((3,) * fg.ndim, dtype=bool))
    if n < 2:
        return fg
    sizes = np.bincount(labels.ravel())[1:]
    return np.isin(labels, np.flatnonzero(sizes >= min_fraction * sizes.max()) + 1)


def _principal_axis(coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors along (pointing down the image) and across (pointing to the image's right) the principal axis."""
    step = max(1, len(coords) // 200_000)
    c = coords[::step] - coords[::step].mean(axis=0)
    _, vecs = np.linalg.eigh(c.T @ c)
    e1 = vecs[:, -1]
    if e1[0] < 0:
        e1 = -e1
    e2 = np.array([-e1[1], e1[0]])  # (1, 0) -> (0, 1): across = image right for a vertical column
    return e1, e2


def _runs(values: np.ndarray, gap: float) -> list[tuple[float, float]]:
    """Runs of sorted positions separated by more than ``gap``: [(start, end), ...]."""
    v = np.sort(values)
    breaks = np.flatnonzero(np.diff(v) > gap)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(v) - 1]])
    return [(float(v[s]), float(v[e])) for s, e in zip(starts, ends, strict=True)]


def _follow(runs: list[tuple[float, float]], ref: tuple[float, float]) -> tuple[float, float]:
    """The run overlapping ``ref`` most, else the run whose centre is nearest to ``ref``'s."""
    overlaps = [min(r[1], ref[1]) - max(r[0], ref[0]) for r in runs]
    best = int(np.argmax(overlaps))
    if overlaps[best] >= 0:
        return runs[best]
    c = 0.5 * (ref[0] + ref[1])
    return min(runs, key=lambda r: abs(0.5 * (r[0] + r[1]) - c))


def _slice_midpoints(coords: np.ndarray, e1: np.ndarray, e2: np.ndarray, h: float) -> tuple[np.ndarray, float]:
    """Mid-points of the column in slices of thickness ``h`` across the principal axis, top to bottom.

    Returns the (M, 2) physical mid-points and the median run length (the column's width across the axis).
    """
    u = coords @ e1
    v = coords @ e2
    bins = np.floor((u - u.min()) / h).astype(np.int64)
    order = np.argsort(bins, kind="stable")
    bins, v = bins[order], v[order]
    ids, first = np.unique(bins, return_index=True)
    groups = np.split(v, first[1:])
    run_sets = [_runs(g, 2.0 * h) for g in groups]
    # start tracking in the fullest slice of the middle half (the least likely to be noise), then walk both ways
    m = len(run_sets)
    lo, hi = m // 4, max(m // 4 + 1, (3 * m) // 4)
    start = lo + int(np.argmax([sum(e - s for s, e in r) for r in run_sets[lo:hi]]))
    chosen: list[tuple[float, float] | None] = [None] * m
    chosen[start] = max(run_sets[start], key=lambda r: r[1] - r[0])
    for rng in (range(start + 1, m), range(start - 1, -1, -1)):
        ref = chosen[start]
        for i in rng:
            chosen[i] = _follow(run_sets[i], ref)
            ref = chosen[i]
    mids = np.array([0.5 * (r[0] + r[1]) for r in chosen])
    widths = np.array([r[1] - r[0] + h for r in chosen])
    u_mid = u.min() + (ids + 0.5) * h
    pts = u_mid[:, None] * e1[None, :] + mids[:, None] * e2[None, :]
    return pts, float(np.median(widths))


def _resample(points: np.ndarray, step: float) -> tuple[np.ndarray, float]:
    """Resample a polyline at an even arc-length step; returns the points and the polyline's length."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    length = float(s[-1])
    n = max(int(round(length / step)) + 1, 2)
    t = np.linspace(0.0, length, n)
    return np.stack([np.interp(t, s, points[:, k]) for k in range(2)], axis=1), length


def _window(n: int, fraction: float, step: float, length: float, polyorder: int = 3) -> int:
    """Odd Savitzky-Golay window covering ``fraction`` of the column ``length`` (at least polyorder + 2 samples)."""
    w = int(round(fraction * length / step))
    w = max(w, polyorder + 2)
    w = min(w, n if n % 2 else n - 1)
    return w if w % 2 else w - 1


def _smooth(points: np.ndarray, window: int, deriv: int = 0, delta: float = 1.0, order: int = 3) -> np.ndarray:
    if window <= order + 1:
        return np.gradient(points, delta, axis=0) if deriv else points.copy()
    return savgol_filter(points, window, order, deriv=deriv, delta=delta, axis=0, mode="interp")


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-12)


def _robust_smooth(points: np.ndarray, window: int, h: float, passes: int = 3) -> np.ndarray:
    """Savitzky-Golay smoothing that ignores outlying points (robust re-fitting, as LOWESS does).

    A bite out of one edge of the mask, or a bump on it, moves the mid-points there by a sizeable part of the column
    width; a plain smoother spreads that over its whole window. Points farther from the fit than three robust standard
    deviations (and at least half a pixel) are replaced by interpolation between their inlying neighbours (replacing
    them by the fit itself would keep the bump the fit already has), and the fit is repeated.
    """
    fit = _smooth(points, window)
    idx = np.arange(len(points))
    for _ in range(passes):
        r = np.linalg.norm(points - fit, axis=1)
        out = r > max(3.0 * 1.4826 * float(np.median(r)), 0.5 * h)
        if not out.any() or out.all():
            break
        cleaned = points.copy()
        for k in range(points.shape[1]):
            cleaned[out, k] = np.interp(idx[out], idx[~out], points[~out, k])
        fit = _smooth(cleaned, window)
    return fit


def _tangent(pts: np.ndarray, window: int, delta: float) -> np.ndarray:
    """Savitzky-Golay derivative: cubic inside, blended into a quadratic over the last half window at each end.

    The derivative of a cubic least-squares fit evaluated at the edge of its window swings by degrees for sub-pixel
    noise; a quadratic's is several times steadier there and exact for circular arcs (tangent linear in arc length),
    while inside the cubic keeps the tangent's extremes at inflection points (where Cobb angles are read) unflattened.
    """
    d3 = _smooth(pts, window, deriv=1, delta=delta, order=3)
    d2 = _smooth(pts, window, deriv=1, delta=delta, order=2)
    k = min(window // 2, len(pts) // 2)
    w = np.ones(len(pts))
    if k > 0:
        ramp = np.arange(k) / k
        w[:k] = ramp
        w[len(pts) - k :] = np.minimum(w[len(pts) - k :], ramp[::-1])
    return w[:, None] * d3 + (1.0 - w[:, None]) * d2


def _normal_sections(
    soft: np.ndarray,
    pts: np.ndarray,
    tangents: np.ndarray,
    spacing: np.ndarray,
    half: float,
    step: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-centre each point on the foreground run crossing it along the normal; returns new points and widths.


    ``soft`` is the mask blurred by half a pixel: sampled bilinearly, its 0.5 crossings give sub-pixel run ends, so
    the centreline is free of the pixel staircase that would otherwise ripple the tangent by about a degree.
    """
    normals = np.stack([-tangents[:, 1], tangents[:, 0]], axis=1)
    t = np.arange(-half, half + step / 2, step)
    samples = pts[:, None, :] + t[None, :, None] * normals[:, None, :]  # (N, T, 2) physical
    pix = samples / spacing[None, None, :]
    vals = ndimage.map_coordinates(soft, [pix[..., 0].ravel(), pix[..., 1].ravel()], order=1, cval=0.0)
    vals = vals.reshape(len(pts), len(t)) - 0.5
    n, m = vals.shape
    centre = m // 2
    inside = vals > 0
    # the run containing the current point, found for all sections at once: bounded by the nearest outside samples
    pos = np.arange(m)
    outside = ~inside
    a = np.where(outside & (pos < centre), pos, -1).max(axis=1) + 1
    b = np.where(outside & (pos > centre), pos, m).min(axis=1) - 1
    hit = inside[:, centre]
    for i in np.flatnonzero(~hit & inside.any(axis=1)):  # rare: the point lies outside; take the nearest run
        cols = np.flatnonzero(inside[i])
        j = cols[np.argmin(np.abs(cols - centre))]
        a[i] = np.where(outside[i, :j])[0].max() + 1 if outside[i, :j].any() else 0
        b[i] = j + np.argmax(outside[i, j:]) - 1 if outside[i, j:].any() else m - 1
        hit[i] = True
    rows = np.arange(n)
    # sub-pixel crossing of 0.5 between the last outside sample and the first inside one, at both ends
    va, vb = vals[rows, a], vals[rows, b]
    va_out = vals[rows, np.maximum(a - 1, 0)]
    vb_out = vals[rows, np.minimum(b + 1, m - 1)]
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.where(a > 0, t[a] - step * va / (va - va_out), t[a])
        hi = np.where(b + 1 < m, t[b] + step * vb / (vb - vb_out), t[b])
        shifts = np.where(hit, 0.5 * (lo + hi), np.nan)
        widths = np.where(hit, hi - lo, np.nan)
    good = ~np.isnan(widths)
    if not good.any():
        return pts.copy(), np.zeros(len(pts))
    idx = np.arange(len(pts))
    shifts = np.interp(idx, np.flatnonzero(good), shifts[good])
    widths = np.interp(idx, np.flatnonzero(good), widths[good])
    return pts + shifts[:, None] * normals, widths


def _full_sections(widths: np.ndarray, ratio: float = 0.9, reach: float = 0.15) -> tuple[int, int]:
    """First and last index whose section is at least ``ratio`` of the median width over the nearest ``reach``."""
    n = len(widths)
    k = max(int(reach * n), 3)
    i0 = int(np.argmax(widths[:k] >= ratio * np.median(widths[:k])))
    i1 = n - 1 - int(np.argmax(widths[::-1][:k] >= ratio * np.median(widths[::-1][:k])))
    return (i0, i1) if i1 - i0 >= 8 else (0, n - 1)


def extract_centreline(
    mask: np.ndarray,
    spacing: float | tuple[float, float] | None = None,
    smoothing: float = 0.1,
    min_component: float = 0.01,
    refine: int = 3,
) -> Centreline:
    """Smoothed centreline of a spinal-column mask, parametrised by arc length (see the module docstring).

    Args:
        mask: (H, W) array, row 0 at the top (the head); values > 0.5 are the column.
        spacing: pixel spacing in mm, one number or ``(row, column)``; ``None`` measures in pixels.
        smoothing: Savitzky-Golay window as a fraction of the column length. Defaults to ``0.1`` (about two
            vertebrae: removes vertebra-scale raggedness, keeps curves, which span four or more vertebrae).
        min_component: components smaller than this fraction of the largest are ignored. Defaults to ``0.01``.
        refine: at most this many re-centring passes on sections normal to the centreline (they stop when no point
            moves by more than a tenth of a pixel; two usually suffice). Defaults to ``3``.

    Returns:
        the :class:`Centreline`.

    Raises:
        ValueError: for a mask that is not 2-D, is empty, or too small to carry a column, or a bad ``spacing`` or
            ``smoothing``.
    """
    if not 0 < smoothing < 1:
        raise ValueError(f"smoothing must be a fraction of the column length in (0, 1), got {smoothing}.")
    sp = parse_spacing(spacing)
    fg = binarize_mask(mask, min_component=min_component)
    spacing_arr = np.asarray(sp if sp is not None else (1.0, 1.0), dtype=float)
    unit = "px" if sp is None else "mm"
    h = float(spacing_arr.min())

    coords = np.argwhere(fg).astype(float) * spacing_arr[None, :]
    if len(coords) < 16:
        raise MaskNotMeasurableError(
            f"mask has only {len(coords)} foreground pixels: too small to measure a spinal column."
        )
    e1, e2 = _principal_axis(coords)
    raw, width0 = _slice_midpoints(coords, e1, e2, h)
    if len(raw) < 8:
        raise MaskNotMeasurableError(f"the column in the mask is only {len(raw)} pixels long: too short to measure.")

    # smooth the slice mid-points; measure the column's width on sections normal to them; trim half a width from each
    # end (the rounded or oblique end caps, where sections no longer cross the full column and their mid-points would
    # pull the line sideways); then re-centre on normal sections, each pass dropping end sections narrower than 90 %
    # of the width nearby. The trimmed lengths stay in the arc-length coordinate.
    pts, length = _resample(raw, h)
    pts = _robust_smooth(pts, _window(len(pts), smoothing, h, length), h)
    pts, length = _resample(pts, h)
    half = 1.5 * width0 + 2 * h
    soft = ndimage.gaussian_filter(fg.astype(np.float32), 0.5)
    win = _window(len(pts), smoothing, h, length)
    _, widths = _normal_sections(soft, pts, _unit(_smooth(pts, win, deriv=1, delta=h)), spacing_arr, half, h / 2)
    cap = min(0.5 * float(np.median(widths)), 0.1 * length)
    across = max(int(round(np.median(widths) / h)), 1)  # centreline points per column width
    s = np.linspace(0.0, length, len(pts))
    pts, _ = _resample(pts[(s >= cap) & (s <= length - cap)], h)
    top, bottom = cap + h / 2, cap + h / 2  # the end slices' mid-points lie half a pixel inside the mask's extent
    for _ in range(max(refine, 1)):
        win = _window(len(pts), smoothing, h, length)
        tang = _unit(_smooth(pts, win, deriv=1, delta=h))
        new, widths = _normal_sections(soft, pts, tang, spacing_arr, half=half, step=h / 2)
        shift = float(np.max(np.linalg.norm(new - pts, axis=1)))
        i0, i1 = _full_sections(widths)
        seg = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(new, axis=0), axis=1))])
        top, bottom = top + seg[i0], bottom + seg[-1] - seg[i1]
        pts, _ = _resample(_robust_smooth(new[i0 : i1 + 1], win, h), h)
        if shift < 0.1 * h and i0 == 0 and i1 == len(new) - 1:
            break
    win = _window(len(pts), smoothing, h, length)
    final = _smooth(pts, win)
    d = _tangent(pts, win, h)
    tangent = np.degrees(np.unwrap(np.arctan2(d[:, 1], d[:, 0])))
    mids, widths = _normal_sections(soft, final, _unit(d), spacing_arr, half=half, step=h / 2)
    wobble = float(np.sqrt(np.mean(np.sum((mids - final) ** 2, axis=1)))) / max(float(np.median(widths)), 1e-9)
    widths = ndimage.median_filter(widths, size=across | 1, mode="nearest")
    seg = np.linalg.norm(np.diff(final, axis=0), axis=1)
    arc = top + np.concatenate([[0.0], np.cumsum(seg)])
    total = float(arc[-1] + bottom)
    return Centreline(
        points=final / spacing_arr[None, :],
        arc_length=arc,
        tangent_deg=tangent,
        width=widths,
        length=total,
        spacing=sp,
        unit=unit,
        wobble=wobble,
    )
