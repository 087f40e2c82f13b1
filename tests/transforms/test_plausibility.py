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
"""SpinePlausibilityd: the verdict on each predicted mask, from the mask, the film's header and the network's
confidence, as the bundle's post-processing runs it."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from r2mf_monai.transforms import LoadRadiographd, SpinePlausibilityd
from tests.measure.shapes import straight_mask
from tests.transforms.radiograph_files import write_dicom

COLUMN_WH = torch.as_tensor(straight_mask().T[None], dtype=torch.float32)  # (1, W, H), MONAI's layout


def _pred(meta: dict) -> MetaTensor:
    return MetaTensor(COLUMN_WH.clone(), meta={"filename_or_obj": "/films/f.dcm", **meta})


@pytest.mark.parametrize(
    "meta,prob,found,reason",
    [
        ({}, 0.95, True, ""),
        ({}, None, True, ""),
        ({}, 0.6, False, "unsure"),
        ({"body_part_examined": "ANKLE"}, 0.95, False, "ANKLE"),
        ({"view_position": "LL", "modality": "CR"}, 0.95, False, "lateral"),
        ({"pixel_spacing": np.array([0.1, 0.1])}, 0.95, False, "mm wide"),
    ],
)
def test_verdict(caplog, meta, prob, found, reason):
    data = {"pred": _pred(meta)}
    if prob is not None:
        data["prob"] = torch.where(COLUMN_WH > 0, torch.tensor(prob), torch.tensor(0.01))
    with caplog.at_level(logging.WARNING):
        out = SpinePlausibilityd(keys="pred")(data)
    assert torch.equal(out["pred"], COLUMN_WH)
    assert ("prob" in out) == (prob is not None)  # left for the review flag
    assert out["spine"]["spine_found"] is found and reason in out["spine"]["reason"]
    if prob is not None:
        assert out["spine"]["features"]["confidence"] == pytest.approx(prob)
    warned = [r.getMessage() for r in caplog.records if "no spine found" in r.getMessage()]
    assert bool(warned) == (not found) and all("/films/f.dcm" in w for w in warned)


def test_header_of_a_real_file_reaches_the_verdict(tmp_path):
    # the reader keeps BodyPartExamined/ViewPosition/Modality; the verdict reads them from the prediction's meta
    import pydicom

    path = write_dicom(tmp_path / "ankle.dcm", np.full((512, 360), 100, np.uint16), bits_stored=12)
    ds = pydicom.dcmread(path)
    ds.BodyPartExamined = "ANKLE"
    ds.save_as(path)
    image = LoadRadiographd(keys="image")({"image": str(path)})["image"]
    pred = MetaTensor(COLUMN_WH.clone(), meta=dict(image.meta))
    out = SpinePlausibilityd(keys="pred", prob_key=None)({"pred": pred})
    assert out["spine"]["reasons"] == ["the DICOM BodyPartExamined is ANKLE"]


def test_ill_limits():
    with pytest.raises(ValueError, match="unknown keys"):
        SpinePlausibilityd(keys="pred", limits={"max_tilt": 10})
