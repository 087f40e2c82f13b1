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


"""Tests of r2mf_monai.outputs.atomic."""

from __future__ import annotations

import gzip
import json
import os

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from r2mf_monai.outputs.atomic import atomic_write, full_suffix, write_json, write_text, write_with

SUFFIX_CASES = [
    ("a.png", ".png"),
    ("case.P0001.png", ".png"),
    ("a_mask.nii.gz", ".nii.gz"),
    ("archive.tar.GZ", ".tar.GZ"),
    ("1.2.840.5", ".5"),
    ("noext", ""),
]


@pytest.mark.parametrize("name, expected", SUFFIX_CASES)
def test_full_suffix(name, expected):
    assert full_suffix(name) == expected


@pytest.mark.parametrize("name", ["a.png", "sub/dir/b_mask.nii.gz", "c.dcm", "noext"])
def test_success_renames_and_keeps_suffix(tmp_path, name):
    final = tmp_path / name
    with atomic_write(final) as tmp:
        assert tmp.parent == final.parent
        assert tmp != final
        assert tmp.name.endswith(full_suffix(final)) and ".tmp-" in tmp.name
        assert not final.exists()
        tmp.write_bytes(b"payload")
    assert final.read_bytes() == b"payload"
    assert sorted(p.name for p in final.parent.iterdir()) == [final.name]


def test_writers_pick_format_from_suffix(tmp_path):
    img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    with atomic_write(tmp_path / "x.png") as tmp:
        Image.fromarray(img).save(tmp)  # PIL picks PNG from the suffix
    with Image.open(tmp_path / "x.png") as im:
        assert im.format == "PNG"
        np.testing.assert_array_equal(np.asarray(im), img)
    with atomic_write(tmp_path / "x.nii.gz") as tmp:
        nib.save(nib.Nifti1Image(img.astype(np.float32), np.eye(4)), tmp)  # nibabel compresses for .gz
    with open(tmp_path / "x.nii.gz", "rb") as f:
        assert f.read(2) == b"\x1f\x8b"
    with gzip.open(tmp_path / "x.nii.gz") as f:
        assert len(f.read()) > 348  # a whole NIfTI-1 header and data


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_failure_removes_temp_and_keeps_old_file(tmp_path, exc):
    final = tmp_path / "out.png"
    final.write_bytes(b"old")
    with pytest.raises(exc), atomic_write(final) as tmp:
        tmp.write_bytes(b"half-writ")
        raise exc("writer failed")
    assert final.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_nothing_written_raises(tmp_path):
    final = tmp_path / "out.png"
    with pytest.raises(FileNotFoundError, match="out.png"), atomic_write(final):
        pass
    assert not final.exists()


def test_missing_folder_without_makedirs(tmp_path):
    final = tmp_path / "missing" / "out.png"
    with pytest.raises(FileNotFoundError, match="missing"), atomic_write(final, makedirs=False) as tmp:
        tmp.write_bytes(b"x")
    assert not final.parent.exists()


def test_permissions_follow_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "p.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(umask)
    assert (tmp_path / "p.txt").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    "write, name, read",
    [
        (lambda p: write_text(p, "a\nb"), "t.md", lambda p: p.read_text()),
        (lambda p: write_json(p, {"a": [1, 2]}), "t.json", lambda p: json.loads(p.read_text())),
        (lambda p: write_with(p, lambda tmp: Image.new("L", (3, 2)).save(tmp)), "t.png", lambda p: Image.open(p).size),
    ],
)
def test_short_forms_write_atomically(tmp_path, write, name, read):
    final = tmp_path / "sub" / name
    assert write(final) == final
    assert read(final) in ("a\nb", {"a": [1, 2]}, (3, 2))
    assert [p.name for p in final.parent.iterdir()] == [name]  # no temporary file left behind


def test_short_form_failure_keeps_the_old_file(tmp_path):
    final = write_text(tmp_path / "t.json", "old")

    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_with(final, fail)
    assert final.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["t.json"]
