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

"""Paired comparison of two ``evaluate-landmarks`` runs on the same films (before/after a change, a fine-tuning).

Two runs on the same films differ film by film; the mean of those differences, with its 95 % bootstrap interval
(:func:`r2mf_monai.confidence_interval.mean_confidence_interval` of the per-film differences), says whether a
change moved a figure by more than the films' own spread would. The interval of a paired difference is much narrower
than those of the two means, which overlap for most changes worth making. ``r2mf-monai compare-landmarks RUN_A
RUN_B`` reads both runs' ``per_film.json``, pairs the films by name and reports, for each quantity, B - A: the mean
difference, its interval, and how many films got better, worse or stayed.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from r2mf_monai.confidence_interval import mean_confidence_interval
from r2mf_monai.outputs.atomic import atomic_write, write_json, write_text

__all__ = ["QUANTITIES", "compare_runs", "comparison_markdown", "comparison_figure", "write_comparison"]

logger = logging.getLogger(__name__)

QUANTITIES: dict[str, tuple[str, bool]] = {
    "pred_main_error": ("main-curve error, predicted masks (deg)", False),
    "gt_main_error": ("main-curve error, ground-truth columns (deg)", False),
    "pred_smape": ("SMAPE, predicted masks (%)", False),
    "gt_smape": ("SMAPE, ground-truth columns (%)", False),
    "dice": ("Dice within the landmark rows", True),
    "hd95_px": ("HD95 within the landmark rows (px)", False),
    "column_rows_found": ("rows of the column (T1 to L5) found", True),
}
"""The per-film columns compared: label and whether higher is better."""

_TIE = 1e-9


def _read_rows(run: str | os.PathLike) -> dict[str, dict[str, Any]]:
    path = Path(run) / "per_film.json" if Path(run).is_dir() else Path(run)
    if not path.is_file():
        raise FileNotFoundError(
            f"'{path}' does not exist: give an evaluate-landmarks output folder or its per_film.json"
        )
    try:
        rows = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"'{path}' is not JSON ({e})") from e
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "film" in r for r in rows):
        raise ValueError(f"'{path}' is not an evaluate-landmarks per_film.json (a list of films with 'film')")
    return {str(r["film"]): r for r in rows}


def _number(value: Any) -> bool:
    """A finite number (a film a run could not measure has ``None``, or NaN in a hand-written file)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def compare_runs(run_a: str | os.PathLike, run_b: str | os.PathLike, quantities: Sequence[str] | None = None) -> dict:
    """B - A, film by film, on the films both runs hold.

    Args:
        run_a: the reference run: an ``evaluate-landmarks`` output folder or its ``per_film.json``.
        run_b: the run compared with it.
        quantities: per-film columns to compare; defaults to those of :data:`QUANTITIES` both runs have. A film is
            paired for a quantity where both runs have a finite number for it.

    Returns:
        ``{"run_a", "run_b", "films", "only_in_a", "only_in_b", "quantities": {name: {...}}}``, each quantity with
        ``label``, ``films`` (pairs with a value in both), ``mean_a``, ``mean_b``, ``mean_difference`` (B - A),
        ``difference_ci95``, ``better``, ``worse`` and ``same`` (film counts, in the quantity's sense of better),
        ``higher_is_better`` and ``per_film`` (``{film: [a, b]}``).

    Raises:
        FileNotFoundError: a run without ``per_film.json``.
        ValueError: a file that is not a per-film list, no film in common, or an unknown quantity.
    """
    a, b = _read_rows(run_a), _read_rows(run_b)
    common = [name for name in a if name in b]
    if not common:
        raise ValueError(f"'{run_a}' and '{run_b}' have no film in common: compare runs on the same films")
    names = list(quantities) if quantities is not None else list(QUANTITIES)
    unknown = [q for q in names if q not in QUANTITIES]
    if unknown:
        raise ValueError(f"unknown quantity {unknown[0]!r}; known: {', '.join(QUANTITIES)}")
    out: dict[str, Any] = {
        "run_a": str(run_a),
        "run_b": str(run_b),
        "films": len(common),
        "only_in_a": sorted(set(a) - set(b)),
        "only_in_b": sorted(set(b) - set(a)),
        "quantities": {},
    }
    for q in names:
        paired = {f: [float(a[f][q]), float(b[f][q])] for f in common if _number(a[f].get(q)) and _number(b[f].get(q))}
        pairs = list(paired.values())
        if not pairs:
            continue  # e.g. a run with the ground-truth columns only has no Dice
        va, vb = (np.asarray(v, dtype=np.float64) for v in zip(*pairs, strict=True))
        diff = vb - va
        label, higher_better = QUANTITIES[q]
        gain = diff if higher_better else -diff
        ci = mean_confidence_interval(diff.tolist())
        out["quantities"][q] = {
            "label": label,
            "higher_is_better": higher_better,
            "films": len(pairs),
            "mean_a": round(float(va.mean()), 4),
            "mean_b": round(float(vb.mean()), 4),
            "mean_difference": round(float(diff.mean()), 4),
            "difference_ci95": None if ci is None else [round(ci[0], 4), round(ci[1], 4)],
            "better": int((gain > _TIE).sum()),
            "worse": int((gain < -_TIE).sum()),
            "same": int((np.abs(diff) <= _TIE).sum()),
            "per_film": paired,
        }
    return out


def comparison_markdown(result: dict) -> str:
    """The comparison as a Markdown table (one row per quantity)."""
    lines = [
        f"# B - A on {result['films']} films in both runs",
        "",
        f"A: `{result['run_a']}`  ",
        f"B: `{result['run_b']}`",
        "",
        "Mean over the films of the per-film difference B - A, with its 95 % bootstrap interval (BCa, 2000 "
        "resamples of the films): an interval that holds 0 is a change the films' own spread could make.",
        "",
        "| quantity | films | A | B | B - A | 95 % interval | better | worse | same |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for q in result["quantities"].values():
        ci = q["difference_ci95"]
        interval = "" if ci is None else f"{ci[0]:+.3f} to {ci[1]:+.3f}"
        lines.append(
            f"| {q['label']} | {q['films']} | {q['mean_a']:.3f} | {q['mean_b']:.3f} | {q['mean_difference']:+.3f} | "
            f"{interval} | {q['better']} | {q['worse']} | {q['same']} |"
        )
    for key, run in (("only_in_a", "A"), ("only_in_b", "B")):
        if result[key]:
            names = ", ".join(result[key][:10]) + (", ..." if len(result[key]) > 10 else "")
            lines += ["", f"{len(result[key])} film(s) only in {run}, left out: {names}"]
    return "\n".join(lines) + "\n"


def comparison_figure(
    result: dict, path: str | os.PathLike, quantities: Sequence[str] = ("pred_main_error", "dice")
) -> Path:
    """A PNG with one panel per quantity: each film's value in B against A, the diagonal, and the films that moved
    most named. A film below the diagonal got smaller in B (better for an error, worse for Dice).

    Args:
        result: what :func:`compare_runs` returned.
        path: the PNG to write (atomically).
        quantities: the panels, those of ``result`` that are present. Defaults to the predicted main-curve error and
            Dice.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [q for q in quantities if q in result["quantities"]]
    fig, axes = plt.subplots(1, max(len(shown), 1), figsize=(5.2 * max(len(shown), 1), 5.0), squeeze=False)
    for ax, q in zip(axes[0], shown, strict=False):
        entry = result["quantities"][q]
        films = list(entry["per_film"])
        va, vb = (np.asarray(v, dtype=np.float64) for v in zip(*entry["per_film"].values(), strict=True))
        gain = (vb - va) if entry["higher_is_better"] else (va - vb)
        colours = np.where(gain > _TIE, "#009E73", np.where(gain < -_TIE, "#D55E00", "#999999"))
        ax.scatter(va, vb, s=14, c=colours, alpha=0.8, linewidths=0)
        lo, hi = float(min(va.min(), vb.min())), float(max(va.max(), vb.max()))
        ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8)
        for i in np.argsort(-np.abs(vb - va))[:3]:  # the three films that moved most
            if abs(vb[i] - va[i]) > _TIE:
                ax.annotate(_short(films[i]), (va[i], vb[i]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ci = entry["difference_ci95"]
        interval = "" if ci is None else f" ({ci[0]:+.3g} to {ci[1]:+.3g})"
        ax.set_title(
            f"{entry['label']}\nB - A {entry['mean_difference']:+.3g}{interval}\n"
            f"{entry['better']} better (green), {entry['worse']} worse (red), {entry['same']} same",
            fontsize=9,
        )
        ax.set_xlabel("A")
        ax.set_ylabel("B")
        ax.set_aspect("equal", adjustable="datalim")
    fig.suptitle(f"{result['films']} films in both runs", fontsize=10)
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def _short(film: str) -> str:
    """A film's name without the AASCE prefix and suffix (``sunhl-1th-05-Jan-2017-169 A AP.jpg`` -> ``169 A``)."""
    stem = os.path.splitext(film)[0]
    parts = stem.split("-")
    return parts[-1].removesuffix(" AP").strip() if len(parts) > 1 else stem


def write_comparison(result: dict, output: str | os.PathLike) -> list[Path]:
    """Write :func:`compare_runs`'s ``result`` as ``output`` (the Markdown table), the numbers beside it as ``.json``
    and :func:`comparison_figure` as ``.png``, each atomically; returns the three paths."""
    stem = os.path.splitext(os.fspath(output))[0]
    paths = [
        write_text(output, comparison_markdown(result)),
        write_json(stem + ".json", result),
        comparison_figure(result, stem + ".png"),
    ]
    logger.info("comparison written to %s", ", ".join(str(p) for p in paths))
    return paths
