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

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import KeepLargestConnectedComponent, SpatialPad

from r2mf_monai.transforms.components import KeepLargeComponents, KeepLargeComponentsd


def column_in_pieces() -> np.ndarray:
    """A (1, 60, 20) column split by a gap (upper piece 60 px, lower 240 px), a speck of 2 px and one of 6 px."""
    mask = np.zeros((1, 60, 20), np.float32)
    mask[0, 2:14, 8:13] = 1  # the upper thoracic spine, cut off behind the mediastinum
    mask[0, 18:58, 7:13] = 1  # the rest of the column
    mask[0, 30, 1:3] = 1  # a speck beside it
    mask[0, 50:52, 16:19] = 1  # a larger speck
    return mask


@pytest.mark.parametrize(
    "min_fraction, kept",
    [
        (0.008, 308),  # everything (the smallest is 2 / 240 of the largest)
        (0.01, 306),  # the 2-px speck goes
        (0.05, 300),  # both specks go, the upper piece (60 / 240) stays
        (0.3, 240),  # the largest only
        (1.0, 240),
    ],
)
def test_keeps_components_by_their_fraction_of_the_largest(min_fraction, kept):
    mask = column_in_pieces()
    out = KeepLargeComponents(min_fraction)(mask)
    assert out.sum() == kept and out.dtype == mask.dtype
    assert set(np.unique(out)) <= {0.0, 1.0} and not (out > mask).any()  # only removes


def test_zero_keeps_everything_and_one_is_monais_largest_component():
    mask = column_in_pieces()
    np.testing.assert_array_equal(KeepLargeComponents(0.0)(mask), mask)
    largest = KeepLargestConnectedComponent(applied_labels=[1])(torch.as_tensor(mask))
    np.testing.assert_array_equal(KeepLargeComponents(1.0)(mask), np.asarray(largest))


def test_corners_connect():
    mask = np.zeros((1, 10, 10), np.float32)
    mask[0, 1:5, 1:5] = 1
    mask[0, 5:8, 5:8] = 1  # touches the first square at a corner only
    np.testing.assert_array_equal(KeepLargeComponents(0.99)(mask), mask)


@pytest.mark.parametrize("kind", ["numpy", "tensor", "metatensor", "bool"])
def test_types_and_metadata_are_kept(kind):
    mask = column_in_pieces()
    img = {
        "numpy": mask,
        "tensor": torch.as_tensor(mask),
        "metatensor": SpatialPad((64, 24))(MetaTensor(torch.as_tensor(mask))),  # an applied operation to keep
        "bool": mask > 0,
    }[kind]
    out = KeepLargeComponents(0.05)(img)
    assert type(out) is type(img) and out.dtype == img.dtype
    assert np.asarray(out).sum() == 300
    if kind == "metatensor":
        assert len(out.applied_operations) == 1 and out.meta == img.meta


def test_each_channel_by_itself_and_empty_channels():
    mask = np.concatenate([column_in_pieces(), np.zeros((1, 60, 20), np.float32)])
    mask[1, 0:3, 0:3] = 1  # alone in its channel: the largest there
    out = KeepLargeComponents(0.3)(mask)
    assert out[0].sum() == 240 and out[1].sum() == 9
    assert KeepLargeComponents()(np.zeros((1, 5, 5), np.float32)).sum() == 0


def test_dictionary_version():
    data = {"pred": column_in_pieces(), "image": np.ones((1, 60, 20), np.float32)}
    out = KeepLargeComponentsd(keys="pred", min_fraction=0.3)(data)
    assert out["pred"].sum() == 240 and out["image"].sum() == 1200


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_bad_fraction(bad):
    with pytest.raises(ValueError, match="min_fraction"):
        KeepLargeComponents(bad)


def test_no_channel_dimension():
    with pytest.raises(ValueError, match="channel-first"):
        KeepLargeComponents()(np.ones(5, np.float32))
