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
"""bundle/configs/multi_gpu_train.json under torchrun: two CPU processes (gloo) end with identical weights."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from tests.bundle.conftest import TINY, run, scratch_bundle

pytestmark = pytest.mark.slow


def test_two_cpu_ranks_train_one_epoch_and_agree(tiny_dataset: Path, tmp_path: Path) -> None:
    root = scratch_bundle(tmp_path)
    configs = root / "configs"
    save = '$torch.save(@network.module.state_dict(), @output_dir + "/rank" + str(dist.get_rank()) + ".pt")'
    cmd = [
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
        "29517",
        "-m",
        "monai.bundle",
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
        f"['{save}', '$dist.destroy_process_group()']",
    ]
    for key, value in TINY.items():
        cmd += [f"--{key}", value]
    run(cmd)
    rank0 = torch.load(root / "runs" / "rank0.pt", map_location="cpu", weights_only=True)
    rank1 = torch.load(root / "runs" / "rank1.pt", map_location="cpu", weights_only=True)
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
    # rank 0 alone writes the checkpoints, after a real epoch
    ckpt = torch.load(root / "models" / "checkpoint_epoch=1.pt", map_location="cpu", weights_only=False)
    assert ckpt["trainer"]["iteration"] == ckpt["trainer"]["epoch_length"] > 0
    for key in rank0:
        torch.testing.assert_close(ckpt["model"][key], rank0[key], msg=key)
