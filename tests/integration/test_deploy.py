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
"""The MONAI Deploy application (``scripts/deploy/app.py``) run as a user runs it, in the MONAI Deploy venv.

The app runs as a subprocess in ``.ci/venv-deploy`` (or ``$R2MF_DEPLOY_VENV``; made by
``bash .ci/integration.sh deploy``) on a folder of synthetic DICOM radiographs (MONOCHROME1 and MONOCHROME2, two
studies) plus a non-radiograph series it must ignore; the DICOM SEG files are then read back here, in the core venv,
with highdicom: one per radiograph, Rows x Columns of its source, referencing its SOPInstanceUID, the same mask as
the bundle's own inference (``r2mf-monai infer``), not empty.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.integration.conftest import REPO, dice, infer_reference, run

pytestmark = [pytest.mark.slow, pytest.mark.integration]

HOSTILE_UID = "1/../../../../escaped"


def _toggle_photometric(src: Path, dst: Path) -> str:
    """Write ``src`` as the same picture in the other photometric interpretation (a new instance of its study), as a
    DX detector would store it: stored values inverted, window moved, Presentation LUT Shape and Pixel Intensity
    Relationship Sign set to match. Returns the new interpretation."""
    ds = pydicom.dcmread(src)
    top = (1 << int(ds.BitsStored)) - 1
    ds.PixelData = (top - ds.pixel_array.astype(np.int64)).astype(ds.pixel_array.dtype).tobytes()
    mono1 = ds.PhotometricInterpretation == "MONOCHROME2"
    ds.PhotometricInterpretation = "MONOCHROME1" if mono1 else "MONOCHROME2"
    ds.PresentationLUTShape = "INVERSE" if mono1 else "IDENTITY"
    if "PixelIntensityRelationshipSign" in ds:
        ds.PixelIntensityRelationshipSign = -int(ds.PixelIntensityRelationshipSign)
    if "WindowCenter" in ds:
        ds.WindowCenter = f"{top - float(ds.WindowCenter):.1f}"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(dst)
    return str(ds.PhotometricInterpretation)


@pytest.fixture(scope="module")
def deploy_run(
    deploy_python: Path, tmp_path_factory: pytest.TempPathFactory, tiny_bundle: Path, tiny_data: Path
) -> dict:
    python = deploy_python
    base = tmp_path_factory.mktemp("deploy")
    inputs, output = base / "input", base / "output"
    inputs.mkdir()
    dicoms = sorted(p for p in (tiny_data / "images").iterdir() if p.suffix == ".dcm")
    # two radiographs of two patients (two studies) ...
    first = dicoms[0]
    second = next(p for p in dicoms if p.name.split("_")[0] != first.name.split("_")[0])
    picked = [first, second]
    for p in picked:
        shutil.copy(p, inputs / p.name)
    # ... and the first one again in the other photometric interpretation: MONOCHROME1 and MONOCHROME2 both go in
    twin = inputs / f"{first.stem}_inverted.dcm"
    photometric = {p.name: str(pydicom.dcmread(p, stop_before_pixels=True).PhotometricInterpretation) for p in picked}
    photometric[twin.name] = _toggle_photometric(first, twin)
    assert set(photometric.values()) == {"MONOCHROME1", "MONOCHROME2"}
    picked.append(twin)
    studies = {pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID for p in picked}
    assert len(studies) == 2, "the synthetic data set should give one study per patient"
    # a series that is not a projection radiograph: the selector must leave it out
    ct = pydicom.dcmread(picked[0])
    ct.Modality = "CT"
    ct.SOPInstanceUID = pydicom.uid.generate_uid()
    ct.SeriesInstanceUID = pydicom.uid.generate_uid()
    ct.save_as(inputs / "not_a_radiograph.dcm")
    # a radiograph of an ankle in the first patient's study: the bundle's spine check must keep it from the SEG/SC
    ankle = pydicom.dcmread(picked[0])
    ankle.BodyPartExamined = "ANKLE"
    ankle.SOPInstanceUID = ankle.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ankle.SeriesInstanceUID = pydicom.uid.generate_uid()
    ankle.save_as(inputs / "ankle.dcm")
    log = run(
        [str(python), str(REPO / "scripts" / "deploy" / "app.py"), "-i", str(inputs), "-o", str(output), "-m",
         str(tiny_bundle)],
        cwd=base,
        timeout=300,
    )  # fmt: skip
    return {"inputs": [inputs / p.name for p in picked], "output": output, "log": log, "photometric": photometric}


@pytest.fixture(scope="module")
def hostile_run(
    deploy_python: Path, tmp_path_factory: pytest.TempPathFactory, tiny_bundle: Path, tiny_data: Path
) -> dict:
    """Two files with one name in two folders, the second with a SOPInstanceUID that is a path out of the output
    folder: the app used to write its SEG there (and make the folders on the way)."""
    base = tmp_path_factory.mktemp("deploy_hostile")
    inputs, output = base / "a" / "b" / "input", base / "a" / "b" / "output"
    (inputs / "zz_again").mkdir(parents=True)
    first = sorted(p for p in (tiny_data / "images").iterdir() if p.suffix == ".dcm")[0]
    shutil.copy(first, inputs / first.name)
    ds = pydicom.dcmread(first)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = HOSTILE_UID
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(inputs / "zz_again" / first.name)
    env = {"R2MF_MEASURE": "0"}
    log = run(
        [str(deploy_python), str(REPO / "scripts" / "deploy" / "app.py"), "-i", str(inputs), "-o", str(output), "-m",
         str(tiny_bundle)],
        cwd=base,
        timeout=300,
        env=env,
    )  # fmt: skip
    return {"base": base, "output": output, "first": first, "log": log}


@pytest.fixture(scope="module")
def reference_masks(tmp_path_factory: pytest.TempPathFactory, deploy_run: dict, tiny_bundle: Path) -> dict:
    out = tmp_path_factory.mktemp("deploy_reference")
    return {k: v > 0 for k, v in infer_reference(out, deploy_run["inputs"], tiny_bundle).items()}


def test_one_seg_per_radiograph(deploy_run: dict) -> None:
    written = sorted(p.name for p in deploy_run["output"].glob("*_seg.dcm"))
    # every radiograph of both studies, and not the CT series
    assert written == sorted(f"{p.stem}_seg.dcm" for p in deploy_run["inputs"]), deploy_run["log"][-3000:]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_seg_reads_back_aligned_with_its_source(deploy_run: dict, reference_masks: dict, index: int) -> None:
    from highdicom.seg import segread

    source_path = deploy_run["inputs"][index]
    source = pydicom.dcmread(source_path, stop_before_pixels=True)
    seg = segread(deploy_run["output"] / f"{source_path.stem}_seg.dcm")
    referenced = [
        inst.ReferencedSOPInstanceUID
        for series in seg.ReferencedSeriesSequence
        for inst in series.ReferencedInstanceSequence
    ]
    assert referenced == [source.SOPInstanceUID]
    pixels = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1])
    assert pixels.shape == (1, source.Rows, source.Columns, 1)
    mask = pixels[0, :, :, 0] > 0
    assert mask.any(), f"empty SEG for {source_path.name} ({deploy_run['photometric'][source_path.name]})"
    assert dice(mask, reference_masks[source_path.stem]) >= 0.99, source_path.name


def test_monochrome1_and_monochrome2_give_the_same_mask(deploy_run: dict) -> None:
    from highdicom.seg import segread

    first, twin = deploy_run["inputs"][0], deploy_run["inputs"][2]
    masks = [
        segread(deploy_run["output"] / f"{p.stem}_seg.dcm").get_pixels_by_source_instance(
            [pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID], segment_numbers=[1]
        )[0, :, :, 0]
        for p in (first, twin)
    ]
    assert masks[0].any()
    assert dice(masks[0], masks[1]) >= 0.99


def test_no_seg_or_sc_for_a_film_with_no_spine(deploy_run: dict) -> None:
    assert not list(deploy_run["output"].glob("ankle_*.dcm"))
    assert "ankle.dcm: no spine found (" in deploy_run["log"], deploy_run["log"][-3000:]
    assert "BodyPartExamined is ANKLE" in deploy_run["log"]


def test_measurement_report_or_clean_skip(deploy_run: dict) -> None:
    reports = sorted((deploy_run["output"] / "measurements").glob("*.json"))
    try:
        import r2mf_monai.measure.report  # noqa: F401
    except ImportError:
        assert not reports and "measurement report skipped" in deploy_run["log"]
        return
    assert reports, deploy_run["log"][-3000:]


def test_one_secondary_capture_per_radiograph_in_its_study(deploy_run: dict) -> None:
    """Beside each SEG, a Secondary Capture (the picture every PACS shows) in the source's study, a new series,
    with the caption as text, that the validator passes."""
    from r2mf_monai.outputs.secondary_capture import CAPTION_TITLE
    from tests.outputs.utils import DCIODVFY, dciodvfy_errors

    written = sorted(p.name for p in deploy_run["output"].glob("*_sc.dcm"))
    assert written == sorted(f"{p.stem}_sc.dcm" for p in deploy_run["inputs"]), deploy_run["log"][-3000:]
    for source_path in deploy_run["inputs"]:
        source = pydicom.dcmread(source_path, stop_before_pixels=True)
        sc = pydicom.dcmread(deploy_run["output"] / f"{source_path.stem}_sc.dcm")
        assert (sc.StudyInstanceUID, sc.PatientID) == (source.StudyInstanceUID, source.PatientID)
        assert sc.SeriesInstanceUID != source.SeriesInstanceUID
        assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
        assert sc.ImageComments.splitlines()[0] == CAPTION_TITLE
        if DCIODVFY is not None:
            assert dciodvfy_errors(deploy_run["output"] / f"{source_path.stem}_sc.dcm") == []


def test_a_uid_never_reaches_a_path(hostile_run: dict) -> None:
    from r2mf_monai.outputs.dicom_seg import uid_file_part

    base, output, stem = hostile_run["base"], hostile_run["output"], hostile_run["first"].stem
    escaped = list(base.parent.rglob("*escaped*"))
    assert escaped == [], escaped
    assert [p.name for p in output.iterdir() if p.is_dir()] == []  # no folder made on the way either
    hashed = f"{stem}_{uid_file_part(HOSTILE_UID)}_seg.dcm"
    written = sorted(p.name for p in output.glob("*_seg.dcm"))
    assert written == sorted([f"{stem}_seg.dcm", hashed]), hostile_run["log"][-3000:]
    seg = pydicom.dcmread(output / hashed, stop_before_pixels=True)
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == HOSTILE_UID
