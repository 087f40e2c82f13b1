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

"""Per-study reports: read masks, measure every view, classify, and write a JSON report and a figure.

This is the door of the ``r2mf-monai measure`` command and of anyone holding mask files: masks produced by the
bundle (paper §3.9 post-processing), or drawn by hand. It reads PNG/JPEG/TIFF/BMP, DICOM (including single-frame
DICOM SEG) and NIfTI masks itself so that the measurement layer needs nothing but masks and pixel spacing.

:func:`measure_path` takes a mask file (one-view report) or a folder of files named ``<patient>_<view>.<ext>`` (or
``<patient>_<view>_mask.<ext>`` as ``r2mf-monai infer`` writes them) with views ``coronal``, ``left_bending``,
``right_bending``: one report per patient.
Outputs are written atomically (temporary name, then ``os.replace``) as ``<name>_measurements.json`` and
``<name>_measurements.png``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from r2mf_monai import __version__
from r2mf_monai.constants import VIEWS
from r2mf_monai.measure.centreline import parse_spacing
from r2mf_monai.measure.cobb import ViewMeasurement, measure_mask
from r2mf_monai.measure.lenke import LenkeClassification, classify_lenke
from r2mf_monai.measure.levels import LevelModel
from r2mf_monai.outputs.atomic import write_json, write_with

__all__ = [
    "MASK_SUFFIXES",
    "StudyReport",
    "read_mask",
    "read_image",
    "measure_study",
    "write_report",
    "measure_path",
]

logger = logging.getLogger(__name__)

MASK_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".nii", ".nii.gz")
_NAME = re.compile(
    r"^(?P<patient>.+?)_(?P<view>coronal|left_bending|right_bending)(?:_(?:mask|seg|label|labels|pred))?$", re.I
)
_FORMAT = "r2mf-monai measurements 1"

CONVENTIONS = {
    "image_sides": "convexity and deviations are given in image sides (image_left/image_right); the patient's side "
    "follows from the display convention (PA: patient seen from behind, image right = patient right; AP/radiological:"
    " image right = patient left)",
    "endplate_tilt_deg": "tilt of the column axis from the image vertical at an end level, equal to the endplate's "
    "tilt from the horizontal; positive when the column runs towards the image right going down",
    "apex_deviation_from_csvl": "horizontal distance of the apex from the centre sacral vertical line (image vertical "
    "through the centre of the sacrum), positive towards the image right",
    "trunk_lean_deg": "angle from the image vertical of the line from the sacral centre to the top of the column, "
    "positive when the top is to the image right",
    "cobb_deg": "difference of the centreline's extreme tangent angles bounding the curve (endplates are "
    "perpendicular to the column axis)",
}


@dataclass
class StudyReport:
    """Measurements of one patient (one to three views) and their Lenke classification.

    Attributes:
        patient_id: the patient (or file) name.
        views: view name (or file stem for unnamed views) -> :class:`.cobb.ViewMeasurement`.
        lenke: the :class:`.lenke.LenkeClassification`, or ``None`` without a coronal view.
        masks: view -> the (H, W) boolean mask (for the figure; not written to JSON).
        sources: view -> the file it came from.
        parameters: the parameters used.
        undetermined: what could not be determined.
        approximations: the approximations the numbers rest on.
    """

    patient_id: str
    views: dict[str, ViewMeasurement]
    lenke: LenkeClassification | None = None
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    undetermined: list[str] = field(default_factory=list)
    approximations: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The JSON report."""
        units = sorted({v.unit for v in self.views.values()})
        return {
            "format": _FORMAT,
            "software": {"name": "r2mf-monai", "version": __version__},
            "patient_id": self.patient_id,
            "units": {"angles": "deg", "lengths": units[0] if len(units) == 1 else "per view (see views)"},
            "sources": dict(self.sources),
            "views": {k: v.to_dict() for k, v in self.views.items()},
            "flexibility": [] if self.lenke is None else [c.to_dict() for c in self.lenke.curves],
            "lenke": None if self.lenke is None else {k: v for k, v in self.lenke.to_dict().items() if k != "curves"},
            "undetermined": list(self.undetermined),
            "approximations": list(self.approximations),
            "conventions": CONVENTIONS,
            "parameters": dict(self.parameters),
        }


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(MASK_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


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
        path: PNG/JPEG/TIFF/BMP, DICOM (``.dcm``, also single-frame SEG) or NIfTI (``.nii``, ``.nii.gz``) file.

    Returns:
        ``(mask, spacing, meta)``: the array (values > 0.5 are the column), ``(row, column)`` mm or ``None``, and
        extra facts (``patient_orientation`` of a DICOM file).

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when the file cannot be read as a 2-D mask.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"mask file not found: {p}")
    name = p.name.lower()
    try:
        if name.endswith(".dcm"):
            arr, spacing, meta = _read_dicom(p)
        elif name.endswith((".nii", ".nii.gz")):
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
        raise ValueError(f"cannot read mask {p}: {err}") from err
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise ValueError(f"mask {p} must be a 2-D image, got shape {arr.shape}.")
    return arr, spacing, meta


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Read a radiograph for display: (H, W) float in [0, 1] (MONOCHROME1 inverted, 1-99 % window) and its spacing.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when the file cannot be read as a 2-D image.
    """
    arr, spacing, meta = read_mask(path)
    img = arr.astype(np.float32)
    if meta.get("photometric") == "MONOCHROME1":
        img = img.max() - img
    lo, hi = np.percentile(img, [1, 99])
    img = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)
    return img, spacing


def measure_study(
    masks: Mapping[str, np.ndarray],
    spacing: float | tuple[float, float] | Mapping[str, Any] | None = None,
    patient_id: str = "patient",
    orientation: str = "auto",
    min_cobb: float = 5.0,
    smoothing: float = 0.1,
    levels: LevelModel | None = None,
    sources: Mapping[str, str] | None = None,
) -> StudyReport:
    """Measure every view of one patient and classify the curves (Lenke) when the coronal view is there.

    Args:
        masks: view -> (H, W) mask; views ``"coronal"``, ``"left_bending"``, ``"right_bending"`` (other names are
            measured but take no part in the classification).
        spacing: pixel spacing in mm for all views (a number or ``(row, column)``), or view -> spacing; ``None`` gives
            lengths in pixels.
        patient_id: the name written in the report.
        orientation: display convention ``"PA"``, ``"AP"`` or ``"auto"`` (see :func:`.lenke.resolve_orientation`).
        min_cobb: smallest Cobb angle reported, degrees. Defaults to ``5.0``.
        smoothing: centreline smoothing window as a fraction of the column length. Defaults to ``0.1``.
        levels: the vertebral level model. Defaults to ``LevelModel()``.
        sources: view -> file name, recorded in the report.

    Returns:
        the :class:`StudyReport`.

    Raises:
        ValueError: for no masks, or a mask that cannot be measured (the view is named in the message).
    """
    if not masks:
        raise ValueError("measure_study needs at least one mask.")
    levels = LevelModel() if levels is None else levels
    views: dict[str, ViewMeasurement] = {}
    bool_masks: dict[str, np.ndarray] = {}
    for name, mask in masks.items():
        sp = spacing.get(name) if isinstance(spacing, Mapping) else spacing
        src = (sources or {}).get(name, name)
        try:
            vm = measure_mask(mask, spacing=sp, view=name, min_cobb=min_cobb, smoothing=smoothing, levels=levels)
        except ValueError as err:
            raise ValueError(f"{patient_id} {name} ({src}): {err}") from err
        views[name] = vm
        bool_masks[name] = np.asarray(mask) > 0.5
    undetermined: list[str] = []
    approximations = [
        "centreline: mid-line of the mask smoothed over "
        f"{smoothing:.0%} of the column length; Cobb angles from its tangent, not from individual endplates",
        "vertebral levels estimated from the column's arc length in typical vertebral-height proportions "
        f"({levels.top} to the bottom of a {levels.sacrum_mm:.0f} mm sacrum); labels may be off by about one level",
    ]
    if any(v.unit == "px" for v in views.values()):
        undetermined.append("lengths in mm for views without pixel spacing (given in pixels)")
    lenke = None
    if "coronal" in views:
        lenke = classify_lenke(
            views["coronal"], views.get("left_bending"), views.get("right_bending"), orientation=orientation
        )
        undetermined += lenke.undetermined
        approximations += [a for a in lenke.approximations if a not in approximations and "levels" not in a]
    else:
        undetermined.append("flexibility and Lenke classification: need the coronal view (and the bending views)")
    return StudyReport(
        patient_id=patient_id,
        views=views,
        lenke=lenke,
        masks=bool_masks,
        sources=dict(sources or {}),
        parameters={
            "min_cobb_deg": float(min_cobb),
            "smoothing_fraction": float(smoothing),
            "orientation": orientation,
            "level_model": levels.to_dict(),
            "structural_side_bending_cobb_deg": 25.0,
        },
        undetermined=undetermined,
        approximations=approximations,
    )


def write_report(
    report: StudyReport,
    output_dir: str | os.PathLike,
    images: Mapping[str, np.ndarray] | None = None,
    figure: bool = True,
) -> dict[str, str]:
    """Write ``<patient>_measurements.json`` and (with ``figure``) ``<patient>_measurements.png`` atomically.

    Args:
        report: the :class:`StudyReport`.
        output_dir: folder to write into (created).
        images: view -> radiograph (H, W) in [0, 1] shown under the drawing; views without one show their mask.
        figure: also draw the figure. Defaults to ``True``.

    Returns:
        ``{"report": json_path, "figure": png_path}`` (no ``figure`` key without a figure).
    """
    out = Path(output_dir)
    json_path = out / f"{report.patient_id}_measurements.json"
    write_json(json_path, report.to_dict(), allow_nan=False)
    logger.info("measurements of %s written to %s", report.patient_id, json_path)
    paths = {"report": str(json_path)}
    if figure:
        from r2mf_monai.measure.figure import draw_study

        png_path = out / f"{report.patient_id}_measurements.png"
        write_with(png_path, lambda tmp: draw_study(report, tmp, images=images))
        logger.info("figure of %s written to %s", report.patient_id, png_path)
        paths["figure"] = str(png_path)
    return paths


def _find_image(images: Path | None, stem: str) -> Path | None:
    if images is None:
        return None
    if images.is_file():
        return images
    bare = re.sub(r"_(?:mask|seg|label|labels|pred)$", "", stem, flags=re.I)
    for name in dict.fromkeys((stem, bare)):
        for suffix in MASK_SUFFIXES:
            p = images / f"{name}{suffix}"
            if p.is_file():
                return p
    return None


def _summary(report: StudyReport) -> str:
    parts = []
    for name, vm in report.views.items():
        curves = ", ".join(f"{c.name} {c.cobb_deg:.0f}" for c in vm.curves) or "no curve"
        parts.append(f"{name}: {curves}")
    if report.lenke is not None:
        parts.append(f"Lenke {report.lenke.label}")
    return "; ".join(parts)


def measure_path(
    masks: str | os.PathLike,
    output: str | os.PathLike | None = None,
    spacing: float | tuple[float, float] | None = None,
    images: str | os.PathLike | None = None,
    orientation: str = "auto",
    min_cobb: float = 5.0,
    smoothing: float = 0.1,
    sacrum_mm: float = 75.0,
    figure: bool = True,
) -> dict[str, dict[str, str]]:
    """Measure a mask file or a folder of masks and write one report (JSON + PNG) per patient.

    Args:
        masks: a mask file (one-view report), or a folder of files ``<patient>_<view>[_mask].<ext>`` with views
            ``coronal``, ``left_bending``, ``right_bending`` (one report per patient; other files are skipped with a
            warning). A folder in which no file is named so gets a one-view report per file.
        output: folder for the reports. Defaults to a ``measurements`` folder beside the masks (inside a masks
            folder, next to a mask file).
        spacing: pixel spacing in mm for files that do not carry one (DICOM and NIfTI masks carry theirs); ``None``
            measures such files in pixels.
        images: the matching radiograph file or folder (same stems), drawn under the masks in the figure; a DICOM
            radiograph also supplies the pixel spacing when the mask has none.
        orientation: display convention ``"PA"``, ``"AP"`` or ``"auto"``. Defaults to ``"auto"``; a DICOM mask's
            PatientOrientation, when present, decides it.
        min_cobb: smallest Cobb angle reported, in degrees. Defaults to ``5.0``.
        smoothing: centreline smoothing window as a fraction of the column length. Defaults to ``0.1``.
        sacrum_mm: height of the sacrum in the masks for the level model (see :class:`.levels.LevelModel`).
            Defaults to ``75.0``.
        figure: also write the PNG figure. Defaults to ``True``.

    Returns:
        patient -> ``{"report": ..., "figure": ..., "summary": ...}``.

    Raises:
        FileNotFoundError: when ``masks`` (or ``images``) does not exist or a folder holds no mask file.
        ValueError: when a mask cannot be read or measured (the file is named).
    """
    src = Path(masks)
    if not src.exists():
        raise FileNotFoundError(f"masks not found: {src}")
    img_root = None if images is None else Path(images)
    if img_root is not None and not img_root.exists():
        raise FileNotFoundError(f"images not found: {img_root}")
    default_spacing = parse_spacing(spacing)
    if src.is_file():
        files = [src]
        out = Path(output) if output is not None else src.parent / "measurements"
    else:
        files = sorted(p for p in src.iterdir() if p.is_file() and p.name.lower().endswith(MASK_SUFFIXES))
        if not files:
            raise FileNotFoundError(f"no mask files ({', '.join(MASK_SUFFIXES)}) in {src}")
        out = Path(output) if output is not None else src / "measurements"

    groups: dict[str, dict[str, Path]] = {}
    named = [(f, _NAME.match(_stem(f))) for f in files]
    if src.is_dir() and any(m for _, m in named):
        for f, m in named:
            if m is None:
                logger.warning("skipping %s: not named <patient>_<view> like the other masks in %s", f, src)
                continue
            views = groups.setdefault(m["patient"], {})
            view = m["view"].lower()
            if view in views:
                logger.warning("skipping %s: %s already has a %s mask (%s)", f, m["patient"], view, views[view])
                continue
            views[view] = f
    else:  # a single file, or a folder of masks without view names: one-view reports
        for f, m in named:
            groups[_stem(f)] = {m["view"].lower() if m else _stem(f): f}

    levels = LevelModel(sacrum_mm=sacrum_mm)
    results: dict[str, dict[str, str]] = {}
    try:
        from tqdm import tqdm

        iterator = tqdm(sorted(groups.items()), desc="measure", disable=len(groups) < 2)
    except ImportError:  # pragma: no cover - tqdm is a dependency
        iterator = sorted(groups.items())
    for patient, view_files in iterator:
        arrays, spacings, sources, shown = {}, {}, {}, {}
        orient = orientation
        for view in [v for v in VIEWS if v in view_files] + [v for v in view_files if v not in VIEWS]:
            f = view_files[view]
            arr, sp, meta = read_mask(f)
            img_file = _find_image(img_root, _stem(f))
            if img_file is not None:
                img, img_sp = read_image(img_file)
                if img.shape != arr.shape:
                    raise ValueError(f"image {img_file} has shape {img.shape} but its mask {f} has {arr.shape}.")
                shown[view] = img
                sp = sp or img_sp
            arrays[view], spacings[view], sources[view] = arr, sp or default_spacing, str(f)
            po = meta.get("patient_orientation")
            if orient == "auto" and po and po[0][:1] in ("L", "R"):
                # the row direction points to the patient's left: image right = patient left (AP display), and v.v.
                orient = "AP" if po[0][:1] == "L" else "PA"
        report = measure_study(
            arrays,
            spacing=spacings,
            patient_id=patient,
            orientation=orient,
            min_cobb=min_cobb,
            smoothing=smoothing,
            levels=levels,
            sources=sources,
        )
        paths = write_report(report, out, images=shown, figure=figure)
        paths["summary"] = _summary(report)
        logger.info("%s: %s", patient, paths["summary"])
        results[patient] = paths
    return results
