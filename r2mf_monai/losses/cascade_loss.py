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

"""The deep-supervised BCE + soft Dice loss of R2MF-Net's coarse and fine outputs (paper §3.10, eqs. 14-16)."""

from __future__ import annotations

import torch
from monai.losses import DiceLoss
from torch import nn
from torch.nn.modules.loss import _Loss

from r2mf_monai.utils import ensure_option

__all__ = ["CascadeDiceBCELoss"]


class CascadeDiceBCELoss(_Loss):
    """``lambda_coarse * (BCE + Dice)(coarse) + lambda_fine * (BCE + Dice)(fine)`` on logits.

    R2MF-Net paper §3.10: eq. 14 is the binary cross entropy of the sigmoid probabilities, eq. 15 the soft Dice loss
    with squared terms in the denominator, ``1 - (2 sum PM + eps) / (sum P^2 + sum M^2 + eps)``, and eq. 16 their
    weighted sum over the two outputs of the cascade with ``lambda_c = 0.4`` and ``lambda_f = 0.6``. Each output's
    term is :py:class:`torch.nn.BCEWithLogitsLoss` plus MONAI's :py:class:`monai.losses.DiceLoss` with
    ``sigmoid=True, squared_pred=True``; the Dice term is computed per image and channel and averaged, as in MONAI.
    (MONAI's ``DiceCELoss`` is not used: for more than one channel it takes a softmax cross entropy, whereas every
    channel here is an independent sigmoid output.)

    ``input`` is what :py:class:`r2mf_monai.networks.nets.R2MFNet` returns: in training mode the stacked
    (B, 2, C, *spatial) tensor ``[fine, coarse]`` (final output first, as DynUNet's deep supervision), in eval mode
    a plain (B, C, *spatial) tensor, which gets ``(BCE + Dice)`` alone (weight 1, so validation losses of different
    ``lambda`` settings stay comparable).

    Args:
        lambda_coarse: weight of the coarse output. Defaults to ``0.4`` (§3.10).
        lambda_fine: weight of the fine output. Defaults to ``0.6`` (§3.10).
        lambda_dice: weight of the Dice term inside each output's loss. Defaults to ``1.0`` (eq. 16).
        lambda_bce: weight of the BCE term inside each output's loss. Defaults to ``1.0`` (eq. 16).
        smooth_nr: ``eps`` of eq. 15 in the numerator. Defaults to ``1e-5``.
        smooth_dr: ``eps`` of eq. 15 in the denominator. Defaults to ``1e-5``.
        batch: sum the Dice terms over the batch before dividing (one Dice for the batch). Defaults to ``False``.
        reduction: ``"mean"`` or ``"sum"`` over the batch (and channels, and for BCE the pixels). Defaults to
            ``"mean"``.
        check_target: raise ``ValueError`` when the target has values outside ``[0, 1]`` (a 0/255 mask that was
            not binarised makes the loss negative without any other sign). Costs one device synchronisation per
            call. Defaults to ``True``.

    Raises:
        ValueError: for a negative weight or an unknown reduction; in ``forward`` for shapes that do not fit or a
            target outside ``[0, 1]``.
    """

    def __init__(
        self,
        lambda_coarse: float = 0.4,
        lambda_fine: float = 0.6,
        lambda_dice: float = 1.0,
        lambda_bce: float = 1.0,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
        reduction: str = "mean",
        check_target: bool = True,
    ) -> None:
        super().__init__(reduction=reduction)
        for name, value in (
            ("lambda_coarse", lambda_coarse),
            ("lambda_fine", lambda_fine),
            ("lambda_dice", lambda_dice),
            ("lambda_bce", lambda_bce),
        ):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {name}={value!r}.")
        ensure_option("reduction", reduction, ("mean", "sum"))
        self.lambda_coarse = float(lambda_coarse)
        self.lambda_fine = float(lambda_fine)
        self.check_target = check_target
        self.lambda_dice = float(lambda_dice)
        self.lambda_bce = float(lambda_bce)
        self.dice = DiceLoss(
            sigmoid=True, squared_pred=True, smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=batch, reduction=reduction
        )
        self.bce = nn.BCEWithLogitsLoss(reduction=reduction)

    def bce_dice(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``lambda_bce * BCE + lambda_dice * Dice`` of one output (eqs. 14 and 15)."""
        return self.lambda_bce * self.bce(logits, target) + self.lambda_dice * self.dice(logits, target)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input: logits, (B, 2, C, *spatial) stacked ``[fine, coarse]`` or (B, C, *spatial).
            target: binary mask (B, C, *spatial) with values in {0, 1} (soft labels in [0, 1] also work).

        Returns:
            the loss, a scalar tensor.
        """
        if not torch.is_floating_point(target):
            target = target.to(dtype=input.dtype)
        if self.check_target and target.numel() > 0:
            lo, hi = torch.aminmax(target)
            if lo < 0 or hi > 1:
                raise ValueError(
                    f"target values must lie in [0, 1], got [{lo.item()}, {hi.item()}]; binarise 0/255 masks first."
                )
        if input.dim() == target.dim():
            if input.shape != target.shape:
                raise ValueError(f"input shape {tuple(input.shape)} does not match target shape {tuple(target.shape)}.")
            return self.bce_dice(input, target)
        if input.dim() == target.dim() + 1:
            if input.shape[1] != 2 or input.shape[:1] + input.shape[2:] != target.shape:
                raise ValueError(
                    f"a stacked input must have shape (B, 2, C, *spatial) with (B, C, *spatial) = target shape "
                    f"{tuple(target.shape)}, got {tuple(input.shape)}."
                )
            fine, coarse = input[:, 0], input[:, 1]
            return self.lambda_fine * self.bce_dice(fine, target) + self.lambda_coarse * self.bce_dice(coarse, target)
        raise ValueError(
            f"input must have shape (B, C, *spatial) or (B, 2, C, *spatial) for a target of shape "
            f"{tuple(target.shape)}, got {tuple(input.shape)}."
        )
