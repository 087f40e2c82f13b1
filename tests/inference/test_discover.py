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

from r2mf_monai.inference.discover import discover_inputs, is_candidate


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
