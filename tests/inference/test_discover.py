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
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from r2mf_monai.inference.discover import check_output_dir, discover_inputs, is_candidate, is_output


def _png(path: Path) -> None:
    Image.fromarray((np.random.default_rng(0).random((20, 12)) * 255).astype(np.uint8)).save(path)


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("a.png", None, True),
        ("film.BMP", b"BM", True),  # every suffix the reader accepts, whatever its case
        ("film.gif", b"GIF89a", True),
        ("film.dic", b"x", True),
        ("scan.nii.gz", b"x", True),
        ("IM0001", b"\0" * 128 + b"DICM" + b"rest", True),
        ("1.2.840.5", b"\0" * 128 + b"DICM", True),
        ("notes.txt", b"hello", False),
        ("README", b"no preamble here at all" * 10, False),
        (".hidden.png", None, False),
    ],
)
def test_candidates(tmp_path: Path, name: str, content: bytes | None, expected: bool) -> None:
    path = tmp_path / name
    if content is None:
        _png(path)
    else:
        path.write_bytes(content)
    assert is_candidate(path) is expected


def test_broken_files_are_skipped_and_reported(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    _png(folder / "good.png")
    _png(folder / "sub" / "nested.png")
    (folder / "bad.png").write_bytes(b"\x89PNG broken")
    report = tmp_path / "out" / "skipped.json"
    items = discover_inputs(str(folder), skipped_report=str(report))
    assert sorted(Path(i["image"]).name for i in items) == ["good.png", "nested.png"]
    skipped = json.loads(report.read_text())["skipped"]
    assert [Path(s["image"]).name for s in skipped] == ["bad.png"]
    assert skipped[0]["reason"]


@pytest.mark.parametrize("setup", ["missing", "empty", "only_broken"])
def test_nothing_to_segment_is_one_clear_error(tmp_path: Path, setup: str) -> None:
    folder = tmp_path / "radiographs"
    if setup != "missing":
        folder.mkdir()
    if setup == "only_broken":
        (folder / "x.dcm").write_bytes(b"garbage")
    with pytest.raises((FileNotFoundError, ValueError), match="radiographs"):
        discover_inputs(str(folder))


def test_stale_skipped_report_does_not_survive_a_clean_run(tmp_path: Path) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    _png(folder / "good.png")
    (folder / "bad.png").write_bytes(b"\x89PNG broken")
    report = out / "skipped_inputs.json"
    discover_inputs(str(folder), skipped_report=str(report), output_dir=str(out))
    assert report.is_file()
    (folder / "bad.png").unlink()
    discover_inputs(str(folder), skipped_report=str(report), output_dir=str(out))
    assert not report.exists()


@pytest.mark.parametrize(
    "name, expected",
    [
        ("P1_mask.png", True),
        ("P1_mask.nii.gz", True),
        ("P1_overlay.png", True),
        ("P1_seg.dcm", True),
        ("P1_sc.dcm", True),
        ("P1_measurements.png", True),
        ("P1_mask.tmp-1a2b3c4d.png", True),  # an atomic writer's leftover after a kill -9
        ("measurements/P1.png", True),
        ("P1_coronal.png", False),
        ("mask.png", False),
        ("1.2.840.5", False),
        ("examples_overlay.dcm", False),  # pydicom's test film: only our overlays are PNG
        ("P1_mask.dcm", False),
        ("P1_seg.png", False),
    ],
)
def test_is_output(tmp_path: Path, name: str, expected: bool) -> None:
    assert is_output(tmp_path / name, tmp_path) is expected


def test_own_outputs_and_the_output_folder_are_not_inputs(tmp_path: Path) -> None:
    """An input folder that holds an earlier run's outputs (and this run's output folder): only radiographs."""
    folder = tmp_path / "in"
    (folder / "measurements").mkdir(parents=True)
    (folder / "results").mkdir()
    for name in ("P1.png", "P1_mask.png", "P1_overlay.png", "measurements/P1_measurements.png", "results/P1.png"):
        _png(folder / name)
    (folder / "P1_seg.dcm").write_bytes(b"\0" * 128 + b"DICM")
    items = discover_inputs(str(folder), output_dir=str(folder / "results"))
    assert [Path(i["image"]).relative_to(folder).as_posix() for i in items] == ["P1.png"]


def test_output_folder_is_not_the_input_folder(tmp_path: Path) -> None:
    _png(tmp_path / "P1.png")
    with pytest.raises(ValueError, match=r"^output folder '.*' is the input folder") as err:
        discover_inputs(str(tmp_path), output_dir=str(tmp_path / "." / ""))
    assert "\n" not in str(err.value)


def _read_only(path: Path) -> None:
    path.mkdir()
    path.chmod(0o500)


UNWRITABLE = [
    pytest.param(lambda p: p.write_text("a file where the folder should be"), id="file_in_the_way"),
    pytest.param(lambda p: p.parent.rmdir() or p.parent.write_text("file"), id="file_on_the_way"),
    pytest.param(
        _read_only,
        id="read_only",
        marks=pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder"),
    ),
]


@pytest.mark.parametrize("make", UNWRITABLE)
def test_unwritable_output_folder_is_one_line(tmp_path: Path, make) -> None:
    out = tmp_path / "parent" / "out"
    out.parent.mkdir()
    make(out)
    with pytest.raises(ValueError, match=r"^output folder '.*out' cannot be written: \w") as err:
        check_output_dir(out)
    assert "\n" not in str(err.value)


def test_output_folder_check_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b"
    assert check_output_dir(out) == str(out)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("max_pixels,skipped", [(None, False), (40 * 30, False), (40 * 30 - 1, True)])
def test_the_pixel_limit_skips_a_film_before_decoding(tmp_path: Path, max_pixels, skipped) -> None:
    # the limit of inference.json's max_pixels reaches the probe: a larger film is named, skipped and reported
    Image.fromarray(np.full((40, 30), 100, np.uint8)).save(tmp_path / "big.png")
    Image.fromarray(np.full((20, 10), 100, np.uint8)).save(tmp_path / "small.png")
    report = tmp_path / "out" / "skipped_inputs.json"
    items = discover_inputs(str(tmp_path), skipped_report=str(report), max_pixels=max_pixels)
    assert [Path(i["image"]).name for i in items] == (["small.png"] if skipped else ["big.png", "small.png"])
    assert report.is_file() == skipped
    if skipped:
        assert "more than max_pixels" in json.loads(report.read_text())["skipped"][0]["reason"]


def test_the_pipeline_reads_the_probed_films_without_decoding_them_again(tmp_path: Path, monkeypatch) -> None:
    from r2mf_monai.transforms import LoadRadiographd
    from r2mf_monai.transforms.readers import RadiographReader

    for name in ("P1_coronal.png", "P1_left_bending.png"):
        _png(tmp_path / name)
    decoded: list[str] = []
    read = RadiographReader.read
    monkeypatch.setattr(RadiographReader, "read", lambda self, data, **k: decoded.append(str(data)) or read(self, data))
    items = discover_inputs(str(tmp_path))
    assert len(decoded) == 2
    pipeline = LoadRadiographd(keys="image")  # inference.json's loader, default settings
    images = [pipeline(item)["image"] for item in items]
    assert len(decoded) == 2 and [img.shape for img in images] == [(1, 12, 20)] * 2
