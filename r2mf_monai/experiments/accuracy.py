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

"""Accuracy of the mask-based measurements (r2mf_monai.measure) against the synthetic ground truth.

Measures the ground-truth *masks* of one split of a synthetic data set (r2mf_monai.data.synthetic) exactly as a
user's masks would be measured (``measure_study``: centreline, curves, Cobb angles, bending views, Lenke type) and
compares them with ``ground_truth.json``, whose Cobb angles come from the vertebra corners the masks were drawn from:

- main-curve Cobb angle per view (the largest curve), mean absolute error against a 5 degree target (the usual
  inter-observer range of manual Cobb measurement);
- Cobb angle of the coronal major curve on the side-bending view towards its convexity (what Lenke's structural
  criterion reads);
- end vertebrae of the coronal major curve (exact and within one level);
- Lenke curve type: the one measured from the masks against the one the same rules (Lenke et al. 2001: major curve,
  structural when the side-bending Cobb is >= 25 degrees) give on the ground-truth curves and bending Cobb angles.

Writes a Markdown table and a JSON file. ``scripts/measure_accuracy.py`` is its command line; example (generates the
data set if ``--data`` has none)::

    python scripts/measure_accuracy.py --data /tmp/synth --patients 40 --scale 0.5 --seed 0
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from r2mf_monai.constants import VERTEBRAE, VIEWS
from r2mf_monai.measure.cobb import SRS_SCOLIOSIS_DEG
from r2mf_monai.measure.film_tilt import FILM_WEIGHT
from r2mf_monai.measure.lenke import STRUCTURAL_RESIDUAL_DEG, lenke_curve_type
from r2mf_monai.measure.levels import LevelModel
from r2mf_monai.measure.readers import read_image
from r2mf_monai.measure.report import measure_study, read_mask
from r2mf_monai.outputs.atomic import write_json, write_text

__all__ = ["evaluate", "ground_truth_lenke", "main", "markdown"]

logger = logging.getLogger(__name__)

_REGION = {
    "proximal_thoracic": "proximal_thoracic",
    "main_thoracic": "main_thoracic",
    "thoracolumbar": "thoracolumbar_lumbar",
    "lumbar": "thoracolumbar_lumbar",
}


def ground_truth_lenke(patient: dict) -> int | None:
    """Lenke curve type from the ground-truth curves, with the rules r2mf_monai.measure.lenke applies.

    The largest coronal curve of each region; the major curve is the larger of main thoracic and
    thoracolumbar/lumbar (main thoracic when proximal thoracic is the largest); a minor curve is structural when its
    ground-truth Cobb angle on the bending view towards its convexity is >= 25 degrees. ``None``: no scoliosis.
    """
    coronal = patient["views"]["coronal"]["curves"]
    bending = {(c["upper_end"], c["lower_end"]): c.get("bending_cobb_deg") for c in patient["flexibility"]["curves"]}
    regions: dict[str, dict] = {}
    for c in coronal:
        r = _REGION.get(c["region"], c["region"])
        if r not in regions or c["cobb_deg"] > regions[r]["cobb_deg"]:
            regions[r] = c
    candidates = [r for r in ("main_thoracic", "thoracolumbar_lumbar") if r in regions]
    if not candidates:
        return None
    major = max(candidates, key=lambda r: (regions[r]["cobb_deg"], r == "main_thoracic"))
    if regions[major]["cobb_deg"] < SRS_SCOLIOSIS_DEG:
        return None
    structural = {}
    for r, c in regions.items():
        b = bending.get((c["upper_end"], c["lower_end"]))
        structural[r] = True if r == major else (b is not None and b >= STRUCTURAL_RESIDUAL_DEG)
    types = lenke_curve_type(structural, major)
    return types[0] if len(types) == 1 else None


def _level_distance(a: str, b: str) -> int:
    order = (*VERTEBRAE, "S")
    return abs(order.index(a) - order.index(b))


def evaluate(
    data: Path,
    split: str = "test",
    sacrum_mm: float = 75.0,
    min_cobb: float = 5.0,
    masks_dir: Path | None = None,
    film_weight: float = FILM_WEIGHT,
) -> dict:
    """Measure the masks of ``split`` and compare them with ``ground_truth.json``.

    The ground-truth masks by default; with ``masks_dir``, predicted masks named ``<patient>_<view>_mask.png`` (as
    ``r2mf-monai infer`` writes them, on each input's own grid), measured with their films as ``r2mf-monai infer``
    measures them (``film_weight``, :mod:`r2mf_monai.measure.film_tilt`; ``0`` reads the masks alone).
    """
    gt = json.loads((data / "ground_truth.json").read_text(encoding="utf-8"))
    patients = {k: v for k, v in gt["patients"].items() if v["split"] == split}
    if not patients:
        raise ValueError(f"no patient of split {split!r} in {data / 'ground_truth.json'}")
    levels = LevelModel(sacrum_mm=sacrum_mm)
    rows = []
    for pid, p in tqdm(sorted(patients.items()), desc="measure"):
        masks, spacing, films = {}, {}, {}
        for view in VIEWS:
            v = p["views"][view]
            path = data / v["label"] if masks_dir is None else masks_dir / f"{pid}_{view}_mask.png"
            masks[view], _, _ = read_mask(path)
            spacing[view] = v.get("pixel_spacing")
            if masks_dir is not None and film_weight > 0:
                films[view] = read_image(data / v["image"])[0]
        report = measure_study(
            masks,
            spacing=spacing,
            patient_id=pid,
            min_cobb=min_cobb,
            levels=levels,
            images=films,
            film_weight=film_weight,
        )
        if report.not_measured:  # every view is compared with its truth: a view not measured ends the study
            view, why = next(iter(report.not_measured.items()))
            raise ValueError(f"{pid} {view} not measured: {why}")
        row = {"patient_id": pid}
        for view in VIEWS:
            major = report.views[view].major()
            row[f"{view}_measured"] = 0.0 if major is None else float(major.cobb_deg)
            row[f"{view}_truth"] = float(p["views"][view]["major_cobb_deg"])
        # the coronal major curve: end vertebrae and its Cobb angle on the bending view towards its convexity
        gt_major = max(p["views"]["coronal"]["curves"], key=lambda c: c["cobb_deg"], default=None)
        lenke = report.lenke
        me_major = next((a for a in lenke.curves if a.major), None) if lenke is not None else None
        if gt_major is not None and me_major is not None:
            row["upper_end"] = (me_major.coronal.upper_level, gt_major["upper_end"])
            row["lower_end"] = (me_major.coronal.lower_level, gt_major["lower_end"])
            gt_flex = next(
                (
                    f
                    for f in p["flexibility"]["curves"]
                    if (f["upper_end"], f["lower_end"]) == (gt_major["upper_end"], gt_major["lower_end"])
                ),
                None,
            )
            if gt_flex is not None and me_major.residual_deg is not None:
                row["bending_measured"] = float(me_major.residual_deg)
                row["bending_truth"] = float(gt_flex["bending_cobb_deg"])
                row["bending_view"] = (me_major.bending_view, gt_flex["bending_towards_convexity"])
        row["lenke_measured"] = None if lenke is None else lenke.curve_type
        row["lenke_truth"] = ground_truth_lenke(p)
        rows.append(row)

    def stats(pairs: list[tuple[float, float]]) -> dict:
        e = np.array([m - t for m, t in pairs], dtype=float)
        if e.size == 0:
            return {"n": 0}
        return {
            "n": int(e.size),
            "mae_deg": round(float(np.abs(e).mean()), 2),
            "median_ae_deg": round(float(np.median(np.abs(e))), 2),
            "max_ae_deg": round(float(np.abs(e).max()), 2),
            "bias_deg": round(float(e.mean()), 2),
            "within_5_deg": round(float(np.mean(np.abs(e) <= 5.0)), 3),
        }

    metrics = {f"main_curve_cobb_{v}": stats([(r[f"{v}_measured"], r[f"{v}_truth"]) for r in rows]) for v in VIEWS}
    metrics["main_curve_cobb_all_views"] = stats([(r[f"{v}_measured"], r[f"{v}_truth"]) for r in rows for v in VIEWS])
    metrics["major_curve_bending_cobb"] = stats(
        [(r["bending_measured"], r["bending_truth"]) for r in rows if "bending_measured" in r]
    )
    same_view = [r["bending_view"][0] == r["bending_view"][1] for r in rows if "bending_view" in r]
    metrics["bending_view_choice_agreement"] = round(float(np.mean(same_view)), 3) if same_view else None
    ends = [d for r in rows for d in (r.get("upper_end"), r.get("lower_end")) if d is not None]
    dist = [_level_distance(a, b) for a, b in ends]
    metrics["major_curve_end_vertebrae"] = {
        "n": len(dist),
        "exact": round(float(np.mean([d == 0 for d in dist])), 3) if dist else None,
        "within_1_level": round(float(np.mean([d <= 1 for d in dist])), 3) if dist else None,
    }
    typed = [r for r in rows if r["lenke_truth"] is not None]
    metrics["lenke_type"] = {
        "n": len(typed),
        "agreement": round(float(np.mean([r["lenke_measured"] == r["lenke_truth"] for r in typed])), 3)
        if typed
        else None,
        "not_scoliosis_in_truth": len(rows) - len(typed),
        "disagreements": [
            {"patient_id": r["patient_id"], "measured": r["lenke_measured"], "truth": r["lenke_truth"]}
            for r in typed
            if r["lenke_measured"] != r["lenke_truth"]
        ],
    }
    return {
        "data": str(data),
        "split": split,
        "patients": len(rows),
        "parameters": {
            "sacrum_mm": sacrum_mm,
            "min_cobb_deg": min_cobb,
            "level_model": levels.to_dict(),
            # the films are read for predicted masks only: the ground-truth masks are the generator's own columns
            "film_weight": film_weight if masks_dir is not None else 0.0,
        },
        "metrics": metrics,
        "per_patient": rows,
    }


def markdown(result: dict, command: str) -> str:
    """The Markdown table of a result."""
    m = result["metrics"]
    lines = [
        f"Measured on the {result.get('masks', 'ground truth')} masks of the `{result['split']}` split "
        f"({result['patients']} patients) of "
        f"`{result['data']}`; command: `{command}`",
        "",
        "| quantity | n | MAE (deg) | median AE | max AE | bias | within 5 deg |",
        "|---|---|---|---|---|---|---|",
    ]
    names = {
        "main_curve_cobb_coronal": "main-curve Cobb, coronal",
        "main_curve_cobb_left_bending": "main-curve Cobb, left bending",
        "main_curve_cobb_right_bending": "main-curve Cobb, right bending",
        "main_curve_cobb_all_views": "main-curve Cobb, all views",
        "major_curve_bending_cobb": "coronal major curve on its bending view",
    }
    for key, label in names.items():
        s = m[key]
        if s.get("n", 0) == 0:
            lines.append(f"| {label} | 0 | - | - | - | - | - |")
            continue
        lines.append(
            f"| {label} | {s['n']} | {s['mae_deg']:.2f} | {s['median_ae_deg']:.2f} | {s['max_ae_deg']:.2f} | "
            f"{s['bias_deg']:+.2f} | {100 * s['within_5_deg']:.0f} % |"
        )
    ev = m["major_curve_end_vertebrae"]
    lk = m["lenke_type"]
    lines += [
        "",
        "| quantity | n | agreement |",
        "|---|---|---|",
        f"| Lenke curve type (1-6) | {lk['n']} | {_pct(lk['agreement'])} |",
        f"| bending view chosen for the major curve | - | {_pct(m['bending_view_choice_agreement'])} |",
        f"| major-curve end vertebrae, exact | {ev['n']} | {_pct(ev['exact'])} |",
        f"| major-curve end vertebrae, within 1 level | {ev['n']} | {_pct(ev['within_1_level'])} |",
    ]
    if lk["disagreements"]:
        pairs = ", ".join(f"{d['patient_id']}: {d['measured']} vs {d['truth']}" for d in lk["disagreements"])
        lines += ["", f"Lenke disagreements (measured vs truth): {pairs}."]
    return "\n".join(lines) + "\n"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f} %"


def main(argv: list[str] | None = None) -> dict:
    """Command line: see the module docstring and ``--help``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, type=Path, help="synthetic data set folder (generated if empty)")
    ap.add_argument("--patients", type=int, default=40, help="patients to generate when --data has none")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=0.5, help="image-size factor of the generated data set")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--split", default="test", choices=("training", "validation", "test"))
    ap.add_argument("--sacrum-mm", type=float, default=75.0, help="sacrum height in the masks (level model)")
    ap.add_argument("--min-cobb", type=float, default=5.0)
    ap.add_argument("--output", type=Path, default=None, help="output stem; defaults to DATA/measure_accuracy")
    ap.add_argument("--masks", type=Path, default=None, help="predicted masks (r2mf-monai infer output) to measure")
    ap.add_argument(
        "--film-weight",
        type=float,
        default=FILM_WEIGHT,
        help="the film's weight in a predicted mask's tilt profile (0: the masks alone)",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not (args.data / "ground_truth.json").is_file():
        from r2mf_monai.data.synthetic import synthesize_dataset

        logger.info("generating %d patients into %s", args.patients, args.data)
        synthesize_dataset(args.data, patients=args.patients, seed=args.seed, scale=args.scale, workers=args.workers)
    result = evaluate(
        args.data,
        split=args.split,
        sacrum_mm=args.sacrum_mm,
        min_cobb=args.min_cobb,
        masks_dir=args.masks,
        film_weight=args.film_weight,
    )
    result["masks"] = "ground truth" if args.masks is None else str(args.masks)
    command = "python scripts/measure_accuracy.py " + " ".join(sys.argv[1:] if argv is None else argv)
    result["command"] = command
    stem = args.output or args.data / "measure_accuracy"
    md = markdown(result, command)
    write_text(Path(f"{stem}.md"), md)
    write_json(Path(f"{stem}.json"), result)
    logger.info("%s", md)
    logger.info("written %s.md and %s.json", stem, stem)
    return result


if __name__ == "__main__":
    main()
