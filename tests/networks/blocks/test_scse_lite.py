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

import pytest
import torch
from monai.networks import eval_mode
from monai.networks.blocks import ChannelSELayer

from r2mf_monai.networks.blocks import SCSELite
from tests.utils import assert_script_roundtrip

# [constructor kwargs, input shape]
SHAPE_CASES = [
    [{"spatial_dims": 2, "in_channels": 8}, (2, 8, 6, 6)],
    [{"spatial_dims": 2, "in_channels": 16, "r": 4}, (1, 16, 5, 7)],
    [{"spatial_dims": 3, "in_channels": 4}, (2, 4, 3, 4, 5)],
]

ILL_CASES = [
    [{"spatial_dims": 5, "in_channels": 8}, "spatial_dims"],
    [{"spatial_dims": 2, "in_channels": 0}, "in_channels"],
    [{"spatial_dims": 2, "in_channels": 8, "r": 0}, "r must"],
    [{"spatial_dims": 2, "in_channels": 8, "r": 9}, "r must"],
]


@pytest.mark.parametrize("kwargs, input_shape", SHAPE_CASES)
def test_shape(kwargs, input_shape):
    net = SCSELite(**kwargs)
    with eval_mode(net):
        assert net(torch.randn(input_shape)).shape == input_shape


@pytest.mark.parametrize("kwargs, input_shape", SHAPE_CASES)
def test_every_parameter_gets_a_gradient(kwargs, input_shape):
    net = SCSELite(**kwargs)
    net(torch.randn(input_shape)).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


@pytest.mark.parametrize("kwargs, name", ILL_CASES)
def test_ill_arg(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SCSELite(**kwargs)


def test_reuses_monai_channel_se_with_reduction_2():
    net = SCSELite(2, 16)
    assert isinstance(net.cse, ChannelSELayer)
    linears = [m for m in net.cse.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 8), (8, 16)]


def test_matches_eqs_8_to_13_by_hand():
    torch.manual_seed(0)
    net = SCSELite(2, 6)
    x = torch.randn(2, 6, 5, 4)
    fc1, fc2 = (m for m in net.cse.modules() if isinstance(m, torch.nn.Linear))
    v = x.mean(dim=(2, 3))  # eq. 8
    s = torch.sigmoid(torch.relu(v @ fc1.weight.T + fc1.bias) @ fc2.weight.T + fc2.bias)  # eq. 9
    u_cse = x * s[:, :, None, None]  # eq. 10
    q = torch.sigmoid((x * net.sse.weight.view(1, 6, 1, 1)).sum(dim=1, keepdim=True) + net.sse.bias)  # eq. 11
    u_sse = x * q  # eq. 12
    torch.testing.assert_close(net(x), u_cse + u_sse, rtol=1e-5, atol=1e-6)  # eq. 13


def test_script():
    net = SCSELite(2, 8)
    x = torch.randn(2, 8, 6, 6)
    assert_script_roundtrip(net, x)
