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


"""Masks with known answers for the measurement tests: bands of constant width along curves drawn analytically."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["arc_mask", "band", "path", "s_curve_mask", "straight_mask", "wobbly_mask"]


def band(curve_pts: np.ndarray, half_width: float, shape: tuple[int, int]) -> np.ndarray:
    """Pixels within ``half_width`` of a densely sampled curve (N, 2) ``(row, col)``: a band with round ends."""
    rr, cc = np.mgrid[0 : shape[0], 0 : shape[1]]
    q = np.stack([rr.ravel(), cc.ravel()], 1).astype(float)
    lo = curve_pts.min(0) - half_width - 2
    hi = curve_pts.max(0) + half_width + 2
    sel = np.all((q >= lo) & (q <= hi), 1)
    d, _ = cKDTree(curve_pts).query(q[sel], distance_upper_bound=half_width + 1)
    out = np.zeros(q.shape[0], bool)
    out[sel] = d <= half_width
    return out.reshape(shape)


def path(tangent_deg: np.ndarray, length: float, centre: tuple[float, float]) -> np.ndarray:
    """Points (row, col) of a curve of ``length`` whose tangent angle from the vertical follows ``tangent_deg``
    (positive towards the image right going down), centred on ``centre``."""
    th = np.radians(tangent_deg)
    pts = np.cumsum(np.stack([np.cos(th), np.sin(th)], 1) * (length / len(th)), 0)
    pts -= (pts.max(0) + pts.min(0)) / 2
    return pts + np.asarray(centre, float)


def _draw(tangent_deg: np.ndarray, length: float, shape: tuple[int, int], half_width: float) -> np.ndarray:
    return band(path(tangent_deg, length, (shape[0] / 2, shape[1] / 2)), half_width, shape)


def straight_mask(length=400, tilt_deg=0.0, shape=(512, 360), half_width=12.0) -> np.ndarray:
    """A straight column tilted by ``tilt_deg`` from the vertical."""
    return _draw(np.full(int(length * 8), tilt_deg), length, shape, half_width)


def arc_mask(turn_deg, length=400, tilt_deg=0.0, shape=(512, 360), half_width=12.0) -> np.ndarray:
    """A circular arc turning by ``turn_deg`` in total (positive: convex to the image left), mean tilt ``tilt_deg``."""
    th = np.linspace(-turn_deg / 2, turn_deg / 2, int(length * 8)) + tilt_deg
    return _draw(th, length, shape, half_width)


def s_curve_mask(tangents=(-20.0, 20.0, -40.0), length=450, shape=(560, 400), half_width=12.0) -> np.ndarray:
    """A column whose tangent angle passes smoothly (raised cosine, no curvature jump) through the extreme values
    ``tangents`` at equally spaced points from top to bottom: its Cobb angles are the differences of consecutive
    values (the default is an S-curve of 40 then 60 degrees)."""
    n = int(length * 8)
    u = np.linspace(0.0, len(tangents) - 1, n)
    k = np.minimum(u.astype(int), len(tangents) - 2)
    f = (1 - np.cos(np.pi * (u - k))) / 2
    th = np.asarray(tangents, float)[k] * (1 - f) + np.asarray(tangents, float)[k + 1] * f
    return _draw(th, length, shape, half_width)


def wobbly_mask(turn_deg, amplitude, period, length=400, shape=(512, 360), half_width=12.0, seed=0) -> np.ndarray:
    """An arc turning by ``turn_deg`` whose mid-line wobbles sideways by up to about ``2 amplitude`` pixels (three
    sines of periods around ``period`` pixels, random phases): a column as a network predicts it on a real film."""
    n = int(length * 8)
    pts = path(np.linspace(-turn_deg / 2, turn_deg / 2, n), length, (shape[0] / 2, shape[1] / 2))
    s = np.linspace(0.0, length, n)
    rng = np.random.default_rng(seed)
    off = sum(
        amplitude * rng.uniform(0.5, 1.0) * np.sin(2 * np.pi * s / (period * f) + rng.uniform(0, 2 * np.pi))
        for f in (0.7, 1.0, 1.4)
    )
    return band(pts + np.stack([np.zeros(n), off], 1), half_width, shape)
