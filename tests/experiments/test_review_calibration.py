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

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from r2mf_monai.experiments.review_calibration import calibrate_threshold, read_scores

REPO = Path(__file__).resolve().parents[2]


def split(n: int = 40, seed: int = 0, noise: float = 0.0):
    """A validation split whose review score rises as Dice falls (plus noise)."""
    rng = np.random.default_rng(seed)
    dice = np.sort(rng.uniform(0.6, 0.98, n))
    score = (1.0 - dice) * 0.5 + noise * rng.standard_normal(n)
    return dice, score


@pytest.mark.parametrize("fraction", [0.1, 0.25])
def test_perfectly_ranked_scores_flag_exactly_the_worst(fraction):
    dice, score = split()
    result = calibrate_threshold(dice, score, worst_fraction=fraction)
    flagged = score >= result["threshold"]
    worst = dice <= result["dice_cut"]
    assert np.array_equal(flagged, worst)
    assert result["flagged"] == pytest.approx(np.ceil(fraction * 40) / 40)
    assert result["precision"] == result["recall"] == 1.0
    assert result["spearman_rho"] == pytest.approx(1.0)


def test_noisy_scores_flag_a_few_not_all():
    dice, score = split(noise=0.02, seed=3)
    result = calibrate_threshold(dice, score, worst_fraction=0.1)
    assert 0.0 < result["flagged"] < 0.3
    assert result["recall"] >= 0.5
    # the default 0.02 threshold of an uncalibrated bundle would have flagged every image
    assert (score >= 0.02).mean() > 0.9


def test_uninformative_scores_have_no_rank_correlation():
    dice, _ = split()
    result = calibrate_threshold(dice, np.full(40, 0.1))
    assert np.isnan(result["spearman_rho"])
    assert result["flagged"] == 1.0  # one score for all: the flag cannot tell them apart


@pytest.mark.parametrize("args", [([0.9], [0.1]), ([0.9, 0.8], [0.1]), ([0.9, 0.8], [0.1, 0.2], 1.0)])
def test_ill_arg(args):
    with pytest.raises(ValueError):
        calibrate_threshold(*args)


def write_csv(path: Path, dice, score, columns=("image", "dice", "review_score")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for i, (d, s) in enumerate(zip(dice, score, strict=True)):
            w.writerow([f"P{i:04d}.png", d, s][: len(columns)])
    return path


def test_script_reads_the_evaluation_csv_and_writes_the_result(tmp_path):
    dice, score = split()
    metrics = write_csv(tmp_path / "metrics_per_image.csv", dice, score)
    out = tmp_path / "review_threshold.json"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "calibrate_review.py"), str(metrics), "--output", str(out)],
        check=True,
        capture_output=True,
    )
    assert json.loads(out.read_text())["threshold"] == pytest.approx(calibrate_threshold(dice, score)["threshold"])
    assert np.allclose(read_scores(metrics)[0], dice)


def test_script_names_the_file_without_a_review_column(tmp_path):
    metrics = write_csv(tmp_path / "m.csv", [0.9, 0.8], [0.1, 0.2], columns=("image", "dice"))
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "calibrate_review.py"), str(metrics)], capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "m.csv" in proc.stderr and "review_score" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
