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
"""bundle/configs/train.json run as a user types it: outputs, resume, and the synthetic data set on first use."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch

from tests.bundle.conftest import TINY, bundle_cmd, run, scratch_bundle

pytestmark = pytest.mark.slow


def _rows(root: Path) -> list[dict[str, str]]:
    with open(root / "runs" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_training_writes_best_model_checkpoint_and_history(trained_bundle: Path) -> None:
    assert (trained_bundle / "models" / "model.pt").is_file()
    assert (trained_bundle / "models" / "checkpoint_epoch=1.pt").is_file()
    state = torch.load(trained_bundle / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert any(k.startswith("fine") or k.startswith("coarse") for k in state), list(state)[:5]
    rows = _rows(trained_bundle)
    assert [int(r["epoch"]) for r in rows] == [1]
    for key in ("train_loss", "lr", "val_mean_dice", "val_loss"):
        assert key in rows[0], rows[0]
    assert 0.0 <= float(rows[0]["val_mean_dice"]) <= 1.0
    assert list((trained_bundle / "runs").glob("events.out.tfevents.*")), "no TensorBoard events"


def test_resume_continues_epoch_count_and_optimizer(trained_bundle: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "bundle"
    shutil.copytree(trained_bundle, root)
    before = _rows(root)
    ckpt1 = torch.load(root / "models" / "checkpoint_epoch=1.pt", map_location="cpu", weights_only=False)
    out = run(
        bundle_cmd(
            "run",
            "training",
            "--config_file",
            str(root / "configs" / "train.json"),
            overrides={**TINY, "bundle_root": str(root), "dataset_dir": str(tiny_dataset), "max_epochs": "2"}
            | {"resume": "true"},
        )
    )
    rows = _rows(root)
    # epoch 1 came from the checkpoint; exactly one more epoch was trained
    assert [int(r["epoch"]) for r in rows] == [1, 2], out[-3000:]
    assert rows[0] == before[0]
    ckpt2 = torch.load(root / "models" / "checkpoint_epoch=2.pt", map_location="cpu", weights_only=False)
    assert ckpt2["trainer"]["iteration"] == 2 * ckpt2["trainer"]["epoch_length"]
    # Adam's step count continued from the checkpoint instead of restarting at zero
    step1 = next(iter(ckpt1["optimizer"]["state"].values()))["step"]
    step2 = next(iter(ckpt2["optimizer"]["state"].values()))["step"]
    assert float(step2) == 2 * float(step1)


def test_training_generates_the_synthetic_data_set_when_there_is_none(tmp_path: Path) -> None:
    root = scratch_bundle(tmp_path)
    dataset = tmp_path / "empty_dataset"
    out = run(
        bundle_cmd(
            "run",
            "training",
            "--config_file",
            str(root / "configs" / "train.json"),
            overrides={
                **TINY,
                "bundle_root": str(root),
                "dataset_dir": str(dataset),
                "max_epochs": "1",
                "synthetic_patients": "3",
                "synthetic_scale": "0.1",
            },
        )
    )
    assert "generating the synthetic data set" in out
    assert (dataset / "datalist.json").is_file()
    assert (root / "models" / "model.pt").is_file()


def test_a_folder_with_files_but_no_datalist_is_refused_by_name(tmp_path: Path) -> None:
    root = scratch_bundle(tmp_path)
    dataset = tmp_path / "user_data"
    dataset.mkdir()
    (dataset / "scan.png").write_bytes(b"not really")
    cmd = bundle_cmd(
        "run",
        "training",
        "--config_file",
        str(root / "configs" / "train.json"),
        overrides={**TINY, "bundle_root": str(root), "dataset_dir": str(dataset), "max_epochs": "1"},
    )
    with pytest.raises(AssertionError, match="user_data"):
        run(cmd)
    assert not (root / "models" / "model.pt").exists()
