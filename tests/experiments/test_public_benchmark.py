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
"""The public-benchmark evaluation on a tiny AASCE-layout folder the synthetic generator writes from its corners."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from r2mf_monai.data.landmarks import column_mask
from r2mf_monai.data.synthetic import synthesize_dataset
from r2mf_monai.data.synthetic.writers import synthetic_to_aasce
from r2mf_monai.experiments.public_benchmark import (
    Film,
    LayoutError,
    aasce_angles,
    column_rows_found,
    evaluate_film,
    evaluate_landmarks,
    films_in_datalist,
    main,
    read_aasce_dataset,
    smape,
)
from r2mf_monai.measure import LevelModel, measure_mask
from r2mf_monai.measure.endplates import aasce_angles as vertebra_aasce_angles
from tests.measure.shapes import arc_mask, s_curve_mask
from tests.measure.test_endplates import CASES, _film_of, corner_spine

pytestmark = pytest.mark.usefixtures("one_thread")

FILMS = 3


@pytest.fixture(scope="module")
def aasce(tmp_path_factory) -> Path:
    """Three synthetic coronal films in the AASCE layout (data/training, labels/training)."""
    synth = tmp_path_factory.mktemp("synthetic")
    synthesize_dataset(synth, patients=FILMS, seed=3, scale=0.25, workers=1, split=(0, 0, FILMS))
    return synthetic_to_aasce(synth, tmp_path_factory.mktemp("aasce"), split="test")


@pytest.fixture(scope="module")
def gt_run(aasce, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("gt_only")
    return out, evaluate_landmarks(aasce, out, skip_inference=True, worst=2)


def _copy(aasce: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(aasce, tmp_path / "copy"))


def test_read_layout_mat_and_csv_agree(aasce):
    mat = read_aasce_dataset(aasce, landmarks="mat")
    csv_ = read_aasce_dataset(aasce, landmarks="csv")
    assert [f.name for f in mat] == [f.name for f in csv_] and len(mat) == FILMS
    for a, b in zip(mat, csv_, strict=True):
        assert a.points.shape == (68, 2)
        np.testing.assert_allclose(a.points, b.points, atol=0.01)  # csv: normalised to 6 decimals
        np.testing.assert_array_equal(a.angles, b.angles)
    angles = np.loadtxt(aasce / "labels" / "training" / "angles.csv", delimiter=",")
    np.testing.assert_allclose(np.stack([f.angles for f in mat]), angles)


def _no_data(root: Path) -> str:
    shutil.rmtree(root / "data" / "training")
    return "no folder data/training"


def _no_angles(root: Path) -> str:
    (root / "labels" / "training" / "angles.csv").unlink()
    return "no angles.csv"


def _short_angles(root: Path) -> str:
    path = root / "labels" / "training" / "angles.csv"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    return f"names {FILMS} films but"


def _no_image(root: Path) -> str:
    next((root / "data" / "training").glob("*.jpg")).unlink()
    return "have no image in"


def _no_landmarks(root: Path) -> str:
    next((root / "labels" / "training").glob("*.mat")).unlink()
    (root / "labels" / "training" / "landmarks.csv").unlink()
    return "and no landmarks.csv"


def _bad_angle(root: Path) -> str:
    path = root / "labels" / "training" / "angles.csv"
    path.write_text(path.read_text() + "1,2\n")
    return "expected three angles"


@pytest.mark.parametrize("damage", [_no_data, _no_angles, _short_angles, _no_image, _no_landmarks, _bad_angle])
def test_wrong_layout_one_clear_line(aasce, tmp_path, damage, capsys):
    root = _copy(aasce, tmp_path)
    expected = damage(root)
    with pytest.raises(LayoutError, match=expected):
        read_aasce_dataset(root)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main([str(root), str(out), "--skip_inference"])
    message = str(exc.value.code)
    assert message.startswith("evaluate-landmarks: ") and expected in message and "\n" not in message
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_missing_mat_falls_back_to_csv(aasce, tmp_path):
    root = _copy(aasce, tmp_path)
    next((root / "labels" / "training").glob("*.mat")).unlink()
    np.testing.assert_allclose(read_aasce_dataset(root)[0].points, read_aasce_dataset(aasce)[0].points, atol=0.01)


def test_outputs(gt_run):
    out, summary = gt_run
    for name in ("per_film.csv", "per_film.json", "summary.json", "summary.md", "worst_films.png"):
        assert (out / name).is_file(), name
    assert not [p for p in out.iterdir() if ".tmp" in p.name]
    with open(out / "per_film.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == FILMS and "pred_main" not in rows[0]
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["films"] == FILMS and "from_predicted_masks" not in summary
    assert summary["films_with_misordered_corners"] == []  # the generator lists its corners in the AASCE order
    assert len(summary["worst_films"]) == 2
    assert "ground-truth columns" in (out / "summary.md").read_text()
    with Image.open(out / "worst_films.png") as im:
        assert im.format == "PNG" and im.width > 200


def test_gt_column_cobb_close_to_generator(gt_run):
    """The generator's main curve (from its corners) against the one measured on the column drawn from them."""
    out, summary = gt_run
    rows = json.loads((out / "per_film.json").read_text())
    for row in rows:
        assert row["gt_error"] is None
        assert row["ref_angles"][0] > 10.0  # a real curve, not a straight spine
        assert abs(row["gt_angles"][0] - row["ref_angles"][0]) < 4.0, row["film"]
        assert row["gt_cobb_source"].endswith("_and_film")  # read with its film
    errors = [abs(r["gt_angles"][0] - r["ref_angles"][0]) for r in rows]
    assert summary["from_ground_truth_columns"]["main_curve_mae_deg"] == pytest.approx(np.mean(errors), abs=0.01)
    expected = np.mean([smape(r["gt_angles"], r["ref_angles"]) for r in rows])
    assert summary["from_ground_truth_columns"]["smape_pct"] == pytest.approx(expected, abs=0.01)
    # each mean has its bootstrap interval over these films, around it and within the films' own range
    low, high = summary["from_ground_truth_columns"]["main_curve_mae_ci95_deg"]
    assert min(errors) - 1e-3 <= low <= np.mean(errors) <= high <= max(errors) + 1e-3
    assert "main_curve_mae_ci95_deg" in summary["from_ground_truth_columns"]["films_with_ordered_corners"]
    assert f"({low:.2f}-{high:.2f})" in (out / "summary.md").read_text()


@pytest.mark.parametrize("film_weight,source", [(0.0, "vertebra_tilts"), (0.5, "vertebra_tilts_and_film")])
def test_ground_truth_columns_are_read_with_their_films(tmp_path, film_weight, source):
    # a corner-built column (the AASCE annotation's kind) on a film of its bodies: the film helps place its corners
    mask, corners, tilts = corner_spine(*CASES[1])
    Image.fromarray((np.clip(_film_of(mask, corners), 0, 1) * 255).astype(np.uint8)).save(tmp_path / "f.png")
    points = corners.reshape(-1, 2)[:, ::-1]
    film = Film(name="f.png", image=tmp_path / "f.png", points=points, angles=np.array([np.ptp(tilts), 0, 0]),
                shape=mask.shape)  # fmt: skip
    row, _ = evaluate_film(film, None, film_weight=film_weight)
    assert row["gt_cobb_source"] == source and row["gt_error"] is None
    assert row["gt_main_error"] < 4.0


def test_misordered_corners_are_listed_and_left_out_of_the_ordered_mae(aasce, tmp_path):
    from scipy.io import loadmat, savemat

    root = _copy(aasce, tmp_path)
    film = read_aasce_dataset(root)[1]
    mat = root / "labels" / "training" / f"{film.name}.mat"
    points = loadmat(str(mat))["p2"].reshape(-1, 4, 2)
    points[16, [1, 2]] = points[16, [2, 1]]  # L5's top-right corner listed where its bottom-left lies
    savemat(str(mat), {"p2": points.reshape(-1, 2)})
    out = tmp_path / "out"
    summary = evaluate_landmarks(root, out, skip_inference=True, worst=FILMS)  # every film drawn, its corners too
    rows = json.loads((out / "per_film.json").read_text())
    assert [r["misordered_vertebrae"] for r in rows] == [[], [17], []]
    assert summary["films_with_misordered_corners"] == [film.name]
    ordered = summary["from_ground_truth_columns"]["films_with_ordered_corners"]
    assert ordered["films"] == FILMS - 1
    assert ordered["main_curve_mae_deg"] == pytest.approx(
        np.mean([rows[0]["gt_main_error"], rows[2]["gt_main_error"]]), abs=1e-3
    )
    with open(out / "per_film.csv", newline="") as f:
        assert [r["misordered_vertebrae"] for r in csv.DictReader(f)] == ["", "17", ""]
    assert film.name in (out / "summary.md").read_text()


def test_limit(aasce, tmp_path):
    summary = evaluate_landmarks(aasce, tmp_path, skip_inference=True, limit=1, worst=1)
    rows = json.loads((tmp_path / "per_film.json").read_text())
    assert summary["films"] == 1 and len(rows) == 1 and rows[0]["film"] == read_aasce_dataset(aasce)[0].name


def _datalist(tmp_path: Path, **lists: list[str]) -> Path:
    path = tmp_path / "datalist.json"
    path.write_text(
        json.dumps({k: [{"image": f"../elsewhere/{n}", "label": "x.png"} for n in v] for k, v in lists.items()})
    )
    return path


@pytest.mark.parametrize("key, picks", [("test", [2, 0]), ("training", [1])])
def test_datalist_selects_its_films(aasce, tmp_path, key, picks):
    # the films a datalist's list names (by file name, wherever the datalist's paths point), in the folder's order
    films = read_aasce_dataset(aasce)
    datalist = _datalist(tmp_path, training=[films[1].name], test=[films[2].name, films[0].name, "not_here.jpg"])
    chosen = sorted(picks)
    assert [f.name for f in films_in_datalist(films, datalist, key)] == [films[i].name for i in chosen]
    evaluate_landmarks(aasce, tmp_path / "out", skip_inference=True, datalist=datalist, datalist_key=key, worst=1)
    rows = json.loads((tmp_path / "out" / "per_film.json").read_text())
    assert [r["film"] for r in rows] == [films[i].name for i in chosen]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["datalist"]["key"] == key
    # the limit counts among the datalist's films
    evaluate_landmarks(aasce, tmp_path / "one", skip_inference=True, datalist=datalist, datalist_key=key, limit=1)
    assert [r["film"] for r in json.loads((tmp_path / "one" / "per_film.json").read_text())] == [films[chosen[0]].name]


@pytest.mark.parametrize(
    "content, key, expected",
    [
        ("{not json", "test", "cannot read the datalist"),
        ('{"training": [{"image": "a.jpg"}]}', "test", "has no list 'test'"),
        ('{"test": [{"image": "a.jpg"}]}', "test", "none of the films is in the list 'test'"),
    ],
)
def test_bad_datalist_one_clear_line(aasce, tmp_path, content, key, expected):
    path = tmp_path / "datalist.json"
    path.write_text(content)
    with pytest.raises(LayoutError, match=expected):
        films_in_datalist(read_aasce_dataset(aasce), path, key)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main([str(aasce), str(out), "--skip_inference", "--datalist", str(path), "--datalist_key", key])
    message = str(exc.value.code)
    assert message.startswith("evaluate-landmarks: ") and expected in message and str(path) in message
    assert "\n" not in message and (not out.exists() or not any(out.iterdir()))


@pytest.mark.parametrize(
    "mask, expected",
    [
        (arc_mask(40.0), (40.0, 0.0, 0.0)),  # C-shaped: nothing above or below the main curve
        (s_curve_mask((-20.0, 20.0, -40.0)), (60.0, 40.0, 0.0)),  # main curve low: the one above, then above that
        (s_curve_mask((-40.0, 20.0, -20.0)), (60.0, 0.0, 40.0)),  # main curve high: the one above, the one below
    ],
)
def test_aasce_angles_slots(mask, expected):
    """The challenge calculator's three slots, read from a measured centreline."""
    view = measure_mask(mask, levels=LevelModel(sacrum_mm=0.0))
    np.testing.assert_allclose(aasce_angles(view), expected, atol=2.5)


@pytest.mark.parametrize(
    "axis,wobble",
    [
        (np.linspace(-15, 15, 17), 4.0 * np.sin(np.arange(17) * 1.7)),  # C-shaped
        (20.0 * np.sin(np.linspace(0, 2 * np.pi, 17)), 4.0 * np.cos(np.arange(17) * 2.3)),  # S-shaped
    ],
)
def test_aasce_angles_from_the_vertebrae(axis, wobble):
    """A column built from corners: the three slots are the calculator's, on the tilts read from the notches."""
    mask, corners, tilts = corner_spine(axis, wobble)
    view = measure_mask(mask, levels=LevelModel(sacrum_mm=0.0))
    assert view.vertebrae is not None
    got = aasce_angles(view, mask.shape[0])
    assert got == pytest.approx(view.vertebrae.aasce_angles(mask.shape[0]))
    # the main slot against the calculator on the true corners (the other two hinge on which vertebrae end it)
    assert got[0] == pytest.approx(vertebra_aasce_angles(tilts, corners, mask.shape[0])[0], abs=5.0)


@pytest.mark.parametrize(
    "pred, ref, expected",
    [
        ([10.0, 5.0, 0.0], [10.0, 5.0, 0.0], 0.0),
        ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], 0.0),
        ([12.0, 4.0, 2.0], [10.0, 5.0, 1.0], 400.0 / 34.0),
        ([0.0, 0.0, 0.0], [30.0, 10.0, 0.0], 100.0),
    ],
)
def test_smape(pred, ref, expected):
    assert smape(pred, ref) == pytest.approx(expected)


def _column(rows: int = 100, cols: int = 40) -> np.ndarray:
    gt = np.zeros((rows, cols), bool)
    gt[10:90, 15:25] = True  # a column on rows 10-89 (80 rows)
    return gt


def _cut(rows: slice, cols: slice = slice(15, 25)) -> np.ndarray:
    pred = _column()
    pred[rows, cols] = False
    return pred


@pytest.mark.parametrize(
    "pred,expected",
    [
        (_column(), (1.0, 0.0)),
        (np.zeros((100, 40), bool), (0.0, 1.0)),
        (_cut(slice(0, 30)), (60 / 80, 20 / 80)),  # the top 20 rows of the column lost
        (_cut(slice(40, 56)), (64 / 80, 0.0)),  # a gap in the middle
        (_cut(slice(70, 100)), (60 / 80, 0.0)),  # the bottom lost
        (_cut(slice(0, 30), slice(15, 19)), (1.0, 0.0)),  # narrower at the top, still on the column
        # a blob beside the column on the lost rows is not the column
        (_cut(slice(0, 30)) | np.pad(np.ones((20, 8), bool), ((10, 70), (30, 2))), (60 / 80, 20 / 80)),
        (_column() | np.pad(np.ones((5, 10), bool), ((0, 95), (15, 15))), (1.0, 0.0)),  # above T1: not counted
    ],
)
def test_column_rows_found(pred, expected):
    assert column_rows_found(pred, _column()) == pytest.approx(expected)
    assert column_rows_found(_column(), np.zeros((100, 40), bool)) == (0.0, 0.0)


def test_predictions_folder(aasce, tmp_path):
    """Ground-truth columns given as the predictions: perfect overlap; an empty mask is a film without a spine."""
    films = read_aasce_dataset(aasce, limit=2)
    pred_dir = tmp_path / "pred"
    pred_dir.mkdir()
    Image.fromarray(column_mask(films[0].points, films[0].shape)).save(pred_dir / f"{films[0].stem}_mask.png")
    Image.fromarray(np.zeros(films[1].shape, np.uint8)).save(pred_dir / f"{films[1].stem}_mask.png")
    summary = evaluate_landmarks(aasce, tmp_path / "out", limit=2, predictions=pred_dir, worst=2)
    good, empty = json.loads((tmp_path / "out" / "per_film.json").read_text())
    assert good["dice"] == pytest.approx(1.0) and good["hd95_px"] == pytest.approx(0.0) and good["on_spine"]
    # measured as a predicted mask, i.e. assuming a sacrum below L5 (the level model), so not identical
    assert abs(good["pred_angles"][0] - good["gt_angles"][0]) < 2.0
    assert good["column_rows_found"] == 1.0 and good["column_top_missed"] == 0.0
    assert empty["column_rows_found"] == 0.0 and empty["column_top_missed"] == 1.0
    assert empty["dice"] == 0.0 and empty["hd95_px"] is None and not empty["on_spine"]
    assert empty["pred_angles"] == [0.0, 0.0, 0.0] and "empty" in empty["pred_error"]
    seg = summary["segmentation_within_landmark_rows"]
    assert seg["films_without_mask_on_spine"] == [films[1].name]
    cov = seg["column_rows_found"]
    assert cov["mean"] == pytest.approx(0.5) and cov["films_missing_over_20pct"] == 1
    assert cov["films_top_missing_over_10pct"] == [films[1].name]
    summary_md = (tmp_path / "out" / "summary.md").read_text()
    assert "Rows of the column (T1 to L5) the predicted mask finds: 0.500" in summary_md
    with open(tmp_path / "out" / "per_film.csv", newline="") as f:
        assert [r["column_rows_found"] for r in csv.DictReader(f)] == ["1.0", "0.0"]
    assert summary["from_predicted_masks"]["unmeasurable_films"] == [films[1].name]
    with pytest.raises(FileNotFoundError, match="no predicted mask"):
        evaluate_landmarks(aasce, tmp_path / "out3", limit=3, predictions=pred_dir)


@pytest.mark.slow
def test_bundle_inference(aasce, tmp_path):
    """The shipped bundle's own inference on two films (the path of ``r2mf-monai infer``)."""
    summary = evaluate_landmarks(aasce, tmp_path, limit=2, worst=2)
    for film in read_aasce_dataset(aasce, limit=2):
        with Image.open(tmp_path / "predicted" / f"{film.stem}_mask.png") as im:
            assert im.size == (film.shape[1], film.shape[0])
    seg = summary["segmentation_within_landmark_rows"]
    assert seg["dice"]["n"] == 2 and 0.0 <= seg["dice"]["mean"] <= 1.0
    assert summary["review_flag"]["score"]["n"] == 2
    rows = json.loads((tmp_path / "per_film.json").read_text())
    assert all("pred_angles" in r and "review_score" in r for r in rows)
