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

"""Where the bundle lives on disk, for the bundle configs' defaults and for every command.

MONAI's model-zoo bundles default ``bundle_root`` to ``"."`` (they are run from inside the bundle folder); this
project is also run from a checkout, where the bundle is ``./bundle``. :func:`default_bundle_root` accepts both, for
a config that ``python -m monai.bundle run --config_file ...`` was told to run.

:func:`find_bundle` is the one lookup every command uses (the CLI, the experiments, the scripts). Without a folder
named by the user it takes the *installed* bundle, the one that belongs to this package (:func:`installed_bundle`),
never a ``configs/`` folder that happens to be in the current directory: a bundle's configs run Python (``$``
expressions, ``_target_`` classes), so only a bundle the user names, or the one installed with the package, runs.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

__all__ = ["default_bundle_root", "find_bundle", "installed_bundle", "latest_checkpoint"]


def installed_bundle() -> Path | None:
    """The bundle that belongs to the installed package: ``bundle/`` beside the ``r2mf_monai`` folder.

    That is where a checkout and an editable install (``pip install -e .``) keep it. A wheel installs the package
    alone (``setup.py`` ships no bundle files), so there it is ``None`` and a command needs ``--bundle_dir``.
    """
    root = Path(__file__).resolve().parent.parent / "bundle"
    return root if (root / "configs" / "metadata.json").is_file() else None


def default_bundle_root(start: str | None = None) -> str:
    """The bundle folder: ``start`` (default: the current folder) if it holds ``configs/metadata.json``, else
    ``start/bundle`` if that does, else ``start`` (as the model zoo's ``"."``)."""
    start = os.getcwd() if start is None else start
    for candidate in (start, os.path.join(start, "bundle")):
        if os.path.isfile(os.path.join(candidate, "configs", "metadata.json")):
            return os.path.abspath(candidate)
    return os.path.abspath(start)


def find_bundle(
    bundle_root: str | os.PathLike | None = None, config: str = "train.json", option: str = "bundle_root"
) -> Path:
    """The bundle folder, checked to hold ``configs/<config>``.

    Args:
        bundle_root: the bundle folder; defaults to :func:`installed_bundle` (not the current folder: see the
            module's docstring).
        config: the config file the caller needs. Defaults to ``"train.json"``.
        option: the name of the caller's option, for the message. Defaults to ``"bundle_root"``.

    Raises:
        FileNotFoundError: naming the option and the folder when ``configs/<config>`` is missing, or the option when
            no folder is given and no bundle is installed with the package (a wheel install).
    """
    if not bundle_root:
        bundle_root = installed_bundle()
        if bundle_root is None:
            raise FileNotFoundError(f"{option}: no bundle is installed with r2mf_monai (a wheel has none); name one")
    root = Path(os.path.abspath(bundle_root))
    if not (root / "configs" / config).is_file():
        raise FileNotFoundError(f"{option}: no configs/{config} in '{root}'")
    return root


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
