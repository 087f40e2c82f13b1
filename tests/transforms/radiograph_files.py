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

"""Writers of small test radiographs in every supported format (DICOM variants built with pydicom, PNG, NIfTI)."""

from __future__ import annotations

import io
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
    generate_uid,
)

__all__ = ["make_pixels", "write_dicom", "write_png", "write_nifti", "write_jpeg_dicom"]


def make_pixels(rows: int = 48, cols: int = 37, bits: int = 12, seed: int = 0) -> np.ndarray:
    """A (rows, cols) picture with a distinct value at every pixel corner so that orientation errors show."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 2**bits, size=(rows, cols), dtype=np.int64)
    arr[0, 0], arr[0, -1], arr[-1, 0] = 0, 2**bits - 1, 2 ** (bits - 1)
    return arr.astype(np.uint16 if bits > 8 else np.uint8)


def _dataset(sop_class=DigitalXRayImageStorageForPresentation) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "DX"
    ds.PatientID = "P0001"
    return ds


def write_dicom(
    path: str | Path,
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    rescale: tuple[float, float] | None = None,
    pixel_spacing: tuple[float, float] | None = None,
    imager_spacing: tuple[float, float] | None = None,
    window: tuple[float, float] | None = None,
    voi_lut: np.ndarray | None = None,
    transfer_syntax=None,
    preamble: bool = True,
) -> Path:
    """Write ``pixels`` ((rows, cols) grey, (rows, cols, 3) RGB or (frames, rows, cols)) as a DICOM file."""
    ds = _dataset(
        SecondaryCaptureImageStorage
        if pixels.ndim == 3 and pixels.shape[-1] == 3
        else DigitalXRayImageStorageForPresentation
    )
    if bits_stored is None:
        bits_stored = 8 if pixels.dtype == np.uint8 else 16
    ds.set_pixel_data(pixels, photometric_interpretation=photometric, bits_stored=bits_stored)
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if pixel_spacing is not None:
        ds.PixelSpacing = list(pixel_spacing)
    if imager_spacing is not None:
        ds.ImagerPixelSpacing = list(imager_spacing)
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_lut is not None:
        item = Dataset()
        item.LUTDescriptor = [len(voi_lut), 0, 16]
        item.LUTData = np.asarray(voi_lut, dtype="<u2").tobytes()
        ds.VOILUTSequence = DicomSequence([item])
    if transfer_syntax is not None:
        ds.compress(transfer_syntax)
    path = Path(path)
    ds.save_as(path, enforce_file_format=preamble)
    return path


def write_jpeg_dicom(path: str | Path, pixels: np.ndarray, quality: int = 95) -> tuple[Path, np.ndarray]:
    """An 8-bit grey JPEG-baseline DICOM; returns the path and the pixels Pillow decodes from the same bytes."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    ds = _dataset()
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.LossyImageCompression = "01"
    path = Path(path)
    ds.save_as(path, enforce_file_format=True)
    return path, np.asarray(Image.open(io.BytesIO(buf.getvalue())))


def write_png(path: str | Path, pixels: np.ndarray, mode: str | None = None) -> Path:
    """Write (rows, cols) grey (8 or 16 bit) or (rows, cols, 3/4) colour pixels with Pillow."""
    path = Path(path)
    Image.fromarray(pixels, mode=mode).save(path) if mode else Image.fromarray(pixels).save(path)
    return path


def write_nifti(path: str | Path, pixels: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0), extra_dims=()) -> Path:
    """A NIfTI whose data array is ``pixels.T`` (NIfTI's i axis is x, the image column), spacing (row, col) in mm."""
    data = pixels.T.reshape(pixels.T.shape + tuple(extra_dims))
    affine = np.diag([spacing[1], spacing[0], 1.0, 1.0])
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm")
    path = Path(path)
    nib.save(img, path)
    return path
