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
from r2mf_monai.measure.film_tilt import FILM_WEIGHT
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
    write_json(json_path, report.to_dict(), allow_nan=False, root=out)
    logger.info("measurements of %s written to %s", report.patient_id, json_path)
    paths = {"report": str(json_path)}
    if figure:
        from r2mf_monai.measure.figure import draw_study

        png_path = out / f"{report.patient_id}_measurements.png"
        write_with(png_path, lambda tmp: draw_study(report, tmp, images=images), root=out)
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
        # of two radiographs with one stem, the one first in sorted order, as r2mf-monai infer names their outputs
        # (y.dcm -> y_mask.png, y.png -> y_png_mask.png; SaveSegmentationd)
        found = sorted(p for p in (images / f"{name}{suffix}" for suffix in MASK_SUFFIXES) if p.is_file())
        if found:
            return found[0]
    renamed = re.fullmatch(r"(.+?)_([a-z0-9]+(?:_gz)?)", bare, flags=re.I)  # y_png -> y.png, x_nii_gz -> x.nii.gz
    if renamed:
        p = images / f"{renamed[1]}.{renamed[2].replace('_', '.')}"
        if p.is_file() and p.name.lower().endswith(MASK_SUFFIXES):
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
    sub_folders: bool = True,
    film_weight: float = FILM_WEIGHT,
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
            radiograph also supplies the pixel spacing when the mask has none, a smooth mask's curves are read
            with the endplates seen on its film (:mod:`.film_tilt`), and a corner-built mask's corners are placed
            with the film's endplate edges (:func:`.endplates.fit_vertebrae`).
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
        sub_folders: also measure the sub-folders of ``masks`` that hold ``*_mask.*`` files, as ``r2mf-monai infer``
            lays out the masks of an input folder with sub-folders (``a/x.png`` gives ``OUT/a/x_mask.png``): the
            reports of ``OUT/a`` go to ``output/a``, its radiographs are looked up in ``images/a``, and its patients
            are keyed ``a/<patient>``. Report folders (``output``, ``measurements``) are never searched. Defaults to
            ``True``.
        film_weight: the film's weight in a smooth mask's tilt profile (:func:`.film_tilt.blend_tilts`); ``0`` reads
            the masks alone. Defaults to :data:`.film_tilt.FILM_WEIGHT`.

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
    nested = _mask_sub_folders(src, output) if sub_folders and src.is_dir() else []
    if nested:
        settings = {
            "spacing": spacing, "orientation": orientation, "min_cobb": min_cobb, "smoothing": smoothing,
            "sacrum_mm": sacrum_mm, "figure": figure, "view": view, "lowest_level": lowest_level,
            "film_weight": film_weight,
        }  # fmt: skip
        return _measure_sub_folders(src, nested, output, images, settings)
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
    no_spine = _no_spine_found(src if src.is_dir() else src.parent)
    results: dict[str, dict[str, str]] = {}
    try:
        from tqdm import tqdm

        iterator = tqdm(sorted(groups.items()), desc="measure", disable=len(groups) < 2)
    except ImportError:  # pragma: no cover - tqdm is a dependency
        iterator = sorted(groups.items())
    for patient, view_files in iterator:
        arrays, spacings, sources, shown, refused = {}, {}, {}, {}, {}
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
            bare = re.sub(r"_(?:mask|seg|label|labels|pred)$", "", stem(f), flags=re.I)
            reason = no_spine.get(str(Path(f).resolve()), no_spine.get(bare))
            if reason is not None:
                refused[view] = reason
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
            refused=refused,
            images=shown,
            film_weight=film_weight,
        )
        for name, why in report.not_measured.items():
            logger.warning("%s not measured: %s", sources[name], why)
        paths = write_report(report, out, images=shown, figure=figure)
        paths["summary"] = _summary(report)
        logger.info("%s: %s", patient, paths["summary"])
        results[patient] = paths
    return results


def _no_spine_found(folder: Path) -> dict[str, str]:
    """Written mask path (resolved) -> reason, for the films that ``r2mf-monai infer`` found no spine in, from the
    ``review.json`` of ``folder`` or its nearest parent folder (up to four levels up) that has one: what
    :class:`r2mf_monai.handlers.ReviewFlag` wrote (each entry's ``outputs``), with the verdict of
    :mod:`r2mf_monai.measure.plausibility`. An entry without ``outputs`` (an older ``review.json``) is keyed by the
    output stem of its image's name instead. ``{}`` when there is none."""
    import json

    from r2mf_monai.outputs.save_segmentation import output_stem

    for parent in [folder.resolve(), *folder.resolve().parents][:5]:  # infer's sub-folders are a few levels deep
        path = parent / "review.json"
        if not path.is_file():
            continue
        try:
            images = json.loads(path.read_text()).get("images", [])
            found: dict[str, str] = {}
            for e in images:
                if not (isinstance(e, dict) and e.get("spine_found") is False and e.get("image")):
                    continue
                reason = str(e.get("no_spine_reason") or "no spine found")
                outputs = e.get("outputs")
                if isinstance(outputs, dict) and outputs:
                    found.update({str(Path(p).resolve()): reason for p in outputs.values()})
                else:
                    found[output_stem(str(e["image"]))] = reason
            return found
        except (OSError, ValueError, AttributeError):
            logger.warning("could not read %s; the inference's spine verdicts are left out", path)
            return {}
    return {}


def _mask_sub_folders(src: Path, output: str | os.PathLike | None) -> list[Path]:
    """The sub-folders of ``src`` (relative to it, sorted) holding masks ``r2mf-monai infer`` wrote (``*_mask.*``);
    never the report folder (``output``, or ``measurements``) or a folder inside it."""
    out = (Path(output) if output is not None else src / "measurements").resolve()
    found = []
    for folder in sorted(p for p in src.rglob("*") if p.is_dir()):
        rel = folder.relative_to(src)
        if "measurements" in rel.parts or folder.resolve() == out or out in folder.resolve().parents:
            continue
        if any(
            f.is_file() and f.name.lower().endswith(MASK_SUFFIXES) and stem(f).lower().endswith("_mask")
            for f in folder.iterdir()
        ):
            found.append(rel)
    return found


def _measure_sub_folders(
    src: Path, nested: list[Path], output: str | os.PathLike | None, images: str | os.PathLike | None, settings: dict
) -> dict[str, dict[str, str]]:
    """:func:`measure_path` on ``src`` (when it holds masks itself) and on each of its ``nested`` sub-folders."""
    out = Path(output) if output is not None else src / "measurements"
    img_root = None if images is None else Path(images)
    results: dict[str, dict[str, str]] = {}
    if mask_files(src):
        results.update(measure_path(src, output=out, images=images, sub_folders=False, **settings))
    for rel in nested:
        imgs = img_root / rel if img_root is not None and img_root.is_dir() else None
        found = measure_path(
            src / rel,
            output=out / rel,
            images=imgs if imgs is not None and imgs.is_dir() else None,
            sub_folders=False,
            **settings,
        )
        results.update({f"{rel.as_posix()}/{patient}": paths for patient, paths in found.items()})
    return results
