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
from monai.transforms import SpatialPad
from scipy import ndimage

from r2mf_monai.transforms.closing import BinaryClosing, BinaryClosingd


def two_bars_with_gap(gap: int) -> np.ndarray:
    mask = np.zeros((1, 20, 16), np.float32)
    mask[0, 4:16, 3:7] = 1
    mask[0, 4:16, 7 + gap : 12 + gap] = 1
    return mask


@pytest.mark.parametrize("kind", ["numpy", "tensor", "metatensor"])
def test_fills_one_pixel_gap(kind):
    mask = two_bars_with_gap(1)
    img = {"numpy": mask, "tensor": torch.as_tensor(mask), "metatensor": MetaTensor(torch.as_tensor(mask))}[kind]
    out = BinaryClosing()(img)
    assert type(out) is type(img)
    closed = np.asarray(out)
    assert closed[0, 4:16, 7].all()  # the gap column is filled
    assert closed.sum() == mask.sum() + 12  # and nothing else changed


def test_two_pixel_gap_filled_three_pixel_gap_stays_open():
    closed = BinaryClosing()(two_bars_with_gap(2))
    assert closed[0, 4:16, 7:9].all() and closed.sum() == two_bars_with_gap(2).sum() + 24
    mask = two_bars_with_gap(3)
    np.testing.assert_array_equal(BinaryClosing()(mask), mask)


def test_keeps_the_border():
    mask = np.zeros((1, 12, 10), np.float32)
    mask[0, :, :4] = 1  # touches three borders
    mask[0, 0, 7:] = 1  # a one-pixel line along the top border
    out = BinaryClosing()(mask)
    np.testing.assert_array_equal(out, mask)
    # what the edge padding avoids: scipy's closing alone erodes the border
    assert ndimage.binary_closing(mask[0] > 0, np.ones((3, 3))).sum() < mask.sum()


def test_keeps_metadata_and_applied_operations():
    img = MetaTensor(torch.as_tensor(two_bars_with_gap(1)), meta={"filename_or_obj": "x.png"})
    img = SpatialPad(spatial_size=(24, 20))(img)
    out = BinaryClosing()(img)
    assert out.meta["filename_or_obj"] == "x.png"
    assert [op["class"] for op in out.applied_operations] == ["SpatialPad"]
    assert out.dtype == img.dtype


def test_three_d_and_per_dimension_kernel():
    vol = np.zeros((1, 9, 9, 9), np.uint8)
    vol[0, 2:7, 2:7, 2:4] = 1
    vol[0, 2:7, 2:7, 5:7] = 1
    out = BinaryClosing(kernel_size=(1, 1, 3))(vol)
    assert out.dtype == np.uint8 and out[0, 2:7, 2:7, 4].all()


def test_dictionary_version():
    data = {"pred": torch.as_tensor(two_bars_with_gap(1)), "other": 1}
    out = BinaryClosingd(keys="pred")(data)
    assert out["pred"][0, 4:16, 7].all() and out["other"] == 1


@pytest.mark.parametrize("kernel_size", [2, 0, -1, (3, 4), 2.5])
def test_ill_arg(kernel_size):
    with pytest.raises(ValueError, match="kernel_size"):
        BinaryClosing(kernel_size=kernel_size)


def test_wrong_dims():
    with pytest.raises(ValueError, match="spatial"):
        BinaryClosing(kernel_size=(3, 3, 3))(np.zeros((1, 5, 5)))
    with pytest.raises(ValueError, match="channel-first"):
        BinaryClosing()(np.zeros(5))
