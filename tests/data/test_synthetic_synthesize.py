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
import pydicom
import pytest
from monai.data import load_decathlon_datalist
from PIL import Image
from scipy import ndimage
from skimage import draw

from r2mf_monai.constants import VERTEBRAE, VIEWS
from r2mf_monai.data.synthetic import split_counts, synthesize_dataset

SCALE = 0.12
LISTS = ("training", "validation", "test")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("syn_a")
    synthesize_dataset(out, patients=4, seed=3, scale=SCALE, workers=1)
    return out


@pytest.fixture(scope="module")
def dicom_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("syn_dcm")
    synthesize_dataset(out, patients=3, seed=5, scale=SCALE, workers=1, formats=("dicom",))
    return out


def _gt(root: Path) -> dict:
    return json.loads((root / "ground_truth.json").read_text())


def _pixels(path: Path) -> np.ndarray:
    if path.suffix == ".dcm":
        return pydicom.dcmread(path).pixel_array
    with Image.open(path) as im:
        return np.asarray(im)


def test_layout_and_datalist(dataset):
    datalist = json.loads((dataset / "datalist.json").read_text())
    assert set(datalist) == set(LISTS)
    seen: dict[str, str] = {}
    for key in LISTS:
        for item in datalist[key]:
            assert set(item) == {"image", "label", "view", "patient_id", "quality"}
            assert item["view"] in VIEWS and item["quality"] in ("high", "medium", "low")
            assert (dataset / item["image"]).is_file() and (dataset / item["label"]).is_file()
            assert Path(item["image"]).stem == Path(item["label"]).stem == f"{item['patient_id']}_{item['view']}"
            assert seen.setdefault(item["patient_id"], key) == key  # a patient is in one list only
    assert sorted(seen) == ["P0001", "P0002", "P0003", "P0004"]
    per_list = [sum(1 for k in seen.values() if k == name) for name in LISTS]
    assert per_list == list(split_counts(4)) == [2, 1, 1]
    for key in LISTS:
        views = sorted(i["view"] for i in datalist[key])
        assert views == sorted(VIEWS * per_list[LISTS.index(key)])  # all three views together
    # MONAI reads it as a decathlon datalist, paths resolved against the folder
    items = load_decathlon_datalist(dataset / "datalist.json", data_list_key="training", base_dir=dataset)
    assert all(Path(i["image"]).is_file() for i in items)


def test_ground_truth_cobb_from_corners(dataset):
    gt = _gt(dataset)
    assert gt["vertebrae"] == list(VERTEBRAE)
    n_curves = 0
    for rec in gt["patients"].values():
        assert rec["split"] in LISTS
        for view in VIEWS:
            v = rec["views"][view]
            c = np.array(v["corners"], float)
            assert c.shape == (17, 4, 2)
            up = np.degrees(np.arctan2(c[:, 1, 1] - c[:, 0, 1], c[:, 1, 0] - c[:, 0, 0]))
            lo = np.degrees(np.arctan2(c[:, 2, 1] - c[:, 3, 1], c[:, 2, 0] - c[:, 3, 0]))
            for curve in v["curves"]:
                n_curves += 1
                u, low = curve["upper_end_index"], curve["lower_end_index"]
                assert VERTEBRAE[u] == curve["upper_end"] and VERTEBRAE[low] == curve["lower_end"]
                assert u < curve["apex_index"] < low or curve["apex_index"] in (u, low)
                assert curve["cobb_deg"] == pytest.approx(abs(lo[low] - up[u]), abs=1e-3)
                assert curve["cobb_deg"] >= 5.0
                # the end vertebrae are the most tilted ones inside the curve
                sign = np.sign(lo[low] - up[u])
                assert sign * up[u] <= (sign * up[u : low + 1]).min() + 1e-6
                assert sign * lo[low] >= (sign * lo[u : low + 1]).max() - 1e-6
                assert curve["convexity"] in ("left", "right") and curve["convexity"] != curve["convexity_image"]
            assert v["major_cobb_deg"] == max((k["cobb_deg"] for k in v["curves"]), default=0.0)
    assert n_curves > 0


def test_masks_cover_every_vertebra(dataset):
    gt = _gt(dataset)
    for rec in gt["patients"].values():
        for view in VIEWS:
            v = rec["views"][view]
            with Image.open(dataset / v["label"]) as im:
                assert im.mode == "L"
                mask = np.asarray(im)
            assert mask.shape == (v["rows"], v["columns"]) == _pixels(dataset / v["image"]).shape
            assert set(np.unique(mask)) == {0, 255}
            assert ndimage.label(mask > 0)[1] == 1
            for quad in list(np.array(v["corners"])) + [np.array(v["sacrum"])]:
                rr, cc = draw.polygon(quad[:, 1], quad[:, 0], mask.shape)
                assert (mask[rr, cc] == 255).all()


def test_sizes_and_spacing_scale(dataset):
    gt = _gt(dataset)
    for rec in gt["patients"].values():
        for v in rec["views"].values():
            assert 1000 * SCALE * 0.95 <= v["rows"] <= 2500 * SCALE * 1.05
            assert v["columns"] < v["rows"]  # portrait
            # T1 .. sacrum spans a plausible 350-650 mm
            pts = np.concatenate([np.array(v["corners"]).reshape(-1, 2), np.array(v["sacrum"])])
            length = (pts[:, 1].max() - pts[:, 1].min()) * v["pixel_spacing"][0]
            assert 350 < length < 650


def test_flexibility_record(dataset):
    for rec in _gt(dataset)["patients"].values():
        assert 0.0 <= rec["flexibility"]["parameter"] <= 1.0
        coronal = rec["views"]["coronal"]["curves"]
        assert len(rec["flexibility"]["curves"]) == len(coronal)
        for f, c in zip(rec["flexibility"]["curves"], coronal, strict=True):
            assert f["coronal_cobb_deg"] == pytest.approx(c["cobb_deg"], abs=1e-3)
            b = f["bending_cobb_deg"]
            assert b == f[f"{f['bending_towards_convexity']}_cobb_deg"]
            assert f["flexibility_index"] == pytest.approx((c["cobb_deg"] - b) / c["cobb_deg"], abs=1e-3)


def test_dicom_attributes(dicom_dataset):
    gt = _gt(dicom_dataset)
    studies = set()
    photometrics = set()
    for pid, rec in gt["patients"].items():
        series = set()
        study = None
        for view in VIEWS:
            v = rec["views"][view]
            ds = pydicom.dcmread(dicom_dataset / v["image"])
            assert ds.Modality == "DX" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.1"
            assert ds.PatientID == pid and ds.PhotometricInterpretation == v["photometric"]
            assert 12 <= ds.BitsStored <= 16 and ds.BitsStored == v["bits_stored"]
            assert (ds.Rows, ds.Columns) == (v["rows"], v["columns"])
            assert [float(s) for s in ds.PixelSpacing] == pytest.approx(v["pixel_spacing"], rel=1e-5)
            assert float(ds.ImagerPixelSpacing[0]) > float(ds.PixelSpacing[0])  # magnification
            assert 0.13 <= float(ds.DetectorElementSpacing[0]) <= 0.2
            study = study or ds.StudyInstanceUID
            assert ds.StudyInstanceUID == study  # one study per patient
            series.add(ds.SeriesInstanceUID)  # one series per view
            # bone is bright on display: stored values are high inside the column for MONOCHROME2, low for 1
            with Image.open(dicom_dataset / v["label"]) as im:
                spine = np.asarray(im) > 0
            ring = ndimage.binary_dilation(spine, iterations=3) & ~spine
            a = ds.pixel_array.astype(float)
            photometrics.add(v["photometric"])
            if v["photometric"] == "MONOCHROME1":
                assert a[spine].mean() < a[ring].mean()
            else:
                assert a[spine].mean() > a[ring].mean()
        assert len(series) == 3
        studies.add(study)
    assert len(studies) == 3
    assert photometrics == {"MONOCHROME1", "MONOCHROME2"}


def test_deterministic_across_workers(dataset, tmp_path):
    other = tmp_path / "again"
    synthesize_dataset(other, patients=4, seed=3, scale=SCALE, workers=2)
    assert (other / "datalist.json").read_bytes() == (dataset / "datalist.json").read_bytes()
    assert (other / "ground_truth.json").read_bytes() == (dataset / "ground_truth.json").read_bytes()
    for f in sorted((dataset / "labels").iterdir()):
        assert (other / "labels" / f.name).read_bytes() == f.read_bytes()  # byte-identical masks
    for f in sorted((dataset / "images").iterdir()):
        np.testing.assert_array_equal(_pixels(other / "images" / f.name), _pixels(f))
        if f.suffix == ".dcm":  # UIDs derive from the seed: the whole file is identical
            assert (other / "images" / f.name).read_bytes() == f.read_bytes()


def test_different_seed_differs(dataset, tmp_path):
    other = tmp_path / "seed4"
    synthesize_dataset(other, patients=4, seed=4, scale=SCALE, workers=1)
    masks_a = [(dataset / "labels" / n).read_bytes() for n in sorted(p.name for p in (dataset / "labels").iterdir())]
    masks_b = [(other / "labels" / n).read_bytes() for n in sorted(p.name for p in (other / "labels").iterdir())]
    assert len(masks_a) == len(masks_b) == 12
    assert all(a != b for a, b in zip(masks_a, masks_b, strict=True))
    assert (
        _gt(dataset)["patients"]["P0001"]["views"]["coronal"]["corners"]
        != _gt(other)["patients"]["P0001"]["views"]["coronal"]["corners"]
    )


@pytest.mark.parametrize(
    "patients, expected",
    [(228, (148, 40, 40)), (114, (74, 20, 20)), (10, (6, 2, 2)), (3, (1, 1, 1)), (2, (1, 1, 0)), (1, (1, 0, 0))],
)
def test_split_counts(patients, expected):
    assert split_counts(patients) == expected
    assert sum(expected) == patients


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"patients": 0}, "patients"),
        ({"patients": -3}, "patients"),
        ({"patients": 2.5}, "patients"),
        ({"scale": 0}, "scale"),
        ({"scale": -1.0}, "scale"),
        ({"scale": float("nan")}, "scale"),
        ({"patients": 5, "split": (3, 1, 2)}, "split"),
        ({"patients": 5, "split": (3, 2)}, "split"),
        ({"patients": 5, "split": (6, -1, 0)}, "split"),
        ({"workers": 0}, "workers"),
        ({"formats": ("jpeg",)}, "formats"),
    ],
)
def test_bad_args(tmp_path, kwargs, match):
    args = {"patients": 3, "scale": SCALE, **kwargs}
    with pytest.raises(ValueError, match=match):
        synthesize_dataset(tmp_path / "bad", **args)
    assert not (tmp_path / "bad").exists()


def test_cli_synthesize(tmp_path):
    from r2mf_monai.cli import synthesize

    path = synthesize(str(tmp_path / "cli"), patients=1, seed=0, scale=0.08, workers=1, preview=True)
    assert Path(path) == tmp_path / "cli" / "datalist.json"
    assert (tmp_path / "cli" / "preview.png").is_file()
    assert json.loads(Path(path).read_text())["training"][0]["patient_id"] == "P0001"
