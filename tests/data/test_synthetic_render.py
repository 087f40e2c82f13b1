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

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage import draw

from r2mf_monai.constants import VIEWS
from r2mf_monai.data.synthetic.anatomy import sample_patient, view_geometry
from r2mf_monai.data.synthetic.render import (
    QUALITIES,
    pixel_landmarks,
    render_mask,
    render_view,
    sample_layout,
    sample_quality,
)

SIZE = (300, 140)


def _render(seed: int, view: str, quality: str, size=SIZE, rng_seed: int | None = None):
    p = sample_patient(np.random.default_rng(seed), seed)
    g = view_geometry(p, view)
    rng = np.random.default_rng(seed if rng_seed is None else rng_seed)
    layout = sample_layout(rng, g, size)
    q = sample_quality(rng, quality)
    return p, g, layout, render_view(p, g, layout, q, rng, "L BENDING")


def _ring(mask: np.ndarray, width: int = 4) -> np.ndarray:
    return ndimage.binary_dilation(mask, iterations=width) & ~mask


@pytest.mark.parametrize("quality", QUALITIES)
def test_sample_quality_levels(quality):
    q = sample_quality(np.random.default_rng(0), quality)
    assert q.level == quality
    assert all(np.isfinite(getattr(q, name)) and getattr(q, name) > 0 for name in ("photons", "blur_mm", "scatter"))


def test_quality_levels_are_ordered():
    rng = np.random.default_rng(1)
    for _ in range(20):
        hi, med, lo = (sample_quality(rng, q) for q in QUALITIES)
        assert hi.photons > med.photons > lo.photons / 3.0
        assert hi.blur_mm < med.blur_mm < lo.blur_mm + 0.4
        assert hi.contrast > med.contrast and hi.contrast > lo.contrast


def test_sample_quality_bad():
    with pytest.raises(ValueError, match="quality"):
        sample_quality(np.random.default_rng(0), "excellent")


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("seed", [0, 5, 11])
def test_layout_keeps_the_spine_inside(seed, view):
    p = sample_patient(np.random.default_rng(seed), seed)
    g = view_geometry(p, view)
    for rows, cols in [(300, 140), (2500, 1200), (1024, 512)]:
        layout = sample_layout(np.random.default_rng(seed), g, (rows, cols))
        corners, sacrum = pixel_landmarks(g, layout)
        pts = np.concatenate([corners.reshape(-1, 2), sacrum])
        assert pts[:, 0].min() > 0 and pts[:, 0].max() < cols - 1
        assert pts[:, 1].min() > 0 and pts[:, 1].max() < rows - 1
        extent = (pts[:, 1].max() - pts[:, 1].min()) / rows
        assert 0.3 < extent <= 0.81
        assert layout.wrows <= 1100 and layout.wrows <= rows


@pytest.mark.parametrize("quality", QUALITIES)
@pytest.mark.parametrize("view", VIEWS)
def test_render_view_image_and_mask(view, quality):
    _, g, layout, r = _render(4, view, quality)
    assert r.image.shape == SIZE and r.image.dtype == np.uint16
    assert r.mask.shape == SIZE and r.mask.dtype == np.uint8
    assert set(np.unique(r.mask)) == {0, 255}
    spine = r.mask > 0
    _, n = ndimage.label(spine)
    assert n == 1  # one connected region from T1 to the sacrum
    corners, sacrum = pixel_landmarks(g, layout)
    for quad in list(corners) + [sacrum]:  # every vertebra (and the sacrum) is inside the mask
        rr, cc = draw.polygon(quad[:, 1], quad[:, 0], SIZE)
        assert spine[rr, cc].all()
    # nothing of the mask lies far outside the union of bodies, discs and sacrum (bounding box check)
    ys, xs = np.nonzero(spine)
    pts = np.concatenate([corners.reshape(-1, 2), sacrum])
    assert ys.min() >= np.floor(pts[:, 1].min()) and ys.max() <= np.ceil(pts[:, 1].max())
    assert xs.min() >= np.floor(pts[:, 0].min()) and xs.max() <= np.ceil(pts[:, 0].max())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bone_is_bright(seed):
    """MONOCHROME2 sense: the spinal column is brighter than the tissue right next to it."""
    _, _, _, r = _render(seed, "coronal", "high", size=(600, 280))
    spine = r.mask > 0
    img = r.image.astype(float)
    assert img[spine].mean() > img[_ring(spine)].mean()


@pytest.mark.parametrize("seed", [6, 7, 8])
def test_low_quality_is_noisier(seed):
    noise = {}
    for quality in ("high", "low"):
        _, _, _, r = _render(seed, "coronal", quality, size=(800, 380), rng_seed=100 + seed)
        img = r.image.astype(float) / 65535.0
        body = (img > 0.15) & (img < 0.95)
        hp = (img - ndimage.uniform_filter(img, 3))[body]
        noise[quality] = 1.4826 * np.median(np.abs(hp - np.median(hp)))  # robust to anatomical edges
    assert noise["low"] > 1.4 * noise["high"]


def test_render_is_deterministic():
    a = _render(7, "left_bending", "medium")[3]
    b = _render(7, "left_bending", "medium")[3]
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.mask, b.mask)
    c = _render(7, "left_bending", "medium", rng_seed=8)[3]
    assert not np.array_equal(a.image, c.image)


def test_render_mask_shared_edges_leave_no_gap():
    # two squares sharing an edge that runs exactly through pixel centres
    corners = np.array([[[2, 2], [12, 2], [12, 10], [2, 10]], [[2, 10], [12, 10], [12, 18], [2, 18]]], float)
    corners = np.concatenate([corners, np.repeat(corners[-1:] + [0, 8], 15, axis=0)])
    sacrum = np.array([[2, 26], [12, 26], [7, 30]], float)
    mask = render_mask(corners, sacrum, (40, 20))
    assert (mask[2:27, 3:12] == 255).all()
    assert ndimage.label(mask > 0)[1] == 1
