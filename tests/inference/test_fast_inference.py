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
"""r2mf_monai.inference.fast_inference: every inference path agrees with eager float32.

Tolerances: float32 paths (folded batch norm, channels-last, TorchScript, torch.compile) reorder sums only, so their
logits stay within 1e-4 of the largest logit and their masks agree with Dice >= 0.999. bfloat16 keeps 8 bits of
mantissa, and untrained networks amplify perturbations (on these, a 1e-3 relative change of the input moves float32
logits by about 10 %), so here its logits need only stay within 30 % of the largest logit, differ from float32's
(proof that bfloat16 ran) and give masks with Dice >= 0.9; the benchmark and bundle/docs/benchmark.md report the
agreement of trained weights on synthetic radiographs.
"""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor
from monai.handlers import CheckpointLoader
from monai.networks.nets import UNet

from r2mf_monai.inference.fast_inference import (
    FastInferenceNetwork,
    mask_agreement,
    native_bf16,
    prepare_for_inference,
)
from r2mf_monai.networks.nets import R2MFNet

TINY = {"channels": (4, 8, 16, 32)}


pytestmark = pytest.mark.usefixtures("one_thread")


def _smooth_images(n: int, size: int, seed: int) -> torch.Tensor:
    """Blurred random images: structured enough for masks with long boundaries rather than salt and pepper."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size // 8, size // 8, generator=g)
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def _network(seed: int = 0) -> R2MFNet:
    """A tiny R2MF-Net whose batch-norm statistics come from images, so activations have a trained net's scale."""
    torch.manual_seed(seed)
    net = R2MFNet(**TINY)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    net.train()
    with torch.no_grad():
        net(_smooth_images(4, 32, seed + 100))
    return net.eval()


@pytest.fixture(scope="module")
def reference() -> tuple[R2MFNet, torch.Tensor, torch.Tensor]:
    net = _network()
    x = _smooth_images(2, 32, 7)
    with torch.no_grad():
        return net, x, net(x)


FP32_CASES = [
    ({"precision": "fp32", "channels_last": False}, False),
    ({"precision": "fp32", "channels_last": True}, False),
    ({"precision": "fp32", "fuse": False}, False),
    ({"precision": "fp32", "backend": "torchscript"}, False),
    pytest.param({"precision": "fp32", "backend": "compile"}, False, marks=pytest.mark.slow),
    ({"precision": "bf16", "channels_last": True}, True),
    ({"precision": "bf16", "channels_last": False}, True),
]


@pytest.mark.parametrize("kwargs,low_precision", FP32_CASES)
def test_path_agrees_with_eager_fp32(reference, kwargs: dict, low_precision: bool) -> None:
    net, x, ref = reference
    fast = prepare_for_inference(net, **kwargs).eval()
    for _ in range(2):  # the first call builds the prepared copy, the second reuses it
        out = fast(x)
        assert out.shape == ref.shape and out.dtype == torch.float32 and out.is_contiguous()
        scale = float(ref.abs().max())
        rel = float((out - ref).abs().max()) / scale
        if low_precision:
            assert 1e-5 < rel < 0.3 and mask_agreement(ref, out) >= 0.9  # rounded, so not equal; but close
        else:
            assert rel < 1e-4 and mask_agreement(ref, out) >= 0.999
    assert fast.selected_precision == kwargs["precision"]


@pytest.mark.parametrize(
    "kwargs", [{"precision": "fp32"}, {"precision": "bf16"}, {"precision": "auto"}, {"backend": "torchscript"}]
)
def test_forward_stages_give_the_forward_logits_and_the_coarse_stage(reference, kwargs: dict) -> None:
    net, x, ref = reference
    with torch.no_grad():
        _, coarse_ref = net.forward_stages(x)
    fast = prepare_for_inference(net, **kwargs).eval()
    fine, coarse = fast.forward_stages(x)
    out = fast(x)
    assert fast.selected_precision in ("fp32", "bf16")
    if fast.selected_precision == "fp32":
        assert torch.allclose(fine, out, atol=1e-4 * float(ref.abs().max()))  # the mask's logits, from one pass
        assert float((coarse - coarse_ref).abs().max()) < 1e-4 * float(coarse_ref.abs().max())
    else:
        assert mask_agreement(ref, fine) >= 0.9 and mask_agreement(coarse_ref, coarse) >= 0.9
    assert fine.dtype == coarse.dtype == torch.float32 and fine.shape == coarse.shape == ref.shape


def test_forward_stages_name_a_network_that_is_not_a_cascade() -> None:
    fast = prepare_for_inference(torch.nn.Conv2d(1, 1, 3, padding=1), precision="fp32")
    with pytest.raises(AttributeError, match="Conv2d has no forward_stages"):
        fast.forward_stages(torch.rand(1, 1, 8, 8))


@pytest.mark.parametrize("backend", ["eager", pytest.param("compile", marks=pytest.mark.slow)])
def test_float32_islands(reference, backend: str) -> None:
    net, x, ref = reference
    plain = prepare_for_inference(net, precision="bf16", fp32_modules=())
    everything = prepare_for_inference(net, precision="bf16", fp32_modules=["coarse", "fine"], backend=backend)
    level0 = prepare_for_inference(net, precision="bf16", fp32_modules=["coarse.encoder.0", "fine.encoder.0"])
    scale = float(ref.abs().max())
    # with every stage in float32, the bfloat16 path computes float32 (up to the folded batch norm's rounding)
    assert float((everything(x) - ref).abs().max()) / scale < 1e-4
    # a partial island is neither float32 nor the plain bfloat16 path
    partial, bf16 = level0(x), plain(x)
    assert float((partial - ref).abs().max()) / scale > 1e-5 and not torch.equal(partial, bf16)
    # the wrapped network is untouched: no island leaks into it or into the float32 copy
    fp32 = prepare_for_inference(net, precision="fp32", fp32_modules=["coarse.encoder.0"]).eval()
    torch.testing.assert_close(fp32(x), ref, rtol=1e-4, atol=1e-4 * scale)
    assert not any("Island" in type(m).__name__ for m in net.modules())


def test_default_islands_are_the_networks_own(reference) -> None:
    net, x, _ = reference
    fast = prepare_for_inference(net, precision="bf16")
    assert fast.fp32_modules == net.float32_modules() == ("coarse.encoder.0", "fine.encoder.0")
    # a network that names none (a MONAI baseline) gets none
    unet = UNet(2, 1, 1, channels=(4, 8), strides=(2,))
    assert prepare_for_inference(unet, precision="bf16").fp32_modules == ()


@pytest.mark.parametrize("kwargs", [{"precision": "fp32"}, {"precision": "auto"}, {"backend": "torchscript"}])
def test_returned_ready_for_inference(reference, kwargs: dict) -> None:
    """No ``.eval()`` needed: the wrapper comes back in eval mode and runs the prepared copy."""
    net, x, ref = reference
    net.train()
    fast = prepare_for_inference(net, **kwargs)
    assert not fast.training and not net.training
    out = fast(x)
    assert out.shape == ref.shape  # eval mode: the fine output alone, not training's [fine, coarse] stack
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


def test_auto_selects_by_hardware_and_agreement(reference) -> None:
    net, x, ref = reference
    native = native_bf16("cpu")
    lenient = prepare_for_inference(net, precision="auto", min_dice=0.0, check_batches=2).eval()
    for i in range(2):
        out = lenient(x)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))  # checked batches: fp32
        if native and i == 0:
            assert lenient.selected_precision is None  # still checking
    assert lenient.selected_precision == ("bf16" if native else "fp32")
    strict = prepare_for_inference(net, precision="auto", min_dice=1.0).eval()
    for _ in range(3):
        strict(x)
    if native:  # measured only where bf16 is native
        assert strict.agreement is not None
        assert strict.selected_precision == ("bf16" if strict.agreement >= 1.0 else "fp32")
    else:
        assert strict.agreement is None and strict.selected_precision == "fp32"


def test_weights_follow_the_wrapped_network(tmp_path) -> None:
    a, b = _network(0), _network(1)
    x = _smooth_images(1, 32, 3)
    fast = prepare_for_inference(a, precision="fp32").eval()
    assert set(fast.state_dict()) == set(a.state_dict())
    fast(x)  # builds the prepared copy of a
    # what the bundle does: CheckpointLoader with {"model": @network} on a model.pt of the plain network
    torch.save(b.state_dict(), tmp_path / "model.pt")
    engine = Engine(lambda engine, batch: None)
    CheckpointLoader(load_path=str(tmp_path / "model.pt"), load_dict={"model": fast}).attach(engine)
    engine.run([0], max_epochs=1)
    with torch.no_grad():
        expected = b(x)
    torch.testing.assert_close(fast(x), expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def test_training_mode_is_the_plain_network() -> None:
    net = _network()
    fast = FastInferenceNetwork(net, precision="fp32").train()
    out = fast(_smooth_images(1, 32, 5))
    assert out.shape == (1, 2, 1, 32, 32)  # the cascade's [fine, coarse] of training mode
    assert out.requires_grad


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_preparation_leaves_the_wrapped_network_untouched(reference, precision: str) -> None:
    net, x, ref = reference
    before = {k: (v.data_ptr(), v.is_contiguous(), v.requires_grad) for k, v in net.named_parameters()}
    modules = [type(m).__name__ for m in net.modules()]
    prepare_for_inference(net, precision=precision, channels_last=True, fp32_modules=["coarse.encoder.0"]).eval()(x)
    assert {k: (v.data_ptr(), v.is_contiguous(), v.requires_grad) for k, v in net.named_parameters()} == before
    assert [type(m).__name__ for m in net.modules()] == modules  # batch norm still there, no island
    torch.testing.assert_close(net(x), ref)


def test_monte_carlo_dropout_reaches_the_wrapped_network() -> None:
    torch.manual_seed(0)
    net = R2MFNet(**TINY, dropout=0.5).eval()
    fast = prepare_for_inference(net, precision="fp32").eval()
    x = _smooth_images(1, 32, 3)
    torch.testing.assert_close(fast(x), fast(x))  # eval: deterministic
    for m in fast.modules():
        if isinstance(m, torch.nn.Dropout2d | torch.nn.Dropout):
            m.train()
    assert not torch.equal(fast(x), fast(x))  # live dropout: two passes differ


def test_metatensor_keeps_metadata(reference) -> None:
    net, x, ref = reference
    affine = torch.diag(torch.tensor([0.5, 0.5, 1.0, 1.0], dtype=torch.float64))
    mx = MetaTensor(x, affine=affine, meta={"filename_or_obj": "a.dcm"})
    out = prepare_for_inference(net, precision="fp32").eval()(mx)
    assert isinstance(out, MetaTensor)
    assert out.meta["filename_or_obj"] == "a.dcm"
    torch.testing.assert_close(out.affine, affine)
    torch.testing.assert_close(out.as_tensor(), ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


@pytest.mark.parametrize(
    "a,b,expected",
    [
        (torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 4), 1.0),
        (-torch.ones(1, 1, 4, 4), -torch.ones(1, 1, 4, 4), 1.0),  # both empty agree
        (torch.ones(1, 1, 4, 4), -torch.ones(1, 1, 4, 4), 0.0),
        (torch.tensor([[[[1.0, 1.0], [-1.0, -1.0]]]]), torch.tensor([[[[1.0, -1.0], [-1.0, -1.0]]]]), 2 / 3),
    ],
)
def test_mask_agreement(a: torch.Tensor, b: torch.Tensor, expected: float) -> None:
    assert mask_agreement(a, b) == pytest.approx(expected)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"precision": "fp16"},
        {"backend": "tensorrt"},
        {"precision": "bf16", "backend": "torchscript"},
        {"min_dice": 1.5},
        {"check_batches": 0},
        {"fp32_modules": ["coarse.no_such_level"]},
    ],
)
def test_ill_arg(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        prepare_for_inference(_network(), **kwargs)


def test_a_network_without_parameters_is_left_alone() -> None:
    external = torch.nn.Sigmoid()  # stands for a wrapper of another runtime (ONNX Runtime) as the bundle gets it
    assert prepare_for_inference(external) is external


def test_ill_network() -> None:
    with pytest.raises(ValueError, match="network"):
        FastInferenceNetwork("not a module")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        mask_agreement(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 5))
