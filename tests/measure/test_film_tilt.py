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
from skimage.draw import polygon

from r2mf_monai.measure.cobb import measure_mask
from r2mf_monai.measure.film_tilt import blend_tilts, film_tilts
from r2mf_monai.measure.study import measure_study
from tests.measure.test_endplates import corner_spine

SHRINK = 0.85
"""What film_tilts reads of a tilt on these drawn films: the cone around the column's axis draws it towards the axis
(kept on purpose: a cone re-centred on the first reading read the real AASCE vertebrae worse)."""


def assert_reads(read: float, tilt: float) -> None:
    """``read`` is ``tilt`` drawn towards the axis by the cone: same sign, 75-100 % of it."""
    assert read == pytest.approx(SHRINK * tilt, abs=0.1 * abs(tilt) + 0.5)


def film_and_smooth_mask(axis_deg, tilt_from_axis_deg, seed=0):
    """(film, smooth mask, tilts): a film whose vertebral bodies (bright quadrilaterals from ``corner_spine``) are
    tilted from the column's axis by ``tilt_from_axis_deg``, discs and soft tissue darker, with noise; and the column's
    mask smoothed until its outline has no notches left (what the network draws), running on below L5."""
    mask, corners, tilts = corner_spine(axis_deg, tilt_from_axis_deg)
    film = np.full(mask.shape, 0.15, np.float32)
    film[ndimage.binary_dilation(mask, iterations=3)] = 0.4  # discs and the column's surroundings
    for quad in corners:  # (upper-left, upper-right, lower-left, lower-right) -> polygon order
        rr, cc = polygon(quad[[0, 1, 3, 2], 0], quad[[0, 1, 3, 2], 1], mask.shape)
        film[rr, cc] = 0.9
    film += np.random.default_rng(seed).normal(0, 0.03, film.shape).astype(np.float32)
    smooth = ndimage.gaussian_filter(mask.astype(np.float32), 12) > 0.5
    rows = np.flatnonzero(smooth.any(axis=1))
    tail = smooth[rows[-1] - 30 : rows[-1] - 20].copy()  # carry the column on to the sacrum, as predictions do
    smooth[rows[-1] - 20 : rows[-1] + 100] = np.resize(tail, (120, smooth.shape[1]))
    return film, smooth, tilts


@pytest.mark.parametrize("tilt", [-9.0, 0.0, 5.0, 11.0])
def test_the_film_gives_the_endplates_tilt_where_the_mask_gives_the_axis(tilt):
    film, mask, _ = film_and_smooth_mask(np.zeros(17), np.full(17, tilt))
    vm = measure_mask(mask, lowest_level="S")
    c = vm.centreline
    pitch = vm.levels.s1_endplate * c.length / len(vm.levels.vertebrae)
    read = film_tilts(film, c, pitch)
    middle = (c.fraction > 0.2) & (c.fraction < 0.7)
    assert np.abs(c.tangent_deg[middle]).max() < 1.5  # the straight column's axis says nothing of the tilt
    assert_reads(float(np.median(read[middle])), tilt)


def test_anisotropic_pixels_are_read_in_millimetres():
    film, mask, _ = film_and_smooth_mask(np.zeros(17), np.full(17, 10.0))
    # the same film with every column doubled: 0.5 mm columns, a 10 degree tilt is ~5 degrees in pixels
    film2, mask2 = np.repeat(film, 2, axis=1), np.repeat(mask, 2, axis=1)
    vm = measure_mask(mask2, spacing=(1.0, 0.5), lowest_level="S")
    c = vm.centreline
    read = film_tilts(film2, c, vm.levels.s1_endplate * c.length / len(vm.levels.vertebrae))
    middle = (c.fraction > 0.2) & (c.fraction < 0.7)
    assert_reads(float(np.median(read[middle])), 10.0)


def test_a_blank_film_gives_no_reading_and_the_blend_keeps_the_tangent():
    _, mask, _ = film_and_smooth_mask(np.zeros(17), np.zeros(17))
    vm = measure_mask(mask, lowest_level="S")
    read = film_tilts(np.zeros(mask.shape), vm.centreline, 30.0)
    assert np.isnan(read).all()
    np.testing.assert_array_equal(blend_tilts(vm.centreline.tangent_deg, read), vm.centreline.tangent_deg)
    again = measure_mask(mask, lowest_level="S", image=np.zeros(mask.shape))
    assert [c.cobb_deg for c in again.curves] == [c.cobb_deg for c in vm.curves]


@pytest.mark.parametrize("weight", [0.0, 0.25, 0.5, 1.0])
def test_the_blend_is_the_weighted_mean(weight):
    tangent = np.array([0.0, 2.0, 4.0, 6.0])
    film = np.array([10.0, np.nan, 0.0, 6.0])
    expected = [10.0 * weight, 2.0, 4.0 * (1 - weight), 6.0]
    np.testing.assert_allclose(blend_tilts(tangent, film, weight), expected)


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_a_weight_outside_zero_one_is_refused(bad):
    with pytest.raises(ValueError, match="film_weight"):
        blend_tilts(np.zeros(3), np.zeros(3), bad)
    _, mask, _ = film_and_smooth_mask(np.zeros(17), np.zeros(17))
    with pytest.raises(ValueError, match="film_weight"):
        measure_mask(mask, image=np.zeros(mask.shape), film_weight=bad)


def test_a_film_of_another_shape_is_refused():
    _, mask, _ = film_and_smooth_mask(np.zeros(17), np.zeros(17))
    with pytest.raises(ValueError, match="share one grid"):
        measure_mask(mask, image=np.zeros((10, 10)))
    with pytest.raises(ValueError, match="2-D"):
        film_tilts(np.zeros((2, 3, 4, 5)), measure_mask(mask, lowest_level="S").centreline, 30.0)


@pytest.mark.parametrize("weight", [0.5, 1.0])
def test_endplates_that_turn_on_a_straight_axis_make_a_curve_only_with_the_film(weight):
    # the vertebrae turn through 24 degrees (a curve a reader measures on the endplates) on a straight axis: the mask's
    # outline cannot show it, the film can
    tilts = np.linspace(-12.0, 12.0, 17)
    film, mask, _ = film_and_smooth_mask(np.zeros(17), tilts)
    alone = measure_mask(mask, lowest_level="S")
    seen = measure_mask(mask, lowest_level="S", image=film, film_weight=weight)
    assert alone.major() is None or alone.major().cobb_deg < 5.0
    assert seen.film_tilt_deg is not None and seen.to_dict()["cobb_source"] == "centreline_tangent_and_film"
    assert_reads(seen.major().cobb_deg, 24.0 * weight)
    # the bending view's turning between two levels reads the same profile
    c = seen.major()
    assert abs(seen.turning_between(c.upper_fraction, c.lower_fraction)) == pytest.approx(c.cobb_deg, abs=1e-6)


def test_a_mask_read_from_its_corners_keeps_its_vertebrae_tilts():
    # no tilt profile from the film: the film only helps place the corners (endplates.fit_vertebrae)
    mask, _, _ = corner_spine(np.zeros(17), np.linspace(-12.0, 12.0, 17))
    vm = measure_mask(mask, image=np.random.default_rng(0).random(mask.shape))
    assert vm.vertebrae is not None and vm.film_tilt_deg is None and vm.vertebrae.film_edges
    assert vm.to_dict()["cobb_source"] == "vertebra_tilts_and_film"
    assert measure_mask(mask).to_dict()["cobb_source"] == "vertebra_tilts"


def test_the_study_reads_the_views_with_their_films():
    tilts = np.linspace(-12.0, 12.0, 17)
    film, mask, _ = film_and_smooth_mask(np.zeros(17), tilts)
    report = measure_study({"coronal": mask}, images={"coronal": film}, lowest_level="S")
    assert report.views["coronal"].film_tilt_deg is not None
    assert any("read from the film" in a for a in report.approximations)
    bare = measure_study({"coronal": mask}, lowest_level="S")
    assert bare.views["coronal"].film_tilt_deg is None
    assert not any("read from the film" in a for a in bare.approximations)
