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
"""bundle/configs/baselines/*.json merged over train.json (and inference.json): each parses, builds and trains."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from monai.bundle import ConfigParser

from tests.bundle.conftest import CONFIGS

pytestmark = pytest.mark.usefixtures("one_thread")


BASELINES = sorted(p.name for p in (CONFIGS / "baselines").glob("*.json"))
NEEDS = {"deeplabv3plus.json": "segmentation_models_pytorch", "swin_unetr.json": "einops"}
EXPECTED = {
    "attention_unet.json",
    "deeplabv3plus.json",
    "dynunet.json",
    "resunet.json",
    "swin_unetr.json",
    "two_stage_unet.json",
    "unet.json",
}


def _parser(*names: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / n) for n in names])
    return parser


def test_every_baseline_is_shipped() -> None:
    assert set(BASELINES) == EXPECTED


@pytest.mark.parametrize("name", BASELINES)
def test_override_changes_only_the_network(name: str) -> None:
    merged = _parser("train.json", f"baselines/{name}")
    plain = _parser("train.json")
    # the network, and for a network that is not a cascade the review method it can run (no coarse stage)
    keys = set(_parser(f"baselines/{name}").get()) - {"_meta_"}
    cascade = "R2MFNet" in str(merged["network_def"]["_target_"])
    assert keys == ({"network_def"} if cascade else {"network_def", "review_method"})
    if not cascade:
        assert _parser("inference.json", f"baselines/{name}")["review_method"] == "flip"
    assert merged["network_def"] != plain["network_def"]
    assert merged["loss"] == plain["loss"] and merged["train"] == plain["train"]
    # inference.json and evaluate.json take the same override
    for stack in (("inference.json",), ("train.json", "evaluate.json")):
        assert _parser(*stack, f"baselines/{name}")["network_def"] == merged["network_def"]


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_steps_with_the_bundle_loss(name: str) -> None:
    module = NEEDS.get(name)
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed in this venv (see bundle/docs/baselines.md)")
    parser = _parser("train.json", f"baselines/{name}")
    torch.manual_seed(0)
    net = parser.get_parsed_content("network_def").train()
    loss_fn = parser.get_parsed_content("loss")
    x = torch.rand(1, 1, 64, 64)
    label = (torch.rand(1, 1, 64, 64) > 0.5).float()
    out = net(x)
    assert out.shape[-2:] == (64, 64)
    loss = loss_fn(out, label)
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    net.eval()
    with torch.no_grad():
        assert net(x).shape == (1, 1, 64, 64)
