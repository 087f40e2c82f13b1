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

"""The synthetic data set: patients rendered in parallel, written with a datalist split by patient (paper §4.1).

See :mod:`r2mf_monai.data.synthetic` for the layout of the output folder and the ground-truth schema.
"""

from __future__ import annotations

import datetime
import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from r2mf_monai.constants import VERTEBRAE, VIEWS
from r2mf_monai.data.synthetic.anatomy import Patient, cobb_between, measure_curves, sample_patient, view_geometry
from r2mf_monai.data.synthetic.render import (
    QUALITIES,
    Layout,
    Rendered,
    pixel_landmarks,
    render_view,
    sample_layout,
    sample_quality,
)
from r2mf_monai.data.synthetic.writers import synthetic_uid, to_stored, write_dicom, write_json, write_mask, write_png

__all__ = ["FORMATS", "PAPER_SPLIT", "split_counts", "split_patients", "generate_patient", "synthesize_dataset"]

logger = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("dicom", "png16", "png8")
PAPER_SPLIT: tuple[int, int, int] = (148, 40, 40)  # §4.1: 228 patients -> training / validation / test
_QUALITY_P = (0.4, 0.35, 0.25)
_FORMAT_P = (0.5, 0.25, 0.25)
_LABELS = {
    "coronal": ("STANDING", "AP ERECT", "PA STANDING", "WHOLE SPINE"),
    "left_bending": ("L BENDING", "LEFT BEND", "BENDING LEFT"),
    "right_bending": ("R BENDING", "RIGHT BEND", "BENDING RIGHT"),
}
_SERIES = {
    "coronal": "Whole spine standing",
    "left_bending": "Left side bending",
    "right_bending": "Right side bending",
}


def split_counts(patients: int, split: Sequence[int] | None = None) -> tuple[int, int, int]:
    """Patients per list (training, validation, test): ``split`` checked, or the paper's 148/40/40 proportions.

    With the default every list gets at least one patient when ``patients >= 3`` (training first, then validation).

    Raises:
        ValueError: ``split`` is not three non-negative integers summing to ``patients``.
    """
    if split is not None:
        if isinstance(split, str) or len(split) != 3:
            raise ValueError(f"split must be three integers (training, validation, test), got {split!r}.")
        try:
            counts = tuple(int(s) for s in split)
        except (TypeError, ValueError) as err:
            raise ValueError(f"split must be three integers (training, validation, test), got {split!r}.") from err
        if any(c < 0 for c in counts) or any(float(s) != int(s) for s in split) or sum(counts) != patients:
            raise ValueError(
                f"split {tuple(split)} must be three non-negative integers summing to patients={patients}."
            )
        return counts  # type: ignore[return-value]
    total = sum(PAPER_SPLIT)
    val = round(patients * PAPER_SPLIT[1] / total)
    test = round(patients * PAPER_SPLIT[2] / total)
    if patients >= 3:
        val, test = max(val, 1), max(test, 1)
    elif patients == 2:
        val, test = 1, 0
    else:
        val, test = 0, 0
    return patients - val - test, val, test


def split_patients(patient_ids: Sequence[str], counts: Sequence[int], seed: int) -> dict[str, str]:
    """Assign each patient to ``training``, ``validation`` or ``test`` (a seeded shuffle, all views together)."""
    order = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED])).permutation(len(patient_ids))
    names = ("training",) * counts[0] + ("validation",) * counts[1] + ("test",) * counts[2]
    return {patient_ids[int(k)]: names[j] for j, k in enumerate(order)}


def _rng(seed: int, *key: int) -> np.random.Generator:
    """Generator for (seed, patient, [view]): independent of process and order."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key)))


def _r(a: np.ndarray, decimals: int = 2) -> list:
    return np.round(np.asarray(a, dtype=float), decimals).tolist()


@dataclass
class _Study:
    """What the three views of one patient share: the patient, the film size and the DICOM study."""

    seed: int
    index: int
    out: Path
    scale: float
    formats: tuple[str, ...]
    fmt_p: np.ndarray
    patient: Patient
    base_rows: float
    aspect: float
    view_position: str
    study_date: str
    study_time: str
    birth: str
    study_uid: str


def _study(seed: int, index: int, out_dir: str | os.PathLike, scale: float, formats: Sequence[str]) -> _Study:
    """Draw patient ``index`` and its study (film size and aspect, PA or AP, dates, UIDs)."""
    rng = _rng(seed, index)
    p = sample_patient(rng, index)
    base_rows = rng.uniform(1024, 2500)
    aspect = rng.uniform(0.42, 0.52)
    view_position = "PA" if rng.random() < 0.6 else "AP"
    day = datetime.date(2015, 1, 1) + datetime.timedelta(days=int((seed * 7919 + index * 37) % 3650))
    fmt_p = np.array([_FORMAT_P[FORMATS.index(f)] for f in formats])
    return _Study(
        seed=seed,
        index=index,
        out=Path(out_dir),
        scale=scale,
        formats=tuple(formats),
        fmt_p=fmt_p / fmt_p.sum(),
        patient=p,
        base_rows=base_rows,
        aspect=aspect,
        view_position=view_position,
        study_date=day.strftime("%Y%m%d"),
        study_time=f"{8 + index % 10:02d}{(index * 7) % 60:02d}00",
        birth=datetime.date(day.year - p.age, 1 + index % 12, 1 + index % 28).strftime("%Y%m%d"),
        study_uid=synthetic_uid(seed, p.patient_id, "study"),
    )


def _generate_view(st: _Study, vi: int, view: str) -> tuple[dict[str, Any], np.ndarray]:
    """Render and write view number ``vi`` of the study; return its ground-truth record and corners in pixels."""
    p = st.patient
    vr = _rng(st.seed, st.index, vi + 1)
    rows_f = st.base_rows if vr.random() < 0.7 else float(np.clip(st.base_rows * vr.uniform(0.9, 1.1), 1024, 2500))
    rows = max(int(round(rows_f * st.scale)), 48)
    cols = max(int(np.clip(round(rows_f * st.aspect), 480, 1250) * st.scale), 24)
    g = view_geometry(p, view)
    layout = sample_layout(vr, g, (rows, cols))
    quality = str(vr.choice(QUALITIES, p=_QUALITY_P))
    q = sample_quality(vr, quality)
    label_text = str(vr.choice(_LABELS[view]))
    r = render_view(p, g, layout, q, vr, label_text)
    fmt = str(vr.choice(list(st.formats), p=st.fmt_p))
    stem = f"{p.patient_id}_{view}"
    if fmt == "dicom":
        image_rel, photometric, bits = _write_dicom_view(st, vi, view, r, layout, vr)
    else:
        image_rel = f"images/{stem}.png"
        bits = 8 if fmt == "png8" else int(vr.choice([12, 16]))
        stored = to_stored(r.image, bits, 0, (1 << bits) - 1, invert=False)
        write_png(st.out / image_rel, stored, spacing_mm=layout.spacing)
        photometric = "MONOCHROME2"
    label_rel = f"labels/{stem}.png"
    write_mask(st.out / label_rel, r.mask)
    corners_px, sacrum_px = pixel_landmarks(g, layout)
    curves = measure_curves(corners_px)
    for c in curves:
        c["cobb_deg"] = round(c["cobb_deg"], 3)
    rec = {
        "format": fmt,
        "photometric": photometric,
        "bits_stored": bits,
        "image": image_rel,
        "label": label_rel,
        "quality": quality,
        "rows": int(layout.rows),
        "columns": int(layout.cols),
        "pixel_spacing": [round(layout.spacing, 6)] * 2,
        "view_position": st.view_position,
        "marker": r.marker,
        "burnt_in_text": r.burnt_in,
        "corners": corners_px.tolist(),
        "sacrum": sacrum_px.tolist(),
        "centreline": _r(layout.to_px(g.centreline)),
        "curves": curves,
        "major_cobb_deg": max((c["cobb_deg"] for c in curves), default=0.0),
        "pelvic_obliquity_deg": round(g.pelvis_angle, 3),
        "t1_offset_mm": round(float(g.centres[0, 0]), 2),
    }
    return rec, corners_px


def _write_dicom_view(
    st: _Study, vi: int, view: str, r: Rendered, layout: Layout, vr: np.random.Generator
) -> tuple[str, str, int]:
    """Write a view as a DICOM file with its stored range, photometric interpretation and acquisition tags.

    Returns:
        its path relative to the data set, the photometric interpretation and the bits stored.
    """
    p = st.patient
    bits = int(vr.choice([12, 14, 16]))
    maxv = (1 << bits) - 1
    span = int(maxv * vr.uniform(0.55, 1.0))
    low = int(vr.integers(0, maxv - span + 1))
    mono1 = bool(vr.random() < 0.35)
    stored = to_stored(r.image, bits, low, low + span, invert=mono1)
    centre = low + span / 2.0
    photometric = "MONOCHROME1" if mono1 else "MONOCHROME2"
    info = {  # the values below draw in their written order
        "patient_id": p.patient_id,
        "patient_name": f"SYNTHETIC^{p.patient_id}",
        "sex": p.sex,
        "age": p.age,
        "birth_date": st.birth,
        "study_uid": st.study_uid,
        "series_uid": synthetic_uid(st.seed, p.patient_id, view, "series"),
        "sop_uid": synthetic_uid(st.seed, p.patient_id, view, "image"),
        "study_date": st.study_date,
        "study_time": st.study_time,
        "series_number": vi + 1,
        "series_description": _SERIES[view],
        "view_position": st.view_position,
        "photometric": photometric,
        "bits_stored": bits,
        "pixel_spacing": layout.spacing,
        "magnification": float(vr.uniform(1.05, 1.15)),
        "detector_pitch": float(vr.choice([0.139, 0.143, 0.148, 0.15, 0.16, 0.175, 0.2])),
        "source_detector": float(vr.choice([1500.0, 1800.0, 2000.0])),
        "window": ((maxv - centre) if mono1 else centre, span * vr.uniform(0.9, 1.0)),
        "burnt_in": bool(r.burnt_in),
        "kvp": float(vr.uniform(75, 95)),
        "mas": float(vr.uniform(5, 40)),
        "exposure_ms": float(vr.uniform(20, 200)),
        "software": "r2mf_monai.data.synthetic",
    }
    image_rel = f"images/{p.patient_id}_{view}.dcm"
    write_dicom(st.out / image_rel, stored, info)
    return image_rel, photometric, bits


def _clinical_flexibility(coronal_curves: list[dict], corners_by_view: dict[str, np.ndarray]) -> list[dict]:
    """Clinical flexibility: bending Cobb angles between the coronal end vertebrae (signed: < 0 = reversed)."""
    flex_curves = []
    for c in coronal_curves:
        u, low_i = c["upper_end_index"], c["lower_end_index"]
        sign = np.sign(cobb_between(corners_by_view["coronal"], u, low_i)) or 1.0
        bend = {v: round(float(sign * cobb_between(corners_by_view[v], u, low_i)), 3) for v in VIEWS}
        towards = "right_bending" if c["convexity"] == "right" else "left_bending"
        entry = {k: c[k] for k in ("upper_end", "lower_end", "apex", "convexity", "region")}
        entry.update(
            coronal_cobb_deg=bend["coronal"],
            left_bending_cobb_deg=bend["left_bending"],
            right_bending_cobb_deg=bend["right_bending"],
            bending_towards_convexity=towards,
            bending_cobb_deg=bend[towards],
            flexibility_index=round((bend["coronal"] - bend[towards]) / max(bend["coronal"], 1e-6), 4),
        )
        flex_curves.append(entry)
    return flex_curves


def generate_patient(
    seed: int, index: int, out_dir: str | os.PathLike, scale: float = 1.0, formats: Sequence[str] = FORMATS
) -> dict[str, Any]:
    """Render and write the three views of patient ``index``; return its ground-truth record.

    Args:
        seed: data set seed.
        index: patient index (0-based; the id is ``P{index + 1:04d}``).
        out_dir: data set folder (``images/`` and ``labels/`` must exist).
        scale: image-size factor.
        formats: image formats to draw from (``dicom``, ``png16``, ``png8``).
    """
    st = _study(seed, index, out_dir, scale, formats)
    p = st.patient
    views: dict[str, Any] = {}
    corners_by_view: dict[str, np.ndarray] = {}
    for vi, view in enumerate(VIEWS):
        views[view], corners_by_view[view] = _generate_view(st, vi, view)
    return {
        "patient_id": p.patient_id,
        "index": index,
        "sex": p.sex,
        "age": p.age,
        "curve_type": p.curve_type,
        "designed_curves": [
            {
                "apex": VERTEBRAE[c.apex],
                "upper_end": VERTEBRAE[c.upper],
                "lower_end": VERTEBRAE[c.lower],
                "cobb_deg": round(c.cobb, 3),
                "convexity": c.side,
                "flexibility": round(c.flexibility, 4),
            }
            for c in p.curves
        ],
        "flexibility": {
            "parameter": round(p.flexibility, 4),
            "curves": _clinical_flexibility(views["coronal"]["curves"], corners_by_view),
        },
        "views": views,
    }


def _worker(args: tuple) -> dict[str, Any]:
    return generate_patient(*args)


def _check_args(patients: Any, scale: Any, workers: Any) -> None:
    if isinstance(patients, bool) or not isinstance(patients, (int, np.integer)) or patients < 1:
        raise ValueError(f"patients must be an integer >= 1, got {patients!r}.")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive number, got {scale!r}.")
    if scale > 4:
        raise ValueError(f"scale must be at most 4 (images of up to 10000 rows), got {scale!r}.")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1):
        raise ValueError(f"workers must be None or an integer >= 1, got {workers!r}.")


def synthesize_dataset(
    out_dir: str | os.PathLike,
    patients: int = 228,
    seed: int = 0,
    split: Sequence[int] | None = None,
    scale: float = 1.0,
    workers: int | None = None,
    preview: bool = False,
    formats: Sequence[str] = FORMATS,
) -> Path:
    """Generate a synthetic multi-view scoliosis data set; return the path of its ``datalist.json``.

    Each patient gives a coronal, a left-bending and a right-bending radiograph with its spinal-column mask (the
    three views of §4.1 of the paper); the datalist is split by patient (default: the paper's 148/40/40
    proportions). The same ``seed`` gives the same files whatever the number of workers.

    Args:
        out_dir: output folder (created).
        patients: number of patients. Defaults to ``228``.
        seed: random seed. Defaults to ``0``.
        split: patients in (training, validation, test); must sum to ``patients``.
        scale: image-size factor; 1.0 gives portrait images of about 1024x512 to 2500x1200 pixels.
        workers: processes; defaults to the number of CPUs available (1 renders in this process).
        preview: also write ``preview.png``, a grid of triplets with the masks outlined.
        formats: image formats drawn from (any of ``dicom``, ``png16``, ``png8``). Defaults to all.

    Raises:
        ValueError: ``patients < 1``, ``scale <= 0``, a ``split`` that does not sum to ``patients``, bad
            ``workers`` or ``formats``.
    """
    _check_args(patients, scale, workers)
    formats = tuple(formats)
    if not formats or any(f not in FORMATS for f in formats):
        raise ValueError(f"formats must be a non-empty subset of {FORMATS}, got {formats!r}.")
    counts = split_counts(int(patients), split)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} exists and is not a folder.")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = max(1, min(int(workers), int(patients)))
    tasks = [(int(seed), i, str(out), float(scale), formats) for i in range(int(patients))]
    records: list[dict[str, Any]] = []
    with tqdm(total=len(tasks), desc="synthesize", unit="patient") as bar:
        if workers == 1:
            for t in tasks:
                records.append(_worker(t))
                bar.update()
        else:
            # the platform's default start method (fork on Linux: no re-import, and no ``__main__`` guard needed);
            # the workers use numpy/scipy/Pillow only. Rendering is seeded per patient, so order does not matter.
            with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context()) as pool:
                for fut in as_completed([pool.submit(_worker, t) for t in tasks]):
                    records.append(fut.result())
                    bar.update()
    records.sort(key=lambda r: r["index"])
    assignment = split_patients([r["patient_id"] for r in records], counts, int(seed))
    datalist: dict[str, list] = {"training": [], "validation": [], "test": []}
    for r in records:
        r["split"] = assignment[r["patient_id"]]
        for view in VIEWS:
            v = r["views"][view]
            datalist[r["split"]].append(
                {
                    "image": v["image"],
                    "label": v["label"],
                    "view": view,
                    "patient_id": r["patient_id"],
                    "quality": v["quality"],
                }
            )
    ground_truth = {
        "schema_version": 1,
        "generator": "r2mf_monai.data.synthetic",
        "seed": int(seed),
        "scale": float(scale),
        "vertebrae": list(VERTEBRAE),
        "conventions": {
            "coordinates": "image pixels [x, y]: x = column, y = row (down), pixel centres at integers",
            "corners": "per vertebra T1..L5: upper-left, upper-right, lower-right, lower-left",
            "display": "radiological: the patient's right is on the image left; convexity is the patient side",
            "cobb": "angle between the upper endplate of the upper end vertebra and the lower endplate of the "
            "lower end vertebra, measured from the stored corners",
        },
        "split": dict(zip(("training", "validation", "test"), counts, strict=True)),
        "patients": {r["patient_id"]: r for r in records},
    }
    write_json(out / "ground_truth.json", ground_truth)
    path = write_json(out / "datalist.json", datalist)
    if preview:
        from r2mf_monai.data.synthetic.preview import write_preview

        write_preview(out, out / "preview.png")
    logger.info(
        "Synthetic data set written to %s: %d patients, %d images (training/validation/test %d/%d/%d patients).",
        out.resolve(),
        len(records),
        3 * len(records),
        *counts,
    )
    return path
