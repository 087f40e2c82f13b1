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


"""Tests of r2mf_monai.outputs.overlay."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from r2mf_monai.outputs.overlay import (
    COMPARISON_COLORS,
    DEFAULT_COLOR,
    comparison_overlay,
    overlay_mask,
    save_comparison_overlay,
    save_mask_png,
    save_overlay,
    window_percentile,
)


def _radiograph(height: int, width: int, low: float, high: float, dtype=np.float32) -> np.ndarray:
    ramp = np.linspace(low, high, height * width).reshape(height, width)
    return ramp.astype(dtype)


def _rect_mask(height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    mask[height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = True
    return mask


WINDOW_CASES = [
    (np.uint8, 0, 255),
    (np.uint16, 0, 4095),  # 12-bit DICOM
    (np.float32, -3.5, 2.0),  # already normalised
    (np.int16, -1024, 3000),
]


@pytest.mark.parametrize("dtype, low, high", WINDOW_CASES)
def test_window_percentile_range(dtype, low, high):
    img = _radiograph(40, 30, low, high, dtype)
    out = window_percentile(img)
    assert out.dtype == np.uint8 and out.shape == img.shape
    p1, p99 = np.percentile(img.astype(np.float64), (1, 99))
    assert (out[img <= p1] == 0).all()
    assert (out[img >= p99] == 255).all()
    assert np.all(np.diff(out.ravel().astype(int)) >= 0)  # monotone on a monotone ramp


@pytest.mark.parametrize("shape", [(2500, 1200), (1500, 1500)])
def test_window_percentile_of_a_large_film_matches_the_exact_window(shape):
    # a film of more than WINDOW_SAMPLE pixels is windowed from a sample: the grey levels stay within one of the
    # exact window's
    from r2mf_monai.outputs.overlay import WINDOW_SAMPLE

    rng = np.random.default_rng(0)
    rows = np.linspace(0, 1, shape[0])[:, None]
    img = (3000 * rows * np.linspace(0.6, 1, shape[1])[None, :] + rng.normal(0, 200, shape)).astype(np.float32)
    img[:50] = 4095  # burnt-in text and collimation: the kind of tail the 99th percentile must see
    assert img.size > WINDOW_SAMPLE
    lo, hi = np.percentile(img, (1, 99))
    exact = (np.clip((img - lo) / (hi - lo), 0, 1) * 255 + 0.5).astype(np.uint8)
    assert np.abs(window_percentile(img).astype(int) - exact).max() <= 1


def test_window_percentile_of_non_finite_pixels():
    # NaN (a pixel with no value) is black; infinities are clipped to the window's ends
    img = _radiograph(40, 30, 0, 1000)
    img[0, 0], img[0, 1], img[0, 2] = np.nan, np.inf, -np.inf
    out = window_percentile(img)
    assert out[0, 0] == 0 and out[0, 1] == 255 and out[0, 2] == 0
    finite = np.isfinite(img)
    lo, hi = np.percentile(img[finite], (1, 99))
    exact = (np.clip((img[finite] - lo) / (hi - lo), 0, 1) * 255 + 0.5).astype(np.uint8)
    assert np.abs(out[finite].astype(int) - exact).max() <= 1
    assert (window_percentile(np.full((4, 4), np.nan)) == 0).all()


def test_overlay_of_a_tall_film_is_its_downsampled_picture_windowed():
    # the overlay windows the down-sampled picture (not the film at full size): grey levels as the film's window
    # of the same picture, within a few levels (area averaging narrows the tails)
    rng = np.random.default_rng(1)
    img = (np.linspace(0, 3000, 3000)[:, None] + rng.normal(0, 100, (3000, 800))).astype(np.float32)
    mask = np.zeros(img.shape, bool)
    rgb = overlay_mask(img, mask)
    assert rgb.shape == (1500, 400, 3)
    full = window_percentile(img).astype(np.float32)
    expected = full.reshape(1500, 2, 400, 2).mean(axis=(1, 3))
    assert np.abs(rgb[..., 0].astype(np.float32) - expected).mean() < 3
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])  # no mask: grey only


def test_window_percentile_constant_and_bad_args():
    assert (window_percentile(np.full((5, 6), 7.0)) == 0).all()
    with pytest.raises(ValueError, match="percentiles"):
        window_percentile(np.zeros((4, 4)), 50, 10)
    with pytest.raises(ValueError, match="2-D"):
        window_percentile(np.zeros((2, 4, 4, 4)))


@pytest.mark.parametrize("shape", [(60, 40), (40, 70)])
def test_overlay_colours(shape):
    img = _radiograph(*shape, 0, 1000)
    mask = _rect_mask(*shape)
    rgb = overlay_mask(img, mask, outline_width=1)
    assert rgb.shape == (*shape, 3) and rgb.dtype == np.uint8
    grey = window_percentile(img)
    outside = ~mask
    for c in range(3):  # outside: untouched grey
        np.testing.assert_array_equal(rgb[..., c][outside], grey[outside])
    edge = mask & ~np.pad(mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:], 1)
    np.testing.assert_array_equal(rgb[edge], np.broadcast_to(DEFAULT_COLOR, (edge.sum(), 3)))  # crisp outline
    interior = mask & ~edge
    expected = 0.65 * grey[interior][:, None] + 0.35 * np.asarray(DEFAULT_COLOR)[None]
    np.testing.assert_allclose(rgb[interior], expected, atol=1)  # semi-transparent fill


def test_overlay_downsampled_for_tall_inputs():
    img = _radiograph(3000, 1200, 0, 4095)
    mask = _rect_mask(3000, 1200)
    rgb = overlay_mask(img, mask)
    assert rgb.shape == (1500, 600, 3)
    coloured = (rgb[..., 0] != rgb[..., 2]).mean()
    assert abs(coloured - mask.mean()) < 0.01
    assert overlay_mask(img[:100, :50], mask[:100, :50], max_height=None).shape == (100, 50, 3)


def test_overlay_bad_args():
    img, mask = np.zeros((10, 8)), np.zeros((10, 8), bool)
    with pytest.raises(ValueError, match="same"):
        overlay_mask(img, mask.T)
    with pytest.raises(ValueError, match="alpha"):
        overlay_mask(img, mask, alpha=1.5)
    with pytest.raises(ValueError, match="max_height"):
        overlay_mask(img, mask, max_height=0)
    with pytest.raises(ValueError, match="color"):
        overlay_mask(img, mask, color=(1, 2))


@pytest.mark.parametrize("dtype, scale", [(bool, 1), (np.uint8, 1), (np.uint8, 255), (np.float32, 1)])
def test_save_mask_png(tmp_path, dtype, scale):
    mask = _rect_mask(50, 30)
    path = save_mask_png(mask.astype(dtype) * scale, tmp_path / "m.png")
    with Image.open(path) as im:
        assert im.mode == "L"
        arr = np.asarray(im)
    assert arr.shape == (50, 30)
    np.testing.assert_array_equal(arr, mask.astype(np.uint8) * 255)


def test_save_overlay(tmp_path):
    path = save_overlay(_radiograph(50, 30, 0, 1), _rect_mask(50, 30), tmp_path / "o.png", alpha=0.5)
    with Image.open(path) as im:
        assert im.mode == "RGB" and im.size == (30, 50)
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]


@pytest.mark.parametrize("with_image", [True, False])
def test_comparison_overlay_regions(with_image):
    label = _rect_mask(80, 50)
    pred = np.roll(label, 6, axis=0)  # shifted down: false positives below, false negatives above
    image = _radiograph(80, 50, 0, 100) if with_image else None
    rgb = comparison_overlay(pred, label, image=image, title=None)
    header = rgb.shape[0] - 80
    assert rgb.shape[1:] == (50, 3) and header > 0
    body = rgb[header:].astype(int)
    inner_label = label & ~_edge(label)  # the white label outline covers the edge
    regions = {
        "true positive": pred & inner_label,
        "false positive": pred & ~label,
        "false negative": ~pred & inner_label,
    }
    for name, region in regions.items():
        assert region.any()
        colour = np.asarray(COMPARISON_COLORS[name])
        # the dominant channel of each region is that of its colour
        assert (body[region].argmax(axis=1) == colour.argmax()).mean() > 0.95, name
        if not with_image:  # opaque fills on a blank background: exactly the colour (away from the white outline)
            inside = region & ~_edge(label)
            np.testing.assert_array_equal(body[inside], np.broadcast_to(colour, (inside.sum(), 3)))
    background = ~pred & ~label
    assert (body[background][:, 0] == body[background][:, 2]).all()  # grey where neither mask is
    with_title = comparison_overlay(pred, label, image=image, title="case: Dice 80.0 %")
    assert with_title.shape[0] > rgb.shape[0]


def _edge(mask: np.ndarray) -> np.ndarray:
    return mask & ~np.pad(mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:], 1)


def test_comparison_overlay_errors_and_downsampling(tmp_path):
    label = _rect_mask(3000, 1000)
    rgb = comparison_overlay(label, label, image=_radiograph(3000, 1000, 0, 1), max_height=600)
    assert rgb.shape[1] == 200 and 600 < rgb.shape[0] < 700
    with pytest.raises(ValueError, match="shape"):
        comparison_overlay(label, label.T)
    with pytest.raises(ValueError, match="alpha"):
        comparison_overlay(label[:10, :10], label[:10, :10], alpha=-0.1)
    path = save_comparison_overlay(tmp_path / "w.png", pred=label[:90, :30], label=label[:90, :30], title="t")
    with Image.open(path) as im:
        assert im.mode == "RGB" and im.width == 30
