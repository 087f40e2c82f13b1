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

from r2mf_monai.measure.centreline import binarize_mask, extract_centreline, parse_spacing
from tests.measure.shapes import arc_mask, straight_mask

STRAIGHT_CASES = [0.0, 15.0, -30.0]
ARC_CASES = [(30.0, 0.0), (60.0, 10.0), (-90.0, 0.0)]


@pytest.mark.parametrize("tilt", STRAIGHT_CASES)
def test_straight_column_tangent_is_its_tilt(tilt):
    c = extract_centreline(straight_mask(tilt_deg=tilt))
    assert np.all(np.abs(c.tangent_deg - tilt) < 1.0)
    assert np.ptp(c.tangent_deg) < 1.0
    # the band is 400 px long plus two round ends of 12 px, 23-25 pixels across
    assert c.length == pytest.approx(424, abs=4)
    assert c.unit == "px"
    assert np.median(c.width) == pytest.approx(24, abs=1.5)


@pytest.mark.parametrize("turn,tilt", ARC_CASES)
def test_arc_total_turning(turn, tilt):
    c = extract_centreline(arc_mask(turn, tilt_deg=tilt))
    t = c.tangent_deg
    assert t[-1] - t[0] == pytest.approx(turn, abs=2.0)
    assert np.all(np.diff(c.arc_length) > 0)
    assert 0 < c.fraction[0] < 0.05 and 0.95 < c.fraction[-1] < 1


def test_points_run_top_to_bottom_inside_the_mask():
    m = arc_mask(50.0)
    c = extract_centreline(m)
    assert c.points[0, 0] < c.points[-1, 0]
    rows, cols = np.round(c.points).astype(int).T
    assert m[rows, cols].all()


def test_anisotropic_spacing_gives_physical_angles():
    # a column tilted 30 degrees in millimetres, drawn on pixels twice as wide as tall (row spacing 0.5, column 1):
    # in pixels it runs at atan(tan(30) / 2) = 16.1 degrees
    m = straight_mask(length=300, tilt_deg=np.degrees(np.arctan(np.tan(np.radians(30.0)) / 2)), shape=(420, 420))
    c_px = extract_centreline(m)
    c_mm = extract_centreline(m, spacing=(0.5, 1.0))
    assert np.median(c_mm.tangent_deg) == pytest.approx(30.0, abs=1.0)
    assert np.median(c_px.tangent_deg) == pytest.approx(16.1, abs=1.0)
    assert c_mm.unit == "mm"


def test_length_scales_with_isotropic_spacing():
    m = straight_mask()
    assert extract_centreline(m, spacing=0.25).length == pytest.approx(extract_centreline(m).length * 0.25, rel=1e-3)


def test_robust_to_holes_ragged_edges_and_specks():
    rng = np.random.default_rng(0)
    m = straight_mask(tilt_deg=10.0).copy()
    m[200:210, 175:185] = False  # a hole
    edge = ndimage.binary_dilation(m) & ~m
    m |= edge & (rng.random(m.shape) < 0.5)  # ragged edge
    m[50:54, 20:24] = True  # a speck far away
    c = extract_centreline(m)
    assert np.all(np.abs(c.tangent_deg - 10.0) < 2.0)


def test_binarize_accepts_0_1_0_255_and_probabilities():
    base = straight_mask()
    for arr in (base.astype(np.uint8), base.astype(np.uint8) * 255, base * 0.9):
        assert np.array_equal(binarize_mask(arr), base)


@pytest.mark.parametrize(
    "mask,match",
    [
        (np.zeros((64, 64)), "empty"),
        (np.ones((2, 64, 64)), "2-D"),
        (np.array(["a"]).reshape(1, 1), "numeric"),
    ],
)
def test_bad_masks(mask, match):
    with pytest.raises(ValueError, match=match):
        extract_centreline(mask)


@pytest.mark.parametrize("kwargs", [{"smoothing": 0.0}, {"smoothing": 1.5}, {"spacing": -1.0}, {"spacing": (1, 2, 3)}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        extract_centreline(straight_mask(), **kwargs)


@pytest.mark.parametrize(
    "value,expected", [(None, None), (0.2, (0.2, 0.2)), ((0.1, 0.2), (0.1, 0.2)), ([0.3], (0.3, 0.3))]
)
def test_parse_spacing(value, expected):
    assert parse_spacing(value) == expected
