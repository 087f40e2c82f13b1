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
"""The checks the model zoo runs on a bundle: metadata schema, network in/out, TorchScript and ONNX export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from monai.bundle import ConfigParser

from tests.bundle.conftest import CONFIGS, REPO, TINY, bundle_cmd, run

SCHEMA = REPO.parent / "shared" / "monai" / "meta_schema_20240725.json"


@pytest.mark.skipif(not SCHEMA.is_file(), reason=f"the offline schema copy {SCHEMA} is absent (no ../shared)")
def test_verify_metadata_against_the_2024_schema() -> None:
    out = run(bundle_cmd("verify_metadata", "--meta_file", str(CONFIGS / "metadata.json"), "--filepath", str(SCHEMA)))
    assert "metadata is verified with no error" in out


def _keys(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _keys(value)
    elif isinstance(node, list):
        for value in node:
            yield from _keys(value)


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.json")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_configs_hold_no_free_text_keys(path: Path) -> None:
    """Explanations live in docs/README.md, as in the model zoo: no ``_comment_*`` keys (MONAI's ``_desc_`` is a
    config key of its own)."""
    assert not [key for key in _keys(json.loads(path.read_text())) if key.startswith("_comment")]


def test_metadata_declares_the_2024_schema_and_a_2d_shape() -> None:
    meta = ConfigParser.load_config_file(CONFIGS / "metadata.json")
    assert meta["schema"].endswith("meta_schema_20240725.json")
    fmt = meta["network_data_format"]
    # two spatial dims (what tells MONAI Label the bundle is 2-D), any multiple of the network's down-sampling
    assert fmt["inputs"]["image"]["spatial_shape"] == ["16*n", "16*n"]
    assert fmt["inputs"]["image"]["value_range"] == [0, 1]
    assert fmt["outputs"]["pred"]["num_channels"] == 1


@pytest.mark.slow
def test_verify_net_in_out() -> None:
    out = run(
        bundle_cmd(
            "verify_net_in_out",
            "network_def",
            "--meta_file",
            str(CONFIGS / "metadata.json"),
            "--config_file",
            str(CONFIGS / "inference.json"),
        )
    )
    assert "data shape of network is verified with no error" in out


def _eager(root: Path) -> tuple[torch.nn.Module, torch.Tensor, np.ndarray]:
    parser = ConfigParser()
    parser.read_config(root / "configs" / "inference.json")
    parser["bundle_root"] = str(root)
    net = parser.get_parsed_content("network_def")
    net.load_state_dict(torch.load(root / "models" / "model.pt", map_location="cpu", weights_only=True))
    net.eval()
    x = torch.rand(1, 1, int(TINY["image_size"]), int(TINY["image_size"]), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = net(x).numpy()
    return net, x, ref


def _export(command: str, bundle: Path, filepath: Path, *args: str) -> None:
    """``python -m monai.bundle <command> network_def`` of the bundle's inference.json with its trained weights."""
    configs = bundle / "configs"
    files = ["--meta_file", str(configs / "metadata.json"), "--config_file", str(configs / "inference.json")]
    weights = ["--ckpt_file", str(bundle / "models" / "model.pt")]
    cmd = bundle_cmd(command, "network_def", "--filepath", str(filepath), *weights, *files, *args)
    run(cmd + ["--bundle_root", str(bundle)])


@pytest.mark.slow
def test_ckpt_export_torchscript_matches_eager(trained_bundle: Path) -> None:
    ts = trained_bundle / "models" / "model.ts"
    _export("ckpt_export", trained_bundle, ts)
    _, x, ref = _eager(trained_bundle)
    loaded = torch.jit.load(str(ts), map_location="cpu").eval()
    with torch.no_grad():
        got = loaded(x).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_onnx_export_runs_in_onnxruntime_and_matches_eager(trained_bundle: Path) -> None:
    onnx_file = trained_bundle / "models" / "model.onnx"
    size = TINY["image_size"]
    converter = "{'input_names': ['image'], 'output_names': ['pred']}"
    shape = f"[1, 1, {size}, {size}]"
    _export("onnx_export", trained_bundle, onnx_file, "--input_shape", shape, "--converter_kwargs", converter)
    _, x, ref = _eager(trained_bundle)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-3)
