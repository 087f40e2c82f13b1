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
"""Paired comparison of two evaluate-landmarks runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from r2mf_monai.cli import compare_landmarks
from r2mf_monai.experiments.compare_runs import compare_runs, comparison_figure, comparison_markdown

FILMS = 60


def _run(folder: Path, errors, dice=None, names=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"film{i:03d}.jpg" for i in range(len(errors))]
    rows = [
        {"film": n, "gt_main_error": 2.0, "pred_main_error": float(e), **({} if dice is None else {"dice": dice[i]})}
        for i, (n, e) in enumerate(zip(names, errors, strict=True))
    ]
    (folder / "per_film.json").write_text(json.dumps(rows))
    return folder


@pytest.fixture
def runs(tmp_path):
    rng = np.random.default_rng(0)
    before = rng.exponential(6.0, FILMS)
    after = np.clip(before - 1.0 + rng.normal(0.0, 0.5, FILMS), 0.0, None)  # about a degree better, film by film
    dice_a = rng.uniform(0.7, 0.9, FILMS)
    a = _run(tmp_path / "a", before, dice=list(dice_a))
    b = _run(tmp_path / "b", after, dice=list(dice_a - 0.01))
    return a, b, before, after


def test_paired_difference(runs):
    a, b, before, after = runs
    result = compare_runs(a, b)
    assert result["films"] == FILMS and result["only_in_a"] == result["only_in_b"] == []
    err = result["quantities"]["pred_main_error"]
    assert err["mean_difference"] == pytest.approx(np.mean(after - before), abs=1e-3)
    low, high = err["difference_ci95"]
    assert low < err["mean_difference"] < high < 0.0  # a real gain: the interval leaves 0 out
    # the paired interval is far narrower than the spread of either run's errors
    assert high - low < 0.5 * before.std()
    assert err["better"] == int(np.sum(after < before - 1e-9)) and err["better"] + err["worse"] + err["same"] == FILMS
    dice = result["quantities"]["dice"]
    assert dice["worse"] == FILMS and dice["difference_ci95"][1] < 0.0  # higher is better for Dice
    same = result["quantities"]["gt_main_error"]
    assert same["same"] == FILMS and same["mean_difference"] == 0.0
    assert "hd95_px" not in result["quantities"]  # in neither run


def test_markdown_and_cli_files(runs, tmp_path):
    a, b, _, _ = runs
    out = tmp_path / "cmp" / "a_vs_b.md"
    text = compare_landmarks(str(a), str(b), output=str(out))
    assert out.read_text() == text == comparison_markdown(compare_runs(a, b))
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["quantities"]["pred_main_error"]["films"] == FILMS
    assert "| main-curve error, predicted masks (deg) | 60 |" in text
    assert len(saved["quantities"]["dice"]["per_film"]) == FILMS
    with Image.open(out.with_suffix(".png")) as im:  # one panel for the angle error, one for Dice
        assert im.format == "PNG" and im.width > 1.8 * im.height
    assert not [p for p in out.parent.iterdir() if ".tmp" in p.name]


def test_only_the_common_films_are_paired(tmp_path):
    a = _run(tmp_path / "a", [1.0, 2.0, 3.0], names=["x.jpg", "y.jpg", "z.jpg"])
    b = _run(tmp_path / "b", [2.0, 2.0, 9.0, 4.0], names=["x.jpg", "y.jpg", "w.jpg", "v.jpg"])
    result = compare_runs(a, b / "per_film.json")
    assert result["films"] == 2 and result["only_in_a"] == ["z.jpg"] and result["only_in_b"] == ["v.jpg", "w.jpg"]
    assert result["quantities"]["pred_main_error"]["mean_difference"] == pytest.approx(0.5)
    assert "1 film(s) only in A, left out: z.jpg" in comparison_markdown(result)


@pytest.mark.parametrize(
    "content, error, match",
    [
        (None, FileNotFoundError, "per_film.json' does not exist"),
        ("{not json", ValueError, "is not JSON"),
        ('{"film": "x"}', ValueError, "not an evaluate-landmarks per_film.json"),
    ],
)
def test_bad_run_one_clear_error(tmp_path, content, error, match):
    good = _run(tmp_path / "good", [1.0, 2.0])
    bad = tmp_path / "bad"
    bad.mkdir()
    if content is not None:
        (bad / "per_film.json").write_text(content)
    with pytest.raises(error, match=match):
        compare_runs(good, bad)


def test_no_common_film_or_unknown_quantity(tmp_path):
    a = _run(tmp_path / "a", [1.0], names=["x.jpg"])
    b = _run(tmp_path / "b", [1.0], names=["y.jpg"])
    with pytest.raises(ValueError, match="no film in common"):
        compare_runs(a, b)
    with pytest.raises(ValueError, match="unknown quantity 'cobb'"):
        compare_runs(a, a, quantities=["cobb"])


def test_figure_with_one_quantity(tmp_path):
    """A run pair with the ground-truth columns only has no Dice: the figure draws the panels it can."""
    a = _run(tmp_path / "a", [1.0, 2.0, 3.0])
    b = _run(tmp_path / "b", [1.5, 2.0, 2.0])
    path = comparison_figure(compare_runs(a, b), tmp_path / "one.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width < 1.5 * im.height


def test_a_film_without_a_number_is_left_out_of_that_quantity(tmp_path):
    a = _run(tmp_path / "a", [1.0, 2.0, 3.0], names=["x.jpg", "y.jpg", "z.jpg"])
    b = _run(tmp_path / "b", [2.0, 2.0, 9.0], names=["x.jpg", "y.jpg", "z.jpg"])
    rows = json.loads((b / "per_film.json").read_text())
    rows[2]["pred_main_error"] = float("nan")  # json writes NaN, and reads it back
    rows[1]["pred_main_error"] = None  # a film the run could not measure
    (b / "per_film.json").write_text(json.dumps(rows))
    err = compare_runs(a, b)["quantities"]["pred_main_error"]
    assert err["films"] == 1 and list(err["per_film"]) == ["x.jpg"] and err["mean_difference"] == 1.0


def test_column_rows_found_higher_is_better(tmp_path):
    """A run whose masks find more of the column's rows is the better one for that quantity."""
    names = [f"film{i}.jpg" for i in range(4)]
    for run, found in (("a", [0.7, 0.9, 1.0, 0.8]), ("b", [0.9, 0.9, 1.0, 1.0])):
        rows = [{"film": n, "pred_main_error": 3.0, "column_rows_found": f} for n, f in zip(names, found, strict=True)]
        (tmp_path / run).mkdir()
        (tmp_path / run / "per_film.json").write_text(json.dumps(rows))
    entry = compare_runs(tmp_path / "a", tmp_path / "b")["quantities"]["column_rows_found"]
    assert (entry["better"], entry["worse"], entry["same"]) == (2, 0, 2)
    assert entry["mean_difference"] == pytest.approx(0.1) and entry["higher_is_better"]
