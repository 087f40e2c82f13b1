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

"""Find the radiographs of an inference run, and report the ones that cannot be read.

An inference folder from a hospital export holds a mix of DICOM (often without a suffix), PNG, JPEG and NIfTI files,
and sometimes a broken one. Each candidate is read once with the bundle's own loader
(:class:`r2mf_monai.transforms.LoadRadiographd`) before the run: a file that fails is logged with its reason,
listed in ``skipped_report`` and left out, so the run goes on with the rest. The images read are handed over to the
pipeline's loader (:meth:`~r2mf_monai.transforms.LoadRadiograph.probe`), so a film is decoded once, not twice.

Outputs never land where inputs are searched: the output folder is checked (made, and a file created in it) before
anything else, the input folder may not be the output folder, an output folder inside the input folder is left out
of the search, and files named as r2mf-monai names its outputs (``*_mask.png``, ``*_overlay.png``, ``*_seg.dcm``,
``measurements/``...) are never taken as radiographs. A run owns ``skipped_inputs.json``: a stale one is removed at
its start.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

from tqdm import tqdm

from r2mf_monai.outputs.atomic import write_json
from r2mf_monai.transforms.readers import DEFAULT_MAX_PIXELS, RADIOGRAPH_SUFFIXES, has_dicom_preamble

__all__ = ["OUTPUT_NAME", "check_output_dir", "discover_inputs", "is_candidate", "is_output", "log_outputs"]

logger = logging.getLogger(__name__)

#: names of the files r2mf-monai writes beside a radiograph's stem (SaveSegmentationd's masks, overlay, SEG and SC;
#: the measurement report), and the temporary names of its atomic writer: never inputs
OUTPUT_NAME = re.compile(
    r"(?:(?:_mask(?:\.tmp-[0-9a-f]{8})?\.(?:png|nii|nii\.gz))|(?:_overlay(?:\.tmp-[0-9a-f]{8})?\.png)"
    r"|(?:_(?:seg|sc)(?:\.tmp-[0-9a-f]{8})?\.dcm)|(?:_measurements(?:\.tmp-[0-9a-f]{8})?\.(?:json|png))"
    r"|\.tmp-[0-9a-f]{8}(?:\.[a-z0-9]+)*)$",
    re.IGNORECASE,
)
#: folders r2mf-monai writes inside an output folder (``r2mf-monai measure``'s and ``infer --measure``'s reports)
OUTPUT_FOLDERS = ("measurements",)


def is_output(path: Path, root: Path | None = None) -> bool:
    """Whether ``path`` is named as one of r2mf-monai's outputs (:data:`OUTPUT_NAME`), or lies in one of its
    output folders (:data:`OUTPUT_FOLDERS`) below ``root``."""
    if OUTPUT_NAME.search(path.name):
        return True
    folders = path.parent.relative_to(root).parts if root is not None and path.is_relative_to(root) else ()
    return any(part in OUTPUT_FOLDERS for part in folders)


def check_output_dir(output_dir: str | os.PathLike) -> str:
    """Make ``output_dir`` (with its parents) and check that a file can be created in it, before any work is done.

    The check creates an unnamed temporary file (nothing is left behind), so it holds for every user, root included,
    and for read-only mounts.

    Returns:
        the absolute path of the folder.

    Raises:
        ValueError: one line naming the folder and the reason, when it cannot be made or written.
    """
    path = os.path.abspath(output_dir)
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise ValueError(f"output folder '{output_dir}' cannot be written: {e.strerror or e}") from None
    return path


def is_candidate(path: Path) -> bool:
    """A file with a suffix the bundle's reader accepts (:data:`r2mf_monai.transforms.readers.RADIOGRAPH_SUFFIXES`),
    or a suffix-less file with the DICOM preamble (``DICM`` at byte 128)."""
    if not path.is_file() or path.name.startswith("."):
        return False
    name = path.name.lower()
    if name.endswith(RADIOGRAPH_SUFFIXES):
        return True
    if path.suffix == "" or path.suffix.lstrip(".").isdigit():
        return has_dicom_preamble(path)
    return False


def discover_inputs(
    folder: str,
    probe: bool = True,
    skipped_report: str | None = None,
    output_dir: str | os.PathLike | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> list[dict[str, str]]:
    """Items ``{"image": path}`` for every readable radiograph in ``folder`` (recursively, sorted).

    Files named as r2mf-monai's outputs (:func:`is_output`) are left out, and so is ``output_dir`` when it lies
    inside ``folder``.

    Args:
        folder: input folder (or a single image file).
        probe: read each candidate with the bundle's loader and leave out the ones that fail. Defaults to ``True``.
        skipped_report: JSON file listing the skipped files and why; written only when some were skipped, and
            removed at the start when it exists (it belongs to the run).
        output_dir: the run's output folder: checked first (:func:`check_output_dir`), refused when it is
            ``folder``, and left out of the search.
        max_pixels: the loader's limit on a file's declared size (see :class:`r2mf_monai.transforms.LoadRadiographd`,
            ``inference.json``'s ``max_pixels``): a larger file is skipped before it is decoded.
            Defaults to :data:`r2mf_monai.transforms.readers.DEFAULT_MAX_PIXELS`.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        ValueError: the output folder cannot be written or is the input folder; ``folder`` holds no candidate
            image, or none that can be read.
    """
    out = None
    if output_dir is not None:
        out = Path(check_output_dir(output_dir)).resolve()
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"input folder '{folder}' does not exist")
    if out is not None and root.resolve() == out:
        raise ValueError(
            f"output folder '{output_dir}' is the input folder: choose another one, so that outputs never land "
            "where inputs are searched"
        )
    if skipped_report and os.path.isfile(skipped_report):
        os.remove(skipped_report)  # an earlier run's list: this run writes its own, or none
    if root.is_file():
        candidates = [root]
    else:
        found = sorted(p for p in root.rglob("*") if is_candidate(p))
        candidates = [
            p for p in found if not is_output(p, root) and not (out is not None and p.resolve().is_relative_to(out))
        ]
        if len(found) > len(candidates):
            logger.info("left out %d file(s) of earlier outputs in '%s'", len(found) - len(candidates), folder)
    if not candidates:
        raise ValueError(f"no radiograph (DICOM, PNG, JPEG, NIfTI) found in '{folder}'")
    if not probe:
        return [{"image": str(p)} for p in candidates]

    from r2mf_monai.transforms import LoadRadiographd

    loader = LoadRadiographd(keys="image", max_pixels=max_pixels)
    items: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    for path in tqdm(candidates, desc="checking inputs", unit="file", disable=len(candidates) < 20):
        try:
            loader.probe({"image": str(path)})  # the pipeline's own read then takes the decoded image
        except Exception as err:  # any failure to read a user's file means "skip it and say why"
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            logger.error("skipping '%s': %s", path, reason)
            skipped.append({"image": str(path), "reason": reason})
            continue
        items.append({"image": str(path)})
    if skipped and skipped_report:
        write_json(skipped_report, {"skipped": skipped}, root=output_dir or os.path.dirname(skipped_report) or ".")
        logger.warning("%d input(s) skipped, listed in %s", len(skipped), skipped_report)
    if not items:
        raise ValueError(f"none of the {len(candidates)} file(s) in '{folder}' could be read (see the log)")
    logger.info("%d radiograph(s) to segment in '%s'", len(items), folder)
    return items


def log_outputs(output_dir: str) -> str:
    """Log where the outputs of a run went (the last step of ``inference.json``'s ``run``)."""
    logger.info("outputs written to %s", os.path.abspath(output_dir))
    return os.path.abspath(output_dir)
