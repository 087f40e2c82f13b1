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

"""Calibrate the review flag's threshold (paper §5.4) on a validation split, so that it flags the worst images.

Input: the ``metrics_per_image.csv`` that ``evaluate.json`` writes (its ``dice`` and ``review_score`` columns), run on
the *validation* split (``--eval_split validation``). The worst images are the lowest ``worst_fraction`` by Dice; the
threshold is the review score that best separates them from the rest (highest F1 of "score >= threshold" against
"among the worst"; ties go to the higher threshold, which flags fewer images). The rank correlation between score and
error is reported beside it, so a user sees how much the flag can be trusted at all.

Example::

    python -m monai.bundle run evaluating \\
        --config_file "['bundle/configs/train.json','bundle/configs/evaluate.json']" \\
        --eval_split validation --eval_dir /tmp/val_eval
    python scripts/calibrate_review.py /tmp/val_eval/metrics_per_image.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
from collections.abc import Sequence

import numpy as np
from scipy.stats import spearmanr

__all__ = ["calibrate_threshold", "read_scores", "main"]

logger = logging.getLogger(__name__)


def read_scores(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(dice, review_score)`` arrays from an evaluation's ``metrics_per_image.csv``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file lacks a ``dice`` or ``review_score`` column, or has no row with both.
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"dice", "review_score"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{os.fspath(path)}: no column {sorted(missing)} (evaluate with the review flag on).")
        rows = [(r["dice"], r["review_score"]) for r in reader]
    pairs = [(float(d), float(s)) for d, s in rows if d not in ("", "nan") and s not in ("", "nan")]
    if not pairs:
        raise ValueError(f"{os.fspath(path)}: no image has both a Dice and a review score.")
    dice, score = (np.asarray(v, dtype=float) for v in zip(*pairs, strict=True))
    return dice, score


def calibrate_threshold(dice: Sequence[float], score: Sequence[float], worst_fraction: float = 0.1) -> dict:
    """The review threshold that flags the worst images of a validation split.

    Args:
        dice: per-image Dice of the predicted mask.
        score: per-image review score (higher = less stable).
        worst_fraction: share of images, lowest Dice first, that should be flagged. Defaults to ``0.1``.

    Returns:
        ``threshold``, the ``flagged`` share and the ``precision``/``recall`` of the flag for the worst images at it,
        the ``dice_cut`` below which an image counts as worst, ``spearman_rho`` between score and ``1 - dice``, ``n``.

    Raises:
        ValueError: fewer than two images, mismatched lengths, or ``worst_fraction`` outside (0, 1).
    """
    dice, score = np.asarray(dice, dtype=float), np.asarray(score, dtype=float)
    if dice.shape != score.shape or dice.ndim != 1 or dice.size < 2:
        raise ValueError(f"dice and score must be 1-D, of one length >= 2, got {dice.shape} and {score.shape}.")
    if not 0.0 < worst_fraction < 1.0:
        raise ValueError(f"worst_fraction must be in (0, 1), got {worst_fraction!r}.")
    n_worst = max(1, int(math.ceil(worst_fraction * dice.size)))
    worst = np.zeros(dice.size, bool)
    worst[np.argsort(dice, kind="stable")[:n_worst]] = True
    best = (-1.0, 0.0, 0.0, 0.0)
    for t in np.unique(score)[::-1]:  # descending: on a tie of F1 the higher threshold stays
        flagged = score >= t
        tp = float((flagged & worst).sum())
        precision, recall = tp / float(flagged.sum()), tp / float(worst.sum())
        f1 = 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)
        if f1 > best[0]:
            best = (f1, float(t), precision, recall)
    _, threshold, precision, recall = best
    rho = spearmanr(score, 1.0 - dice).statistic if np.ptp(score) > 0 and np.ptp(dice) > 0 else float("nan")
    return {
        "threshold": threshold,
        "flagged": float((score >= threshold).mean()),
        "precision": precision,
        "recall": recall,
        "dice_cut": float(dice[worst].max()),
        "spearman_rho": float(rho),
        "worst_fraction": worst_fraction,
        "n": int(dice.size),
    }


def main(argv: Sequence[str] | None = None) -> dict:
    """Command line: print (and optionally write) the calibrated threshold for a ``metrics_per_image.csv``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("metrics_csv", help="metrics_per_image.csv of an evaluation on the validation split")
    parser.add_argument("--worst_fraction", type=float, default=0.1, help="share of images to flag (default 0.1)")
    parser.add_argument("--output", default=None, help="JSON file to write the result to")
    args = parser.parse_args(argv)
    try:
        result = calibrate_threshold(*read_scores(args.metrics_csv), worst_fraction=args.worst_fraction)
    except (OSError, ValueError) as e:
        raise SystemExit(f"calibrate_review: {e}") from None
    if args.output:
        from r2mf_monai.outputs.atomic import write_json

        write_json(args.output, result)
        logger.info("wrote %s", args.output)
    print(json.dumps(result, indent=2))
    return result
