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

import pytest
import torch
from monai.networks.nets import UNet

from r2mf_monai.networks.complexity import count_complexity
from r2mf_monai.networks.nets import R2MFNet

NARROW = {"channels": (8, 16, 32, 64)}
OFF = ("use_r2jump", "use_inception", "use_mcskip", "use_scse")


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


NETWORKS = [
    lambda: R2MFNet(**NARROW),
    lambda: R2MFNet(**NARROW, use_inception=False),
    lambda: R2MFNet(**NARROW, upsample="nontrainable"),
    lambda: R2MFNet(**NARROW, **dict.fromkeys(OFF, False)),  # the baseline two-stage U-Net of Table 2
    lambda: R2MFNet(),  # the full width of §3.7
    lambda: UNet(2, 1, 1, channels=(4, 8, 16), strides=(2, 2), num_res_units=2),
]


@pytest.mark.parametrize("make", NETWORKS)
def test_count_matches_an_independent_count(make):
    net = make().eval()
    measured = count_complexity(net, 32)
    assert measured["parameters"] == sum(p.numel() for p in net.parameters())
    assert measured["flops"] == _flops_by_hooks(net, torch.zeros(1, 1, 32, 32))
    assert measured["macs"] * 2 == measured["flops"]
    assert all(p.device.type == "cpu" for p in net.parameters())  # counted on a copy


def test_flops_scale_with_pixels_and_batch():
    # SCSE-Lite's two small fully connected layers act on pooled vectors: their cost does not grow with pixels
    net = R2MFNet(**NARROW, use_scse=False)
    small, large = count_complexity(net, 32), count_complexity(net, 64)
    assert small["flops"] > 0 and large["flops"] == 4 * small["flops"]
    assert count_complexity(net, 32, batch_size=3)["flops"] == 3 * small["flops"]
    assert large["parameters"] == small["parameters"]


@pytest.mark.parametrize("size", [0, 50, -16, 32.5])
def test_bad_image_size(size):
    with pytest.raises(ValueError, match="image_size"):
        count_complexity(R2MFNet(**NARROW), size)
