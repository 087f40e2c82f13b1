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

from r2mf_monai.losses import CascadeDiceBCELoss

EPS = 1e-5


def bce_dice_by_hand(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eqs. 14 + 15 for (B, C, H, W) logits, Dice per image and channel, then averaged."""
    p = torch.sigmoid(logits)
    bce = -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()  # eq. 14
    num = 2 * (p * target).sum(dim=(2, 3)) + EPS
    den = (p**2).sum(dim=(2, 3)) + (target**2).sum(dim=(2, 3)) + EPS
    dice = (1 - num / den).mean()  # eq. 15
    return bce + dice


@pytest.mark.parametrize("lambda_coarse, lambda_fine", [(0.4, 0.6), (0.5, 0.5), (0.0, 1.0), (0.3, 0.7)])
@pytest.mark.parametrize("shape", [(1, 1, 4, 4), (2, 1, 3, 5), (2, 2, 4, 4)])
def test_stacked_matches_eq16_by_hand(lambda_coarse, lambda_fine, shape):
    torch.manual_seed(0)
    fine, coarse = 3 * torch.randn(shape), 3 * torch.randn(shape)
    target = (torch.rand(shape) > 0.5).float()
    loss = CascadeDiceBCELoss(lambda_coarse=lambda_coarse, lambda_fine=lambda_fine)(
        torch.stack([fine, coarse], dim=1), target
    )
    expected = lambda_coarse * bce_dice_by_hand(coarse, target) + lambda_fine * bce_dice_by_hand(fine, target)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_plain_output_is_bce_plus_dice():
    torch.manual_seed(1)
    logits, target = torch.randn(2, 1, 6, 6), (torch.rand(2, 1, 6, 6) > 0.7).float()
    torch.testing.assert_close(CascadeDiceBCELoss()(logits, target), bce_dice_by_hand(logits, target))


def test_default_weights_are_the_papers():
    loss = CascadeDiceBCELoss()
    assert (loss.lambda_coarse, loss.lambda_fine) == (0.4, 0.6)


def test_integer_and_bool_targets():
    torch.manual_seed(2)
    logits, target = torch.randn(1, 2, 1, 5, 5), torch.rand(1, 1, 5, 5) > 0.5
    loss = CascadeDiceBCELoss()
    torch.testing.assert_close(loss(logits, target), loss(logits, target.float()))
    torch.testing.assert_close(loss(logits, target.to(torch.uint8)), loss(logits, target.float()))


def test_perfect_prediction_is_near_zero_and_wrong_one_is_large():
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:6, 3:5] = 1
    logits = 20 * (2 * target - 1)
    loss = CascadeDiceBCELoss()
    assert loss(torch.stack([logits, logits], dim=1), target) < 1e-3
    assert loss(torch.stack([-logits, -logits], dim=1), target) > 10


def test_gradients_weighted_per_head():
    torch.manual_seed(3)
    target = (torch.rand(2, 1, 4, 4) > 0.5).float()
    logits = torch.randn(2, 2, 1, 4, 4, requires_grad=True)
    CascadeDiceBCELoss(lambda_coarse=0.0)(logits, target).backward()
    assert logits.grad[:, 1].abs().sum() == 0 and logits.grad[:, 0].abs().sum() > 0
    logits.grad = None
    CascadeDiceBCELoss(lambda_coarse=0.4, lambda_fine=0.6)(logits, target).backward()
    single = logits.detach().clone().requires_grad_(True)
    CascadeDiceBCELoss()(single[:, 0], target).backward()
    torch.testing.assert_close(logits.grad[:, 0], 0.6 * single.grad[:, 0])


@pytest.mark.parametrize(
    "input_shape, target_shape, match",
    [
        [(2, 1, 4, 4), (2, 1, 4, 5), "does not match"],
        [(2, 3, 1, 4, 4), (2, 1, 4, 4), "stacked"],
        [(2, 2, 1, 4, 4), (2, 2, 4, 4), "stacked"],
        [(2, 1, 4), (2, 1, 4, 4), "input must have shape"],
    ],
)
def test_bad_shapes(input_shape, target_shape, match):
    with pytest.raises(ValueError, match=match):
        CascadeDiceBCELoss()(torch.zeros(input_shape), torch.zeros(target_shape))


def test_unbinarised_target_is_rejected():
    target = torch.zeros(1, 1, 4, 4)
    target[..., 1:3, 1:3] = 255
    with pytest.raises(ValueError, match="binarise"):
        CascadeDiceBCELoss()(torch.zeros(1, 2, 1, 4, 4), target)
    CascadeDiceBCELoss(check_target=False)(torch.zeros(1, 2, 1, 4, 4), target)  # the check can be turned off


@pytest.mark.parametrize(
    "kwargs, name",
    [
        [{"lambda_coarse": -0.1}, "lambda_coarse"],
        [{"lambda_fine": -1}, "lambda_fine"],
        [{"lambda_dice": -1}, "lambda_dice"],
        [{"lambda_bce": "a"}, "lambda_bce"],
        [{"reduction": "none"}, "reduction"],
    ],
)
def test_ill_arg(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CascadeDiceBCELoss(**kwargs)
