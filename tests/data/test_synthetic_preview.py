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

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from r2mf_monai.constants import VIEWS
from r2mf_monai.data.synthetic import read_display, synthesize_dataset, write_preview


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("syn_preview")
    synthesize_dataset(out, patients=3, seed=11, scale=0.1, workers=1)
    return out


def test_read_display_is_bone_bright(dataset):
    gt = json.loads((dataset / "ground_truth.json").read_text())
    formats = set()
    for rec in gt["patients"].values():
        for view in VIEWS:
            v = rec["views"][view]
            formats.add((v["format"], v["photometric"]))
            img = read_display(dataset / v["image"])
            assert img.shape == (v["rows"], v["columns"]) and img.min() >= 0 and img.max() <= 1
            with Image.open(dataset / v["label"]) as im:
                spine = np.asarray(im) > 0
            ring = ndimage.binary_dilation(spine, iterations=2) & ~spine
            assert img[spine].mean() > img[ring].mean(), v["image"]
    assert len(formats) >= 2


@pytest.mark.parametrize("patients, per_row", [(1, 2), (3, 2), (["P0002", "P0003"], 1)])
def test_write_preview(dataset, tmp_path, patients, per_row):
    out = write_preview(dataset, tmp_path / "sub" / "preview.png", patients=patients, height=120, per_row=per_row)
    n = patients if isinstance(patients, int) else len(patients)
    with Image.open(out) as im:
        w, h = im.size
    rows = -(-n // per_row)
    assert h == pytest.approx(rows * (120 + 34), abs=3)
    assert w == pytest.approx(3 * min(per_row, n) * 60 * 1.02, abs=4)
    assert not list(out.parent.glob(".*tmp"))


def test_preview_errors(dataset, tmp_path):
    with pytest.raises(FileNotFoundError, match="ground_truth.json"):
        write_preview(tmp_path, tmp_path / "p.png")
    with pytest.raises(ValueError, match="P0099"):
        write_preview(dataset, tmp_path / "p.png", patients=["P0099"])
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_display(tmp_path / "missing.png")
