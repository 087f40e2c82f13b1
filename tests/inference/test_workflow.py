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
"""The bundle's inference workflow from Python, with the shipped weights (the path of ``r2mf-monai infer``)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from r2mf_monai.checkpoint import CheckpointMismatchError
from r2mf_monai.inference.workflow import inference_overrides, run_inference_workflow

BUNDLE = Path(__file__).resolve().parents[2] / "bundle"
MODEL = BUNDLE / "models" / "model.pt"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def films(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three views of one small synthetic patient."""
    from r2mf_monai.data.synthetic import synthesize_dataset

    root = tmp_path_factory.mktemp("films")
    synthesize_dataset(root, patients=1, scale=0.1, workers=1, formats=("png16",))
    return root / "images"


def _overrides(films: Path, out: Path, model: str | os.PathLike | None = None) -> dict:
    return inference_overrides(
        BUNDLE, model=model, device="cpu", dataset_dir=str(films), output_dir=str(out), output_formats=["png"],
        save_overlay=False, review=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    "model, device, expected",
    [
        (None, None, {}),
        (MODEL, None, {"ckpt_path": str(MODEL)}),
        (None, "cuda:1", {"device": "$torch.device('cuda:1')"}),
        (MODEL, "cpu", {"ckpt_path": str(MODEL), "device": "$torch.device('cpu')"}),
    ],
)
def test_inference_overrides(model, device, expected, tmp_path):
    overrides = inference_overrides(os.path.relpath(BUNDLE), model=model, device=device, output_dir=str(tmp_path))
    assert overrides == {"bundle_root": str(BUNDLE), "output_dir": str(tmp_path), **expected}


def test_inference_overrides_missing_model(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--model '.*nowhere\.pt' does not exist"):
        inference_overrides(BUNDLE, model=tmp_path / "nowhere.pt")


def test_run_inference_workflow_writes_masks(films, tmp_path):
    out = tmp_path / "out"
    run_inference_workflow(BUNDLE, _overrides(films, out, model=MODEL))
    for image in sorted(films.iterdir()):
        with Image.open(image) as src, Image.open(out / f"{image.stem}_mask.png") as mask:
            assert mask.size == src.size, image.name
            assert set(np.unique(np.asarray(mask))) <= {0, 255}


@pytest.mark.parametrize("wrong", ["does_not_fit", "no_model_json"])
def test_run_inference_workflow_checkpoint_error_is_itself(wrong, films, tmp_path):
    model = tmp_path / "model.pt"
    shutil.copy(MODEL, model)
    if wrong == "does_not_fit":  # a model.json that does not describe its weights (twice the widths)
        config = json.loads((BUNDLE / "models" / "model.json").read_text())
        config["network_def"]["channels"] = [2 * c for c in config["network_def"]["channels"]]
        (tmp_path / "model.json").write_text(json.dumps(config))
    error = CheckpointMismatchError if wrong == "does_not_fit" else FileNotFoundError
    out = tmp_path / "out"
    with pytest.raises(error, match="model.json") as info:
        run_inference_workflow(BUNDLE, _overrides(films, out, model=model))
    assert info.value.__suppress_context__  # the error itself, not MONAI's chain of config errors
    assert not list(out.glob("*_mask.png"))
