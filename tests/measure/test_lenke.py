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

import pytest

from r2mf_monai.measure.cobb import Curve, ViewMeasurement, measure_mask
from r2mf_monai.measure.lenke import (
    classify_lenke,
    lenke_curve_type,
    lumbar_modifier,
    resolve_orientation,
)
from r2mf_monai.measure.levels import REGIONS, LevelModel
from tests.measure.shapes import arc_mask, straight_mask

PT, MT, TLL = REGIONS
# a classic pattern on PA display (patient seen from behind): right thoracic (convex image right), left proximal
# thoracic and left lumbar curves (convex image left)
CONVEX = {PT: "image_left", MT: "image_right", TLL: "image_left"}
OTHER = {"image_left": "image_right", "image_right": "image_left"}


def _curve(region: str, cobb: float, convex: str | None = None) -> Curve:
    levels = {PT: ("T1", "T5", "T3"), MT: ("T5", "T11", "T8"), TLL: ("T11", "L4", "L1")}[region]
    return Curve(cobb, *levels, region=region, convex=convex or CONVEX[region])


def _views(coronal: dict, residual: dict, lean: float = 20.0):
    """Coronal view with ``coronal`` cobbs; on PA display the bending view towards each curve's convexity holds its
    ``residual`` and the *other* bending view the curve made worse (so choosing the wrong view changes the answer)."""
    left, right = [], []
    for region, res in residual.items():
        toward = right if CONVEX[region] == "image_right" else left
        away = left if toward is right else right
        toward.append(_curve(region, res))
        away.append(_curve(region, coronal[region] + 10))
    cor = ViewMeasurement([_curve(r, c) for r, c in coronal.items()], view="coronal", lean_deg=0.0)
    return (
        cor,
        ViewMeasurement(left, view="left_bending", lean_deg=-lean),
        ViewMeasurement(right, view="right_bending", lean_deg=lean),
    )


LENKE_CASES = [
    ({PT: 20, MT: 50, TLL: 30}, {PT: 10, MT: 30, TLL: 10}, 1),
    ({PT: 35, MT: 55, TLL: 25}, {PT: 28, MT: 30, TLL: 5}, 2),
    ({PT: 15, MT: 60, TLL: 45}, {PT: 5, MT: 40, TLL: 30}, 3),
    ({PT: 35, MT: 70, TLL: 60}, {PT: 30, MT: 50, TLL: 35}, 4),
    ({PT: 30, MT: 50, TLL: 60}, {PT: 26, MT: 30, TLL: 40}, 4),
    ({MT: 25, TLL: 50}, {MT: 10, TLL: 20}, 5),
    ({MT: 45, TLL: 55}, {MT: 30, TLL: 20}, 6),
    ({MT: 40}, {MT: 10}, 1),
]


@pytest.mark.parametrize("coronal,residual,expected", LENKE_CASES)
def test_lenke_types(coronal, residual, expected):
    res = classify_lenke(*_views(coronal, residual), orientation="PA")
    assert res.curve_type == expected
    assert res.candidates == [expected]
    majors = [a for a in res.curves if a.major]
    assert len(majors) == 1 and majors[0].structural
    assert res.sagittal_modifier is None
    assert any("sagittal" in u for u in res.undetermined)


def test_flexibility_uses_the_bending_view_towards_the_convexity():
    res = classify_lenke(*_views({MT: 50, TLL: 30}, {MT: 20, TLL: 12}), orientation="PA")
    mt = next(a for a in res.curves if a.region == MT)
    tll = next(a for a in res.curves if a.region == TLL)
    assert mt.bending_view == "right_bending" and tll.bending_view == "left_bending"
    assert mt.residual_deg == 20 and mt.flexibility_pct == pytest.approx(60.0)
    assert tll.residual_deg == 12 and tll.flexibility_pct == pytest.approx(60.0)
    assert mt.coronal.patient_side == "right" and tll.coronal.patient_side == "left"


def test_ap_display_swaps_the_bending_view():
    cor, left, right = _views({MT: 50, TLL: 30}, {MT: 20, TLL: 12})
    res = classify_lenke(cor, left, right, orientation="AP")
    mt = next(a for a in res.curves if a.region == MT)
    # on AP display a curve convex to the image right is a left curve: the left-bending view (with 60 deg) assesses it
    assert mt.coronal.patient_side == "left" and mt.bending_view == "left_bending" and mt.residual_deg == 60


@pytest.mark.parametrize("lean,display,source", [(20.0, "PA", "bending_views"), (-20.0, "AP", "bending_views"),
                                                  (0.5, "PA", "assumed")])  # fmt: skip
def test_orientation_from_the_trunk_lean(lean, display, source):
    cor, left, right = _views({MT: 50}, {MT: 20}, lean=lean)
    o = resolve_orientation(cor, left, right, "auto")
    assert (o["display"], o["source"]) == (display, source)
    res = classify_lenke(cor, left, right)
    assert res.orientation["display"] == display
    assert any("assumed" in n or "inferred" in n for n in res.notes)


def test_caller_orientation_conflicting_with_the_lean_is_flagged():
    cor, left, right = _views({MT: 50}, {MT: 20}, lean=-20.0)
    res = classify_lenke(cor, left, right, orientation="PA")
    assert res.orientation["display"] == "PA" and res.orientation["observed"] == "AP"
    assert any("check which file" in n for n in res.notes)


def test_missing_bending_view_leaves_the_type_open():
    cor, left, right = _views({PT: 30, MT: 50, TLL: 35}, {PT: 20, MT: 20, TLL: 20})
    res = classify_lenke(cor, None, right, orientation="PA")
    assert res.curve_type is None
    assert res.candidates == [1, 2, 3, 4]
    assert {a.region: a.structural for a in res.curves} == {PT: None, MT: True, TLL: None}
    assert "left-bending view" in res.undetermined[0]
    assert res.label.startswith("undetermined")


def test_coronal_only_gives_candidates():
    cor, _, _ = _views({MT: 50, TLL: 20}, {MT: 20, TLL: 10})
    res = classify_lenke(cor)
    assert res.curve_type is None and res.candidates == [1, 3]
    # without bending views nothing tells the display convention: no patient side is claimed
    assert res.orientation["source"] == "assumed" and all(a.coronal.patient_side is None for a in res.curves)
    assert classify_lenke(cor, orientation="AP").curves[0].coronal.patient_side is not None


def test_largest_proximal_thoracic_curve_makes_the_main_thoracic_major():
    res = classify_lenke(*_views({PT: 50, MT: 45}, {PT: 40, MT: 20}), orientation="PA")
    assert next(a for a in res.curves if a.major).region == MT
    assert res.curve_type == 2


@pytest.mark.parametrize("coronal", [{MT: 8.0}, {PT: 30.0}, {}])
def test_not_classifiable(coronal):
    cor = ViewMeasurement([_curve(r, c) for r, c in coronal.items()], view="coronal")
    res = classify_lenke(cor)
    assert res.curve_type is None and res.candidates == []
    assert res.notes


def test_over_corrected_curve_has_flexibility_above_100_percent():
    # coronal: one 40 degree curve; the bending view towards its convexity is straight or bent the other way
    no_sacrum = LevelModel(sacrum_mm=0.0)
    cor = measure_mask(arc_mask(40.0), view="coronal", levels=no_sacrum)
    side = "right_bending" if cor.curves[0].convex == "image_right" else "left_bending"
    for mask, low, high in ((straight_mask(), 90, 110), (arc_mask(-12.0), 115, 145)):
        bend = measure_mask(mask, view=side, levels=no_sacrum)
        res = classify_lenke(cor, **{side: bend}, orientation="PA")
        a = res.curves[0]
        assert a.residual_source in ("end_levels", "curve")
        assert low <= a.flexibility_pct <= high


@pytest.mark.parametrize(
    "offset,half,expected",
    [(0.0, 10.0, "A"), (4.9, 10.0, "A"), (-6.0, 10.0, "B"), (10.0, 10.0, "B"), (12.0, 10.0, "C")],
)
def test_lumbar_modifier(offset, half, expected):
    assert lumbar_modifier(offset, half) == expected


def test_lumbar_modifier_from_the_coronal_view():
    cor, left, right = _views({MT: 25, TLL: 50}, {MT: 10, TLL: 20})
    cor.lumbar_apex = {"level": "L2", "offset": -30.0, "half_width": 20.0}
    res = classify_lenke(cor, left, right, orientation="PA")
    assert res.label == "5C"
    assert res.lumbar_details["lumbar_apex"] == "L2"


@pytest.mark.parametrize(
    "structural,major,expected",
    [
        ({PT: False, TLL: False}, MT, [1]),
        ({PT: True, TLL: None}, MT, [2, 4]),
        ({PT: True, MT: False}, TLL, []),
        ({MT: None}, TLL, [5, 6]),
    ],
)
def test_lenke_curve_type_table(structural, major, expected):
    assert lenke_curve_type(structural, major) == expected


@pytest.mark.parametrize(
    "call",
    [
        lambda: lenke_curve_type({}, PT),
        lambda: lumbar_modifier(1.0, 0.0),
        lambda: lumbar_modifier(1.0, 1.0, pedicle_ratio=1.5),
        lambda: resolve_orientation(None, None, None, "XY"),
    ],
)
def test_bad_arguments(call):
    with pytest.raises(ValueError):
        call()
