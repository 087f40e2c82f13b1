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


"""Tests of r2mf_monai.outputs.dicom_seg (highdicom read-back and, where installed, the dciodvfy validator)."""

from __future__ import annotations

import itertools

import highdicom as hd
import numpy as np
import pydicom
import pydicom.misc
import pytest
from PIL import Image

import r2mf_monai
from r2mf_monai.outputs.dicom_seg import read_dicom_header, spinal_column_segment, uid_file_part, write_dicom_seg
from tests.outputs.utils import DCIODVFY, dciodvfy_errors, make_dx

ROWS, COLS = 48, 28  # portrait, non-square


def _pixels() -> np.ndarray:
    return (np.arange(ROWS * COLS).reshape(ROWS, COLS) * 7 % 4096).astype(np.uint16)


def _mask() -> np.ndarray:
    """An asymmetric mask: a transposed or flipped copy cannot match it."""
    mask = np.zeros((ROWS, COLS), bool)
    mask[6:40, 10:16] = True
    mask[0, 0] = mask[ROWS - 1, 3] = True
    return mask


# photometric x spacing x PatientOrientation present: every combination real CR/DX files come in
SOURCE_CASES = list(
    itertools.product(["MONOCHROME1", "MONOCHROME2"], ["pixel", "imager", "both", "zero", "none"], [True, False])
)


def _read_back(seg_path, source: pydicom.Dataset) -> np.ndarray:
    seg = hd.seg.segread(seg_path)
    pixels = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1])
    assert pixels.shape == (1, source.Rows, source.Columns, 1)
    return pixels[0, :, :, 0].astype(bool)


@pytest.mark.parametrize("photometric, spacing, orientation", SOURCE_CASES)
def test_round_trip_and_references(tmp_path, photometric, spacing, orientation):
    src = make_dx(tmp_path / "src.dcm", _pixels(), photometric, spacing, orientation)
    out = write_dicom_seg(tmp_path / "src.dcm", _mask(), tmp_path / "seg.dcm")
    assert out == tmp_path / "seg.dcm"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.dcm", "src.dcm"]  # no temporary left
    np.testing.assert_array_equal(_read_back(out, src), _mask())

    seg = pydicom.dcmread(out)
    assert seg.Modality == "SEG" and seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == src.StudyInstanceUID and seg.PatientID == src.PatientID
    assert seg.SeriesInstanceUID != src.SeriesInstanceUID
    ref_series = seg.ReferencedSeriesSequence[0]
    assert ref_series.SeriesInstanceUID == src.SeriesInstanceUID
    assert ref_series.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    # no Pixel Measures without a Frame of Reference (highdicom's reader needs a SliceThickness a radiograph lacks)
    assert "PixelMeasuresSequence" not in seg.SharedFunctionalGroupsSequence[0]
    assert list(seg.get("PatientOrientation") or []) == (["P", "F"] if orientation else [])

    segment = seg.SegmentSequence[0]
    assert segment.SegmentLabel == "Spinal column"
    assert segment.SegmentAlgorithmType == "AUTOMATIC"
    assert segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "91723000"
    assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "421060004"
    algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "R2MF-Net" and algorithm.AlgorithmVersion == r2mf_monai.__version__
    assert algorithm.AlgorithmFamilyCodeSequence[0].CodeMeaning == "Artificial Intelligence"


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy binary absent (Debian: apt-get install dicom3tools)")
@pytest.mark.parametrize("photometric, spacing, orientation", SOURCE_CASES[::3] + [("MONOCHROME1", "zero", False)])
def test_dciodvfy_no_errors(tmp_path, photometric, spacing, orientation):
    make_dx(tmp_path / "src.dcm", _pixels(), photometric, spacing, orientation)
    out = write_dicom_seg(tmp_path / "src.dcm", _mask(), tmp_path / "seg.dcm")
    assert dciodvfy_errors(out) == []


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy binary absent (Debian: apt-get install dicom3tools)")
def test_dciodvfy_catches_what_we_fix(tmp_path):
    """The validator is not silent: highdicom's default SEG of a 0\\0-spacing source without orientation fails."""
    src = make_dx(tmp_path / "src.dcm", _pixels(), spacing="zero", patient_orientation=False)
    seg = hd.seg.Segmentation(
        [src], _mask().astype(np.uint8), "BINARY", [spinal_column_segment()], hd.UID(), 1, hd.UID(), 1,
        "m", "m", "1", "1",
    )  # fmt: skip
    seg.save_as(tmp_path / "default.dcm")
    errors = dciodvfy_errors(tmp_path / "default.dcm")
    assert any("PixelSpacing" in e for e in errors) and any("PatientOrientation" in e for e in errors)


@pytest.mark.filterwarnings("ignore:Invalid value for VR")  # the legacy date and time this test writes on purpose
def test_dataset_source_is_not_modified(tmp_path):
    src = make_dx(tmp_path / "src.dcm", _pixels(), spacing="zero", StudyDate="1997.04.24", StudyTime="14:04:38")
    before = src.to_json_dict()
    ds = pydicom.dcmread(tmp_path / "src.dcm")  # with pixel data
    write_dicom_seg(ds, _mask(), tmp_path / "seg.dcm")
    assert ds.to_json_dict() == pydicom.dcmread(tmp_path / "src.dcm").to_json_dict()
    assert src.to_json_dict() == before
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    assert (seg.StudyDate, seg.StudyTime) == ("19970424", "140438")  # legacy ACR-NEMA forms normalised
    np.testing.assert_array_equal(_read_back(tmp_path / "seg.dcm", src), _mask())


def test_missing_type2_attributes(tmp_path):
    src = make_dx(tmp_path / "src.dcm", _pixels())
    for keyword in ("PatientID", "StudyID", "AccessionNumber", "PatientSex", "StudyTime"):
        delattr(src, keyword)
    src.save_as(tmp_path / "src.dcm", enforce_file_format=True)
    write_dicom_seg(tmp_path / "src.dcm", _mask(), tmp_path / "seg.dcm")
    assert pydicom.dcmread(tmp_path / "seg.dcm").PatientID == ""


def test_source_without_preamble(tmp_path):
    """Old files without the 128-byte preamble and file meta are still read as DICOM sources."""
    src = make_dx(tmp_path / "src.dcm", _pixels())
    del src.file_meta
    src.preamble = None
    pydicom.dcmwrite(tmp_path / "raw.dcm", src, implicit_vr=True, little_endian=True)
    assert not pydicom.misc.is_dicom(tmp_path / "raw.dcm")
    write_dicom_seg(tmp_path / "raw.dcm", _mask(), tmp_path / "seg.dcm")
    np.testing.assert_array_equal(_read_back(tmp_path / "seg.dcm", src), _mask())


@pytest.mark.parametrize("fill", [False, True])
def test_empty_and_full_masks(tmp_path, fill):
    src = make_dx(tmp_path / "src.dcm", _pixels())
    mask = np.full((ROWS, COLS), fill)
    write_dicom_seg(tmp_path / "src.dcm", mask.astype(np.uint8) * 255, tmp_path / "seg.dcm")
    np.testing.assert_array_equal(_read_back(tmp_path / "seg.dcm", src), mask)


@pytest.mark.parametrize(
    "shape, match",
    [((COLS, ROWS), "transposed"), ((ROWS, COLS + 1), f"{ROWS} x {COLS}"), ((1, ROWS, COLS), "src.dcm")],
)
def test_wrong_mask_shape(tmp_path, shape, match):
    make_dx(tmp_path / "src.dcm", _pixels())
    with pytest.raises(ValueError, match=match) as info:
        write_dicom_seg(tmp_path / "src.dcm", np.zeros(shape, bool), tmp_path / "seg.dcm")
    assert "src.dcm" in str(info.value)
    assert not (tmp_path / "seg.dcm").exists()


def test_bad_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.dcm"):
        write_dicom_seg(tmp_path / "nothing.dcm", _mask(), tmp_path / "seg.dcm")
    Image.fromarray(np.zeros((ROWS, COLS), np.uint8)).save(tmp_path / "picture.png")
    assert read_dicom_header(tmp_path / "picture.png") is None
    with pytest.raises(ValueError, match="picture.png.*not a DICOM file"):
        write_dicom_seg(tmp_path / "picture.png", _mask(), tmp_path / "seg.dcm")
    make_dx(tmp_path / "multi.dcm", np.zeros((2 * ROWS, COLS), np.uint16), NumberOfFrames=2, Rows=ROWS)
    with pytest.raises(ValueError, match="multi.dcm.*2 frames"):
        write_dicom_seg(tmp_path / "multi.dcm", _mask(), tmp_path / "seg.dcm")
    assert not (tmp_path / "seg.dcm").exists()


@pytest.mark.parametrize("uid", ["1.2.840.10008.5.1.4.1.1.66.4", "2.25.1234567890123456789", "0"])
def test_uid_file_part_keeps_a_valid_uid(uid):
    assert uid_file_part(uid) == uid


@pytest.mark.parametrize(
    "uid", ["1/../../../../escaped", "..", ".", "", None, "1.02", "1.2\n", "1" * 65, "1.2.3/x", "..\\..\\x"]
)
def test_uid_file_part_hashes_anything_else(tmp_path, uid):
    """No DICOM attribute reaches a path as it is: a bad UID becomes 'h' and 16 hex digits, a plain file name."""
    part = uid_file_part(uid)
    assert part.startswith("h") and len(part) == 17 and part[1:].isalnum()
    assert part == uid_file_part(uid)  # the same value always gives the same name
    assert (tmp_path / f"x_{part}_seg.dcm").parent == tmp_path
