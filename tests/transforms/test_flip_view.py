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

from r2mf_monai.transforms.flip_view import RandFlipViewd, mirror_view
from r2mf_monai.transforms.load import LoadRadiographd
from tests.transforms.radiograph_files import make_pixels, write_png

PIXELS = make_pixels(rows=12, cols=9)


def sample(tmp_path, view):
    write_png(tmp_path / "i.png", PIXELS)
    write_png(tmp_path / "m.png", ((PIXELS > 2000) * 255).astype(np.uint8))
    data = LoadRadiographd(keys=["image", "label"])(
        {"image": str(tmp_path / "i.png"), "label": str(tmp_path / "m.png")}
    )
    data["view"] = view
    return data


@pytest.mark.parametrize(
    "view,flipped_view",
    [("left_bending", "right_bending"), ("right_bending", "left_bending"), ("coronal", "coronal")],
)
def test_flip_swaps_views_and_mirrors_horizontally(tmp_path, view, flipped_view):
    out = RandFlipViewd(keys=["image", "label"], prob=1.0)(sample(tmp_path, view))
    assert out["view"] == flipped_view
    # the picture mirrored left-right: column x of the output is column W-1-x of the file, rows unchanged
    np.testing.assert_array_equal(out["image"][0].numpy(), PIXELS[:, ::-1].T.astype(np.float32))
    np.testing.assert_array_equal(out["label"][0].numpy(), ((PIXELS[:, ::-1] > 2000) * 255).T.astype(np.float32))


def test_no_flip_keeps_everything(tmp_path):
    data = sample(tmp_path, "left_bending")
    out = RandFlipViewd(keys=["image", "label"], prob=0.0)(data)
    assert out["view"] == "left_bending"
    np.testing.assert_array_equal(out["image"][0].numpy(), PIXELS.T.astype(np.float32))


@pytest.mark.parametrize("prob", [0.0, 1.0])
def test_inverse_restores_image_and_view(tmp_path, prob):
    data = sample(tmp_path, "right_bending")
    flip = RandFlipViewd(keys=["image", "label"], prob=prob)
    back = flip.inverse(flip(data))
    assert back["view"] == "right_bending"
    np.testing.assert_array_equal(back["image"].numpy(), data["image"].numpy())
    assert len(back["image"].applied_operations) == 0


def test_half_the_samples_flip_with_seed(tmp_path):
    data = sample(tmp_path, "left_bending")
    flip = RandFlipViewd(keys=["image", "label"]).set_random_state(seed=0)
    views = [flip(data)["view"] for _ in range(200)]
    assert 70 < views.count("right_bending") < 130
    again = RandFlipViewd(keys=["image", "label"]).set_random_state(seed=0)
    assert views == [again(data)["view"] for _ in range(200)]


@pytest.mark.parametrize("view_key,data_view", [(None, "left_bending"), ("view", None)])
def test_without_view(view_key, data_view):
    data = {"image": torch.arange(6.0).reshape(1, 3, 2)}
    if data_view is not None:
        data["view"] = data_view
    out = RandFlipViewd(keys="image", prob=1.0, view_key=view_key)(data)
    assert out.get("view") == data_view
    np.testing.assert_array_equal(out["image"].numpy(), np.flip(data["image"].numpy(), axis=1))


def test_mirror_view_unknown_values():
    assert mirror_view("lateral") == "lateral" and mirror_view(None) is None
