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

"""Where the bundle lives on disk, for the bundle configs' defaults.

MONAI's model-zoo bundles default ``bundle_root`` to ``"."`` (they are run from inside the bundle folder); this
project is also run from a checkout, where the bundle is ``./bundle``. :func:`default_bundle_root` accepts both.
"""

from __future__ import annotations

import glob
import os
import re

__all__ = ["default_bundle_root", "latest_checkpoint"]


def default_bundle_root(start: str | None = None) -> str:
    """The bundle folder: ``start`` (default: the current folder) if it holds ``configs/metadata.json``, else
    ``start/bundle`` if that does, else ``start`` (as the model zoo's ``"."``)."""
    start = os.getcwd() if start is None else start
    for candidate in (start, os.path.join(start, "bundle")):
        if os.path.isfile(os.path.join(candidate, "configs", "metadata.json")):
            return os.path.abspath(candidate)
    return os.path.abspath(start)


def latest_checkpoint(ckpt_dir: str, prefix: str = "checkpoint") -> str:
    """The newest ``<prefix>_epoch=N.pt`` (or ``<prefix>_final_iteration=N.pt``) written by MONAI's CheckpointSaver.

    Raises:
        FileNotFoundError: when ``ckpt_dir`` holds no such checkpoint (names the folder).
    """
    files = glob.glob(os.path.join(ckpt_dir, f"{prefix}_*.pt"))

    def _number(path: str) -> int:
        found = re.search(r"=(\d+)\.pt$", path)
        return int(found.group(1)) if found else -1

    if not files:
        raise FileNotFoundError(f"resume: no '{prefix}_*.pt' checkpoint in '{ckpt_dir}' to resume from")
    return max(files, key=lambda p: (os.path.getmtime(p), _number(p)))
