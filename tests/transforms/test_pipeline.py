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

"""The bundle's transform chain (§3.9, §4.1, §4.2) built from the config snippets handed to bundle/configs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import DataLoader, Dataset, MetaTensor
from scipy import ndimage

from r2mf_monai.data.sampler import ViewBalancedSampler
from tests.transforms.radiograph_files import write_dicom, write_png

CONFIGS = Path(__file__).resolve().parents[2] / "bundle" / "configs"
# each transform chain under test, and the shipped config that defines it (tested as shipped, not as a copy)
SOURCES = {
    "validate#preprocessing#transforms": "train.json",
    "train#preprocessing": "train.json",
    "preprocessing": "inference.json",
    "postprocessing": "inference.json",
}
SIZE = 128  # the tests override image_size to stay fast; the geometry is the same at 512


def parsed(*keys: str, image_size: int = SIZE, **overrides):
    """The parsed config items, one parser per config file (so that ``@preprocessing`` in Invertd is the same
    object as the ``preprocessing`` returned); ``overrides`` set top-level keys as on the command line."""
    parsers: dict[str, ConfigParser] = {}
    items = []
    for key in keys:
        name = SOURCES[key]
        if name not in parsers:
            parsers[name] = ConfigParser()
            parsers[name].read_config(str(CONFIGS / name))
            parsers[name]["image_size"] = image_size
            for k, v in overrides.items():
                parsers[name][k] = v
        items.append(parsers[name].get_parsed_content(key))
    return items[0] if len(keys) == 1 else items


def ellipse_case(tmp_path, h: int, w: int, cx: float = 0.45):
    """A (h, w) radiograph whose bright ellipse is also its mask; returns the datalist item and the mask."""
    yy, xx = np.mgrid[:h, :w]
    mask = ((yy - h / 2) / (0.4 * h)) ** 2 + ((xx - cx * w) / (0.2 * w)) ** 2 < 1
    image = (mask * 3000 + 500).astype(np.uint16)
    image[0, 0] = 0  # the minimum, so that after min-max scaling the background is > 0 and padding is 0
    write_png(tmp_path / "image.png", image)
    write_png(tmp_path / "label.png", (mask * 255).astype(np.uint8))
    return {"image": str(tmp_path / "image.png"), "label": str(tmp_path / "label.png")}, mask


SHAPES = [(301, 157), (157, 301), (1000, 400), (400, 1000), (100, 60), (SIZE, SIZE)]


@pytest.mark.parametrize("h,w", SHAPES)
def test_preprocessing_keeps_image_and_label_aligned(tmp_path, h, w):
    item, _ = ellipse_case(tmp_path, h, w)
    data = item
    # validation's chain is the training chain without the random framing and augmentations
    for t in parsed("validate#preprocessing#transforms"):
        data = t(data)
    image, label = data["image"], data["label"]
    assert image.shape == label.shape == (1, SIZE, SIZE)
    assert float(image.min()) == 0.0 and float(image.max()) == pytest.approx(1.0, abs=1e-3)  # anti-aliasing blurs
    assert set(torch.unique(label).tolist()) <= {0.0, 1.0}
    # aspect ratio kept: the longest side fills the grid, the other is centred with zero padding
    nonpad = np.argwhere(image[0].numpy() > 0.05)
    extent = nonpad.max(0) - nonpad.min(0) + 1
    assert extent.max() == SIZE and abs(extent[0] / extent[1] - w / h) < 0.03
    # the label sits on the bright region of the image (nearest-exact: no half-pixel shift)
    mid = (500 / 3500 + 1.0) / 2  # halfway between background (500) and spine (3500) after min-max scaling
    bright, lab = image[0].numpy() > mid, label[0].numpy() > 0.5
    shift = np.array(ndimage.center_of_mass(lab)) - np.array(ndimage.center_of_mass(bright))
    assert np.abs(shift).max() < 0.25, shift
    boundary = lab ^ ndimage.binary_erosion(lab)
    assert (bright ^ lab).sum() <= boundary.sum()


@pytest.mark.parametrize("h,w", SHAPES)
def test_postprocessing_restores_the_input_grid(tmp_path, h, w):
    item, mask = ellipse_case(tmp_path, h, w)
    pre, post = parsed("preprocessing", "postprocessing", clahe_clip_limit=None)  # geometry: no intensity equalising
    data = pre({"image": item["image"]})
    # a perfect prediction on the network grid (logits), as a network would output for this image
    data["pred"] = MetaTensor((data["image"].as_tensor() > 0.5).float() * 20 - 10)
    restored = post(data)["pred"]
    assert restored.shape == (1, w, h)  # the input's (W, H)
    out = restored[0].numpy().T > 0.5  # back to (rows, cols)
    # the boundary is within one network pixel (= max(h, w) / SIZE input pixels, rounded up) of the truth
    r = math.ceil(max(h, w) / SIZE)
    square = np.ones((2 * r + 1, 2 * r + 1))
    ring = ndimage.binary_dilation(mask, square) & ~ndimage.binary_erosion(mask, square)
    assert ((out ^ mask) & ~ring).sum() == 0
    # and not shifted: the centroid moves by less than half a network pixel
    shift = np.array(ndimage.center_of_mass(out)) - np.array(ndimage.center_of_mass(mask))
    assert np.abs(shift).max() < 0.5 * max(1.0, max(h, w) / SIZE), shift


@pytest.mark.parametrize("h,w", [(1000, 400), (400, 1000), (3000, 1500)])
def test_restored_outline_follows_the_shape_not_the_network_grid(tmp_path, h, w):
    # Invertd upsamples with the resize's own mode: bilinear gives a smooth outline, whereas ``area`` replicated each
    # network pixel into a block whose corners stick out about 0.7 network pixels from an oblique boundary
    item, mask = ellipse_case(tmp_path, h, w)
    pre, post = parsed("preprocessing", "postprocessing", clahe_clip_limit=None)  # geometry: no intensity equalising
    data = pre({"image": item["image"]})
    data["pred"] = MetaTensor((data["image"].as_tensor() > 0.5).float() * 20 - 10)
    out = post(data)["pred"][0].numpy().T > 0.5
    distance_to_outline = ndimage.distance_transform_edt(~(mask ^ ndimage.binary_erosion(mask)))
    worst = distance_to_outline[out ^ mask].max() / (max(h, w) / SIZE)
    assert worst < 0.62, f"the restored outline strays {worst:.2f} network pixels from the shape"


def test_postprocessing_cleans_like_section_3_9(tmp_path):
    item, _ = ellipse_case(tmp_path, SIZE, SIZE)
    pre, post = parsed("preprocessing", "postprocessing", clahe_clip_limit=None)  # geometry: no intensity equalising
    data = pre({"image": item["image"]})
    logits = torch.full((1, SIZE, SIZE), -10.0)
    logits[0, 20:100, 50:70] = 10.0  # the spine
    logits[0, 40:80, 60] = -10.0  # a 1-pixel crack inside it
    logits[0, 5:9, 5:9] = 10.0  # a distant false positive
    out = post({**data, "pred": MetaTensor(logits)})["pred"]
    expected = torch.zeros(1, SIZE, SIZE)
    expected[0, 20:100, 50:70] = 1
    assert torch.equal(out.as_tensor().float(), expected)


def test_augmentation_keeps_alignment_and_view_truthful(tmp_path):
    item, _ = ellipse_case(tmp_path, 300, 160, cx=0.25)  # spine on the picture's left
    # no reframing (it would centre the spine and hide which side it is on) and no column shadow (it hides the column
    # from the intensity check on purpose); both have their own tests
    train = parsed("train#preprocessing", framing_prob=0.0, shadow_prob=0.0)
    train.set_random_state(seed=0)
    seen = set()
    for _ in range(12):
        out = train({**item, "view": "left_bending"})
        image, label = out["image"][0].numpy(), out["label"][0].numpy()
        assert image.shape == (SIZE, SIZE) and set(np.unique(label)) <= {0.0, 1.0}
        # aligned: the mask's outline runs along the image's edge (gamma, CLAHE, histogram shifts and bias fields
        # change intensities, not where the edge is)
        grad = ndimage.gaussian_gradient_magnitude(image, 1.0)
        lab = label > 0.5
        outline = lab ^ ndimage.binary_erosion(lab)
        away = ~ndimage.binary_dilation(outline, iterations=3)
        assert grad[outline].mean() > 10 * grad[away].mean()
        x_centre = ndimage.center_of_mass(label > 0.5)[0]  # axis 0 is x (columns)
        # a flipped picture has its spine on the right and is then called a right-bending view
        assert out["view"] == ("right_bending" if x_centre > SIZE / 2 else "left_bending")
        seen.add(out["view"])
    assert seen == {"left_bending", "right_bending"}


def test_mixed_formats_and_sizes_batch_with_the_sampler(tmp_path):
    rng = np.random.default_rng(0)
    items = []
    for i, (view, (h, w)) in enumerate(
        [("coronal", (90, 50)), ("left_bending", (70, 80)), ("right_bending", (60, 40))] * 2
    ):
        pixels = rng.integers(0, 4096, (h, w)).astype(np.uint16)
        image = (
            write_dicom(tmp_path / f"{i}.dcm", pixels, bits_stored=12, pixel_spacing=(0.2, 0.2))
            if i % 2
            else write_png(tmp_path / f"{i}.png", pixels)
        )
        label = write_png(tmp_path / f"{i}_mask.png", ((pixels > 2000) * 255).astype(np.uint8))
        items.append({"image": str(image), "label": str(label), "view": view, "source_view": view})
    transform = parsed("train#preprocessing", image_size=64)
    loader = DataLoader(
        Dataset(items, transform=transform),
        batch_size=3,
        sampler=ViewBalancedSampler.from_datalist(items, batch_size=3, seed=1),
        num_workers=0,
    )
    batches = list(loader)
    assert len(batches) == 2
    for batch in batches:
        assert batch["image"].shape == (3, 1, 64, 64) and batch["label"].shape == (3, 1, 64, 64)
        # one image of each view a batch (flips may since have renamed a bending view: checked on the source view)
        assert sorted(batch["source_view"]) == ["coronal", "left_bending", "right_bending"]
