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
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch

from tests.bundle.conftest import REPO, TINY, run, scratch_bundle, train_cmd

CLI = Path(sys.executable).parent / "r2mf-monai"

pytestmark = pytest.mark.slow


def _rows(root: Path) -> list[dict[str, str]]:
    with open(root / "eval" / "metrics.csv", newline="") as f:
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
    assert list((trained_bundle / "eval").glob("events.out.tfevents.*")), "no TensorBoard events"


def test_resume_continues_epoch_count_and_optimizer(trained_bundle: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "bundle"
    shutil.copytree(trained_bundle, root)
    before = _rows(root)
    ckpt1 = torch.load(root / "models" / "checkpoint_epoch=1.pt", map_location="cpu", weights_only=False)
    out = run(train_cmd(root, tiny_dataset, max_epochs="2", resume="true"))
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
    out = run(train_cmd(root, dataset, max_epochs="1", synthetic_patients="3", synthetic_scale="0.1"))
    assert "generating the synthetic data set" in out
    assert (dataset / "datalist.json").is_file()
    assert (root / "models" / "model.pt").is_file()


def test_a_folder_with_files_but_no_datalist_is_refused_by_name(tmp_path: Path) -> None:
    root = scratch_bundle(tmp_path)
    dataset = tmp_path / "user_data"
    dataset.mkdir()
    (dataset / "scan.png").write_bytes(b"not really")
    with pytest.raises(AssertionError, match="user_data"):
        run(train_cmd(root, dataset, max_epochs="1"))
    assert not (root / "models" / "model.pt").exists()


def test_train_then_infer_with_no_overrides(trained_bundle: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    # the README's path: train (here narrow, at 64 px), then `r2mf-monai infer` with nothing about the network
    config = json.loads((trained_bundle / "models" / "model.json").read_text())
    assert config["image_size"] == int(TINY["image_size"])
    assert config["network_def"]["channels"] == json.loads(TINY["network_def#channels"])
    images = tmp_path / "in"
    images.mkdir()
    for path in sorted((tiny_dataset / "images").glob("*_coronal.png"))[:2]:
        shutil.copy(path, images / path.name)
    run([str(CLI), "infer", str(images), str(tmp_path / "out"), "--bundle_dir", str(trained_bundle)])
    assert len(list((tmp_path / "out").glob("*_mask.png"))) == 2


@pytest.mark.parametrize("overwrite", [False, True])
def test_training_keeps_shipped_weights_unless_overwrite(overwrite: bool, tiny_dataset: Path, tmp_path: Path) -> None:
    root = scratch_bundle(tmp_path)
    for name in ("model.pt", "model.json"):
        shutil.copy(REPO / "bundle" / "models" / name, root / "models" / name)
    shipped = (root / "models" / "model.pt").read_bytes()
    out = run(train_cmd(root, tiny_dataset, max_epochs="1", **({"overwrite": "true"} if overwrite else {})))
    # one summary line for the epoch, no per-iteration lines at INFO
    assert len(re.findall(r"epoch 1/1: train_loss [\d.]+, val_mean_dice [\d.]+ \(best", out)) == 1, out[-3000:]
    assert not re.search(r"iteration \d+/\d+: loss", out) and "Current learning rate" not in out
    new = sorted((root / "models").glob("model_*.pt"))
    config = json.loads((root / "models" / "model.json").read_text())
    if overwrite:
        assert not new and (root / "models" / "model.pt").read_bytes() != shipped
        assert config["image_size"] == int(TINY["image_size"])
        return
    assert (root / "models" / "model.pt").read_bytes() == shipped and config["image_size"] == 256
    assert len(new) == 1 and new[0].with_suffix(".json").is_file()
    # the log names the model and the exact command that infers with it: run that command
    command = re.search(r"infer with it: r2mf-monai (infer INPUT_DIR OUTPUT_DIR .*)", out).group(1).split()
    assert command[-2:] == ["--model", str(new[0])]
    images = tmp_path / "in"
    images.mkdir()
    shutil.copy(sorted((tiny_dataset / "images").glob("*.png"))[0], images)
    command[1:3] = [str(images), str(tmp_path / "out")]
    run([str(CLI), *command])
    assert len(list((tmp_path / "out").glob("*_mask.png"))) == 1


def test_training_starts_from_init_ckpt(trained_bundle: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    # fine-tuning from given weights (e.g. the shipped model on a user's films): with a zero learning rate the saved
    # model keeps the initial weights exactly; without init_ckpt it would start from a fresh random network
    init = trained_bundle / "models" / "model.pt"
    root = scratch_bundle(tmp_path)
    out = run(train_cmd(root, tiny_dataset, max_epochs="1", learning_rate="0.0", init_ckpt=str(init)))
    assert "Restored all variables from" in out
    start = torch.load(init, map_location="cpu", weights_only=True)
    saved = torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True)
    convs = [k for k in start if k.endswith("conv.weight")]
    assert convs and all(torch.equal(start[k], saved[k]) for k in convs)


def test_extra_datalists_join_training_and_validation(tiny_dataset: Path, tmp_path: Path) -> None:
    from monai.bundle import ConfigParser

    root = scratch_bundle(tmp_path)
    extra = tmp_path / "extra"
    extra.mkdir()
    lists = json.loads((tiny_dataset / "datalist.json").read_text())
    for split in ("training", "validation"):
        for item in lists[split]:
            for key in ("image", "label"):
                item[key] = str(tiny_dataset / item[key])
    del lists["validation"][1:]
    (extra / "datalist.json").write_text(json.dumps({"training": lists["training"], "validation": lists["validation"]}))

    def parsed(extra_datalists: list[str]) -> tuple[list, list]:
        parser = ConfigParser()
        parser.read_config(str(root / "configs" / "train.json"))
        parser.update({"bundle_root": str(root), "dataset_dir": str(tiny_dataset), "extra_datalists": extra_datalists})
        return parser.get_parsed_content("train#dataset#data"), parser.get_parsed_content("validate#dataset#data")

    base_train, base_val = parsed([])
    train, val = parsed([str(extra / "datalist.json")])
    assert len(train) == 2 * len(base_train) and len(val) == len(base_val) + 1
    assert train[len(base_train) :] == base_train  # the same films, found through the extra datalist's paths
    with pytest.raises(RuntimeError) as error:  # MONAI's config wraps the one-line error of the missing file
        parsed([str(extra / "missing.json")])
    assert isinstance(error.value.__cause__, FileNotFoundError) and "missing.json" in str(error.value.__cause__)
