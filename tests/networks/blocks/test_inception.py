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

from r2mf_monai.networks.blocks import InceptionResidualBlock
from tests.utils import assert_script_roundtrip

# [constructor kwargs, input shape, expected output shape]
SHAPE_CASES = [
    [{"spatial_dims": 2, "in_channels": 1, "out_channels": 8}, (2, 1, 16, 16), (2, 8, 16, 16)],
    [{"spatial_dims": 2, "in_channels": 8, "out_channels": 8}, (1, 8, 12, 20), (1, 8, 12, 20)],
    [
        {"spatial_dims": 2, "in_channels": 6, "out_channels": 4, "branch_channels": (2, 3, 5)},
        (3, 6, 9, 9),
        (3, 4, 9, 9),
    ],
    [{"spatial_dims": 3, "in_channels": 2, "out_channels": 4, "branch_channels": 1}, (1, 2, 6, 6, 6), (1, 4, 6, 6, 6)],
]

ILL_CASES = [
    [{"spatial_dims": 4, "in_channels": 1, "out_channels": 1}, "spatial_dims"],
    [{"spatial_dims": 2, "in_channels": 0, "out_channels": 1}, "in_channels"],
    [{"spatial_dims": 2, "in_channels": 1, "out_channels": -2}, "out_channels"],
    [{"spatial_dims": 2, "in_channels": 1, "out_channels": 4, "branch_channels": (1, 2)}, "branch_channels"],
    [{"spatial_dims": 2, "in_channels": 1, "out_channels": 4, "branch_channels": 0}, "branch_channels"],
]


@pytest.mark.parametrize("kwargs, input_shape, expected_shape", SHAPE_CASES)
def test_shape(kwargs, input_shape, expected_shape):
    net = InceptionResidualBlock(**kwargs)
    with eval_mode(net):
        assert net(torch.randn(input_shape)).shape == expected_shape


@pytest.mark.parametrize("kwargs, input_shape, expected_shape", SHAPE_CASES)
def test_every_parameter_gets_a_gradient(kwargs, input_shape, expected_shape):
    net = InceptionResidualBlock(**kwargs)
    net(torch.randn(input_shape)).square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("kwargs, name", ILL_CASES)
def test_ill_arg(kwargs, name):
    with pytest.raises(ValueError, match=name):
        InceptionResidualBlock(**kwargs)


@pytest.mark.parametrize("cin, cout", [(4, 4), (3, 5)])
def test_matches_eq5_by_hand(cin, cout):
    """Z = act(phi([B1(X), B2(X), B3(X)]) + P(X)) with three separate branches written out with torch ops."""
    torch.manual_seed(0)
    act = ("leakyrelu", {"negative_slope": 0.1})
    net = InceptionResidualBlock(2, cin, cout, branch_channels=(2, 3, 4), act=act, norm=None)
    x = torch.randn(2, cin, 10, 10)

    def conv(layer, t, weight_rows=None):
        w, b = layer.conv.weight, layer.conv.bias
        if weight_rows is not None:
            w, b = w[weight_rows], b[weight_rows]
        return F.conv2d(t, w, b, padding=w.shape[-1] // 2)

    def lrelu(t):
        return F.leaky_relu(t, 0.1)

    b1 = lrelu(conv(net.stem, x, slice(0, 2)))
    b2 = lrelu(conv(net.branch2, lrelu(conv(net.stem, x, slice(2, 5)))))
    b3 = lrelu(conv(net.stem, x, slice(5, 9)))
    b3 = lrelu(conv(net.branch3[1], lrelu(conv(net.branch3[0], b3))))
    res = x if cin == cout else conv(net.residual, x)
    expected = lrelu(conv(net.project, torch.cat([b1, b2, b3], dim=1)) + res)
    torch.testing.assert_close(net(x), expected, rtol=1e-5, atol=1e-5)
    assert isinstance(net.residual, torch.nn.Identity) == (cin == cout)


def test_receptive_field_is_7x7():
    """The deepest branch stacks three 3x3 convolutions: an input pixel reaches outputs at most 3 pixels away."""
    torch.manual_seed(0)
    net = InceptionResidualBlock(2, 1, 4)
    x = torch.randn(1, 1, 21, 21)
    with eval_mode(net):
        base = net(x)
        x2 = x.clone()
        x2[0, 0, 10, 10] += 5.0
        changed = (net(x2) - base).abs().amax(dim=(0, 1)) > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert rows.min() == 7 and rows.max() == 13 and cols.min() == 7 and cols.max() == 13


def test_script():
    net = InceptionResidualBlock(2, 3, 6)
    x = torch.randn(2, 3, 16, 16)
    assert_script_roundtrip(net, x)
