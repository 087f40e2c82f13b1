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
import torch.nn.functional as F
from monai.networks import eval_mode

from r2mf_monai.networks.blocks import MultiScaleCrossStageSkip
from tests.utils import assert_script_roundtrip

# [constructor kwargs, fine shape, coarse shapes]
SHAPE_CASES = [
    [
        {"spatial_dims": 2, "coarse_channels": (8, 16, 32), "out_channels": 8},
        (2, 8, 32, 32),
        [(2, 8, 32, 32), (2, 16, 16, 16), (2, 32, 8, 8)],
    ],
    [
        {"spatial_dims": 2, "coarse_channels": (32, 64), "out_channels": 16, "interp_mode": "nearest"},
        (1, 16, 8, 12),
        [(1, 32, 4, 6), (1, 64, 2, 3)],
    ],
    [
        {"spatial_dims": 2, "coarse_channels": (8,), "out_channels": 4, "resize_first": True},
        (3, 4, 6, 6),
        [(3, 8, 6, 6)],
    ],
    [
        {"spatial_dims": 3, "coarse_channels": (4, 8), "out_channels": 4},
        (1, 4, 8, 8, 8),
        [(1, 4, 8, 8, 8), (1, 8, 4, 4, 4)],
    ],
]

ILL_CASES = [
    [{"spatial_dims": 2, "coarse_channels": (), "out_channels": 4}, "coarse_channels"],
    [{"spatial_dims": 2, "coarse_channels": (4, 0), "out_channels": 4}, "coarse_channels"],
    [{"spatial_dims": 2, "coarse_channels": (4,), "out_channels": 0}, "out_channels"],
    [{"spatial_dims": 2, "coarse_channels": (4,), "out_channels": 4, "interp_mode": "cubic"}, "interp_mode"],
    [{"spatial_dims": 7, "coarse_channels": (4,), "out_channels": 4}, "spatial_dims"],
]


@pytest.mark.parametrize("kwargs, fine_shape, coarse_shapes", SHAPE_CASES)
def test_shape(kwargs, fine_shape, coarse_shapes):
    net = MultiScaleCrossStageSkip(**kwargs)
    with eval_mode(net):
        out = net(torch.randn(fine_shape), [torch.randn(s) for s in coarse_shapes])
    assert out.shape == fine_shape


@pytest.mark.parametrize("kwargs, fine_shape, coarse_shapes", SHAPE_CASES)
def test_gradients_reach_parameters_and_coarse_features(kwargs, fine_shape, coarse_shapes):
    net = MultiScaleCrossStageSkip(**kwargs)
    coarse = [torch.randn(s, requires_grad=True) for s in coarse_shapes]
    net(torch.randn(fine_shape), coarse).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    assert all(c.grad is not None and c.grad.abs().sum() > 0 for c in coarse)


@pytest.mark.parametrize("kwargs, name", ILL_CASES)
def test_ill_arg(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MultiScaleCrossStageSkip(**kwargs)


def test_wrong_number_of_coarse_features():
    net = MultiScaleCrossStageSkip(2, (4, 8), 4)
    with pytest.raises(ValueError, match="expected 2"):
        net(torch.randn(1, 4, 8, 8), [torch.randn(1, 4, 8, 8)])


@pytest.mark.parametrize("resize_first", [False, True])
def test_matches_eqs_6_and_7_by_hand(resize_first):
    torch.manual_seed(0)
    net = MultiScaleCrossStageSkip(2, (3, 5, 7), 4, resize_first=resize_first, norm=None)
    fine = torch.randn(2, 4, 16, 16)
    coarse = [torch.randn(2, 3, 16, 16), torch.randn(2, 5, 8, 8), torch.randn(2, 7, 4, 4)]

    def psi(k, t):
        return F.conv2d(t, net.psi[k].conv.weight, net.psi[k].conv.bias, padding=1)

    def up(t):
        return F.interpolate(t, size=(16, 16), mode="bilinear", align_corners=False)

    g = sum((psi(k, up(d)) if resize_first else up(psi(k, d))) for k, d in enumerate(coarse))  # eq. 6
    torch.testing.assert_close(net(fine, coarse), fine + g, rtol=1e-5, atol=1e-5)  # eq. 7


def test_script():
    net = MultiScaleCrossStageSkip(2, (4, 8, 16), 4)
    fine = torch.randn(2, 4, 16, 16)
    coarse = [torch.randn(2, 4, 16, 16), torch.randn(2, 8, 8, 8), torch.randn(2, 16, 4, 4)]
    assert_script_roundtrip(net, fine, coarse)
