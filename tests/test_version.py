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
"""One version: r2mf_monai.__version__, what setup.py builds, what metadata.json and the Deploy app state (DICOM SEG
files and reports stamp ``r2mf_monai.__version__``: tests/outputs/test_dicom_seg.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import r2mf_monai

REPO = Path(__file__).resolve().parents[1]
METADATA = json.loads((REPO / "bundle" / "configs" / "metadata.json").read_text())


def test_setup_py_builds_the_package_version() -> None:
    out = subprocess.run(
        [sys.executable, "setup.py", "--version"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == r2mf_monai.__version__


@pytest.mark.parametrize(
    "where, value",
    [
        ("metadata.json version", METADATA["version"]),
        ("metadata.json required r2mf-monai", METADATA["required_packages_version"]["r2mf-monai"]),
        ("metadata.json changelog (newest)", max(METADATA["changelog"], key=lambda v: tuple(map(int, v.split("."))))),
        (
            "deploy app.yaml",
            re.search(r"^\s+version: (\S+)", (REPO / "scripts/deploy/app.yaml").read_text(), re.M).group(1),
        ),
        (
            "deploy requirements.txt",
            re.search(r"r2mf-monai>=(\S+)", (REPO / "scripts/deploy/requirements.txt").read_text()).group(1),
        ),
    ],
)
def test_every_stated_version_is_the_package_version(where: str, value: str) -> None:
    assert value == r2mf_monai.__version__, where
