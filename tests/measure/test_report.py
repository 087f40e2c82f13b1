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
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from r2mf_monai.constants import VIEWS
from r2mf_monai.measure.report import measure_path, measure_study, read_image, read_mask
from tests.measure.shapes import arc_mask, s_curve_mask, straight_mask
from tests.measure.test_endplates import CASES, _film_of, corner_spine

# one patient on PA display (image right = patient right): the coronal view has a 40 degree curve convex to the
# image left over a 60 degree one convex to the image right; the left-bending view leans left and straightens the
# upper curve (to 5), the right-bending view leans right and straightens the lower one (to 10)
VIEW_TANGENTS = {
    "coronal": (-20.0, 20.0, -40.0),
    "left_bending": (25.0, 30.0, -10.0),
    "right_bending": (-35.0, -10.0, -20.0),
}


def _load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _save_png(path, mask):
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)


@pytest.fixture(scope="module")
def masks():
    return {v: s_curve_mask(t) for v, t in VIEW_TANGENTS.items()}


@pytest.fixture
def study_dir(tmp_path, masks):
    d = tmp_path / "labels"
    d.mkdir()
    for view, m in masks.items():
        _save_png(d / f"P0007_{view}.png", m)
    (d / "readme.txt").write_text("not a mask")
    return d


def test_study_folder_gives_one_report_per_patient(study_dir, caplog):
    _save_png(study_dir / "overview.png", np.ones((20, 20), bool))  # not <patient>_<view>: skipped with a warning
    with caplog.at_level(logging.INFO, logger="r2mf_monai.measure.report"):
        result = measure_path(study_dir, sacrum_mm=0.0)  # the test columns have no sacrum
    assert list(result) == ["P0007"]
    out = study_dir / "measurements"
    assert result["P0007"]["report"] == str(out / "P0007_measurements.json")
    report = json.loads((out / "P0007_measurements.json").read_text())
    assert set(report["views"]) == {"coronal", "left_bending", "right_bending"}
    assert report["units"] == {"angles": "deg", "lengths": "px"}
    assert [c["cobb_deg"] for c in report["views"]["coronal"]["curves"]] == pytest.approx([40, 60], abs=2)
    lenke = report["lenke"]
    assert lenke["orientation"]["source"] == "bending_views" and lenke["orientation"]["display"] == "PA"
    flex = {f["name"]: f for f in report["flexibility"]}
    assert flex["MT"]["bending_view"] == "left_bending" and flex["MT"]["bending_cobb_deg"] == pytest.approx(5, abs=2)
    assert flex["TL/L"]["bending_view"] == "right_bending"
    assert flex["TL/L"]["bending_cobb_deg"] == pytest.approx(10, abs=2)
    assert lenke["sagittal_modifier"] is None and lenke["curve_type"] in range(1, 7)
    assert len(report["flexibility"]) == 2 and all(f["flexibility_pct"] is not None for f in report["flexibility"])
    assert any("lateral radiograph" in u for u in report["undetermined"])
    assert any("levels" in a for a in report["approximations"])
    assert (out / "P0007_measurements.png").stat().st_size > 10_000
    assert not list(out.glob(".*.tmp"))  # written atomically, nothing left behind
    assert "skipping" in caplog.text and str(out / "P0007_measurements.json") in caplog.text


def test_spacing_gives_millimetres(study_dir, tmp_path):
    result = measure_path(study_dir, output=tmp_path / "out", spacing=0.4, figure=False)
    report = _load(result["P0007"]["report"])
    assert report["units"]["lengths"] == "mm" and "figure" not in result
    assert report["views"]["coronal"]["pixel_spacing_mm"] == [0.4, 0.4]


def test_single_file_gives_a_one_view_report(study_dir, tmp_path):
    result = measure_path(study_dir / "P0007_coronal.png", output=tmp_path)
    report = _load(result["P0007_coronal"]["report"])
    assert list(report["views"]) == ["coronal"]
    assert report["lenke"]["candidate_types"]  # coronal alone: candidates, no decided type


@pytest.mark.parametrize("view", [None, "coronal", "left_bending", "right_bending"])
def test_a_film_without_a_view_in_its_name(tmp_path, view):
    # one film named without a view is a coronal film (Lenke reported) unless the caller names another view
    _save_png(tmp_path / "scan.png", s_curve_mask())
    kwargs = {} if view is None else {"view": view}
    report = _load(measure_path(tmp_path / "scan.png", output=tmp_path, **kwargs)["scan"]["report"])
    assert list(report["views"]) == [view or "coronal"]
    if view in (None, "coronal"):
        assert report["lenke"] is not None and report["lenke"]["label"]
    else:
        assert report["lenke"] is None and any("coronal view" in u for u in report["undetermined"])


def test_unknown_view_is_refused(tmp_path):
    _save_png(tmp_path / "scan.png", s_curve_mask())
    with pytest.raises(ValueError, match="view"):
        measure_path(tmp_path / "scan.png", output=tmp_path, view="lateral")


def test_radiographs_under_the_masks(study_dir, tmp_path, masks):
    images = tmp_path / "images"
    images.mkdir()
    for view, m in masks.items():
        Image.fromarray((m * 120 + 60).astype(np.uint8)).save(images / f"P0007_{view}.png")
    result = measure_path(study_dir, output=tmp_path / "out", images=images)
    assert Image.open(result["P0007"]["figure"]).size[0] > 800
    img, spacing = read_image(images / "P0007_coronal.png")
    assert img.min() >= 0 and img.max() <= 1 and spacing is None


def test_dicom_mask_carries_spacing_and_orientation(tmp_path, masks):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    for view, m in masks.items():
        meta = FileMetaDataset()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        ds = FileDataset(str(tmp_path / f"P1_{view}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.Rows, ds.Columns = m.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelSpacing = [0.25, 0.25]
        ds.PatientOrientation = ["L", "F"]  # rows run to the patient's left: the image right is the patient's left
        ds.PixelData = (m.astype(np.uint8) * 255).tobytes()
        ds.save_as(tmp_path / f"P1_{view}.dcm", enforce_file_format=True)
    arr, spacing, meta = read_mask(tmp_path / "P1_coronal.dcm")
    assert spacing == (0.25, 0.25) and meta["patient_orientation"] == ["L", "F"]
    assert np.array_equal(arr > 0, masks["coronal"])
    result = measure_path(tmp_path, output=tmp_path / "out", figure=False)
    report = _load(result["P1"]["report"])
    assert report["units"]["lengths"] == "mm"
    assert report["lenke"]["orientation"]["display"] == "AP" and report["lenke"]["orientation"]["source"] == "caller"
    assert pydicom is not None


def test_nifti_mask_is_read_as_monai_writes_it(tmp_path, masks):
    nib = pytest.importorskip("nibabel")
    m = masks["coronal"]
    nib.save(nib.Nifti1Image(m.T.astype(np.uint8), np.diag([0.3, 0.2, 1.0, 1.0])), tmp_path / "a.nii.gz")
    arr, spacing, _ = read_mask(tmp_path / "a.nii.gz")
    assert np.array_equal(arr > 0, m) and spacing == pytest.approx((0.2, 0.3))
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.uint8), np.eye(4)), tmp_path / "b.nii")
    with pytest.raises(ValueError, match="b.nii"):
        read_mask(tmp_path / "b.nii")


def test_measure_study_names_the_bad_view(masks):
    # a malformed mask (not 2-D) or a bad argument is an error; a mask that cannot be measured is not (below)
    with pytest.raises(ValueError, match="right_bending"):
        measure_study({"coronal": masks["coronal"], "right_bending": np.zeros((30, 30, 3))}, patient_id="P9")
    with pytest.raises(ValueError, match="min_cobb"):
        measure_study({"coronal": np.zeros((30, 30))}, min_cobb=0.0)
    with pytest.raises(ValueError):
        measure_study({})


# masks that are well formed but carry no measurable column, and the words of their reason
UNMEASURABLE = [
    (straight_mask(length=60), "column widths long"),  # a fragment: part of the lumbar spine, a blob
    (arc_mask(220.0, length=420, shape=(512, 512)), "loops back"),  # a looping centreline
    (np.zeros((200, 120), bool), "empty"),
]


@pytest.mark.parametrize("mask,reason", UNMEASURABLE)
@pytest.mark.parametrize("bad_view", ["left_bending", "coronal"])
def test_measure_study_reports_a_view_it_cannot_measure(masks, mask, reason, bad_view):
    study = {**masks, bad_view: mask}
    report = measure_study(study, patient_id="P3", sources={v: f"P3_{v}.png" for v in study})
    assert set(report.views) == set(VIEWS) - {bad_view}  # the other views are measured as usual
    assert reason in report.not_measured[bad_view] and set(report.not_measured) == {bad_view}
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert d["not_measured"][bad_view]["measured"] is False and reason in d["not_measured"][bad_view]["reason"]
    assert bad_view not in d["views"] and d["sources"][bad_view] == f"P3_{bad_view}.png"
    assert any(bad_view in u and reason in u for u in d["undetermined"])
    if bad_view == "coronal":  # no Lenke type without the coronal view, and the reason says why
        assert d["lenke"] is None and d["flexibility"] == []
        assert any("Lenke" in u and reason in u for u in d["undetermined"])
    else:  # the curve that needed the left-bending view is undecided, with the reason; the other one is decided
        flex = {f["name"]: f for f in d["flexibility"]}
        assert flex["MT"]["bending_view"] == "left_bending" and flex["MT"]["structural"] is None
        assert "not measured" in flex["MT"]["structural_reason"] and reason in flex["MT"]["structural_reason"]
        assert flex["TL/L"]["bending_cobb_deg"] == pytest.approx(10, abs=2)
        assert d["lenke"]["curve_type"] is None and d["lenke"]["candidate_types"]


def test_bad_paths_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        measure_path(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        measure_path(tmp_path / "empty")
    (tmp_path / "broken_coronal.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken_coronal.png"):
        measure_path(tmp_path / "broken_coronal.png")
    _save_png(tmp_path / "blank_coronal.png", np.zeros((40, 40), bool))  # readable, nothing to measure: a report
    report = _load(measure_path(tmp_path / "blank_coronal.png")["blank_coronal"]["report"])
    assert report["views"] == {} and "empty" in report["not_measured"]["coronal"]["reason"]
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_mask(tmp_path / "missing.png")


def test_one_unmeasurable_mask_in_a_folder(study_dir, tmp_path, caplog):
    """A fragment among good masks: its view is reported as not measured (one warning naming the file), the rest of
    that patient and the other patients are measured as usual."""
    _save_png(study_dir / "P0007_left_bending.png", straight_mask(length=60))  # a fragment replaces a good view
    _save_png(study_dir / "P0008_coronal.png", s_curve_mask())
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="r2mf_monai.measure.report"):
        result = measure_path(study_dir, output=out, sacrum_mm=0.0)  # the test columns have no sacrum
    assert sorted(result) == ["P0007", "P0008"] and "left_bending: not measured" in result["P0007"]["summary"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(study_dir / "P0007_left_bending.png") in warnings[0]
    assert "column widths long" in warnings[0]
    p7 = _load(out / "P0007_measurements.json")
    assert set(p7["views"]) == {"coronal", "right_bending"} and list(p7["not_measured"]) == ["left_bending"]
    assert [c["cobb_deg"] for c in p7["views"]["coronal"]["curves"]] == pytest.approx([40, 60], abs=2)
    assert any("left_bending view not measured" in u for u in p7["undetermined"])
    assert list(_load(out / "P0008_measurements.json")["views"]) == ["coronal"]
    assert (out / "P0007_measurements.png").stat().st_size > 10_000 and (out / "P0008_measurements.png").is_file()
    assert not list(out.glob(".*.tmp")) and not list(out.glob("*.tmp"))


def test_cli_measure_reports_and_exits_0_with_an_unmeasurable_mask(study_dir, tmp_path):
    """The command as users run it: exit 0, one WARNING line naming the file; a wrong input is one line, exit 1."""
    import subprocess
    import sys

    _save_png(study_dir / "P0007_right_bending.png", arc_mask(220.0, length=420, shape=(512, 512)))
    out = tmp_path / "cli_out"
    cmd = [sys.executable, "-m", "r2mf_monai.cli", "measure", str(study_dir), "--output", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = proc.stdout + proc.stderr
    lines = [ln for ln in log.splitlines() if "WARNING" in ln]
    assert len(lines) == 1 and "P0007_right_bending.png" in lines[0] and "loops back" in lines[0], log[-2000:]
    report = _load(out / "P0007_measurements.json")
    assert "loops back" in report["not_measured"]["right_bending"]["reason"]
    assert (out / "P0007_measurements.png").is_file() and "Traceback" not in log
    proc = subprocess.run(
        [sys.executable, "-m", "r2mf_monai.cli", "measure", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"r2mf-monai measure: masks not found: {tmp_path / 'nowhere'}"]


def test_cli_measure(study_dir, tmp_path):
    from r2mf_monai.cli import measure

    result = measure(str(study_dir), output=str(tmp_path / "cli"), spacing=0.3, orientation="PA")
    assert "Lenke" in result["P0007"]["summary"]
    assert (tmp_path / "cli" / "P0007_measurements.json").is_file()


def test_infer_output_folder_with_sub_folders(tmp_path, masks):
    """``r2mf-monai infer`` keeps an input's sub-folders under its output folder (``a/x.png`` gives
    ``OUT/a/x_mask.png``): each is measured into the same sub-folder of ``measurements``, with its radiographs, and
    ``a/x`` and ``b/x`` stay two patients; the report folder is not searched."""
    out, images = tmp_path / "out", tmp_path / "in"
    for rel in ("", "a", "b"):
        (out / rel).mkdir(parents=True, exist_ok=True)
        (images / rel).mkdir(parents=True, exist_ok=True)
    _save_png(out / "P2_coronal_mask.png", masks["coronal"])
    for rel in ("a", "b"):
        _save_png(out / rel / "x_mask.png", masks["coronal"])
        _save_png(images / rel / "x.png", masks["coronal"])  # any picture of the mask's size does as a radiograph
    results = measure_path(out, output=out / "measurements", images=images)
    assert sorted(results) == ["P2", "a/x_mask", "b/x_mask"]  # a film without a view: one report named by its file
    for rel in ("a", "b"):
        report = out / "measurements" / rel / "x_mask_measurements.json"
        assert results[f"{rel}/x_mask"]["report"] == str(report)
        assert _load(report)["sources"]["coronal"] == str(out / rel / "x_mask.png")
    again = measure_path(out, output=out / "measurements", images=images)  # the reports of the first run are no masks
    assert sorted(again) == sorted(results)


def test_no_angles_for_a_film_the_inference_found_no_spine_on(tmp_path, caplog):
    # infer's review.json says "no spine found" (e.g. from the DICOM header): the column-shaped mask is not measured
    Image.fromarray((straight_mask() * 255).astype(np.uint8)).save(tmp_path / "ankle_mask.png")
    Image.fromarray((straight_mask() * 255).astype(np.uint8)).save(tmp_path / "spine_mask.png")
    reason = "no spine found: the DICOM BodyPartExamined is ANKLE"
    images = [
        {"image": "ankle.dcm", "spine_found": False, "no_spine_reason": reason},
        {"image": "spine.dcm", "spine_found": True},
    ]
    (tmp_path / "review.json").write_text(json.dumps({"images": images}))
    with caplog.at_level(logging.WARNING):
        result = measure_path(tmp_path, output=tmp_path / "out", figure=False)
    ankle = _load(result["ankle_mask"]["report"])
    assert ankle["views"] == {} and ankle["not_measured"]["coronal"]["reason"] == reason
    assert "ankle_mask.png not measured: " + reason in caplog.text
    assert _load(result["spine_mask"]["report"])["views"]


def test_the_no_spine_verdict_follows_the_written_mask_not_the_name(tmp_path):
    # infer wrote a/x.png's and b/x.png's masks into sub-folders; only a/x.png had no spine: b/x is measured
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        Image.fromarray((straight_mask() * 255).astype(np.uint8)).save(tmp_path / sub / "x_mask.png")
    entry = {"image": "x.png", "path": "/films/a/x.png", "spine_found": False, "no_spine_reason": "a blank film"}
    entry["outputs"] = {"mask_png": str(tmp_path / "a" / "x_mask.png")}
    other = {"image": "x.png", "path": "/films/b/x.png", "spine_found": True}
    other["outputs"] = {"mask_png": str(tmp_path / "b" / "x_mask.png")}
    (tmp_path / "review.json").write_text(json.dumps({"images": [entry, other]}))
    result = measure_path(tmp_path, output=tmp_path / "measurements", figure=False)
    assert _load(result["a/x_mask"]["report"])["not_measured"]["coronal"]["reason"] == "a blank film"
    assert _load(result["b/x_mask"]["report"])["views"]


@pytest.mark.parametrize("film_weight,source", [(0.5, "centreline_tangent_and_film"), (0.0, "centreline_tangent")])
def test_radiographs_found_beside_the_masks_are_read_for_the_endplates(study_dir, tmp_path, masks, film_weight, source):
    images = tmp_path / "images"
    images.mkdir()
    for view, m in masks.items():
        Image.fromarray((m * 120 + 60).astype(np.uint8)).save(images / f"P0007_{view}.png")
    result = measure_path(study_dir, output=tmp_path / "out", images=images, film_weight=film_weight)
    report = json.loads(Path(result["P0007"]["report"]).read_text())
    assert {v["cobb_source"] for v in report["views"].values()} == {source}
    without = measure_path(study_dir, output=tmp_path / "bare")  # no films: the masks alone
    report = json.loads(Path(without["P0007"]["report"]).read_text())
    assert {v["cobb_source"] for v in report["views"].values()} == {"centreline_tangent"}


@pytest.mark.parametrize("film_weight", [0.5, 0.0])
def test_a_corner_built_column_with_its_film_says_the_film_placed_its_corners(film_weight):
    mask, corners, _ = corner_spine(*CASES[1])
    report = measure_study({"coronal": mask}, images={"coronal": _film_of(mask, corners)}, film_weight=film_weight)
    view = report.views["coronal"]
    assert view.vertebrae is not None and view.vertebrae.film_edges == (film_weight > 0)
    expected = "vertebra_tilts_and_film" if film_weight > 0 else "vertebra_tilts"
    assert report.to_dict()["views"]["coronal"]["cobb_source"] == expected
    said = any("film's endplate edges" in a for a in report.approximations)
    assert said == (film_weight > 0)
