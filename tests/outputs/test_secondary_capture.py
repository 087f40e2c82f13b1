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


"""Tests of r2mf_monai.outputs.secondary_capture (pydicom and highdicom read-back, the dciodvfy validator, and the
``sc`` format of SaveSegmentationd and ``r2mf-monai infer``)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pydicom.data
import pytest
from PIL import Image

from r2mf_monai.measure.cobb import measure_mask
from r2mf_monai.outputs.overlay import overlay_mask
from r2mf_monai.outputs.secondary_capture import (
    CAPTION_TITLE,
    burn_in_measurement,
    measure_for_capture,
    measurement_summary,
    write_secondary_capture,
)
from tests.measure.shapes import s_curve_mask
from tests.outputs.utils import DCIODVFY, dciodvfy_errors, make_dx

SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
REPO = Path(__file__).resolve().parents[2]


def _film() -> tuple[np.ndarray, np.ndarray]:
    """(pixels, mask): an S-shaped column (Cobb angles of about 40 and 50 degrees) on a noisy 12-bit film."""
    mask = s_curve_mask(shape=(280, 200), length=225, half_width=6.0)
    rng = np.random.default_rng(0)
    pixels = (rng.integers(0, 1500, mask.shape) + 2000 * mask).astype(np.uint16)
    return pixels, mask


SOURCE_CASES = [
    # photometric, spacing, PatientOrientation, the radiograph given (True) or loaded from the file by the writer
    ("MONOCHROME2", "pixel", True, True),
    ("MONOCHROME1", "imager", False, False),
    ("MONOCHROME2", "zero", False, False),
    ("MONOCHROME1", "none", True, True),
]


@pytest.mark.parametrize("photometric, spacing, orientation, given", SOURCE_CASES)
def test_round_trip(tmp_path, photometric, spacing, orientation, given):
    pixels, mask = _film()
    # the film's stored values; ``pixels`` is the picture bone bright, as the pipeline hands it to the writer
    stored = pixels.max() - pixels if photometric == "MONOCHROME1" else pixels
    src = make_dx(tmp_path / "src.dcm", stored, photometric, spacing, orientation)
    out = write_secondary_capture(tmp_path / "src.dcm", mask, tmp_path / "sc.dcm", image=pixels if given else None)
    assert out == tmp_path / "sc.dcm"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sc.dcm", "src.dcm"]  # no temporary file left

    sc = pydicom.dcmread(out)
    assert sc.SOPClassUID == SC_STORAGE and sc.Modality == "OT"
    for keyword in ("StudyInstanceUID", "PatientID", "PatientName", "PatientSex", "StudyDate", "StudyID"):
        assert sc[keyword].value == src[keyword].value, keyword
    assert sc.SeriesInstanceUID != src.SeriesInstanceUID and sc.SOPInstanceUID != src.SOPInstanceUID
    assert sc.SeriesNumber == 301
    assert list(sc.get("PatientOrientation") or []) == (["P", "F"] if orientation else [])
    assert "PixelSpacing" not in sc  # a picture with the numbers in it, not one to measure on
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID

    # the pixels: the overlay (same size as the film) under a caption band, RGB
    assert (sc.PhotometricInterpretation, sc.SamplesPerPixel, sc.BitsAllocated) == ("RGB", 3, 8)
    overlay = overlay_mask(pixels, mask)
    band = sc.Rows - overlay.shape[0]
    assert sc.Columns == overlay.shape[1] == mask.shape[1] and 0 < band < overlay.shape[0] // 2
    np.testing.assert_array_equal(hd.imread(out).get_frame(1), sc.pixel_array)  # highdicom reads it back too
    picture = sc.pixel_array
    # the file holds the burnt-in picture exactly; under the drawing it is the overlay, pixel for pixel
    measurement, reason = measure_for_capture(mask, image=pixels)  # the writer reads the endplates on the film
    np.testing.assert_array_equal(picture, burn_in_measurement(pixels, mask, measurement))
    same = np.all(picture[band:] == overlay, axis=-1)
    assert 0.8 < same.mean() < 1.0  # the curves, lines and labels are drawn on it, the rest is the overlay
    assert picture[:band].min() == 0 and picture[:band].max() > 200  # light caption text on a black band

    # the measurement summary as text
    assert reason is None and measurement.curves
    comments = sc.ImageComments
    assert comments.splitlines()[0] == CAPTION_TITLE
    for c in measurement.curves:
        assert f"{c.name} {c.cobb_deg:.0f} deg {c.upper_level}-{c.lower_level}" in comments
    assert comments == "\n".join(measurement_summary(measurement))


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy binary absent (Debian: apt-get install dicom3tools)")
@pytest.mark.parametrize(
    "spacing, orientation, attributes, empty",
    [
        ("pixel", True, {}, False),
        ("zero", False, {}, False),
        ("none", False, {"StudyDate": "1997.04.24", "StudyTime": "14:04:38"}, False),  # legacy ACR-NEMA forms
        ("pixel", True, {"SpecificCharacterSet": "ISO_IR 100", "PatientName": "Müller^Anna"}, False),
        ("pixel", True, {}, True),  # an empty mask: "not measured" burnt in
    ],
)
@pytest.mark.filterwarnings("ignore:Invalid value for VR")  # the legacy date and time written on purpose
def test_dciodvfy_no_errors(tmp_path, spacing, orientation, attributes, empty):
    pixels, mask = _film()
    make_dx(tmp_path / "src.dcm", pixels, "MONOCHROME2", spacing, orientation, **attributes)
    out = write_secondary_capture(tmp_path / "src.dcm", np.zeros_like(mask) if empty else mask, tmp_path / "sc.dcm")
    assert dciodvfy_errors(out) == []
    if attributes.get("PatientName"):
        assert str(pydicom.dcmread(out).PatientName) == "Müller^Anna"


# real files from pydicom's test data: character sets (an empty first value of a multi-valued one, GB18030), a CR
# of the cervical spine with an empty Laterality, a secondary capture without body part and laterality
REAL_FILES = [
    "charset_files/chrH31.dcm",
    "charset_files/chrX2.dcm",
    "charset_files/chrFren.dcm",
    "test_files/dicomdirtests/77654033/CR1/6154",
    "test_files/image_dfl.dcm",
]


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy binary absent (Debian: apt-get install dicom3tools)")
@pytest.mark.parametrize("name", REAL_FILES)
def test_dciodvfy_no_errors_real_files(tmp_path, name):
    path = Path(pydicom.data.__file__).parent / name  # in pydicom's wheel: nothing is downloaded
    src = pydicom.dcmread(path, stop_before_pixels=True)
    mask = np.zeros((src.Rows, src.Columns), bool)
    mask[1:-1, src.Columns // 2 - 1 : src.Columns // 2 + 1] = True
    out = write_secondary_capture(path, mask, tmp_path / "sc.dcm")
    assert dciodvfy_errors(out) == []
    sc = pydicom.dcmread(out)
    assert (sc.PatientName, sc.StudyInstanceUID) == (src.PatientName, src.StudyInstanceUID)
    assert sc.get("SpecificCharacterSet") == src.get("SpecificCharacterSet")


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy binary absent (Debian: apt-get install dicom3tools)")
def test_dciodvfy_is_not_silent(tmp_path):
    """The validator reads these SCs: without the SC Equipment's Conversion Type (Type 1) it reports an error."""
    pixels, mask = _film()
    make_dx(tmp_path / "src.dcm", pixels)
    sc = pydicom.dcmread(write_secondary_capture(tmp_path / "src.dcm", mask, tmp_path / "sc.dcm", image=pixels))
    del sc.ConversionType
    sc.save_as(tmp_path / "broken.dcm")
    assert any("ConversionType" in e for e in dciodvfy_errors(tmp_path / "broken.dcm"))


def test_not_measured_reason_burnt_in(tmp_path):
    pixels, mask = _film()
    make_dx(tmp_path / "src.dcm", pixels)
    fragment = np.zeros_like(mask)
    fragment[100:115, 90:110] = True  # a blob, not a column
    measurement, reason = measure_for_capture(fragment)
    assert measurement is None and "fragment" in reason
    write_secondary_capture(tmp_path / "src.dcm", fragment, tmp_path / "sc.dcm", image=pixels)
    sc = pydicom.dcmread(tmp_path / "sc.dcm")
    assert sc.ImageComments.splitlines()[1] == f"not measured: {reason}"
    # nothing drawn on the picture: under the caption it is the overlay itself
    overlay = overlay_mask(pixels, fragment)
    np.testing.assert_array_equal(sc.pixel_array[sc.Rows - overlay.shape[0] :], overlay)
    # a caption band of its own: taller than a measured film's when the reason wraps onto more lines
    assert sc.Rows > overlay.shape[0]


def test_measurement_given_and_summary_text():
    _, mask = _film()
    vm = measure_mask(mask, spacing=0.2)
    lines = measurement_summary(vm)
    assert lines[0] == CAPTION_TITLE and all(line.isascii() for line in lines)
    assert [line.split(" ")[0] for line in lines[1 : 1 + len(vm.curves)]] == [c.name for c in vm.curves]
    assert "°" in " ".join(measurement_summary(vm, degree="°"))
    straight = measure_mask(np.pad(np.ones((200, 12), bool), ((20, 20), (90, 90))))
    assert measurement_summary(straight)[1] == "no curve of 5 deg or more"
    assert measurement_summary(None, "the mask is empty")[1] == "not measured: the mask is empty"


def test_large_film_is_downsampled(tmp_path):
    pixels, mask = _film()
    big_pixels, big_mask = np.kron(pixels, np.ones((6, 6), pixels.dtype)), np.kron(mask, np.ones((6, 6), bool))
    make_dx(tmp_path / "src.dcm", big_pixels)
    write_secondary_capture(tmp_path / "src.dcm", big_mask, tmp_path / "sc.dcm", image=big_pixels)
    sc = pydicom.dcmread(tmp_path / "sc.dcm")
    overlay = overlay_mask(big_pixels, big_mask)  # at most 1500 rows, as the overlay PNG
    assert overlay.shape[0] == 1500 and sc.Columns == overlay.shape[1] and sc.Rows > 1500


def test_png_source_is_refused(tmp_path):
    pixels, mask = _film()
    Image.fromarray((pixels // 16).astype(np.uint8)).save(tmp_path / "film.png")
    with pytest.raises(ValueError, match="film.png.*not a DICOM file"):
        write_secondary_capture(tmp_path / "film.png", mask, tmp_path / "sc.dcm")
    with pytest.raises(FileNotFoundError, match="nothing.dcm"):
        write_secondary_capture(tmp_path / "nothing.dcm", mask, tmp_path / "sc.dcm")
    assert not (tmp_path / "sc.dcm").exists()


@pytest.mark.parametrize("shape, match", [((200, 280), "transposed"), ((280, 201), "280 x 200")])
def test_wrong_mask_shape(tmp_path, shape, match):
    pixels, _ = _film()
    make_dx(tmp_path / "src.dcm", pixels)
    with pytest.raises(ValueError, match=match) as info:
        write_secondary_capture(tmp_path / "src.dcm", np.zeros(shape, bool), tmp_path / "sc.dcm", image=pixels)
    assert "src.dcm" in str(info.value)
    assert not (tmp_path / "sc.dcm").exists()


@pytest.mark.filterwarnings("ignore:Invalid value for VR")
def test_source_dataset_is_not_modified(tmp_path):
    pixels, mask = _film()
    make_dx(tmp_path / "src.dcm", pixels, StudyDate="1997.04.24", StudyTime="14:04:38")
    ds = pydicom.dcmread(tmp_path / "src.dcm")
    before = ds.to_json_dict()
    write_secondary_capture(ds, mask, tmp_path / "sc.dcm")  # pixels loaded from the dataset's file
    assert ds.to_json_dict() == before
    sc = pydicom.dcmread(tmp_path / "sc.dcm")
    assert (sc.StudyDate, sc.StudyTime) == ("19970424", "140438")


def _saver_input(path: Path):
    """The data dict the bundle's writer gets: the prediction and the raw radiograph, as the pipeline loads it."""
    from r2mf_monai.transforms import LoadRadiograph

    image = LoadRadiograph()(str(path))
    return {"pred": (image > image.mean() + image.std()).float(), "raw": image}


def test_save_segmentation_writes_sc_for_dicom_only(tmp_path, caplog):
    """``formats`` ``sc`` of the bundle's writer: an SC beside the SEG for a DICOM film, a warning for a PNG one."""
    from r2mf_monai.outputs import SUPPORTED_FORMATS, SaveSegmentationd

    assert "sc" in SUPPORTED_FORMATS
    pixels, mask = _film()
    (tmp_path / "in").mkdir()
    src = make_dx(tmp_path / "in" / "film.dcm", pixels)
    Image.fromarray((pixels // 16).astype(np.uint8)).save(tmp_path / "in" / "photo.png")
    saver = SaveSegmentationd(output_dir=tmp_path / "out", formats=("png", "dcmseg", "sc"), overlay=False)
    out = saver(_saver_input(tmp_path / "in" / "film.dcm"))
    assert out["pred_files"]["dicom_sc"] == str(tmp_path / "out" / "film_sc.dcm")
    sc = pydicom.dcmread(tmp_path / "out" / "film_sc.dcm")
    seg = pydicom.dcmread(tmp_path / "out" / "film_seg.dcm")
    assert sc.StudyInstanceUID == seg.StudyInstanceUID == src.StudyInstanceUID
    assert len({sc.SeriesInstanceUID, seg.SeriesInstanceUID, src.SeriesInstanceUID}) == 3
    with caplog.at_level(logging.WARNING):
        out = saver(_saver_input(tmp_path / "in" / "photo.png"))
    assert "photo.png is not a DICOM file: no DICOM Secondary Capture" in caplog.text
    assert "dicom_sc" not in out["pred_files"] and not (tmp_path / "out" / "photo_sc.dcm").exists()


def test_save_segmentation_writes_no_sc_without_a_spine(tmp_path, caplog):
    """A film the post-processing found no spine on (SpinePlausibilityd's verdict) gets no SC."""
    from r2mf_monai.outputs import SaveSegmentationd

    pixels, _ = _film()
    make_dx(tmp_path / "ankle.dcm", pixels, BodyPartExamined="ANKLE")
    d = _saver_input(tmp_path / "ankle.dcm")
    d["spine"] = {"spine_found": False, "reason": "no spine found: the DICOM BodyPartExamined is ANKLE"}
    with caplog.at_level(logging.WARNING):
        out = SaveSegmentationd(output_dir=tmp_path / "out", formats=("png", "sc"), overlay=False)(d)
    assert "ankle.dcm: no DICOM Secondary Capture written (no spine found: the DICOM BodyPartExamined" in caplog.text
    assert "dicom_sc" not in out["pred_files"] and not (tmp_path / "out" / "ankle_sc.dcm").exists()


@pytest.mark.slow
def test_infer_formats_sc(tmp_path):
    """``r2mf-monai infer --formats png,sc`` with the shipped weights: one SC per DICOM film, in its study, that the
    validator passes and whose caption carries the film's measurement; none for the PNG film."""
    from r2mf_monai.data.synthetic import synthesize_dataset

    data = tmp_path / "data"
    synthesize_dataset(data, patients=1, seed=3, scale=0.12, workers=1)
    films = sorted((data / "images").iterdir())
    dicoms = [p for p in films if p.suffix == ".dcm"]
    assert dicoms and len(dicoms) < len(films)  # DICOM and PNG films
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "r2mf_monai.cli", "infer", str(data / "images"), str(out)]
    cmd += ["--bundle_dir", str(REPO / "bundle"), "--formats", "png,sc", "--device", "cpu"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.glob("*_sc.dcm")) == sorted(f"{p.stem}_sc.dcm" for p in dicoms)
    for src in dicoms:
        source = pydicom.dcmread(src, stop_before_pixels=True)
        sc = pydicom.dcmread(out / f"{src.stem}_sc.dcm")
        assert (sc.StudyInstanceUID, sc.PatientID) == (source.StudyInstanceUID, source.PatientID)
        assert sc.SeriesInstanceUID != source.SeriesInstanceUID
        assert sc.ImageComments.splitlines()[0] == CAPTION_TITLE and len(sc.ImageComments.splitlines()) >= 2
        if DCIODVFY is not None:
            assert dciodvfy_errors(out / f"{src.stem}_sc.dcm") == []
