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

"""The multi-scale cross-stage skip connection (MC-Skip) of R2MF-Net (paper §3.5, eqs. 6-7)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.blocks import Convolution

from r2mf_monai.utils import ensure_int, ensure_option, ensure_spatial_dims

__all__ = ["MultiScaleCrossStageSkip"]

_LINEAR_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


class MultiScaleCrossStageSkip(nn.Module):
    """Adds a sum of resized, channel-matched coarse-decoder features to one fine-encoder feature.

    R2MF-Net paper §3.5: for fine-encoder level ``i``,

    - eq. 6: ``G_i = sum_k psi_k(Resize(D_k^c))`` over the coarse-decoder levels ``k = i .. i+2`` (fewer at the
      deepest levels: the caller passes the features that exist), where ``psi_k`` is a 3x3 conv-norm layer that
      maps ``D_k^c``'s channels to the fine level's channels;
    - eq. 7: ``E_i^f = phi_i(E_{i-1}^f) + G_i``; this module receives ``phi_i(E_{i-1}^f)`` (the output of the fine
      encoder's block at level ``i``) and returns the sum.

    By default ``psi_k`` runs at the resolution of ``D_k^c`` and its output is then up-sampled
    (``resize_first=False``): for a 3x3 convolution and an up-sampling this swaps the order of two linear maps of
    the same capacity and saves most of the cost (a 128-channel feature convolved at a quarter of the resolution
    instead of at full resolution). ``resize_first=True`` follows eq. 6 to the letter.

    Args:
        spatial_dims: number of spatial dimensions, 1, 2 or 3.
        coarse_channels: channels of the coarse-decoder features this level receives, shallowest first (the
            ``D_i^c, D_{i+1}^c, ...`` of eq. 6).
        out_channels: channels of the fine-encoder feature ``E_i^f``.
        interp_mode: ``"linear"`` (bilinear in 2-D, trilinear in 3-D) or ``"nearest"``. Defaults to ``"linear"``.
        resize_first: resize before ``psi_k`` (eq. 6 literally) instead of after. Defaults to ``False``.
        norm: feature normalisation type and arguments after each ``psi_k``. Defaults to ``("batch", {})`` (§3.7).

    Raises:
        ValueError: when ``coarse_channels`` is empty or holds a non-positive number, ``out_channels`` is not
            positive, or ``interp_mode`` is unknown.
    """

    def __init__(
        self,
        spatial_dims: int,
        coarse_channels: Sequence[int],
        out_channels: int,
        interp_mode: str = "linear",
        resize_first: bool = False,
        norm: tuple | str | None = ("batch", {}),
    ) -> None:
        super().__init__()
        spatial_dims = ensure_spatial_dims(spatial_dims)
        if len(coarse_channels) == 0:
            raise ValueError(f"coarse_channels must be positive integers, got coarse_channels={coarse_channels!r}.")
        coarse_channels = [ensure_int("coarse_channels", c) for c in coarse_channels]
        out_channels = ensure_int("out_channels", out_channels)
        interp_mode = ensure_option("interp_mode", interp_mode, ("linear", "nearest"))
        self.mode = _LINEAR_MODES[spatial_dims] if interp_mode == "linear" else "nearest"
        self.align_corners = False if interp_mode == "linear" else None
        self.resize_first = bool(resize_first)
        self.num_inputs = len(coarse_channels)
        self.psi = nn.ModuleList(
            Convolution(spatial_dims, int(c), int(out_channels), kernel_size=3, act=None, norm=norm, bias=norm is None)
            for c in coarse_channels
        )

    def _resize(self, x: torch.Tensor, size: list[int]) -> torch.Tensor:
        if x.shape[2:] == size:
            return x
        return F.interpolate(x, size=size, mode=self.mode, align_corners=self.align_corners)

    def forward(self, fine: torch.Tensor, coarse: list[torch.Tensor]) -> torch.Tensor:
        """
        Args:
            fine: the fine-encoder feature ``phi_i(E_{i-1}^f)``, shape (batch, out_channels, *spatial).
            coarse: the coarse-decoder features ``D_i^c, D_{i+1}^c, ...`` in the order of ``coarse_channels``, each
                at the same or a coarser resolution.

        Returns:
            ``E_i^f`` of eq. 7, same shape as ``fine``.
        """
        if len(coarse) != self.num_inputs:
            raise ValueError(f"expected {self.num_inputs} coarse-decoder features, got {len(coarse)}.")
        size = fine.shape[2:]
        out = fine
        for k, psi in enumerate(self.psi):
            if self.resize_first:
                g = psi(self._resize(coarse[k], size))
            else:
                g = self._resize(psi(coarse[k]), size)
            out = out + g
        return out
