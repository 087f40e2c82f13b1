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

"""Vertebral levels estimated from the position along a spinal-column mask, and the SRS curve regions.

A whole-column mask (paper §4.1: "the entire spinal column from the upper thoracic region to sacrum", no vertebra
labels) says nothing about where one vertebra ends and the next begins. :class:`LevelModel` therefore divides the
column's centreline arc length in the proportions of typical vertebral body heights plus disc heights, from the top
of T1 to the bottom of the sacrum. The defaults are rounded typical adult values: vertebral body heights
rising from about 15 mm at T1 to about 25 mm in the lumbar spine (Panjabi et al., Spine 1991;16:888-901 and
1992;17:299-306), thoracic discs of 3-6 mm (Fletcher et al., Eur Spine J 2015;24:2321-2329) and lumbar discs of
7-11 mm. Only the *proportions* matter, so the child or adult size of the patient cancels out.

Limits of the approximation (all reported with each measurement):

- the mask must start at T1 and end with the sacrum as annotated in the paper's data set; a mask that starts at C7 or
  stops at S1 or L5 shifts every label (``top`` and ``sacrum_mm`` change the assumption);
- the coronal projection foreshortens the sagittal curves (thoracic kyphosis, lumbar lordosis) and vertebrae rotated
  or wedged in a scoliotic curve are not of typical height, so labels can be off by about one level, more near the
  sacrum than near T1 when the error accumulates;
- numerical variants (11 or 13 thoracic, 4 or 6 lumbar vertebrae, transitional vertebrae) are invisible to a mask.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from r2mf_monai.constants import VERTEBRAE

__all__ = [
    "BODY_HEIGHT_MM",
    "DISC_HEIGHT_MM",
    "REGIONS",
    "REGION_ABBREVIATIONS",
    "LevelModel",
    "region_of",
]


BODY_HEIGHT_MM: dict[str, float] = {
    "T1": 15.0, "T2": 16.0, "T3": 16.5, "T4": 17.0, "T5": 17.5, "T6": 18.0, "T7": 18.5, "T8": 19.0, "T9": 19.5,
    "T10": 20.5, "T11": 21.5, "T12": 22.5, "L1": 24.0, "L2": 25.0, "L3": 25.5, "L4": 25.5, "L5": 25.0,
}  # fmt: skip
"""Typical vertebral body heights (mm), rounded (Panjabi et al. 1991, 1992). Only their proportions are used."""

DISC_HEIGHT_MM: dict[str, float] = {
    "T1": 3.5, "T2": 3.5, "T3": 3.5, "T4": 3.5, "T5": 4.0, "T6": 4.0, "T7": 4.5, "T8": 4.5, "T9": 5.0,
    "T10": 5.5, "T11": 6.0, "T12": 7.0, "L1": 8.0, "L2": 9.0, "L3": 10.0, "L4": 11.0, "L5": 10.0,
}  # fmt: skip
"""Typical height (mm) of the disc *below* each vertebra (the last one is L5/S1), rounded."""

REGIONS: tuple[str, ...] = ("proximal_thoracic", "main_thoracic", "thoracolumbar_lumbar")
"""The three regions of the Lenke classification, by apex level (Scoliosis Research Society terminology)."""

REGION_ABBREVIATIONS: dict[str, str] = {
    "proximal_thoracic": "PT",
    "main_thoracic": "MT",
    "thoracolumbar_lumbar": "TL/L",
}


class LevelModel:
    """Maps a fraction of the column's length (0 at the top of the mask, 1 at its bottom) to a vertebral level.

    The column is modelled as a stack of segments from ``top`` to L5 (each vertebral body followed by the disc below
    it) and a final sacral segment of ``sacrum_mm``. A vertebra's extent runs from the middle of the disc above to the
    middle of the disc below, so a point in a disc is attributed to the nearer vertebra.

    The continuous *position* of a point is the index of its vertebra plus the fraction of the way through that
    vertebra's extent (``T1`` spans ``[0, 1)``, ``T2`` spans ``[1, 2)``, ..., the sacrum starts at
    ``len(vertebrae)``), which is what :func:`region_of` uses.

    Args:
        top: the first vertebra at the top of the mask. Defaults to ``"T1"`` (the paper's annotation starts at the
            upper thoracic spine).
        sacrum_mm: height of the sacrum included at the bottom of the mask, in the same units as the heights.
            Defaults to ``75.0``: the paper's annotation runs "to sacrum" (§4.1), and the whole sacrum, about
            100-110 mm long and inclined 40-45 degrees to the coronal plane, projects to about 75 mm on a coronal
            radiograph. Use about ``30`` for masks that stop at the S1 body and ``0`` for masks that stop at L5.
        body_heights: vertebral body heights by name. Defaults to :data:`BODY_HEIGHT_MM`.
        disc_heights: height of the disc below each vertebra. Defaults to :data:`DISC_HEIGHT_MM`.

    Raises:
        ValueError: when ``top`` is not one of :data:`VERTEBRAE` or a height is not positive.
    """

    def __init__(
        self,
        top: str = "T1",
        sacrum_mm: float = 75.0,
        body_heights: Mapping[str, float] | None = None,
        disc_heights: Mapping[str, float] | None = None,
    ) -> None:
        if top not in VERTEBRAE:
            raise ValueError(f"top must be one of {VERTEBRAE}, got {top!r}.")
        if not sacrum_mm >= 0:
            raise ValueError(f"sacrum_mm must be >= 0, got {sacrum_mm}.")
        body = dict(BODY_HEIGHT_MM if body_heights is None else body_heights)
        disc = dict(DISC_HEIGHT_MM if disc_heights is None else disc_heights)
        self.top = top
        self.sacrum_mm = float(sacrum_mm)
        self.vertebrae: tuple[str, ...] = VERTEBRAE[VERTEBRAE.index(top) :]
        for name in self.vertebrae:
            if not (body.get(name, 0) > 0 and disc.get(name, 0) > 0):
                raise ValueError(f"body and disc heights must be positive for {name}, got {body.get(name)}, "
                                 f"{disc.get(name)}.")  # fmt: skip
        # boundaries (in mm from the top of the first body) between consecutive vertebral *extents*: the middle of
        # each disc; the first extent starts at 0, the sacrum ends at the total length.
        edges = [0.0]
        y = 0.0
        for name in self.vertebrae:
            y += body[name]
            edges.append(y + disc[name] / 2.0)
            y += disc[name]
        total = y + self.sacrum_mm
        self.names: tuple[str, ...] = (*self.vertebrae, "S")
        self._edges = np.asarray([*edges, total], dtype=float) / total  # len(names) + 1 fractions, 0 ... 1
        # centre of each vertebral body (fraction), for drawing and for choosing a point at a level
        centres, y = [], 0.0
        for name in self.vertebrae:
            centres.append(y + body[name] / 2.0)
            y += body[name] + disc[name]
        centres.append(y + self.sacrum_mm / 2.0)
        self._centres = np.asarray(centres, dtype=float) / total
        starts, y = [], 0.0
        for name in self.vertebrae:
            starts.append(y)
            y += body[name] + disc[name]
        starts.append(y)
        self._body_starts = np.asarray(starts, dtype=float) / total

    @property
    def s1_endplate(self) -> float:
        """Fraction of the column length at the upper endplate of S1: the lowest endplate a Cobb line can use."""
        return float(self._body_starts[-1])

    @property
    def edges(self) -> np.ndarray:
        """Fractions of the column length where each level's extent starts, plus 1.0 at the end."""
        return self._edges.copy()

    def position(self, fraction: float | np.ndarray) -> float | np.ndarray:
        """Continuous level position of a fraction of the column length (see the class docstring)."""
        f = np.clip(np.asarray(fraction, dtype=float), 0.0, 1.0)
        i = np.clip(np.searchsorted(self._edges, f, side="right") - 1, 0, len(self.names) - 1)
        pos = i + (f - self._edges[i]) / (self._edges[i + 1] - self._edges[i])
        return float(pos) if np.ndim(pos) == 0 else pos

    def level(self, fraction: float) -> str:
        """Name of the level (``"T1"`` ... ``"L5"``, ``"S"``) at a fraction of the column length."""
        return self.names[min(int(self.position(fraction)), len(self.names) - 1)]

    def centre(self, name: str) -> float:
        """Fraction of the column length at the centre of the vertebral body ``name`` (``"S"`` for the sacrum)."""
        if name not in self.names:
            raise ValueError(f"unknown level {name!r}; expected one of {self.names}.")
        return float(self._centres[self.names.index(name)])

    def boundary(self, name: str, body: bool = False) -> float:
        """Continuous position where level ``name`` starts: the middle of the disc above it, or with ``body=True``
        the top of its vertebral body. Levels above ``top`` start at ``-inf``-like negative positions (0 - n)."""
        full = (*VERTEBRAE, "S")
        if name not in full:
            raise ValueError(f"unknown level {name!r}; expected one of {full}.")
        if name not in self.names:
            return float(full.index(name) - full.index(self.top))
        i = self.names.index(name)
        if not body:
            return float(i)
        return float(self.position(self._body_starts[i]))

    def to_dict(self) -> dict:
        """Parameters of the model, for reports."""
        return {"top": self.top, "sacrum_mm": self.sacrum_mm, "levels": list(self.names)}


def region_of(apex: str | float, model: LevelModel | None = None) -> str:
    """Lenke region of a curve from its apex (Scoliosis Research Society definitions, Lenke et al. 2001).

    - proximal thoracic: apex T2-T5 (an apex at T1 is also counted here);
    - main thoracic: apex T6 to the T11/T12 disc;
    - thoracolumbar/lumbar: apex T12 to L4 (an apex at L5 or the sacrum is also counted here).

    Args:
        apex: a level name such as ``"T8"``, or a continuous position of ``model`` (see :class:`LevelModel`); with a
            position, an apex in the T11/T12 disc (above the T12 body) is main thoracic.
        model: the level model a continuous position refers to. Defaults to ``LevelModel()``.

    Returns:
        one of :data:`REGIONS`.

    Raises:
        ValueError: for an unknown level name.
    """
    if isinstance(apex, str):
        if apex == "S":
            return REGIONS[2]
        if apex not in VERTEBRAE:
            raise ValueError(f"unknown level {apex!r}; expected one of {VERTEBRAE} or 'S'.")
        i = VERTEBRAE.index(apex)
        return REGIONS[0] if i <= VERTEBRAE.index("T5") else REGIONS[1] if i <= VERTEBRAE.index("T11") else REGIONS[2]
    model = LevelModel() if model is None else model
    pos = float(apex)
    if pos < model.boundary("T6"):
        return REGIONS[0]
    return REGIONS[1] if pos < model.boundary("T12", body=True) else REGIONS[2]
