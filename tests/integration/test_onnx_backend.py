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
"""r2mf_monai.inference.onnx_backend and ``r2mf-monai infer --backend onnxruntime`` (core venv; no extra venv needed).

Tolerance: ONNX Runtime and eager PyTorch run the same float32 graph with different kernels, so the logits may differ
by rounding only: ``|ort - torch| <= 1e-4 * max(1, max|torch|)`` (1e-4 of the logit scale), and the thresholded masks
of the whole pipeline agree with Dice >= 0.99.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from r2mf_monai.inference.onnx_backend import OnnxRuntimeNetwork, export_onnx, onnx_overrides
from tests.integration.conftest import TINY_IMAGE_SIZE, dice

pytestmark = pytest.mark.slow

LOGIT_RTOL = 1e-4


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory: pytest.TempPathFactory, tiny_bundle: Path, tiny_data: Path) -> dict[str, Path]:
    """``r2mf-monai infer`` with each backend on the same radiographs; the ONNX run exports models/model.onnx."""
    from r2mf_monai.cli import infer

    base = tmp_path_factory.mktemp("onnx_cli")
    bundle = base / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    inputs = base / "inputs"
    inputs.mkdir()
    # one PNG and two DICOM files (a MONOCHROME1 one among them when the data set has one)
    images = sorted((tiny_data / "images").iterdir())
    picked = [next(p for p in images if p.suffix == ".png")] + [p for p in images if p.suffix == ".dcm"][:2]
    for p in picked:
        shutil.copy(p, inputs / p.name)
    assert not (bundle / "models" / "model.onnx").exists()
    runs = {"bundle": bundle, "inputs": inputs}
    for backend in ("pytorch", "onnxruntime"):
        runs[backend] = Path(
            infer(
                str(inputs), str(base / backend), bundle_dir=str(bundle), formats="png", overlay=False, backend=backend
            )
        )
    return runs


def _bundle_network(bundle: Path):
    """The bundle's parsed ``inference.json`` and its ``network_def`` with the bundle's weights."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser["bundle_root"] = str(bundle)
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(bundle / "models" / "model.pt", map_location="cpu", weights_only=True))
    return parser, network


def _masks(folder: Path) -> dict[str, np.ndarray]:
    found = {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*_mask.png"))}
    assert found, f"no *_mask.png in {folder}"
    return found


def test_cli_exports_missing_onnx_model(cli_runs: dict[str, Path]) -> None:
    onnx_file = cli_runs["bundle"] / "models" / "model.onnx"
    assert onnx_file.is_file()
    net = OnnxRuntimeNetwork(onnx_file)
    # the dynamic batch and the bundle's fixed input size
    assert net.input_shape == (None, 1, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)


def test_cli_onnxruntime_masks_match_pytorch(cli_runs: dict[str, Path]) -> None:
    torch_masks, ort_masks = _masks(cli_runs["pytorch"]), _masks(cli_runs["onnxruntime"])
    assert sorted(torch_masks) == sorted(ort_masks)
    assert len(torch_masks) == len(list(cli_runs["inputs"].iterdir()))
    for name, mask in torch_masks.items():
        assert ort_masks[name].shape == mask.shape, name
        assert dice(ort_masks[name], mask) >= 0.99, name


@pytest.mark.parametrize("batch", [1, 3])
def test_onnxruntime_matches_eager_pytorch(cli_runs: dict[str, Path], batch: int) -> None:
    bundle = cli_runs["bundle"]
    parser, network = _bundle_network(bundle)
    network.eval()
    # real pre-processed radiographs (the pipeline's own transforms), topped up with noise to the batch size
    pre = parser.get_parsed_content("preprocessing")
    images = [pre({"image": str(p)})["image"].as_tensor() for p in sorted(cli_runs["inputs"].iterdir())]
    generator = torch.Generator().manual_seed(batch)
    while len(images) < batch:
        images.append(torch.rand(1, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, generator=generator))
    x = torch.stack(images[:batch])
    with torch.no_grad():
        expected = network(x)
    got = OnnxRuntimeNetwork(bundle / "models" / "model.onnx")(x)
    assert got.shape == expected.shape == (batch, 1, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)
    scale = max(1.0, float(expected.abs().max()))
    err = float((got - expected).abs().max())
    assert err <= LOGIT_RTOL * scale, f"max |ort - torch| = {err} > {LOGIT_RTOL} * {scale}"


def test_a_cascade_export_gives_the_coarse_stage_and_the_same_review(cli_runs: dict[str, Path]) -> None:
    import json

    bundle = cli_runs["bundle"]
    _, network = _bundle_network(bundle)
    network.eval()
    x = torch.rand(2, 1, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = network.forward_stages(x)
    onnx_net = OnnxRuntimeNetwork(bundle / "models" / "model.onnx")
    assert onnx_net.has_stages
    for got, want in zip(onnx_net.forward_stages(x), expected, strict=True):
        assert float((got - want).abs().max()) <= LOGIT_RTOL * max(1.0, float(want.abs().max()))
    # the review flag's default method scores both backends' films alike, from the one pass each
    scores = {}
    for backend in ("pytorch", "onnxruntime"):
        review = json.loads((cli_runs[backend] / "review.json").read_text())
        assert review["method"] == "cascade"
        scores[backend] = {e["image"]: e["score"] for e in review["images"]}
    assert sorted(scores["pytorch"]) == sorted(scores["onnxruntime"])
    for name, score in scores["pytorch"].items():
        assert scores["onnxruntime"][name] == pytest.approx(score, abs=1e-3), name


def test_an_onnx_model_of_the_fine_logits_alone_is_exported_again(cli_runs: dict[str, Path], tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(cli_runs["bundle"], bundle)
    _, network = _bundle_network(bundle)
    old = bundle / "models" / "model.onnx"
    export_onnx(torch.nn.Sequential(network), old, TINY_IMAGE_SIZE)  # what bundles before 0.14.0 exported
    assert not OnnxRuntimeNetwork(old).has_stages  # newer than model.pt, so not stale by date
    onnx_overrides(bundle / "configs" / "inference.json", bundle)
    assert OnnxRuntimeNetwork(old).has_stages


def test_onnxruntime_network_bad_inputs(cli_runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.onnx"):
        OnnxRuntimeNetwork(tmp_path / "nothing.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx model")
    with pytest.raises(ValueError, match="corrupt.onnx"):
        OnnxRuntimeNetwork(corrupt)
    net = OnnxRuntimeNetwork(cli_runs["bundle"] / "models" / "model.onnx")
    with pytest.raises(ValueError, match="input of shape"):
        net(torch.zeros(1, 1, TINY_IMAGE_SIZE * 2, TINY_IMAGE_SIZE * 2))


def test_backend_argument_errors(cli_runs: dict[str, Path], tmp_path: Path) -> None:
    from r2mf_monai.cli import infer

    with pytest.raises(ValueError, match="--backend"):
        infer(str(cli_runs["inputs"]), str(tmp_path / "out"), bundle_dir=str(cli_runs["bundle"]), backend="tensorrt")
    # no ONNX file and no checkpoint to export one from: one clear error naming both
    empty = tmp_path / "bundle"
    shutil.copytree(cli_runs["bundle"] / "configs", empty / "configs")
    with pytest.raises(FileNotFoundError, match="model.pt"):
        onnx_overrides(empty / "configs" / "inference.json", empty)


def test_export_is_one_file_that_loads_alone(tmp_path: Path) -> None:
    """The weights are inside the .onnx file: no side file (``<temporary name>.onnx.data``) is left, and the model
    moved alone to a fresh folder loads and runs in ONNX Runtime."""
    import onnxruntime as ort

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 1))
    made, fresh = tmp_path / "made", tmp_path / "fresh"
    export_onnx(net, made / "model.onnx", image_size=16)
    assert sorted(p.name for p in made.iterdir()) == ["model.onnx"]
    fresh.mkdir()
    shutil.move(made / "model.onnx", fresh / "model.onnx")
    shutil.rmtree(made)
    assert not hasattr(OnnxRuntimeNetwork(fresh / "model.onnx"), "forward_stages")  # not a cascade: one output
    session = ort.InferenceSession(str(fresh / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((2, 1, 16, 16), dtype=np.float32)
    (out,) = session.run(None, {"image": x})
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
