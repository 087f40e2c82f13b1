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

"""SCSE-Lite, the concurrent channel and spatial squeeze-and-excitation of R2MF-Net (paper §3.6, eqs. 8-13)."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.blocks import ChannelSELayer
from monai.networks.layers.factories import Conv

from r2mf_monai.utils import ensure_int, ensure_spatial_dims

__all__ = ["SCSELite"]


class SCSELite(nn.Module):
    """Channel squeeze-and-excitation plus spatial squeeze-and-excitation, outputs summed.

    R2MF-Net paper §3.6 (after Hu et al., CVPR 2018, and Roy et al., MICCAI 2018):

    - CSE, eqs. 8-10: global average pooling, a reduction by ``r`` with ReLU, a restoration with sigmoid, channel
      scaling. This is MONAI's :py:class:`monai.networks.blocks.ChannelSELayer` (its two fully connected layers are
      the 1x1 convolutions of eq. 9 applied to the pooled vector).
    - SSE, eqs. 11-12: one 1x1 convolution to a single channel, sigmoid, spatial scaling. MONAI has no spatial SE
      layer, so this one is written here (one convolution).
    - eq. 13: ``U = U_cse + U_sse``.

    Args:
        spatial_dims: number of spatial dimensions, 1, 2 or 3.
        in_channels: number of input (and output) channels.
        r: channel reduction ratio of the CSE branch. Defaults to ``2`` (eq. 9).

    Raises:
        ValueError: when ``in_channels`` is not positive or ``r`` is not in ``[1, in_channels]``.
    """

    def __init__(self, spatial_dims: int, in_channels: int, r: int = 2) -> None:
        super().__init__()
        spatial_dims = ensure_spatial_dims(spatial_dims)
        in_channels = ensure_int("in_channels", in_channels)
        if int(r) != r or not 1 <= r <= in_channels:
            raise ValueError(f"r must be an integer in [1, in_channels={in_channels}], got r={r!r}.")
        self.cse = ChannelSELayer(spatial_dims, in_channels, r=int(r), acti_type_1="relu", acti_type_2="sigmoid")
        self.sse = Conv[Conv.CONV, spatial_dims](in_channels, 1, kernel_size=1)  # W_s of eq. 11

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: input of shape (batch, in_channels, spatial_1[, spatial_2, ...]).

        Returns:
            ``U_cse + U_sse``, same shape as ``x``.
        """
        return self.cse(x) + x * torch.sigmoid(self.sse(x))
