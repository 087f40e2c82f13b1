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

from r2mf_monai.transforms import RandSpineFramingd


def column_case(width: int = 300, height: int = 600, x0: int = 130, x1: int = 170, y0: int = 80, y1: int = 520):
    """A (1, W, H) image whose pixel values encode their position, and a rectangular 'column' label."""
    image = torch.arange(width * height, dtype=torch.float32).reshape(1, width, height)
    label = torch.zeros(1, width, height)
    label[0, x0:x1, y0:y1] = 1.0
    return {"image": image, "label": label}


@pytest.mark.parametrize("seed", range(8))
def test_crop_keeps_image_and_label_aligned_and_frames_the_column(seed):
    data = column_case()
    t = RandSpineFramingd(keys=["image", "label"], prob=1.0, top_margin=(0.0, 0.1), bottom_margin=(0.0, 0.1))
    t.set_random_state(seed)
    out = t(data)
    img, lbl = out["image"], out["label"]
    assert img.shape == lbl.shape
    assert img.shape[1] < 300  # narrower than the torso-wide input
    # the crop is one rectangle of the input: its first pixel tells where, the label must match that place
    start = int(img[0, 0, 0].item())
    x0, y0 = divmod(start, 600)
    np.testing.assert_array_equal(lbl.numpy(), data["label"][:, x0 : x0 + img.shape[1], y0 : y0 + img.shape[2]].numpy())
    # non-negative margins and the side margin keep the whole column inside the box
    assert lbl.sum() == data["label"].sum()
    assert img.shape[1] >= 40 + 2 * int(0.04 * 440)


@pytest.mark.parametrize("ratio", [(0.3, 0.3), (0.5, 0.5)])
def test_width_follows_ratio(ratio):
    data = column_case(width=1000)
    t = RandSpineFramingd(
        keys=["image", "label"], prob=1.0, width_ratio=ratio, top_margin=0.0, bottom_margin=0.0, offset=0.0
    )
    out = t(data)
    assert out["image"].shape[2] == 440
    assert abs(out["image"].shape[1] - ratio[0] * 440) <= 2


def test_negative_margin_cuts_the_column_short():
    data = column_case()
    t = RandSpineFramingd(keys=["image", "label"], prob=1.0, top_margin=-0.1, bottom_margin=-0.1)
    out = t(data)
    assert out["image"].shape[2] == pytest.approx(0.8 * 440, abs=2)


def test_prob_zero_and_empty_label_pass_unchanged():
    data = column_case()
    assert RandSpineFramingd(keys=["image", "label"], prob=0.0)(data)["image"].shape == (1, 300, 600)
    data["label"].zero_()
    assert RandSpineFramingd(keys=["image", "label"], prob=1.0)(data)["image"].shape == (1, 300, 600)


@pytest.mark.parametrize("kwargs", [{"prob": 1.5}, {"width_ratio": (0.6, 0.2)}, {"top_margin": (0.2, -0.1)}])
def test_ill_arg(kwargs):
    with pytest.raises(ValueError):
        RandSpineFramingd(keys=["image", "label"], **kwargs)
