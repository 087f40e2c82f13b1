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

"""View-balanced sampling of coronal, left-bending and right-bending radiographs (paper §3.8).

§3.8: "we ensure that each mini-batch contains, as far as possible, one image from each view type. When the number
of samples per view is not divisible by the batch size, we adopt a round-robin sampling scheme that balances the
number of iterations per view over an epoch."
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from r2mf_monai.constants import VIEWS

__all__ = ["ViewBalancedSampler"]


class ViewBalancedSampler(DistributedSampler):
    """Round-robin over views, so every mini-batch holds one image of each view where possible (§3.8).

    The rule, per epoch:

    1. the indices of each view are shuffled (seeded with ``seed + epoch``; kept in order when ``shuffle=False``);
    2. under DDP the shuffled lists are dealt to the ranks card by card (view after view), so the shards are
       disjoint, their sizes differ by at most one, and each rank holds about ``1/num_replicas`` of every view;
    3. each rank lays its samples out round-robin over the views in the order coronal, left_bending,
       right_bending (then any other view names, sorted), skipping a view once it is used up: the epoch is as long
       as the data, the smaller views run out first and the rest keep taking turns;
    4. ranks with one sample fewer repeat one sample of their least represented view (``drop_last=False``, the
       ``DistributedSampler`` convention) or the longer ranks drop their last sample (``drop_last=True``), so every
       rank yields the same number of samples.

    Any ``batch_size`` consecutive samples therefore hold ``batch_size // n_views`` or one more of each view while
    every view still has samples: with batch size 3 and three views each batch is one coronal, one left-bending
    and one right-bending image; with batch size 1 consecutive iterations cycle coronal, left, right, ... The
    order does not depend on ``batch_size``, which is kept to report the per-batch balance
    (:meth:`batch_view_counts`) and to check the DataLoader's batch size against.

    It subclasses ``torch.utils.data.DistributedSampler`` so that MONAI's ``Workflow`` calls :meth:`set_epoch` at
    each epoch (reshuffling deterministically), but needs no process group: when ``num_replicas``/``rank`` are
    ``None`` they come from ``torch.distributed`` if it is initialised, else 1 and 0.

    Args:
        views: the view name of every dataset item, in dataset order (e.g. ``[d["view"] for d in datalist]``).
        batch_size: the DataLoader's batch size. Defaults to ``1`` (the paper's, §4.3).
        shuffle: shuffle within each view every epoch. Defaults to ``True``.
        seed: base seed, the same on every rank. Defaults to ``0``.
        num_replicas: number of DDP ranks; ``None`` to ask ``torch.distributed`` (1 without a process group).
        rank: this rank; ``None`` to ask ``torch.distributed`` (0 without a process group).
        drop_last: trim the longer ranks instead of repeating samples on the shorter ones. Defaults to ``False``.

    Raises:
        ValueError: for an empty ``views``, a ``views`` entry that is not a non-empty string, a ``batch_size``
            below 1, or a ``rank`` outside ``[0, num_replicas)``.
    """

    def __init__(
        self,
        views: Sequence[str],
        batch_size: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
    ) -> None:
        views = list(views)
        if not views:
            raise ValueError("ViewBalancedSampler needs at least one item: views is empty.")
        bad = [(i, v) for i, v in enumerate(views) if not isinstance(v, str) or not v]
        if bad:
            raise ValueError(f"every view must be a non-empty string; item {bad[0][0]} has view {bad[0][1]!r}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if num_replicas is None:
            num_replicas = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if rank is None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        # DistributedSampler validates rank/num_replicas and stores shuffle, seed, drop_last and epoch
        super().__init__(views, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last)
        self.views = views
        self.batch_size = int(batch_size)
        present = set(views)
        # views take turns in the order of VIEWS; other view names follow, sorted
        self.view_names = [v for v in VIEWS if v in present] + sorted(present - set(VIEWS))
        self.groups = {v: [i for i, x in enumerate(views) if x == v] for v in self.view_names}
        n = len(views)
        self.num_samples = n // self.num_replicas if drop_last else math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    @classmethod
    def from_datalist(cls, datalist: Sequence[Mapping[str, Any]], view_key: str = "view", **kwargs) -> Any:
        """Build the sampler from a MONAI datalist (a list of dicts that each hold a view name).

        Args:
            datalist: the items, in dataset order.
            view_key: key of the view name in each item. Defaults to ``"view"``.
            kwargs: the other arguments of :class:`ViewBalancedSampler`.

        Raises:
            ValueError: naming the first item without ``view_key``.
        """
        views = []
        for i, item in enumerate(datalist):
            if not isinstance(item, Mapping) or view_key not in item:
                name = item.get("image", "") if isinstance(item, Mapping) else ""
                raise ValueError(f"datalist item {i} {name!r} has no {view_key!r} key; the sampler needs the view.")
            views.append(item[view_key])
        return cls(views, **kwargs)

    def _shuffled_groups(self) -> dict[str, list[int]]:
        if not self.shuffle:
            return {v: list(g) for v, g in self.groups.items()}
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        return {v: [grp[j] for j in torch.randperm(len(grp), generator=g).tolist()] for v, grp in self.groups.items()}

    def _round_robin(self, groups: dict[str, list[int]]) -> list[int]:
        queues = [list(groups[v]) for v in self.view_names if groups.get(v)]
        order, pos = [], [0] * len(queues)
        while True:
            progressed = False
            for q, queue in enumerate(queues):
                if pos[q] < len(queue):
                    order.append(queue[pos[q]])
                    pos[q] += 1
                    progressed = True
            if not progressed:
                return order

    def rank_indices(self, rank: int | None = None) -> list[int]:
        """The indices ``rank`` (default: this rank) yields this epoch, in order.

        Args:
            rank: a rank in ``[0, num_replicas)``.
        """
        rank = self.rank if rank is None else rank
        groups = self._shuffled_groups()
        stream = [(v, i) for v in self.view_names for i in groups[v]]  # dealt card by card to the ranks
        mine: dict[str, list[int]] = {v: [] for v in self.view_names}
        for k, (v, i) in enumerate(stream):
            if k % self.num_replicas == rank:
                mine[v].append(i)
        order = self._round_robin(mine)
        if len(order) > self.num_samples:
            order = order[: self.num_samples]
        while len(order) < self.num_samples:
            # repeat a sample of the view this rank has fewest of (first of that view's shuffled list)
            counts = {v: len(mine[v]) for v in self.view_names}
            view = min(self.view_names, key=lambda x: (counts[x], self.view_names.index(x)))
            order.append(groups[view][0])
            mine[view].append(groups[view][0])
        return order

    def __iter__(self) -> Iterator[int]:
        return iter(self.rank_indices())

    def __len__(self) -> int:
        return self.num_samples

    def batch_view_counts(self, rank: int | None = None) -> list[dict[str, int]]:
        """Views per mini-batch of ``batch_size`` consecutive samples of ``rank`` this epoch (for logs and tests).

        Args:
            rank: a rank in ``[0, num_replicas)``; defaults to this rank.
        """
        order = self.rank_indices(rank)
        out = []
        for start in range(0, len(order), self.batch_size):
            counts = dict.fromkeys(self.view_names, 0)
            for i in order[start : start + self.batch_size]:
                counts[self.views[i]] += 1
            out.append(counts)
        return out
