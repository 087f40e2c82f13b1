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

from r2mf_monai.data.synthetic.anatomy import (
    VERTEBRAE,
    VIEWS,
    cobb_between,
    endplate_angles,
    measure_curves,
    sample_patient,
    spine_mask_polygons,
    view_geometry,
)

SEEDS = list(range(12))


def _chain(tilts_deg: list[float], width: float = 30.0, height: float = 20.0, gap: float = 6.0) -> np.ndarray:
    """Rectangular vertebrae stacked downwards, each tilted by its angle (positive = right end lower)."""
    corners = []
    pos = np.zeros(2)
    for t in np.deg2rad(tilts_deg):
        e = np.array([np.cos(t), np.sin(t)])  # along the endplates
        down = np.array([-np.sin(t), np.cos(t)])
        top = pos
        bottom = pos + height * down
        corners.append([top - width / 2 * e, top + width / 2 * e, bottom + width / 2 * e, bottom - width / 2 * e])
        pos = bottom + gap * down
    return np.array(corners)


@pytest.mark.parametrize("seed", SEEDS)
def test_sample_patient_ranges(seed):
    p = sample_patient(np.random.default_rng(seed), seed)
    assert p.patient_id == f"P{seed + 1:04d}"
    assert len(p.heights) == len(p.widths) == len(p.discs) == len(VERTEBRAE) == 17
    assert p.widths[-1] > p.widths[0] * 1.4 and p.heights[-3] > p.heights[0] * 1.4  # grow from T1 to L5
    assert (p.discs > 0).all()
    assert p.curve_type in ("single", "double")
    assert len(p.curves) == (1 if p.curve_type == "single" else 2)
    for c in p.curves:
        assert 0.0 <= c.cobb <= 90.0
        assert VERTEBRAE.index("T6") <= c.apex <= VERTEBRAE.index("L2")
        assert c.upper < c.apex < c.lower
        assert 0.0 <= c.flexibility <= 1.0
        assert c.side in ("left", "right")
    if p.curve_type == "double":
        assert p.curves[0].side != p.curves[1].side
    assert 0.0 <= p.flexibility <= 1.0


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("seed", SEEDS[:6])
def test_view_geometry_shape_and_order(seed, view):
    g = view_geometry(sample_patient(np.random.default_rng(seed), seed), view)
    assert g.corners.shape == (17, 4, 2) and g.cervical.shape == (5, 4, 2)
    assert np.all(np.diff(g.centres[:, 1]) > 0)  # T1 at the top, L5 at the bottom
    upper = g.corners[:, :2].mean(axis=1)
    lower = g.corners[:, 2:].mean(axis=1)
    assert np.all(lower[:, 1] > upper[:, 1])
    assert np.all(upper[1:, 1] > lower[:-1, 1])  # a disc between consecutive vertebrae
    assert np.all(g.corners[:, 1, 0] > g.corners[:, 0, 0]) and np.all(g.corners[:, 2, 0] > g.corners[:, 3, 0])
    assert g.sacrum[:, 1].max() > g.corners[-1, 2:, 1].max()  # sacrum below L5
    assert g.centreline[0, 1] < g.centres[0, 1] and g.centreline[-1, 1] >= g.sacrum[:, 1].max() - 1.0


@pytest.mark.parametrize("seed", SEEDS[:6])
def test_vertebrae_tilt_with_the_centreline(seed):
    g = view_geometry(sample_patient(np.random.default_rng(seed), seed), "coronal")
    # tangent of the centreline at each body centre, as a tilt of the endplate direction
    s_mid = np.interp(g.centres[:, 1], g.xy[::-1, 1], g.s[::-1])
    theta = np.interp(s_mid, g.s, g.theta)
    assert np.abs(g.tilt - theta).max() < 3.5  # the per-vertebra jitter is N(0, 0.6 deg)


def test_measure_curves_known_chain():
    tilts = [0, 5, 10, 15, 20, 12, 4, -4, -12, -20, -14, -8, -3, 0, 0, 0, 0]
    curves = measure_curves(_chain(tilts))
    assert [round(c["cobb_deg"], 6) for c in curves] == [20.0, 40.0, 20.0]
    mid = curves[1]
    assert (mid["upper_end"], mid["lower_end"]) == ("T5", "T10")
    # tilt falling going down: the column runs down-left, then down-right, so the apex points to the image left
    assert mid["convexity_image"] == "left" and mid["convexity"] == "right"
    assert mid["apex"] in ("T7", "T8")
    assert curves[0]["convexity_image"] == "right" and curves[2]["convexity_image"] == "right"


def test_measure_curves_straight_spine_has_none():
    assert measure_curves(_chain([0.0] * 17)) == []
    assert measure_curves(_chain([1.0, -1.0] * 8 + [0.0])) == []  # wiggles under min_cobb


@pytest.mark.parametrize("angle", [-30.0, -5.0, 0.0, 12.5, 40.0])
def test_cobb_between_is_endplate_angle(angle):
    c = _chain([0.0] * 16 + [angle])
    assert cobb_between(c, 0, 16) == pytest.approx(angle, abs=1e-9)
    up, lo = endplate_angles(c)
    assert up[16] == pytest.approx(angle) and lo[0] == pytest.approx(0.0, abs=1e-9)


def _signed_cobb(p, view: str, k: int) -> float:
    c = p.curves[k]
    sign = 1.0 if cobb_between(view_geometry(p, "coronal").corners, c.upper, c.lower) > 0 else -1.0
    return sign * cobb_between(view_geometry(p, view).corners, c.upper, c.lower)


def test_bending_changes_curves_the_physical_way():
    """Bending towards a curve's convexity reduces it by its flexibility; towards its concavity it grows."""
    flexible = rigid = 0
    for seed in range(60):
        p = sample_patient(np.random.default_rng(seed), seed)
        for k, c in enumerate(p.curves):
            if c.cobb < 20:
                continue
            coronal = _signed_cobb(p, "coronal", k)
            towards_convex = "right_bending" if c.side == "right" else "left_bending"
            towards_concave = "left_bending" if c.side == "right" else "right_bending"
            convex_bend = _signed_cobb(p, towards_convex, k)
            concave_bend = _signed_cobb(p, towards_concave, k)
            if c.flexibility >= 0.4:
                flexible += 1
                assert convex_bend < coronal - 0.15 * c.flexibility * coronal, (seed, k)
                assert concave_bend > convex_bend, (seed, k)
            if c.flexibility <= 0.15:
                rigid += 1
                assert abs(convex_bend - coronal) < 0.3 * coronal + 3.0, (seed, k)
    assert flexible >= 5 and rigid >= 1


def test_bending_views_lean_to_their_side():
    for seed in range(8):
        p = sample_patient(np.random.default_rng(seed), seed)
        t1 = {v: view_geometry(p, v).centres[0, 0] for v in VIEWS}
        # the patient's left is the image right (radiological display)
        assert t1["left_bending"] > t1["coronal"] > t1["right_bending"], seed


def test_view_geometry_bad_view():
    p = sample_patient(np.random.default_rng(0))
    with pytest.raises(ValueError, match="view"):
        view_geometry(p, "lateral")


def test_spine_mask_polygons_pieces():
    g = view_geometry(sample_patient(np.random.default_rng(3), 3), "coronal")
    polys = spine_mask_polygons(g.corners, g.sacrum)
    assert len(polys) == 1 + 17 + 16 + 1 + 1  # outline, bodies, discs, L5/S1 disc, sacrum
    np.testing.assert_allclose(polys[1], g.corners[0])
    np.testing.assert_allclose(polys[-1], g.sacrum)
