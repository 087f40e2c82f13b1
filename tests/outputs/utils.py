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

"""Small synthetic DICOM radiographs for the output tests (written with pydicom, no downloads)."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

__all__ = ["DX_IMAGE_STORAGE", "make_dx", "dciodvfy_errors", "DCIODVFY"]

DX_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
DCIODVFY = shutil.which("dciodvfy")


def make_dx(
    path: str | os.PathLike,
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    spacing: str = "pixel",
    patient_orientation: bool = True,
    **attributes,
) -> Dataset:
    """Write a single-frame DX radiograph (uint16, 12 bits stored) with the given (rows, cols) pixels.

    Args:
        path: file to write.
        pixels: (rows, cols) array of stored values.
        photometric: ``"MONOCHROME1"`` or ``"MONOCHROME2"``.
        spacing: ``"pixel"`` (PixelSpacing 0.2), ``"imager"`` (ImagerPixelSpacing 0.15 only), ``"both"``,
            ``"zero"`` (PixelSpacing 0/0, as on some real CRs) or ``"none"``.
        patient_orientation: write PatientOrientation ``P/F`` (DICOM ``P\\F``); ``False`` leaves it out.
        attributes: further attributes set on the dataset (keyword=value).
    """
    rows, cols = pixels.shape
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = DX_IMAGE_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = DX_IMAGE_STORAGE
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Test^Scoliosis"
    ds.PatientID = "P0001"
    ds.PatientBirthDate = ""
    ds.PatientSex = "F"
    ds.StudyInstanceUID = generate_uid()
    ds.StudyDate = "20260101"
    ds.StudyTime = "120000"
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.Modality = "DX"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = "Synthetic"
    ds.InstanceNumber = 1
    if patient_orientation:
        ds.PatientOrientation = ["P", "F"]
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.BodyPartExamined = "SPINE"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = 1 if photometric == "MONOCHROME2" else -1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
    ds.PresentationLUTShape = "IDENTITY" if photometric == "MONOCHROME2" else "INVERSE"
    if spacing in ("pixel", "both"):
        ds.PixelSpacing = [0.2, 0.2]
    if spacing in ("imager", "both"):
        ds.ImagerPixelSpacing = [0.15, 0.15]
    if spacing == "zero":
        ds.PixelSpacing = [0, 0]
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return ds


def dciodvfy_errors(path: str | os.PathLike) -> list[str]:
    """The Error lines of dciodvfy -new (dicom3tools) on a file; needs the binary (see DCIODVFY)."""
    result = subprocess.run([DCIODVFY, "-new", os.fspath(path)], capture_output=True, text=True, timeout=60)
    lines = (result.stdout + result.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    if result.returncode != 0 and not errors:
        errors = [f"dciodvfy exited {result.returncode}: {result.stderr.strip()}"]
    return errors
