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
"""Batch normalisation with each image's own statistics mixed into the running ones, at inference."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from r2mf_monai.inference.fast_inference import prepare_for_inference
from r2mf_monai.inference.image_statistics import ImageStatisticsBatchNorm, use_image_statistics
from r2mf_monai.networks.nets import R2MFNet


def _trained_bn(channels: int = 3, dims: int = 2) -> nn.Module:
    torch.manual_seed(0)
    bn = (nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d)(channels)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.5, 0.5)
    return bn.eval()


def _small_r2mfnet_with_image_statistics() -> R2MFNet:
    """A small R2MF-Net in eval mode whose running statistics are not the identity, each film's mixed in at 0.5."""
    torch.manual_seed(0)
    net = R2MFNet(spatial_dims=2, in_channels=1, out_channels=1, channels=(4, 8, 16, 32)).eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return use_image_statistics(net, 0.5)


def _reference(bn: nn.Module, x: torch.Tensor, w: float) -> torch.Tensor:
    """The mix written out: (1 - w) running + w the image's own statistics (unbiased variance, as running statistics
    take it), per image and channel."""
    dims = tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * len(dims)
    mean = (1 - w) * bn.running_mean.view(shape) + w * x.mean(dims, keepdim=True)
    var = (1 - w) * bn.running_var.view(shape) + w * x.var(dims, unbiased=True, keepdim=True)
    return (x - mean) / torch.sqrt(var + bn.eps) * bn.weight.view(shape) + bn.bias.view(shape)


@pytest.mark.parametrize("w", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("dims", [2, 3])
def test_eval_output_is_the_mix_of_running_and_image_statistics(w: float, dims: int) -> None:
    bn = _trained_bn(dims=dims)
    x = 3.0 + 2.0 * torch.randn(2, 3, *([6] * dims))  # another domain: shifted and scaled
    layer = ImageStatisticsBatchNorm.from_batch_norm(bn, w).eval()
    assert torch.allclose(layer(x), _reference(bn, x, w), atol=1e-4)
    if w == 0.0:
        assert torch.allclose(layer(x), bn(x), atol=1e-6)
    else:
        assert not torch.allclose(layer(x), bn(x), atol=1e-2)


def test_each_image_is_normalised_by_its_own_statistics() -> None:
    layer = ImageStatisticsBatchNorm.from_batch_norm(_trained_bn(), 0.5).eval()
    a, b = torch.randn(1, 3, 8, 8), 5.0 + 3.0 * torch.randn(1, 3, 8, 8)
    assert torch.allclose(layer(torch.cat([a, b]))[:1], layer(a), atol=1e-5)  # the batch does not matter
    assert torch.allclose(layer(a.contiguous(memory_format=torch.channels_last)), layer(a), atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("memory_format", [torch.channels_last, torch.contiguous_format])
def test_the_memory_format_is_kept(batch: int, memory_format: torch.memory_format) -> None:
    # the next convolution of the fast inference path expects channels-last: a layer that hands on the other format
    # makes it convert every input (a pass took twice as long)
    layer = ImageStatisticsBatchNorm.from_batch_norm(_trained_bn(), 0.5).eval()
    x = torch.randn(batch, 3, 8, 8).contiguous(memory_format=memory_format)
    out = layer(x)
    assert out.is_contiguous(memory_format=memory_format)
    assert torch.allclose(out, layer(x.contiguous()), atol=1e-5)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("memory_format", [torch.channels_last, torch.contiguous_format])
@pytest.mark.parametrize("affine", [True, False])
def test_inplace_normalises_the_input_itself_to_the_same_values(
    batch: int, memory_format: torch.memory_format, affine: bool
) -> None:
    bn = _trained_bn()
    if not affine:
        bn = nn.BatchNorm2d(3, affine=False).eval()
        bn.running_mean.copy_(_trained_bn().running_mean)
    layer = ImageStatisticsBatchNorm.from_batch_norm(bn, 0.5).eval()
    x = (3.0 + 2.0 * torch.randn(batch, 3, 8, 8)).contiguous(memory_format=memory_format)
    expected = layer(x.clone())
    layer.inplace = True
    with torch.no_grad():
        out = layer(x)
    assert out is x and out.is_contiguous(memory_format=memory_format)
    assert torch.allclose(out, expected, atol=1e-5)


def test_inplace_leaves_an_input_that_needs_its_gradient() -> None:
    layer = ImageStatisticsBatchNorm.from_batch_norm(_trained_bn(), 0.5).eval()
    layer.inplace = True
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    before = x.detach().clone()
    out = layer(x)
    assert out is not x and torch.equal(x.detach(), before)
    out.sum().backward()
    assert x.grad is not None and "inplace=True" in repr(layer)


@torch.no_grad()
def test_the_prepared_r2mfnet_normalises_in_place_to_the_same_logits() -> None:
    # in place is right only where nothing else reads a normalisation's input: a block that reused it would see it
    # normalised and give other logits than the layers that write a new map
    net = _small_r2mfnet_with_image_statistics()
    x = 4.0 * torch.rand(2, 1, 32, 32)
    prepared = prepare_for_inference(net, precision="fp32")
    out = prepared(x)
    layers = [m for m in prepared._cache["module"].modules() if isinstance(m, ImageStatisticsBatchNorm)]
    assert layers and all(m.inplace for m in layers)
    assert not any(m.inplace for m in net.modules() if isinstance(m, ImageStatisticsBatchNorm))  # the original stays
    for m in layers:
        m.inplace = False
    assert torch.allclose(prepared(x), out, atol=1e-5)
    assert torch.allclose(out, net(x), atol=1e-4)


def test_training_is_plain_batch_normalisation() -> None:
    bn = _trained_bn().train()
    layer = ImageStatisticsBatchNorm.from_batch_norm(bn, 0.5)
    assert layer.training
    x = torch.randn(4, 3, 5, 5)
    assert torch.allclose(layer(x), bn(x), atol=1e-6)
    assert torch.allclose(layer.running_mean, bn.running_mean) and torch.allclose(layer.running_var, bn.running_var)


@pytest.mark.parametrize("w", [-0.1, 1.5])
def test_a_weight_outside_0_1_is_refused(w: float) -> None:
    with pytest.raises(ValueError, match="image_weight"):
        use_image_statistics(nn.Sequential(nn.BatchNorm2d(2)), w)
    with pytest.raises(ValueError, match="image_weight"):
        ImageStatisticsBatchNorm(2, w)


def test_a_network_keeps_its_state_dict_and_its_1d_norms() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.LazyLinear(4), nn.BatchNorm1d(4))
    net(torch.rand(2, 1, 6, 6))
    keys = {k: v.shape for k, v in net.state_dict().items()}
    assert use_image_statistics(net, 0.0) is net and type(net[1]) is nn.BatchNorm2d  # 0: as trained
    use_image_statistics(net, 0.5)
    assert type(net[1]) is ImageStatisticsBatchNorm and type(net[4]) is nn.BatchNorm1d  # no pixels in a (B, C) input
    assert {k: v.shape for k, v in net.state_dict().items()} == keys
    net.load_state_dict(net.state_dict())


@torch.no_grad()
def test_the_fast_inference_path_keeps_the_image_statistics() -> None:
    # folding batch norm into the convolutions must leave these layers alone: their statistics are the image's
    net = _small_r2mfnet_with_image_statistics()
    x = 4.0 * torch.rand(1, 1, 32, 32)
    prepared = prepare_for_inference(net, precision="fp32")
    assert torch.allclose(prepared(x), net(x), atol=1e-4)
    assert any(isinstance(m, ImageStatisticsBatchNorm) for m in prepared._cache["module"].modules())


@torch.no_grad()
def test_torchscript_computes_the_same_mix() -> None:
    # TorchScript drops the kernel call whose only effect is the in-place update: the scripted layer writes it out
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), _trained_bn(4), nn.ReLU(), nn.Conv2d(4, 1, 1))
    use_image_statistics(net, 0.5)
    x = 3.0 * torch.rand(2, 1, 16, 16)
    assert torch.allclose(torch.jit.script(net.eval())(x), net(x), atol=1e-4)


def test_inference_does_not_import_torch_onnx() -> None:
    # torch imports torch.onnx lazily, in 0.18 s: asking whether an export runs must not be what imports it
    import subprocess
    import sys

    code = (
        "import sys, torch, torch.nn as nn\n"
        "from r2mf_monai.inference.image_statistics import use_image_statistics\n"
        "net = use_image_statistics(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)), 0.5).eval()\n"
        "net(torch.rand(1, 1, 8, 8))\n"
        "print('torch.onnx' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_onnx_export_computes_the_same_mix(tmp_path) -> None:
    # the eager path mixes the statistics with an in-place kernel update that graph capture would not record
    import numpy as np
    import onnxruntime as ort

    from r2mf_monai.inference.onnx_backend import export_onnx

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), _trained_bn(4), nn.ReLU(), nn.Conv2d(4, 1, 1))
    use_image_statistics(net, 0.5)
    export_onnx(net, tmp_path / "m.onnx", image_size=16)  # verifies ONNX Runtime against PyTorch itself
    x = 3.0 * np.random.default_rng(0).random((2, 1, 16, 16), dtype=np.float32)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"image": x})
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("configs", "key"), [(["inference.json"], "network_def"), (["train.json", "evaluate.json"], "network_def")]
)
def test_the_bundle_configs_mix_half_the_image_statistics(configs, key) -> None:
    from monai.bundle import ConfigParser

    from r2mf_monai.bundle_paths import find_bundle

    parser = ConfigParser()
    parser.read_config([str(find_bundle(None) / "configs" / c) for c in configs])
    layers = [m for m in parser.get_parsed_content(key).modules() if isinstance(m, ImageStatisticsBatchNorm)]
    assert layers and all(m.image_weight == 0.5 for m in layers)
    assert not any(type(m) is nn.BatchNorm2d for m in parser.get_parsed_content(key, lazy=False).modules())
    parser["image_statistics_weight"] = 0.0
    assert not any(
        isinstance(m, ImageStatisticsBatchNorm) for m in parser.get_parsed_content(key, lazy=False).modules()
    )
