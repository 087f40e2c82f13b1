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

"""The study figure: the views side by side with the mask outline, centreline, Cobb lines and the numbers.

Each panel shows one view (the radiograph when given, else the mask in grey), cropped to the column: the mask's
outline, the smoothed centreline (yellow), the centre sacral vertical line (CSVL, dashed), and for every curve its two
Cobb lines along the end-vertebra endplates (perpendicular to the centreline at the end levels, drawn longer on the
concave side where Cobb lines meet), the end levels, and the Cobb angle beside the apex. Colours follow the Lenke
region (Okabe-Ito palette, readable with colour-vision deficiency): proximal thoracic sky blue, main thoracic
orange, thoracolumbar/lumbar reddish purple. Below the panels: the Lenke type and a table of the curves with their
bending Cobb angle, flexibility and structural status, and what is approximate or undetermined. A view whose mask
could not be measured shows its mask marked "not measured", and the reason among the notes.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping

import numpy as np

from r2mf_monai.measure.cobb import Curve, ViewMeasurement
from r2mf_monai.measure.levels import REGION_ABBREVIATIONS
from r2mf_monai.measure.study import StudyReport

__all__ = ["REGION_COLOURS", "draw_study"]

REGION_COLOURS: dict[str, str] = {
    "proximal_thoracic": "#56B4E9",
    "main_thoracic": "#E69F00",
    "thoracolumbar_lumbar": "#CC79A7",
}
_CENTRELINE = "#F0E442"
_OUTLINE = "#29b6f6"
_VIEW_TITLES = {"coronal": "Coronal", "left_bending": "Left bending", "right_bending": "Right bending"}
_PANEL_HEIGHT_IN = 7.0


def _crop(mask: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) in pixels: the column's bounding box with room for labels, at least 0.42 of its height wide
    where the image is that wide."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:  # an empty mask (a view not measured): the whole image
        return -0.5, mask.shape[1] - 0.5, -0.5, mask.shape[0] - 0.5
    r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
    h = r1 - r0 + 1
    y0, y1 = r0 - 0.06 * h, r1 + 0.04 * h
    cx = 0.5 * (c0 + c1)
    half = max(0.5 * (c1 - c0 + 1) + 0.16 * h, 0.21 * (y1 - y0))
    # keep the window inside the image (slide it, or narrow it to the image) rather than show empty margins
    height, width = mask.shape
    if 2 * half <= width:
        cx = min(max(cx, half - 0.5), width - 0.5 - half)
    x0, x1 = max(cx - half, -0.5), min(cx + half, width - 0.5)
    return x0, x1, max(y0, -0.5), min(y1, height - 0.5)


def _direction(angle_deg: float, spacing: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray]:
    """Unit tangent and normal (pointing to the image right) in pixel (row, col) space for a physical tilt angle."""
    sr, sc = spacing if spacing is not None else (1.0, 1.0)
    a = np.radians(angle_deg)
    t = np.array([np.cos(a) / sr, np.sin(a) / sc])
    n = np.array([-np.sin(a) / sr, np.cos(a) / sc])
    return t / np.linalg.norm(t), n / np.linalg.norm(n)


def _stroke(linewidth: float = 3.0) -> list:
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=linewidth, foreground="black")]


def _draw_endplate(ax, vm: ViewMeasurement, idx: int, level: str, tilt: float, colour: str, concave: float,
                   fontsize: float) -> None:  # fmt: skip
    """One Cobb line through centreline point ``idx`` along the endplate; ``concave`` = +1/-1 (image right/left) is
    where it is drawn longer, 0 for a line shared by two curves (drawn evenly)."""
    cl = vm.centreline
    px_per_unit = 1.0 / (min(vm.spacing) if vm.spacing is not None else 1.0)
    p = cl.points[idx]
    w = float(cl.width[idx]) * px_per_unit
    _, n = _direction(tilt, vm.spacing)
    if concave == 0:
        a, b = p - 1.5 * w * n, p + 1.5 * w * n
    else:
        a = p - concave * 0.85 * w * n  # convex side: just past the column's edge
        b = p + concave * 2.1 * w * n  # concave side: long, where the Cobb lines converge
    ax.plot([a[1], b[1]], [a[0], b[0]], color=colour, lw=2.2, solid_capstyle="round", path_effects=_stroke(4))
    right = a[1] > p[1]
    ax.text(
        a[1] + (0.15 if right else -0.15) * w,
        a[0],
        level,
        color=colour,
        fontsize=fontsize * 0.85,
        ha="left" if right else "right",
        va="center",
        fontweight="bold",
        path_effects=_stroke(),
    )


def _draw_curves(ax, vm: ViewMeasurement, fontsize: float) -> None:
    """Cobb lines, end levels and the Cobb angle of every curve; an end shared by two curves is drawn once, white."""
    cl = vm.centreline
    px_per_unit = 1.0 / (min(vm.spacing) if vm.spacing is not None else 1.0)
    ends: dict[int, list[tuple[Curve, str, float]]] = {}
    for c in vm.curves:
        if c.upper_index is None or c.lower_index is None or c.apex_index is None:
            continue
        ends.setdefault(c.upper_index, []).append((c, c.upper_level, c.upper_tangent_deg))
        ends.setdefault(c.lower_index, []).append((c, c.lower_level, c.lower_tangent_deg))
    for idx, users in ends.items():
        c, level, tilt = users[0]
        concave = -1.0 if c.convex == "image_right" else 1.0
        if len(users) > 1:
            _draw_endplate(ax, vm, idx, level, tilt, "white", 0.0, fontsize)
        else:
            _draw_endplate(ax, vm, idx, level, tilt, REGION_COLOURS.get(c.region, "white"), concave, fontsize)
    for c in vm.curves:
        if c.apex_index is None:
            continue
        concave = -1.0 if c.convex == "image_right" else 1.0
        apex = cl.points[c.apex_index]
        w = float(cl.width[c.apex_index]) * px_per_unit
        ax.text(
            apex[1] - concave * 0.9 * w,
            apex[0],
            f"{c.name}\n{c.cobb_deg:.0f}°",
            color=REGION_COLOURS.get(c.region, "white"),
            fontsize=fontsize,
            fontweight="bold",
            ha="left" if concave < 0 else "right",
            va="center",
            linespacing=1.0,
            path_effects=_stroke(3.5),
        )


def _panel(
    ax, name: str, vm: ViewMeasurement | None, mask: np.ndarray, image: np.ndarray | None, fontsize: float
) -> None:
    """One view; ``vm=None`` for a view that was not measured (its mask is drawn under a "not measured" title)."""
    from skimage import measure as skmeasure

    x0, x1, y0, y1 = _crop(mask)
    ax.set_facecolor("black")
    if image is not None:
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="antialiased")
    else:
        ax.imshow(mask.astype(np.float32) * 0.3, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    for contour in skmeasure.find_contours(mask.astype(np.float32), 0.5):
        ax.plot(contour[:, 1], contour[:, 0], color=_OUTLINE, lw=0.9, alpha=0.9)
    cl = None if vm is None else vm.centreline
    if vm is not None and vm.csvl_col is not None:
        ax.plot([vm.csvl_col, vm.csvl_col], [y0, y1], color="white", lw=1.0, ls=(0, (6, 4)), path_effects=_stroke(2.2))
        ax.text(
            vm.csvl_col,
            y1 - 0.005 * (y1 - y0),
            "CSVL ",
            color="#eeeeee",
            fontsize=fontsize * 0.75,
            ha="right",
            va="bottom",
            path_effects=_stroke(2.5),
        )
    if cl is not None:
        ax.plot(cl.points[:, 1], cl.points[:, 0], color=_CENTRELINE, lw=1.6)
        _draw_curves(ax, vm, fontsize)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    title = _VIEW_TITLES.get(name, name)
    if vm is None:
        title += "  (not measured)"
        ax.text(
            0.5,
            0.5,
            "not measured",
            transform=ax.transAxes,
            color="#ff5252",
            fontsize=fontsize * 1.3,
            fontweight="bold",
            ha="center",
            va="center",
            path_effects=_stroke(3.5),
        )
    elif name != "coronal" and vm.lean_deg is not None:
        title += f"  (trunk lean {round(vm.lean_deg) + 0:+d}°)"
    ax.set_title(title, fontsize=fontsize * 1.1, fontweight="bold", color="black", pad=6)


def _table(report: StudyReport) -> list[str]:
    """Monospace lines: one row per coronal curve (or per curve of the only view)."""
    lenke = report.lenke
    header = f"{'curve':<5} {'Cobb':>5}  {'levels (apex)':<17} {'convex':<14} {'bending':>8} {'flex':>6}  structural"
    # bending: the residual Cobb angle on the side-bending view towards the convexity (L or R)
    rows = [header]
    if lenke is not None and lenke.curves:
        for a in lenke.curves:
            c = a.coronal
            side = f"patient {c.patient_side}" if c.patient_side else c.convex.replace("image_", "image ")
            bend = "-" if a.residual_deg is None else f"{a.residual_deg:.0f}° {a.bending_view[0].upper()}"
            flex = "-" if a.flexibility_pct is None else f"{a.flexibility_pct:.0f}%"
            struct = "?" if a.structural is None else ("yes" if a.structural else "no")
            if a.major:
                struct += " (major)"
            levels = f"{c.upper_level}-{c.lower_level} ({c.apex_level})"
            rows.append(
                f"{REGION_ABBREVIATIONS[a.region]:<5} {c.cobb_deg:>4.0f}°  {levels:<17} {side:<14} {bend:>8} "
                f"{flex:>6}  {struct}"
            )
    else:
        for name, vm in report.views.items():
            for c in vm.curves:
                levels = f"{c.upper_level}-{c.lower_level} ({c.apex_level})"
                side = f"patient {c.patient_side}" if c.patient_side else c.convex.replace("image_", "image ")
                rows.append(f"{c.name:<5} {c.cobb_deg:>4.0f}°  {levels:<17} {side:<14} {'-':>8} {'-':>6}  ({name})")
    if len(rows) == 1:
        rows.append("no curve of at least the minimum Cobb angle" if report.views else "no view measured")
    dev = []
    coronal = report.views.get("coronal") or next(iter(report.views.values()), None)
    for c in [] if coronal is None else coronal.curves:
        if c.apex_deviation is not None:
            dev.append(f"{c.name} {c.apex_deviation:+.0f} {coronal.unit}")
    if dev:
        rows.append("apex to CSVL (+ = image right): " + ", ".join(dev))
    return rows


def _method_note(report: StudyReport) -> str:
    """How the views' levels and Cobb angles were read: from vertebrae read off a corner-built outline (the AASCE
    annotation) or estimated along a smooth column's centreline."""
    title = _VIEW_TITLES.get
    read = [n for n, vm in report.views.items() if vm.vertebrae is not None]
    filmed = any(vm.film_tilt_deg is not None for vm in report.views.values())
    estimated = "levels estimated from the column's length (about ±1 level), Cobb angles from the centreline tangent"
    if filmed:
        estimated += " and the endplates seen on the film"
    if not read:
        return estimated[0].upper() + estimated[1:] + "."
    corners = "the outline's corners"
    if any(report.views[n].vertebrae.film_edges for n in read):
        corners += " and the endplates' edges on the film"
    parts = [
        f"{', '.join(title(n, n) for n in read)}: levels and Cobb angles (endplate tilts) from the vertebrae read "
        f"off {corners}"
    ]
    rest = [n for n in report.views if n not in read]
    if rest:
        parts.append(f"{', '.join(title(n, n) for n in rest)}: {estimated}")
    return "; ".join(parts) + "."


def _notes(report: StudyReport) -> list[str]:
    """The figure's notes under the table: views not measured, the display convention, how the angles were read,
    vertebrae whose tilt was mended, what stays undetermined."""
    lenke = report.lenke
    notes: list[str] = []
    for n, why in report.not_measured.items():  # one wrapped note per view: the reason can be long
        notes += textwrap.wrap(f"{_VIEW_TITLES.get(n, n)} not measured: {why}", 150, subsequent_indent="    ")
    if lenke is not None:
        notes.append(lenke.orientation["note"])
    notes += textwrap.wrap(_method_note(report), 150, subsequent_indent="    ")
    for n, vm in report.views.items():
        if vm.vertebrae is not None and vm.vertebrae.mended_note is not None:
            notes.append(f"{_VIEW_TITLES.get(n, n)}: {vm.vertebrae.mended_note}.")
    if lenke is not None and lenke.sagittal_modifier is None:
        notes.append("Sagittal modifier and sagittal structural criteria undetermined: need a lateral radiograph.")
    notes += [u for u in report.undetermined if u.startswith("curve type")]
    return notes


def draw_study(
    report: StudyReport,
    path: str | os.PathLike,
    images: Mapping[str, np.ndarray] | None = None,
    dpi: int = 150,
) -> None:
    """Draw the study figure (see the module docstring) to a PNG file.

    Args:
        report: the :class:`.report.StudyReport` (its ``masks`` are drawn).
        path: the PNG file to write (written as PNG whatever its name ends with).
        images: view -> radiograph (H, W) in [0, 1]; views without one show their mask.
        dpi: resolution. Defaults to ``150``.
    """
    from matplotlib.figure import Figure  # no pyplot: no backend or global state is touched (Agg renders the PNG)

    images = images or {}
    names = [n for n in report.masks if n in report.views or n in report.not_measured]
    crops = [_crop(report.masks[n]) for n in names]
    widths = [(c[1] - c[0]) / (c[3] - c[2]) * _PANEL_HEIGHT_IN for c in crops]
    table = _table(report)
    lenke = report.lenke
    notes = _notes(report)
    text_h = 0.9 + 0.2 * (len(table) + len(notes))
    fig_w = max(sum(widths) + 0.3 * (len(names) + 1), 9.5)
    fig_h = _PANEL_HEIGHT_IN + 0.5 + text_h
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi, facecolor="white")
    fontsize = 11.0
    x = (fig_w - sum(widths) - 0.3 * (len(names) - 1)) / 2
    for name, w in zip(names, widths, strict=True):
        ax = fig.add_axes([x / fig_w, (text_h + 0.05) / fig_h, w / fig_w, _PANEL_HEIGHT_IN / fig_h])
        _panel(ax, name, report.views.get(name), report.masks[name], images.get(name), fontsize)
        x += w + 0.3
    if lenke is None and "coronal" in report.not_measured:
        head, sub = "Lenke: undetermined (the coronal view was not measured)", ""
    elif lenke is None:
        head, sub = "Lenke: needs the coronal view", ""
    else:
        from r2mf_monai.measure.lenke import LENKE_TYPES

        head = f"Lenke {lenke.label}"
        parts = []
        if lenke.curve_type is not None:
            parts.append(f"type {lenke.curve_type}: {LENKE_TYPES[lenke.curve_type]}")
        if lenke.lumbar_modifier:
            parts.append(f"lumbar modifier {lenke.lumbar_modifier} (approximated from the mask)")
        parts.append("sagittal modifier undetermined")
        sub = "  ·  ".join(parts)
    top = text_h - 0.1
    fig.text(0.3 / fig_w, top / fig_h, f"{report.patient_id}    {head}", fontsize=14, fontweight="bold", va="top")
    fig.text(0.3 / fig_w, (top - 0.32) / fig_h, sub, fontsize=10, va="top")
    fig.text(
        0.3 / fig_w,
        (top - 0.65) / fig_h,
        "\n".join(table),
        fontsize=9.5,
        family="monospace",
        va="top",
        linespacing=1.35,
    )
    fig.text(
        0.3 / fig_w,
        (top - 0.7 - 0.2 * len(table)) / fig_h,
        "\n".join(notes),
        fontsize=8.5,
        color="#444444",
        va="top",
        linespacing=1.35,
    )
    fig.savefig(path, format="png", dpi=dpi, facecolor="white")
