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

import numpy as np
import pytest
import torch
from monai.networks import eval_mode
from monai.networks.blocks import UnetBasicBlock
from skimage.draw import polygon

from r2mf_monai.losses import CascadeDiceBCELoss
from r2mf_monai.networks.blocks import InceptionResidualBlock, MultiScaleCrossStageSkip, R2JumpConnection, SCSELite
from r2mf_monai.networks.nets import R2MFNet
from tests.utils import assert_script_roundtrip

NARROW = {"channels": (8, 16, 32, 64)}
BASELINE = {"use_r2jump": False, "use_inception": False, "use_mcskip": False, "use_scse": False}

# [constructor kwargs, input shape, expected train-mode shape, expected eval-mode shape]
SHAPE_CASES = [
    [{}, (1, 1, 32, 32), (1, 2, 1, 32, 32), (1, 1, 32, 32)],
    [NARROW, (2, 1, 64, 48), (2, 2, 1, 64, 48), (2, 1, 64, 48)],
    [{**NARROW, "in_channels": 3, "out_channels": 2}, (3, 3, 32, 64), (3, 2, 2, 32, 64), (3, 2, 32, 64)],
    [{**NARROW, **BASELINE}, (2, 1, 48, 48), (2, 2, 1, 48, 48), (2, 1, 48, 48)],
    [{"channels": (8, 16, 32), "recurrent_steps": (2, 1, 1)}, (2, 1, 40, 24), (2, 2, 1, 40, 24), (2, 1, 40, 24)],
    [
        {**NARROW, "upsample": "nontrainable", "mcskip_interp": "nearest"},
        (1, 1, 32, 32),
        (1, 2, 1, 32, 32),
        (1, 1, 32, 32),
    ],
    [
        {**NARROW, "fine_channels": (4, 8, 16, 32), "bottleneck_channels": 128},
        (2, 1, 32, 32),
        (2, 2, 1, 32, 32),
        (2, 1, 32, 32),
    ],
    [
        {"spatial_dims": 3, "channels": (4, 8), "recurrent_steps": (2, 1), "dropout": None},
        (1, 1, 8, 16, 8),
        (1, 2, 1, 8, 16, 8),
        (1, 1, 8, 16, 8),
    ],
]

# [constructor kwargs, the argument name the message must contain]
ILL_CASES = [
    [{"spatial_dims": 4}, "spatial_dims"],
    [{"in_channels": 0}, "in_channels"],
    [{"out_channels": 1.5}, "out_channels"],
    [{"channels": ()}, "channels"],
    [{"channels": (8, 0, 16, 32)}, "channels"],
    [{"fine_channels": (8, 16)}, "fine_channels"],
    [{"bottleneck_channels": -1}, "bottleneck_channels"],
    [{"recurrent_steps": (4, 3, 2)}, "recurrent_steps"],
    [{"recurrent_steps": (4, 3, -2, 1)}, "recurrent_steps"],
    [{"skip_fusion": ("add", "mul", "cat", "cat")}, "skip_fusion"],
    [{"branch_channels": 0}, "branch_channels"],
    [{"mcskip_span": 0}, "mcskip_span"],
    [{"mcskip_interp": "cubic"}, "mcskip_interp"],
    [{"scse_reduction": 0}, "scse_reduction"],
    [{"dropout": 1.5}, "dropout"],
    [{"upsample": "magic"}, "upsample"],
    [{"act": "no-such-activation"}, "act"],
    [{"norm": "no-such-norm"}, "norm"],
]

# each switch, the module type it removes (fusion fixed so that R2-Jump's switch changes nothing else)
SWITCH_CASES = [
    ["use_r2jump", R2JumpConnection, {"skip_fusion": ("add", "add", "cat", "cat")}],
    ["use_mcskip", MultiScaleCrossStageSkip, {}],
    ["use_scse", SCSELite, {}],
]


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def modules_of(net: torch.nn.Module, kind: type) -> list[torch.nn.Module]:
    return [m for m in net.modules() if isinstance(m, kind)]


@pytest.mark.parametrize("kwargs, input_shape, train_shape, eval_shape", SHAPE_CASES)
def test_shape(kwargs, input_shape, train_shape, eval_shape):
    net = R2MFNet(**kwargs)
    x = torch.randn(input_shape)
    net.train()
    with torch.no_grad():
        assert net(x).shape == train_shape
    with eval_mode(net):
        assert net(x).shape == eval_shape


@pytest.mark.parametrize("kwargs", [{}, {**NARROW, "use_r2jump": False}, {**NARROW, "use_inception": False}])
def test_every_parameter_gets_a_gradient(kwargs):
    torch.manual_seed(0)
    net = R2MFNet(**kwargs)
    net.train()
    out = net(torch.randn(2, 1, 32, 32))
    CascadeDiceBCELoss()(out, (torch.rand(2, 1, 32, 32) > 0.5).float()).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


@pytest.mark.parametrize("kwargs, name", ILL_CASES)
def test_ill_arg(kwargs, name):
    with pytest.raises(ValueError, match=name):
        R2MFNet(**kwargs)


@pytest.mark.parametrize(
    "kwargs, shape, multiple",
    [[{}, (1, 1, 40, 64), 16], [{}, (1, 1, 64, 72), 16], [{"channels": (8, 16, 32)}, (1, 1, 36, 40), 8]],
)
def test_bad_input_size(kwargs, shape, multiple):
    net = R2MFNet(**kwargs)
    with eval_mode(net), pytest.raises(ValueError, match=f"multiple of {multiple}"):
        net(torch.zeros(shape))


def test_bad_input_channels():
    with eval_mode(net := R2MFNet(**NARROW)), pytest.raises(ValueError, match="1 channels"):
        net(torch.zeros(1, 3, 32, 32))


@pytest.mark.parametrize("switch, kind, extra", SWITCH_CASES)
def test_switch_removes_exactly_its_component(switch, kind, extra):
    with_it = R2MFNet(**NARROW, **extra)
    without = R2MFNet(**NARROW, **extra, **{switch: False})
    assert modules_of(with_it, kind) and not modules_of(without, kind)
    assert n_params(with_it) - n_params(without) == sum(n_params(m) for m in modules_of(with_it, kind))


def test_inception_switch_swaps_blocks_for_plain_ones():
    with_it, without = R2MFNet(**NARROW), R2MFNet(**NARROW, use_inception=False)
    inception, plain = modules_of(with_it, InceptionResidualBlock), modules_of(without, UnetBasicBlock)
    assert not modules_of(with_it, UnetBasicBlock) and not modules_of(without, InceptionResidualBlock)
    assert len(inception) == len(plain) == 2 * (4 + 1 + 4)  # two stages: encoder levels, bottleneck, decoder levels
    assert n_params(with_it) - n_params(without) == sum(map(n_params, inception)) - sum(map(n_params, plain))


def test_component_counts_and_defaults():
    net = R2MFNet()
    assert [m.recurrent_steps for m in modules_of(net.coarse, R2JumpConnection)] == [1, 2, 3, 4]  # deepest first
    assert [m.fusion for m in modules_of(net.fine, R2JumpConnection)] == ["cat", "cat", "add", "add"]
    assert [m.num_inputs for m in modules_of(net.fine, MultiScaleCrossStageSkip)] == [3, 3, 2, 1]
    assert not modules_of(net.coarse, MultiScaleCrossStageSkip) and not modules_of(net.coarse, SCSELite)
    assert len(modules_of(net.fine, SCSELite)) == 1 and net.fine.bottleneck.attention is not None
    dropouts = modules_of(net, torch.nn.Dropout)
    assert len(dropouts) == 2 and all(d.p == pytest.approx(0.2) for d in dropouts)
    assert not modules_of(R2MFNet(dropout=None), torch.nn.Dropout)
    assert net.fine.encoder[0].block.in_channels == 2  # image + coarse probability map
    assert [m.fusion for m in modules_of(R2MFNet(use_r2jump=False), torch.nn.Module) if hasattr(m, "fusion")] == [
        "cat"
    ] * 8


def test_ablation_rows_grow():
    rows = [
        BASELINE,
        {**BASELINE, "use_r2jump": True},
        {**BASELINE, "use_r2jump": True, "use_inception": True},
        {"use_scse": False},
        {},
    ]
    sizes = [n_params(R2MFNet(**NARROW, **row)) for row in rows]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)


def test_he_normal_init():
    torch.manual_seed(0)
    net = R2MFNet()
    w = net.fine.bottleneck.block.stem.conv.weight  # 256 -> 384 channels, 3x3: 884,736 weights
    fan_in = w.shape[1] * w.shape[2] * w.shape[3]
    expected = math.sqrt(2.0 / (1 + 0.01**2)) / math.sqrt(fan_in)
    assert abs(w.std().item() / expected - 1) < 0.01
    assert abs(w.mean().item()) < 0.05 * expected


def test_fine_output_depends_on_coarse_output():
    torch.manual_seed(0)
    net = R2MFNet(**NARROW, use_mcskip=False)
    x = torch.randn(1, 1, 32, 32)
    with eval_mode(net):
        before = net(x)
        with torch.no_grad():
            net.coarse.head.bias += 3.0  # changes only the coarse probability map fed to the fine network
        assert not torch.allclose(before, net(x))


@pytest.mark.parametrize("training", [False, True])
def test_forward_stages_are_the_outputs_of_both_modes(training):
    torch.manual_seed(0)
    net = R2MFNet(**NARROW)
    x = torch.randn(2, 1, 32, 32)
    net.train(training)
    if training:  # batch statistics: the same batch in both calls, dropout off
        net.apply(lambda m: m.eval() if isinstance(m, torch.nn.Dropout) else None)
    with torch.no_grad():
        fine, coarse = net.forward_stages(x)
        out = net(x)
    assert fine.shape == coarse.shape == (2, 1, 32, 32)
    if training:
        assert torch.allclose(out, torch.stack([fine, coarse], dim=1), atol=1e-5)
    else:
        assert torch.allclose(out, fine, atol=1e-6)
    assert not torch.allclose(fine, coarse, atol=1e-3)


def test_eval_output_is_deterministic():
    torch.manual_seed(0)
    net = R2MFNet(**NARROW)
    x = torch.randn(2, 1, 32, 32)
    with eval_mode(net):
        assert torch.equal(net(x), net(x))


def _warm_up(net: R2MFNet, shape: tuple[int, ...]) -> None:
    """A few training-mode passes so that batch-norm statistics are realistic (not the identity of a new net)."""
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(shape))


@pytest.mark.parametrize("kwargs", [{}, {**NARROW, **BASELINE}])
def test_script(kwargs):
    torch.manual_seed(0)
    net = R2MFNet(**kwargs)
    _warm_up(net, (2, 1, 32, 32))
    x = torch.randn(2, 1, 32, 32)
    loaded = assert_script_roundtrip(net, x, atol=1e-5)
    # TorchScript re-raises the network's ValueError as torch.jit.Error
    with eval_mode(loaded), pytest.raises(Exception, match="multiple of 16"):
        loaded(torch.zeros(1, 1, 40, 40))
    loaded.train()
    assert loaded(x).shape == (2, 2, 1, 32, 32)


@pytest.mark.parametrize("kwargs", [NARROW, {**NARROW, **BASELINE}])
def test_fuse_for_inference(kwargs):
    torch.manual_seed(0)
    net = R2MFNet(**kwargs)
    _warm_up(net, (2, 1, 32, 32))
    x = torch.randn(2, 1, 32, 32)
    with eval_mode(net):
        expected = net(x)
    fused = net.fuse_for_inference()
    assert fused is net and not net.training
    assert not modules_of(net, torch.nn.modules.batchnorm._BatchNorm)
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected, rtol=1e-4, atol=1e-4)
    assert_script_roundtrip(net, x, rtol=1e-4, atol=1e-4)


def _curved_bands(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of a vertical band that curves like a scoliotic spine, with rib-like stripes and noise, and masks."""
    rng = np.random.default_rng(seed)
    rows = np.arange(size, dtype=float)
    images, masks = [], []
    for _ in range(n):
        amplitude, phase = rng.uniform(3, size / 6), rng.uniform(0, 2 * np.pi)
        width, frequency = rng.uniform(size / 12, size / 7), rng.uniform(0.6, 1.4)
        centre = size / 2 + amplitude * np.sin(2 * np.pi * frequency * rows / size + phase)
        r, c = rows[int(0.08 * size) : int(0.92 * size)], centre[int(0.08 * size) : int(0.92 * size)]
        rr, cc = polygon(np.r_[r, r[::-1]], np.r_[c - width / 2, (c + width / 2)[::-1]], (size, size))
        mask = np.zeros((size, size), np.float32)
        mask[rr, cc] = 1
        ribs = np.sin(2 * np.pi * (rows[:, None] + 0.3 * rows[None]) / rng.uniform(8, 12)) > 0.6
        image = 0.3 + 0.3 * mask + 0.2 * ribs * (1 - mask) + 0.15 * rng.standard_normal((size, size))
        images.append(image.astype(np.float32))
        masks.append(mask)
    return torch.from_numpy(np.stack(images))[:, None], torch.from_numpy(np.stack(masks))[:, None]


@pytest.mark.slow
def test_learns_curved_bands():
    """A narrow R2MF-Net trained for at most 200 steps (under a minute on CPU) segments four curved bands with
    Dice > 0.9; it stops early once every image passes."""
    torch.manual_seed(0)
    x, y = _curved_bands(4, 48, seed=0)
    net = R2MFNet(**NARROW)
    loss_fn = CascadeDiceBCELoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    dice = torch.zeros(4)
    for step in range(1, 201):
        net.train()
        optimizer.zero_grad()
        loss_fn(net(x), y).backward()
        optimizer.step()
        if step % 10 == 0:
            with eval_mode(net):
                pred = (net(x) > 0).float()
            dice = 2 * (pred * y).sum(dim=(1, 2, 3)) / (pred.sum(dim=(1, 2, 3)) + y.sum(dim=(1, 2, 3)))
            if dice.min() > 0.9:
                break
    assert dice.min() > 0.9, f"Dice per image {dice.tolist()} after {step} steps"
