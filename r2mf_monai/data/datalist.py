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

"""Build a MONAI datalist (training/validation/test, split by patient, paper §4.1) from a user's folders.

File stems are parsed with a regular expression with the named groups ``patient_id`` and ``view``; the view part
may be any alias of :data:`VIEW_ALIASES` (case-insensitive), and is written as one of ``"coronal"``,
``"left_bending"``, ``"right_bending"``. The result reads with
``monai.data.load_decathlon_datalist(path, data_list_key="training", base_dir=folder of the datalist)``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from r2mf_monai.constants import VIEWS
from r2mf_monai.outputs.atomic import write_json
from r2mf_monai.transforms.readers import DICOM_SUFFIXES, RADIOGRAPH_SUFFIXES, detect_format

__all__ = [
    "build_datalist",
    "join_datalists",
    "split_patients",
    "parse_stem",
    "normalise_view",
    "VIEW_ALIASES",
    "DEFAULT_PATTERN",
]

logger = logging.getLogger(__name__)

#: aliases of each view, compared case-insensitively with "-" and " " read as "_"
VIEW_ALIASES: dict[str, tuple[str, ...]] = {
    "coronal": ("coronal", "cor", "ap", "pa", "c", "frontal"),
    "left_bending": ("left_bending", "leftbending", "left_bend", "bending_left", "left", "lb", "lbend", "l"),
    "right_bending": ("right_bending", "rightbending", "right_bend", "bending_right", "right", "rb", "rbend", "r"),
}
_ALIAS_TO_VIEW = {alias: view for view, aliases in VIEW_ALIASES.items() for alias in aliases}


def _alias_regex() -> str:
    # longest first so that "left_bending" wins over "left" and "l"; "_" also matches "-" and " "
    aliases = sorted(_ALIAS_TO_VIEW, key=len, reverse=True)
    return "|".join(re.escape(a).replace("_", "[_\\- ]") for a in aliases)


#: ``<patient_id><separator><view alias>`` as the whole stem, e.g. ``P0001_coronal``, ``case-12 LB``, ``7_r``
DEFAULT_PATTERN = rf"(?P<patient_id>.+?)[_\- .]+(?P<view>{_alias_regex()})"


def normalise_view(text: str) -> str | None:
    """The view name of an alias (``"LB"`` -> ``"left_bending"``), or ``None`` when it is no known alias.

    Args:
        text: the matched view text.
    """
    key = re.sub(r"[\- ]", "_", text.strip().lower())
    return _ALIAS_TO_VIEW.get(key)


def _stem(path: Path) -> str:
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem


def parse_stem(stem: str, pattern: str | re.Pattern = DEFAULT_PATTERN) -> tuple[str, str] | None:
    """``(patient_id, view)`` parsed from a file stem with ``pattern`` (full match, case-insensitive), or ``None``.

    Args:
        stem: the file name without its suffix.
        pattern: regular expression with the named groups ``patient_id`` and ``view``.

    Raises:
        ValueError: when the stem matches but its view is no known alias.
    """
    regex = re.compile(pattern, re.IGNORECASE) if isinstance(pattern, str) else pattern
    match = regex.fullmatch(stem)
    if match is None:
        return None
    view = normalise_view(match.group("view"))
    if view is None:
        raise ValueError(
            f"file {stem!r}: view {match.group('view')!r} is not a known alias of coronal, left_bending or "
            f"right_bending (known: {sorted(_ALIAS_TO_VIEW)})."
        )
    return match.group("patient_id"), view


def _list_images(folder: Path) -> list[Path]:
    if not folder.exists():
        raise FileNotFoundError(f"folder not found: '{folder}'.")
    if not folder.is_dir():
        raise NotADirectoryError(f"not a folder: '{folder}'.")
    files = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else path.suffix.lower()
        if suffix in RADIOGRAPH_SUFFIXES or (suffix == "" and detect_format(path) == "dicom" and path.stat().st_size):
            files.append(path)
    if not files:
        raster = ", ".join(s for s in RADIOGRAPH_SUFFIXES if s not in DICOM_SUFFIXES)
        raise ValueError(f"no images in folder '{folder}' (looked for DICOM and {raster}).")
    return files


def split_patients(
    patients: Sequence[str], split: Sequence[float] = (0.65, 0.175, 0.175), seed: int = 0
) -> tuple[list[str], list[str], list[str]]:
    """Shuffle patients (seeded) and cut them into training, validation and test by the fractions in ``split``.

    Counts are rounded by largest remainder, so they add up to the number of patients (the paper's 148/40/40 of
    228 patients is ``split=(0.65, 0.175, 0.175)``).

    Args:
        patients: patient ids (duplicates are ignored).
        split: fractions for training, validation and test; non-negative, summing to 1.
        seed: seed of the shuffle. Defaults to ``0``.

    Raises:
        ValueError: for a split that is not three non-negative fractions summing to 1.
    """
    fractions = np.asarray(list(split), dtype=np.float64)
    if fractions.shape != (3,) or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0, atol=1e-6):
        raise ValueError(f"split must be three non-negative fractions summing to 1, got {tuple(split)}.")
    unique = sorted(set(patients))
    order = [unique[i] for i in np.random.default_rng(seed).permutation(len(unique))]
    exact = fractions * len(unique)
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: len(unique) - counts.sum()]:
        counts[i] += 1
    n_train, n_val = int(counts[0]), int(counts[1])
    return order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]


def _relative(path: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return path.resolve().as_posix()


def build_datalist(
    images: str | os.PathLike,
    labels: str | os.PathLike | None = None,
    output: str | os.PathLike = "datalist.json",
    pattern: str | None = None,
    split: Sequence[float] = (0.65, 0.175, 0.175),
    seed: int = 0,
) -> Path:
    """Write a MONAI datalist of a user's radiographs, split by patient (§4.1: no patient in two splits).

    Every image's stem must match ``pattern`` (e.g. ``P0001_coronal.dcm``, ``case12-LB.png``); the label of an image
    is the file of ``labels`` with the same stem (any supported suffix). Items are
    ``{"image", "label", "view", "patient_id"}`` with paths relative to the datalist's folder; the file holds
    ``"training"``, ``"validation"`` and ``"test"`` lists (without ``labels``, every item goes to ``"test"``, for
    inference). The JSON is written to a temporary file and renamed, so it is never half-written.

    Args:
        images: folder of radiographs (DICOM, PNG, JPEG, TIFF, NIfTI).
        labels: folder of masks; ``None`` for an unlabelled list.
        output: datalist JSON to write. Defaults to ``"datalist.json"``.
        pattern: regular expression with named groups ``patient_id`` and ``view``, matched (case-insensitively)
            against the whole file stem. Defaults to :data:`DEFAULT_PATTERN`.
        split: fractions of patients for training, validation and test. Defaults to ``(0.65, 0.175, 0.175)``
            (the paper's 148/40/40).
        seed: seed of the patient shuffle. Defaults to ``0``.

    Returns:
        the path of the datalist.

    Raises:
        FileNotFoundError: for a missing folder, or an image without a label (naming both).
        ValueError: for an empty folder, a file name the pattern does not match, an unknown view alias, two files
            with the same stem, a bad pattern or a bad split.
    """
    pattern = DEFAULT_PATTERN if pattern is None else pattern
    try:
        regex = re.compile(pattern, re.IGNORECASE)
    except re.error as e:
        raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {e}.") from e
    if not {"patient_id", "view"} <= set(regex.groupindex):
        raise ValueError(f"pattern {pattern!r} must have the named groups 'patient_id' and 'view'.")
    image_dir = Path(images).expanduser()
    label_dir = Path(labels).expanduser() if labels is not None else None
    output = Path(output).expanduser()

    image_files = _list_images(image_dir)
    _check_unique_stems(image_files, image_dir)
    unmatched = [p.name for p in image_files if regex.fullmatch(_stem(p)) is None]
    if unmatched:
        shown = ", ".join(unmatched[:5]) + (f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else "")
        raise ValueError(
            f"{len(unmatched)} file name(s) in '{image_dir}' do not match the pattern {pattern!r}: {shown}. "
            "Rename them as <patient>_<view> (views: coronal/ap/pa, left/lb, right/rb) or pass --pattern."
        )

    label_of: dict[str, Path] = {}
    if label_dir is not None:
        label_files = _list_images(label_dir)
        _check_unique_stems(label_files, label_dir)
        label_of = {_stem(p): p for p in label_files}
        missing = [p for p in image_files if _stem(p) not in label_of]
        if missing:
            shown = ", ".join(p.name for p in missing[:5]) + (
                f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            )
            raise FileNotFoundError(
                f"no label in '{label_dir}' for {len(missing)} image(s) of '{image_dir}': {shown} "
                "(a label must have the image's file name, with any supported suffix)."
            )
        extra = sorted(set(label_of) - {_stem(p) for p in image_files})
        if extra:
            logger.warning("%d label(s) in '%s' have no image and are ignored: %s", len(extra), label_dir, extra[:5])

    base = output.parent.resolve()
    items = []
    for path in image_files:
        try:
            patient_id, view = parse_stem(_stem(path), regex)
        except ValueError as e:
            raise ValueError(f"'{path}': {e}") from e
        item = {"image": _relative(path, base), "view": view, "patient_id": patient_id}
        if label_dir is not None:
            item["label"] = _relative(label_of[_stem(path)], base)
        items.append(item)
    duplicates = [k for k, n in Counter((i["patient_id"], i["view"]) for i in items).items() if n > 1]
    if duplicates:
        logger.warning("%d patient/view pair(s) have several images, e.g. %s", len(duplicates), duplicates[:3])

    items.sort(key=lambda i: (i["patient_id"], VIEWS.index(i["view"]), i["image"]))
    if label_dir is None:
        parts = {"training": [], "validation": [], "test": items}
    else:
        train, val, test = split_patients([i["patient_id"] for i in items], split, seed)
        where = {**dict.fromkeys(train, "training"), **dict.fromkeys(val, "validation"), **dict.fromkeys(test, "test")}
        parts = {"training": [], "validation": [], "test": []}
        for item in items:
            parts[where[item["patient_id"]]].append(item)

    content = {
        "description": "r2mf-monai datalist: split by patient; paths relative to this file's folder",
        "images": _relative(image_dir, base),
        "labels": _relative(label_dir, base) if label_dir is not None else None,
        "split": list(split) if label_dir is not None else None,
        "seed": seed,
        **parts,
    }
    write_json(output, content)
    logger.info(
        "wrote %s: %s items (training %d, validation %d, test %d) from %d patients",
        output,
        len(items),
        len(parts["training"]),
        len(parts["validation"]),
        len(parts["test"]),
        len({i["patient_id"] for i in items}),
    )
    return output


def _check_unique_stems(files: list[Path], folder: Path) -> None:
    seen: dict[str, Path] = {}
    for path in files:
        stem = _stem(path)
        if stem in seen:
            raise ValueError(
                f"two files in '{folder}' share the name {stem!r} ({seen[stem].name}, {path.name}); keep one."
            )
        seen[stem] = path


def join_datalists(datalists: Sequence[str | os.PathLike] | str | None, key: str) -> list[dict]:
    """The ``key`` lists of several MONAI datalists, joined, with paths resolved against each file's folder.

    ``train.json`` joins its data set with its ``extra_datalists`` this way (e.g. the DRR films of ``r2mf-monai
    drr``). The first datalist must have ``key``; a later one without it adds nothing. Every item gets the keys any
    item has (an absent one as ``""``), so that a batch mixing data sets collates (the synthetic items carry a
    ``quality`` that others lack).

    Args:
        datalists: paths of datalist JSON files (one path, or none, are accepted too).
        key: the list to read (``"training"``, ``"validation"``, ...).

    Raises:
        FileNotFoundError: a datalist does not exist (names it).
        ValueError: the first datalist has no ``key`` list (names it).
    """
    from monai.data import load_decathlon_datalist

    if not datalists:
        return []
    paths = [datalists] if isinstance(datalists, (str, os.PathLike)) else list(datalists)
    items: list[dict] = []
    for i, path in enumerate(paths):
        path = os.path.expanduser(str(path))
        if not os.path.isfile(path):
            raise FileNotFoundError(f"datalist '{path}' does not exist")
        with open(path, encoding="utf-8") as f:
            has_key = key in json.load(f)
        if not has_key and i == 0:
            raise ValueError(f"datalist '{path}' has no '{key}' list")
        if has_key:
            items += load_decathlon_datalist(path, True, key)
    keys = {k for item in items for k in item}
    return [{**dict.fromkeys(keys, ""), **item} for item in items]
