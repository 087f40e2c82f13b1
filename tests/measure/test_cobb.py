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

from r2mf_monai.constants import VERTEBRAE
from r2mf_monai.measure.centreline import MaskNotMeasurableError, extract_centreline
from r2mf_monai.measure.cobb import (
    MAX_SMOOTHING,
    WOBBLE_FULL,
    WOBBLE_REF,
    find_vertebra_curves,
    measure_mask,
    tangent_extremes,
)
from r2mf_monai.measure.endplates import VertebraFit
from r2mf_monai.measure.levels import REGIONS, LevelModel
from tests.measure.shapes import arc_mask, band, path, s_curve_mask, straight_mask, wobbly_mask

# the test columns are geometric: without a sacrum at the bottom, so that the whole column can bound curves
NO_SACRUM = LevelModel(sacrum_mm=0.0)


def _measure(mask, **kwargs):
    kwargs.setdefault("levels", NO_SACRUM)
    return measure_mask(mask, **kwargs)


S_CURVES = [
    ((-20.0, 20.0, -40.0), [40.0, 60.0]),
    ((-15.0, 15.0, -35.0, 0.0), [30.0, 50.0, 35.0]),
    ((10.0, -25.0, 10.0), [35.0, 35.0]),
]


@pytest.mark.parametrize(
    "sequence,threshold,expected",
    [
        (np.sin(np.linspace(0, 2 * np.pi, 201)) * 20, 5.0, [0, 50, 150, 200]),
        (np.linspace(0, 30, 50), 5.0, [0, 49]),
        (np.zeros(40), 5.0, []),
        (np.sin(np.linspace(0, 6 * np.pi, 300)) * 2, 5.0, []),  # wiggles below the threshold
    ],
)
def test_tangent_extremes(sequence, threshold, expected):
    assert tangent_extremes(sequence, threshold) == expected


def test_small_wiggles_do_not_split_a_curve():
    t = np.linspace(-25, 25, 400) + 1.5 * np.sin(np.linspace(0, 20 * np.pi, 400))
    piv = tangent_extremes(t, 5.0)
    assert len(piv) == 2 and t[piv[1]] - t[piv[0]] == pytest.approx(50, abs=3.5)


@pytest.mark.parametrize("tilt", [0.0, 12.0, -25.0])
def test_straight_columns_have_no_curve(tilt):
    vm = _measure(straight_mask(tilt_deg=tilt))
    assert vm.curves == []
    # a column running towards the image right going down has its top to the left of the sacrum
    assert vm.lean_deg == pytest.approx(-tilt, abs=1.0)


@pytest.mark.parametrize("turn", [20.0, 45.0, 70.0, -45.0])
def test_arc_cobb_and_convexity(turn):
    vm = _measure(arc_mask(turn))
    assert len(vm.curves) == 1
    c = vm.curves[0]
    assert c.cobb_deg == pytest.approx(abs(turn), abs=2.0)
    # a tangent turning towards the image right going down bulges to the image left
    assert c.convex == ("image_left" if turn > 0 else "image_right")
    assert np.sign(c.apex_deviation) == (-1 if turn > 0 else 1)
    assert c.upper_level == "T1" and c.lower_level == "L5"
    assert c.lower_tangent_deg - c.upper_tangent_deg == pytest.approx(turn, abs=2.0)


@pytest.mark.parametrize("tangents,cobbs", S_CURVES)
def test_s_curves(tangents, cobbs):
    vm = _measure(s_curve_mask(tangents))
    assert [c.cobb_deg for c in vm.curves] == pytest.approx(cobbs, abs=2.0)
    # consecutive curves bend opposite ways and share their end levels
    for a, b in zip(vm.curves[:-1], vm.curves[1:], strict=True):
        assert a.convex != b.convex
        assert a.lower_level == b.upper_level
    for c in vm.curves:
        assert c.region in REGIONS
        assert VERTEBRAE.index(c.upper_level) <= VERTEBRAE.index(c.apex_level) if c.apex_level != "S" else True


@pytest.mark.parametrize("angle", [8.0, -15.0, 40.0])
def test_rotation_leaves_cobb_unchanged(angle):
    m = s_curve_mask()
    ref = [c.cobb_deg for c in _measure(m).curves]
    rotated = ndimage.rotate(m.astype(np.float32), angle, order=1, reshape=True) > 0.5
    vm = _measure(rotated)
    assert [c.cobb_deg for c in vm.curves] == pytest.approx(ref, abs=1.5)


def test_mirror_swaps_convexity_and_deviation_sign():
    m = s_curve_mask()
    a, b = _measure(m), _measure(m[:, ::-1])
    for ca, cb in zip(a.curves, b.curves, strict=True):
        assert ca.cobb_deg == pytest.approx(cb.cobb_deg, abs=1.0)
        assert {ca.convex, cb.convex} == {"image_left", "image_right"}
        assert ca.apex_deviation == pytest.approx(-cb.apex_deviation, abs=1.0)


@pytest.mark.parametrize("spacing", [0.2, (0.35, 0.35)])
def test_deviation_in_mm_with_spacing_and_pixels_without(spacing):
    m = arc_mask(50.0)
    px = _measure(m)
    mm = _measure(m, spacing=spacing)
    sr, sc = (spacing, spacing) if np.isscalar(spacing) else spacing
    assert px.unit == "px" and mm.unit == "mm"
    assert px.curves[0].unit == "px" and mm.curves[0].unit == "mm"
    assert mm.curves[0].apex_deviation == pytest.approx(px.curves[0].apex_deviation * sc, rel=0.03, abs=0.3)
    assert mm.to_dict()["pixel_spacing_mm"] == [sr, sc]


def test_the_sacrum_bounds_no_curve():
    # a 40 degree curve down to the S1 endplate (85 % of the column in the default level model), then the sacrum
    # bent back by 30 degrees: the sacral bend is no Cobb angle
    n = 3600
    s = np.linspace(0.0, 1.0, n)
    s1 = LevelModel().s1_endplate
    u = np.clip(s / s1, 0, 1)
    th = np.where(s < s1, -20 + 40 * (1 - np.cos(np.pi * u)) / 2, 20 - 30 * (s - s1) / (1 - s1))
    m = band(path(th, 450, (280, 200)), 12, (560, 400))
    with_sacrum = measure_mask(m)
    assert [c.cobb_deg for c in with_sacrum.curves] == pytest.approx([40.0], abs=2.5)
    assert len(_measure(m).curves) == 2  # read as a column without sacrum, the bend is a second curve


def test_min_cobb_hides_small_curves():
    m = arc_mask(8.0)
    assert len(_measure(m, min_cobb=5.0).curves) == 1
    assert _measure(m, min_cobb=10.0).curves == []


def test_lumbar_apex_and_csvl():
    vm = _measure(s_curve_mask((-20.0, 20.0, -40.0)))
    la = vm.lumbar_apex
    assert la is not None and la["half_width"] > 0
    tll = [c for c in vm.curves if c.region == "thoracolumbar_lumbar"][0]
    assert la["offset"] == pytest.approx(tll.apex_deviation)
    # the CSVL passes through the sacrum: the lowest 15 % of the column
    m = s_curve_mask((-20.0, 20.0, -40.0))
    rows, cols = np.nonzero(m)
    low = rows > rows.max() - 0.15 * (rows.max() - rows.min())
    assert cols[low].min() < vm.csvl_col < cols[low].max()


def test_to_dict_is_json_ready():
    import json

    d = _measure(s_curve_mask(), spacing=0.5, view="coronal").to_dict()
    text = json.dumps(d, allow_nan=False)
    assert '"view": "coronal"' in text and d["scoliosis"] is True and d["unit"] == "mm"
    assert [c["cobb_deg"] for c in d["curves"]] == pytest.approx([40, 60], abs=2)


@pytest.mark.parametrize(
    "mask,kwargs",
    [
        (np.zeros((50, 50), np.uint8), {}),
        (np.ones((3, 50, 50), np.uint8), {}),
        (None, {"min_cobb": 0.0}),
        (None, {"spacing": 0.0}),
    ],
)
def test_bad_input(mask, kwargs):
    with pytest.raises(ValueError):
        _measure(straight_mask() if mask is None else mask, **kwargs)


@pytest.mark.parametrize(
    "mask,reason",
    [
        (straight_mask(length=60), "column widths long"),  # a fragment (part of the lumbar spine, a blob)
        (arc_mask(170.0, length=420, shape=(512, 512)), "loops back"),  # hooks round: no Cobb angle over 150
        (arc_mask(220.0, length=420, shape=(512, 512)), "loops back"),
        (np.zeros((64, 64)), "empty"),
    ],
)
def test_unmeasurable_masks_are_refused_with_the_reason(mask, reason):
    # its own ValueError subclass: a study reports such a view as not measured, unlike a malformed mask
    with pytest.raises(MaskNotMeasurableError, match=reason):
        measure_mask(mask, view="coronal")


@pytest.mark.parametrize(
    "turn,amplitude,period",
    [(0.0, 2.0, 40.0), (0.0, 3.0, 40.0), (0.0, 3.0, 30.0), (30.0, 2.0, 40.0), (30.0, 3.0, 40.0), (-30.0, 2.0, 40.0)],
)
def test_wobbly_outline_keeps_one_curve(turn, amplitude, period):
    """A predicted-looking mask whose mid-line wobbles at one to three vertebrae: at a fixed 10 % smoothing it gave
    12-17 curves of up to 41 degrees; the smoothing grows with the wobble, so the one real curve remains (flattened
    by up to about 3 degrees by the wider window)."""
    vm = measure_mask(wobbly_mask(turn, amplitude, period))
    assert vm.centreline.wobble > 0.03 and any("wobbly outline" in n for n in vm.notes)
    assert len(vm.curves) <= 1
    main = vm.major().cobb_deg if vm.curves else 0.0
    assert main == pytest.approx(abs(turn), abs=7.0)


@pytest.mark.parametrize("amplitude", [0.3, 0.5, 1.0, 2.0])
def test_smoothing_window_ramps_with_the_wobble(amplitude):
    """From WOBBLE_REF to WOBBLE_FULL the window grows linearly from the given smoothing to MAX_SMOOTHING (no step at
    WOBBLE_REF: a mask rotated across it reads the same angles), and stays there above."""
    mask = wobbly_mask(30.0, amplitude, 40.0)
    wobble = extract_centreline(mask, smoothing=0.1, min_component=0.0).wobble
    assert wobble > WOBBLE_REF
    ramp = min((wobble - WOBBLE_REF) / (WOBBLE_FULL - WOBBLE_REF), 1.0)
    expected = 0.1 + ramp * (MAX_SMOOTHING - 0.1)
    notes = [n for n in measure_mask(mask).notes if "wobbly outline" in n]
    assert notes == [f"wobbly outline ({wobble:.3f} of its width): centreline smoothed over {expected:.0%}"]
    if wobble >= WOBBLE_FULL:
        assert expected == MAX_SMOOTHING


@pytest.mark.parametrize("mask", [straight_mask(), arc_mask(45.0), s_curve_mask()])
def test_smooth_masks_keep_the_fine_smoothing(mask):
    vm = measure_mask(mask)
    assert vm.centreline.wobble < 0.01 and not any("wobbly" in n for n in vm.notes)


@pytest.mark.parametrize(
    "tilts,expected",
    [
        # a 6 degree reversal inside the curve: a zig-zag ends the curve there (20 and 26 degrees); the main curve runs
        # between the two most tilted vertebrae, as the AASCE calculator and a reader take it
        ([20.0, 10.0, 0.0, 6.0, -10.0, -20.0], [40.0]),
        # a curve above the main one stays a curve of its own
        ([-10.0, 5.0, 10.0, 0.0, -12.0, -24.0, -10.0, 5.0, 20.0], [20.0, 34.0, 44.0]),
    ],
)
def test_main_curve_between_the_most_tilted_vertebrae(tilts, expected):
    t = np.asarray(tilts)
    rows = 100.0 + 80.0 * np.arange(len(t))
    corners = np.stack([np.stack([rows - 20, np.full_like(rows, c)], 1) for c in (250.0, 350.0, 250.0, 350.0)], 1)
    corners[:, 2:, 0] += 40
    vertebrae = VertebraFit(names=VERTEBRAE[: len(t)], corners=corners, tilt_deg=t)
    centreline = extract_centreline(straight_mask())
    curves = find_vertebra_curves(vertebrae, centreline, min_cobb=5.0)
    assert [round(c.cobb_deg, 6) for c in curves] == expected
