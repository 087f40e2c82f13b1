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

from __future__ import annotations

import math
import re

import pytest
import torch

from r2mf_monai.networks.complexity import ABLATION_VARIANTS, complexity_table, measure_complexity
from r2mf_monai.networks.nets import R2MFNet

NARROW = {"channels": (8, 16, 32, 64)}


def _flops_by_hooks(net: torch.nn.Module, x: torch.Tensor) -> int:
    """Independent count on a real forward pass: 2 FLOPs per multiply-add of every convolution and linear layer."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, torch.nn.Linear):
            total += 2 * inputs[0].numel() * module.out_features
        elif isinstance(module, torch.nn.modules.conv._ConvTransposeNd):
            total += 2 * inputs[0].numel() * module.out_channels // module.groups * math.prod(module.kernel_size)
        elif isinstance(module, torch.nn.modules.conv._ConvNd):
            total += 2 * output.numel() * module.in_channels // module.groups * math.prod(module.kernel_size)

    handles = [m.register_forward_hook(hook) for m in net.modules()]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize(
    "kwargs",
    [
        NARROW,
        {**NARROW, "use_inception": False},
        {**NARROW, "upsample": "nontrainable"},
        *dict(ABLATION_VARIANTS).values(),
    ],
)
def test_measure_matches_an_independent_count(kwargs):
    net = R2MFNet(**kwargs).eval()
    measured = measure_complexity(32, **kwargs)
    assert measured["parameters"] == sum(p.numel() for p in net.parameters())
    assert measured["flops"] == _flops_by_hooks(net, torch.zeros(1, 1, 32, 32))
    assert measured["macs"] * 2 == measured["flops"]


def test_flops_scale_with_pixels_and_batch():
    # SCSE-Lite's two small fully connected layers act on pooled vectors: their cost does not grow with pixels
    small, large = measure_complexity(32, use_scse=False, **NARROW), measure_complexity(64, use_scse=False, **NARROW)
    assert small["flops"] > 0 and large["flops"] == 4 * small["flops"]
    assert measure_complexity(32, batch_size=3, use_scse=False, **NARROW)["flops"] == 3 * small["flops"]
    assert large["parameters"] == small["parameters"]


def test_table(tmp_path):
    out = tmp_path / "sub" / "complexity.md"
    text = complexity_table(64, output=out)
    assert out.read_text(encoding="utf-8") == text
    assert sorted(p.name for p in out.parent.iterdir()) == ["complexity.md"]  # no temporary file left behind
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| Variant")]
    assert [r.split("|")[1].strip() for r in rows[:-1]] == [name for name, _ in ABLATION_VARIANTS]
    assert rows[-1].startswith("| Paper, Table 4")
    params = [float(r.split("|")[2]) for r in rows[:-1]]
    assert params == sorted(params)
    full = measure_complexity(64)
    assert float(rows[-2].split("|")[2]) == pytest.approx(full["parameters"] / 1e6, abs=0.005)
    assert float(rows[-2].split("|")[3]) == pytest.approx(full["flops"] / 1e9, abs=0.05)
    assert re.search(r"2 x GMACs", text)


@pytest.mark.parametrize("size", [0, 50, -16, 32.0])
def test_bad_image_size(size):
    with pytest.raises(ValueError, match="image_size"):
        complexity_table(size)
    with pytest.raises(ValueError, match="image_size"):
        measure_complexity(size if size != 50 else 36)
