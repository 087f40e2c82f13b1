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

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import Dataset, MetaTensor
from monai.transforms import LoadImaged

from r2mf_monai.transforms.load import LoadRadiograph, LoadRadiographd
from r2mf_monai.transforms.readers import RadiographNotFoundError, RadiographReader, RadiographReadError
from tests.transforms.radiograph_files import make_pixels, write_dicom, write_png

PIXELS = make_pixels()


def test_loads_image_and_label(tmp_path):
    image = write_dicom(
        tmp_path / "P0001_coronal.dcm",
        (4095 - PIXELS).astype(np.uint16),
        bits_stored=12,
        photometric="MONOCHROME1",
        pixel_spacing=(0.2, 0.25),
    )
    label = write_png(tmp_path / "P0001_coronal_mask.png", ((PIXELS > 2000) * 255).astype(np.uint8))
    out = LoadRadiographd(keys=["image", "label"])({"image": str(image), "label": str(label), "view": "coronal"})
    for key in ("image", "label"):
        assert isinstance(out[key], MetaTensor) and out[key].dtype == torch.float32
        assert out[key].shape == (1, PIXELS.shape[1], PIXELS.shape[0])
    np.testing.assert_array_equal(out["image"][0].numpy(), PIXELS.T.astype(np.float32))
    assert set(np.unique(out["label"].numpy())) == {0.0, 255.0}
    assert out["image"].meta["filename_or_obj"] == str(image)
    assert out["label"].meta["filename_or_obj"] == str(label)
    assert out["view"] == "coronal"


def test_missing_label_key_allowed(tmp_path):
    image = write_png(tmp_path / "a.png", PIXELS)
    out = LoadRadiographd(keys=["image", "label"], allow_missing_keys=True)({"image": str(image)})
    assert "label" not in out and out["image"].shape[0] == 1


def test_array_passes_through():
    arr = PIXELS.T.astype(np.int32)
    img = LoadRadiograph()(arr)
    assert isinstance(img, MetaTensor) and img.shape == (1, *arr.shape) and img.dtype == torch.float32
    np.testing.assert_array_equal(img[0].numpy(), arr)


def _empty(tmp_path):
    (tmp_path / "empty.dcm").write_bytes(b"")
    return tmp_path / "empty.dcm"


def _corrupt_dicom(tmp_path):
    (tmp_path / "corrupt.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 50)
    return tmp_path / "corrupt.dcm"


def _volume(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((8, 9, 4), np.float32), np.eye(4)), tmp_path / "volume.nii.gz")
    return tmp_path / "volume.nii.gz"


def _folder(tmp_path):
    (tmp_path / "series").mkdir()
    return tmp_path / "series"


def _text(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path / "notes.txt"


def _truncated_png(tmp_path):
    data = write_png(tmp_path / "full.png", PIXELS).read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[:100])
    return tmp_path / "truncated.png"


@pytest.mark.parametrize(
    "make,reason",
    [
        (_empty, "empty"),
        (_corrupt_dicom, "DICOM"),
        (_volume, "3-D volume"),
        (_folder, "folder"),
        (_text, "unknown format"),
        (_truncated_png, "truncated|decode"),
    ],
)
def test_one_clear_error_naming_the_file(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(RadiographReadError, match=reason) as info:
        LoadRadiographd(keys="image")({"image": str(path)})
    assert str(path) in str(info.value)
    assert "cannot find a suitable reader" not in str(info.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.png"
    with pytest.raises(FileNotFoundError, match="no such file") as info:
        LoadRadiograph()(str(path))
    assert isinstance(info.value, RadiographNotFoundError) and isinstance(info.value, ValueError)
    assert str(path) in str(info.value)


def test_error_inside_a_dataset_names_the_file(tmp_path):
    path = _volume(tmp_path)
    ds = Dataset([{"image": str(path)}], transform=LoadRadiographd(keys="image"))
    with pytest.raises(Exception) as info:
        ds[0]
    chain, err = [], info.value
    while err is not None:
        chain.append(err)
        err = err.__cause__
    assert any(isinstance(e, RadiographReadError) and str(path) in str(e) for e in chain)


@pytest.mark.parametrize("make", [_text, lambda tmp_path: tmp_path / "nowhere.png"])
def test_why_not_plain_loadimaged(tmp_path, make):
    """MONAI's LoadImaged with our reader falls back to its default readers when ``read`` fails, then raises a
    generic RuntimeError; LoadRadiographd raises our error with the reason."""
    path = make(tmp_path)
    with pytest.raises(RuntimeError, match="cannot find a suitable reader"):
        LoadImaged(keys="image", reader=RadiographReader())({"image": str(path)})
    with pytest.raises(RadiographReadError, match="unknown format|no such file"):
        LoadRadiographd(keys="image")({"image": str(path)})


@pytest.mark.parametrize("max_pixels,refused", [(None, False), (48 * 37, False), (48 * 37 - 1, True)])
def test_max_pixels_of_the_dict_transform(tmp_path, max_pixels, refused):
    path = write_png(tmp_path / "a.png", make_pixels())  # 48 rows x 37 columns
    load = LoadRadiographd(keys="image", max_pixels=max_pixels)
    if refused:
        with pytest.raises(RadiographReadError, match=f"'{path}'.*more than max_pixels"):
            load({"image": str(path)})
    else:
        assert load({"image": str(path)})["image"].shape == (1, 37, 48)


def _decodes(monkeypatch) -> list[str]:
    """Names of the files the reader decodes from now on."""
    decoded: list[str] = []
    original = RadiographReader.read

    def counting(self, data, **kwargs):
        decoded.extend(str(name) for name in (data if isinstance(data, (list, tuple)) else [data]))
        return original(self, data, **kwargs)

    monkeypatch.setattr(RadiographReader, "read", counting)
    return decoded


def test_probed_image_is_handed_over_once(tmp_path, monkeypatch):
    image = write_dicom(tmp_path / "P0001_coronal.dcm", PIXELS.astype(np.uint16), bits_stored=12)
    decoded = _decodes(monkeypatch)
    LoadRadiographd(keys="image").probe({"image": str(image)})
    first = LoadRadiographd(keys="image")({"image": str(image)})["image"]
    assert decoded == [str(image)]  # the pipeline's read took the probed image
    np.testing.assert_array_equal(first[0].numpy(), PIXELS.T.astype(np.float32))
    assert first.meta["filename_or_obj"] == str(image)
    second = LoadRadiographd(keys="image")({"image": str(image)})["image"]
    assert len(decoded) == 2 and second is not first  # handed over once, then read again
    np.testing.assert_array_equal(second.numpy(), first.numpy())


@pytest.mark.parametrize(
    "other",
    [
        {"max_pixels": 10**9},  # other settings: another image
        {"voi_lut": "none"},
        {"dtype": np.float64},
    ],
)
def test_probe_is_not_taken_by_other_settings(tmp_path, monkeypatch, other):
    image = write_png(tmp_path / "a.png", PIXELS)
    decoded = _decodes(monkeypatch)
    LoadRadiograph().probe(image)
    LoadRadiograph(**other)(str(image))
    assert len(decoded) == 2


def test_probe_of_a_changed_file_is_not_taken(tmp_path, monkeypatch):
    image = write_png(tmp_path / "a.png", PIXELS)
    LoadRadiograph().probe(image)
    write_png(tmp_path / "b.png", 4095 - PIXELS)
    (tmp_path / "b.png").replace(image)  # the file was replaced after the probe
    np.testing.assert_array_equal(LoadRadiograph()(str(image))[0].numpy(), (4095 - PIXELS).T.astype(np.float32))


def test_probe_raises_the_loaders_error_and_keeps_nothing(tmp_path, monkeypatch):
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"\0" * 128 + b"DICM" + b"\1" * 50)
    with pytest.raises(RadiographReadError, match="broken.dcm"):
        LoadRadiographd(keys="image").probe({"image": str(bad)})
    with pytest.raises(RadiographReadError, match="broken.dcm"):
        LoadRadiographd(keys="image")({"image": str(bad)})


def test_handover_is_bounded(tmp_path, monkeypatch):
    import r2mf_monai.transforms.load as load

    one = PIXELS.size * 4
    monkeypatch.setattr(load, "HANDOVER_BYTES", int(2.5 * one))  # room for two images
    files = [write_png(tmp_path / f"{i}.png", PIXELS + i) for i in range(3)]
    for f in files:
        LoadRadiograph().probe(f)
    decoded = _decodes(monkeypatch)
    for f in files:
        LoadRadiograph()(str(f))
    assert decoded == [str(files[0])]  # the oldest went first
