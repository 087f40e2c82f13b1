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

from r2mf_monai.transforms import CLAHEd, RandCLAHEd


def low_contrast_image() -> np.ndarray:
    """A (1, 64, 128) gradient squeezed into [0.4, 0.5] with a faint square: CLAHE must spread it out."""
    x = np.linspace(0.4, 0.5, 128, dtype=np.float32)[None, None, :].repeat(64, axis=1)
    x[0, 20:40, 50:80] += 0.02
    return x


@pytest.mark.parametrize("wrap", [np.asarray, torch.as_tensor, MetaTensor])
@pytest.mark.parametrize("transform", [RandCLAHEd(keys="image", prob=1.0), CLAHEd(keys="image")])
def test_equalises_contrast_and_keeps_type_and_range(wrap, transform):
    img = wrap(low_contrast_image())
    out = transform({"image": img})["image"]
    assert type(out) is type(img)
    arr = np.asarray(out)
    assert arr.shape == (1, 64, 128)
    assert arr.min() >= 0.0 and arr.max() <= 1.0
    assert np.ptp(arr) > 3 * np.ptp(low_contrast_image())
    np.testing.assert_array_equal(np.asarray(img), low_contrast_image())  # the input is left alone


def test_prob_zero_is_identity():
    img = low_contrast_image()
    out = RandCLAHEd(keys="image", prob=0.0)({"image": img})["image"]
    np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize("kwargs", [{"prob": -0.1}, {"clip_limit": (0.05, 0.01)}, {"tiles": (0, 4)}])
def test_ill_arg(kwargs):
    with pytest.raises(ValueError):
        RandCLAHEd(keys="image", **kwargs)


def test_fixed_clahe_is_deterministic_and_follows_its_settings():
    img = low_contrast_image()
    a = CLAHEd(keys="image", clip_limit=0.015, tiles=8)({"image": img})["image"]
    np.testing.assert_array_equal(a, CLAHEd(keys="image", clip_limit=0.015, tiles=8)({"image": img})["image"])
    stronger = CLAHEd(keys="image", clip_limit=0.05, tiles=8)({"image": img})["image"]
    assert np.ptp(stronger[0, 20:40, 50:80]) != pytest.approx(np.ptp(a[0, 20:40, 50:80]))


def test_fixed_clahe_without_a_clip_limit_passes_the_image():
    # weights trained without CLAHE: their model.json has clahe_clip_limit null and the configs pass None
    img = torch.as_tensor(low_contrast_image())
    assert CLAHEd(keys="image", clip_limit=None)({"image": img})["image"] is img


@pytest.mark.parametrize("kwargs", [{"clip_limit": 0.0}, {"clip_limit": 1.5}, {"tiles": 0}])
def test_fixed_clahe_ill_arg(kwargs):
    with pytest.raises(ValueError, match="clip_limit must be in"):
        CLAHEd(keys="image", **kwargs)
