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
"""Is it a spine? Columns pass; a film on its side, a blob, a speck, an empty mask, a wide slab, a film whose DICOM
header says ankle, lateral or CT, and a mask the network does not believe do not."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk

from r2mf_monai.measure import measure_study
from r2mf_monai.measure.plausibility import LIMITS, check_spine_mask
from tests.measure.shapes import s_curve_mask, straight_mask


def _blob(shape=(512, 360)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[disk((250, 180), 90, shape=shape)] = True
    return mask


def _speck(shape=(512, 360)) -> np.ndarray:
    return straight_mask(length=60, shape=shape, half_width=6)


def _slab(shape=(512, 360)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[20:500, 20:340] = True
    return mask


COLUMN = straight_mask()  # 400 rows of a 512-row film, 25 px wide
# (name, mask, kwargs, the reason expected, or None for a spine)
CASES = [
    ("column", COLUMN, {}, None),
    ("scoliotic_s_curve", s_curve_mask(), {}, None),
    ("leaning_column", straight_mask(tilt_deg=30), {}, None),
    ("column_with_spacing", COLUMN, {"spacing": (1.2, 1.2), "confidence": 0.95}, None),
    ("film_on_its_side", COLUMN.T, {}, "not vertical"),
    ("blob", _blob(), {}, "not elongated"),
    ("speck", _speck(), {}, "spans only"),
    ("empty", np.zeros((512, 360)), {}, "the predicted mask is empty"),
    ("slab", _slab(), {}, "too wide"),
    ("thin_line", straight_mask(half_width=2), {}, "too thin"),
    ("too_thin_in_mm", COLUMN, {"spacing": (0.2, 0.2)}, "mm wide"),
    ("too_short_in_mm", COLUMN, {"spacing": (0.2, 2.0)}, "mm long"),
    ("unsure_network", COLUMN, {"confidence": 0.6}, "unsure"),
    ("ankle", COLUMN, {"body_part": "ankle"}, "BodyPartExamined is ANKLE"),
    ("lateral", COLUMN, {"view_position": "LL"}, "lateral"),
    ("ct_slice", COLUMN, {"modality": "CT"}, "Modality is CT"),
]


@pytest.mark.parametrize("name,mask,kwargs,reason", CASES, ids=[c[0] for c in CASES])
def test_check_spine_mask(name, mask, kwargs, reason):
    check = check_spine_mask(mask, **kwargs)
    assert check.spine_found == (reason is None), check.reasons
    if reason is not None:
        assert any(reason in r for r in check.reasons), check.reasons
        assert check.reason.startswith("no spine found: ")
    else:
        assert check.reason == "" and check.features["elongation"] > LIMITS["min_elongation"]
    as_json = check.to_dict()
    assert as_json["spine_found"] == check.spine_found and as_json["reasons"] == check.reasons


@pytest.mark.parametrize("body_part", ["SPINE", "TSPINE", "CHEST", "", "WHOLEBODY"])
def test_spinal_or_unknown_body_parts_pass(body_part):
    assert check_spine_mask(COLUMN, body_part=body_part, modality="DX", view_position="PA").spine_found


def test_ill_shaped_mask():
    with pytest.raises(ValueError, match="2-D"):
        check_spine_mask(np.zeros((1, 8, 8)))


@pytest.mark.parametrize(
    "mask,reason",
    [(COLUMN, None), (_speck(), "no spine found"), (COLUMN.T, "no spine found"), (_blob(), "")],
    ids=["column", "speck", "on_its_side", "blob"],
)
def test_measure_refuses_what_is_no_spine(mask, reason):
    # a speck (a short column, 5 widths long, on a tall film) or a film on its side is measurable as a centreline,
    # but no spine: the measurement says so and gives no angle for it (a blob was already refused as a fragment)
    report = measure_study({"coronal": mask.astype(np.uint8)}, spacing=1.0)
    assert ("coronal" in report.views) == (reason is None), report.not_measured
    if reason is not None:
        assert report.not_measured["coronal"].startswith(reason), report.not_measured
        assert report.lenke is None and not report.to_dict()["views"]


def test_measure_study_refused_views():
    report = measure_study(
        {"coronal": COLUMN}, refused={"coronal": "no spine found: the DICOM BodyPartExamined is ANKLE"}
    )
    assert report.not_measured == {"coronal": "no spine found: the DICOM BodyPartExamined is ANKLE"}
    assert not report.views
