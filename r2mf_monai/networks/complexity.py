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

"""Parameters and FLOPs of a network's forward pass (paper Table 4, §4.9): the one FLOP counter of the project.

FLOPs come from :py:class:`torch.utils.flop_counter.FlopCounterMode`, which counts convolutions (transposed ones
included) and matrix products and counts one multiply-add as 2 FLOPs; normalisation, activations, pooling,
interpolation and element-wise sums are not counted (they are a few percent). The pass runs on PyTorch's ``meta``
device where the network allows it (no memory is allocated and no arithmetic is done, so a full-width R2MF-Net at
512x512 takes well under a second), else on the CPU. The tables built on it live in :mod:`r2mf_monai.experiments`.
"""

from __future__ import annotations

import copy
import logging

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from r2mf_monai.utils import ensure_int

__all__ = ["count_complexity"]

logger = logging.getLogger(__name__)


def count_complexity(network: nn.Module, image_size: int, in_channels: int = 1, batch_size: int = 1) -> dict[str, int]:
    """Trainable parameters and FLOPs of one eval-mode forward pass of a (batch, C, S, S) input.

    Args:
        network: the network (left unchanged: a copy runs the pass).
        image_size: side ``S`` of the square input.
        in_channels: channels ``C`` of the input. Defaults to ``1``.
        batch_size: batch size of the input. Defaults to ``1``.

    Returns:
        ``{"parameters": trainable parameter count, "flops": FLOPs (2 per multiply-add), "macs": flops // 2}``;
        flops and macs are ``-1`` when the pass fails on both devices for another reason than a bad size.

    Raises:
        ValueError: when a size or count is not a positive integer, or the network rejects the input's size.
    """
    image_size = ensure_int("image_size", image_size)
    in_channels = ensure_int("in_channels", in_channels)
    batch_size = ensure_int("batch_size", batch_size)
    params = sum(p.numel() for p in network.parameters() if p.requires_grad)
    for device in ("meta", "cpu"):
        try:
            net = copy.deepcopy(network).to(device).eval()
            x = torch.zeros(batch_size, in_channels, image_size, image_size, device=device)
            counter = FlopCounterMode(display=False)
            with counter, torch.no_grad():
                net(x)
        except Exception as e:  # some networks cannot run on the meta device; count on the CPU then
            if device == "cpu" and isinstance(e, ValueError):  # the network's own check of the input's size
                raise ValueError(f"image_size={image_size}: {e}") from e
            logger.debug("FLOP count on %s failed: %s", device, e)
            continue
        flops = int(counter.get_total_flops())
        return {"parameters": params, "flops": flops, "macs": flops // 2}
    return {"parameters": params, "flops": -1, "macs": -1}
