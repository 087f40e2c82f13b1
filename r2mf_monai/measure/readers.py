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

"""Reading mask files and radiographs for the measurement: PNG/JPEG/TIFF/BMP, DICOM (also single-frame DICOM SEG)
and NIfTI, with the pixel spacing the file carries, so that the measurement layer needs nothing but masks and pixel
spacing.

A mask is binary: :func:`read_mask` refuses a file with more than two values, or values other than 0 and 1 or 0 and
255 (a radiograph, an overlay, a lossy JPEG), naming it, so that a wrong folder is an error and not a report of
angles measured on a picture. :func:`mask_files` picks the masks of a folder: the ``*_mask.*`` files when it has
any (what ``r2mf-monai infer`` writes), never r2mf-monai's other outputs (overlays, reports, Secondary Captures).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from r2mf_monai.constants import DICOM_SUFFIXES, NIFTI_SUFFIXES, RADIOGRAPH_SUFFIXES
from r2mf_monai.measure.centreline import parse_spacing

__all__ = ["MASK_SUFFIXES", "check_binary", "mask_files", "read_image", "read_mask", "stem"]

MASK_SUFFIXES: tuple[str, ...] = RADIOGRAPH_SUFFIXES  # a mask may come in any format a radiograph does

# the postfix of the masks r2mf-monai writes (SaveSegmentationd's ``output_postfix``) and of its outputs that are
# pictures or reports, not masks (``overlay_postfix``, the Secondary Capture, measure's reports)
_MASK_POSTFIX = "_mask"
_NOT_MASK_POSTFIXES = ("_overlay", "_sc", "_measurements")
# one file per mask when infer wrote it in several formats: the one that carries the pixel spacing first
_PREFERRED_SUFFIXES = NIFTI_SUFFIXES + DICOM_SUFFIXES


def stem(path: Path) -> str:
    """A mask file's name without its (possibly double, ``.nii.gz``) suffix."""
    name = path.name
    for suffix in sorted(MASK_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def mask_files(folder: str | os.PathLike) -> list[Path]:
    """The mask files of ``folder`` (not its sub-folders, so never a ``measurements/`` folder inside it), sorted.

    When the folder holds ``<name>_mask.<ext>`` files (what ``r2mf-monai infer`` writes), only those; otherwise every
    file with a suffix of :data:`MASK_SUFFIXES` except r2mf-monai's overlays, Secondary Captures and reports. A mask
    written in several formats (``_mask.png`` and ``_mask.nii.gz``) is taken once, NIfTI or DICOM first (they carry
    the pixel spacing).
    """
    files = [
        p
        for p in Path(folder).iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(MASK_SUFFIXES)
    ]
    masks = [p for p in files if stem(p).lower().endswith(_MASK_POSTFIX)]
    if not masks:
        masks = [p for p in files if not stem(p).lower().endswith(_NOT_MASK_POSTFIXES)]
    chosen: dict[str, Path] = {}
    for p in sorted(masks, key=lambda p: (not p.name.lower().endswith(_PREFERRED_SUFFIXES), p.name)):
        chosen.setdefault(stem(p), p)
    return sorted(chosen.values())


def check_binary(arr: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """``arr`` when it is a binary mask: at most two values, drawn from 0 and 1 or from 0 and 255.

    Raises:
        ValueError: naming ``path`` and the values found, when it is not (a radiograph, an overlay, a lossy JPEG).
    """
    values = np.unique(arr)
    if values.size > 2 or not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
        shown = ", ".join(f"{v:g}" for v in values[:4].tolist()) + (", ..." if values.size > 4 else "")
        raise ValueError(
            f"{path} is not a binary mask ({values.size} values: {shown}; a mask holds 0 and 1 or 0 and 255): "
            "give the masks, not the radiographs or the overlays"
        )
    return arr


def _dicom_spacing(ds: Any) -> tuple[float, float] | None:
    """PixelSpacing, else ImagerPixelSpacing, else the SEG's shared Pixel Measures; ``None`` when absent or zero."""
    candidates = [getattr(ds, "PixelSpacing", None), getattr(ds, "ImagerPixelSpacing", None)]
    with contextlib.suppress(AttributeError, IndexError, KeyError):
        candidates.append(ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing)
    for value in candidates:
        try:
            sp = parse_spacing([float(v) for v in value]) if value is not None else None
        except (TypeError, ValueError):
            sp = None
        if sp is not None:
            return sp
    return None


def _read_dicom(path: Path) -> tuple[np.ndarray, tuple[float, float] | None, dict]:
    import pydicom

    ds = pydicom.dcmread(str(path))
    arr = np.asarray(ds.pixel_array)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    meta: dict[str, Any] = {}
    po = getattr(ds, "PatientOrientation", None)
    if po is not None and len(po) >= 1 and str(po[0]).strip():
        meta["patient_orientation"] = [str(v) for v in po]
    meta["photometric"] = str(getattr(ds, "PhotometricInterpretation", ""))
    return arr, _dicom_spacing(ds), meta


def _read_nifti(path: Path) -> tuple[np.ndarray, tuple[float, float] | None, dict]:
    import nibabel as nib

    img = nib.load(str(path))
    arr = np.squeeze(np.asarray(img.dataobj))
    if arr.ndim != 2:
        raise ValueError(f"NIfTI mask {path} must hold one 2-D image, got shape {arr.shape}.")
    # MONAI writes 2-D images as array[x, y] (x = image column): transpose to (H, W) with row 0 at the top
    arr = arr.T
    zooms = [float(z) for z in img.header.get_zooms()[:2]]
    spacing = None if all(abs(z - 1.0) < 1e-9 for z in zooms) else parse_spacing((zooms[1], zooms[0]))
    return arr, spacing, {"note": "NIfTI read as array[x, y] (MONAI's 2-D convention) and transposed"}


def read_mask(path: str | os.PathLike) -> tuple[np.ndarray, tuple[float, float] | None, dict]:
    """Read a mask file as an (H, W) array with its pixel spacing when the file carries one.

    Args:
        path: PNG/JPEG/TIFF/BMP/GIF, DICOM (``.dcm``, ``.dicom``, ``.dic``; also single-frame SEG) or NIfTI
            (``.nii``, ``.nii.gz``) file: a suffix of :data:`MASK_SUFFIXES`.

    Returns:
        ``(mask, spacing, meta)``: the array (values > 0.5 are the column), ``(row, column)`` mm or ``None``, and
        extra facts (``patient_orientation`` of a DICOM file).

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when the file cannot be read as a 2-D mask, or is not binary (:func:`check_binary`).
    """
    arr, spacing, meta = _read_array(path)
    return check_binary(arr, path), spacing, meta


def _read_array(path: str | os.PathLike, kind: str = "mask") -> tuple[np.ndarray, tuple[float, float] | None, dict]:
    """Read any supported file as an (H, W) array with its spacing and facts (:func:`read_mask` without the check);
    ``kind`` names the file in errors ("mask", "radiograph")."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"file not found: {p}")
    name = p.name.lower()
    try:
        if name.endswith(DICOM_SUFFIXES):
            arr, spacing, meta = _read_dicom(p)
        elif name.endswith(NIFTI_SUFFIXES):
            arr, spacing, meta = _read_nifti(p)
        else:
            from PIL import Image

            with Image.open(p) as im:
                if im.mode in ("LA", "PA"):
                    im = im.getchannel(0)  # grey level or palette index, without the alpha channel
                elif im.mode not in ("1", "L", "P", "I", "I;16", "F"):
                    im = im.convert("L")
                arr = np.asarray(im)  # a palette ("P") image gives its indices: label masks keep their labels
            spacing, meta = None, {}
    except Exception as err:  # any reader failure is the file's fault: name the file once
        if isinstance(err, ValueError) and str(p) in str(err):
            raise
        raise ValueError(f"cannot read {kind} {p}: {err}") from err
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise ValueError(f"{kind} {p} must be a 2-D image, got shape {arr.shape}.")
    return arr, spacing, meta


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Read a radiograph for display: (H, W) float in [0, 1] (MONOCHROME1 inverted, 1-99 % window) and its spacing.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when the file cannot be read as a 2-D image.
    """
    arr, spacing, meta = _read_array(path, kind="radiograph")
    img = arr.astype(np.float32)
    if meta.get("photometric") == "MONOCHROME1":
        img = img.max() - img
    lo, hi = np.percentile(img, [1, 99])
    img = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)
    return img, spacing
