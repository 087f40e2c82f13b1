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
listed in ``skipped_report`` and left out, so the run goes on with the rest.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tqdm import tqdm

from r2mf_monai.outputs.atomic import write_json
from r2mf_monai.transforms.readers import RADIOGRAPH_SUFFIXES, has_dicom_preamble

__all__ = ["discover_inputs", "is_candidate", "log_outputs"]

logger = logging.getLogger(__name__)


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


def discover_inputs(folder: str, probe: bool = True, skipped_report: str | None = None) -> list[dict[str, str]]:
    """Items ``{"image": path}`` for every readable radiograph in ``folder`` (recursively, sorted).

    Args:
        folder: input folder (or a single image file).
        probe: read each candidate with the bundle's loader and leave out the ones that fail. Defaults to ``True``.
        skipped_report: JSON file listing the skipped files and why; written only when some were skipped.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        ValueError: ``folder`` holds no candidate image, or none that can be read.
    """
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"input folder '{folder}' does not exist")
    candidates = [root] if root.is_file() else sorted(p for p in root.rglob("*") if is_candidate(p))
    if not candidates:
        raise ValueError(f"no radiograph (DICOM, PNG, JPEG, NIfTI) found in '{folder}'")
    if not probe:
        return [{"image": str(p)} for p in candidates]

    from r2mf_monai.transforms import LoadRadiographd

    loader = LoadRadiographd(keys="image")
    items: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    for path in tqdm(candidates, desc="checking inputs", unit="file", disable=len(candidates) < 20):
        try:
            loader({"image": str(path)})
        except Exception as err:  # any failure to read a user's file means "skip it and say why"
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            logger.error("skipping '%s': %s", path, reason)
            skipped.append({"image": str(path), "reason": reason})
            continue
        items.append({"image": str(path)})
    if skipped and skipped_report:
        write_json(skipped_report, {"skipped": skipped})
        logger.warning("%d input(s) skipped, listed in %s", len(skipped), skipped_report)
    if not items:
        raise ValueError(f"none of the {len(candidates)} file(s) in '{folder}' could be read (see the log)")
    logger.info("%d radiograph(s) to segment in '%s'", len(items), folder)
    return items


def log_outputs(output_dir: str) -> str:
    """Log where the outputs of a run went (the last step of ``inference.json``'s ``run``)."""
    logger.info("outputs written to %s", os.path.abspath(output_dir))
    return os.path.abspath(output_dir)
