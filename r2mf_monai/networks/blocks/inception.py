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

"""The Inception-based multi-branch residual block of R2MF-Net (paper §3.4, eq. 5)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.blocks import Convolution
from monai.networks.layers.utils import get_act_layer

from r2mf_monai.utils import ensure_int, ensure_spatial_dims

__all__ = ["InceptionResidualBlock"]


class InceptionResidualBlock(nn.Module):
    """Three parallel branches of one, two and three stacked 3x3 convolutions, a 1x1 projection and a residual add.

    R2MF-Net paper §3.4, eq. 5: ``Z = act(phi([B1(X), B2(X), B3(X)]) + P(X))`` where ``B_k`` is ``k`` stacked
    conv-norm-act layers (receptive fields 3, 5 and 7), ``phi`` a 1x1 convolution followed by normalisation, and
    ``P`` the identity when ``in_channels == out_channels`` or else a 1x1 conv-norm projection (as MONAI's
    ``UnetResBlock`` does)::

        X --+-- [3x3] ------------------------+
            +-- [3x3] -- [3x3] ---------------+-- concat -- phi(1x1) --(+)-- act -- Z
            +-- [3x3] -- [3x3] -- [3x3] ------+                         |
            +-------------- P(X) (identity or 1x1) ---------------------+

    The first 3x3 layer of all three branches reads the same input, so the three are computed as one convolution
    with ``sum(branch_channels)`` output channels and split afterwards. With batch or instance normalisation (both
    per channel) this is exactly three separate conv-norm-act layers, and one wider convolution runs faster than
    three narrow ones.

    The activation after the residual sum is our choice (ResNet places it there, ref. [22] of the paper); eq. 5
    writes the sum alone.

    Args:
        spatial_dims: number of spatial dimensions, 1, 2 or 3.
        in_channels: number of input channels.
        out_channels: number of output channels.
        branch_channels: output channels of each of the three branches, one integer for all three or a sequence of
            three. Defaults to ``out_channels // 2`` each (at least 1); see the bundle README, "Interpretations of
            the paper", for why.
        act: activation type and arguments. Defaults to ``("leakyrelu", {"negative_slope": 0.01})`` (§3.7).
        norm: feature normalisation type and arguments. Defaults to ``("batch", {})`` (§3.7).

    Raises:
        ValueError: when a channel number is not a positive integer, or ``branch_channels`` does not have 1 or 3
            entries.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        branch_channels: Sequence[int] | int | None = None,
        act: tuple | str = ("leakyrelu", {"negative_slope": 0.01}),
        norm: tuple | str | None = ("batch", {}),
    ) -> None:
        super().__init__()
        spatial_dims = ensure_spatial_dims(spatial_dims)
        in_channels = ensure_int("in_channels", in_channels)
        out_channels = ensure_int("out_channels", out_channels)
        if branch_channels is None:
            branch_channels = max(out_channels // 2, 1)
        widths = [branch_channels] * 3 if isinstance(branch_channels, int) else list(branch_channels)
        if len(widths) != 3:
            raise ValueError(f"branch_channels must be an int or 3 ints, got branch_channels={branch_channels!r}.")
        widths = [ensure_int("branch_channels", w) for w in widths]
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.branch_channels = widths

        bias = norm is None  # a bias before a normalisation layer is redundant

        def conv(cin: int, cout: int, kernel_size: int, with_act: bool) -> Convolution:
            return Convolution(
                spatial_dims,
                cin,
                cout,
                kernel_size=kernel_size,
                act=act if with_act else None,
                norm=norm,
                bias=bias,
                adn_ordering="NA",
            )

        # first 3x3 layer of branches 1, 2 and 3 in one convolution (see class docstring)
        self.stem = conv(in_channels, sum(widths), 3, True)
        self.branch2 = conv(widths[1], widths[1], 3, True)
        self.branch3 = nn.Sequential(conv(widths[2], widths[2], 3, True), conv(widths[2], widths[2], 3, True))
        self.project = conv(sum(widths), out_channels, 1, False)  # phi of eq. 5
        self.residual: nn.Module = (
            nn.Identity() if in_channels == out_channels else conv(in_channels, out_channels, 1, False)
        )
        self.act = get_act_layer(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: input of shape (batch, in_channels, spatial_1[, spatial_2, ...]).

        Returns:
            a tensor of shape (batch, out_channels, spatial_1[, spatial_2, ...]).
        """
        b1, s2, s3 = torch.split(self.stem(x), self.branch_channels, dim=1)
        z = self.project(torch.cat([b1, self.branch2(s2), self.branch3(s3)], dim=1))
        return self.act(z + self.residual(x))
