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

"""Rendering of one synthetic radiograph: attenuation map, detector physics, display processing, mask.

What makes spine radiographs hard to segment (paper §1 and §4.8, §4.11: rib overlap, shoulder girdle, bowel gas,
noise, exposure) is drawn in on purpose:

1. An attenuation map (line integrals, dimensionless) at a working resolution: a soft-tissue body of elliptic
   cross-section (neck, shoulders, chest, waist, hips), air in the lungs, trachea, stomach and bowel (negative),
   the heart shadow, breasts; bones as excess attenuation over soft tissue: vertebral bodies with cortical walls,
   endplate rings, pedicles, spinous and transverse processes (axially rotated with the curve), cervical spine,
   ribs (posterior and anterior arcs that follow their thoracic vertebrae), clavicles, scapulae, humeri, sacrum
   with foramina, iliac wings, pelvic brim, pubis, femora; a lead L/R marker.
2. Detector physics: system blur, collimation (shutters), scatter, quantum (Poisson) noise at full resolution,
   log conversion.
3. Processing as a DR workstation does: dynamic-range equalisation, unsharp masking, a VOI window with exposure,
   contrast and gamma variation; burnt-in text. Three quality levels (high, medium, low) set these parameters.

Bone is bright: the returned display image is MONOCHROME2-like, growing with attenuation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage
from skimage import draw

from r2mf_monai.constants import QUALITIES
from r2mf_monai.data.synthetic.anatomy import Patient, ViewGeometry, spine_mask_polygons

__all__ = [
    "QUALITIES",
    "Layout",
    "QualityParameters",
    "Rendered",
    "sample_layout",
    "sample_quality",
    "render_view",
    "render_mask",
    "pixel_landmarks",
]

_MU_SOFT = 0.02  # soft-tissue linear attenuation, 1/mm (water at an effective energy of about 60 keV)


@dataclass
class Layout:
    """Placement of a view's anatomy on the detector.

    Attributes:
        rows: image height in pixels.
        cols: image width in pixels.
        spacing: pixel spacing in mm (square pixels, patient plane).
        origin: image-mm position of the anatomy origin (S1 endplate centre); image mm run from the top-left corner.
        wrows: rows of the working grid the attenuation is drawn on.
        wcols: columns of the working grid.
    """

    rows: int
    cols: int
    spacing: float
    origin: np.ndarray
    wrows: int
    wcols: int

    @property
    def wspacing(self) -> tuple[float, float]:
        """(row, column) spacing of the working grid in mm."""
        return self.rows * self.spacing / self.wrows, self.cols * self.spacing / self.wcols

    def to_px(self, pts: np.ndarray) -> np.ndarray:
        """Anatomy mm -> full-resolution pixel [x, y] (pixel centres at integers)."""
        return (np.asarray(pts, dtype=float) + self.origin) / self.spacing - 0.5

    def to_wpx(self, pts: np.ndarray) -> np.ndarray:
        """Anatomy mm -> working-grid pixel [x, y]."""
        sy, sx = self.wspacing
        q = np.asarray(pts, dtype=float) + self.origin
        return np.stack([q[..., 0] / sx - 0.5, q[..., 1] / sy - 0.5], axis=-1)


@dataclass
class QualityParameters:
    """Acquisition and processing parameters of one view (paper §4.8: high, medium and low quality).

    Attributes:
        level: the quality level, one of :data:`QUALITIES`.
        photons: mean detected photons per pixel of the unattenuated beam (quantum noise).
        blur_mm: system blur (Gaussian sigma, mm).
        scatter: scatter-to-primary ratio.
        equalise: strength of the dynamic-range equalisation.
        unsharp: strength of the unsharp masking.
        contrast: slope of the display LUT.
        gamma: gamma of the display LUT.
        shift: exposure shift of the display LUT (fraction of the range).
    """

    level: str
    photons: float
    blur_mm: float
    scatter: float
    equalise: float
    unsharp: float
    contrast: float
    gamma: float
    shift: float


@dataclass
class Rendered:
    """One rendered view: display image (uint16, full range, bone bright), mask (uint8 0/255), annotations drawn."""

    image: np.ndarray
    mask: np.ndarray
    marker: str
    burnt_in: str


def sample_layout(rng: np.random.Generator, g: ViewGeometry, size: tuple[int, int], max_working: int = 1100) -> Layout:
    """Choose pixel spacing and placement so that T1..sacrum fills 60-80 % of the image height.

    Args:
        rng: generator of the view.
        g: the view geometry (mm).
        size: (rows, cols) of the image.
        max_working: largest working-grid height; bigger images are drawn smaller and upsampled (speed).
    """
    rows, cols = size
    pts = np.concatenate([g.corners.reshape(-1, 2), g.sacrum], axis=0)
    (xmin, ymin), (xmax, ymax) = pts.min(axis=0), pts.max(axis=0)
    frac = rng.uniform(0.6, 0.8)
    spacing = (ymax - ymin) / (frac * rows)
    margin = 30.0
    need = xmax - xmin + 2 * margin
    if need > 0.92 * cols * spacing:
        spacing = need / (0.92 * cols)
        frac = (ymax - ymin) / (rows * spacing)
    top = (1.0 - frac) * rng.uniform(0.25, 0.6)
    oy = top * rows * spacing - ymin
    slack = cols * spacing - need
    cx = cols * spacing / 2 + rng.uniform(-0.4, 0.4) * max(slack, 0.0)
    ox = cx - (xmin + xmax) / 2
    f = max(1.0, rows / max_working)
    return Layout(rows, cols, float(spacing), np.array([ox, oy]), int(round(rows / f)), int(round(cols / f)))


# Uniform ranges of the parameters of each quality level, in the order they are drawn (photons log-uniformly).
# A low-quality film is under- or overexposed, which sets its photons, gamma and exposure shift (sample_quality).
_QUALITY_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "high": {"photons": (1e5, 4e5), "blur_mm": (0.15, 0.4), "scatter": (0.1, 0.3), "equalise": (0.45, 0.7),
             "unsharp": (0.4, 0.9), "contrast": (0.95, 1.05), "gamma": (0.85, 1.15), "shift": (-0.03, 0.03)},
    "medium": {"photons": (4e3, 2e4), "blur_mm": (0.6, 1.2), "scatter": (0.3, 0.6), "equalise": (0.3, 0.6),
               "unsharp": (0.2, 0.6), "contrast": (0.7, 0.88), "gamma": (0.75, 1.3), "shift": (-0.08, 0.08)},
    "low": {"photons": (300.0, 1500.0), "blur_mm": (0.9, 2.0), "scatter": (0.4, 0.8), "equalise": (0.15, 0.45),
            "unsharp": (0.0, 0.3), "contrast": (0.55, 0.75)},
}  # fmt: skip


def sample_quality(rng: np.random.Generator, quality: str) -> QualityParameters:
    """Acquisition and processing parameters of a quality level (paper §4.8: high, medium, low).

    Raises:
        ValueError: unknown quality.
    """
    if quality not in _QUALITY_RANGES:
        raise ValueError(f"quality must be one of {QUALITIES}, got {quality!r}.")
    u = rng.uniform
    over = quality == "low" and rng.random() < 0.5  # an overexposed low-quality film
    ranges = _QUALITY_RANGES[quality]
    lo, hi = ranges["photons"]
    photons = float(np.exp(u(np.log(lo), np.log(hi)))) * (3.0 if over else 1.0)
    drawn = {name: u(*r) for name, r in ranges.items() if name != "photons"}
    if quality == "low":
        drawn["gamma"] = u(1.0, 1.5) if over else u(0.75, 1.1)
        drawn["shift"] = -u(0.06, 0.16) if over else u(0.02, 0.1)
    return QualityParameters(level=quality, photons=photons, **drawn)


# ---------------------------------------------------------------------------------------------------------------
# small raster helpers (skimage.draw fills polygons; these add values and build bands around polylines)


def _resize(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float field with pixel areas aligned (PIL)."""
    if a.shape == tuple(shape):
        return a
    im = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), mode="F")
    return np.asarray(im.resize((shape[1], shape[0]), Image.Resampling.BILINEAR), dtype=np.float32)


def _smooth(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing; large sigmas run on a block-averaged copy (same result to the eye, much faster)."""
    if sigma < 0.3:
        return a
    k = int(sigma // 3)
    if k <= 1:
        return ndimage.gaussian_filter(a, sigma, mode="nearest")
    h, w = a.shape
    ph, pw = (-h) % k, (-w) % k
    b = np.pad(a, ((0, ph), (0, pw)), mode="edge")
    b = b.reshape(b.shape[0] // k, k, b.shape[1] // k, k).mean(axis=(1, 3))
    b = ndimage.gaussian_filter(b, sigma / k, mode="nearest")
    b = _resize(b, (b.shape[0] * k, b.shape[1] * k))
    return b[:h, :w]


def _fill(canvas: np.ndarray, poly: np.ndarray, value: float) -> None:
    """Add ``value`` inside a polygon given as [x, y] pixel points (Pillow's scanline fill: fast for big shapes)."""
    poly = np.asarray(poly, dtype=float)
    x0, y0 = np.floor(poly.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(poly.max(axis=0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, canvas.shape[1]), min(y1, canvas.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    im = Image.new("L", (x1 - x0, y1 - y0), 0)
    # Pillow puts pixel centres at +0.5: shift so that centres sit at integer coordinates as everywhere else here
    ImageDraw.Draw(im).polygon((poly - [x0 - 0.5, y0 - 0.5]).ravel().tolist(), fill=1)
    canvas[y0:y1, x0:x1] += value * np.asarray(im, dtype=np.float32)


def _band(line: np.ndarray, half_width: float | np.ndarray) -> np.ndarray:
    """Polygon of a band of the given half width around a polyline ([x, y] points)."""
    p = np.asarray(line, dtype=float)
    d = np.gradient(p, axis=0)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
    n = np.stack([-d[:, 1], d[:, 0]], axis=1)
    hw = np.broadcast_to(np.asarray(half_width, dtype=float), (len(p),))[:, None]
    return np.concatenate([p + n * hw, (p - n * hw)[::-1]], axis=0)


def _bone_band(canvas: np.ndarray, line: np.ndarray, half_width: float | np.ndarray, value: float) -> None:
    """A tubular bone seen from the side: bright cortical edges, lighter medulla."""
    hw = np.asarray(half_width, dtype=float)
    _fill(canvas, _band(line, hw), value)
    _fill(canvas, _band(line, hw * 0.55), -0.4 * value)


def _ellipse(canvas: np.ndarray, centre: np.ndarray, radii: tuple[float, float], value: float, angle: float = 0.0):
    """Add ``value`` inside an ellipse (centre [x, y], radii (rx, ry) in px, angle in radians)."""
    rx, ry = max(radii[0], 0.5), max(radii[1], 0.5)
    rr, cc = draw.ellipse(centre[1], centre[0], ry, rx, shape=canvas.shape, rotation=angle)
    canvas[rr, cc] += value


def _frame(angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Lateral (image right) and upward unit vectors of a local frame tilted by ``angle_deg``."""
    a = np.deg2rad(angle_deg)
    return np.array([np.cos(a), np.sin(a)]), np.array([np.sin(a), -np.cos(a)])


def _text_mask(text: str, height_px: int) -> np.ndarray:
    """A float mask (0..1) of ``text`` rendered with Pillow's bundled font."""
    height_px = max(int(height_px), 6)
    font = ImageFont.load_default(size=height_px)
    left, top, right, bottom = font.getbbox(text)
    im = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(im).text((2 - left, 2 - top), text, fill=255, font=font)
    return np.asarray(im, dtype=np.float32) / 255.0


# ---------------------------------------------------------------------------------------------------------------
# vertebrae


def _vertebra(canvas, quad, shift, eps_px, kind, amp, texture, rng_tp) -> None:
    """Draw one vertebra (working px) in the local frame of its four corners.

    ``u`` runs from -1 (left wall) to 1 (right wall), ``v`` from -1 (upper endplate) to 1 (lower endplate); both come
    from ratios of distances to the four sides, so the body fills exactly the annotated quadrilateral.
    """
    ul, ur, lr, ll = quad
    w = 0.5 * (np.linalg.norm(ur - ul) + np.linalg.norm(lr - ll))
    h = 0.5 * (np.linalg.norm(ll - ul) + np.linalg.norm(lr - ur))
    if w < 2 or h < 1:
        return
    c = quad.mean(axis=0)
    e = (ur - ul + lr - ll) / max(np.linalg.norm(ur - ul + lr - ll), 1e-9)
    up = (ul + ur - ll - lr) / max(np.linalg.norm(ul + ur - ll - lr), 1e-9)
    reach = {"thoracic": 1.55, "lumbar": 2.0, "cervical": 1.45}[kind]
    ext = np.array([c + s1 * e * w / 2 * reach + s2 * up * h * 0.95 for s1 in (-1, 1) for s2 in (-1, 1.6)])
    x0, y0 = np.floor(ext.min(axis=0)).astype(int)
    x1, y1 = np.ceil(ext.max(axis=0)).astype(int) + 1
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, canvas.shape[1]), min(y1, canvas.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    xs = np.arange(x0, x1, dtype=np.float32)[None, :]
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]

    def dist(a, b):  # signed distance to the line a->b, positive to the right of the direction (image coords)
        d = (b - a) / max(np.linalg.norm(b - a), 1e-9)
        return (xs - a[0]) * (-d[1]) + (ys - a[1]) * d[0]

    d_top = -dist(ul, ur)
    d_bot = dist(ll, lr)
    d_left = dist(ul, ll)
    d_right = -dist(ur, lr)
    v = 2.0 * d_top / np.where(np.abs(d_top + d_bot) < 1e-3, 1e-3, d_top + d_bot) - 1.0
    u = 2.0 * d_left / np.where(np.abs(d_left + d_right) < 1e-3, 1e-3, d_left + d_right) - 1.0
    hw, hh = w / 2, h / 2
    cw = max(0.9, 0.045 * w)  # cortical thickness in px
    waist = 0.07
    edge = 1.0 - waist * (1.0 - np.clip(v, -1, 1) ** 2)
    in_u = np.clip((edge - np.abs(u)) * hw + 0.5, 0, 1)
    in_v = np.clip((1.0 - np.abs(v)) * hh + 0.5, 0, 1)
    inside = in_u * in_v
    prof = np.sqrt(np.clip(1.0 - 0.75 * (u / edge) ** 2, 0, 1))
    tex = texture[y0:y1, x0:x1]
    out = amp * inside * (0.45 * prof * (1.0 + tex))
    # lateral cortical walls (seen tangentially)
    out += amp * 0.45 * np.exp(-(((np.abs(u) - edge) * hw / cw) ** 2)) * in_v
    # endplate rings: two arcs of the projected ellipse at each end
    ev = np.clip(eps_px / hh, 0.02, 0.35)
    root = np.sqrt(np.clip(1.0 - (u / edge) ** 2, 0, 1))
    ring = np.zeros_like(u)
    for sgn in (-1.0, 1.0):
        a1 = sgn * (1.0 - ev * (1.0 - root))
        a2 = sgn * (1.0 - ev * (1.0 + root))
        ring += np.exp(-(((v - a1) * hh / cw) ** 2)) + 0.55 * np.exp(-(((v - a2) * hh / cw) ** 2))
    out += amp * 0.5 * ring * in_u
    if kind != "cervical":
        # pedicles: oval rings in the upper half, shifted towards the concavity by the axial rotation
        ru, rv = (0.16, 0.26) if kind == "thoracic" else (0.15, 0.3)
        for side in (-1.0, 1.0):
            pu = side * 0.6 + shift
            if abs(pu) > 0.92:
                continue
            r = np.sqrt(((u - pu) / ru) ** 2 + ((v + 0.4) / rv) ** 2)
            thick = max(0.8, cw * 1.2) / (min(ru * hw, rv * hh) + 1e-6)
            out += amp * (0.45 * np.exp(-(((r - 1.0) / thick) ** 2)) + 0.06 * np.clip((1.0 - r) * 4, 0, 1))
        # spinous process: a vertical teardrop, low in the thoracic spine (it points down over the disc)
        sv, sr = (0.65, 0.42) if kind == "thoracic" else (0.3, 0.36)
        su = 1.6 * shift
        r = np.sqrt(((u - su) / (0.085 + 0.03 * (v > sv))) ** 2 + ((v - sv) / sr) ** 2)
        out += amp * (0.28 * np.clip((1.0 - r) * 3, 0, 1) + 0.25 * np.exp(-(((r - 1.0) / 0.25) ** 2)))
        # transverse processes
        if kind == "thoracic":
            tip, vc, half = 1.45, -0.35 - 0.3 * np.clip(np.abs(u) - 0.9, 0, None), 0.2
        else:
            du = np.clip(np.abs(u) - 0.85, 0, None)
            length = rng_tp - 0.85
            vc = -0.1 - 0.1 * du
            half = 0.26 * np.sqrt(np.clip(1.0 - (du / length) ** 2, 0, 1)) * (1.0 - 0.3 * np.clip(du / length, 0, 1))
            tip = rng_tp
        band = np.clip((half - np.abs(v - vc)) * hh + 0.5, 0, 1) * np.clip((tip - np.abs(u)) * hw * 0.5 + 0.5, 0, 1)
        band *= np.clip((np.abs(u) - 0.85) * hw + 0.5, 0, 1)
        out += amp * (0.34 if kind == "lumbar" else 0.42) * band
    else:
        # articular pillars lateral to the cervical bodies
        band = np.clip((1.2 - np.abs(v)) * hh + 0.5, 0, 1) * np.clip((1.4 - np.abs(u)) * hw + 0.5, 0, 1)
        band *= np.clip((np.abs(u) - 1.0) * hw + 0.5, 0, 1)
        out += amp * 0.35 * band
    canvas[y0:y1, x0:x1] += out


# ---------------------------------------------------------------------------------------------------------------
# the rest of the body


def _spine_x_at(g: ViewGeometry, y: np.ndarray) -> np.ndarray:
    """x of the spinal axis (mm) at heights ``y`` (mm), constant beyond its ends."""
    order = np.argsort(g.xy[:, 1])
    return np.interp(y, g.xy[order, 1], g.xy[order, 0])


def _rib_paths(p: Patient, g: ViewGeometry) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """Posterior and anterior arcs of the 24 ribs in mm: (rib index, side, posterior polyline, anterior polyline)."""
    reach = np.array([60, 92, 106, 116, 122, 127, 130, 131, 129, 122, 100, 72], dtype=float) * p.body.rib_reach
    ends = np.array([2.35, 2.4, 2.4, 2.4, 2.4, 2.35, 2.3, 2.2, 2.1, 1.95, 1.7, 1.35])
    slope = np.tan(np.deg2rad(28.0))
    out = []
    for i in range(12):
        c = g.centres[i]
        e, upv = _frame(0.8 * g.tilt[i])
        w = p.widths[i]
        h = p.heights[i]
        depth = 0.72 * reach[i]
        for side in (-1, 1):
            head = c + side * 0.36 * w * e + 0.3 * h * upv

            def pts(phis, head=head, side=side, i=i, depth=depth, e=e, upv=upv, phi0=0.1):
                lat = reach[i] * (np.sin(phis) - np.sin(phi0))
                upc = -depth * slope * (np.cos(phi0) - np.cos(phis)) + 0.1 * reach[i] * np.sin(np.clip(phis, 0, np.pi))
                return head + side * lat[:, None] * e + upc[:, None] * upv

            post = pts(np.linspace(0.1, min(np.pi / 2 + 0.12, ends[i]), 22))
            ant = pts(np.linspace(np.pi / 2 - 0.12, ends[i], 18)) if ends[i] > np.pi / 2 + 0.1 else None
            out.append((i, side, post, ant))
    return out


def _segment_distance(X: np.ndarray, Y: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance (mm) of grid points (broadcast X row, Y column) to the segment a-b."""
    d = b - a
    t = np.clip(((X - a[0]) * d[0] + (Y - a[1]) * d[1]) / max(float(d @ d), 1e-9), 0.0, 1.0)
    return np.sqrt((X - a[0] - t * d[0]) ** 2 + (Y - a[1] - t * d[1]) ** 2)


def _chaikin(points: np.ndarray, iterations: int = 3, closed: bool = True) -> np.ndarray:
    """Corner cutting (Chaikin): turns a control polygon into a smooth outline."""
    p = np.asarray(points, dtype=float)
    for _ in range(iterations):
        q = np.roll(p, -1, axis=0) if closed else p[1:]
        a = p if closed else p[:-1]
        new = np.empty((2 * len(a), 2))
        new[0::2] = 0.75 * a + 0.25 * q
        new[1::2] = 0.25 * a + 0.75 * q
        p = new if closed else np.concatenate([p[:1], new, p[-1:]], axis=0)
    return p


def _bezier(p0, p1, p2, n=16) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


# ---------------------------------------------------------------------------------------------------------------
# render_view, section by section. The sections draw from the view's generator in the order render_view calls
# them, and each keeps its own draws in their order: the same seed gives the same image.


@dataclass
class _Scene:
    """What the sections of one view's rendering share: the working grid and key landmarks (anatomy mm, y down).

    Attributes:
        layout: pixel geometry of the view.
        wh, ww: rows and columns of the working grid; ``sy``, ``sx`` its spacing (mm); ``sw`` their mean.
        Y, X: anatomy-mm height of each working row (column vector) and x of each working column (row vector).
        pk: size factor of the pelvis; ``pel_e``, ``pel_down`` its lateral and downward unit vectors.
        y_t1, y_t6, y_t10, y_l3: heights of those vertebral centres; ``y_neck`` that of C5.
        chest, shoulder: half widths of the body (the chest covers the ribs, the shoulders the chest).
        sh_base, sh_e, sh_up: origin (T1's centre), lateral and upward unit vectors of the shoulder girdle.
    """

    layout: Layout
    wh: int
    ww: int
    sy: float
    sx: float
    sw: float
    Y: np.ndarray
    X: np.ndarray
    pk: float
    pel_e: np.ndarray
    pel_down: np.ndarray
    y_t1: float
    y_t6: float
    y_t10: float
    y_l3: float
    y_neck: float
    chest: float
    shoulder: float
    sh_base: np.ndarray
    sh_e: np.ndarray
    sh_up: np.ndarray

    @property
    def px_per_mm(self) -> float:
        """Working pixels per mm."""
        return 1.0 / self.sw

    @property
    def ssz(self) -> float:
        """Size factor of the shoulder girdle."""
        return self.shoulder / 185.0

    @property
    def y_hip(self) -> float:
        """Height of the hip joints."""
        return self.pel(0, 105)[1]

    @property
    def half_shape(self) -> tuple[int, int]:
        """Rows and columns of the half-resolution grid that air and organs are drawn on."""
        return max(self.wh // 2, 8), max(self.ww // 2, 8)

    @property
    def half_scale(self) -> np.ndarray:
        """Half-grid pixels per working pixel, [x, y]."""
        hh_, hw_ = self.half_shape
        return np.array([hw_ / self.ww, hh_ / self.wh])

    @property
    def hs(self) -> float:
        """mm per half-grid pixel."""
        return self.sw / self.half_scale.mean()

    def to(self, pts: np.ndarray) -> np.ndarray:
        """Anatomy mm -> working-grid pixel [x, y]."""
        return self.layout.to_wpx(pts)

    def to_h(self, pts: np.ndarray) -> np.ndarray:
        """Anatomy mm -> half-grid pixel [x, y]."""
        return (self.to(pts) + 0.5) * self.half_scale - 0.5

    def pel(self, lat: float, down: float) -> np.ndarray:
        """A point of the pelvis (mm of a standard pelvis, lateral and downwards from the S1 endplate centre)."""
        return lat * self.pk * self.pel_e + down * self.pk * self.pel_down

    def sh(self, side: int, lat: float, upw: float, lift: float) -> np.ndarray:
        """A point of the shoulder girdle on ``side`` (mm of a standard girdle, lateral and upwards from T1)."""
        return self.sh_base + side * lat * self.ssz * self.sh_e + (upw * self.ssz + lift) * self.sh_up


def _scene(p: Patient, g: ViewGeometry, layout: Layout) -> _Scene:
    """The working grid of ``layout`` and the landmarks every section of :func:`render_view` uses."""
    wh, ww = layout.wrows, layout.wcols
    sy, sx = layout.wspacing
    b = p.body
    pel_e, pel_up = _frame(g.pelvis_angle)
    chest = max(b.chest, 156.0 * b.rib_reach + 12.0)
    sh_e, sh_up = _frame(0.6 * g.tilt[1])
    return _Scene(
        layout=layout,
        wh=wh,
        ww=ww,
        sy=sy,
        sx=sx,
        sw=0.5 * (sx + sy),
        Y=((np.arange(wh, dtype=np.float32) + 0.5) * sy - layout.origin[1])[:, None],
        X=((np.arange(ww, dtype=np.float32) + 0.5) * sx - layout.origin[0])[None, :],
        pk=b.pelvis,
        pel_e=pel_e,
        pel_down=-pel_up,
        y_t1=g.centres[0, 1],
        y_t6=g.centres[5, 1],
        y_t10=g.centres[9, 1],
        y_l3=g.centres[14, 1],
        y_neck=g.cervical[2].mean(axis=0)[1],
        chest=chest,
        shoulder=max(b.shoulder, chest + 15.0),
        sh_base=g.centres[0],
        sh_e=sh_e,
        sh_up=sh_up,
    )


def _soft_tissue(s: _Scene, p: Patient, g: ViewGeometry, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Soft tissue: an elliptic body cross-section per row (neck, shoulders, chest, waist, hips) and the arms.

    Returns:
        the attenuation on the working grid, the body region (where the display window is measured) and the
        arms as (side, top, bottom, radius) in mm (none in the bending views, where the arms are raised).
    """
    b = p.body
    k_size = p.size
    y_t1, y_hip, chest, shoulder = s.y_t1, s.y_hip, s.chest, s.shoulder
    y_rows = s.Y[:, 0]
    x_spine = _spine_x_at(g, y_rows).astype(np.float32)
    hy = np.array([y_t1 - 350, y_t1 - 70 * k_size, y_t1 - 45 * k_size, y_t1 - 15, y_t1 + 25, s.y_t6, s.y_t10, s.y_l3,
                   y_hip, y_hip + 500])  # fmt: skip
    hy = np.maximum.accumulate(hy) + np.arange(len(hy)) * 1e-3  # np.interp needs increasing abscissae
    half = np.array([55, 58 * k_size, 85 * k_size, shoulder * 0.85, shoulder, chest, chest * 0.97, b.waist,
                     b.hip, b.hip * 0.7])  # fmt: skip
    thick = np.array([110, 115, 130, 0.85, 0.95, 1.0, 1.0, 1.02, 1.0, 0.75]) * np.array([1, 1, 1] + [b.thickness] * 7)
    sig = max(12.0 / s.sy, 0.5)
    a_row = ndimage.gaussian_filter1d(np.interp(y_rows, hy, half), sig, mode="nearest").astype(np.float32)[:, None]
    t_row = ndimage.gaussian_filter1d(np.interp(y_rows, hy, thick), sig, mode="nearest").astype(np.float32)[:, None]
    wgt = np.clip((y_hip - y_rows) / max(y_hip - s.y_t10, 1.0), 0.0, 1.0)
    x_body = (wgt * x_spine + (1.0 - wgt) * s.pel(0, 60)[0]).astype(np.float32)[:, None]
    r2 = ((s.X - x_body) / a_row) ** 2
    att = _MU_SOFT * t_row * np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))
    body_region = r2 < 0.8
    arms = _arms(att, s, p, g, x_body, rng)
    return att, body_region, arms


def _arms(att: np.ndarray, s: _Scene, p: Patient, g: ViewGeometry, x_body: np.ndarray, rng: np.random.Generator):
    """Add the soft tissue of the arms hanging at the sides (coronal view only) to ``att``; return the arms."""
    arms = []
    for side in (-1, 1) if g.view == "coronal" else ():  # in the bending views the arms are raised
        lift = np.array([0.0, side * p.body.shoulder_imbalance / 2])
        top_pt = s.sh_base + side * (s.shoulder - 5.0) * s.sh_e + 15.0 * s.sh_up + lift
        r_arm = 40.0 * s.ssz
        axis_x = x_body[np.clip(int((top_pt[1] + s.layout.origin[1]) / s.sy), 0, s.wh - 1), 0] + side * (
            s.chest + r_arm + rng.uniform(-5.0, 30.0)
        )
        bottom_pt = np.array([axis_x + side * 15.0, top_pt[1] + 900.0])
        top_arm = np.array([axis_x - side * 12.0, top_pt[1]])
        arms.append((side, top_arm, bottom_pt, r_arm))
        d = _segment_distance(s.X, s.Y, top_arm, bottom_pt)
        att += _MU_SOFT * 2.0 * np.sqrt(np.clip(r_arm**2 - d**2, 0.0, None))
    return arms


def _air_and_organs(
    s: _Scene, p: Patient, g: ViewGeometry, q: QualityParameters, ribs: list, rng: np.random.Generator
) -> np.ndarray:
    """Attenuation change (working grid) of air and organs, drawn on the half-resolution grid: lungs with the heart
    shadow and vessels, trachea and bronchi, stomach and bowel gas (air is negative), breasts."""
    air = _lung_air(s, p, g, ribs, rng) * (0.6 * p.body.thickness)
    air += _trachea(s, p, g)
    air += _abdominal_gas(s, p, g, q, rng)
    extra = _breasts(s, p, g, rng)
    return _MU_SOFT * _resize(extra - 0.9 * air, (s.wh, s.ww))


def _lungs(s: _Scene, p: Patient, g: ViewGeometry, ribs: list) -> np.ndarray:
    """The two lung fields (1 inside, half grid): inside the ribs, above the diaphragm domes, beside the mediastinum."""
    k_size = p.size
    lungs = np.zeros(s.half_shape, np.float32)
    for side in (-1, 1):
        lat_pts = [post[-1] for (i, sd, post, _) in ribs if sd == side and i < 9]
        lat_pts = [pt - side * np.array([3.0, 0.0]) * k_size for pt in lat_pts]
        t1c = g.centres[0]
        dome_y = s.y_t10 + (-12.0 if side < 0 else 5.0) + 18.0 * p.body.dome
        cp = np.array([ribs[[j for j, r in enumerate(ribs) if r[0] == 9 and r[1] == side][0]][2][-1][0], dome_y + 45])
        cp[0] -= side * 10.0
        med_x = _spine_x_at(g, np.array([dome_y]))[0] + side * 28.0
        dome = _bezier(cp, np.array([0.5 * (cp[0] + med_x), dome_y - 30.0]), np.array([med_x, dome_y + 15.0]))
        ys = np.linspace(dome_y + 10, t1c[1] - 15, 12)
        knob = 22.0 + (18.0 * np.exp(-(((ys - g.centres[3, 1]) / 25.0) ** 2)) if side > 0 else 0.0)
        medial = np.stack([_spine_x_at(g, ys) + side * knob, ys], axis=1)
        apex = t1c + side * np.array([38.0, 0.0]) + np.array([0.0, -28.0])
        poly = np.concatenate([[apex], lat_pts, [cp], dome, medial], axis=0)
        _fill(lungs, s.to_h(_chaikin(poly, 2)), 1.0)
    return lungs


def _lung_air(s: _Scene, p: Patient, g: ViewGeometry, ribs: list, rng: np.random.Generator) -> np.ndarray:
    """Relative air content of the lungs (half grid), less the heart shadow, vessels and a mottled parenchyma."""
    b = p.body
    k_size = p.size
    hs = s.hs
    lungs = _lungs(s, p, g, ribs)
    lung_air = _smooth(lungs, 2.5 / hs) * (0.45 + 0.55 * _smooth(lungs, 25.0 / hs))
    heart = np.zeros_like(lungs)
    hc = np.array([_spine_x_at(g, np.array([s.y_t10]))[0] + 28.0 * k_size, s.y_t10 - 15.0])
    _ellipse(heart, s.to_h(hc), (78 * b.heart * k_size / hs, 62 * b.heart * k_size / hs), 1.0, angle=-0.45)
    lung_air *= 1.0 - 0.85 * _smooth(heart, 4.0 / hs)
    vessels = _pulmonary_vessels(s, p, g, rng)
    mottle = _smooth(rng.standard_normal(lungs.shape).astype(np.float32), 2.5 / hs)
    mottle *= 0.05 / max(float(mottle.std()), 1e-6)
    lung_air *= 1.0 + mottle - 0.1 * np.minimum(_smooth(vessels, 0.5 / hs), 1.0)
    return lung_air


def _pulmonary_vessels(s: _Scene, p: Patient, g: ViewGeometry, rng: np.random.Generator) -> np.ndarray:
    """Pulmonary vessels (half grid): tapering branches radiating from each hilum."""
    k_size = p.size
    hs = s.hs
    vessels = np.zeros(s.half_shape, np.float32)
    for side in (-1, 1):
        hil = np.array([_spine_x_at(g, np.array([g.centres[5, 1]]))[0] + side * 45.0 * k_size, g.centres[5, 1]])
        for _ in range(12):
            ang = rng.uniform(-1.3, 1.4)  # 0 = lateral, > 0 downwards
            length = rng.uniform(60.0, 140.0) * k_size
            t = np.linspace(0.0, 1.0, 12)
            a = ang + rng.normal(0.0, 0.2) * t
            path = hil + np.stack([side * np.cos(a), np.sin(a)], axis=1) * (length * t)[:, None]
            _fill(vessels, _band(s.to_h(path), np.linspace(1.6, 0.3, 12) / hs), 1.0)
            for _ in range(3):  # branches
                j = int(rng.integers(3, 9))
                a2 = a[j] + rng.choice([-1, 1]) * rng.uniform(0.3, 0.8)
                l2 = length * (1 - t[j]) * rng.uniform(0.5, 0.9)
                t2 = np.linspace(0.0, 1.0, 6)
                p2 = path[j] + np.stack([side * np.cos(a2), np.sin(a2)])[None, :] * (l2 * t2)[:, None]
                _fill(vessels, _band(s.to_h(p2), np.linspace(0.9, 0.25, 6) / hs), 1.0)
    return vessels


def _trachea(s: _Scene, p: Patient, g: ViewGeometry) -> np.ndarray:
    """Air of the trachea and the main bronchi (half grid)."""
    k_size = p.size
    hs = s.hs
    tr = np.zeros(s.half_shape, np.float32)
    ys = np.linspace(s.y_neck - 120, g.centres[4, 1], 20)
    tline = np.stack([_spine_x_at(g, ys) + 3.0, ys], axis=1)
    _fill(tr, _band(s.to_h(tline), 8.5 * k_size / hs), 1.0)
    car = tline[-1]
    for side in (-1, 1):
        _fill(tr, _band(s.to_h(np.array([car, car + np.array([side * 38.0, 30.0]) * k_size])), 6.0 / hs), 1.0)
    return 16.0 * k_size * _smooth(tr, 1.5 / hs)


def _abdominal_gas(
    s: _Scene, p: Patient, g: ViewGeometry, q: QualityParameters, rng: np.random.Generator
) -> np.ndarray:
    """Air of the stomach bubble (patient's left = image right) with a fluid level, and bowel gas (half grid)."""
    hs = s.hs
    gas = np.zeros(s.half_shape, np.float32)
    sc = np.array([_spine_x_at(g, np.array([s.y_t10]))[0] + 75.0, s.y_t10 + 60.0])
    st = np.zeros_like(gas)
    _ellipse(st, s.to_h(sc), (32 / hs, 26 / hs), 1.0)
    fluid = int(np.clip(s.to_h(sc)[1] + rng.uniform(-0.1, 0.5) * 26 / hs, 0, s.half_shape[0]))
    st[fluid:] = 0
    gas += 25.0 * st * rng.uniform(0.3, 1.0)
    n_gas = int(2 + p.body.gas * 14 * (1.5 if q.level == "low" else 1.0))
    for _ in range(n_gas):
        _gas_pocket(gas, s, p, g, rng)
    return _smooth(gas, 1.2 / hs)


def _gas_pocket(gas: np.ndarray, s: _Scene, p: Patient, g: ViewGeometry, rng: np.random.Generator) -> None:
    """Add one pocket of bowel gas (a few overlapping bubbles) somewhere along the colon or the small bowel."""
    k_size = p.size
    hs = s.hs
    y_l1, y_l5 = g.centres[12, 1], g.centres[16, 1]
    px0 = s.pel(0, 0)[0]
    where = rng.random()
    if where < 0.2:  # ascending colon (patient's right = image left)
        cx, cy = px0 - 88 + rng.normal(0, 10), rng.uniform(y_l1, y_l5 + 20)
    elif where < 0.4:  # descending colon
        cx, cy = px0 + 92 + rng.normal(0, 10), rng.uniform(y_l1 - 20, y_l5 + 20)
    elif where < 0.55:  # transverse colon
        cx, cy = rng.uniform(px0 - 90, px0 + 90), y_l1 + 40 + rng.normal(0, 15)
    elif where < 0.8:  # rectosigmoid, over the sacrum
        cx, cy = px0 + rng.normal(15, 25), rng.uniform(-10, 80)
    else:  # small bowel
        cx, cy = px0 + rng.normal(0, 45), s.y_l3 + rng.normal(20, 30)
    depth = rng.uniform(0.3, 1.0) * 14.0
    for _ in range(int(rng.integers(1, 5))):
        rx, ry = rng.uniform(4, 14) * k_size, rng.uniform(4, 11) * k_size
        ctr = np.array([cx, cy]) + rng.normal(0, 8, 2) * k_size
        _ellipse(gas, s.to_h(ctr), (rx / hs, ry / hs), depth * rng.uniform(0.6, 1.0), rng.uniform(0, 3.14))


def _breasts(s: _Scene, p: Patient, g: ViewGeometry, rng: np.random.Generator) -> np.ndarray:
    """Extra soft tissue of the breasts (half grid, lower chest laterally; girls from 13 and women)."""
    k_size = p.size
    hs = s.hs
    extra = np.zeros(s.half_shape, np.float32)
    if p.sex == "F" and p.age >= 13:
        for side in (-1, 1):
            ctr = np.array([_spine_x_at(g, np.array([s.y_t10]))[0] + side * 95.0 * k_size, s.y_t10 + 5.0])
            _ellipse(extra, s.to_h(ctr), (60 * k_size / hs, 45 * k_size / hs), 30.0 * rng.uniform(0.4, 1.0))
        extra = _smooth(extra, 6.0 / hs)
    return extra


def _bones(s: _Scene, p: Patient, g: ViewGeometry, ribs: list, arms: list, rng: np.random.Generator) -> np.ndarray:
    """Bone as excess attenuation over soft tissue (working grid): the vertebrae, then the polygon-drawn bones
    (ribs, shoulder girdles, humeri, sacrum, pelvis, femora), smoothed before adding (anti-aliasing)."""
    bone = _vertebrae(s, p, g, rng)
    bands = np.zeros((s.wh, s.ww), np.float32)
    _ribs(bands, s, p, ribs)
    for side in (-1, 1):
        _shoulder_girdle(bands, s, p, g, side)
    _humeri(bands, s, arms)
    _sacrum(bands, s, p, g)
    for side in (-1, 1):
        _hemipelvis(bands, s, side)
        _hip(bands, s, side)
    bone += _smooth(bands, max(0.8 / s.sw, 0.7))
    return bone


def _vertebrae(s: _Scene, p: Patient, g: ViewGeometry, rng: np.random.Generator) -> np.ndarray:
    """T1..L5 and C3..C7 (working grid) on a shared trabecular texture."""
    bone = np.zeros((s.wh, s.ww), np.float32)
    texture = _smooth(rng.standard_normal((s.wh, s.ww)).astype(np.float32), 0.9 / s.sw)
    texture *= 0.12 / max(float(texture.std()), 1e-6)
    px_per_mm = s.px_per_mm
    to = s.to
    for i in range(17):
        kind = "thoracic" if i < 12 else "lumbar"
        amp = (0.55 if kind == "thoracic" else 0.7) * (1.0 + 0.05 * rng.normal())
        shift = 0.55 * np.sin(np.deg2rad(g.axial_rotation[i]))
        tp = (1.6, 1.85, 2.0, 1.8, 1.6)[i - 12] if i >= 12 else 1.45
        _vertebra(bone, to(g.corners[i]), shift, g.endplate_eps[i] * px_per_mm, kind, amp, texture, tp)
    for i in range(5):
        _vertebra(bone, to(g.cervical[i]), 0.0, 1.2 * px_per_mm, "cervical", 0.45, texture, 1.4)
    return bone


def _ribs(bands: np.ndarray, s: _Scene, p: Patient, ribs: list) -> None:
    """Posterior arcs (dense) and anterior arcs (faint: costal cartilage follows) of the ribs."""
    k_size = p.size
    for i, _side, post, ant in ribs:
        hw = (6.0 if i == 0 else 4.6) * k_size * s.px_per_mm
        _bone_band(bands, s.to(post), hw, 0.2)
        if ant is not None:
            _bone_band(bands, s.to(ant), hw * 1.25, 0.075)


def _shoulder_girdle(bands: np.ndarray, s: _Scene, p: Patient, g: ViewGeometry, side: int) -> None:
    """Clavicle and scapula (blade, lateral border, spine, glenoid) of one side; they follow the upper thoracic
    spine."""
    to, px_per_mm, ssz = s.to, s.px_per_mm, s.ssz
    lift = side * p.body.shoulder_imbalance / 2

    def sh(lat, upw):
        return s.sh(side, lat, upw, lift)

    med, lat_end = g.centres[2] + side * 20.0 * s.sh_e, sh(160, 40)
    t = np.linspace(0, 1, 20)[:, None]
    nrm = np.array([-(lat_end - med)[1], (lat_end - med)[0]]) / max(np.linalg.norm(lat_end - med), 1e-6)
    cl = med + t * (lat_end - med) + side * nrm * 7.0 * np.sin(2 * np.pi * t) * ssz
    _bone_band(bands, to(cl), np.linspace(7.0, 5.0, 20) * ssz * px_per_mm, 0.42)
    scap = np.array([sh(75, 8), sh(130, 14), sh(158, -6), sh(150, -48), sh(98, -170), sh(78, -85)])
    _fill(bands, to(_chaikin(scap, 2)), 0.07)
    _bone_band(bands, to(np.stack([sh(150, -48), sh(125, -110), sh(98, -168)])), 4.5 * px_per_mm, 0.2)
    _bone_band(bands, to(np.stack([sh(80, -12), sh(130, 8), sh(172, 26)])), 5.5 * px_per_mm, 0.16)
    gl = sh(160, -28)
    _ellipse(bands, to(gl), (7 * px_per_mm, 20 * px_per_mm), 0.14)


def _humeri(bands: np.ndarray, s: _Scene, arms: list) -> None:
    """Head and shaft of the humerus in each hanging arm."""
    to, px_per_mm, ssz = s.to, s.px_per_mm, s.ssz
    for side, top_arm, bottom_pt, _r in arms:
        head = top_arm + np.array([-side * 8.0, 8.0])
        _ellipse(bands, to(head), (24 * ssz * px_per_mm, 25 * ssz * px_per_mm), 0.42)
        elbow = head + (bottom_pt - head) * (300.0 / np.linalg.norm(bottom_pt - head))
        _bone_band(bands, to(np.stack([head, elbow])), 11 * ssz * px_per_mm, 0.55)


def _sacrum(bands: np.ndarray, s: _Scene, p: Patient, g: ViewGeometry) -> None:
    """Sacrum: alae, body, foramina (its tip is the mask's) and coccyx."""
    to, px_per_mm, pk, pel = s.to, s.px_per_mm, s.pk, s.pel
    w1 = p.widths[-1]
    hs = p.sacrum_height
    half_w = 0.5 * w1
    ala = half_w + 30.0 * pk
    sac_pts = [(half_w, 0), (half_w + 10, -4), (ala, -2), (ala + 2, 10), (ala - 4, 0.3 * hs), (0.46 * w1, 0.5 * hs),
               (0.36 * w1, 0.62 * hs), (0.22 * w1, 0.86 * hs), (0.1 * w1, hs)]  # fmt: skip
    sac = np.array([pel(-a / pk, d / pk) for a, d in sac_pts] + [pel(a / pk, d / pk) for a, d in sac_pts[::-1]])
    _fill(bands, to(_chaikin(sac, 2)), 0.16)
    _fill(bands, to(g.sacrum), 0.06)
    _bone_band(bands, to(np.array([g.sacrum[0], g.sacrum[-1]])), 1.2 * px_per_mm, 0.22)
    for j in range(4):  # sacral foramina: small paired lucencies with a faint arc
        for side in (-1, 1):
            fc = pel(side * (0.34 * w1 - 1.5 * j) / pk, (0.14 + 0.17 * j) * hs / pk)
            _ellipse(bands, to(fc), ((4.0 - 0.5 * j) * px_per_mm, (3.0 - 0.3 * j) * px_per_mm), -0.07)
    for j in range(3):  # coccyx
        cc = pel(0, (hs + 7 + 10 * j) / pk)
        _ellipse(bands, to(cc), ((7 - 1.5 * j) * px_per_mm, 4.0 * px_per_mm), 0.12)


def _pelvis_points(s: _Scene, side: int, pts: list[tuple[float, float]]) -> np.ndarray:
    """Points of one side of the pelvis (standard-pelvis mm, lateral and downwards from the S1 endplate centre)."""
    return np.array([s.pel(side * a, d) for a, d in pts])


def _hemipelvis(bands: np.ndarray, s: _Scene, side: int) -> None:
    """One hemipelvis: the outline of ilium, ischium and pubis, the obturator foramen, the iliac crest, the pelvic
    brim (iliopectineal line) and the ischium's border."""
    to, px_per_mm = s.to, s.px_per_mm
    outline = _pelvis_points(s, side, [(50, -6), (56, -32), (72, -52), (96, -62), (121, -56), (140, -40), (149, -16),
                                       (151, 2), (141, 26), (131, 52), (134, 78), (124, 112), (110, 146), (92, 160),
                                       (66, 160), (30, 152), (10, 150), (8, 126), (36, 114), (58, 96), (60, 70),
                                       (52, 48), (45, 36)])  # fmt: skip
    _fill(bands, to(_chaikin(outline, 3)), 0.14)
    obt = _pelvis_points(s, side, [(40, 122), (62, 112), (84, 120), (92, 138), (78, 152), (50, 150), (36, 138)])
    _fill(bands, to(_chaikin(obt, 3)), -0.14)  # obturator foramen
    _bone_band(bands, to(_chaikin(obt, 3)), 2.5 * px_per_mm, 0.09)
    crest = _pelvis_points(
        s, side, [(52, -20), (60, -40), (74, -54), (96, -62), (121, -56), (140, -40), (149, -16), (151, 2)]
    )
    _bone_band(bands, to(_chaikin(crest, 3, closed=False)), 4.0 * s.pk * px_per_mm, 0.22)
    brim = _pelvis_points(s, side, [(46, 34), (56, 58), (62, 82), (56, 100), (36, 114), (12, 124)])
    _bone_band(bands, to(_chaikin(brim, 3, closed=False)), 2.2 * px_per_mm, 0.18)
    ischial = _pelvis_points(s, side, [(92, 160), (112, 140), (118, 118)])
    _bone_band(bands, to(_chaikin(ischial, 2, closed=False)), 5.0 * px_per_mm, 0.16)


def _hip(bands: np.ndarray, s: _Scene, side: int) -> None:
    """One hip: the acetabular roof, the femoral head, neck and shaft, and the lesser trochanter."""
    to, px_per_mm, pk = s.to, s.px_per_mm, s.pk
    fh = s.pel(side * 108, 98)
    rf = 23.5 * pk
    roof = np.array([fh + rf * 1.12 * np.array([np.cos(a), -np.sin(a)]) for a in np.linspace(0.25, 2.6, 14)])
    if side < 0:
        roof[:, 0] = 2 * fh[0] - roof[:, 0]
    _bone_band(bands, to(roof), 2.6 * px_per_mm, 0.25)
    _ellipse(bands, to(fh), (rf * px_per_mm, rf * px_per_mm), 0.3)
    ring = np.array([fh + rf * np.array([np.cos(a), np.sin(a)]) for a in np.linspace(0, 2 * np.pi, 40)])
    _bone_band(bands, to(ring), 1.4 * px_per_mm, 0.12)
    neck = _pelvis_points(
        s, side, [(112, 86), (150, 122), (168, 128), (172, 150), (158, 168), (150, 190), (126, 170), (100, 108)]
    )
    _fill(bands, to(_chaikin(neck, 2)), 0.28)
    shaft = _pelvis_points(s, side, [(150, 180), (158, 330), (166, 520)])
    _bone_band(bands, to(shaft), 15.5 * pk * px_per_mm, 0.5)
    _ellipse(bands, to(s.pel(side * 132, 176)), (8 * pk * px_per_mm, 10 * pk * px_per_mm), 0.15)  # lesser troch.


def _lead_marker(att: np.ndarray, s: _Scene, spine_px: np.ndarray, rng: np.random.Generator) -> str:
    """Add a lead side marker (``"R"`` left of the spine, ``"L"`` right of it) to ``att``; return its letter, or
    ``""`` where it does not fit."""
    wh, ww = s.wh, s.ww
    px_per_mm = s.px_per_mm
    marker = "R" if rng.random() < 0.5 else "L"
    tm = _text_mask(marker, int(16.0 * px_per_mm))
    mh, mw = tm.shape
    gap = 12.0 * px_per_mm
    if marker == "R":
        x_lo, x_hi = 0.03 * ww, spine_px[:, 0].min() - gap - mw
    else:
        x_lo, x_hi = spine_px[:, 0].max() + gap, 0.97 * ww - mw
    if x_hi > x_lo and mh < 0.2 * wh:
        mx = int(rng.uniform(x_lo, x_hi))
        my = int(rng.uniform(0.03, 0.2) * wh)
        att[my : my + mh, mx : mx + mw] += 2.5 * tm[: wh - my, : ww - mx]
        return marker
    return ""


def _collimation(s: _Scene, spine_px: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The open field of the collimator (1 open, 0 behind the blades): often slightly tilted shutters around the
    spine, else the whole detector."""
    wh, ww = s.wh, s.ww
    field = np.ones((wh, ww), np.float32)
    if rng.random() < 0.6:
        xmin, ymin = spine_px.min(axis=0)
        xmax, ymax = spine_px.max(axis=0)
        mgn = 15.0 * s.px_per_mm
        ang = np.deg2rad(rng.uniform(-1.5, 1.5))
        yy = np.arange(wh, dtype=np.float32)[:, None]
        xx = np.arange(ww, dtype=np.float32)[None, :]
        xr = xx * np.cos(ang) + (yy - wh / 2) * np.sin(ang)
        yr = yy * np.cos(ang) - (xx - ww / 2) * np.sin(ang)
        left = rng.uniform(-0.1, 0.6) * max(xmin - mgn, 0)
        right = ww - rng.uniform(-0.1, 0.6) * max(ww - xmax - mgn, 0)
        top = rng.uniform(-0.2, 0.5) * max(ymin - mgn, 0)
        bottom = wh - rng.uniform(-0.5, 0.5) * max(wh - ymax - mgn, 0)
        field = ((xr > left) & (xr < right) & (yr > top) & (yr < bottom)).astype(np.float32)
        field = np.clip(_smooth(field, 0.8 / s.sw), 0.0, 1.0)
    return field


def _detector(
    att: np.ndarray, s: _Scene, q: QualityParameters, spine_px: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Detector physics on the working grid: system blur, collimation, scatter and the heel effect.

    Returns:
        the detected intensity relative to the open beam (noise-free) and the collimated field.
    """
    att = _smooth(att, q.blur_mm / s.sw)
    prim = np.exp(-att)
    field = _collimation(s, spine_px, rng)
    prim = prim * field + 2e-3 * (1.0 - field)  # shutters: only leakage behind the collimator blades
    total = prim + q.scatter * _smooth(prim, 30.0 / s.sw) + 1e-5
    heel = np.linspace(1.0 + 0.08, 1.0 - 0.08, s.wh, dtype=np.float32)[:, None] if rng.random() < 0.5 else 1.0
    total = total * heel
    return total, field


def _process(
    total: np.ndarray,
    field: np.ndarray,
    body_region: np.ndarray,
    s: _Scene,
    q: QualityParameters,
    rng: np.random.Generator,
) -> np.ndarray:
    """Processing as a DR workstation does it, on the noise-free signal (equalisation, unsharp masking); then the
    quantum noise at full resolution and the display LUT. Returns the display image (uint16, bone bright)."""
    log_w = -np.log(total)
    low = _smooth(log_w, 40.0 / s.sw)
    proc = log_w - q.equalise * (low - float(np.median(low)))
    proc = proc + q.unsharp * (proc - _smooth(proc, 2.0 / s.sw))
    inside = (field > 0.5) & body_region
    vals = proc[inside] if inside.sum() > 100 else proc.ravel()
    lo_v, hi_v = np.percentile(vals[:: max(1, vals.size // 200000)], [1.0, 99.8])
    p_full = _resize(proc, (s.layout.rows, s.layout.cols))
    img = p_full + (1.0 + q.unsharp) * _quantum_noise(total, s.layout, q.photons, rng)
    return _display(img, lo_v, hi_v, q)


def _quantum_noise(total: np.ndarray, layout: Layout, photons: float, rng: np.random.Generator) -> np.ndarray:
    """Quantum noise at full resolution: the relative fluctuation of the detected counts, in the log domain.

    Poisson counts are drawn exactly where few photons arrive and by their normal limit elsewhere (same statistics,
    several times faster); then the detector's cross-talk.
    """
    rows, cols = layout.rows, layout.cols
    wh, ww = layout.wrows, layout.wcols
    ri = np.minimum((np.arange(rows) * wh) // rows, wh - 1)
    ci = np.minimum((np.arange(cols) * ww) // cols, ww - 1)
    lam = (np.maximum(total, 1e-6) * photons).astype(np.float32)[ri[:, None], ci[None, :]]
    noise = rng.standard_normal((rows, cols), dtype=np.float32)
    noise *= -1.0 / np.sqrt(lam)
    few = lam < 30.0
    if few.any():
        counts = rng.poisson(lam[few].astype(np.float64))
        noise[few] = np.log(lam[few] / np.maximum(counts, 0.5))
    return ndimage.gaussian_filter(noise, 0.55, mode="nearest", truncate=2.0)  # detector cross-talk


def _display(img: np.ndarray, lo_v: float, hi_v: float, q: QualityParameters) -> np.ndarray:
    """Display: the VOI window [lo_v, hi_v], then contrast, exposure shift and gamma through a LUT (uint16)."""
    n_lut = 4096
    level = np.linspace(0.0, 1.0, n_lut)
    lut = np.clip(0.5 + q.contrast * (level - 0.5) + q.shift, 0.0, 1.0) ** q.gamma
    lut = np.round(lut * 65535.0).astype(np.uint16)
    img -= lo_v
    img *= (n_lut - 1) / max(hi_v - lo_v, 1e-6)
    np.clip(img, 0, n_lut - 1, out=img)
    return lut[img.astype(np.uint16)]


def _burn_in(img: np.ndarray, layout: Layout, g: ViewGeometry, view_label: str, rng: np.random.Generator) -> str:
    """Burn ``view_label`` into ``img`` (white workstation text beside the spine, top or bottom) often; return the
    text burnt in, or ``""``."""
    if not view_label or rng.random() >= 0.6:
        return ""
    rows, cols = layout.rows, layout.cols
    th = max(int(0.022 * rows), 7)
    txt = _text_mask(view_label, th)
    bh, bw = txt.shape
    fx = layout.to_px(np.concatenate([g.corners.reshape(-1, 2), g.sacrum]))
    room_left = fx[:, 0].min() - 0.03 * cols
    room_right = 0.97 * cols - fx[:, 0].max()
    ytxt = int(rng.uniform(0.88, 0.95) * rows) if rng.random() < 0.5 else int(rng.uniform(0.02, 0.06) * rows)
    if ytxt + bh < rows and max(room_left, room_right) > bw + 4:
        x = int(0.03 * cols) if room_left >= room_right else int(0.97 * cols - bw)
        patch = img[ytxt : ytxt + bh, x : x + bw]
        img[ytxt : ytxt + bh, x : x + bw] = np.maximum(
            patch, (txt * 65535).astype(np.uint16)[: patch.shape[0], : patch.shape[1]]
        )
        return view_label
    return ""


def render_view(
    p: Patient, g: ViewGeometry, layout: Layout, q: QualityParameters, rng: np.random.Generator, view_label: str = ""
) -> Rendered:
    """Render one radiograph (display values in [0, 1], bone bright) and its spinal-column mask.

    Args:
        p: the patient.
        g: the view geometry.
        layout: pixel geometry (see :func:`sample_layout`).
        q: quality parameters (see :func:`sample_quality`).
        rng: generator of the view (bowel gas, noise, markers).
        view_label: text that may be burnt in (e.g. ``"L BENDING"``).
    """
    s = _scene(p, g, layout)
    att, body_region, arms = _soft_tissue(s, p, g, rng)
    ribs = _rib_paths(p, g)
    att += _air_and_organs(s, p, g, q, ribs, rng)
    att += _bones(s, p, g, ribs, arms, rng)
    spine_px = s.to(np.concatenate([g.corners.reshape(-1, 2), g.sacrum]))
    marker = _lead_marker(att, s, spine_px, rng)
    total, field = _detector(att, s, q, spine_px, rng)
    img = _process(total, field, body_region, s, q, rng)
    burnt = _burn_in(img, layout, g, view_label, rng)
    corners_px, sacrum_px = pixel_landmarks(g, layout)
    mask = render_mask(corners_px, sacrum_px, (layout.rows, layout.cols))
    return Rendered(image=img, mask=mask, marker=marker, burnt_in=burnt)


def pixel_landmarks(g: ViewGeometry, layout: Layout, decimals: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Vertebra corners (17, 4, 2) and sacrum polygon (K, 2) in full-resolution pixels [x, y], rounded as stored."""
    return np.round(layout.to_px(g.corners), decimals), np.round(layout.to_px(g.sacrum), decimals)


def render_mask(corners_px: np.ndarray, sacrum_px: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The spinal-column mask (uint8 0/255): T1..L5 bodies, the discs between them and the sacrum (paper §4.1).

    Args:
        corners_px: (17, 4, 2) vertebra corners in pixels [x, y].
        sacrum_px: (K, 2) sacrum polygon in pixels.
        shape: (rows, cols) of the mask.
    """
    mask = np.zeros(tuple(shape), np.uint8)
    for poly in spine_mask_polygons(corners_px, sacrum_px)[1:]:  # the pieces; their union is the outline
        # grown by a hair so that pixel centres lying exactly on an edge shared by two pieces are not lost
        c = poly.mean(axis=0)
        grown = c + (poly - c) * (1.0 + 1e-3 / max(float(np.abs(poly - c).max()), 1.0))
        rr, cc = draw.polygon(grown[:, 1], grown[:, 0], shape=mask.shape)
        mask[rr, cc] = 255
    return mask
