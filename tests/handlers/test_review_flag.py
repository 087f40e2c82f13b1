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
"""The review flag: stable on an image the network knows, raised on a degraded one (paper §5.4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.draw import polygon

from r2mf_monai.handlers.review_flag import ReviewFlag, flip_dropout_uncertainty
from r2mf_monai.losses import CascadeDiceBCELoss
from r2mf_monai.networks.nets import R2MFNet


def _band(seed: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """A bright curved band (a toy spinal column) on a darker textured background, and its mask."""
    rng = np.random.default_rng(seed)
    rows = np.arange(3, size - 3)
    centre = size / 2 + rng.uniform(3, 5) * np.sin(rows / size * np.pi * rng.uniform(0.8, 1.6)) * rng.choice([-1, 1])
    half = 3
    poly_r = np.concatenate([rows, rows[::-1]])
    poly_c = np.concatenate([centre - half, (centre + half)[::-1]])
    mask = np.zeros((size, size), np.float32)
    rr, cc = polygon(poly_r, poly_c, mask.shape)
    mask[rr, cc] = 1
    image = 0.3 + 0.1 * rng.random((size, size)) + 0.5 * mask
    return torch.tensor(image, dtype=torch.float32)[None], torch.tensor(mask)[None]


@pytest.fixture(scope="module")
def trained() -> torch.nn.Module:
    torch.manual_seed(0)
    net = R2MFNet(spatial_dims=2, in_channels=1, out_channels=1, channels=(8, 16, 32, 64), dropout=0.2)
    data = [_band(s) for s in range(4)]
    x = torch.stack([d[0] for d in data])
    y = torch.stack([d[1] for d in data])
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    loss = CascadeDiceBCELoss()
    net.train()
    for _ in range(60):
        opt.zero_grad()
        loss(net(x), y).backward()
        opt.step()
    return net.eval()


@pytest.mark.slow
def test_score_is_low_on_a_clean_image_and_higher_on_a_degraded_one(trained: torch.nn.Module) -> None:
    clean, _ = _band(10)
    rng = torch.Generator().manual_seed(1)
    degraded = (clean * 0.25 + 0.6 * torch.rand(clean.shape, generator=rng)).clamp(0, 1)
    scores = flip_dropout_uncertainty(trained, torch.stack([clean, degraded]), mc_samples=4)
    assert scores.shape == (2,)
    assert 0 <= scores[0] < scores[1] <= 1
    assert not trained.training, "the network's mode must be restored"


def test_the_score_is_zero_for_a_flip_symmetric_network() -> None:
    class Symmetric(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + x.flip(2)

    x = torch.rand(3, 1, 16, 16)
    assert torch.allclose(flip_dropout_uncertainty(Symmetric(), x), torch.zeros(3), atol=1e-6)


@pytest.mark.parametrize("kwargs", [{"threshold": -0.1}, {"threshold": 1.5}, {"mc_samples": -1}])
def test_ill_args(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        ReviewFlag(output_dir=None, **kwargs)
