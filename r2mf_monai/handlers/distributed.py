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

"""What the evaluation handlers need under ``torch.distributed`` (``configs/multi_gpu_evaluate.json``): every rank's
records, in the order one process would have seen them, and which rank writes the files."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import torch.distributed as dist

__all__ = ["gather_in_sampler_order", "is_writer"]

T = TypeVar("T")


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_writer() -> bool:
    """Whether this process writes the shared outputs: rank 0, or the only process."""
    return _world_size() == 1 or dist.get_rank() == 0


def gather_in_sampler_order(items: Sequence[T]) -> list[T]:
    """Every rank's ``items`` (one per data item, in the order the rank saw them) as one list in data-set order.

    MONAI's ``DistributedSampler`` without shuffling deals the data set out round-robin (rank ``r`` gets items
    ``r, r + W, r + 2W, ...`` of ``W`` ranks), so interleaving the ranks' lists restores the order a single process
    sees. Without an initialised process group this is ``list(items)``. Every rank must call it (a collective).
    """
    world = _world_size()
    if world == 1:
        return list(items)
    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, list(items))
    return [part[k] for k in range(max(len(p) for p in parts)) for part in parts if k < len(part)]
