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

"""Per-image segmentation metrics of an evaluation, stratified by view and image quality (paper §4.4, §4.5, §4.8).

MONAI's metric handlers reduce over the whole data set; the paper's Table 1 is per view and its §4.8 per quality
level, and surgeons ask "how bad is the worst case", so this handler keeps every image's IoU, Dice, ASD and HD95
(MONAI's metric functions), groups them, and writes JSON, CSV and a Markdown table shaped like Table 1, plus overlay
pictures of the worst cases. It also counts the films on which the spine check of the post-processing
(:class:`r2mf_monai.transforms.SpinePlausibilityd`, ``"spine"`` in each output item) found no spine: on spine films
that count should be 0.
"""

from __future__ import annotations

import csv
import heapq
import json
import logging
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.metrics import (
    compute_average_surface_distance,
    compute_dice,
    compute_hausdorff_distance,
    compute_iou,
)

from r2mf_monai.confidence_interval import mean_confidence_interval
from r2mf_monai.constants import QUALITIES, VIEWS
from r2mf_monai.handlers.distributed import gather_in_sampler_order, is_writer
from r2mf_monai.outputs.atomic import atomic_write
from r2mf_monai.transforms.readers import pixel_spacing_from_meta

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["SegmentationReport", "segmentation_metrics"]

logger = logging.getLogger(__name__)

METRICS = ("iou", "dice", "asd_px", "hd95_px", "asd_mm", "hd95_mm")


def segmentation_metrics(
    pred: torch.Tensor | np.ndarray, label: torch.Tensor | np.ndarray, spacing: Sequence[float] | None = None
) -> dict[str, float]:
    """IoU and Dice (eqs. 17-18, in %), symmetric ASD (eq. 19) and HD95 of one binary 2-D mask pair.

    Distances are in pixels, and also in mm when ``spacing`` (per array axis, mm) is given; an empty prediction or
    label gives ``nan`` distances (MONAI's convention) and 0 overlap.
    """
    p = torch.as_tensor(np.asarray(pred) > 0.5 if not isinstance(pred, torch.Tensor) else pred > 0.5).float()
    t = torch.as_tensor(np.asarray(label) > 0.5 if not isinstance(label, torch.Tensor) else label > 0.5).float()
    p = p.reshape((1, 1, *p.shape[-2:]))
    t = t.reshape((1, 1, *t.shape[-2:]))
    out = {
        "iou": 100.0 * float(compute_iou(p, t, include_background=True, ignore_empty=False)),
        "dice": 100.0 * float(compute_dice(p, t, include_background=True, ignore_empty=False)),
        "asd_px": float(compute_average_surface_distance(p, t, include_background=True, symmetric=True)),
        "hd95_px": float(compute_hausdorff_distance(p, t, include_background=True, percentile=95)),
    }
    if spacing is not None:
        sp = [float(s) for s in spacing]
        out["asd_mm"] = float(
            compute_average_surface_distance(p, t, include_background=True, symmetric=True, spacing=sp)
        )
        out["hd95_mm"] = float(compute_hausdorff_distance(p, t, include_background=True, percentile=95, spacing=sp))
    else:
        out["asd_mm"] = out["hd95_mm"] = math.nan
    return out


def _summary(values: list[float], patients: list[str]) -> dict[str, Any]:
    """Mean, std, count and the mean's 95 % bootstrap interval, resampling patients (a patient's views are not
    independent images)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return {"mean": math.nan, "std": math.nan, "n": 0, "ci95": None}
    ci = mean_confidence_interval(values, groups=patients)
    return {
        "mean": float(np.mean(finite)),
        "std": float(np.std(finite)),
        "n": len(finite),
        "ci95": None if ci is None else list(ci),
    }


def _fmt(s: dict[str, float], digits: int) -> str:
    return "n/a" if s["n"] == 0 else f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


class SegmentationReport:
    """Ignite handler: per-image metrics on the evaluator's post-processed outputs, written at completion.

    Args:
        output_dir: folder for ``metrics_per_image.csv``, ``metrics_summary.json``, ``metrics_table.md`` and
            ``worst_cases/``.
        pred_key: binary prediction in each post-processed output item. Defaults to ``"pred"``.
        label_key: binary reference mask on the same grid as the prediction. Defaults to ``"label"``.
        image_key: image drawn under the worst-case overlays (``None`` for none). Defaults to ``"raw"``.
        num_worst: how many worst cases (by Dice) to draw. Defaults to ``5``.
        verdict_key: the spine check's verdict in each output item; a missing one is left blank in the CSV.
            Defaults to ``"spine"``.
    """

    def __init__(
        self,
        output_dir: str,
        pred_key: str = "pred",
        label_key: str = "label",
        image_key: str | None = "raw",
        num_worst: int = 5,
        verdict_key: str = "spine",
    ) -> None:
        self.output_dir = output_dir
        self.verdict_key = verdict_key
        self.pred_key = pred_key
        self.label_key = label_key
        self.image_key = image_key
        self.num_worst = num_worst
        self.rows: list[dict[str, Any]] = []
        self._worst: list[tuple[float, int, dict[str, Any]]] = []

    def attach(self, engine: Engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    def _reset(self, engine: Engine) -> None:
        self.rows, self._worst = [], []

    def _spacing(self, item: dict[str, Any], source: dict[str, Any]) -> Sequence[float] | None:
        # the radiograph carries the spacing (DICOM); masks are usually PNG without one
        spacing = None
        for key in (self.image_key, self.label_key):
            value = None if key is None else item.get(key, source.get(key))
            spacing = spacing or pixel_spacing_from_meta(getattr(value, "meta", {}) or {})
        # arrays are in MONAI's (W, H) order: axis 0 runs along a row (column spacing), axis 1 down a column
        return None if spacing is None else [float(spacing[1]), float(spacing[0])]

    def _image(self, item: dict[str, Any], source: dict[str, Any]) -> np.ndarray | None:
        # post-transforms keep keys that came with the batch in ``engine.state.batch``, new keys in the output
        if self.image_key is None:
            return None
        image = item.get(self.image_key, source.get(self.image_key))
        return None if image is None else np.asarray(image.detach().cpu() if hasattr(image, "detach") else image)[0]

    def _collect(self, engine: Engine) -> None:
        outputs = engine.state.output if isinstance(engine.state.output, list) else [engine.state.output]
        batch = engine.state.batch if isinstance(engine.state.batch, list) else [engine.state.batch]
        for item, source in zip(outputs, batch, strict=True):
            pred, label = item[self.pred_key], item[self.label_key]
            meta = getattr(pred, "meta", {}) or {}
            name = os.path.basename(str(meta.get("filename_or_obj", f"case_{len(self.rows)}")))
            row: dict[str, Any] = {
                "image": name,
                "patient_id": source.get("patient_id", ""),
                "view": source.get("view", ""),
                "quality": source.get("quality", ""),
            }
            row.update(segmentation_metrics(pred, label, self._spacing(item, source)))
            row["review_score"] = float(item.get("review_score", math.nan))
            verdict = item.get(self.verdict_key)
            row["spine_found"] = verdict.get("spine_found", "") if isinstance(verdict, dict) else ""
            if row["spine_found"] is False:
                logger.warning("%s: %s", name, verdict.get("reason") or "no spine found")
            self.rows.append(row)
            if self.num_worst > 0:
                keep = {
                    "name": name,
                    "dice": row["dice"],
                    "pred": np.asarray(pred.detach().cpu())[0],
                    "label": np.asarray(label.detach().cpu())[0],
                    "image": self._image(item, source),
                }
                entry = (-row["dice"], len(self.rows), keep)
                if len(self._worst) < self.num_worst:
                    heapq.heappush(self._worst, entry)
                else:
                    heapq.heappushpop(self._worst, entry)

    def summary(self) -> dict[str, Any]:
        """Mean, std and count of every metric for all images, per view and per quality level."""
        groups: dict[str, dict[str, list[dict[str, Any]]]] = {"all": {"all": self.rows}, "view": defaultdict(list)}
        groups["quality"] = defaultdict(list)
        for row in self.rows:
            groups["view"][row["view"]].append(row)
            groups["quality"][row["quality"]].append(row)
        out: dict[str, Any] = {}
        for kind, members in groups.items():
            out[kind] = {
                key: {m: _summary([float(r[m]) for r in rows], [str(r["patient_id"]) for r in rows]) for m in METRICS}
                for key, rows in members.items()
            }
        out["review"] = self.review_correlation()
        checked = [r for r in self.rows if isinstance(r.get("spine_found"), bool)]
        out["spine_check"] = {
            "checked": len(checked),
            "no_spine_found": sum(r["spine_found"] is False for r in checked),
            "images": [r["image"] for r in checked if r["spine_found"] is False],
        }
        return out

    def review_correlation(self) -> dict[str, float]:
        """Spearman rank correlation between the review score and the error ``1 - Dice`` (paper §5.4)."""
        pairs = [(r["review_score"], 100.0 - r["dice"]) for r in self.rows if math.isfinite(r["review_score"])]
        if len(pairs) < 3:
            return {"spearman_rho": math.nan, "p_value": math.nan, "n": len(pairs)}
        from scipy.stats import spearmanr

        rho, p = spearmanr([a for a, _ in pairs], [b for _, b in pairs])
        return {"spearman_rho": float(rho), "p_value": float(p), "n": len(pairs)}

    def markdown(self, summary: dict[str, Any]) -> str:
        """Tables shaped like the paper's Table 1 (per view) and §4.8 (per quality level)."""
        head = "| {} | n | IoU (%) | Dice (%) | ASD (px) | HD95 (px) | ASD (mm) | HD95 (mm) |"
        rule = "|---|---|---|---|---|---|---|---|"
        lines: list[str] = []
        for kind, order, title in (
            ("view", VIEWS, "Direction"),
            ("quality", QUALITIES, "Quality"),
        ):
            lines += [head.format(title), rule]
            keys = [k for k in order if k in summary[kind]] + [k for k in summary[kind] if k not in order]
            for key in [*keys, None]:
                s = summary["all"]["all"] if key is None else summary[kind][key]
                label = "**all**" if key is None else key.replace("_", "-")
                lines.append(
                    f"| {label} | {s['dice']['n']} | {_fmt(s['iou'], 2)} | {_fmt(s['dice'], 2)} | "
                    f"{_fmt(s['asd_px'], 2)} | {_fmt(s['hd95_px'], 2)} | {_fmt(s['asd_mm'], 2)} | "
                    f"{_fmt(s['hd95_mm'], 2)} |"
                )
            lines.append("")
        dice = summary["all"]["all"]["dice"]
        if dice.get("ci95"):
            low, high = dice["ci95"]
            lines += [
                f"Dice over all {dice['n']} images: {dice['mean']:.2f} % (95 % bootstrap interval of the mean "
                f"{low:.2f}-{high:.2f} %, resampling patients)",
                "",
            ]
        review = summary.get("review", {})
        if review.get("n", 0) >= 3:
            lines.append(
                f"Review score vs error (1 - Dice): Spearman rho = {review['spearman_rho']:.3f} "
                f"(p = {review['p_value']:.2g}, n = {review['n']})"
            )
            lines.append("")
        spine = summary.get("spine_check", {})
        if spine.get("checked"):
            lines += [f"Spine check: no spine found on {spine['no_spine_found']} of {spine['checked']} films", ""]
        return "\n".join(lines)

    def _write(self, engine: Engine) -> None:
        # under torch.distributed (multi_gpu_evaluate.json) each rank saw a share: rank 0 writes them all
        self.rows = gather_in_sampler_order(self.rows)
        self._worst = sorted(gather_in_sampler_order(self._worst), key=lambda e: e[2]["dice"])[: self.num_worst]
        if not is_writer():
            return
        os.makedirs(self.output_dir, exist_ok=True)
        summary = self.summary()
        with atomic_write(os.path.join(self.output_dir, "metrics_summary.json")) as tmp, open(tmp, "w") as f:
            json.dump(summary, f, indent=2, allow_nan=True)
        path = os.path.join(self.output_dir, "metrics_per_image.csv")
        with atomic_write(path) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(
                f, fieldnames=["image", "patient_id", "view", "quality", *METRICS, "review_score", "spine_found"]
            )
            writer.writeheader()
            writer.writerows(self.rows)
        with atomic_write(os.path.join(self.output_dir, "metrics_table.md")) as tmp, open(tmp, "w") as f:
            f.write(self.markdown(summary))
        self._draw_worst()
        logger.info("evaluation of %d images written to %s", len(self.rows), os.path.abspath(self.output_dir))

    def _draw_worst(self) -> None:
        if not self._worst:
            return
        from r2mf_monai.outputs.overlay import save_comparison_overlay

        folder = os.path.join(self.output_dir, "worst_cases")
        os.makedirs(folder, exist_ok=True)
        for rank, (_, _, case) in enumerate(sorted(self._worst, key=lambda e: e[2]["dice"]), start=1):
            stem = os.path.splitext(os.path.splitext(case["name"])[0])[0]
            out = os.path.join(folder, f"{rank}_{stem}.png")
            # arrays are in MONAI's (W, H) order; pictures are (H, W)
            image = None if case["image"] is None else case["image"].T
            save_comparison_overlay(
                out, pred=case["pred"].T, label=case["label"].T, image=image, title=f"{stem}: Dice {case['dice']:.1f} %"
            )
