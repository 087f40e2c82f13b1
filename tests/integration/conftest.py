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
"""Fixtures of the integration tests: a small synthetic data set, a bundle trained on it (as a user trains it, with
``python -m monai.bundle run training``), and the MONAI Label / MONAI Deploy venvs made by ``.ci/integration.sh``."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.bundle.conftest import run  # noqa: F401  (the same runner; integration tests import it from here)

REPO = Path(__file__).resolve().parents[2]
# a narrow network on small images keeps training to seconds on 2 CPU cores
TINY_IMAGE_SIZE = 64
TINY_CHANNELS = [8, 16, 32, 64]
TINY_EPOCHS = 4
# a high learning rate: four short epochs then give a mask of the column (validation Dice about 0.5), not a blank one
TINY_LEARNING_RATE = 0.003
VENVS = {
    "label": ("R2MF_LABEL_VENV", REPO / ".ci" / "venv-label"),
    "deploy": ("R2MF_DEPLOY_VENV", REPO / ".ci" / "venv-deploy"),
}
MARKER = ".r2mf-complete"  # written by .ci/integration.sh when a venv is finished


def venv_python(kind: str) -> Path:
    """The Python of the MONAI Label (``kind="label"``) or MONAI Deploy (``"deploy"``) venv.

    Fails the test (never skips it) when the venv is missing or unfinished, saying how to make it.
    """
    env_var, default = VENVS[kind]
    venv = Path(os.environ.get(env_var) or default)
    python = venv / "bin" / "python"
    if not python.is_file() or not (venv / MARKER).is_file():
        pytest.fail(
            f"the MONAI {'Label' if kind == 'label' else 'Deploy'} venv '{venv}' is missing or incomplete: create it "
            f"with `bash .ci/integration.sh {kind}` (or point {env_var} at one made by that script)",
            pytrace=False,
        )
    return python


@pytest.fixture(scope="session")
def label_python() -> Path:
    """The MONAI Label venv's Python; checked before anything is trained, so a missing venv fails at once."""
    return venv_python("label")


@pytest.fixture(scope="session")
def deploy_python() -> Path:
    """The MONAI Deploy venv's Python; checked before anything is trained, so a missing venv fails at once."""
    return venv_python("deploy")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two binary masks (1.0 when both are empty)."""
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    total = int(a.sum() + b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four synthetic patients (12 radiographs, PNG and DICOM, MONOCHROME1 included) at a tenth of full size."""
    from r2mf_monai.data.synthetic import synthesize_dataset

    out = tmp_path_factory.mktemp("integration_data")
    synthesize_dataset(out, patients=4, seed=11, scale=0.1, workers=1)
    return out


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path) -> Path:
    """A scratch copy of the bundle with a narrow R2MF-Net trained on ``tiny_data`` by the bundle's train.json.

    Its inference.json is then set to the narrow network and image size, as a user's retrained bundle would be.
    """
    root = tmp_path_factory.mktemp("integration_bundle") / "bundle"
    shutil.copytree(REPO / "bundle" / "configs", root / "configs")
    (root / "models").mkdir()
    run(
        [
            sys.executable,
            "-m",
            "monai.bundle",
            "run",
            "training",
            "--config_file",
            str(root / "configs" / "train.json"),
            "--bundle_root",
            str(root),
            "--dataset_dir",
            str(tiny_data),
            "--image_size",
            str(TINY_IMAGE_SIZE),
            "--network_def#channels",
            json.dumps(TINY_CHANNELS),
            "--max_epochs",
            str(TINY_EPOCHS),
            "--learning_rate",
            str(TINY_LEARNING_RATE),
            "--num_workers",
            "0",
        ]
    )
    assert (root / "models" / "model.pt").is_file(), "training wrote no models/model.pt"
    config_file = root / "configs" / "inference.json"
    config = json.loads(config_file.read_text())
    config["image_size"] = TINY_IMAGE_SIZE
    config["network_def"]["channels"] = TINY_CHANNELS
    config_file.write_text(json.dumps(config, indent=4))
    return root


def infer_reference(out: Path, images: list[Path], bundle: Path) -> dict[str, np.ndarray]:
    """The bundle's own masks of ``images`` (``r2mf-monai infer``, PyTorch backend, core venv), by file stem."""
    from PIL import Image

    from r2mf_monai.cli import infer

    inputs = out / "inputs"
    inputs.mkdir()
    for p in images:
        shutil.copy(p, inputs / p.name)
    infer(str(inputs), str(out / "masks"), bundle_dir=str(bundle), formats="png", overlay=False)
    return {p.name[: -len("_mask.png")]: np.asarray(Image.open(p)) for p in (out / "masks").glob("*_mask.png")}
