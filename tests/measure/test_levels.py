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

from r2mf_monai.constants import VERTEBRAE
from r2mf_monai.measure.levels import REGIONS, LevelModel, region_of


def test_edges_cover_the_column_in_order():
    m = LevelModel()
    e = m.edges
    assert e[0] == 0 and e[-1] == 1 and np.all(np.diff(e) > 0)
    assert len(e) == len(VERTEBRAE) + 2  # T1..L5, the sacrum, and the end
    # lumbar vertebrae are taller than thoracic ones
    assert np.diff(e)[VERTEBRAE.index("L3")] > np.diff(e)[VERTEBRAE.index("T3")]


@pytest.mark.parametrize("fraction,level", [(0.0, "T1"), (0.999, "S"), (1.0, "S")])
def test_level_at_the_ends(fraction, level):
    assert LevelModel().level(fraction) == level


@pytest.mark.parametrize("name", ["T1", "T8", "T12", "L3", "L5", "S"])
def test_centre_of_a_level_is_labelled_with_it(name):
    m = LevelModel()
    assert m.level(m.centre(name)) == name
    assert int(m.position(m.centre(name))) == m.names.index(name)


@pytest.mark.parametrize("sacrum_mm", [0.0, 30.0, 75.0])
def test_sacrum_height_moves_the_lumbar_levels(sacrum_mm):
    m = LevelModel(sacrum_mm=sacrum_mm)
    ref = LevelModel(sacrum_mm=75.0)
    # a longer sacrum pushes L3 up the column (a smaller fraction)
    assert (m.centre("L3") >= ref.centre("L3")) == (sacrum_mm <= 75.0)
    # without a sacrum only the lower half of the L5/S1 disc is left below L5
    assert (1.0 - m.edges[-2] < 0.015) == (sacrum_mm == 0.0)


def test_top_level_shifts_labels():
    m = LevelModel(top="T2")
    assert m.level(0.0) == "T2" and "T1" not in m.names


@pytest.mark.parametrize(
    "apex,region",
    [("T1", REGIONS[0]), ("T3", REGIONS[0]), ("T5", REGIONS[0]), ("T6", REGIONS[1]), ("T11", REGIONS[1]),
     ("T12", REGIONS[2]), ("L1", REGIONS[2]), ("L4", REGIONS[2]), ("S", REGIONS[2])],
)  # fmt: skip
def test_region_by_apex_name(apex, region):
    assert region_of(apex) == region


def test_region_by_position_puts_the_t11_t12_disc_in_the_main_thoracic_region():
    m = LevelModel()
    t12_body = m.boundary("T12", body=True)
    t12_extent = m.boundary("T12")
    assert t12_extent < t12_body  # the upper half of the T11/T12 disc belongs to T12's extent
    assert region_of(0.5 * (t12_extent + t12_body), m) == REGIONS[1]
    assert region_of(t12_body + 0.01, m) == REGIONS[2]
    assert region_of(m.boundary("T6") - 0.01, m) == REGIONS[0]
    assert region_of(m.boundary("T6") + 0.01, m) == REGIONS[1]


@pytest.mark.parametrize("kwargs", [{"top": "C7"}, {"sacrum_mm": -1.0}, {"body_heights": {"T1": 0.0}}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        LevelModel(**kwargs)


@pytest.mark.parametrize("call", [lambda: region_of("X9"), lambda: LevelModel().centre("C7")])
def test_unknown_level_names(call):
    with pytest.raises(ValueError):
        call()
