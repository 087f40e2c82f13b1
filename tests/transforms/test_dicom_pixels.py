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

"""DICOM files from real archives that pydicom alone does not decode: each is written here the way its source
writes it, and must load to the pixels of the same film in an ordinary file."""

from __future__ import annotations

import io
import sys

import numpy as np
import pydicom
import pytest
from monai.transforms import LoadImage
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import UID, RLELossless

from r2mf_monai.transforms.dicom_pixels import (
    GE_PRIVATE_BIG_ENDIAN_PIXELS,
    RETIRED_JPEG_SYNTAXES,
    decode_pixel_array,
    decoder_available,
)
from r2mf_monai.transforms.readers import RadiographReader, RadiographReadError
from tests.transforms.radiograph_files import make_pixels, write_dicom

# 12-bit values whose high byte is set, so that a byte order mix-up changes every pixel
PIXELS = (make_pixels(bits=12) | 0x100).astype(np.uint16)


def load(path) -> np.ndarray:
    """The (rows, cols) picture the bundle's reader gives (MONAI's LoadImage, (W, H) transposed back)."""
    return LoadImage(image_only=True)(str(path), reader=RadiographReader()).numpy().T


@pytest.fixture
def base(tmp_path):
    return write_dicom(tmp_path / "base.dcm", PIXELS, bits_stored=12)


@pytest.mark.parametrize("implicit_vr", [False, True])
def test_a_data_set_without_file_meta_information_loads_in_the_encoding_it_was_read_in(base, tmp_path, implicit_vr):
    # what old modalities and `dcmconv --write-dataset` write: no preamble, no (0002,xxxx) group, no transfer syntax
    ds = pydicom.dcmread(base)
    del ds.file_meta
    path = tmp_path / "dataset_only.dcm"
    pydicom.dcmwrite(path, ds, implicit_vr=implicit_vr, little_endian=True, enforce_file_format=False)
    assert pydicom.dcmread(path, force=True).file_meta.get("TransferSyntaxUID") is None
    np.testing.assert_array_equal(load(path), load(base))
    np.testing.assert_array_equal(load(path), PIXELS)


def test_compressed_pixel_data_without_file_meta_information_is_one_line_saying_why(tmp_path):
    # encapsulated pixel data cannot be told from their elements: the transfer syntax lives in the File Meta Information
    ds = pydicom.dcmread(write_dicom(tmp_path / "rle.dcm", PIXELS, bits_stored=12, transfer_syntax=RLELossless))
    del ds.file_meta
    path = tmp_path / "rle_dataset_only.dcm"
    pydicom.dcmwrite(path, ds, implicit_vr=False, little_endian=True, enforce_file_format=False)
    with pytest.raises(RadiographReadError, match=r"rle_dataset_only\.dcm.*no File Meta Information.*encapsulated"):
        load(path)


def test_ge_private_big_endian_pixel_data_is_byte_swapped(base, tmp_path):
    # older GE CR/DX units: implicit VR little endian elements, big endian pixel words
    ds = pydicom.dcmread(base)
    ds.PixelData = PIXELS.astype(">u2").tobytes()
    ds.file_meta.TransferSyntaxUID = UID(GE_PRIVATE_BIG_ENDIAN_PIXELS)
    path = tmp_path / "ge.dcm"
    ds.save_as(path, implicit_vr=True, little_endian=True)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == GE_PRIVATE_BIG_ENDIAN_PIXELS
    np.testing.assert_array_equal(load(path), PIXELS)


def _progressive_jpeg_dicom(path, pixels: np.ndarray) -> tuple[pydicom.Dataset, np.ndarray]:
    """An 8-bit grey (or RGB, stored as YCbCr) film in JPEG full progression (process 10, retired syntax .55), as
    Pillow encodes it; returns the data set and the pixels Pillow decodes from the same stream."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=95, progressive=True)
    colour = pixels.ndim == 3
    ds = pydicom.dcmread(write_dicom(path, pixels, photometric="RGB" if colour else "MONOCHROME2"))
    if colour:
        ds.PhotometricInterpretation = "YBR_FULL_422"  # what the JPEG stream holds (PS3.5 8.2.1)
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.55")
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.LossyImageCompression = "01"
    ds.save_as(path, enforce_file_format=True)
    return ds, np.asarray(Image.open(io.BytesIO(buf.getvalue())))


@pytest.mark.parametrize("colour", [False, True])
def test_a_retired_jpeg_process_is_decoded_by_the_reference_library(tmp_path, colour):
    grey = np.kron((PIXELS >> 4).astype(np.uint8), np.ones((2, 2), np.uint8))  # even sizes for 4:2:2 chroma
    pixels = np.stack([grey, grey // 2, 255 - grey], axis=-1) if colour else grey
    _, pillow = _progressive_jpeg_dicom(tmp_path / "progressive.dcm", pixels)
    assert "1.2.840.10008.1.2.4.55" in RETIRED_JPEG_SYNTAXES and decoder_available(UID("1.2.840.10008.1.2.4.55"))
    loaded = load(tmp_path / "progressive.dcm")
    # what the reader makes of the pixels Pillow decodes (colour: ITU-R BT.601 luma, as for any RGB film)
    expected = pillow @ np.array([0.299, 0.587, 0.114]) if colour else pillow
    assert loaded.shape == grey.shape
    # two JPEG decoders (libjpeg's reference code, Pillow's libjpeg-turbo) may round the inverse DCT and the colour
    # conversion differently
    assert np.abs(loaded - expected).max() <= 2.5
    assert np.abs(loaded - (pixels @ np.array([0.299, 0.587, 0.114]) if colour else pixels)).mean() < 3  # the film


def test_a_retired_jpeg_process_without_its_library_says_what_to_install(tmp_path, monkeypatch):
    ds, _ = _progressive_jpeg_dicom(tmp_path / "progressive.dcm", (PIXELS >> 4).astype(np.uint8))
    monkeypatch.setitem(sys.modules, "libjpeg", None)  # as if pylibjpeg-libjpeg were not installed
    with pytest.raises(NotImplementedError, match=r"pylibjpeg-libjpeg .*r2mf-monai\[dicom\]"):
        decode_pixel_array(pydicom.dcmread(tmp_path / "progressive.dcm"))


def test_an_unknown_private_transfer_syntax_is_one_line_naming_the_file_and_the_uid(base, tmp_path):
    ds = pydicom.dcmread(base)
    private = "1.2.826.0.1.3680043.9.9999.7"
    ds.file_meta.TransferSyntaxUID = UID(private)
    path = tmp_path / "vendor.dcm"
    ds.save_as(path, implicit_vr=False, little_endian=True)
    with pytest.raises(RadiographReadError, match=rf"vendor\.dcm.*{private}.*unknown or private transfer syntax"):
        load(path)


@pytest.mark.parametrize(
    "syntax, name", [("1.2.840.10008.1.2.4.110", "JPEG XL Lossless"), ("1.2.840.10008.1.2.8.1", "Deflated Image Frame")]
)
def test_a_2024_syntax_without_a_decoder_is_named_in_the_one_line(base, tmp_path, syntax, name):
    # pydicom 3.0 refuses to write a DICOM UID it does not know: write a private one of the same length, then swap it
    placeholder = ("1.2.826.0.1.3680043." + "9" * 40)[: len(syntax)]
    ds = pydicom.dcmread(base)
    ds.file_meta.TransferSyntaxUID = UID(placeholder)
    ds.PixelData = encapsulate([b"\xff\x0a" + bytes(64)])
    ds["PixelData"].VR = "OB"
    path = tmp_path / "new_syntax.dcm"
    ds.save_as(path, implicit_vr=False, little_endian=True)
    path.write_bytes(path.read_bytes().replace(placeholder.encode(), syntax.encode()))
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == syntax
    with pytest.raises(RadiographReadError, match=rf"new_syntax\.dcm.*{name}.*{syntax}.*does not decode yet"):
        load(path)


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2.5"])
def test_ordinary_files_are_left_to_pydicom(base, tmp_path, syntax):
    ds = pydicom.dcmread(base)
    if syntax != ds.file_meta.TransferSyntaxUID:
        ds.compress(syntax)
    np.testing.assert_array_equal(decode_pixel_array(ds), PIXELS)
    assert ds.file_meta.TransferSyntaxUID == syntax  # nothing rewritten
