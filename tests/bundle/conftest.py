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
"""Fixtures of the bundle tests: a tiny synthetic data set and a scratch bundle root, and a runner that types
``python -m monai.bundle ...`` the way a user does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bundle" / "configs"
# a narrow network and small images keep every bundle test to seconds on 2 CPU cores
TINY = {
    "image_size": "64",
    "network_def#channels": "[8,16,32,64]",
    "num_workers": "0",
}


def bundle_cmd(*args: str, overrides: dict[str, str] | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "monai.bundle", *args]
    for key, value in (overrides or {}).items():
        cmd += [f"--{key}", value]
    return cmd


def train_cmd(root: Path, dataset: Path, **overrides: str) -> list[str]:
    """``python -m monai.bundle run training`` of the bundle at ``root`` on ``dataset``, narrow (:data:`TINY`)."""
    base = {**TINY, "bundle_root": str(root), "dataset_dir": str(dataset)}
    config = str(root / "configs" / "train.json")
    return bundle_cmd("run", "training", "--config_file", config, overrides=base | overrides)


def run(cmd: list[str], cwd: Path = REPO, timeout: int = 600, env: dict[str, str] | None = None) -> str:
    """Run a command, fail the test with its output when it fails, return its output."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{out[-6000:]}"
    return out


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six synthetic patients (18 images, 4/1/1 split) at a tenth of the default size."""
    from r2mf_monai.data.synthetic import synthesize_dataset

    out = tmp_path_factory.mktemp("synthetic")
    synthesize_dataset(out, patients=6, seed=3, scale=0.12, workers=1)
    return out


def scratch_bundle(parent: Path) -> Path:
    """A copy of the bundle's configs in a scratch folder, so runs never touch the shipped weights."""
    root = parent / "bundle"
    shutil.copytree(CONFIGS, root / "configs")
    (root / "models").mkdir()
    return root


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Path) -> Path:
    """A scratch bundle holding a model trained for one epoch on the tiny data set, as a user runs it."""
    root = scratch_bundle(tmp_path_factory.mktemp("trained"))
    run(train_cmd(root, tiny_dataset, max_epochs="1"))
    # nothing to change in inference.json: it builds the narrow network and its size from models/model.json
    return root
