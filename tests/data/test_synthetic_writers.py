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

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import UID, DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian

from r2mf_monai.data.synthetic.writers import (
    synthetic_uid,
    to_stored,
    write_aasce,
    write_dicom,
    write_json,
    write_mask,
    write_png,
)
from r2mf_monai.outputs.atomic import write_with


def _display(rows: int = 40, cols: int = 24) -> np.ndarray:
    ramp = np.linspace(0, 65535, rows * cols).reshape(rows, cols)
    return ramp.astype(np.uint16)


def _info(photometric: str, bits: int, window=(2000.0, 3000.0)) -> dict:
    return {
        "patient_id": "P0007",
        "patient_name": "SYNTHETIC^P0007",
        "sex": "F",
        "age": 14,
        "birth_date": "20060101",
        "study_uid": synthetic_uid(0, "P0007", "study"),
        "series_uid": synthetic_uid(0, "P0007", "coronal", "series"),
        "sop_uid": synthetic_uid(0, "P0007", "coronal", "image"),
        "study_date": "20200101",
        "study_time": "101500",
        "series_number": 1,
        "series_description": "Whole spine standing",
        "view_position": "PA",
        "photometric": photometric,
        "bits_stored": bits,
        "pixel_spacing": 0.3,
        "magnification": 1.1,
        "detector_pitch": 0.148,
        "source_detector": 1800.0,
        "window": window,
        "burnt_in": True,
        "kvp": 85.0,
        "mas": 12.0,
        "exposure_ms": 80.0,
    }


@pytest.mark.parametrize("bits", [8, 12, 14, 16])
@pytest.mark.parametrize("invert", [False, True])
def test_to_stored_range_and_inversion(bits, invert):
    d = _display()
    maxv = (1 << bits) - 1
    low, high = maxv // 10, maxv - maxv // 10
    v = to_stored(d, bits, low, high, invert).astype(int)
    flat = v.ravel()
    if invert:
        assert flat[0] == maxv - low and flat[-1] == maxv - high
        assert np.all(np.diff(flat) <= 0)
    else:
        assert flat[0] == low and flat[-1] == high
        assert np.all(np.diff(flat) >= 0)


def test_to_stored_bad_range():
    with pytest.raises(ValueError, match="low"):
        to_stored(_display(), 12, 100, 5000, False)


@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
@pytest.mark.parametrize("bits", [12, 14, 16])
def test_dicom_roundtrip(tmp_path, photometric, bits):
    maxv = (1 << bits) - 1
    stored = to_stored(_display(), bits, 0, maxv, photometric == "MONOCHROME1")
    path = write_dicom(tmp_path / "a.dcm", stored, _info(photometric, bits))
    assert not list(tmp_path.glob(".*tmp"))
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPClassUID == DigitalXRayImageStorageForPresentation
    assert ds.SOPClassUID == DigitalXRayImageStorageForPresentation
    assert ds.Modality == "DX" and ds.PresentationIntentType == "FOR PRESENTATION"
    assert ds.PhotometricInterpretation == photometric
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, bits, bits - 1, 0)
    assert ds.PresentationLUTShape == ("INVERSE" if photometric == "MONOCHROME1" else "IDENTITY")
    assert ds.PixelIntensityRelationshipSign == (1 if photometric == "MONOCHROME1" else -1)
    assert [float(x) for x in ds.PixelSpacing] == pytest.approx([0.3, 0.3])
    assert [float(x) for x in ds.ImagerPixelSpacing] == pytest.approx([0.33, 0.33])
    assert float(ds.EstimatedRadiographicMagnificationFactor) == pytest.approx(1.1)
    assert ds.PixelSpacingCalibrationType == "GEOMETRY"
    assert float(ds.RescaleSlope) == 1.0 and float(ds.RescaleIntercept) == 0.0
    assert float(ds.WindowCenter) == 2000.0 and float(ds.WindowWidth) == 3000.0
    assert ds.PatientID == "P0007" and str(ds.PatientName) == "SYNTHETIC^P0007"
    assert ds.ViewPosition == "PA" and ds.ImageLaterality == "U" and list(ds.PatientOrientation) == ["L", "F"]
    assert ds.BurnedInAnnotation == "YES"
    for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID):
        assert UID(uid).is_valid
    np.testing.assert_array_equal(ds.pixel_array, stored)
    if photometric == "MONOCHROME1":  # high display values (bone) are stored low
        assert ds.pixel_array[-1, -1] < ds.pixel_array[0, 0]


def test_dicom_bits_overflow(tmp_path):
    with pytest.raises(ValueError, match="BitsStored"):
        write_dicom(tmp_path / "a.dcm", np.full((4, 4), 5000, np.uint16), _info("MONOCHROME2", 12))
    assert not (tmp_path / "a.dcm").exists()


def test_dicom_bytes_deterministic(tmp_path):
    stored = to_stored(_display(), 12, 0, 4095, False)
    a = write_dicom(tmp_path / "a.dcm", stored, _info("MONOCHROME2", 12)).read_bytes()
    b = write_dicom(tmp_path / "b.dcm", stored, _info("MONOCHROME2", 12)).read_bytes()
    assert a == b


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_roundtrip(tmp_path, dtype):
    a = (np.arange(60 * 30).reshape(60, 30) % (256 if dtype == np.uint8 else 4096)).astype(dtype)
    path = write_png(tmp_path / "x.png", a, spacing_mm=0.254)
    with Image.open(path) as im:
        back = np.asarray(im)
        dpi = im.info.get("dpi")
    np.testing.assert_array_equal(back, a)
    assert dpi is not None and dpi[0] == pytest.approx(100.0, rel=1e-3)


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.float32)])
def test_png_bad_array(tmp_path, bad):
    with pytest.raises(ValueError, match="uint8 or uint16"):
        write_png(tmp_path / "x.png", bad)


def test_mask_is_0_255(tmp_path):
    m = np.zeros((10, 10), bool)
    m[2:5, 3:7] = True
    with Image.open(write_mask(tmp_path / "m.png", m)) as im:
        back = np.asarray(im)
        assert im.mode == "L"
    assert set(np.unique(back)) == {0, 255} and (back > 0).sum() == 12


def test_json_and_a_failed_write(tmp_path):
    write_json(tmp_path / "d.json", {"a": [1, 2]})
    assert json.loads((tmp_path / "d.json").read_text()) == {"a": [1, 2]}

    def failing(tmp):
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_with(tmp_path / "e.json", failing)
    assert not (tmp_path / "e.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json"]  # no temporary left behind


def test_synthetic_uid():
    a = synthetic_uid(0, "P0001", "study")
    assert a == synthetic_uid(0, "P0001", "study")
    assert a != synthetic_uid(1, "P0001", "study") and a != synthetic_uid(0, "P0002", "study")
    assert UID(a).is_valid


def test_write_aasce_roundtrip(tmp_path):
    """Corners come back in the AASCE order from the .mat and the (normalised) csv; angles in file order."""
    from r2mf_monai.data.landmarks import read_csv_landmarks, read_mat_landmarks

    rng = np.random.default_rng(0)
    corners = np.array([[[10, 5], [20, 6], [20, 11], [10, 10]]] * 17, float) + [0, 8] * np.arange(17)[:, None, None]
    image = rng.integers(0, 255, (150, 40), dtype=np.uint8)
    write_aasce(tmp_path, [("a", image, corners, (12.5, 3.0, 0.0))], split="test")
    labels = tmp_path / "labels" / "test"
    with Image.open(tmp_path / "data" / "test" / "a.jpg") as im:
        assert im.format == "JPEG" and im.size == (40, 150)
    p2 = read_mat_landmarks(labels / "a.jpg.mat")
    np.testing.assert_allclose(p2[:4], [[10, 5], [20, 6], [10, 10], [20, 11]])  # TL, TR, BL, BR
    ((name, normalised),) = read_csv_landmarks(labels / "landmarks.csv", labels / "filenames.csv")
    assert name == "a.jpg"
    np.testing.assert_allclose(normalised * [40, 150], p2, atol=1e-3)
    np.testing.assert_allclose(np.loadtxt(labels / "angles.csv", delimiter=","), [12.5, 3.0, 0.0])
    with pytest.raises(ValueError, match="three angles"):
        write_aasce(tmp_path / "bad", [("b", image, corners, (1.0, 2.0))])
