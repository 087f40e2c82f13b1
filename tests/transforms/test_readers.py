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
from monai.data import MetaTensor, list_data_collate
from monai.transforms import LoadImage
from PIL import Image
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from r2mf_monai.transforms.readers import (
    DicomRadiographReader,
    NiftiRadiographReader,
    RadiographReader,
    RadiographReadError,
    RasterRadiographReader,
    detect_format,
    pixel_spacing_from_meta,
)
from tests.transforms.radiograph_files import make_pixels, write_dicom, write_jpeg_dicom, write_nifti, write_png

PIXELS = make_pixels()  # (48 rows, 37 columns), 12-bit values in uint16


def load(path, **kwargs) -> MetaTensor:
    """Read with RadiographReader through MONAI's LoadImage (runtime reader: no fallback)."""
    return LoadImage(image_only=True)(str(path), reader=RadiographReader(**kwargs))


def pil_reference(path) -> np.ndarray:
    """What MONAI's own PILReader gives for a raster file: the orientation every reader must match."""
    return LoadImage(image_only=True, reader="PILReader")(str(path)).numpy()


# name, pixels written, write_dicom kwargs, expected array in the picture's (rows, cols) layout
DICOM_CASES = [
    ("mono2_12bit", PIXELS, {"bits_stored": 12}, PIXELS),
    ("mono2_16bit", PIXELS * 16 + 5, {"bits_stored": 16}, PIXELS * 16 + 5),
    ("mono2_8bit", (PIXELS >> 4).astype(np.uint8), {}, PIXELS >> 4),
    ("mono1_12bit", (4095 - PIXELS).astype(np.uint16), {"bits_stored": 12, "photometric": "MONOCHROME1"}, PIXELS),
    ("mono1_16bit", (65535 - PIXELS).astype(np.uint16), {"bits_stored": 16, "photometric": "MONOCHROME1"}, PIXELS),
    ("rescale", PIXELS, {"bits_stored": 12, "rescale": (2.0, -100.0)}, 2.0 * PIXELS - 100.0),
    ("rle", PIXELS, {"bits_stored": 12, "transfer_syntax": RLELossless}, PIXELS),
    ("jpeg2000", PIXELS, {"bits_stored": 12, "transfer_syntax": JPEG2000Lossless}, PIXELS),
    ("jpegls", PIXELS, {"bits_stored": 12, "transfer_syntax": JPEGLSLossless}, PIXELS),
    ("no_preamble", PIXELS, {"bits_stored": 12, "preamble": False}, PIXELS),
    (
        "mono1_rle",
        (4095 - PIXELS).astype(np.uint16),
        {"bits_stored": 12, "photometric": "MONOCHROME1", "transfer_syntax": RLELossless},
        PIXELS,
    ),
]


@pytest.mark.parametrize("name,pixels,kwargs,expected", DICOM_CASES, ids=[c[0] for c in DICOM_CASES])
def test_dicom_round_trip(tmp_path, name, pixels, kwargs, expected):
    path = write_dicom(tmp_path / f"{name}.dcm", pixels, **kwargs)
    img = load(path)
    assert img.shape == (pixels.shape[1], pixels.shape[0])  # (W, H)
    np.testing.assert_array_equal(img.numpy(), np.asarray(expected, dtype=np.float32).T)
    assert img.meta["format"] == "DICOM"
    assert img.meta["inverted"] == (kwargs.get("photometric") == "MONOCHROME1")


@pytest.mark.parametrize("bits", [8, 16])
def test_dicom_and_png_same_pixels_same_array(tmp_path, bits):
    pixels = (PIXELS >> 4).astype(np.uint8) if bits == 8 else (PIXELS * 16).astype(np.uint16)
    dcm = load(write_dicom(tmp_path / "a.dcm", pixels))
    png_path = write_png(tmp_path / "a.png", pixels)
    png = load(png_path)
    np.testing.assert_array_equal(dcm.numpy(), png.numpy())
    np.testing.assert_array_equal(png.numpy(), pil_reference(png_path))  # MONAI's PILReader orientation
    # row 0 (top of the picture) is y = 0; column x is axis 0
    assert png.numpy()[PIXELS.shape[1] - 1, 0] == pixels[0, -1]


def test_dicom_without_suffix(tmp_path):
    path = write_dicom(tmp_path / "IM0001", PIXELS, bits_stored=12)
    assert detect_format(path) == "dicom"
    np.testing.assert_array_equal(load(path).numpy(), PIXELS.T.astype(np.float32))


def test_dicom_jpeg_baseline(tmp_path):
    path, decoded = write_jpeg_dicom(tmp_path / "jpeg.dcm", (PIXELS >> 4).astype(np.uint8))
    img = load(path)
    # two JPEG decoders (pylibjpeg, Pillow) may round differently by one grey level
    assert np.abs(img.numpy() - decoded.T.astype(np.float32)).max() <= 2


def test_voi_lut_sequence_applied(tmp_path):
    lut = (np.sqrt(np.arange(4096) / 4095.0) * 65535).astype(np.uint16)
    path = write_dicom(tmp_path / "voi.dcm", PIXELS, bits_stored=12, voi_lut=lut)
    np.testing.assert_array_equal(load(path).numpy(), lut[PIXELS.T].astype(np.float32))
    # voi_lut="none" keeps the modality values
    np.testing.assert_array_equal(load(path, voi_lut="none").numpy(), PIXELS.T.astype(np.float32))


def test_voi_lut_sequence_monochrome1(tmp_path):
    lut = (np.arange(4096) * 16).astype(np.uint16)  # linear LUT onto 16 bits
    path = write_dicom(
        tmp_path / "voi1.dcm", (4095 - PIXELS).astype(np.uint16), bits_stored=12, photometric="MONOCHROME1", voi_lut=lut
    )
    # inverted within the LUT's output range: 16 * 4095 - 16 * (4095 - p) = 16 * p
    np.testing.assert_array_equal(load(path).numpy(), (16.0 * PIXELS.T).astype(np.float32))


def test_window_kept_full_range_by_default(tmp_path):
    path = write_dicom(tmp_path / "win.dcm", PIXELS, bits_stored=12, window=(2048, 1000))
    np.testing.assert_array_equal(load(path).numpy(), PIXELS.T.astype(np.float32))
    windowed = load(path, voi_lut="all").numpy()
    inside = (PIXELS.T > 1600) & (PIXELS.T < 2500)
    assert windowed[PIXELS.T < 1500].max() == windowed.min()  # clipped below the window
    assert windowed[PIXELS.T > 2600].min() == windowed.max()  # clipped above
    assert np.all(np.diff(np.sort(windowed[inside])) >= 0) and len(np.unique(windowed[inside])) > 10


@pytest.mark.parametrize(
    "kwargs,expected,source",
    [
        ({"pixel_spacing": (0.2, 0.3)}, (0.2, 0.3), "PixelSpacing"),
        ({"imager_spacing": (0.14, 0.15)}, (0.14, 0.15), "ImagerPixelSpacing"),
        ({"pixel_spacing": (0.2, 0.3), "imager_spacing": (0.14, 0.15)}, (0.2, 0.3), "PixelSpacing"),
        ({"pixel_spacing": (0.0, 0.0), "imager_spacing": (0.1, 0.12)}, (0.1, 0.12), "ImagerPixelSpacing"),
        ({}, None, "none"),
    ],
)
def test_dicom_spacing(tmp_path, kwargs, expected, source):
    img = load(write_dicom(tmp_path / "s.dcm", PIXELS, bits_stored=12, **kwargs))
    assert pixel_spacing_from_meta(img.meta) == (pytest.approx(expected) if expected else None)
    assert img.meta["pixel_spacing_source"] == source
    row, col = expected or (1.0, 1.0)
    np.testing.assert_allclose(img.meta["spacing"], [col, row])  # per array axis (x, y)
    np.testing.assert_allclose(img.affine.numpy(), np.diag([col, row, 1.0, 1.0]))
    np.testing.assert_allclose(img.pixdim.numpy()[:2], [col, row])


@pytest.mark.parametrize("equal_channels", [True, False])
def test_colour_dicom_to_grey(tmp_path, equal_channels):
    grey = (PIXELS >> 4).astype(np.uint8)
    rgb = np.stack([grey, grey, grey], axis=-1)
    if not equal_channels:
        rgb[..., 0] = 0
    img = load(write_dicom(tmp_path / "rgb.dcm", rgb, photometric="RGB"))
    expected = grey.astype(np.float64) * (1.0 if equal_channels else 0.587 + 0.114)
    np.testing.assert_allclose(img.numpy(), expected.T, atol=1e-3)


def test_png_16bit_not_truncated(tmp_path):
    pixels = (PIXELS * 16).astype(np.uint16)  # up to 65520
    path = write_png(tmp_path / "a16.png", pixels)
    assert Image.open(path).mode.startswith("I;16")
    img = load(path)
    assert img.max() > 255
    np.testing.assert_array_equal(img.numpy(), pixels.T.astype(np.float32))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "LA"])
def test_png_grey_in_colour_container(tmp_path, mode):
    grey = (PIXELS >> 4).astype(np.uint8)
    Image.fromarray(grey).convert(mode).save(tmp_path / "c.png")
    img = load(tmp_path / "c.png")
    assert img.shape == (grey.shape[1], grey.shape[0])
    np.testing.assert_array_equal(img.numpy(), grey.T.astype(np.float32))


def test_png_colour_uses_luma(tmp_path):
    rgb = np.zeros(PIXELS.shape + (3,), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    write_png(tmp_path / "rgb.png", rgb)
    np.testing.assert_allclose(load(tmp_path / "rgb.png").numpy(), 0.299 * 200 + 0.587 * 100 + 0.114 * 50, atol=1e-4)


@pytest.mark.parametrize("suffix,fmt", [(".jpg", "JPEG"), (".tif", "TIFF"), (".bmp", "BMP")])
def test_other_raster_formats(tmp_path, suffix, fmt):
    grey = (PIXELS >> 4).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / f"a{suffix}")
    img = load(tmp_path / f"a{suffix}")
    assert img.meta["format"] == fmt
    np.testing.assert_array_equal(img.numpy(), np.asarray(Image.open(tmp_path / f"a{suffix}")).T.astype(np.float32))
    np.testing.assert_array_equal(img.numpy(), pil_reference(tmp_path / f"a{suffix}"))


@pytest.mark.parametrize("extra_dims", [(), (1,), (1, 1)])
def test_nifti_2d(tmp_path, extra_dims):
    path = write_nifti(tmp_path / "a.nii.gz", PIXELS, spacing=(0.2, 0.3), extra_dims=extra_dims)
    img = load(path)
    np.testing.assert_array_equal(img.numpy(), PIXELS.T.astype(np.float32))  # same as the PNG of these pixels
    assert pixel_spacing_from_meta(img.meta) == pytest.approx((0.2, 0.3))
    assert img.meta["format"] == "NIfTI"


def test_same_meta_keys_and_collate(tmp_path):
    paths = [
        write_dicom(tmp_path / "a.dcm", PIXELS, bits_stored=12, pixel_spacing=(0.2, 0.2)),
        write_png(tmp_path / "b.png", PIXELS),
        write_nifti(tmp_path / "c.nii", PIXELS),
    ]
    imgs = [load(p) for p in paths]
    assert imgs[0].meta.keys() == imgs[1].meta.keys() == imgs[2].meta.keys()
    batch = list_data_collate([{"image": i[None]} for i in imgs])
    assert batch["image"].shape == (3, 1, PIXELS.shape[1], PIXELS.shape[0])
    assert batch["image"].meta["format"] == ["DICOM", "PNG", "NIfTI"]


def test_usable_as_loadimage_reader(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", PIXELS, bits_stored=12)
    for reader in (RadiographReader(), DicomRadiographReader()):
        img = LoadImage(reader=reader, image_only=True, ensure_channel_first=True)(str(path))
        assert img.shape == (1, PIXELS.shape[1], PIXELS.shape[0])
    assert RasterRadiographReader().verify_suffix("a.PNG") and not RasterRadiographReader().verify_suffix("a.nii")
    assert NiftiRadiographReader().verify_suffix("a.nii.gz") and DicomRadiographReader().verify_suffix("IM0001")


def test_stack_files_as_channels(tmp_path):
    a, b = write_png(tmp_path / "a.png", PIXELS), write_png(tmp_path / "b.png", 4095 - PIXELS)
    img = LoadImage(image_only=True, ensure_channel_first=True)([str(a), str(b)], reader=RadiographReader())
    assert img.shape == (2, PIXELS.shape[1], PIXELS.shape[0])
    np.testing.assert_array_equal(img[1].numpy(), (4095 - PIXELS).T.astype(np.float32))


def _multiframe(tmp_path):
    return write_dicom(tmp_path / "mf.dcm", np.stack([PIXELS, PIXELS]), bits_stored=12)


def _corrupt_dicom(tmp_path):
    path = tmp_path / "corrupt.dcm"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 600, dtype=np.uint8).tobytes())
    return path


def _truncated_dicom(tmp_path):
    data = write_dicom(tmp_path / "full.dcm", PIXELS, bits_stored=12).read_bytes()
    (tmp_path / "trunc.dcm").write_bytes(data[: len(data) - 1000])
    return tmp_path / "trunc.dcm"


def _truncated_png(tmp_path):
    data = write_png(tmp_path / "full.png", PIXELS).read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    return tmp_path / "trunc.png"


def _volume_nifti(tmp_path):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.stack([PIXELS.T] * 3, axis=-1), np.eye(4)), tmp_path / "vol.nii.gz")
    return tmp_path / "vol.nii.gz"


def _animated_gif(tmp_path):
    frames = [Image.fromarray((PIXELS >> 4).astype(np.uint8)), Image.fromarray((PIXELS >> 5).astype(np.uint8))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    return tmp_path / "anim.gif"


@pytest.mark.parametrize(
    "make,reason",
    [
        (_multiframe, "multi-frame"),
        (_corrupt_dicom, "not a DICOM image"),
        (_truncated_dicom, "cannot decode the pixel data"),
        (_truncated_png, "truncated"),
        (_volume_nifti, "3-D volume"),
        (_animated_gif, "frames"),
    ],
)
def test_bad_files_name_the_file(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(RadiographReadError, match=reason) as info:
        load(path)
    assert str(path) in str(info.value) and info.value.path == str(path)


def test_bad_voi_argument():
    with pytest.raises(ValueError, match="voi_lut"):
        DicomRadiographReader(voi_lut="window")


def test_pixel_spacing_from_meta_tensor_values():
    assert pixel_spacing_from_meta({"pixel_spacing": torch.tensor([0.1, 0.2])}) == pytest.approx((0.1, 0.2))
    assert pixel_spacing_from_meta({"pixel_spacing": np.array([np.nan, np.nan])}) is None
    assert pixel_spacing_from_meta({}) is None
