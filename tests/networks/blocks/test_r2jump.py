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

from r2mf_monai.networks.blocks import R2JumpConnection
from tests.utils import assert_script_roundtrip

# [constructor kwargs, encoder shape, decoder shape, expected output shape]
SHAPE_CASES = [
    [
        {"spatial_dims": 2, "channels": 8, "recurrent_steps": 4, "fusion": "add"},
        (2, 8, 16, 16),
        (2, 8, 16, 16),
        (2, 8, 16, 16),
    ],
    [
        {"spatial_dims": 2, "channels": 8, "recurrent_steps": 1, "fusion": "cat"},
        (1, 8, 8, 12),
        (1, 8, 8, 12),
        (1, 16, 8, 12),
    ],
    [
        {"spatial_dims": 2, "channels": 4, "recurrent_steps": 0, "fusion": "cat"},
        (3, 4, 5, 5),
        (3, 6, 5, 5),
        (3, 10, 5, 5),
    ],
    [
        {"spatial_dims": 3, "channels": 4, "recurrent_steps": 2, "fusion": "add"},
        (1, 4, 6, 6, 6),
        (1, 4, 6, 6, 6),
        (1, 4, 6, 6, 6),
    ],
]

ILL_CASES = [
    [{"spatial_dims": 0, "channels": 4}, "spatial_dims"],
    [{"spatial_dims": 2, "channels": 0}, "channels"],
    [{"spatial_dims": 2, "channels": 4, "recurrent_steps": -1}, "recurrent_steps"],
    [{"spatial_dims": 2, "channels": 4, "recurrent_steps": 1.5}, "recurrent_steps"],
    [{"spatial_dims": 2, "channels": 4, "fusion": "mul"}, "fusion"],
]


@pytest.mark.parametrize("kwargs, enc_shape, dec_shape, expected_shape", SHAPE_CASES)
def test_shape(kwargs, enc_shape, dec_shape, expected_shape):
    net = R2JumpConnection(**kwargs)
    with eval_mode(net):
        assert net(torch.randn(enc_shape), torch.randn(dec_shape)).shape == expected_shape


@pytest.mark.parametrize("kwargs, enc_shape, dec_shape, expected_shape", SHAPE_CASES)
def test_every_parameter_gets_a_gradient(kwargs, enc_shape, dec_shape, expected_shape):
    net = R2JumpConnection(**kwargs)
    enc = torch.randn(enc_shape, requires_grad=True)
    dec = torch.randn(dec_shape, requires_grad=True)
    net(enc, dec).square().mean().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
    assert enc.grad is not None and dec.grad is not None


@pytest.mark.parametrize("kwargs, name", ILL_CASES)
def test_ill_arg(kwargs, name):
    with pytest.raises(ValueError, match=name):
        R2JumpConnection(**kwargs)


@pytest.mark.parametrize("steps", [0, 1, 3])
@pytest.mark.parametrize("fusion", ["add", "cat"])
def test_matches_eqs_1_to_4_by_hand(steps, fusion):
    torch.manual_seed(0)
    net = R2JumpConnection(2, 5, recurrent_steps=steps, fusion=fusion, act="relu", norm=None)
    enc, dec = torch.randn(2, 5, 9, 9), torch.randn(2, 5, 9, 9)
    assert (net.recurrent_conv is None) == (steps == 0)
    w_s, b_s = net.residual_conv.conv.weight, net.residual_conv.conv.bias
    f = enc  # eq. 1
    for _ in range(steps):
        w_r = net.recurrent_conv.conv
        f = torch.relu(F.conv2d(f, w_r.weight, w_r.bias, padding=1) + enc)  # eq. 2, the same W_r every step
    refined = f + F.conv2d(enc, w_s, b_s)  # eq. 3
    expected = refined + dec if fusion == "add" else torch.cat([refined, dec], dim=1)  # eq. 4
    torch.testing.assert_close(net(enc, dec), expected, rtol=1e-5, atol=1e-5)


def test_weights_are_shared_across_steps():
    sizes = {t: sum(p.numel() for p in R2JumpConnection(2, 8, recurrent_steps=t).parameters()) for t in (0, 1, 2, 4)}
    assert sizes[1] == sizes[2] == sizes[4]
    assert sizes[1] - sizes[0] == 8 * 8 * 9 + 2 * 8  # W_r (3x3, no bias before the norm) and its norm
    torch.manual_seed(0)
    one, four = R2JumpConnection(2, 8, recurrent_steps=1), R2JumpConnection(2, 8, recurrent_steps=4)
    four.load_state_dict(one.state_dict())
    enc = torch.randn(1, 8, 8, 8)
    with eval_mode(one, four):
        assert not torch.allclose(one.refine(enc), four.refine(enc))


def test_script():
    net = R2JumpConnection(2, 4, recurrent_steps=3, fusion="cat")
    enc, dec = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    assert_script_roundtrip(net, enc, dec)
