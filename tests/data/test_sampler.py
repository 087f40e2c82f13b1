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

from collections import Counter

import pytest
import torch
from monai.bundle import ConfigParser
from monai.engines import SupervisedTrainer
from torch.utils.data import DataLoader, DistributedSampler

from r2mf_monai.data.sampler import ViewBalancedSampler

C, L, R = "coronal", "left_bending", "right_bending"


def views_of(counts: tuple[int, int, int]) -> list[str]:
    """Views in a datalist-like, patient-major order: c, l, r, c, l, r, ... then the leftovers."""
    out, pools = [], {C: counts[0], L: counts[1], R: counts[2]}
    while any(pools.values()):
        for v in (C, L, R):
            if pools[v]:
                out.append(v)
                pools[v] -= 1
    return out


@pytest.mark.parametrize("counts", [(4, 4, 4), (6, 3, 4), (5, 5, 2), (1, 0, 3)])
def test_batch_of_one_cycles_views(counts):
    views = views_of(counts)
    order = list(ViewBalancedSampler(views, batch_size=1, seed=3))
    assert sorted(order) == list(range(len(views)))  # every item exactly once: the epoch is as long as the data
    seq = [views[i] for i in order]
    present = [v for v in (C, L, R) if v in views]
    k = min(Counter(views).values())
    # while every view has samples, consecutive samples cycle coronal, left, right
    assert seq[: k * len(present)] == present * k
    # afterwards the remaining views keep taking turns, never two of one view while another still waits
    for i in range(len(seq) - 1):
        if seq[i] == seq[i + 1]:
            assert set(seq[i:]) == {seq[i]}


@pytest.mark.parametrize("counts", [(4, 4, 4), (7, 5, 6)])
def test_batch_of_three_holds_one_of_each_view(counts):
    views = views_of(counts)
    sampler = ViewBalancedSampler(views, batch_size=3, seed=0)
    k = min(counts)
    for batch in sampler.batch_view_counts()[:k]:
        assert batch == {C: 1, L: 1, R: 1}
    loader = DataLoader(list(range(len(views))), batch_size=3, sampler=sampler)
    for batch in list(loader)[:k]:
        assert sorted(views[i] for i in batch.tolist()) == [C, L, R]


@pytest.mark.parametrize("batch_size", [2, 4, 5])
def test_other_batch_sizes_balanced_as_far_as_possible(batch_size):
    views = views_of((10, 10, 10))
    for counts in ViewBalancedSampler(views, batch_size=batch_size).batch_view_counts()[:-1]:
        assert max(counts.values()) - min(counts.values()) <= 1


def test_deterministic_and_set_epoch_reshuffles():
    views = views_of((6, 6, 6))
    a, b = ViewBalancedSampler(views, seed=5), ViewBalancedSampler(views, seed=5)
    assert list(a) == list(b)
    assert list(a) != list(ViewBalancedSampler(views, seed=6))
    first = list(a)
    a.set_epoch(1)
    second = list(a)
    assert second != first and sorted(second) == sorted(first)
    assert [views[i] for i in second] == [views[i] for i in first]  # the view rhythm is the same
    a.set_epoch(0)
    assert list(a) == first


def test_no_shuffle_keeps_order_within_view():
    views = views_of((3, 3, 3))
    order = list(ViewBalancedSampler(views, shuffle=False))
    assert order == [0, 1, 2, 3, 4, 5, 6, 7, 8]


@pytest.mark.parametrize("counts,drop_last", [((6, 6, 6), False), ((7, 5, 6), False), ((7, 5, 6), True)])
def test_two_ranks_disjoint_equal_balanced(counts, drop_last):
    views = views_of(counts)
    samplers = [ViewBalancedSampler(views, num_replicas=2, rank=r, seed=2, drop_last=drop_last) for r in (0, 1)]
    orders = [list(s) for s in samplers]
    assert len(orders[0]) == len(orders[1]) == len(samplers[0])
    expected_len = len(views) // 2 if drop_last else -(-len(views) // 2)
    assert len(orders[0]) == expected_len
    if len(views) % 2 == 0:
        assert not set(orders[0]) & set(orders[1])  # disjoint shards
        assert sorted(orders[0] + orders[1]) == list(range(len(views)))
    else:
        assert len(set(orders[0]) & set(orders[1])) <= (0 if drop_last else 1)  # at most the one padding sample
    per_rank = [Counter(views[i] for i in o) for o in orders]
    for v in (C, L, R):
        assert abs(per_rank[0][v] - per_rank[1][v]) <= 1  # each view split evenly
    for o in orders:  # and each rank cycles its views
        seq = [views[i] for i in o]
        assert seq[:3] == [C, L, R]


def test_without_process_group_defaults_to_one_replica():
    sampler = ViewBalancedSampler(views_of((2, 2, 2)))
    assert isinstance(sampler, DistributedSampler)
    assert sampler.num_replicas == 1 and sampler.rank == 0 and len(sampler) == 6


def test_from_datalist_and_config():
    datalist = [{"image": f"{i}.png", "view": v} for i, v in enumerate(views_of((2, 2, 2)))]
    sampler = ViewBalancedSampler.from_datalist(datalist, batch_size=3, seed=0)
    assert sorted(sampler) == list(range(6)) and sampler.batch_size == 3
    parser = ConfigParser(
        {
            "datalist": datalist,
            "sampler": {
                "_target_": "r2mf_monai.data.sampler.ViewBalancedSampler.from_datalist",
                "datalist": "@datalist",
                "batch_size": 3,
            },
        }
    )
    assert list(parser.get_parsed_content("sampler")) == list(sampler)


def test_monai_workflow_calls_set_epoch():
    views = views_of((2, 2, 2))
    data = [{"image": torch.rand(1, 4, 4), "label": torch.rand(1, 4, 4), "view": v} for v in views]
    sampler = ViewBalancedSampler(views, batch_size=3)
    epochs = []
    original = sampler.set_epoch

    def record(epoch: int) -> None:
        epochs.append(epoch)
        original(epoch)

    sampler.set_epoch = record
    net = torch.nn.Conv2d(1, 1, 1)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=3,
        train_data_loader=DataLoader(data, batch_size=3, sampler=sampler),
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.01),
        loss_function=torch.nn.MSELoss(),
    )
    trainer.run()
    assert epochs == [1, 2, 3]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"views": []}, "empty"),
        ({"views": ["coronal", None]}, "item 1"),
        ({"views": ["coronal"], "batch_size": 0}, "batch_size"),
        ({"views": ["coronal"], "num_replicas": 2, "rank": 2}, "rank"),
    ],
)
def test_ill_arg(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ViewBalancedSampler(**kwargs)


def test_datalist_without_view():
    with pytest.raises(ValueError, match="item 1 'b.png' has no 'view'"):
        ViewBalancedSampler.from_datalist([{"image": "a.png", "view": C}, {"image": "b.png"}])
