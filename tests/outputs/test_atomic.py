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

from r2mf_monai.outputs.atomic import (
    atomic_write,
    check_inside,
    confined_path,
    full_suffix,
    write_json,
    write_text,
    write_with,
)

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


# paths below "root" that resolve outside it: a name with "..", a folder on the way made by mkdir(parents=True),
# a symbolic link in the output folder pointing elsewhere, and the output folder itself
ESCAPES = [
    ("../escaped.png", None),
    ("x_1/../../../escaped_seg.dcm", None),
    ("link/escaped.png", "link"),
    ("link", "link"),
    (".", None),
]


@pytest.mark.parametrize("name, link", ESCAPES)
def test_root_refuses_paths_outside(tmp_path, name, link):
    root, outside = tmp_path / "a" / "out", tmp_path / "elsewhere"
    root.mkdir(parents=True)
    outside.mkdir()
    if link:
        (root / link).symlink_to(outside, target_is_directory=True)
    before = sorted(tmp_path.rglob("*"))
    with (
        pytest.raises(ValueError, match=r"refusing to write .*outside the output folder") as err,
        atomic_write(root / name, root=root) as tmp,
    ):
        tmp.write_bytes(b"x")
    assert str(root) in str(err.value)
    assert sorted(tmp_path.rglob("*")) == before  # no file, and no folder on the way


@pytest.mark.parametrize("name", ["x.png", "sub/dir/x_mask.nii.gz", "sub/../y.png", "1.2.840.5_seg.dcm"])
def test_root_allows_paths_inside(tmp_path, name, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with atomic_write(os.path.join("out", name), root="out") as tmp:  # relative paths, as a user gives them
        tmp.write_bytes(b"x")
    assert (tmp_path / "out" / name).read_bytes() == b"x"


@pytest.mark.parametrize(
    "write",
    [
        lambda p, r: write_text(p, "x", root=r),
        lambda p, r: write_json(p, {"a": 1}, root=r),
        lambda p, r: write_with(p, lambda tmp: tmp.write_text("x"), root=r),
    ],
)
def test_short_forms_pass_root(tmp_path, write):
    with pytest.raises(ValueError, match="outside the output folder"):
        write(tmp_path / "out" / ".." / "escaped.txt", tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


@pytest.mark.parametrize("parts", [("x_mask.png",), ("sub", "x_mask.png"), ("P 1 ünicode", "1.2.840.10008_seg.dcm")])
def test_confined_path(tmp_path, parts):
    assert confined_path(tmp_path, *parts) == tmp_path.joinpath(*parts)
    assert check_inside(tmp_path.joinpath(*parts), tmp_path) == tmp_path.joinpath(*parts)


@pytest.mark.parametrize("part", ["..", ".", "", "a/b", "a\\b", "1/../../../../escaped", "a\0b", "/abs"])
def test_confined_path_refuses_what_is_not_one_name(tmp_path, part):
    with pytest.raises(ValueError, match="not a plain file name") as err:
        confined_path(tmp_path, "sub", part)
    assert str(tmp_path) in str(err.value)
