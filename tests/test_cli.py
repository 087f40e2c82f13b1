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
"""The ``r2mf-monai`` command (r2mf_monai/cli.py): every user error is one line, command-line values never reach
MONAI's config evaluator as code, and a ``configs/`` folder in the current directory is not run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from r2mf_monai.bundle_paths import installed_bundle
from r2mf_monai.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

MARKER = "PWNED"
# expressions that create MARKER in the current folder when MONAI's config parser evaluates them (no commas: the
# formats are split at commas)
TOUCH = f"__import__('pathlib').Path('{MARKER}').touch()"
DEVICE_INJECTION = f"cpu') if {TOUCH} is None else torch.device('cpu"  # was pasted into "$torch.device('...')"
FORMAT_INJECTION = f"${TOUCH}"


@pytest.fixture
def films(tmp_path: Path) -> Path:
    """Two small radiograph-like PNGs."""
    folder = tmp_path / "films"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("P1_coronal", "P2_coronal"):
        Image.fromarray(rng.integers(0, 255, (96, 64), dtype=np.uint8)).save(folder / f"{name}.png")
    return folder


def _file_in_the_way(tmp_path: Path) -> str:
    (tmp_path / "a_file").write_text("x")
    return str(tmp_path / "a_file" / "out")  # cannot be made: its parent is a file (root or not)


# (arguments given the tmp folder and the films folder, the command, what the line must say)
USER_ERRORS: list[tuple[Callable[[Path, Path], list[str]], str, str]] = [
    (lambda t, f: ["infer", str(t / "nowhere"), str(t / "o")], "infer", "INPUT_DIR"),
    (lambda t, f: ["infer", str(f), str(t / "o"), "--precision", "fp16"], "infer", "--precision"),
    (lambda t, f: ["infer", str(f), str(t / "o"), "--backend", "trt"], "infer", "--backend"),
    (lambda t, f: ["infer", str(f), str(t / "o"), "--formats", "png,tiff"], "infer", "'tiff'"),
    (lambda t, f: ["infer", str(f), str(t / "o"), "--formats", f"png,{FORMAT_INJECTION}"], "infer", "--formats"),
    (lambda t, f: ["infer", str(f), str(t / "o"), "--device", DEVICE_INJECTION], "infer", "--device"),
    (lambda t, f: ["infer", str(f), str(t / "o"), "--device", "gpu"], "infer", "--device"),
    (lambda t, f: ["infer", str(f), str(t / "o"), "--overlay", "maybe"], "infer", "--overlay"),
    (lambda t, f: ["infer", str(f), str(t / "o"), "--formts", "sc"], "infer", "unknown option --formts"),
    (
        lambda t, f: ["infer", str(f), str(t / "o"), "--overrides", json.dumps({"review": "$" + TOUCH})],
        "infer",
        "review",
    ),
    (lambda t, f: ["infer", str(f), str(t / "o"), "--overrides", '{"reviw": false}'], "infer", "reviw: no such key"),
    (lambda t, f: ["infer", str(f), str(t / "o"), "--overrides", '{"output_dir": "x"}'], "infer", "output_dir set by"),
    (lambda t, f: ["infer", str(f), str(t / "o"), "--overrides", "[1]"], "infer", "--overrides"),
    (lambda t, f: ["measure", str(t), "--spacing=0.2", "--min-cob", "5"], "measure", "unknown option --min-cob"),
    (lambda t, f: ["infer", str(f), _file_in_the_way(t)], "infer", "cannot be written"),
    (lambda t, f: ["infer", str(f), str(t / "o"), "--bundle_dir", str(t)], "infer", "--bundle_dir"),
    (lambda t, f: ["infer", str(f), str(t / "o"), "--model", str(t / "no.pt")], "infer", "--model"),
    (lambda t, f: ["measure", str(t / "nowhere")], "measure", "masks not found"),
    (lambda t, f: ["measure", str(f)], "measure", "is not a binary mask"),
    (lambda t, f: ["summary", "--bundle_dir", str(t)], "summary", "--bundle_dir"),
    (lambda t, f: ["datalist", str(t / "nowhere")], "datalist", "nowhere"),
    (lambda t, f: ["compare-landmarks", str(t / "a"), str(t / "b")], "compare-landmarks", "a' does not exist"),
    (
        lambda t, f: ["evaluate-landmarks", str(t), str(t / "o"), "--overrides", json.dumps({"review": "$" + TOUCH})],
        "evaluate-landmarks",
        "review",
    ),
    (
        lambda t, f: ["evaluate-landmarks", str(t), str(t / "o"), "--network_def", '{"_target_": "os.system"}'],
        "evaluate-landmarks",
        "network_def#_target_",
    ),
]


@pytest.mark.parametrize("args, command, expected", USER_ERRORS)
def test_a_user_error_is_one_line(args, command, expected, tmp_path, films, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where an evaluated injection would leave its marker
    with pytest.raises(SystemExit) as exc:
        main(args(tmp_path, films))
    message = str(exc.value.code)
    assert message.startswith(f"r2mf-monai {command}: ") and expected in message, message
    assert "\n" not in message and "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / MARKER).exists(), "a command-line value was evaluated as code"


@pytest.mark.slow
def test_infer_overrides_reach_the_bundle(tmp_path, films):
    out = tmp_path / "out"
    overrides = {"review_method": "mask", "image_statistics_weight": 0, "review_threshold": 0.75}
    main(["infer", str(films), str(out), "--overlay", "false", "--overrides", json.dumps(overrides)])
    review = json.loads((out / "review.json").read_text())
    assert review["method"] == "mask" and review["threshold"] == 0.75
    assert len(list(out.glob("*_mask.png"))) == 2


def test_debug_keeps_the_traceback(tmp_path):
    with pytest.raises(FileNotFoundError, match="INPUT_DIR"):
        main(["infer", str(tmp_path / "nowhere"), str(tmp_path / "o"), "--debug"])


def test_the_output_folder_is_checked_before_the_model_loads(tmp_path, films, capsys):
    with pytest.raises(SystemExit):
        main(["infer", str(films), _file_in_the_way(tmp_path)])
    assert "Restored" not in capsys.readouterr().out  # the CheckpointLoader never ran


def _console(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("r2mf-monai")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "r2mf_monai.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(cmd + args, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--device", DEVICE_INJECTION], "--device"),
        (["--formats", f"png,{FORMAT_INJECTION}"], "--formats"),
        (["--precision", "fp16"], "--precision"),
        ([], "no radiograph"),  # an empty input folder: the error inside MONAI's ConfigExpression, unwrapped
    ],
)
def test_the_console_script_prints_one_line(extra, expected, tmp_path, films):
    inputs = films
    if not extra:
        inputs = tmp_path / "empty"
        inputs.mkdir()
    proc = _console(["infer", str(inputs), str(tmp_path / "out"), *extra], cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("r2mf-monai infer: ") and expected in lines[0]
    assert not (tmp_path / MARKER).exists()


@pytest.mark.slow
def test_a_configs_folder_in_the_current_directory_is_not_run(tmp_path, films):
    """A hostile ``configs/`` where the user happens to stand: the installed bundle runs, the log says which, and the
    log has no library chatter (nvImageCodec notices, highdicom's module copying for the DICOM SEG)."""
    import shutil

    from r2mf_monai.data.synthetic import synthesize_dataset

    # a DICOM film with a spine on it (the generator's), so that the spine check lets its DICOM SEG be written
    synthetic = synthesize_dataset(
        tmp_path / "synthetic", patients=1, seed=5, scale=0.25, workers=1, formats=("dicom",)
    )
    shutil.copy(next(Path(synthetic).parent.rglob("*_coronal.dcm")), films / "P3_coronal.dcm")
    hostile = tmp_path / "cwd"
    (hostile / "configs").mkdir(parents=True)
    (hostile / "configs" / "metadata.json").write_text(json.dumps({"version": "6.6.6"}))
    payload = {"imports": ["$import pathlib"], "touch": f"${TOUCH}", "initialize": ["@touch"], "run": ["@touch"]}
    for name in ("inference.json", "train.json"):
        (hostile / "configs" / name).write_text(json.dumps({**payload, "finalize": []}))
    out = tmp_path / "out"
    proc = _console(["infer", str(films), str(out), "--device", "cpu", "--formats", "png,dcmseg"], cwd=hostile)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (hostile / MARKER).exists()
    version = json.loads((installed_bundle() / "configs" / "metadata.json").read_text())["version"]
    assert f"bundle {installed_bundle()}, version {version}" in proc.stdout
    assert len(list(out.glob("*_mask.png"))) == 3 and (out / "P3_coronal_seg.dcm").is_file()
    log = proc.stdout + proc.stderr
    for chatter in ("nvImageCodec", "highdicom", "pydicom"):
        assert chatter not in log, log[-3000:]
