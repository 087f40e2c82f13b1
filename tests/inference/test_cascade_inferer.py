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
from monai.data import MetaTensor

from r2mf_monai.inference.cascade_inferer import CascadeInferer
from r2mf_monai.inference.fast_inference import prepare_for_inference
from r2mf_monai.networks.nets import R2MFNet


def _network() -> torch.nn.Module:
    torch.manual_seed(0)
    return R2MFNet(spatial_dims=2, in_channels=1, out_channels=1, channels=(4, 8, 16, 32)).eval()


@pytest.mark.parametrize("prepared", [False, True])
@torch.no_grad()
def test_one_pass_gives_the_plain_logits_and_keeps_both_stages(prepared: bool) -> None:
    net, x = _network(), torch.rand(2, 1, 32, 32)
    plain = net(x)
    _, coarse = net.forward_stages(x)
    runner = prepare_for_inference(net, precision="fp32") if prepared else net
    calls: list = []
    hook = net.coarse.register_forward_hook(lambda *_: calls.append(1))  # the prepared copy keeps its modules' hooks
    inferer = CascadeInferer()
    try:
        out = inferer(x, runner)
    finally:
        hook.remove()
    assert len(calls) == 1  # one pass gave the logits and both maps
    assert torch.allclose(out, plain, atol=1e-4 * float(plain.abs().max()))  # an untrained net's logits run to 100
    fine_p, coarse_p = inferer.last_stage_probabilities
    assert torch.allclose(fine_p, torch.sigmoid(plain), atol=1e-4)
    assert torch.allclose(coarse_p, torch.sigmoid(coarse), atol=1e-4)
    assert not torch.allclose(fine_p, coarse_p, atol=1e-3)  # two different maps, not one kept twice


@torch.no_grad()
def test_a_metatensor_keeps_its_metadata_for_invertd() -> None:
    x = MetaTensor(torch.rand(1, 1, 32, 32), meta={"filename_or_obj": "a.png"})
    x.applied_operations = [{"class": "Resize"}]
    out = CascadeInferer()(x, prepare_for_inference(_network(), precision="fp32"))
    assert isinstance(out, MetaTensor)
    assert out.meta["filename_or_obj"] == "a.png" and out.applied_operations == x.applied_operations


@torch.no_grad()
def test_a_network_without_stages_is_run_plainly_and_nothing_is_kept() -> None:
    net, x = torch.nn.Conv2d(1, 1, 3, padding=1), torch.rand(1, 1, 8, 8)
    inferer = CascadeInferer()
    inferer.last_stage_probabilities = (x, x)  # a previous batch's maps must not survive a network without stages
    assert torch.equal(inferer(x, net), net(x))
    assert inferer.last_stage_probabilities is None
