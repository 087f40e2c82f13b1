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
"""The second look at the top of the column: where it looks, what it adds, what it leaves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, ScaleIntensityd, SpatialPadd

from r2mf_monai.inference.column_top import ColumnTopSecondLookd
from r2mf_monai.transforms import AntiAliasedResized

W, H = 40, 100  # MONAI's (W, H) layout: rows are the last axis, row 0 is the film's top
COLUMN = slice(15, 25)


class BrightIsColumn(torch.nn.Module):
    """A network that calls every bright pixel column (logit 20 * (x - 0.5)), and counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return 20.0 * (x - 0.5)


def _preprocessing() -> Compose:
    # the bundle's chain after loading, at a small grid: scaling, aspect-keeping resize, padding to a square
    return Compose(
        [
            ScaleIntensityd(keys="image", minv=0.0, maxv=1.0),
            AntiAliasedResized(keys="image", spatial_size=32, size_mode="longest", mode="bilinear"),
            SpatialPadd(keys="image", spatial_size=(32, 32)),
        ]
    )


def _film(column_rows: slice = slice(0, H), blob: bool = True, column_x: slice = COLUMN) -> MetaTensor:
    film = np.full((1, W, H), 0.1, np.float32)
    film[0, column_x, column_rows] = 1.0
    if blob:  # bright, in the upper part, not touching the column
        film[0, 2:6, 5:12] = 1.0
    return MetaTensor(film, meta={"filename_or_obj": "film.png"})


def _mask(top: int, column_x: slice = COLUMN) -> MetaTensor:
    mask = np.zeros((1, W, H), np.float32)
    mask[0, column_x, top:] = 1.0
    return MetaTensor(mask, meta={"filename_or_obj": "film.png"})


def _rows(mask: torch.Tensor) -> np.ndarray:
    return np.nonzero(np.asarray(mask)[0].any(axis=0))[0]


def test_a_lost_top_is_found_and_only_the_connected_column_is_added() -> None:
    net = BrightIsColumn()
    # the first mask is narrower than the bright column: a second look that also rewrote rows below the old top
    # would widen them
    data = {"pred": _mask(top=40, column_x=slice(17, 23)), "raw": _film()}
    out = ColumnTopSecondLookd("pred", network=net, preprocessing=_preprocessing())(data)
    pred = np.asarray(out["pred"])[0]
    assert net.calls == 1
    assert _rows(out["pred"])[0] <= 2  # the column now starts at the film's top
    assert not pred[:10].any()  # the bright blob beside it was seen by the second look and not added
    assert np.array_equal(pred[:, 40:], np.asarray(data["pred"])[0, :, 40:])  # below the old top: untouched
    assert pred[:, :40].any(axis=1)[COLUMN].all() and not pred[26:, :40].any()  # added where the column is
    assert isinstance(out["pred"], MetaTensor) and out["pred"].meta["filename_or_obj"] == "film.png"
    assert _rows(data["pred"])[0] == 40  # the input dictionary's mask is not changed


@pytest.mark.parametrize(
    "top, min_top_fraction, part",
    [
        (5, 0.1, 0.5),  # the mask starts in the top 10 %: no second look
        (60, 0.1, 0.5),  # the upper half would not reach the mask: nothing found could connect
        (30, 0.4, 0.5),  # a stricter trigger
    ],
)
def test_no_second_look_where_it_cannot_help(top: int, min_top_fraction: float, part: float) -> None:
    net = BrightIsColumn()
    data = {"pred": _mask(top), "raw": _film()}
    out = ColumnTopSecondLookd(
        "pred", network=net, preprocessing=_preprocessing(), min_top_fraction=min_top_fraction, part=part
    )(data)
    assert net.calls == 0
    assert torch.equal(torch.as_tensor(out["pred"]), torch.as_tensor(data["pred"]))


@pytest.mark.parametrize(
    "film",
    [
        _film(column_rows=slice(40, H), blob=False),  # nothing bright above the mask: the top really is there
        _film(column_rows=slice(0, 30), blob=False, column_x=slice(30, 38)),  # a column piece off the mask's top
    ],
)
def test_what_does_not_continue_the_column_is_not_added(film: MetaTensor) -> None:
    net = BrightIsColumn()
    data = {"pred": _mask(top=40), "raw": film}
    out = ColumnTopSecondLookd("pred", network=net, preprocessing=_preprocessing())(data)
    assert net.calls == 1
    assert torch.equal(torch.as_tensor(out["pred"]), torch.as_tensor(data["pred"]))


def test_an_empty_mask_is_left_alone() -> None:
    net = BrightIsColumn()
    data = {"pred": MetaTensor(np.zeros((1, W, H), np.float32)), "raw": _film()}
    out = ColumnTopSecondLookd("pred", network=net, preprocessing=_preprocessing())(data)
    assert net.calls == 0 and not np.asarray(out["pred"]).any()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"min_top_fraction": 0.0}, "min_top_fraction"),
        ({"min_top_fraction": 1.5}, "min_top_fraction"),
        ({"part": 0.0}, "part"),
        ({"threshold": 1.0}, "threshold"),
    ],
)
def test_ill_args(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        ColumnTopSecondLookd("pred", network=BrightIsColumn(), preprocessing=_preprocessing(), **kwargs)
