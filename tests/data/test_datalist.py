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
from monai.data import load_decathlon_datalist
from PIL import Image

from r2mf_monai.cli import datalist as datalist_cli
from r2mf_monai.data.datalist import build_datalist, parse_stem, split_patients

ALIASES = {"coronal": "AP", "left_bending": "lb", "right_bending": "Right-Bending"}


def make_folders(root: Path, patients: int = 20, aliases=None, labels: bool = True) -> tuple[Path, Path]:
    images, masks = root / "data" / "images", root / "data" / "labels"
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    tiny = Image.fromarray(np.zeros((4, 3), np.uint8))
    for p in range(1, patients + 1):
        for view in ("coronal", "left_bending", "right_bending"):
            name = f"P{p:04d}_{(aliases or {}).get(view, view)}"
            tiny.save(images / f"{name}.png")
            if labels:
                tiny.save(masks / f"{name}.png")
    return images, masks


@pytest.mark.parametrize(
    "stem,expected",
    [
        ("P0001_coronal", ("P0001", "coronal")),
        ("P0001_left_bending", ("P0001", "left_bending")),
        ("case-12 LB", ("case-12", "left_bending")),
        ("P_0001_c", ("P_0001", "coronal")),
        ("sunhl-1th-02-Jan-2017-162 A AP", ("sunhl-1th-02-Jan-2017-162 A", "coronal")),
        ("x_Right-Bending", ("x", "right_bending")),
        ("P1_lateral", None),
        ("P1coronal", None),
    ],
)
def test_parse_stem(stem, expected):
    assert parse_stem(stem) == expected


def test_build_split_by_patient(tmp_path):
    images, masks = make_folders(tmp_path, aliases=ALIASES)
    out = build_datalist(images, masks, output=tmp_path / "out" / "datalist.json", seed=0)
    content = json.loads(out.read_text())
    parts = {k: content[k] for k in ("training", "validation", "test")}
    assert [len(v) for v in parts.values()] == [13 * 3, 4 * 3, 3 * 3]  # 20 patients: 13 / 3.5 / 3.5, largest rest
    patients = {k: {i["patient_id"] for i in v} for k, v in parts.items()}
    assert not (patients["training"] & patients["validation"] or patients["training"] & patients["test"])
    assert not patients["validation"] & patients["test"]
    for items in parts.values():
        for item in items:
            assert item["view"] in ("coronal", "left_bending", "right_bending")
            assert item["image"].startswith("../data/images/") and item["label"].startswith("../data/labels/")
            assert Path(item["image"]).name == Path(item["label"]).name
    # readable by MONAI with paths relative to the datalist's folder
    loaded = load_decathlon_datalist(out, data_list_key="training", base_dir=out.parent)
    assert all(Path(i["image"]).is_file() and Path(i["label"]).is_file() for i in loaded)
    assert not list(out.parent.glob(".*.tmp"))  # written atomically


def test_seed_controls_split(tmp_path):
    images, masks = make_folders(tmp_path, patients=12)
    a = json.loads(build_datalist(images, masks, output=tmp_path / "a.json", seed=1).read_text())
    b = json.loads(build_datalist(images, masks, output=tmp_path / "b.json", seed=1).read_text())
    c = json.loads(build_datalist(images, masks, output=tmp_path / "c.json", seed=2).read_text())
    assert a["training"] == b["training"] and a["test"] == b["test"]
    assert {i["patient_id"] for i in a["test"]} != {i["patient_id"] for i in c["test"]}


def test_unlabelled_list_for_inference(tmp_path):
    images, _ = make_folders(tmp_path, patients=2, labels=False)
    content = json.loads(build_datalist(images, output=tmp_path / "infer.json").read_text())
    assert content["training"] == [] and len(content["test"]) == 6
    assert all("label" not in i for i in content["test"])


def test_custom_pattern(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name in ("coronal-17.png", "lb-17.png", "rb-17.png"):
        Image.fromarray(np.zeros((2, 2), np.uint8)).save(folder / name)
    out = build_datalist(folder, output=tmp_path / "d.json", pattern=r"(?P<view>[a-z]+)-(?P<patient_id>\d+)")
    views = sorted(i["view"] for i in json.loads(out.read_text())["test"])
    assert views == ["coronal", "left_bending", "right_bending"]


def test_paper_split_counts():
    train, val, test = split_patients([f"P{i}" for i in range(228)])
    assert (len(train), len(val), len(test)) == (148, 40, 40)
    assert not set(train) & set(val) and not set(val) & set(test)


def test_cli(tmp_path):
    images, masks = make_folders(tmp_path, patients=3)
    path = datalist_cli(str(images), str(masks), output=str(tmp_path / "cli.json"), split=(0.34, 0.33, 0.33))
    assert Path(path).is_file() and len(json.loads(Path(path).read_text())["training"]) == 3


def test_missing_label(tmp_path):
    images, masks = make_folders(tmp_path, patients=2)
    (masks / "P0002_left_bending.png").unlink()
    with pytest.raises(FileNotFoundError, match="P0002_left_bending.png") as info:
        build_datalist(images, masks, output=tmp_path / "d.json")
    assert str(masks) in str(info.value)
    assert not (tmp_path / "d.json").exists()


def test_unmatched_file_name(tmp_path):
    images, masks = make_folders(tmp_path, patients=1)
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(images / "scan_007.png")
    with pytest.raises(ValueError, match="scan_007.png"):
        build_datalist(images, masks, output=tmp_path / "d.json")


def test_unknown_view_alias_with_custom_pattern(tmp_path):
    images, masks = make_folders(tmp_path, patients=1)
    for folder in (images, masks):
        Image.fromarray(np.zeros((2, 2), np.uint8)).save(folder / "P0001_oblique.png")
    with pytest.raises(ValueError, match="P0001_oblique.*'oblique' is not a known alias"):
        build_datalist(images, masks, output=tmp_path / "d.json", pattern=r"(?P<patient_id>P\d+)_(?P<view>.+)")


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="no images in folder .*empty"):
        build_datalist(tmp_path / "empty", output=tmp_path / "d.json")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_datalist(tmp_path / "nowhere", output=tmp_path / "d.json")


def test_duplicate_stems(tmp_path):
    images, masks = make_folders(tmp_path, patients=1)
    (images / "P0001_coronal.dcm").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="P0001_coronal"):
        build_datalist(images, masks, output=tmp_path / "d.json")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"split": (0.5, 0.5, 0.5)}, "split"),
        ({"split": (0.5, 0.5)}, "split"),
        ({"pattern": r"(?P<patient_id>.+)"}, "named groups"),
        ({"pattern": r"(?P<patient_id>"}, "regular expression"),
    ],
)
def test_ill_arg(tmp_path, kwargs, match):
    images, masks = make_folders(tmp_path, patients=1)
    with pytest.raises(ValueError, match=match):
        build_datalist(images, masks, output=tmp_path / "d.json", **kwargs)


def test_join_datalists(tmp_path):
    from r2mf_monai.data.datalist import join_datalists

    for name, extra in (("a", {"quality": "high"}), ("b", {})):
        (tmp_path / name).mkdir()
        item = {"image": "i.png", "label": "l.png", **extra}
        (tmp_path / name / "datalist.json").write_text(json.dumps({"training": [item]}))
    assert join_datalists(None, "training") == [] and join_datalists([], "training") == []
    one = join_datalists(str(tmp_path / "a" / "datalist.json"), "training")
    assert one == [{"image": str(tmp_path / "a" / "i.png"), "label": str(tmp_path / "a" / "l.png"), "quality": "high"}]
    both = join_datalists([tmp_path / "a" / "datalist.json", tmp_path / "b" / "datalist.json"], "training")
    assert [d["quality"] for d in both] == ["high", ""]  # keys aligned, so a mixed batch collates
    assert both[1]["image"] == str(tmp_path / "b" / "i.png")
    with pytest.raises(ValueError, match="'validation'"):  # the first datalist must have the list
        join_datalists([tmp_path / "a" / "datalist.json"], "validation")
    assert len(join_datalists([tmp_path / "a" / "datalist.json", tmp_path / "b" / "datalist.json"], "training")) == 2
    with pytest.raises(FileNotFoundError, match="nope.json"):
        join_datalists([tmp_path / "a" / "datalist.json", tmp_path / "nope.json"], "training")
