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
"""bundle/configs/multi_gpu_train.json and multi_gpu_evaluate.json under torchrun: two CPU processes (gloo) end
training with identical weights, and evaluating gives the single-process report."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import torch

from tests.bundle.conftest import TINY, bundle_cmd, run, scratch_bundle

pytestmark = pytest.mark.slow


def _torchrun(port: int, *args: str) -> list[str]:
    """``monai.bundle`` under torchrun with two processes on this machine."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--nnodes",
        "1",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(port),
        "-m",
        "monai.bundle",
        *args,
    ]


def test_two_cpu_ranks_train_one_epoch_and_agree(tiny_dataset: Path, tmp_path: Path) -> None:
    root = scratch_bundle(tmp_path)
    configs = root / "configs"
    save = '$torch.save(@network.module.state_dict(), @output_dir + "/rank" + str(dist.get_rank()) + ".pt")'
    cmd = _torchrun(
        29517,
        "run",
        "--config_file",
        f"['{configs / 'train.json'}','{configs / 'multi_gpu_train.json'}']",
        "--bundle_root",
        str(root),
        "--dataset_dir",
        str(tiny_dataset),
        "--max_epochs",
        "1",
        "--finalize",
        f"['{save}', '$dist.barrier()', '$dist.destroy_process_group()']",
    )
    for key, value in TINY.items():
        cmd += [f"--{key}", value]
    run(cmd)
    rank0 = torch.load(root / "eval" / "rank0.pt", map_location="cpu", weights_only=True)
    rank1 = torch.load(root / "eval" / "rank1.pt", map_location="cpu", weights_only=True)
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
    # rank 0 alone writes the checkpoints, after a real epoch
    ckpt = torch.load(root / "models" / "checkpoint_epoch=1.pt", map_location="cpu", weights_only=False)
    assert ckpt["trainer"]["iteration"] == ckpt["trainer"]["epoch_length"] > 0
    for key in rank0:
        torch.testing.assert_close(ckpt["model"][key], rank0[key], msg=key)


def test_two_cpu_ranks_evaluate_like_one_process(trained_bundle: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    """Each rank evaluates half the split; rank 0 writes every image's row, in the data set's order, as one process
    does, and the summary and the review scores cover them all."""
    configs = trained_bundle / "configs"
    base = [f"{configs / 'train.json'}", f"{configs / 'evaluate.json'}"]
    overrides = {**TINY, "bundle_root": str(trained_bundle), "dataset_dir": str(tiny_dataset), "eval_split": "training"}
    single, multi = tmp_path / "single", tmp_path / "multi"
    run(bundle_cmd("run", "evaluating", "--config_file", str(base), overrides={**overrides, "eval_dir": str(single)}))
    cmd = _torchrun(29519, "run", "--config_file", str([*base, f"{configs / 'multi_gpu_evaluate.json'}"]))
    for key, value in {**overrides, "eval_dir": str(multi)}.items():
        cmd += [f"--{key}", value]
    run(cmd)

    def rows(folder: Path) -> list[dict[str, str]]:
        with open(folder / "metrics_per_image.csv", newline="") as f:
            return list(csv.DictReader(f))

    datalist = json.loads((tiny_dataset / "datalist.json").read_text())
    assert [r["image"] for r in rows(multi)] == [Path(item["image"]).name for item in datalist["training"]]
    for a, b in zip(rows(single), rows(multi), strict=True):
        assert a["image"] == b["image"]
        for metric in ("iou", "dice", "asd_px", "hd95_px"):
            assert float(a[metric]) == pytest.approx(float(b[metric]), rel=1e-6, abs=1e-6, nan_ok=True), (a, metric)
    summary = json.loads((multi / "metrics_summary.json").read_text())
    assert summary["all"]["all"]["dice"]["n"] == len(datalist["training"])
    review = json.loads((multi / "review.json").read_text())
    assert [r["image"] for r in review["images"]] == [r["image"] for r in rows(multi)]
