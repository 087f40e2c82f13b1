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

"""Writers of the synthetic data set: DICOM DX (For Presentation), 8/16-bit PNG, masks and JSON, all atomic.

Every file is written to a temporary name in its folder and renamed (``os.replace``), so a reader never sees a
half-written file. The DICOM files are Digital X-Ray Image Storage - For Presentation instances with the attributes a
real full-spine radiograph carries (Modality DX, MONOCHROME1 or MONOCHROME2, 12-16 bits stored, PixelSpacing with its
calibration, ImagerPixelSpacing, DetectorElementSpacing, VOI window, rescale, view position, laterality), so that the
project's readers meet real-world variety on synthetic data.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)

from r2mf_monai.outputs.atomic import write_with

__all__ = [
    "write_png",
    "write_mask",
    "write_json",
    "to_stored",
    "dicom_dataset",
    "write_dicom",
    "synthetic_uid",
    "write_aasce",
    "synthetic_to_aasce",
]


def write_png(path: str | os.PathLike, array: np.ndarray, spacing_mm: float | None = None, compress: int = 3) -> Path:
    """Write a single-channel uint8 or uint16 image as PNG (16-bit PNG for uint16), with its DPI if spacing is known.

    Args:
        path: output file.
        array: (H, W) uint8 or uint16.
        spacing_mm: pixel spacing, stored as the pHYs resolution (PNG has no other place for it).
        compress: zlib level (0-9). Defaults to ``3`` (noisy radiographs compress little more at higher levels).

    Raises:
        ValueError: not a 2-D uint8/uint16 array.
    """
    a = np.asarray(array)
    if a.ndim != 2 or a.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"array must be 2-D uint8 or uint16, got {a.dtype} {a.shape}.")
    im = Image.fromarray(np.ascontiguousarray(a))
    kw: dict[str, Any] = {"format": "PNG", "compress_level": int(compress)}
    if spacing_mm:
        kw["dpi"] = (25.4 / spacing_mm, 25.4 / spacing_mm)
    return write_with(path, lambda tmp: im.save(tmp, **kw))


def write_mask(path: str | os.PathLike, mask: np.ndarray) -> Path:
    """Write a 0/255 uint8 mask as PNG (the project's mask convention)."""
    m = np.where(np.asarray(mask) > 0, 255, 0).astype(np.uint8)
    return write_png(path, m, compress=6)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write JSON (UTF-8, indented) atomically."""
    text = json.dumps(obj, indent=1)
    return write_with(path, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))


def to_stored(display: np.ndarray, bits: int, low: int, high: int, invert: bool) -> np.ndarray:
    """Map a full-range uint16 display image (bone bright) to stored values in ``[low, high]`` of ``bits`` bits.

    Args:
        display: uint16 image, 0 = black, 65535 = white (MONOCHROME2 sense).
        bits: bits stored (8-16).
        low: stored value of display black.
        high: stored value of display white.
        invert: store MONOCHROME1 (white = small values): ``2**bits - 1 - value``.
    """
    maxv = (1 << bits) - 1
    if not 0 <= low < high <= maxv:
        raise ValueError(f"need 0 <= low < high <= {maxv}, got {low}, {high}.")
    v = low + (display.astype(np.uint32) * (high - low) + 32767) // 65535
    if invert:
        v = maxv - v
    return v.astype(np.uint16 if bits > 8 else np.uint8)


def synthetic_uid(*parts: Any) -> str:
    """A DICOM UID derived from ``parts`` (seed, patient, view ...): the same parts give the same UID."""
    return generate_uid(entropy_srcs=["r2mf-monai-synthetic", *[str(p) for p in parts]])


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def dicom_dataset(stored: np.ndarray, info: dict[str, Any]) -> Dataset:
    """A DX For-Presentation dataset holding ``stored`` pixels.

    Args:
        stored: (rows, cols) uint16 stored values.
        info: ``patient_id``, ``patient_name``, ``sex``, ``age``, ``birth_date``, ``study_uid``, ``series_uid``,
            ``sop_uid``, ``study_date``, ``study_time``, ``series_number``, ``series_description``,
            ``view_position`` (AP/PA), ``photometric``, ``bits_stored``, ``pixel_spacing``, ``magnification``,
            ``detector_pitch``, ``source_detector``, ``window`` (centre, width), ``burnt_in`` (bool), ``kvp``,
            ``mas``, ``exposure_ms``, ``software``.

    Raises:
        ValueError: pixels that are not 2-D or do not fit the bits stored.
    """
    a = np.asarray(stored)
    bits = int(info["bits_stored"])
    if a.ndim != 2:
        raise ValueError(f"stored pixels must be 2-D, got shape {a.shape}.")
    if a.size and int(a.max()) >= (1 << bits):
        raise ValueError(f"pixel value {int(a.max())} does not fit BitsStored={bits}.")
    mono1 = info["photometric"] == "MONOCHROME1"

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = info["sop_uid"]
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "R2MF_SYNTH_1"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = info["sop_uid"]
    # patient
    ds.PatientName = info["patient_name"]
    ds.PatientID = info["patient_id"]
    ds.PatientBirthDate = info["birth_date"]
    ds.PatientSex = info["sex"]
    ds.PatientAge = f"{int(info['age']):03d}Y"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "Synthetic image: no real patient"
    # study
    ds.StudyInstanceUID = info["study_uid"]
    ds.StudyDate = info["study_date"]
    ds.StudyTime = info["study_time"]
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.StudyDescription = "Scoliosis: standing and side bending (synthetic)"
    # series / equipment
    ds.Modality = "DX"
    ds.SeriesInstanceUID = info["series_uid"]
    ds.SeriesNumber = int(info["series_number"])
    ds.SeriesDescription = info["series_description"]
    ds.BodyPartExamined = "SPINE"
    ds.AnatomicRegionSequence = [_code("421060004", "SCT", "Spine")]
    ds.ViewPosition = info["view_position"]
    ds.ViewCodeSequence = [
        _code("272479007", "SCT", "postero-anterior")
        if info["view_position"] == "PA"
        else _code("399348003", "SCT", "antero-posterior")
    ]
    ds.PositionerType = "COLUMN"  # standing at a wall stand
    ds.AcquisitionContextSequence = []
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = "r2mf-monai"
    ds.ManufacturerModelName = "synthetic scoliosis generator"
    ds.SoftwareVersions = info.get("software", "")
    # image
    ds.InstanceNumber = 1
    ds.ContentDate = info["study_date"]
    ds.ContentTime = info["study_time"]
    ds.AcquisitionDate = info["study_date"]
    ds.AcquisitionTime = info["study_time"]
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.PatientOrientation = ["L", "F"]  # columns run to the patient's left, rows to the feet (radiological display)
    ds.ImageLaterality = "U"
    ds.BurnedInAnnotation = "YES" if info["burnt_in"] else "NO"
    ds.LossyImageCompression = "00"
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = 1 if mono1 else -1  # -1: higher values = less beam = more attenuation
    ds.PresentationLUTShape = "INVERSE" if mono1 else "IDENTITY"
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"
    ds.WindowCenter = f"{info['window'][0]:.1f}"
    ds.WindowWidth = f"{info['window'][1]:.1f}"
    ds.WindowCenterWidthExplanation = "DEFAULT"
    # acquisition and detector geometry
    ds.KVP = f"{info['kvp']:.0f}"
    ds.ExposureTime = int(info["exposure_ms"])
    ds.Exposure = int(round(info["mas"]))
    ds.DistanceSourceToDetector = f"{info['source_detector']:.1f}"
    ds.DistanceSourceToPatient = f"{info['source_detector'] / info['magnification']:.1f}"
    ds.EstimatedRadiographicMagnificationFactor = f"{info['magnification']:.4f}"
    ds.DetectorType = "SCINTILLATOR"
    ds.DetectorElementSpacing = [f"{info['detector_pitch']:.4f}"] * 2
    imager = info["pixel_spacing"] * info["magnification"]
    ds.ImagerPixelSpacing = [f"{imager:.6f}"] * 2
    ds.PixelSpacing = [f"{info['pixel_spacing']:.6f}"] * 2
    ds.PixelSpacingCalibrationType = "GEOMETRY"
    ds.PixelSpacingCalibrationDescription = "Magnification corrected to the patient's midcoronal plane"
    # pixels
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = info["photometric"]
    ds.Rows, ds.Columns = int(a.shape[0]), int(a.shape[1])
    ds.BitsAllocated = 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(a, dtype="<u2").tobytes()
    return ds


def write_dicom(path: str | os.PathLike, stored: np.ndarray, info: dict[str, Any]) -> Path:
    """Write :func:`dicom_dataset` ``(stored, info)`` as a DICOM Part-10 file (atomic)."""
    ds = dicom_dataset(stored, info)
    return write_with(path, lambda tmp: dcmwrite(tmp, ds, enforce_file_format=True))


def write_aasce(
    out_dir: str | os.PathLike,
    films: Iterable[tuple[str, np.ndarray, np.ndarray, Sequence[float]]],
    split: str = "training",
    quality: int = 95,
) -> Path:
    """Write films in the AASCE 2019 / SpineWeb dataset 16 layout (what ``r2mf-monai evaluate-landmarks`` reads).

    ``OUT/data/<split>/<name>.jpg``; ``OUT/labels/<split>/<name>.jpg.mat`` whose ``p2`` is the (4N, 2) array of
    (x, y) pixel corners, top-left, top-right, bottom-left, bottom-right per vertebra (the AASCE order);
    ``filenames.csv`` (one image name a row), ``angles.csv`` (three angles a row, same order) and ``landmarks.csv``
    (the 4N x then the 4N y coordinates, divided by the image width and height).

    Args:
        out_dir: the data set folder (created).
        films: ``(name without suffix, (H, W) uint8 image, (N, 4, 2) corners, three angles)``; corners as [x, y] in
            this package's order upper-left, upper-right, lower-right, lower-left.
        split: the split folder name. Defaults to ``"training"``.
        quality: JPEG quality. Defaults to ``95``.

    Returns:
        ``out_dir``.

    Raises:
        ValueError: an image that is not 2-D uint8, corners that are not (N, 4, 2), or not three angles.
    """
    from scipy.io import savemat

    out = Path(out_dir)
    images, labels = out / "data" / split, out / "labels" / split
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    names, angle_rows, landmark_rows = [], [], []
    for name, image, corners, angles in films:
        a, c = np.asarray(image), np.asarray(corners, dtype=np.float64)
        if a.ndim != 2 or a.dtype != np.uint8:
            raise ValueError(f"{name}: image must be 2-D uint8, got {a.dtype} {a.shape}.")
        if c.ndim != 3 or c.shape[1:] != (4, 2):
            raise ValueError(f"{name}: corners must be (N, 4, 2), got {c.shape}.")
        if len(angles) != 3:
            raise ValueError(f"{name}: expected three angles, got {len(angles)}.")
        p2 = c[:, [0, 1, 3, 2]].reshape(-1, 2)  # UL, UR, LR, LL -> top-left, top-right, bottom-left, bottom-right
        file_name = f"{name}.jpg"
        im = Image.fromarray(np.ascontiguousarray(a))
        write_with(images / file_name, lambda tmp, im=im: im.save(tmp, format="JPEG", quality=int(quality)))
        write_with(labels / f"{file_name}.mat", lambda tmp, p2=p2: savemat(tmp, {"p2": p2}, appendmat=False))
        h, w = a.shape
        names.append(file_name)
        angle_rows.append(",".join(f"{float(v):.4f}" for v in angles))
        landmark_rows.append(",".join(f"{v:.6f}" for v in np.concatenate([p2[:, 0] / w, p2[:, 1] / h])))
    for file, rows in (("filenames.csv", names), ("angles.csv", angle_rows), ("landmarks.csv", landmark_rows)):
        text = "".join(f"{r}\n" for r in rows)
        write_with(labels / file, lambda tmp, text=text: Path(tmp).write_text(text, encoding="utf-8"))
    return out


def synthetic_to_aasce(
    dataset_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    split: str = "test",
    view: str = "coronal",
    limit: int | None = None,
    out_split: str = "training",
) -> Path:
    """Re-write one view of a synthetic data set's split in the AASCE layout (:func:`write_aasce`), from its corners.

    The three angles are the generator's curves read as the AASCE table reads them: the largest curve, then the
    largest curve above it and the largest curve below it (0 where there is none of at least 5 degrees).

    Args:
        dataset_dir: a folder written by :func:`r2mf_monai.data.synthetic.synthesize_dataset`.
        out_dir: the AASCE-layout folder to write.
        split: the synthetic split to take. Defaults to ``"test"``.
        view: the view to take. Defaults to ``"coronal"``.
        limit: at most this many patients (in patient order).
        out_split: the split folder written. Defaults to ``"training"``.

    Raises:
        FileNotFoundError: no ``ground_truth.json`` in ``dataset_dir``.
        ValueError: no patient in ``split``.
    """
    from r2mf_monai.data.synthetic.preview import read_display  # preview imports this module

    root = Path(dataset_dir)
    gt_file = root / "ground_truth.json"
    if not gt_file.is_file():
        raise FileNotFoundError(f"no ground_truth.json in '{root}' (not a synthetic data set).")
    patients = [p for p in json.loads(gt_file.read_text())["patients"].values() if p["split"] == split]
    if not patients:
        raise ValueError(f"no patient in split '{split}' of '{root}'.")

    def films() -> Iterator[tuple[str, np.ndarray, np.ndarray, list[float]]]:
        for p in patients[:limit]:
            v = p["views"][view]
            curves = v["curves"]
            main = max(range(len(curves)), key=lambda i: curves[i]["cobb_deg"]) if curves else None
            above = [c["cobb_deg"] for c in curves[:main]] if main is not None else []
            below = [c["cobb_deg"] for c in curves[main + 1 :]] if main is not None else []
            angles = [float(v["major_cobb_deg"]), max(above, default=0.0), max(below, default=0.0)]
            image = np.round(read_display(root / v["image"]) * 255).astype(np.uint8)
            yield f"{p['patient_id']}_{view}", image, np.asarray(v["corners"]), angles

    return write_aasce(out_dir, films(), split=out_split)
