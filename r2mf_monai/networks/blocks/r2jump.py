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

"""The recurrent residual jump connection (R2-Jump) of R2MF-Net (paper §3.3, eqs. 1-4)."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution
from monai.networks.layers.utils import get_act_layer

from r2mf_monai.utils import ensure_int, ensure_option, ensure_spatial_dims

__all__ = ["R2JumpConnection", "SKIP_FUSIONS"]

SKIP_FUSIONS = ("add", "cat")
"""The two ways eq. 4 fuses the encoder feature with the decoder feature: addition or concatenation."""


class R2JumpConnection(nn.Module):
    """Recurrent residual refinement of an encoder feature, then fusion with the decoder feature.

    R2MF-Net paper §3.3 (after R2U-Net, Alom et al., J. Med. Imaging 6(1) 2019):

    - eqs. 1-2: ``F_0 = E`` and ``F_t = act(W_r * F_{t-1} + E)`` for ``t = 1..T``, where ``W_r`` is one 3x3
      conv-norm layer whose weights are shared by all ``T`` steps;
    - eq. 3: ``E' = F_T + W_s * E`` with ``W_s`` a 1x1 conv-norm layer;
    - eq. 4: ``H = E' + D`` (``fusion="add"``) or ``H = concat(E', D)`` (``fusion="cat"``), encoder part first.

    The normalisation layer belongs to ``W_r`` and is therefore shared by the steps too, as in R2U-Net's recurrent
    convolutional layer.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        channels: channels of the encoder feature (and of the decoder feature for ``fusion="add"``).
        recurrent_steps: ``T``, number of applications of ``W_r``; 0 gives ``E' = E + W_s * E`` (and no ``W_r``).
            Defaults to ``1``.
        fusion: ``"add"`` or ``"cat"``. Defaults to ``"add"``.
        act: activation type and arguments. Defaults to ``("leakyrelu", {"negative_slope": 0.01})`` (§3.7).
        norm: feature normalisation type and arguments. Defaults to ``("batch", {})`` (§3.7).

    Raises:
        ValueError: when ``channels`` is not positive, ``recurrent_steps`` is negative or ``fusion`` is unknown.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        recurrent_steps: int = 1,
        fusion: str = "add",
        act: tuple | str = ("leakyrelu", {"negative_slope": 0.01}),
        norm: tuple | str | None = ("batch", {}),
    ) -> None:
        super().__init__()
        spatial_dims = ensure_spatial_dims(spatial_dims)
        self.channels = ensure_int("channels", channels)
        self.recurrent_steps = ensure_int("recurrent_steps", recurrent_steps, minimum=0)
        self.fusion = ensure_option("fusion", fusion, SKIP_FUSIONS)
        bias = norm is None
        # W_r of eq. 2, shared by every step; none for T = 0 (no unused parameters, which DDP rejects)
        self.recurrent_conv = (
            Convolution(spatial_dims, channels, channels, kernel_size=3, act=None, norm=norm, bias=bias)
            if self.recurrent_steps > 0
            else None
        )
        # W_s of eq. 3
        self.residual_conv = Convolution(
            spatial_dims, channels, channels, kernel_size=1, act=None, norm=norm, bias=bias
        )
        self.act = get_act_layer(act)

    def refine(self, enc: torch.Tensor) -> torch.Tensor:
        """The refined encoder feature ``E'`` of eqs. 1-3."""
        f = enc
        if self.recurrent_conv is not None:
            for _ in range(self.recurrent_steps):
                f = self.act(self.recurrent_conv(f) + enc)
        return f + self.residual_conv(enc)

    def forward(self, enc: torch.Tensor, dec: torch.Tensor) -> torch.Tensor:
        """
        Args:
            enc: encoder feature ``E`` of shape (batch, channels, *spatial).
            dec: decoder feature ``D`` of the same spatial shape (and the same channels for ``fusion="add"``).

        Returns:
            ``H`` of eq. 4: (batch, channels, *spatial) for ``"add"``, (batch, channels + dec channels, *spatial)
            for ``"cat"``.
        """
        refined = self.refine(enc)
        if self.fusion == "add":
            return refined + dec
        return torch.cat([refined, dec], dim=1)
