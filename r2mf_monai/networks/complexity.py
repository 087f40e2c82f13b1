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

"""Parameters and FLOPs of R2MF-Net and of its ablation variants (paper Table 2 and Table 4, §4.6 and §4.9).

Everything is measured on PyTorch's ``meta`` device: no memory is allocated and no arithmetic is done, so the table
for 512x512 inputs takes well under a second. FLOPs come from :py:class:`torch.utils.flop_counter.FlopCounterMode`,
which counts convolutions (transposed ones included) and matrix products and counts one multiply-add as 2 FLOPs;
normalisation, activations, pooling, interpolation and element-wise sums are not counted (they are a few percent).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from r2mf_monai.networks.nets.r2mfnet import R2MFNet

__all__ = ["ABLATION_VARIANTS", "PAPER_TABLE4", "complexity_table", "measure_complexity"]

logger = logging.getLogger(__name__)

ABLATION_VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Baseline 2-stage U-Net", {"use_r2jump": False, "use_inception": False, "use_mcskip": False, "use_scse": False}),
    ("+ R2-Jump", {"use_r2jump": True, "use_inception": False, "use_mcskip": False, "use_scse": False}),
    ("+ Inception-R", {"use_r2jump": True, "use_inception": True, "use_mcskip": False, "use_scse": False}),
    ("+ MC-Skip", {"use_r2jump": True, "use_inception": True, "use_mcskip": True, "use_scse": False}),
    (
        "+ SCSE-Lite (= R2MF-Net, full)",
        {"use_r2jump": True, "use_inception": True, "use_mcskip": True, "use_scse": True},
    ),
)
"""The cumulative rows of the paper's Table 2 as ``R2MFNet`` keyword arguments (all other arguments default)."""

PAPER_TABLE4 = {"parameters": 16.5e6, "flops": 59.1e9, "image_size": 512}
"""R2MF-Net's row of the paper's Table 4: 16.5 M parameters, 59.1 GFLOPs at 512x512."""


def measure_complexity(image_size: int = 512, batch_size: int = 1, **net_kwargs: Any) -> dict[str, int]:
    """Parameter count and FLOPs of one eval-mode forward pass of an ``R2MFNet``.

    Args:
        image_size: side of the square input, a positive multiple of ``2 ** len(channels)``. Defaults to ``512``.
        batch_size: batch size of the input. Defaults to ``1``.
        net_kwargs: keyword arguments of :py:class:`R2MFNet` (``spatial_dims`` 2 and one input channel unless given).

    Returns:
        ``{"parameters": trainable parameter count, "flops": FLOPs (2 per multiply-add), "macs": flops // 2}``.

    Raises:
        ValueError: when ``image_size`` or ``batch_size`` is not a positive integer, or the network rejects it.
    """
    if not isinstance(image_size, int) or image_size <= 0:
        raise ValueError(f"image_size must be a positive integer, got image_size={image_size!r}.")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got batch_size={batch_size!r}.")
    with torch.device("meta"):
        net = R2MFNet(**net_kwargs).eval()
        x = torch.empty(batch_size, net.in_channels, *([image_size] * net.spatial_dims))
    if image_size % net.size_multiple:
        raise ValueError(f"image_size must be a multiple of {net.size_multiple}, got image_size={image_size}.")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(x)
    flops = int(counter.get_total_flops())
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    return {"parameters": params, "flops": flops, "macs": flops // 2}


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def complexity_table(image_size: int = 512, output: str | os.PathLike | None = None) -> str:
    """Markdown table of parameters and FLOPs at 1x1xNxN for every ablation variant of Table 2, vs Table 4.

    Args:
        image_size: side ``N`` of the square single-channel input, a positive multiple of 16. Defaults to ``512``.
        output: optional path of a Markdown file to write the table to (written to a temporary name, then renamed).

    Returns:
        the table and its notes, as Markdown text.

    Raises:
        ValueError: when ``image_size`` is not a positive multiple of 16.
    """
    if not isinstance(image_size, int) or image_size <= 0 or image_size % 16:
        raise ValueError(f"image_size must be a positive multiple of 16, got image_size={image_size!r}.")
    lines = [
        f"| Variant (paper Table 2) | Parameters (M) | GFLOPs at 1x1x{image_size}x{image_size} | GMACs |",
        "|---|---:|---:|---:|",
    ]
    for name, kwargs in ABLATION_VARIANTS:
        m = measure_complexity(image_size, **kwargs)
        lines.append(f"| {name} | {m['parameters'] / 1e6:.2f} | {m['flops'] / 1e9:.1f} | {m['macs'] / 1e9:.1f} |")
    paper_flops = PAPER_TABLE4["flops"] * (image_size / PAPER_TABLE4["image_size"]) ** 2
    scaled = "" if image_size == PAPER_TABLE4["image_size"] else " (scaled from 512x512 by pixel count)"
    lines.append(
        f"| Paper, Table 4 (R2MF-Net) | {PAPER_TABLE4['parameters'] / 1e6:.1f} | {paper_flops / 1e9:.1f}{scaled} | |"
    )
    lines += [
        "",
        "Measured with `torch.utils.flop_counter.FlopCounterMode` on one eval-mode forward pass (the coarse network",
        "runs too: the fine one needs its output). FLOPs count one multiply-add as 2 (GFLOPs = 2 x GMACs); only",
        "convolutions and matrix products are counted, not normalisation, activations, pooling or interpolation.",
        "Parameters are trainable parameters. All variants use the default widths (32, 64, 128, 256), bottleneck 256,",
        "R2-Jump steps (4, 3, 2, 1).",
    ]
    text = "\n".join(lines) + "\n"
    if output is not None:
        path = Path(output)
        _write_atomic(path, text)
        logger.info("complexity table written to %s", path)
    return text
