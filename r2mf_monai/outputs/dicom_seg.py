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

"""DICOM Segmentation (SEG) objects of the spinal column for single-frame radiographs (CR, DX, secondary capture).

Not a paper equation: the DICOM output of the segmentation of the paper's §3 (one binary segment, the whole spinal
column). Built with highdicom, with the fixes real CR/DX files need (each checked with ``dciodvfy``, see
``bundle/docs/README.md``):

* projection radiographs have no Frame of Reference, and their Pixel Spacing is often missing or ``0\\0``. highdicom
  copies it into the SEG's Pixel Measures without a Slice Thickness, which ``dciodvfy`` rejects when zero and which
  highdicom's own reader (``segread``) then refuses. Without a Frame of Reference the SEG therefore carries no Pixel
  Measures: it is pixel-aligned with the referenced source image, whose spacing applies;
* Patient Orientation (Type 2C in the General Image module when there is no Image Orientation) is copied from the
  source, or left empty when the source has none.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sr.codedict import codes

from r2mf_monai.outputs.atomic import atomic_write

__all__ = ["read_dicom_header", "spinal_column_segment", "uid_file_part", "write_dicom_seg"]

logger = logging.getLogger(__name__)

#: Recommended display colour of the segment: the overlays' vermillion (Okabe-Ito, RGB 213, 94, 0).
SEGMENT_RGB = (213, 94, 0)


def _source_name(source: str | os.PathLike | Dataset) -> str:
    if isinstance(source, Dataset):
        filename = getattr(source, "filename", None)
        if isinstance(filename, str) and filename:
            return filename
        return f"the source dataset (SOPInstanceUID {source.get('SOPInstanceUID', '?')})"
    return os.fspath(source)


def _source_dataset(
    source: str | os.PathLike | Dataset, required: Sequence[str], not_dicom: str, lacking: str
) -> tuple[str, Dataset]:
    """The name and (header) dataset of the DICOM source of a derived object (SEG, Secondary Capture).

    Args:
        source: a dataset, or the path of a DICOM file (read without its pixel data).
        required: attributes the derived object needs from the source.
        not_dicom: message of the error for a file that is not DICOM, formatted with ``name``.
        lacking: message of the error for a source without some of ``required``, formatted with ``name`` and
            ``missing``.

    Raises:
        FileNotFoundError: ``source`` is a path that does not exist.
        ValueError: with ``not_dicom`` or ``lacking``.
    """
    name = _source_name(source)
    ds = source if isinstance(source, Dataset) else read_dicom_header(source)
    if ds is None:
        raise ValueError(not_dicom.format(name=name))
    missing = [k for k in required if k not in ds]
    if missing:
        raise ValueError(lacking.format(name=name, missing=", ".join(missing)))
    return name, ds


def uid_file_part(uid: object) -> str:
    """A DICOM UID as part of a file name, so that no attribute value reaches a path unchecked.

    A valid UID (pydicom's rule, :data:`pydicom.uid.RE_VALID_UID`: digits and dots, no leading zeros, at most 64
    characters; matched on the whole text, so a trailing newline is refused too) is used as it is. Anything else
    (``1/../../escaped``, an empty or missing value) is replaced by ``h`` and the first 16 hex digits of its SHA-256.

    Args:
        uid: the attribute's value (e.g. a dataset's ``SOPInstanceUID``), any type.

    Returns:
        A name part of digits and dots, or ``h`` and 16 hex digits.
    """
    text = "" if uid is None else str(uid)
    if len(text) <= 64 and pydicom.uid.RE_VALID_UID.fullmatch(text):
        return text
    return "h" + hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def read_dicom_header(path: str | os.PathLike) -> Dataset | None:
    """Read a DICOM file's attributes without its pixel data; ``None`` when the file is not DICOM.

    Args:
        path: the file.

    Returns:
        The dataset (no Pixel Data), or ``None`` for a readable non-DICOM file (PNG, NIfTI, ...).

    Raises:
        FileNotFoundError: when ``path`` is not a file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"DICOM source {path!r} does not exist or is not a file.")
    errors = (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OSError, AttributeError)
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        pass  # no 128-byte preamble and "DICM": maybe an old raw data set, tried below
    except errors as e:
        logger.debug("%s is not a readable DICOM file: %s", path, e)
        return None
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        # force=True "reads" any file; accept it only if it holds what an image needs
        return ds if all(k in ds for k in ("SOPClassUID", "SOPInstanceUID", "Rows", "Columns")) else None
    except errors as e:
        logger.debug("%s is not a readable DICOM file: %s", path, e)
        return None


def spinal_column_segment(
    segment_number: int = 1, label: str = "Spinal column", algorithm_version: str | None = None
) -> hd.seg.SegmentDescription:
    """The segment description of the R2MF-Net spinal column: an automatic segmentation by an AI algorithm.

    Segmented property category: Anatomical Structure (SCT 91723000); type: Spine (SCT 421060004, "Spinal
    structure", the vertebral column; pydicom's code dictionary has no separate ``SpinalColumn`` or
    ``VertebralColumn`` entry). Algorithm: "R2MF-Net", family Artificial Intelligence (DCM 123110), version
    ``r2mf_monai.__version__`` unless given.

    Args:
        segment_number: the segment's number. Defaults to ``1``.
        label: the segment label. Defaults to ``"Spinal column"``.
        algorithm_version: the algorithm version; defaults to the package version.

    Returns:
        A highdicom segment description.
    """
    if algorithm_version is None:
        from r2mf_monai import __version__ as algorithm_version
    algorithm = hd.AlgorithmIdentificationSequence(
        name="R2MF-Net", family=codes.DCM.ArtificialIntelligence, version=str(algorithm_version)
    )
    return hd.seg.SegmentDescription(
        segment_number=segment_number,
        segment_label=label,
        segmented_property_category=codes.SCT.AnatomicalStructure,
        segmented_property_type=codes.SCT.Spine,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        display_color=hd.color.CIELabColor.from_rgb(*SEGMENT_RGB),
    )


# what a SEG needs to reference and align with its source
_REQUIRED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Rows", "Columns")
# Type 2 patient/study attributes highdicom copies from the source
_TYPE2_COPIED = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)


_DA = re.compile(r"^\d{8}$")
_TM = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")


def _normalise_dates_and_times(ds: Dataset) -> None:
    """Rewrite legacy ``1997.04.24`` / ``14:04:38`` values (ACR-NEMA style) as ``19970424`` / ``140438``; empty others.

    Hand-written: highdicom refuses non-conformant TM values and copies non-conformant DA values into the SEG,
    where a validator flags them; pydicom has no normaliser for these legacy forms.
    """
    for keyword, pattern, separator in (
        ("StudyDate", _DA, "."),
        ("PatientBirthDate", _DA, "."),
        ("StudyTime", _TM, ":"),
    ):
        value = str(ds.get(keyword, "") or "").strip()
        if value and not pattern.match(value):
            fixed = value.replace(separator, "")
            delattr(ds, keyword)  # a new element: the old one may be shared with the caller's dataset
            setattr(ds, keyword, fixed if pattern.match(fixed) else "")


def _has_patient_geometry(ds: Dataset) -> bool:
    return all(k in ds for k in ("FrameOfReferenceUID", "ImagePositionPatient", "ImageOrientationPatient"))


def write_dicom_seg(
    source: str | os.PathLike | Dataset,
    mask: np.ndarray,
    output: str | os.PathLike,
    *,
    segment_label: str = "Spinal column",
    series_number: int = 300,
    series_description: str = "Spinal column segmentation (R2MF-Net)",
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    algorithm_version: str | None = None,
    device_serial_number: str = "0000",
    root: str | os.PathLike | None = None,
) -> Path:
    """Write a binary DICOM SEG of the spinal column, aligned pixel for pixel with a single-frame source image.

    The SEG references the source's study, series and instance, shares its patient and study attributes, and holds
    one segment (see :func:`spinal_column_segment`). An empty mask is written as an empty frame, not skipped, so a
    "nothing found" result is explicit. The file is written atomically (temporary name, then rename).

    Read it back with ``highdicom.seg.segread(output).get_pixels_by_source_instance([source_sop_uid],
    segment_numbers=[1])``, which gives ``(1, Rows, Columns, 1)``.

    Args:
        source: the source radiograph: a DICOM file path or a pydicom dataset (pixel data not needed).
        mask: (Rows, Columns) mask of the source's stored pixel grid, row 0 at the top; foreground where
            ``> 0.5`` (bool, 0/1 or 0/255). A MONAI (1, W, H) array must be squeezed and transposed first.
        output: the ``.dcm`` file to write.
        segment_label: the segment label. Defaults to ``"Spinal column"``.
        series_number: series number of the SEG. Defaults to ``300``.
        series_description: series description. Defaults to ``"Spinal column segmentation (R2MF-Net)"``.
        series_instance_uid: UID of the SEG series; a new one when ``None``.
        sop_instance_uid: UID of the SEG instance; a new one when ``None``.
        algorithm_version: version in the Algorithm Identification; defaults to ``r2mf_monai.__version__``.
        device_serial_number: Device Serial Number (Type 1 in Enhanced General Equipment). Defaults to ``"0000"``.
        root: the output folder ``output`` must stay inside (see :func:`r2mf_monai.outputs.atomic.check_inside`).

    Returns:
        The written path.

    Raises:
        FileNotFoundError: when ``source`` is a path that does not exist.
        ValueError: when ``source`` is not a DICOM image, is multi-frame, or the mask's shape is not its
            Rows x Columns (each message names the source file).
    """
    name, ds = _source_dataset(
        source,
        _REQUIRED,
        not_dicom="DICOM source {name!r} is not a DICOM file; a DICOM SEG needs a DICOM source image.",
        lacking="DICOM source {name!r} is not an image a SEG can reference: it lacks {missing}.",
    )
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError) as e:
        raise ValueError(f"DICOM source {name!r} has an unreadable NumberOfFrames: {e}") from e
    if frames > 1:
        raise ValueError(
            f"DICOM source {name!r} has {ds.NumberOfFrames} frames; only single-frame radiographs are supported."
        )
    rows, cols = int(ds.Rows), int(ds.Columns)
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.shape != (rows, cols):
        hint = " (it looks transposed: pass (H, W), not MONAI's (W, H))" if mask.shape == (cols, rows) else ""
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not match DICOM source {name!r}: Rows x Columns is "
            f"{rows} x {cols}{hint}."
        )
    binary = mask if mask.dtype == bool else mask > 0.5

    # A header-only working copy: highdicom needs no pixel data, and removing attributes must not touch the caller's.
    src = Dataset()
    for element in ds:
        if element.keyword != "PixelData":
            src.add(element)
    if hasattr(ds, "file_meta"):
        src.file_meta = ds.file_meta
    for keyword in _TYPE2_COPIED:
        # Type 2 patient/study attributes highdicom copies: absent on some real (anonymised) files, empty is valid
        if keyword not in src:
            setattr(src, keyword, "")
    _normalise_dates_and_times(src)
    if not _has_patient_geometry(src):
        # No patient coordinate system (every CR/DX seen so far): no Pixel Measures. highdicom would copy a
        # PixelSpacing (0\0 on some real CRs, which dciodvfy rejects) without a Slice Thickness, which highdicom's
        # own segread then refuses. The SEG is pixel-aligned with the referenced source, whose spacing applies.
        for keyword in ("PixelSpacing", "SliceThickness", "SpacingBetweenSlices"):
            if keyword in src:
                delattr(src, keyword)

    try:
        seg = _build_segmentation(
            src,
            binary,
            segment_label,
            series_number,
            series_description,
            series_instance_uid,
            sop_instance_uid,
            algorithm_version,
            device_serial_number,
        )
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"cannot build a DICOM SEG for DICOM source {name!r}: {e}") from e
    if not _has_patient_geometry(src):
        # Type 2C in General Image when the image has no orientation: copy it, empty when the source has none
        seg.PatientOrientation = ds.get("PatientOrientation", "")

    with atomic_write(output, root=root) as tmp:
        if int(pydicom.__version__.split(".")[0]) >= 3:
            pydicom.dcmwrite(tmp, seg, enforce_file_format=True)
        else:  # pragma: no cover - pydicom 2.x
            pydicom.dcmwrite(tmp, seg, write_like_original=False)
    logger.info("DICOM SEG of %s written to %s", name, output)
    return Path(output)


def _build_segmentation(
    src: Dataset,
    binary: np.ndarray,
    segment_label: str,
    series_number: int,
    series_description: str,
    series_instance_uid: str | None,
    sop_instance_uid: str | None,
    algorithm_version: str | None,
    device_serial_number: str,
) -> hd.seg.Segmentation:
    from r2mf_monai import __version__

    return hd.seg.Segmentation(
        source_images=[src],
        pixel_array=binary.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[spinal_column_segment(label=segment_label, algorithm_version=algorithm_version)],
        series_instance_uid=series_instance_uid or hd.UID(),
        series_number=series_number,
        sop_instance_uid=sop_instance_uid or hd.UID(),
        instance_number=1,
        manufacturer="r2mf-monai",
        manufacturer_model_name="R2MF-Net",
        software_versions=str(__version__),
        device_serial_number=device_serial_number,
        content_label="SPINE",
        content_description="Spinal column segmented by R2MF-Net (research use)",
        series_description=series_description,
        omit_empty_frames=False,
    )
