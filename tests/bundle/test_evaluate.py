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
"""bundle/configs/evaluate.json merged over train.json, as the model zoo runs evaluation."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.bundle.conftest import TINY, bundle_cmd, run

pytestmark = pytest.mark.slow


def test_evaluate_writes_stratified_tables_and_worst_cases(trained_bundle: Path, tiny_dataset: Path) -> None:
    configs = trained_bundle / "configs"
    eval_dir = trained_bundle / "eval_test"
    run(
        bundle_cmd(
            "run",
            "evaluating",
            "--config_file",
            f"['{configs / 'train.json'}','{configs / 'evaluate.json'}']",
            overrides={
                **TINY,
                "bundle_root": str(trained_bundle),
                "dataset_dir": str(tiny_dataset),
                "eval_dir": str(eval_dir),
                "eval_split": "validation",
                "num_worst": "2",
            },
        )
    )
    datalist = json.loads((tiny_dataset / "datalist.json").read_text())
    expected = {Path(item["image"]).name: item for item in datalist["validation"]}
    with open(eval_dir / "metrics_per_image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["image"] for r in rows} == set(expected)
    for row in rows:
        assert row["view"] == expected[row["image"]]["view"]
        assert row["quality"] == expected[row["image"]]["quality"]
        assert 0.0 <= float(row["dice"]) <= 100.0
    summary = json.loads((eval_dir / "metrics_summary.json").read_text())
    assert set(summary["view"]) == {item["view"] for item in expected.values()}
    assert summary["all"]["all"]["dice"]["n"] == len(rows)
    table = (eval_dir / "metrics_table.md").read_text()
    assert "| Direction |" in table and "| Quality |" in table
    assert len(list((eval_dir / "worst_cases").glob("*.png"))) == 2
