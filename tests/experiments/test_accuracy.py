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
"""r2mf_monai.experiments.accuracy and its door scripts/measure_accuracy.py: the measurements of the synthetic
ground-truth masks against the generator's angles."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from r2mf_monai.constants import VIEWS
from r2mf_monai.experiments.accuracy import evaluate, ground_truth_lenke, markdown

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "measure_accuracy.py"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small synthetic patients (one per split), as the script's --data."""
    from r2mf_monai.data.synthetic import synthesize_dataset

    out = tmp_path_factory.mktemp("accuracy") / "synth"
    synthesize_dataset(out, patients=3, seed=0, scale=0.25, workers=1, split=(1, 1, 1))
    return out


def _curve(region: str, cobb: float, upper: str, lower: str) -> dict:
    return {"region": region, "cobb_deg": cobb, "upper_end": upper, "lower_end": lower}


def _patient(curves: list[dict], bending: dict[tuple[str, str], float]) -> dict:
    flex = [{"upper_end": u, "lower_end": low, "bending_cobb_deg": b} for (u, low), b in bending.items()]
    return {"views": {"coronal": {"curves": curves}}, "flexibility": {"curves": flex}}


MT = _curve("main_thoracic", 45.0, "T6", "T11")
TL = _curve("lumbar", 35.0, "T11", "L4")
PT = _curve("proximal_thoracic", 20.0, "T1", "T5")

# [coronal curves, bending Cobb of each curve, Lenke type the rules give]
LENKE_CASES = [
    [[MT, TL], {("T6", "T11"): 30.0, ("T11", "L4"): 10.0}, 1],  # a flexible lumbar curve: minor, not structural
    [[MT, TL, PT], {("T6", "T11"): 30.0, ("T11", "L4"): 10.0, ("T1", "T5"): 26.0}, 2],
    [[MT, TL], {("T6", "T11"): 30.0, ("T11", "L4"): 25.0}, 3],  # >= 25 degrees on bending: structural
    [[{**MT, "cobb_deg": 25.0}, TL], {("T6", "T11"): 5.0, ("T11", "L4"): 20.0}, 5],
    [[_curve("main_thoracic", 8.0, "T6", "T11")], {("T6", "T11"): 2.0}, None],  # below 10 degrees: no scoliosis
]


@pytest.mark.parametrize("curves, bending, expected", LENKE_CASES)
def test_ground_truth_lenke(curves: list[dict], bending: dict, expected: int | None) -> None:
    assert ground_truth_lenke(_patient(curves, bending)) == expected


def test_evaluate_the_ground_truth_masks(data: Path) -> None:
    result = evaluate(data, split="test")
    assert result["patients"] == len(result["per_patient"]) == 1
    metrics = result["metrics"]
    assert metrics["main_curve_cobb_all_views"]["n"] == len(VIEWS)
    for view in VIEWS:
        stats = metrics[f"main_curve_cobb_{view}"]
        assert stats["n"] == 1 and math.isfinite(stats["mae_deg"]) and stats["mae_deg"] >= 0.0
    text = markdown(result, "a command")
    assert "main-curve Cobb, coronal" in text and "Lenke curve type" in text and "a command" in text


def test_predicted_masks_are_measured_like_the_ground_truth(data: Path, tmp_path: Path) -> None:
    """The ground-truth masks under the names ``r2mf-monai infer`` gives predictions measure the same."""
    truth = json.loads((data / "ground_truth.json").read_text())
    for pid, patient in truth["patients"].items():
        if patient["split"] == "test":
            for view in VIEWS:
                shutil.copy(data / patient["views"][view]["label"], tmp_path / f"{pid}_{view}_mask.png")
    assert evaluate(data, masks_dir=tmp_path, film_weight=0.0)["metrics"] == evaluate(data)["metrics"]


def test_predicted_masks_are_measured_with_their_films(data: Path, tmp_path: Path) -> None:
    """As ``r2mf-monai infer`` measures them: the film's endplates join the tangent (film_tilt); the ground-truth
    masks are read alone."""
    truth = json.loads((data / "ground_truth.json").read_text())
    for pid, patient in truth["patients"].items():
        if patient["split"] == "test":
            for view in VIEWS:
                shutil.copy(data / patient["views"][view]["label"], tmp_path / f"{pid}_{view}_mask.png")
    with_films, alone = evaluate(data, masks_dir=tmp_path), evaluate(data, masks_dir=tmp_path, film_weight=0.0)
    assert with_films["parameters"]["film_weight"] == 0.5 and alone["parameters"]["film_weight"] == 0.0
    assert evaluate(data)["parameters"]["film_weight"] == 0.0
    assert with_films["per_patient"] != alone["per_patient"]  # the films were read


def test_no_patient_in_the_split_is_one_clear_error(data: Path) -> None:
    truth = json.loads((data / "ground_truth.json").read_text())
    empty = data.parent / "empty"
    empty.mkdir(exist_ok=True)
    truth["patients"] = {k: v for k, v in truth["patients"].items() if v["split"] != "test"}
    (empty / "ground_truth.json").write_text(json.dumps(truth))
    with pytest.raises(ValueError, match="no patient of split 'test'"):
        evaluate(empty)


def test_script_writes_the_table_and_the_json(data: Path, tmp_path: Path) -> None:
    stem = tmp_path / "out" / "accuracy"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, str(SCRIPT), "--data", str(data), "--split", "validation", "--output", str(stem)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    result = json.loads(stem.with_suffix(".json").read_text())
    assert result["split"] == "validation" and result["patients"] == 1 and result["masks"] == "ground truth"
    assert result["command"].startswith("python scripts/measure_accuracy.py --data")
    assert stem.with_suffix(".md").read_text() == markdown(result, result["command"])
    assert sorted(p.name for p in stem.parent.iterdir()) == ["accuracy.json", "accuracy.md"]  # nothing half-written
