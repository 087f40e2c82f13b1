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
bundle (paper §3.9 post-processing), or drawn by hand. Files are read by :mod:`.readers`, the study is measured by
:mod:`.study` and drawn by :mod:`.figure` (the names below are re-exported from there: one import for callers).

:func:`measure_path` takes a mask file (one-view report) or a folder of files named ``<patient>_<view>.<ext>`` (or
``<patient>_<view>_mask.<ext>`` as ``r2mf-monai infer`` writes them) with views ``coronal``, ``left_bending``,
``right_bending``: one report per patient. A file whose name carries no view is one film: a coronal one unless
``view`` says otherwise, so that it gets its Lenke classification.
Outputs are written atomically (temporary name, then ``os.replace``) as ``<name>_measurements.json`` and
``<name>_measurements.png``. A mask that carries no measurable column (empty, a fragment, a looping centreline) is
reported as not measured with the reason (one warning naming the file); the other views and patients are measured.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from r2mf_monai.constants import VIEWS
from r2mf_monai.measure.centreline import parse_spacing
from r2mf_monai.measure.levels import LevelModel
from r2mf_monai.measure.readers import MASK_SUFFIXES, mask_files, read_image, read_mask, stem
from r2mf_monai.measure.study import StudyReport, measure_study
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

_NAME = re.compile(
    r"^(?P<patient>.+?)_(?P<view>coronal|left_bending|right_bending)(?:_(?:mask|seg|label|labels|pred))?$", re.I
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
    parts += [f"{name}: not measured" for name in report.not_measured]
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
    view: str = "coronal",
    lowest_level: str = "auto",
) -> dict[str, dict[str, str]]:
    """Measure a mask file or a folder of masks and write one report (JSON + PNG) per patient.

    Args:
        masks: a mask file (one-view report), or a folder of files ``<patient>_<view>[_mask].<ext>`` with views
            ``coronal``, ``left_bending``, ``right_bending`` (one report per patient; other files are skipped with a
            warning). A folder in which no file is named so gets a one-view report per file, each taken as ``view``.
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
        view: the view of a file whose name carries none (``coronal``, ``left_bending``, ``right_bending``).
            Defaults to ``"coronal"``: a single film is measured as a coronal one and gets its Lenke classification.
        lowest_level: where the masks end: ``"auto"``, ``"S"`` (sacrum included) or ``"L5"`` (see
            :func:`.cobb.measure_mask`). Defaults to ``"auto"``.

    Returns:
        patient -> ``{"report": ..., "figure": ..., "summary": ...}``.

    A mask that carries no measurable column (empty, a fragment, a looping centreline) does not stop the run: its
    view is reported as not measured with the reason (in the JSON report and the figure, and as one warning naming
    the file), and the patient's other views and the other patients are measured as usual.

    Raises:
        FileNotFoundError: when ``masks`` (or ``images``) does not exist or a folder holds no mask file.
        ValueError: when a mask cannot be read or is malformed (the file is named).
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}.")
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
        files = mask_files(src)  # the *_mask.* files when there are any; never overlays, reports or sub-folders
        if not files:
            raise FileNotFoundError(f"no mask files ({', '.join(MASK_SUFFIXES)}) in {src}")
        out = Path(output) if output is not None else src / "measurements"

    groups: dict[str, dict[str, Path]] = {}
    named = [(f, _NAME.match(stem(f))) for f in files]
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
            groups[stem(f)] = {m["view"].lower() if m else view: f}

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
            img_file = _find_image(img_root, stem(f))
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
            lowest_level=lowest_level,
        )
        for name, why in report.not_measured.items():
            logger.warning("%s not measured: %s", sources[name], why)
        paths = write_report(report, out, images=shown, figure=figure)
        paths["summary"] = _summary(report)
        logger.info("%s: %s", patient, paths["summary"])
        results[patient] = paths
    return results
