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
"""scripts/reproduce_paper.py --smoke: trains two tiny models through the bundle, writes the tables, resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "reproduce_paper.py"


def _run(*args: str) -> str:
    # tiny models: one thread is faster, and immune to OpenMP spinning on a shared, loaded CPU
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=900, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.mark.slow
def test_smoke_trains_evaluates_and_resumes(tmp_path: Path) -> None:
    _run("--out", str(tmp_path), "--smoke")
    for name in ("r2mfnet", "unet"):
        run = tmp_path / "runs" / name
        assert (run / "models" / "model.pt").is_file()
        summary = json.loads((run / "eval" / "metrics_summary.json").read_text())
        assert summary["all"]["all"]["dice"]["n"] == 3  # one test patient, three views
        assert "monai.bundle run training" in (run / "train.log").read_text()
    tables = json.loads((tmp_path / "tables.json").read_text())
    assert set(tables["table1"]) == {"coronal", "left_bending", "right_bending"}
    assert {"R2MF-Net (full)", "U-Net (MONAI UNet)"} <= set(tables["table3"])
    assert set(tables["table4"]) == {"R2MF-Net (full)", "U-Net (MONAI UNet)"}
    assert set(tables["quality"]["R2MF-Net (full)"]) == {"high", "medium", "low"}
    text = (tmp_path / "tables.md").read_text()
    for title in ("Table 1", "Table 2", "Table 3", "Table 4", "§4.8"):
        assert title in text
    # resumable: a finished model is neither trained nor evaluated again
    logs = {p: p.read_text() for p in tmp_path.glob("runs/*/*.log")}
    out = _run("--out", str(tmp_path), "--smoke")
    assert ": training" not in out and ": evaluating" not in out
    assert {p: p.read_text() for p in tmp_path.glob("runs/*/*.log")} == logs


def test_bad_image_size(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--image_size", "100"], capture_output=True, text=True
    )
    assert proc.returncode != 0 and "--image_size" in proc.stderr
