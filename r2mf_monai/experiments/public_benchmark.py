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

"""Evaluation on a public real benchmark: AASCE 2019 / SpineWeb dataset 16 films with vertebra-corner landmarks.

The paper's clinical data are private (R2MF-Net §4.1); the AASCE 2019 challenge's AP films, with 17 vertebrae x 4
corners and three Cobb angles per film, are the public yardstick. :func:`evaluate_landmarks` (``r2mf-monai
evaluate-landmarks DATASET_DIR OUTPUT_DIR``):

1. reads the layout (:func:`read_aasce_dataset`): ``data/<split>/*.jpg``, ``labels/<split>/`` with one ``.mat``
   file per film (``p2``) or ``landmarks.csv``, and ``filenames.csv`` and ``angles.csv`` in the same row order;
2. builds each film's ground-truth column mask from its corners exactly as ``r2mf-monai landmarks2mask`` does
   (:func:`r2mf_monai.data.landmarks.column_mask`: bodies plus discs, T1 to L5);
3. runs the bundle's own inference (``configs/inference.json``, as ``r2mf-monai infer`` does) on the films;
4. measures both masks with :mod:`r2mf_monai.measure` (coronal films, pixel units) and compares with the dataset's
   angles: main-curve MAE and the challenge's SMAPE over the three angles; Dice and HD95 (MONAI's metrics, pixels)
   of the predicted mask within the rows the landmarks cover (the annotation ends at L5, the model's mask may go on
   to the sacrum); films with no predicted mask on the spine;
5. writes ``per_film.csv``/``.json``, ``summary.json``/``.md`` and ``worst_films.png``.

The three angles of ``angles.csv`` are what the challenge's calculator gives from the corners, which it names
(PT, MT, TL/L); they are not regional: the first is the largest angle between any two vertebrae (in every row of the
public training split it is the row's largest), the second the largest angle above that curve (between its upper
end vertebra and any vertebra above), the third the one below it (or, when the main curve lies in the lower half of
an S-shaped spine, the one above the second). :func:`aasce_angles` reads a measured view in the same three slots.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from r2mf_monai.confidence_interval import mean_confidence_interval
from r2mf_monai.data.landmarks import (
    AASCE_VERTEBRAE,
    column_mask,
    misordered_vertebrae,
    read_csv_landmarks,
    read_mat_landmarks,
)
from r2mf_monai.measure import LevelModel, ViewMeasurement, measure_mask
from r2mf_monai.measure.film_tilt import FILM_WEIGHT
from r2mf_monai.measure.readers import read_image
from r2mf_monai.outputs.atomic import atomic_write
from r2mf_monai.outputs.save_segmentation import output_stem

__all__ = [
    "ANGLE_NAMES",
    "LayoutError",
    "Film",
    "read_aasce_dataset",
    "aasce_angles",
    "column_rows_found",
    "films_in_datalist",
    "smape",
    "run_bundle_inference",
    "evaluate_film",
    "write_contact_sheet",
    "evaluate_landmarks",
    "main",
]

logger = logging.getLogger(__name__)

ANGLE_NAMES: tuple[str, str, str] = ("main", "second", "third")
"""The three angles of ``angles.csv`` in file order (the challenge's calculator prints them as PT, MT, TL/L)."""

_LAYOUT = (
    "expected the AASCE layout: data/<split>/*.jpg and labels/<split>/ with filenames.csv, angles.csv and one "
    "<image>.mat (p2) per film or landmarks.csv"
)


class LayoutError(ValueError):
    """A data set folder that is not in the AASCE layout (the message names the file or folder)."""


@dataclass
class Film:
    """One film of the benchmark.

    Attributes:
        name: the image's file name as ``filenames.csv`` gives it.
        image: the image file.
        points: (68, 2) corner coordinates (x, y) in pixels.
        angles: the dataset's three angles (degrees), in :data:`ANGLE_NAMES` order.
        shape: (H, W) of the image.
    """

    name: str
    image: Path
    points: np.ndarray
    angles: np.ndarray
    shape: tuple[int, int]

    @property
    def stem(self) -> str:
        """The image name without its suffix (the stem of the bundle's output files)."""
        return output_stem(self.name)


def _csv_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [[c.strip() for c in row] for row in csv.reader(f) if any(c.strip() for c in row)]


def _read_angles(path: Path) -> np.ndarray:
    rows = _csv_rows(path)
    out = []
    for i, row in enumerate(rows, start=1):
        try:
            values = [float(c) for c in row if c]
        except ValueError:
            if i == 1:
                continue  # header
            raise LayoutError(f"'{path}' row {i}: non-numeric angle in {row}.") from None
        if len(values) != 3:
            raise LayoutError(f"'{path}' row {i}: expected three angles (PT, MT, TL/L), got {len(values)}.")
        out.append(values)
    return np.asarray(out, dtype=np.float64).reshape(-1, 3)


def read_aasce_dataset(
    dataset_dir: str | os.PathLike, split: str = "training", landmarks: str = "auto", limit: int | None = None
) -> list[Film]:
    """The films of one split of an AASCE-layout folder, in ``filenames.csv`` order.

    Args:
        dataset_dir: the folder holding ``data/`` and ``labels/``.
        split: the split folder. Defaults to ``"training"``.
        landmarks: ``"mat"`` (one ``<image>.mat`` per film, pixel coordinates), ``"csv"`` (``landmarks.csv``,
            coordinates normalised by the image size) or ``"auto"`` (``.mat`` files when every film has one).
        limit: at most this many films (the first ones).

    Raises:
        LayoutError: a missing folder or file, row counts that differ, a film without its image or landmarks, or
            unreadable landmarks; the message names the file.
    """
    root = Path(dataset_dir).expanduser()
    if not root.is_dir():
        raise LayoutError(f"DATASET_DIR '{root}' does not exist or is not a folder.")
    images, labels = root / "data" / split, root / "labels" / split
    for folder in (images, labels):
        if not folder.is_dir():
            have = sorted(p.name for p in (root / "data").iterdir() if p.is_dir()) if (root / "data").is_dir() else []
            raise LayoutError(f"'{root}': no folder {folder.relative_to(root)}/ (splits here: {have}); {_LAYOUT}.")
    for file in ("filenames.csv", "angles.csv"):
        if not (labels / file).is_file():
            raise LayoutError(f"'{labels}': no {file}; {_LAYOUT}.")
    if landmarks not in ("auto", "mat", "csv"):
        raise ValueError(f"landmarks must be 'auto', 'mat' or 'csv', got {landmarks!r}.")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}.")
    names = [row[0] for row in _csv_rows(labels / "filenames.csv")]
    if names and names[0].lower() in ("filename", "filenames", "name", "image", "file"):
        names = names[1:]
    angles = _read_angles(labels / "angles.csv")
    if len(names) != len(angles):
        raise LayoutError(
            f"'{labels / 'filenames.csv'}' names {len(names)} films but '{labels / 'angles.csv'}' has {len(angles)} "
            "rows; they must match."
        )
    if not names:
        raise LayoutError(f"'{labels / 'filenames.csv'}' names no film.")
    missing = [n for n in names if not (images / n).is_file()]
    if missing:
        raise LayoutError(f"{len(missing)} of {len(names)} films in filenames.csv have no image in '{images}', "
                          f"e.g. '{missing[0]}'.")  # fmt: skip
    mats = [labels / f"{n}.mat" for n in names]
    if landmarks == "auto":
        landmarks = "mat" if all(m.is_file() for m in mats) else "csv"
    csv_points: list[np.ndarray] = []
    try:
        if landmarks == "csv":
            if not (labels / "landmarks.csv").is_file():
                lacking = next((m for m in mats if not m.is_file()), mats[0])
                raise LayoutError(f"'{labels}': no landmark file '{lacking.name}' and no landmarks.csv; {_LAYOUT}.")
            rows = read_csv_landmarks(labels / "landmarks.csv", labels / "filenames.csv", AASCE_VERTEBRAE)
            csv_points = [p for _, p in rows]
        else:
            lacking = [m for m in mats if not m.is_file()]
            if lacking:
                raise LayoutError(
                    f"{len(lacking)} films have no landmark file in '{labels}', e.g. '{lacking[0].name}'."
                )
    except LayoutError:
        raise
    except (FileNotFoundError, ValueError) as e:  # the landmark readers name the file
        raise LayoutError(str(e)) from e
    count = len(names) if limit is None else min(limit, len(names))
    films = []
    for i in range(count):
        image = images / names[i]
        try:
            with Image.open(image) as im:
                h, w = im.height, im.width
        except Exception as e:
            raise LayoutError(f"cannot read image '{image}': {type(e).__name__}: {e}") from e
        try:
            points = read_mat_landmarks(mats[i]) if landmarks == "mat" else csv_points[i] * np.array([w, h])
        except ValueError as e:
            raise LayoutError(str(e)) from e
        films.append(Film(name=names[i], image=image, points=points, angles=angles[i], shape=(h, w)))
    return films


def aasce_angles(view: ViewMeasurement, image_height: int | None = None) -> tuple[float, float, float]:
    """A measured view's angles in the three slots of the AASCE table (see the module docstring).

    When the view's vertebrae were read from the outline (:attr:`ViewMeasurement.vertebrae`, masks built from
    vertebra corners) this is the challenge's calculator on their tilts (:meth:`.VertebraFit.aasce_angles`).
    Otherwise the main angle is the view's largest curve (:meth:`ViewMeasurement.major`). The other two follow the
    challenge's calculator on the centreline's tangent angles in place of the vertebrae's tilts: on a C-shaped column
    (the centreline on one side of the line joining its ends) the angle from the top of the column to the main curve's
    upper end and from its lower end to the bottom; on an S-shaped one the largest angle above the upper end and below
    the lower end, or, when the main curve's ends lie in the lower half of the image, the largest angle above the
    upper end and the largest above that. The bottom is the S1 endplate of the view's level model (L5 for masks that
    end at L5), so a sacrum in the mask is left out. The one place to adapt when the measurement changes.

    Args:
        view: the measured view (with its centreline).
        image_height: rows of the image, for the upper/lower-half rule. Defaults to the view's shape.

    Returns:
        ``(main, second, third)`` in degrees; zeros when the view has no curve.
    """
    height = image_height if image_height is not None else (view.shape[0] if view.shape else None)
    if view.vertebrae is not None and height is not None:  # endplates read from the outline: the calculator itself
        return view.vertebrae.aasce_angles(int(height))
    main = view.major()
    c = view.centreline
    if main is None or c is None or main.upper_index is None or main.lower_index is None:
        return 0.0, 0.0, 0.0
    keep = c.fraction <= view.levels.s1_endplate + 1e-9
    n = max(int(np.count_nonzero(keep)), 2)
    t, pts = view.tilt_deg[:n], c.points[:n]
    u = int(np.clip(min(main.upper_index, main.lower_index), 0, n - 1))
    low = int(np.clip(max(main.upper_index, main.lower_index), 0, n - 1))
    # which side of the chord from the first to the last point each point lies on (> 1 px away)
    chord = pts[-1] - pts[0]
    side = (chord[0] * (pts[:, 1] - pts[0, 1]) - chord[1] * (pts[:, 0] - pts[0, 0])) / max(np.hypot(*chord), 1e-9)
    s_shaped = bool(np.any(side > 1.0) and np.any(side < -1.0))

    def largest_above(i: int) -> tuple[float, int]:
        d = np.abs(t[: i + 1] - t[i])
        j = int(np.argmax(d))
        return float(d[j]), j

    if not s_shaped:
        second, third = abs(float(t[u] - t[0])), abs(float(t[-1] - t[low]))
    else:
        second, j = largest_above(u)
        if height is None or pts[u, 0] + pts[low, 0] < height:
            third = float(np.max(np.abs(t[low:] - t[low])))
        else:
            third = largest_above(j)[0]
    return float(main.cobb_deg), second, third


def smape(pred: Sequence[float], ref: Sequence[float]) -> float:
    """The AASCE challenge's symmetric mean absolute percentage error of one film, in %:
    ``sum|pred - ref| / sum(pred + ref) * 100`` over its angles (0 when both are all zero)."""
    p, r = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    den = float(np.sum(p + r))
    return 0.0 if den <= 0 else float(np.sum(np.abs(p - r)) / den * 100.0)


def run_bundle_inference(
    films: Sequence[Film],
    output_dir: str | os.PathLike,
    bundle_dir: str | None = None,
    model: str | None = None,
    image_size: int | None = None,
    network_def: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: str | None = None,
) -> Path:
    """Segment the films with the bundle's ``configs/inference.json`` (the pipeline of ``r2mf-monai infer``).

    Writes ``<stem>_mask.png`` per film (and the review flag's ``review.json``) into ``output_dir``.

    Args:
        films: the films.
        output_dir: folder for the masks.
        bundle_dir: the bundle folder; defaults to ``./bundle`` or the current folder (whichever holds configs/).
        model: the weights (``ckpt_path``); defaults to the bundle's ``models/model.pt``. With a ``model.json``
            beside them (what training writes) they bring their own network and input size.
        image_size: the network's input side, for weights without a ``model.json``.
        network_def: a whole ``network_def`` instead of inference.json's, for weights without a ``model.json``.
        overrides: any other bundle keys, e.g. ``{"precision": "fp32", "review": False}``.
        device: ``cpu``, ``cuda`` or ``cuda:N``; defaults to the config's.

    Raises:
        FileNotFoundError: no ``configs/inference.json`` in the bundle folder, no checkpoint, or no ``model.json``
            beside it (and no ``network_def``).
        CheckpointMismatchError: weights that do not fit the network.
    """
    from r2mf_monai.bundle_paths import find_bundle
    from r2mf_monai.inference.workflow import inference_overrides, run_inference_workflow

    root = find_bundle(bundle_dir, config="inference.json", option="--bundle_dir")
    out = Path(output_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    keys: dict[str, Any] = {
        "dataset_dir": str(films[0].image.parent.absolute()) if films else str(out),
        "dataset#data": [{"image": str(f.image.absolute())} for f in films],
        "output_dir": str(out),
        "output_formats": ["png"],
        "save_overlay": False,
    }
    if image_size is not None:
        keys["image_size"] = int(image_size)
    if network_def is not None:
        keys["network_def"] = dict(network_def)
    args = inference_overrides(root, model=model, device=device, **keys)
    args.update(dict(overrides or {}))
    run_inference_workflow(root, args)
    return out


def _landmark_rows(film: Film) -> tuple[int, int]:
    """First and last+1 image rows the landmarks cover (T1's top to L5's bottom)."""
    y = film.points[:, 1]
    return max(int(math.floor(y.min())), 0), min(int(math.ceil(y.max())) + 1, film.shape[0])


def _overlap_metrics(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float | None]:
    """Dice and HD95 (pixels, ``None`` when either mask is empty) with MONAI's metrics."""
    import torch
    from monai.metrics import compute_dice, compute_hausdorff_distance

    p = torch.as_tensor(pred[None, None].astype(np.float32))
    g = torch.as_tensor(gt[None, None].astype(np.float32))
    dice = float(compute_dice(p, g, include_background=True, ignore_empty=False)[0, 0])
    if not pred.any() or not gt.any():
        return dice, None
    hd = float(compute_hausdorff_distance(p, g, include_background=True, percentile=95.0)[0, 0])
    return dice, hd if math.isfinite(hd) else None


def column_rows_found(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """How much of the column's length a predicted mask finds: ``(found, missed_at_top)``.

    ``found`` is the share of the ground-truth column's rows (T1 to L5) in which the predicted mask overlaps the
    column; ``missed_at_top`` the share above the first such row: the upper thoracic spine, faint between the
    shoulders on real films, is where models trained on synthetic films lose the column. Dice hardly sees a missed
    vertebra or two of a long column (a mask that loses the top fifth can still score 0.85); these two do. Both are 0
    for an empty column.

    Args:
        pred: the predicted (H, W) mask (nonzero = column).
        gt: the ground-truth (H, W) column mask.
    """
    gt = np.asarray(gt).astype(bool)
    gt_rows = gt.any(axis=1)
    total = int(gt_rows.sum())
    if total == 0:
        return 0.0, 0.0
    hit = (np.asarray(pred).astype(bool) & gt).any(axis=1)
    found = int(hit.sum())
    first = int(np.argmax(hit)) if found else len(hit)
    missed_top = int(gt_rows[:first].sum())
    return found / total, missed_top / total


def _measure(
    mask: np.ndarray,
    levels: LevelModel,
    min_cobb: float,
    image: np.ndarray | None = None,
    film_weight: float = FILM_WEIGHT,
) -> tuple[ViewMeasurement | None, str | None]:
    try:
        view = measure_mask(
            mask, view="coronal", min_cobb=min_cobb, levels=levels, image=image, film_weight=film_weight
        )
        return view, None
    except ValueError as e:
        return None, str(e)


def _angles(view: ViewMeasurement | None, height: int) -> np.ndarray:
    # a mask that cannot be measured gives no angle: counted as 0 degrees, so its error is the reference angle
    return np.zeros(3) if view is None else np.asarray(aasce_angles(view, height))


def evaluate_film(
    film: Film, pred_mask: np.ndarray | None, min_cobb: float = 5.0, film_weight: float = FILM_WEIGHT
) -> tuple[dict, dict]:
    """Measurements and errors of one film.

    The predicted mask is measured with its film, as ``r2mf-monai infer`` measures it (the film read as
    :func:`r2mf_monai.measure.readers.read_image` reads it for the report); the ground-truth columns are read from
    their outline's corners, placed with the same film's endplate edges.

    Args:
        film: the film.
        pred_mask: the predicted (H, W) mask (nonzero = column), or ``None`` (ground truth only).
        min_cobb: smallest curve measured, degrees. Defaults to ``5.0``.
        film_weight: the film's weight in the predicted mask's tilt profile (:mod:`r2mf_monai.measure.film_tilt`);
            ``0`` reads both masks alone. Defaults to :data:`r2mf_monai.measure.film_tilt.FILM_WEIGHT`.

    Returns:
        ``(row, extra)``: the per-film record (JSON-ready) and what the contact sheet draws (masks, centrelines).

    Raises:
        ValueError: a predicted mask whose shape differs from the film's.
    """
    h, w = film.shape
    gt = column_mask(film.points, (h, w), source=film.name) > 0
    ref = np.asarray(film.angles, dtype=np.float64)
    image = read_image(film.image)[0] if film_weight > 0 else None
    # the annotation ends at L5
    gt_view, gt_error = _measure(gt, LevelModel(sacrum_mm=0.0), min_cobb, image, film_weight)
    gt_angles = _angles(gt_view, h)
    r0, r1 = _landmark_rows(film)
    row: dict[str, Any] = {
        "film": film.name,
        "height": h,
        "width": w,
        "landmark_rows": [r0, r1],
        # 1-based, as listed: the reference angles were computed from this order (misordered_vertebrae)
        "misordered_vertebrae": [int(i) + 1 for i in misordered_vertebrae(film.points, source=film.name)],
        "ref_angles": [round(float(v), 2) for v in ref],
        "gt_angles": [round(float(v), 2) for v in gt_angles],
        "gt_main_error": round(abs(float(gt_angles[0] - ref[0])), 2),
        "gt_smape": round(smape(gt_angles, ref), 2),
        "gt_curves": None if gt_view is None else [c.to_dict() for c in gt_view.curves],
        "gt_error": gt_error,
        "gt_cobb_source": None if gt_view is None else gt_view.cobb_source,
    }
    extra: dict[str, Any] = {"gt": gt, "gt_centreline": None if gt_view is None else gt_view.centreline.points}
    if pred_mask is None:
        return row, extra
    pred = np.asarray(pred_mask) > 0
    if pred.shape != (h, w):
        raise ValueError(f"predicted mask of '{film.name}' is {pred.shape}, the film is {(h, w)}.")
    pred_view, pred_error = _measure(pred, LevelModel(), min_cobb, image, film_weight)  # it runs on to the sacrum
    pred_angles = _angles(pred_view, h)
    dice, hd95 = _overlap_metrics(pred[r0:r1], gt[r0:r1])
    found, missed_top = column_rows_found(pred, gt)
    row.update(
        {
            "pred_angles": [round(float(v), 2) for v in pred_angles],
            "pred_main_error": round(abs(float(pred_angles[0] - ref[0])), 2),
            "pred_smape": round(smape(pred_angles, ref), 2),
            "pred_curves": None if pred_view is None else [c.to_dict() for c in pred_view.curves],
            "pred_error": pred_error,
            "pred_cobb_source": None if pred_view is None else pred_view.cobb_source,
            "dice": round(dice, 4),
            "hd95_px": None if hd95 is None else round(hd95, 1),
            "on_spine": bool(np.any(pred[r0:r1] & gt[r0:r1])),
            "column_rows_found": round(found, 4),
            "column_top_missed": round(missed_top, 4),
        }
    )
    extra.update({"pred": pred, "pred_centreline": None if pred_view is None else pred_view.centreline.points})
    return row, extra


def _stats(values: Sequence[float | None]) -> dict[str, float | int | None]:
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if not v.size:
        return {"n": 0, "mean": None, "median": None, "min": None, "max": None}
    return {"n": int(v.size), "mean": round(float(v.mean()), 3), "median": round(float(np.median(v)), 3),
            "min": round(float(v.min()), 3), "max": round(float(v.max()), 3)}  # fmt: skip


def _ci(values: Sequence[float | None]) -> list[float] | None:
    """The 95 % bootstrap interval of the mean (:func:`mean_confidence_interval`), rounded as the means are."""
    ci = mean_confidence_interval(values)
    return None if ci is None else [round(ci[0], 3), round(ci[1], 3)]


def _summary(rows: list[dict], meta: dict) -> dict:
    out: dict[str, Any] = {"format": "r2mf-monai public benchmark 1", **meta, "films": len(rows)}
    out["films_with_misordered_corners"] = [r["film"] for r in rows if r.get("misordered_vertebrae")]
    for src in ("gt", "pred"):
        if src == "pred" and not any("pred_angles" in r for r in rows):
            continue
        key = "from_ground_truth_columns" if src == "gt" else "from_predicted_masks"
        per_angle = np.abs(np.asarray([r[f"{src}_angles"] for r in rows]) - np.asarray([r["ref_angles"] for r in rows]))
        errors, smapes = [r[f"{src}_main_error"] for r in rows], [r[f"{src}_smape"] for r in rows]
        out[key] = {
            "main_curve_mae_deg": _stats(errors)["mean"],
            "main_curve_mae_ci95_deg": _ci(errors),
            "main_curve_error_deg": _stats(errors),
            "smape_pct": _stats(smapes)["mean"],
            "smape_ci95_pct": _ci(smapes),
            "angle_mae_deg": dict(zip(ANGLE_NAMES, [round(float(v), 3) for v in per_angle.mean(axis=0)], strict=True)),
            "films_within_5deg": int(sum(r[f"{src}_main_error"] <= 5.0 for r in rows)),
            "unmeasurable_films": [r["film"] for r in rows if r[f"{src}_error"]],
        }
        ordered = [r[f"{src}_main_error"] for r in rows if not r.get("misordered_vertebrae")]
        out[key]["films_with_ordered_corners"] = {
            "films": len(ordered),
            "main_curve_mae_deg": _stats(ordered)["mean"],
            "main_curve_mae_ci95_deg": _ci(ordered),
            "films_within_5deg": int(sum(e <= 5.0 for e in ordered)),
        }
    if "from_predicted_masks" in out:
        out["segmentation_within_landmark_rows"] = {
            "dice": _stats([r["dice"] for r in rows]),
            "dice_mean_ci95": _ci([r["dice"] for r in rows]),
            "hd95_px": _stats([r["hd95_px"] for r in rows]),
            "films_without_mask_on_spine": [r["film"] for r in rows if not r["on_spine"]],
        }
        if all("column_rows_found" in r for r in rows):  # runs written before bundle 0.12.0 have no such column
            found = [r["column_rows_found"] for r in rows]
            out["segmentation_within_landmark_rows"]["column_rows_found"] = {
                **_stats(found),
                "mean_ci95": _ci(found),
                # the column lost over more than a tenth / a fifth of its length, and lost at the top
                "films_missing_over_10pct": int(sum(f < 0.9 for f in found)),
                "films_missing_over_20pct": int(sum(f < 0.8 for f in found)),
                "films_top_missing_over_10pct": [r["film"] for r in rows if r["column_top_missed"] > 0.1],
            }
        scores = [r.get("review_score") for r in rows]
        if any(s is not None for s in scores):
            flagged = int(sum(bool(r.get("review_flag")) for r in rows))
            out["review_flag"] = {"score": _stats(scores), "flagged": flagged}
    return out


def _bracket(ci: Sequence[float] | None, digits: int = 2) -> str:
    """`` (low-high)`` of a confidence interval for the Markdown summary, or nothing without one."""
    return "" if not ci else f" ({ci[0]:.{digits}f}-{ci[1]:.{digits}f})"


def _markdown(summary: dict, worst: list[dict]) -> str:
    lines = [
        f"# Public benchmark: {summary['dataset']} ({summary['split']} split, {summary['films']} films)",
        "",
        f"Command: `{summary['command']}`",
        "",
        "Angles against the dataset's `angles.csv` (main = its first column, the largest curve; SMAPE over the three "
        "angles as in the AASCE 2019 challenge: per film sum|pred - ref| / sum(pred + ref), mean over films). "
        "In brackets, the 95 % bootstrap interval of each mean over these films (BCa, 2000 resamples): how far the "
        "figure could move with other films of the same kind.",
        "",
        "| masks | main-curve MAE (deg) | median | within 5 deg | SMAPE (%) | unmeasurable |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in (("from_ground_truth_columns", "ground-truth columns"), ("from_predicted_masks", "predicted")):
        if key in summary:
            s = summary[key]
            lines.append(
                f"| {label} | {s['main_curve_mae_deg']:.2f}{_bracket(s.get('main_curve_mae_ci95_deg'))} | "
                f"{s['main_curve_error_deg']['median']:.2f} | {s['films_within_5deg']}/{summary['films']} | "
                f"{s['smape_pct']:.2f}{_bracket(s.get('smape_ci95_pct'))} | {len(s['unmeasurable_films'])} |"
            )
    misordered = summary.get("films_with_misordered_corners") or []
    if misordered:
        lines += [
            "",
            f"{len(misordered)} film(s) list a vertebra's corners out of the order top-left, top-right, bottom-left, "
            "bottom-right, and the dataset's angles are computed from the listed order (`misordered_vertebrae` in "
            "per_film.csv): "
            + ", ".join(misordered)
            + ". Main-curve MAE without them: "
            + ", ".join(
                f"{label} {summary[key]['films_with_ordered_corners']['main_curve_mae_deg']:.2f}"
                f"{_bracket(summary[key]['films_with_ordered_corners'].get('main_curve_mae_ci95_deg'))}"
                for key, label in (
                    ("from_ground_truth_columns", "ground-truth columns"),
                    ("from_predicted_masks", "predicted"),
                )
                if key in summary and summary[key]["films_with_ordered_corners"]["films"]
            )
            + f" ({summary['films'] - len(misordered)} films).",
        ]
    seg = summary.get("segmentation_within_landmark_rows")
    if seg:
        lines += [
            "",
            "Predicted mask against the ground-truth column, within the rows the landmarks cover (T1 to L5):",
            "",
            "| Dice mean | Dice median | Dice min | HD95 mean (px) | HD95 median (px) | no mask on the spine |",
            "|---|---|---|---|---|---|",
            f"| {seg['dice']['mean']:.4f}{_bracket(seg.get('dice_mean_ci95'), 4)} | {seg['dice']['median']:.4f} | "
            f"{seg['dice']['min']:.4f} | "
            f"{seg['hd95_px']['mean'] if seg['hd95_px']['mean'] is not None else float('nan'):.1f} | "
            f"{seg['hd95_px']['median'] if seg['hd95_px']['median'] is not None else float('nan'):.1f} | "
            f"{len(seg['films_without_mask_on_spine'])} |",
        ]
        cov = seg.get("column_rows_found")
        if cov:
            lines += [
                "",
                f"Rows of the column (T1 to L5) the predicted mask finds: {cov['mean']:.3f}"
                f"{_bracket(cov.get('mean_ci95'), 3)} on average (`column_rows_found` in per_film.csv); "
                f"{cov['films_missing_over_10pct']} film(s) miss more than 10 % of them, "
                f"{cov['films_missing_over_20pct']} more than 20 %; "
                f"{len(cov['films_top_missing_over_10pct'])} lose more than 10 % at the top, the upper thoracic spine "
                "(`column_top_missed`).",
            ]
    if "review_flag" in summary:
        rf = summary["review_flag"]
        lines += ["", f"Review flag: {rf['flagged']} of {summary['films']} films flagged "
                      f"(score median {rf['score']['median']})."]  # fmt: skip
    pred = "pred_angles" in (worst[0] if worst else {})
    source = "predicted" if pred else "ground-truth"
    lines += ["", f"Worst films (by the main-curve error of the {source} masks; angles main/second/third, deg):",
              "", "| film | reference | GT columns | " + ("predicted | Dice |" if pred else ""),
              "|---|---|---|" + ("---|---|" if pred else "")]  # fmt: skip
    for r in worst:
        cells = [r["film"], "/".join(f"{v:.1f}" for v in r["ref_angles"]), "/".join(f"{v:.1f}" for v in r["gt_angles"])]
        if pred:
            cells += ["/".join(f"{v:.1f}" for v in r["pred_angles"]), f"{r['dice']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_contact_sheet(
    tiles: list[tuple[dict, Film, dict]], path: str | os.PathLike, per_row: int = 4, tile_height: float = 4.5
) -> Path:
    """A PNG of films with the predicted mask (filled), the ground-truth column (outlined) and both centrelines.

    Args:
        tiles: ``(row, film, extra)`` as :func:`evaluate_film` returns them (``row``, ``extra``) with their film.
        path: the PNG to write (atomically).
        per_row: films side by side. Defaults to ``4``.
        tile_height: height of a tile in inches. Defaults to ``4.5``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(len(tiles), 1)
    cols = min(per_row, n)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(cols * tile_height * 0.62, nrows * tile_height), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (row, film, extra) in zip(axes.ravel(), tiles, strict=False):
        with Image.open(film.image) as im:
            image = np.asarray(im.convert("L"))
        h, w = image.shape
        ax.imshow(image, cmap="gray", interpolation="antialiased")
        if extra.get("pred") is not None:
            rgba = np.zeros((h, w, 4), dtype=np.float32)
            rgba[extra["pred"]] = (1.0, 0.45, 0.0, 0.35)  # orange fill
            ax.imshow(rgba, interpolation="nearest")
        ax.contour(extra["gt"].astype(np.uint8), levels=[0.5], colors=["#29b6f6"], linewidths=0.8)
        for key, colour in (("gt_centreline", "#29b6f6"), ("pred_centreline", "#ff7043")):
            pts = extra.get(key)
            if pts is not None:
                ax.plot(pts[:, 1], pts[:, 0], color=colour, linewidth=1.2)
        title = f"{film.stem[:34]}\nref {row['ref_angles'][0]:.1f}  GT col {row['gt_angles'][0]:.1f}"
        if "pred_angles" in row:
            title += f"  pred {row['pred_angles'][0]:.1f}  Dice {row['dice']:.2f}"
        misordered = row.get("misordered_vertebrae") or []
        for number in misordered:  # the corners as listed, round the body: a bow-tie where two are swapped
            quad = film.points.reshape(-1, 4, 2)[number - 1][[0, 1, 3, 2, 0]]
            ax.plot(quad[:, 0], quad[:, 1], color="#e040fb", linewidth=1.0)
        if misordered:
            title += f"\nref from misordered corners (vertebra {', '.join(str(n) for n in misordered)})"
        ax.set_title(title, fontsize=7)
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
    legend = ("orange: predicted mask and its centreline; blue: ground-truth column (from the landmarks) and its "
              "centreline; magenta: a vertebra's corners as listed, where they are out of order; main-curve Cobb "
              "angles in degrees")  # fmt: skip
    fig.text(0.5, 0.005, legend, ha="center", fontsize=7)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    final = Path(path)
    with atomic_write(final) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return final


def _write_text(path: Path, text: str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _write_csv(path: Path, rows: list[dict]) -> None:
    header = ["film", "height", "width", "landmark_top_row", "landmark_bottom_row", "misordered_vertebrae"]
    header += [f"ref_{a}" for a in ANGLE_NAMES] + [f"gt_{a}" for a in ANGLE_NAMES] + ["gt_main_error", "gt_smape"]
    pred = any("pred_angles" in r for r in rows)
    if pred:
        header += [f"pred_{a}" for a in ANGLE_NAMES] + ["pred_main_error", "pred_smape", "dice", "hd95_px", "on_spine",
                   "column_rows_found", "column_top_missed", "review_score", "review_flag"]  # fmt: skip
    header += ["gt_cobb_source", "gt_error"] + (["pred_cobb_source", "pred_error"] if pred else [])
    with atomic_write(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for r in rows:
            top, bottom = r["landmark_rows"]
            flat = {"film": r["film"], "height": r["height"], "width": r["width"],
                    "landmark_top_row": top, "landmark_bottom_row": bottom - 1,
                    "misordered_vertebrae": " ".join(str(i) for i in r.get("misordered_vertebrae") or [])}  # fmt: skip
            for src in ("ref", "gt", "pred"):
                for a, v in zip(ANGLE_NAMES, r.get(f"{src}_angles") or [None] * 3, strict=True):
                    flat[f"{src}_{a}"] = v
            flat.update({k: v for k, v in r.items() if k in header and k not in flat})
            writer.writerow(["" if flat.get(k) is None else flat[k] for k in header])


def _read_review(pred_dir: Path) -> dict[str, tuple[float, bool]]:
    path = pred_dir / "review.json"
    if not path.is_file():
        return {}
    try:
        items = json.loads(path.read_text())["images"]
        return {str(i["image"]): (float(i["score"]), bool(i["flagged"])) for i in items}
    except (ValueError, KeyError, TypeError):
        logger.warning("could not read %s; review scores left out", path)
        return {}


def films_in_datalist(films: Sequence[Film], datalist: str | os.PathLike, key: str = "test") -> list[Film]:
    """The films whose images the list ``key`` of a MONAI datalist names (by file name), in the data set's order.

    What ``r2mf-monai datalist ... --split`` writes (``{"training": [...], "validation": [...], "test": [...]}``, each
    entry a dict with ``"image"``), so a model fine-tuned on one part of a folder is evaluated on the part it never saw
    without copying the films into a folder of their own.

    Raises:
        LayoutError: an unreadable datalist, a missing or empty ``key``, or no film of ``films`` in it; the message
            names the file and the key.
    """
    from r2mf_monai.data.datalist import join_datalists

    path = Path(datalist).expanduser()
    try:
        entries = join_datalists(path, key)  # MONAI's load_decathlon_datalist, as training reads it
    except (json.JSONDecodeError, OSError, TypeError) as e:  # not JSON (a ValueError: first), no file, not dicts
        raise LayoutError(f"cannot read the datalist '{path}': {e}") from None
    except ValueError:
        content = json.loads(path.read_text())
        keys = sorted(k for k, v in content.items() if isinstance(v, list)) if isinstance(content, dict) else []
        raise LayoutError(f"the datalist '{path}' has no list '{key}' of images (lists: {keys})") from None
    images = [entry.get("image") for entry in entries]
    names = {Path(i[0] if isinstance(i, (list, tuple)) and i else str(i)).name for i in images}
    chosen = [f for f in films if f.image.name in names]
    if not chosen:
        raise LayoutError(f"none of the films is in the list '{key}' of the datalist '{path}'")
    return chosen


def evaluate_landmarks(
    dataset_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    split: str = "training",
    limit: int | None = None,
    skip_inference: bool = False,
    predictions: str | os.PathLike | None = None,
    landmarks: str = "auto",
    min_cobb: float = 5.0,
    worst: int = 8,
    datalist: str | os.PathLike | None = None,
    datalist_key: str = "test",
    bundle_dir: str | None = None,
    model: str | None = None,
    image_size: int | None = None,
    network_def: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    device: str | None = None,
    command: str | None = None,
    film_weight: float = FILM_WEIGHT,
) -> dict:
    """Evaluate the measurement (on ground-truth columns) and the bundle (on its predicted masks) on AASCE films.

    Args:
        dataset_dir: an AASCE-layout folder (see :func:`read_aasce_dataset`).
        output_dir: folder for ``per_film.csv``/``.json``, ``summary.json``/``.md``, ``worst_films.png`` and the
            predicted masks (``predicted/``).
        split: the split. Defaults to ``"training"``.
        limit: only the first films.
        skip_inference: ground-truth columns only (no network).
        predictions: a folder of ``<stem>_mask.png`` from an earlier run, evaluated instead of running the bundle.
        landmarks: ``"auto"``, ``"mat"`` or ``"csv"`` (see :func:`read_aasce_dataset`).
        min_cobb: smallest curve measured, degrees. Defaults to ``5.0`` (the measurement's default).
        worst: films on the contact sheet and in the worst-films table. Defaults to ``8``.
        datalist: a MONAI datalist (``r2mf-monai datalist ... --split``): only the films its list ``datalist_key``
            names (:func:`films_in_datalist`); ``limit`` then counts among those.
        datalist_key: the datalist's list. Defaults to ``"test"`` (the held-out part of a split).
        bundle_dir: the bundle folder (see :func:`run_bundle_inference`, as are the next four).
        model: the weights.
        image_size: the network's input side.
        network_def: a whole ``network_def``.
        overrides: other bundle keys.
        device: the device.
        command: the command line to record in the summary.

    Returns:
        the summary (also in ``summary.json``).

    Raises:
        LayoutError: a folder in the wrong layout.
        FileNotFoundError: a missing prediction or bundle file.
    """
    if datalist is None:
        films = read_aasce_dataset(dataset_dir, split=split, landmarks=landmarks, limit=limit)
    else:
        films = films_in_datalist(
            read_aasce_dataset(dataset_dir, split=split, landmarks=landmarks), datalist, datalist_key
        )
        films = films[:limit] if limit is not None else films
    out = Path(output_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    pred_dir: Path | None = None
    if predictions is not None:
        pred_dir = Path(predictions).expanduser()
        if not pred_dir.is_dir():
            raise FileNotFoundError(f"--predictions folder '{pred_dir}' does not exist")
    elif not skip_inference:
        pred_dir = out / "predicted"
        logger.info("segmenting %d films with the bundle into %s", len(films), pred_dir)
        run_bundle_inference(films, pred_dir, bundle_dir, model, image_size, network_def, overrides, device)
    review = _read_review(pred_dir) if pred_dir is not None else {}

    def predicted(film: Film) -> np.ndarray | None:
        if pred_dir is None:
            return None
        mask_file = pred_dir / f"{film.stem}_mask.png"
        if not mask_file.is_file():
            raise FileNotFoundError(f"no predicted mask '{mask_file.name}' for film '{film.name}' in '{pred_dir}'")
        with Image.open(mask_file) as im:
            return np.asarray(im.convert("L"))

    rows: list[dict] = []
    centrelines: list[dict] = []  # the masks are rebuilt for the few films drawn, the centrelines are kept
    for film in tqdm(films, desc="evaluate", unit="film"):
        row, extra = evaluate_film(film, predicted(film), min_cobb=min_cobb, film_weight=film_weight)
        if film.name in review:
            row["review_score"], row["review_flag"] = round(review[film.name][0], 5), review[film.name][1]
        rows.append(row)
        centrelines.append({k: v for k, v in extra.items() if k.endswith("centreline")})
    errors = [r["pred_main_error" if pred_dir is not None else "gt_main_error"] for r in rows]

    order = list(np.argsort(-np.asarray(errors), kind="stable")[: max(worst, 0)])
    meta = {
        "dataset": Path(dataset_dir).expanduser().name,
        "dataset_dir": str(Path(dataset_dir).expanduser().absolute()),
        "split": split,
        "limit": limit,
        "datalist": None if datalist is None else {"file": str(Path(datalist).expanduser()), "key": datalist_key},
        "predictions": None if pred_dir is None else str(pred_dir.absolute()),
        "model": None if pred_dir is None or predictions is not None else (model or "the bundle's models/model.pt"),
        "bundle_overrides": {"image_size": image_size, "network_def": network_def, **dict(overrides or {})},
        "min_cobb_deg": min_cobb,
        "film_weight": film_weight,
        "angles": "main = angles.csv's first column (the largest curve), then the second and third columns "
        "(see r2mf_monai.experiments.public_benchmark)",
        "units": "degrees; HD95 in pixels of the film",
        "command": command or f"r2mf-monai evaluate-landmarks {dataset_dir} {output_dir}",
    }
    summary = _summary(rows, meta)
    summary["worst_films"] = [rows[i]["film"] for i in order]
    _write_csv(out / "per_film.csv", rows)
    _write_text(out / "per_film.json", json.dumps(rows, indent=1) + "\n")
    _write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    _write_text(out / "summary.md", _markdown(summary, [rows[i] for i in order]))
    if order:
        tiles = []
        for i in order:
            pred = predicted(films[i])
            gt = column_mask(films[i].points, films[i].shape) > 0
            extra = {**centrelines[i], "gt": gt, "pred": None if pred is None else pred > 0}
            tiles.append((rows[i], films[i], extra))
        write_contact_sheet(tiles, out / "worst_films.png")
    logger.info("wrote per_film.csv/.json, summary.json/.md and worst_films.png to %s", out)
    return summary


def main(argv: Sequence[str] | None = None) -> dict:
    """Command line (``scripts/evaluate_landmarks.py``; ``r2mf-monai evaluate-landmarks`` is the same with fire).

    A folder in the wrong layout, a missing file or weights that do not fit end the program with one line naming the
    file or folder (exit status 1).
    """
    from r2mf_monai.checkpoint import CheckpointMismatchError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_dir", help="AASCE-layout folder (data/<split>/, labels/<split>/)")
    parser.add_argument("output_dir", help="folder for per_film.csv/.json, summary.json/.md, worst_films.png")
    parser.add_argument("--split", default="training")
    parser.add_argument("--limit", type=int, default=None, help="only the first N films")
    parser.add_argument("--skip_inference", action="store_true", help="ground-truth columns only")
    parser.add_argument("--predictions", default=None, help="folder of <stem>_mask.png from an earlier run")
    parser.add_argument("--landmarks", default="auto", choices=("auto", "mat", "csv"))
    parser.add_argument("--min_cobb", type=float, default=5.0)
    parser.add_argument("--worst", type=int, default=8, help="films on the contact sheet")
    parser.add_argument("--datalist", default=None, help="only the films a MONAI datalist's list names")
    parser.add_argument("--datalist_key", default="test", help="that list (default test, the held-out part)")
    parser.add_argument("--bundle_dir", default=None)
    parser.add_argument("--model", default=None, help="weights (default BUNDLE/models/model.pt, with model.json)")
    parser.add_argument("--image_size", type=int, default=None)
    parser.add_argument("--network_def", type=json.loads, default=None, help="a whole network_def as JSON")
    parser.add_argument("--overrides", type=json.loads, default=None, help="other bundle keys as a JSON object")
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--film_weight",
        type=float,
        default=FILM_WEIGHT,
        help=f"the film's weight in a predicted mask's tilt profile (default {FILM_WEIGHT}; 0 reads the mask alone)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    command = shlex.join(["python", "scripts/evaluate_landmarks.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        return evaluate_landmarks(**vars(args), command=command)
    except (LayoutError, FileNotFoundError, CheckpointMismatchError) as e:
        raise SystemExit(f"evaluate-landmarks: {e}") from None
