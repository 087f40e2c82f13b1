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

import logging
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
import torch
from monai.data import MetaTensor, list_data_collate
from monai.transforms import LoadImage
from PIL import Image
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from r2mf_monai.transforms.readers import (
    DEFAULT_MAX_PIXELS,
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


def write_png_bomb(path, width: int, height: int):
    """A grey 8-bit PNG of zeros that declares ``width`` x ``height`` pixels, written row by row (a 9000 x 9000 one
    is 79 KB on disk and is never held in memory here)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + one row of zeros
    body = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


# the declared size is checked before decoding: a file whose data are truncated fails on its size, not its data,
# when it is too large, and on its data when it is not
@pytest.mark.parametrize(
    "make,allowed_error",
    [
        (_truncated_dicom, "cannot decode the pixel data"),
        (_truncated_png, "truncated"),
        (lambda tmp_path: write_nifti(tmp_path / "a.nii.gz", PIXELS), None),
    ],
    ids=["dicom", "png", "nifti"],
)
def test_size_refused_before_decoding(tmp_path, make, allowed_error):
    path = make(tmp_path)
    with pytest.raises(RadiographReadError, match="more than max_pixels") as info:
        load(path, max_pixels=PIXELS.size - 1)
    assert info.value.path == str(path)
    if allowed_error is None:
        assert load(path, max_pixels=PIXELS.size).shape == PIXELS.T.shape
    else:
        with pytest.raises(RadiographReadError, match=allowed_error):
            load(path, max_pixels=PIXELS.size)


def test_long_cassette_limit(tmp_path):
    # the default admits 4300 x 12900 (a 43 x 129 cm film at 0.1 mm) and nothing larger
    assert DEFAULT_MAX_PIXELS == 55_470_000
    path = write_png_bomb(tmp_path / "long.png", 4301, 12900)
    with pytest.raises(RadiographReadError, match="4301 x 12900 x 1"):
        load(path)


def test_png_bomb_bounded_memory(tmp_path):
    """A 79 KB PNG declaring 9000 x 9000 pixels is refused, naming the file, with no growth of the peak memory
    (measured in a fresh process: the peak resident size before and after the read; decoding would add 81 MB)."""
    path = write_png_bomb(tmp_path / "bomb.png", 9000, 9000)
    assert path.stat().st_size < 100_000
    script = textwrap.dedent(
        f"""
        import resource, sys
        from r2mf_monai.transforms import LoadRadiograph
        load = LoadRadiograph()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load({str(path)!r})
        except Exception as e:
            print(type(e).__name__, e)
        print("GROWTH_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert f"RadiographReadError cannot read radiograph '{path}'" in out and "max_pixels" in out
    growth_kb = int(out.split("GROWTH_KB")[-1])
    assert growth_kb < 16 * 1024, out  # the decoded picture alone would be 81 MB (uint8), 324 MB as float32


@pytest.mark.parametrize("value", [0, -5, 1.5, True])
def test_bad_max_pixels(value):
    with pytest.raises(ValueError, match="max_pixels"):
        RadiographReader(max_pixels=value)


def _ramp(rows: int = 40, cols: int = 64, lo: int = 0, hi: int = 4095) -> np.ndarray:
    """A smooth picture (a horizontal ramp with a vertical shade), like the slow variation of a radiograph."""
    x = np.linspace(lo, hi, cols)[None, :]
    y = np.linspace(0, (hi - lo) * 0.05, rows)[:, None]
    return np.clip(x + y, lo, hi).round()


def _signed_over_unsigned(tmp_path):
    # 12-bit unsigned data (0..4095) in a file that says PixelRepresentation = 1: read as signed, the bright half
    # wraps to negative values
    import pydicom

    path = write_dicom(tmp_path / "wrapped.dcm", _ramp().astype(np.uint16), bits_stored=12)
    ds = pydicom.dcmread(path)
    ds.PixelRepresentation = 1
    ds.save_as(path)
    return path


def _truly_signed(tmp_path):
    return write_dicom(tmp_path / "signed.dcm", _ramp(lo=-1500, hi=1500).astype(np.int16), bits_stored=12)


@pytest.mark.parametrize("make,warned", [(_signed_over_unsigned, True), (_truly_signed, False)])
def test_signed_over_unsigned_warns(tmp_path, caplog, make, warned):
    path = make(tmp_path)
    with caplog.at_level(logging.WARNING, logger="r2mf_monai.transforms.readers"):
        img = load(path)
    assert img.min() < 0
    messages = [r.getMessage() for r in caplog.records if "PixelRepresentation" in r.getMessage()]
    assert bool(messages) == warned
    assert ("PixelRepresentation says signed" in img.meta["read_warnings"]) == warned
    if warned:
        assert str(path) in messages[0]


@pytest.mark.parametrize(
    "pixels,expected",
    [
        (np.zeros((40, 30), np.uint8), "every pixel has the value 0"),
        (np.full((1, 1), 7, np.uint8), "the image is only 1 x 1 pixel"),
        (PIXELS, ""),
    ],
    ids=["all_zero", "one_pixel", "normal"],
)
def test_unusable_picture_said(tmp_path, caplog, pixels, expected):
    path = write_png(tmp_path / "p.png", pixels)
    with caplog.at_level(logging.WARNING, logger="r2mf_monai.transforms.readers"):
        img = load(path)
    assert img.meta["read_warnings"].startswith(expected) and bool(img.meta["read_warnings"]) == bool(expected)
    assert any(str(path) in r.getMessage() and expected in r.getMessage() for r in caplog.records) == bool(expected)


def test_dicom_body_part_and_view_in_meta(tmp_path):
    import pydicom

    path = write_dicom(tmp_path / "a.dcm", PIXELS, bits_stored=12)
    ds = pydicom.dcmread(path)
    ds.BodyPartExamined, ds.ViewPosition = "ankle ", "LL"
    ds.save_as(path)
    img = load(path)
    assert (img.meta["body_part_examined"], img.meta["view_position"]) == ("ANKLE", "LL")
    assert load(write_png(tmp_path / "a.png", PIXELS)).meta["body_part_examined"] == ""
