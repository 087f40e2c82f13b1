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
from skimage.draw import polygon

from r2mf_monai.constants import VERTEBRAE
from r2mf_monai.data.landmarks import column_mask
from r2mf_monai.measure.centreline import binarize_mask
from r2mf_monai.measure.cobb import measure_mask
from r2mf_monai.measure.endplates import (
    FIT_PX,
    aasce_angles,
    detect_lowest_level,
    fit_vertebrae,
    mend_slipped_tilts,
    vertebra_tilts,
)
from r2mf_monai.measure.levels import LevelModel
from tests.measure.shapes import arc_mask


def corner_spine(axis_deg, wobble_deg, shape=(1900, 800), width=150.0, body=75.0, disc=22.0):
    """(mask, corners (17, 4, 2) (row, col), tilts) of a T1-L5 column built from vertebra corners as landmarks2mask
    builds AASCE masks: vertebra i sits on a path whose axis turns through ``axis_deg`` (17 values) and is tilted from
    it by ``wobble_deg`` (the vertebra-by-vertebra wobble of real spines); vertebrae widen from 60 % of ``width`` at
    T1 to ``width`` at L5, lower endplates 6 % wider than upper ones, as on AASCE films (notches at every corner)."""
    axis = np.radians(np.asarray(axis_deg, float))
    tilt = axis + np.radians(np.asarray(wobble_deg, float))
    centres, p = [], np.array([90.0 + body / 2, shape[1] / 2])
    for i in range(17):
        if i:
            a = 0.5 * (axis[i - 1] + axis[i])
            p = p + (body + disc) * np.array([np.cos(a), np.sin(a)])
        centres.append(p)
    corners = []
    for i, (c, t) in enumerate(zip(centres, tilt, strict=True)):
        w = width * (0.6 + 0.4 * i / 16)
        across = np.array([-np.sin(t), np.cos(t)]) * w / 2  # endplate direction (row, col), to the image right
        down = np.array([np.cos(t), np.sin(t)]) * body / 2
        corners.append([c - across - down, c + across - down, c - 1.06 * across + down, c + 1.06 * across + down])
    corners = np.asarray(corners)
    mask = column_mask(corners.reshape(-1, 2)[:, ::-1], shape) > 0
    return mask, corners, np.degrees(tilt)


def _s_axis(amplitude):
    return amplitude * np.sin(np.linspace(0, 2 * np.pi, 17))


CASES = [  # axis turning, wobble of the vertebrae about it (mean |wobble| 3.6-3.9 deg: the tangent's error)
    (np.zeros(17), 6.0 * np.sin(np.arange(17) * 1.3)),
    (np.linspace(-15, 15, 17), 6.0 * np.sin(np.arange(17) * 1.7)),
    (_s_axis(20.0), 6.0 * np.cos(np.arange(17) * 2.3)),
]


@pytest.mark.parametrize("axis,wobble", CASES)
def test_tilts_read_from_the_notches(axis, wobble):
    mask, corners, tilts = corner_spine(axis, wobble)
    np.testing.assert_allclose(vertebra_tilts(corners), tilts, atol=1e-6)  # the construction's convention
    vm = measure_mask(mask)
    assert vm.lowest_level == "L5" and vm.vertebrae is not None
    assert vm.vertebrae.names == VERTEBRAE
    # the centreline's tangent misses each vertebra's tilt by its wobble (3.6-3.9 deg on average)
    assert np.abs(vm.vertebrae.tilt_deg - tilts).mean() < 2.0
    assert np.abs(vm.vertebrae.corners - corners).mean() < 4.0
    # the main curve is the largest tilt difference between end vertebrae, as a reader measures it on endplates
    assert vm.major().cobb_deg == pytest.approx(np.ptp(tilts), abs=4.0)


@pytest.mark.parametrize("axis,wobble", CASES[:2])
def test_corners_placed_between_the_outline_samples(axis, wobble):
    # the dynamic programme's vertices sit on outline samples 3 px apart (a 50th of the width); refined along the
    # outline, half the corners land within a pixel of the true ones (1.1-1.3 px before)
    mask, corners, _ = corner_spine(axis, wobble)
    vm = measure_mask(mask)
    assert np.median(np.linalg.norm(vm.vertebrae.corners - corners, axis=2)) < 1.0


def test_partner_pull_is_weight_over_sigma_squared():
    # only partner_weight / partner_sigma**2 enters the fit (the docs' sweep is over that ratio); a 100 times stronger
    # pull draws each corner to its partner's arc length and reads the S-curve's wobbling vertebrae flatter
    mask, _, tilts = corner_spine(*CASES[2])
    vm = measure_mask(mask)
    fg, names = binarize_mask(mask), vm.vertebrae.names
    default = fit_vertebrae(fg, vm.centreline, names=names)
    same = fit_vertebrae(fg, vm.centreline, names=names, partner_weight=40.0, partner_sigma=0.6)
    np.testing.assert_allclose(same.corners, default.corners)
    strong = fit_vertebrae(fg, vm.centreline, names=names, partner_weight=1000.0)
    assert np.ptp(strong.tilt_deg) < np.ptp(default.tilt_deg) - 1.0 < np.ptp(tilts)


@pytest.mark.parametrize("kwargs", [{"partner_sigma": 0.0}, {"partner_sigma": -0.3}, {"partner_weight": -1.0}])
def test_bad_partner_prior_is_refused(kwargs):
    mask, _, _ = corner_spine(np.zeros(17), np.zeros(17))
    vm = measure_mask(mask)
    with pytest.raises(ValueError, match="partner_weight must be >= 0 and partner_sigma > 0"):
        fit_vertebrae(binarize_mask(mask), vm.centreline, **kwargs)


@pytest.mark.parametrize("lowest_level", ["S", "L5"])
def test_lowest_level_option(lowest_level):
    mask, _, _ = corner_spine(np.linspace(-15, 15, 17), 4.0 * np.sin(np.arange(17) * 1.7))
    vm = measure_mask(mask, lowest_level=lowest_level)
    assert vm.lowest_level == lowest_level
    assert (vm.vertebrae is not None) == (lowest_level == "L5")
    assert vm.levels.sacrum_mm == (0.0 if lowest_level == "L5" else 75.0)


def test_curve_levels_are_the_vertebrae():
    # one curve from T3 to L1 (vertebrae above and below on straight stretches), a little wobble
    axis = np.concatenate([np.full(3, -15.0), np.linspace(-15, 20, 10), np.full(4, 20.0)])
    mask, _, tilts = corner_spine(axis, 4.0 * np.sin(np.arange(17) * 1.7))
    vm = measure_mask(mask, min_cobb=10.0)
    assert len(vm.curves) == 1
    c = vm.curves[0]
    # the end vertebrae are (nearly) the most tilted ones: on the straight stretches the wobble decides which
    upper, lower = VERTEBRAE.index(c.upper_level), VERTEBRAE.index(c.lower_level)
    assert upper <= 4 and lower >= 11
    assert tilts[lower] - tilts[upper] == pytest.approx(np.ptp(tilts), abs=4.0)
    assert c.cobb_deg == pytest.approx(np.ptp(tilts), abs=4.0)
    assert vm.regional_cobb()["MT"] == pytest.approx(c.cobb_deg)
    assert vm.regional_cobb()["PT"] == 0.0 and vm.regional_cobb()["TL/L"] == 0.0


@pytest.mark.parametrize("turn", [0.0, 30.0])
def test_smooth_masks_keep_the_tangent(turn):
    # a smooth band with round ends (a predicted mask): not read as a corner-built column ending at L5
    m = arc_mask(turn)
    vm = measure_mask(m)
    assert vm.lowest_level == "S" and vm.vertebrae is None
    fg = binarize_mask(m)
    assert fit_vertebrae(fg, vm.centreline).notch_px < 0.75


@pytest.mark.parametrize("factor", [6, 10])
def test_upsampled_staircase_is_no_corner_polygon(factor):
    """A mask predicted at low resolution and upsampled to the film (nearest) is as rough as a corner-built outline
    and cut square, but no polygon: the fitted corners leave it far off, so it keeps the tangent."""
    mask, _, _ = corner_spine(np.linspace(-15, 15, 17), 4.0 * np.sin(np.arange(17) * 1.7))
    vm = measure_mask(mask)
    assert vm.vertebrae is not None and vm.vertebrae.fit_px < FIT_PX
    small = mask[factor // 2 :: factor, factor // 2 :: factor]
    up = np.kron(small, np.ones((factor, factor), bool))[: mask.shape[0], : mask.shape[1]]
    vm_up = measure_mask(up)
    assert vm_up.vertebrae is None and vm_up.lowest_level == "S"
    fg = binarize_mask(up)
    fit = fit_vertebrae(fg, vm_up.centreline)
    assert fit.fit_px > FIT_PX and fit.outline_vertices > 4 * len(fit.names)
    assert measure_mask(up, lowest_level="L5").vertebrae is None  # told it ends at L5, still no corner polygon


def test_square_bottom_detected():
    mask, _, _ = corner_spine(np.zeros(17), np.zeros(17))
    vm = measure_mask(mask, lowest_level="S")
    assert detect_lowest_level(binarize_mask(mask), vm.centreline) == "L5"


def _corners_for(tilts, rows, cols):
    t = np.radians(tilts)
    c = np.stack([rows, cols], 1)
    across = np.stack([-np.sin(t), np.cos(t)], 1) * 50
    down = np.stack([np.cos(t), np.sin(t)], 1) * 20
    return np.stack([c - across - down, c + across - down, c - across + down, c + across + down], 1)


C_TILTS = np.array([2.0, 5, 10, 15, 20, 10, 0, -10, -12, -8, -5, -2, 0, 0, 0, 0, 0])
S_TILTS = np.array([0.0, 8, 10, 4, -5, -15, -20, -10, 0, 10, 20, 25, 15, 5, 0, -3, -1])


@pytest.mark.parametrize(
    "tilts,bulge,height,expected",
    [
        # C shape (centres on one side of the line joining the ends): the main curve between the most tilted
        # vertebrae, then the angles from the top vertebra to its upper end and from its lower end to the bottom one
        (C_TILTS, np.sin(np.linspace(0, np.pi, 17)), 1200, (32.0, 18.0, 12.0)),
        # S shape, main curve in the upper half of the image: the largest angle above its upper end and below its
        # lower end (main: -20 at index 6 to 25 at index 11; above: 10 at index 2; below: -3 at index 15)
        (S_TILTS, np.sin(np.linspace(0, 2 * np.pi, 17)), 2400, (45.0, 30.0, 28.0)),
        # the same spine in a shorter image: the main curve in the lower half, the third angle is the largest
        # above the second curve's upper end (index 2: 10; above it 0 at index 0)
        (S_TILTS, np.sin(np.linspace(0, 2 * np.pi, 17)), 1000, (45.0, 30.0, 10.0)),
    ],
)
def test_aasce_angles(tilts, bulge, height, expected):
    rows = 100.0 + 60.0 * np.arange(17)
    got = aasce_angles(tilts, _corners_for(tilts, rows, 300.0 + 40.0 * bulge), image_height=height)
    assert got == pytest.approx(expected, abs=1e-6)


def _jutting_l5(shift, l5_tilt):
    """A corner-built T1-L5 column whose L5 sits ``shift`` column widths out of line with L4 and is tilted
    ``l5_tilt`` degrees more than its wobble (a lateral listhesis, or an annotation that jumps, as on several AASCE
    films): its bottom no longer looks cut square along the centreline's end."""
    axis, wobble = np.linspace(-10, 10, 17), 4.0 * np.sin(np.arange(17) * 1.7)
    wobble[-1] += l5_tilt
    _, corners, tilts = corner_spine(axis, wobble)
    corners = corners.copy()
    corners[-1, :, 1] += shift * 150.0
    return column_mask(corners.reshape(-1, 2)[:, ::-1], (1900, 800)) > 0, corners, tilts


@pytest.mark.parametrize("shift,l5_tilt", [(0.3, 15.0)])
def test_told_l5_reads_a_column_with_a_jutting_end(shift, l5_tilt):
    # told the column ends at L5 (a level model without sacrum), the notches are read although the square-bottom test
    # fails (0.73); the caps are split along the end vertebrae's direction, not along the jog's hook
    mask, corners, tilts = _jutting_l5(shift, l5_tilt)
    vm = measure_mask(mask, lowest_level="S")
    assert detect_lowest_level(binarize_mask(mask), vm.centreline) == "S"
    vm = measure_mask(mask, levels=LevelModel(sacrum_mm=0.0))
    assert vm.vertebrae is not None and vm.lowest_level == "L5"
    assert np.abs(vm.vertebrae.tilt_deg - tilts).mean() < 2.0
    assert abs(vm.vertebrae.tilt_deg[-1] - tilts[-1]) < 2.0  # L5, beside the jog
    assert np.abs(vm.vertebrae.corners - corners).mean() < 4.0
    assert vm.vertebrae.outline_vertices <= 4 * 17


def test_told_l5_keeps_the_tangent_on_smooth_masks():
    # a smooth band said to end at L5 has no notches: its curves still come from the centreline's tangent
    vm = measure_mask(arc_mask(30.0), levels=LevelModel(sacrum_mm=0.0))
    assert vm.vertebrae is None and vm.lowest_level == "L5"


def _slipped(tilts, index, by):
    out = np.array(tilts, float)
    out[index] += by
    return out


@pytest.mark.parametrize(
    "tilts",
    [C_TILTS, S_TILTS, *(np.asarray(a) + np.asarray(w) for a, w in CASES)],
)
def test_mend_slipped_tilts_keeps_smooth_and_wobbling_spines(tilts):
    # real curves (C, S) and a +-6 degree vertebra-by-vertebra wobble are anatomy, not slips
    mended, replaced = mend_slipped_tilts(tilts)
    assert not replaced.any()
    np.testing.assert_array_equal(mended, tilts)


@pytest.mark.parametrize(
    "tilts,index,by",
    [(S_TILTS, 7, 40.0), (S_TILTS, 12, -45.0), (C_TILTS, 4, 20.0), (C_TILTS, 0, 40.0), (S_TILTS, 16, -50.0)],
)
def test_mend_slipped_tilts_replaces_one_slipped_vertebra(tilts, index, by):
    slipped = _slipped(tilts, index, by)
    mended, replaced = mend_slipped_tilts(slipped)
    assert np.flatnonzero(replaced).tolist() == [index]
    expected = slipped[1] if index == 0 else slipped[-2] if index == 16 else 0.5 * (tilts[index - 1] + tilts[index + 1])
    assert mended[index] == pytest.approx(expected)
    np.testing.assert_array_equal(np.delete(mended, index), np.delete(tilts, index))
    # the main angle no longer ends on the slipped vertebra
    rows = 100.0 + 60.0 * np.arange(17)
    corners = _corners_for(tilts, rows, 300.0 + 40.0 * np.sin(np.linspace(0, np.pi, 17)))
    main = aasce_angles(tilts, corners, 2000)[0]
    assert abs(aasce_angles(mended, corners, 2000)[0] - main) < abs(aasce_angles(slipped, corners, 2000)[0] - main)


def test_mend_slipped_tilts_leaves_an_end_under_its_threshold_and_its_neighbour():
    # an end vertebra 43 degrees off (under its threshold on this S-curve) pulls its neighbour's departure to 20: the
    # neighbour is not taken for the slip and mended towards it
    slipped = _slipped(S_TILTS, 16, -45.0)
    slipped[16] += 2.0
    mended, replaced = mend_slipped_tilts(slipped)
    assert not replaced.any()
    np.testing.assert_array_equal(mended, slipped)


def test_mend_slipped_tilts_short_and_bad_args():
    mended, replaced = mend_slipped_tilts([3.0, 40.0])
    assert mended.tolist() == [3.0, 40.0] and not replaced.any()
    for kwargs in ({"spread": -1.0}, {"min_deg": -1.0}, {"end_min_deg": -0.5}):
        with pytest.raises(ValueError, match="must be >= 0"):
            mend_slipped_tilts(S_TILTS, **kwargs)


@pytest.mark.parametrize("axis,wobble", CASES)
def test_fitted_corner_spines_mend_nothing(axis, wobble):
    mask, _, _ = corner_spine(axis, wobble)
    vm = measure_mask(mask)
    assert vm.vertebrae.mended == ()
    assert not any("slipped" in n for n in vm.notes)


def test_a_slipped_vertebra_is_mended():
    # the corners of one side of T8 moved down the outline by most of a body, as a slip of the fitted corners moves
    # them: its tilt is read about 25 degrees off, and mended to within a few degrees of the true one
    mask, _, tilts = corner_spine(*CASES[1])
    vm = measure_mask(mask)
    fit = vm.vertebrae
    corners = fit.corners.copy()
    corners[7, [1, 3], 0] += 60.0  # right side of T8, 60 px down: its tilt reads about 25 degrees off
    slipped_tilts = vertebra_tilts(corners)
    mended, replaced = mend_slipped_tilts(slipped_tilts)
    assert np.flatnonzero(replaced).tolist() == [7]
    assert abs(mended[7] - tilts[7]) < abs(slipped_tilts[7] - tilts[7]) - 15.0


def test_the_measurement_says_which_tilts_were_mended(monkeypatch):
    # the fit of a real film slips where the outline has no notch; here the fit's result is given a mended vertebra
    import dataclasses

    import r2mf_monai.measure.cobb as cobb

    real_fit = cobb.fit_vertebrae
    monkeypatch.setattr(cobb, "fit_vertebrae", lambda *a, **k: dataclasses.replace(real_fit(*a, **k), mended=("T8",)))
    mask, _, _ = corner_spine(*CASES[1])
    notes = measure_mask(mask).notes
    assert any(n.startswith("tilt of T8 taken from the neighbouring vertebrae") for n in notes)


def _film_of(mask, corners, seed=0):
    """A film of a column: bodies (the corners' quadrilaterals) bright, discs darker, soft tissue darker, noise."""
    film = np.where(mask, 0.45, 0.25).astype(np.float32)
    for q in corners:
        rr, cc = polygon(q[[0, 1, 3, 2], 0], q[[0, 1, 3, 2], 1], mask.shape)
        film[rr, cc] = 0.9
    return film + np.random.default_rng(seed).normal(0, 0.05, mask.shape).astype(np.float32)


def _straight_column():
    """A column whose sides run straight (no notch anywhere: where its corners are is the priors' guess) and its
    corners fitted from the outline alone."""
    mask = np.zeros((1900, 800), bool)
    mask[150:1750, 360:441] = True
    fg = binarize_mask(mask)
    vm = measure_mask(mask, lowest_level="L5", film_weight=0)
    return fg, vm.centreline, fit_vertebrae(fg, vm.centreline)


@pytest.mark.parametrize("shift", [-8.0, 8.0])
def test_the_film_places_corners_where_the_outline_is_silent(shift):
    # the film's bodies drawn 8 px above / below where the outline alone puts every inner endplate: with the film the
    # corners follow its endplates (upper corners where the film brightens going down, lower ones where it darkens)
    fg, centreline, alone = _straight_column()
    drawn = alone.corners.copy()
    drawn[1:-1, :, 0] += shift
    drawn[0, 2:, 0] += shift  # T1's lower endplate and L5's upper one; the column's ends stay
    drawn[-1, :2, 0] += shift
    film = _film_of(fg, drawn)
    fit = fit_vertebrae(fg, centreline, image=film)
    assert fit.film_edges and not alone.film_edges
    assert np.abs(alone.corners[1:-1, :, 0] - drawn[1:-1, :, 0]).mean() == pytest.approx(abs(shift))
    assert np.abs(fit.corners[1:-1, :, 0] - drawn[1:-1, :, 0]).mean() < 2.5
    # bone is what is brighter than beside the column: the inverted film (MONOCHROME1 shown raw) reads the same
    np.testing.assert_array_equal(fit_vertebrae(fg, centreline, image=1.0 - film).corners, fit.corners)
    # an RGB picture of the film reads as the film
    rgb = np.repeat(film[..., None], 3, axis=-1)
    np.testing.assert_allclose(fit_vertebrae(fg, centreline, image=rgb).corners, fit.corners)


@pytest.mark.parametrize("image", ["blank", "weight 0"])
def test_a_film_without_edges_changes_nothing(image):
    fg, centreline, alone = _straight_column()
    if image == "blank":
        fit = fit_vertebrae(fg, centreline, image=np.full(fg.shape, 0.5, np.float32))
    else:
        fit = fit_vertebrae(fg, centreline, image=_film_of(fg, alone.corners + 8.0), edge_weight=0.0)
        assert not fit.film_edges
    np.testing.assert_array_equal(fit.corners, alone.corners)


@pytest.mark.parametrize("axis,wobble", CASES)
def test_the_film_keeps_notched_corners(axis, wobble):
    # where the notches are sharp they decide: the film drawn from the same corners moves the tilts by little
    mask, corners, tilts = corner_spine(axis, wobble)
    alone = measure_mask(mask, film_weight=0).vertebrae
    vm = measure_mask(mask, image=_film_of(mask, corners))
    assert vm.vertebrae.film_edges and not alone.film_edges
    assert np.abs(vm.vertebrae.tilt_deg - tilts).mean() <= np.abs(alone.tilt_deg - tilts).mean() + 0.25
    assert np.abs(vm.vertebrae.corners - corners).mean() < 4.0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"edge_weight": -1.0}, "edge_weight must be >= 0"),
        ({"edge_sigma": 0.0}, "edge_sigma > 0"),
        ({"edge_depth": (0.3, 0.1)}, "edge_depth"),
        ({"edge_depth": (-0.1, 0.3)}, "edge_depth"),
    ],
)
def test_bad_film_edge_arguments_are_refused(kwargs, match):
    fg, centreline, _ = _straight_column()
    with pytest.raises(ValueError, match=match):
        fit_vertebrae(fg, centreline, image=np.zeros(fg.shape, np.float32), **kwargs)


def test_a_film_of_another_shape_is_refused():
    fg, centreline, _ = _straight_column()
    with pytest.raises(ValueError, match="the film has shape"):
        fit_vertebrae(fg, centreline, image=np.zeros((100, 100), np.float32))
