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
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from r2mf_monai.bundle_paths import default_bundle_root, find_bundle, installed_bundle, latest_checkpoint


@pytest.mark.parametrize("inside", [True, False])
def test_default_bundle_root_from_a_checkout_or_inside_the_bundle(tmp_path: Path, inside: bool) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "configs" / "metadata.json").write_text("{}")
    start = bundle if inside else tmp_path
    assert default_bundle_root(str(start)) == str(bundle.resolve())
    assert default_bundle_root(str(tmp_path / "elsewhere")) == str((tmp_path / "elsewhere").resolve())


def test_latest_checkpoint_is_the_newest(tmp_path: Path) -> None:
    for n in (1, 2, 10):
        (tmp_path / f"checkpoint_epoch={n}.pt").write_bytes(b"x")
        t = time.time() + n
        os.utime(tmp_path / f"checkpoint_epoch={n}.pt", (t, t))
    assert latest_checkpoint(str(tmp_path)).endswith("checkpoint_epoch=10.pt")
    with pytest.raises(FileNotFoundError, match="empty"):
        latest_checkpoint(str(tmp_path / "empty"))


@pytest.mark.parametrize("config", ["train.json", "inference.json"])
def test_find_bundle_checks_the_config(tmp_path: Path, config: str) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / config).write_text("{}")
    assert find_bundle(tmp_path, config) == tmp_path.resolve()
    other = "inference.json" if config == "train.json" else "train.json"
    with pytest.raises(FileNotFoundError, match=f"--bundle_dir: no configs/{other} in"):
        find_bundle(tmp_path, other, option="--bundle_dir")


def test_installed_bundle_is_the_one_beside_the_package() -> None:
    import r2mf_monai

    expected = Path(r2mf_monai.__file__).resolve().parents[1] / "bundle"
    assert installed_bundle() == expected and (expected / "configs" / "inference.json").is_file()


def test_find_bundle_ignores_a_configs_folder_in_the_current_directory(tmp_path: Path, monkeypatch) -> None:
    """Without a folder named, the installed bundle: a ``configs/`` where the user stands is not run."""
    (tmp_path / "configs").mkdir()
    for name in ("metadata.json", "inference.json", "train.json"):
        (tmp_path / "configs" / name).write_text("{\"run\": [\"$open('PWNED', 'w')\"]}")
    monkeypatch.chdir(tmp_path)
    assert find_bundle(None, "inference.json") == installed_bundle()
    assert find_bundle(tmp_path, "inference.json") == tmp_path.resolve()  # named: taken


def test_find_bundle_without_an_installed_bundle_needs_a_folder(monkeypatch) -> None:
    """A wheel install carries no bundle: the command asks for one instead of taking the current folder."""
    from r2mf_monai import bundle_paths

    monkeypatch.setattr(bundle_paths, "installed_bundle", lambda: None)
    with pytest.raises(FileNotFoundError, match="--bundle_dir: no bundle is installed"):
        find_bundle(None, "inference.json", option="--bundle_dir")
