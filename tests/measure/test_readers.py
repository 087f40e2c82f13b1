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
"""r2mf_monai/measure/readers.py: masks only (binary files; the ``*_mask.*`` files of a folder when it has them)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from r2mf_monai.measure.readers import check_binary, mask_files, read_image, read_mask
from r2mf_monai.measure.report import measure_path
from tests.measure.shapes import s_curve_mask

MASK = s_curve_mask()


def _png(path, array) -> None:
    Image.fromarray(np.asarray(array)).save(path)


def _radiograph(shape=(560, 400)) -> np.ndarray:
    """A film-like picture: a smooth gradient with noise (hundreds of grey levels)."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(30, 220, shape[0])[:, None] + rng.normal(0, 10, shape)
    return np.clip(ramp, 0, 255).astype(np.uint8)


def _overlay(mask: np.ndarray) -> np.ndarray:
    """An overlay as r2mf-monai draws one: the film in grey, the column tinted."""
    grey = _radiograph(mask.shape)
    rgb = np.stack([grey] * 3, axis=-1)
    rgb[mask, 0] = 255
    return rgb


@pytest.mark.parametrize(
    "values",
    [np.array([[0, 1]], np.uint8), np.array([[0, 255]], np.uint8), np.zeros((2, 2), bool), np.array([[0.0, 1.0]])],
)
def test_check_binary_accepts_masks(values):
    assert check_binary(values, "m.png") is values


@pytest.mark.parametrize(
    "values, shown",
    [
        (np.array([[0, 1, 2]], np.uint8), "3 values"),  # a label map or a picture
        (np.array([[0, 128]], np.uint8), "0, 128"),  # two values, not a mask's
        (np.array([[1, 255]], np.uint8), "1, 255"),
    ],
)
def test_check_binary_refuses_the_rest(values, shown):
    with pytest.raises(ValueError, match=f"x.png is not a binary mask .*{shown}"):
        check_binary(values, "x.png")


def test_read_mask_refuses_a_radiograph_and_an_overlay(tmp_path):
    _png(tmp_path / "P1_coronal.png", _radiograph())
    _png(tmp_path / "P1_coronal_overlay.png", _overlay(MASK))
    for name in ("P1_coronal.png", "P1_coronal_overlay.png"):
        with pytest.raises(ValueError, match=f"{name} is not a binary mask"):
            read_mask(tmp_path / name)
    image, _ = read_image(tmp_path / "P1_coronal.png")  # the same file is fine as the picture under a mask
    assert image.shape == MASK.shape


def test_mask_files_prefers_the_mask_files(tmp_path):
    """A folder ``r2mf-monai infer`` wrote: masks in two formats, overlays, a SEG, reports; only one mask per film."""
    for stem in ("P1_coronal", "P1_left_bending"):
        _png(tmp_path / f"{stem}_mask.png", MASK.astype(np.uint8) * 255)
        nib.save(nib.Nifti1Image(MASK.T.astype(np.uint8), np.eye(4)), tmp_path / f"{stem}_mask.nii.gz")
        _png(tmp_path / f"{stem}_overlay.png", _overlay(MASK))
        _png(tmp_path / f"{stem}.png", _radiograph())
    (tmp_path / "measurements").mkdir()
    _png(tmp_path / "measurements" / "P1_measurements.png", _overlay(MASK))
    assert [p.name for p in mask_files(tmp_path)] == ["P1_coronal_mask.nii.gz", "P1_left_bending_mask.nii.gz"]


def test_mask_files_without_mask_names_leaves_out_our_other_outputs(tmp_path):
    _png(tmp_path / "P1_coronal.png", MASK.astype(np.uint8))
    _png(tmp_path / "P1_coronal_overlay.png", _overlay(MASK))
    _png(tmp_path / "P1_measurements.png", _overlay(MASK))
    assert [p.name for p in mask_files(tmp_path)] == ["P1_coronal.png"]


def test_measure_path_on_the_radiographs_is_one_error(tmp_path):
    """The films themselves (no mask among them): an error naming the file, not angles measured on a picture."""
    _png(tmp_path / "P1_coronal.png", _radiograph())
    with pytest.raises(ValueError, match="P1_coronal.png is not a binary mask"):
        measure_path(tmp_path, figure=False)
    assert not (tmp_path / "measurements").exists()


def test_measure_path_on_an_infer_folder_measures_the_masks(tmp_path, caplog):
    """Masks, overlays and films side by side: the masks are measured, nothing else is read or warned about."""
    _png(tmp_path / "P1_coronal_mask.png", MASK.astype(np.uint8) * 255)
    _png(tmp_path / "P1_coronal_overlay.png", _overlay(MASK))
    _png(tmp_path / "P1_coronal.png", _radiograph())
    result = measure_path(tmp_path, output=tmp_path / "out", figure=False, sacrum_mm=0.0)
    assert list(result) == ["P1"] and "coronal" in result["P1"]["summary"]
    assert not [r for r in caplog.records if r.levelname == "WARNING"], caplog.text


def test_a_broken_radiograph_is_named_as_one(tmp_path):
    _png(tmp_path / "P1_coronal.png", _radiograph())
    broken = tmp_path / "P1_broken.png"
    broken.write_bytes((tmp_path / "P1_coronal.png").read_bytes()[:60])  # truncated
    with pytest.raises(ValueError, match=r"cannot read radiograph .*P1_broken.png"):
        read_image(broken)
    with pytest.raises(ValueError, match=r"cannot read mask .*P1_broken.png"):
        read_mask(broken)
