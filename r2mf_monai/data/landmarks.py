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

"""Vertebra corner landmarks (AASCE / SpineWeb dataset 16 layout) to whole-spinal-column masks (paper §4.1 labels).

The paper's labels are polygons of "the entire spinal column from the upper thoracic region to sacrum"; public
scoliosis data (AASCE 2019, 609 AP radiographs) has four corners per vertebra instead. This module turns those
corners into a column mask: every vertebral body as the quadrilateral of its corners, plus every intervertebral
space as the quadrilateral from the two lower corners of one vertebra to the two upper corners of the next.

Layouts read:

- a folder of ``.mat`` files (``scipy.io.loadmat``), one per image, named after the image plus ``.mat`` (e.g.
  ``sunhl-1th-02-Jan-2017-162 A AP.jpg.mat``), whose variable ``p2`` is a (68, 2) array of (x, y) pixel
  coordinates: 17 vertebrae (T1-L5) x 4 corners in the AASCE order top-left, top-right, bottom-left, bottom-right;
- the csv layout: ``landmarks.csv`` with one row per image of 136 values, the 68 x coordinates then the 68 y
  coordinates, normalised to [0, 1] by the image width and height, and ``filenames.csv`` with the image names in
  the same row order (a header row in either file is skipped).

Which corner is "upper" is decided geometrically (along the local spine axis) rather than trusted from the
order, because public annotations contain a few swapped corners; vertebrae are sorted from head to feet. Angles
computed from the listed order (the AASCE calculator takes each vertebra's tilt from the middles of its 1st+3rd and
2nd+4th corners) are wrong for such a vertebra: :func:`misordered_vertebrae` finds them, and ``landmarks2mask``
names them in a warning.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.draw import polygon, polygon_perimeter
from tqdm import tqdm

from r2mf_monai.outputs.atomic import write_with
from r2mf_monai.transforms.readers import RADIOGRAPH_SUFFIXES, detect_format

__all__ = [
    "convert_landmarks",
    "column_mask",
    "misordered_vertebrae",
    "read_mat_landmarks",
    "read_csv_landmarks",
    "AASCE_VERTEBRAE",
]

logger = logging.getLogger(__name__)

#: vertebrae annotated in AASCE 2019 (T1-T12, L1-L5)
AASCE_VERTEBRAE = 17


def _check_points(points: np.ndarray, source: str, num_vertebrae: int | None) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{source}: landmarks must be an (N, 2) array of (x, y) points, got shape {points.shape}.")
    n = points.shape[0]
    if num_vertebrae is not None and n != 4 * num_vertebrae:
        raise ValueError(
            f"{source}: expected {4 * num_vertebrae} points ({num_vertebrae} vertebrae x 4 corners), got {n}."
        )
    if n < 4 or n % 4:
        raise ValueError(f"{source}: the number of points must be a multiple of 4 (4 corners a vertebra), got {n}.")
    if not np.all(np.isfinite(points)):
        raise ValueError(f"{source}: landmarks contain NaN or infinite values.")
    return points


def misordered_vertebrae(points: np.ndarray, source: str = "landmarks") -> np.ndarray:
    """Indices (0-based, in the order listed) of the vertebrae whose four corners, as listed, do not go round a convex
    body in the AASCE order: top-left, top-right, bottom-left, bottom-right, with image rows running down.

    Tested as the quadrilateral top-left -> top-right -> bottom-right -> bottom-left turning the same way (clockwise
    on the screen) at every corner. Two corners swapped (AASCE film ``161 A``'s L5 lists its top-right corner where
    its bottom-left one lies), a body folded over or a corner clicked across the body fails; a wedged, tilted or
    rotated body does not. The masks of :func:`column_mask` do not depend on the order, but Cobb angles computed from
    the listed corners (the AASCE calculator, so the dataset's own ``angles.csv``) do.

    Args:
        points: (4 * n_vertebrae, 2) ``(x, y)`` pixel coordinates, four corners a vertebra.
        source: name used in error messages.

    Raises:
        ValueError: for a point count that is not a multiple of 4 or non-finite values.
    """
    quads = _check_points(points, source, None).reshape(-1, 4, 2)[:, [0, 1, 3, 2]]  # round the body
    edges = np.roll(quads, -1, axis=1) - quads
    following = np.roll(edges, -1, axis=1)
    turns = edges[..., 0] * following[..., 1] - edges[..., 1] * following[..., 0]  # > 0: clockwise on the screen
    return np.flatnonzero((turns <= 0).any(axis=1))


def column_mask(points: np.ndarray, shape: Sequence[int], source: str = "landmarks") -> np.ndarray:
    """Whole-column mask (H, W) uint8 0/255 from vertebra corners: bodies plus the spaces between neighbours.

    Args:
        points: (4 * n_vertebrae, 2) array of (x, y) pixel coordinates (x = column, y = row), four corners a
            vertebra (any order within a vertebra; AASCE gives top-left, top-right, bottom-left, bottom-right).
        shape: (H, W) of the image.
        source: name used in error messages.

    Raises:
        ValueError: for a point count that is not a multiple of 4 or non-finite values.
    """
    points = _check_points(points, source, None)
    h, w = int(shape[0]), int(shape[1])
    corners = points.reshape(-1, 4, 2)
    centres = corners.mean(axis=1)
    order = np.argsort(centres[:, 1], kind="stable")  # head (small row) to feet
    corners, centres = corners[order], centres[order]
    k = len(corners)
    tops, bottoms = [], []
    for i in range(k):
        # local spine axis from the neighbouring centres (one-sided at the ends); straight down for one vertebra
        axis = centres[min(i + 1, k - 1)] - centres[max(i - 1, 0)] if k > 1 else np.array([0.0, 1.0])
        norm = np.linalg.norm(axis)
        axis = axis / norm if norm > 0 else np.array([0.0, 1.0])
        along = (corners[i] - centres[i]) @ axis
        idx = np.argsort(along, kind="stable")
        tops.append(corners[i][idx[:2]])
        bottoms.append(corners[i][idx[2:]])
    quads = [corners[i] for i in range(k)] + [np.vstack([bottoms[i], tops[i + 1]]) for i in range(k - 1)]
    mask = np.zeros((h, w), dtype=bool)
    for quad in quads:
        centre = quad.mean(axis=0)
        quad = quad[np.argsort(np.arctan2(quad[:, 1] - centre[1], quad[:, 0] - centre[0]))]  # convex order
        rows, cols = polygon(quad[:, 1], quad[:, 0], shape=(h, w))
        mask[rows, cols] = True
        # the outline too, so that neighbouring quadrilaterals sharing an edge never leave a gap of pixels
        rows, cols = polygon_perimeter(np.round(quad[:, 1]), np.round(quad[:, 0]), shape=(h, w), clip=False)
        mask[rows, cols] = True
    return mask.astype(np.uint8) * 255


def read_mat_landmarks(path: str | os.PathLike, num_vertebrae: int | None = AASCE_VERTEBRAE) -> np.ndarray:
    """(N, 2) (x, y) pixel coordinates from an AASCE ``.mat`` file (variable ``p2``).

    Args:
        path: the ``.mat`` file.
        num_vertebrae: vertebrae expected (4 corners each); ``None`` accepts any multiple of 4. Defaults to 17.

    Raises:
        ValueError: for an unreadable file, no ``p2`` variable, or a wrong number of points (naming the file).
    """
    from scipy.io import loadmat

    try:
        content = loadmat(str(path))
    except Exception as e:
        raise ValueError(f"cannot read landmark file '{path}': {type(e).__name__}: {e}") from e
    if "p2" in content:
        points = content["p2"]
    else:
        arrays = [v for k, v in content.items() if not k.startswith("__") and np.ndim(v) == 2 and np.shape(v)[1] == 2]
        if len(arrays) != 1:
            raise ValueError(f"landmark file '{path}' has no 'p2' variable (an (N, 2) array of x, y corners).")
        points = arrays[0]
    return _check_points(points, f"landmark file '{path}'", num_vertebrae)


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [row for row in csv.reader(f) if any(cell.strip() for cell in row)]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_csv_landmarks(
    landmarks_csv: str | os.PathLike, filenames_csv: str | os.PathLike, num_vertebrae: int | None = AASCE_VERTEBRAE
) -> list[tuple[str, np.ndarray]]:
    """``(image name, (N, 2) array of (x, y))`` per row of the AASCE csv layout (coordinates as stored).

    Args:
        landmarks_csv: rows of 2N values, the N x coordinates then the N y coordinates.
        filenames_csv: the image names, one a row, in the same order.
        num_vertebrae: vertebrae expected (4 corners each); ``None`` accepts any multiple of 4. Defaults to 17.

    Raises:
        FileNotFoundError: for a missing file.
        ValueError: for non-numeric values, an odd or wrong number of values in a row, or row counts that differ.
    """
    landmarks_csv, filenames_csv = Path(landmarks_csv), Path(filenames_csv)
    for path in (landmarks_csv, filenames_csv):
        if not path.is_file():
            raise FileNotFoundError(f"landmark csv not found: '{path}'.")
    rows = _rows(landmarks_csv)
    if rows and not all(_is_number(c) for c in rows[0] if c.strip()):
        rows = rows[1:]  # header
    names = [row[0].strip() for row in _rows(filenames_csv)]
    if names and names[0].lower() in ("filename", "filenames", "name", "image", "file"):
        names = names[1:]
    if len(rows) != len(names):
        raise ValueError(
            f"'{landmarks_csv}' has {len(rows)} rows but '{filenames_csv}' names {len(names)} images; they must match."
        )
    out = []
    for r, (row, name) in enumerate(zip(rows, names, strict=True), start=1):
        source = f"'{landmarks_csv}' row {r} ({name})"
        try:
            values = np.array([float(c) for c in row if c.strip()], dtype=np.float64)
        except ValueError as e:
            raise ValueError(f"{source}: non-numeric value ({e}).") from e
        if values.size % 2:
            raise ValueError(f"{source}: {values.size} values; expected the x coordinates then the y coordinates.")
        n = values.size // 2
        out.append((name, _check_points(np.stack([values[:n], values[n:]], axis=1), source, num_vertebrae)))
    return out


def _image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image without decoding its pixels."""
    family = detect_format(path)
    try:
        if family == "dicom":
            import pydicom

            ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
            return int(ds.Rows), int(ds.Columns)
        if family == "nifti":
            import nibabel as nib

            shape = nib.load(str(path)).shape
            return int(shape[1]), int(shape[0])  # NIfTI i axis is x (columns)
        with Image.open(path) as im:
            return im.height, im.width
    except Exception as e:
        raise ValueError(f"cannot read the size of image '{path}': {type(e).__name__}: {e}") from e


def _find_image(name: str, images: Path, by_stem: dict[str, Path]) -> Path:
    direct = images / name
    if direct.is_file():
        return direct
    stem = Path(name).name
    for suffix in sorted(RADIOGRAPH_SUFFIXES, key=len, reverse=True):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    if stem in by_stem:
        return by_stem[stem]
    raise FileNotFoundError(f"no image named '{name}' (or with stem '{stem}') in '{images}'.")


def _write_png(mask: np.ndarray, path: Path) -> None:
    write_with(path, lambda tmp: Image.fromarray(mask, mode="L").save(tmp))


def convert_landmarks(
    landmarks: str | os.PathLike,
    images: str | os.PathLike,
    out_dir: str | os.PathLike,
    filenames: str | os.PathLike | None = None,
    num_vertebrae: int | None = AASCE_VERTEBRAE,
    normalized: bool = True,
) -> Path:
    """Write one whole-column mask (PNG, 0/255, the image's size, named after the image's stem) per landmark set.

    Args:
        landmarks: a folder of ``.mat`` files, one ``.mat`` file, a folder holding ``landmarks.csv`` and
            ``filenames.csv``, or a ``landmarks.csv``.
        images: folder of the images the landmarks belong to (for the mask size and name).
        out_dir: folder for the masks (created).
        filenames: the ``filenames.csv`` of a csv layout; defaults to ``filenames.csv`` beside ``landmarks.csv``.
        num_vertebrae: vertebrae per image (4 corners each); ``None`` accepts any multiple of 4. Defaults to 17
            (AASCE).
        normalized: whether csv coordinates are fractions of the image width/height (AASCE) rather than pixels.
            ``.mat`` coordinates are always pixels. Defaults to ``True``.

    Returns:
        ``out_dir``.

    Raises:
        FileNotFoundError: for a missing landmark file or folder, image folder or image.
        ValueError: for a folder with neither ``.mat`` files nor ``landmarks.csv``, a wrong number of points, or an
            unreadable file; every message names the file.
    """
    landmarks, images, out = Path(landmarks).expanduser(), Path(images).expanduser(), Path(out_dir).expanduser()
    if not landmarks.exists():
        raise FileNotFoundError(f"landmarks not found: '{landmarks}'.")
    if not images.is_dir():
        raise FileNotFoundError(f"image folder not found: '{images}'.")
    by_stem = {}
    for p in images.iterdir():
        if p.is_file() and not p.name.startswith("."):
            by_stem.setdefault(p.name[: -len(".nii.gz")] if p.name.lower().endswith(".nii.gz") else p.stem, p)

    # (image name, points, pixel coordinates?) for every image
    entries: list[tuple[str, np.ndarray | Path, bool]] = []
    csv_file = None
    if landmarks.is_dir():
        mats = sorted(landmarks.glob("*.mat"))
        if mats:
            entries = [(m.name[: -len(".mat")], m, True) for m in mats]
        elif (landmarks / "landmarks.csv").is_file():
            csv_file = landmarks / "landmarks.csv"
        else:
            raise ValueError(f"no .mat files and no landmarks.csv in '{landmarks}'.")
    elif landmarks.suffix.lower() == ".mat":
        entries = [(landmarks.name[: -len(".mat")], landmarks, True)]
    elif landmarks.suffix.lower() == ".csv":
        csv_file = landmarks
    else:
        raise ValueError(f"'{landmarks}' is neither a .mat file, a .csv file nor a folder of them.")
    if csv_file is not None:
        names_csv = Path(filenames) if filenames is not None else csv_file.with_name("filenames.csv")
        entries = [(n, p, not normalized) for n, p in read_csv_landmarks(csv_file, names_csv, num_vertebrae)]

    out.mkdir(parents=True, exist_ok=True)
    for name, source, in_pixels in tqdm(entries, desc="landmarks -> masks", unit="image", leave=False):
        image = _find_image(name, images, by_stem)
        points = read_mat_landmarks(source, num_vertebrae) if isinstance(source, Path) else source
        h, w = _image_size(image)
        if not in_pixels:
            points = points * np.array([w, h], dtype=np.float64)
        elif min(w, h) > 20 and np.abs(points).max() <= 1.5:
            raise ValueError(
                f"landmarks of '{image}' are all within [0, 1.5]: normalised coordinates read as pixels "
                "(pass normalized=True)."
            )
        outside = np.mean(
            (points[:, 0] < -0.05 * w)
            | (points[:, 0] > 1.05 * w)
            | (points[:, 1] < -0.05 * h)
            | (points[:, 1] > 1.05 * h)
        )
        if outside > 0.25:
            raise ValueError(
                f"landmarks of '{image}': {outside:.0%} of the points lie outside the {w}x{h} image; wrong image, "
                "or normalised coordinates read as pixels (see normalized=)."
            )
        misordered = misordered_vertebrae(points, source=name)
        if misordered.size:
            logger.warning(
                "landmarks of '%s': the corners of vertebra %s (of %d, as listed) are not in the order top-left, "
                "top-right, bottom-left, bottom-right; the mask does not depend on it, angles computed from the "
                "listed order (the AASCE calculator) do",
                name,
                ", ".join(str(i + 1) for i in misordered),
                len(points) // 4,
            )
        stem = image.name[: -len(".nii.gz")] if image.name.lower().endswith(".nii.gz") else image.stem
        _write_png(
            column_mask(points, (h, w), source=str(source if isinstance(source, Path) else name)), out / f"{stem}.png"
        )
    logger.info("wrote %d column masks to %s", len(entries), out)
    return out
