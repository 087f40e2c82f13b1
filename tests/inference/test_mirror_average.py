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
"""Test-time mirroring: the mean of the plain and the mirrored probability maps, as logits."""

from __future__ import annotations

import pytest
import torch
from monai.data import MetaTensor
from monai.inferers import SimpleInferer

from r2mf_monai.inference.cascade_inferer import CascadeInferer
from r2mf_monai.inference.mirror_average import MirrorAverageInferer, make_inferer
from r2mf_monai.networks.nets import R2MFNet


def _network() -> torch.nn.Module:
    torch.manual_seed(0)
    return R2MFNet(spatial_dims=2, in_channels=1, out_channels=1, channels=(4, 8, 16, 32)).eval()


@torch.no_grad()
def test_the_result_is_the_logit_of_the_mean_probability() -> None:
    net, x = _network(), torch.rand(2, 1, 32, 32)
    inferer = MirrorAverageInferer()
    out = inferer(x, net)
    plain, mirrored = torch.sigmoid(net(x)), torch.sigmoid(net(x.flip(2))).flip(2)
    assert out.shape == plain.shape and out.dtype == torch.float32
    assert torch.allclose(torch.sigmoid(out), (plain + mirrored) / 2, atol=1e-5)
    assert not torch.allclose(torch.sigmoid(out), plain, atol=1e-3)  # the mirror pass changed it
    assert torch.allclose(inferer.last_probabilities[0], plain, atol=1e-6)
    assert torch.allclose(inferer.last_probabilities[1], mirrored, atol=1e-6)


@pytest.mark.parametrize("flip_axis", [2, 3, -1])
@torch.no_grad()
def test_the_result_is_mirror_equivariant(flip_axis: int) -> None:
    # whatever the network, mirroring the film mirrors the averaged map (a mirror not flipped back would break it)
    net, x = _network(), torch.rand(1, 1, 32, 32)
    inferer = MirrorAverageInferer(flip_axis=flip_axis)
    assert torch.allclose(inferer(x.flip(flip_axis), net), inferer(x, net).flip(flip_axis), atol=1e-4)


@torch.no_grad()
def test_a_mirror_symmetric_network_is_unchanged() -> None:
    class Symmetric(torch.nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return t + t.flip(2)

    x = torch.randn(2, 1, 8, 8)
    assert torch.allclose(MirrorAverageInferer()(x, Symmetric()), Symmetric()(x), atol=1e-4)


@torch.no_grad()
def test_a_meta_tensor_keeps_its_metadata_and_applied_operations() -> None:
    net = _network()
    ops = [{"class": "AntiAliasedResized", "orig_size": (64, 64)}]
    x = MetaTensor(torch.rand(1, 1, 32, 32), meta={"filename_or_obj": "film.dcm"}, applied_operations=[ops])
    x.is_batch = True
    out = MirrorAverageInferer()(x, net)
    assert isinstance(out, MetaTensor) and out.is_batch
    assert out.meta["filename_or_obj"] == "film.dcm"
    assert out.applied_operations == [ops]


@pytest.mark.parametrize("kwargs", [{"eps": 0.0}, {"eps": 0.5}])
def test_ill_args(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="eps"):
        MirrorAverageInferer(**kwargs)


@pytest.mark.parametrize("flip_axis", [0, 1, 4])
def test_a_flip_axis_that_is_not_spatial_is_refused(flip_axis: int) -> None:
    with pytest.raises(ValueError, match=f"flip_axis {flip_axis}"):
        MirrorAverageInferer(flip_axis=flip_axis)(torch.rand(1, 1, 8, 8), torch.nn.Identity())


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, MirrorAverageInferer), ("true", MirrorAverageInferer), (False, SimpleInferer), ("false", SimpleInferer)],
)
def test_make_inferer_reads_a_command_line_boolean(value, expected) -> None:
    # `python -m monai.bundle run ... --mirror_average false` gives the string "false", which bool() reads as true
    assert type(make_inferer(value)) is expected


@pytest.mark.parametrize(
    ("mirror_average", "keep_stages", "expected"),
    [(False, "true", CascadeInferer), (False, False, SimpleInferer), (True, True, MirrorAverageInferer)],
)
def test_make_inferer_keeps_the_stages_when_asked(mirror_average, keep_stages, expected) -> None:
    assert type(make_inferer(mirror_average, keep_stages=keep_stages)) is expected


@pytest.mark.parametrize(("args", "key"), [(("maybe",), "mirror_average"), ((False, 2, "maybe"), "keep_stages")])
def test_make_inferer_refuses_a_word_that_is_not_a_boolean(args, key) -> None:
    with pytest.raises(ValueError, match=key):
        make_inferer(*args)


@pytest.mark.parametrize(
    ("configs", "key"), [(["inference.json"], "inferer"), (["train.json", "evaluate.json"], "validate#inferer")]
)
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, CascadeInferer),  # the plain network, both stages kept for the default review method
        ({"review_method": "flip"}, SimpleInferer),
        ({"mirror_average": "true"}, MirrorAverageInferer),
    ],
)
def test_the_bundle_configs_run_the_plain_network_unless_asked(configs, key, overrides, expected) -> None:
    # off by default: on the held-out real films the mean with the mirror lowered Dice and raised the angle error
    from monai.bundle import ConfigParser

    from r2mf_monai.bundle_paths import find_bundle

    parser = ConfigParser()
    parser.read_config([str(find_bundle(None) / "configs" / c) for c in configs])
    for k, v in overrides.items():
        parser[k] = v
    assert type(parser.get_parsed_content(key)) is expected
