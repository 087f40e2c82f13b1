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

from r2mf_monai.transforms import RandColumnShadowd


def striped_column(width: int = 120, height: int = 300):
    """A (1, W, H) image with a striped 'column' (vertebrae and discs) on a dark background, and its mask."""
    image = np.full((1, width, height), 0.1, np.float32)
    label = np.zeros((1, width, height), np.float32)
    label[0, 50:70, 20:280] = 1.0
    stripes = (np.arange(height) // 10) % 2 == 0
    image[0, 50:70, :] = np.where(stripes, 0.9, 0.5)[None, :]
    image[0, 50:70, :20] = image[0, 50:70, 280:] = 0.1
    return {"image": torch.as_tensor(image), "label": torch.as_tensor(label)}


def stripe_contrast(img: np.ndarray, rows: slice) -> float:
    return float(np.ptp(img[0, 55:65, rows].mean(axis=0)))


@pytest.mark.parametrize("seed", range(5))
def test_thoracic_shadow_hides_the_top_and_spares_the_bottom(seed):
    data = striped_column()
    t = RandColumnShadowd(keys="image", prob=1.0, thoracic_prob=1.0, span=(0.3, 0.3), strength=(0.9, 0.9))
    t.set_random_state(seed)
    out = t(data)["image"].numpy()
    before = data["image"].numpy()
    assert out.shape == before.shape
    assert stripe_contrast(out, slice(25, 60)) < 0.5 * stripe_contrast(before, slice(25, 60))
    np.testing.assert_allclose(out[0, :, 220:], before[0, :, 220:], atol=1e-3)  # far below the stretch: untouched
    np.testing.assert_array_equal(t(data)["label"].numpy(), data["label"].numpy())  # the mask never moves


def test_prob_zero_and_empty_label_pass_unchanged():
    data = striped_column()
    assert torch.equal(RandColumnShadowd(keys="image", prob=0.0)(data)["image"], data["image"])
    data["label"].zero_()
    assert torch.equal(RandColumnShadowd(keys="image", prob=1.0)(data)["image"], data["image"])


@pytest.mark.parametrize("kwargs", [{"prob": 2.0}, {"thoracic_prob": -1.0}, {"span": (0.7, 0.3)}, {"strength": (0.5,)}])
def test_ill_arg(kwargs):
    with pytest.raises(ValueError):
        RandColumnShadowd(keys="image", **kwargs)
