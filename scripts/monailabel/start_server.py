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

"""Serve the R2MF-Net bundle (paper §3, spinal-column segmentation) with MONAI Label's ``monaibundle`` sample app.

Run it with the Python of the MONAI Label venv (``bash .ci/integration.sh label`` creates ``.ci/venv-label``)::

    .ci/venv-label/bin/python scripts/monailabel/start_server.py --studies STUDIES [--port 8000]

It (1) takes the ``monaibundle`` sample app out of the monailabel wheel (``monailabel apps --download``, offline),
(2) copies this repository's bundle (configs, docs, ``models/model.pt``) into the app's ``model/<name>`` folder as a
local bundle, so nothing is downloaded, (3) appends to that copy's inference post-processing the two steps MONAI
Label's writer needs (:data:`MONAILABEL_POSTPROCESSING`), applies any ``--override`` to the copy's configs, and
(4) runs ``monailabel start_server`` on it, in the foreground, until stopped. The repository's bundle is never
modified. Only the standard library is used here, so any Python can run the ``--prepare-only`` step.

STUDIES is a folder of radiographs: PNG/JPEG (and single-frame ``.dcm`` files, listed with ``--extensions``).
Labels saved from a viewer go to ``STUDIES/labels/final``; ``POST /train/<name>`` then fine-tunes the bundle on
them (``configs/train.json`` through ``monai.bundle.run``) and writes the new ``model.pt`` into the app's copy.

The server listens on 127.0.0.1 unless ``--host`` says otherwise. MONAI Label's authentication is off unless
``MONAI_LABEL_AUTH_ENABLE=true`` (with a Keycloak realm: ``MONAI_LABEL_AUTH_REALM_URI``,
``MONAI_LABEL_AUTH_CLIENT_ID``; see README.md): on any other host, without it, anyone who reaches the port can read
the studies and labels and start training, and :func:`warn_if_exposed` says so in the log.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "MONAILABEL_POSTPROCESSING",
    "auth_enabled",
    "is_loopback",
    "main",
    "prepare_app",
    "server_command",
    "warn_if_exposed",
]

logger = logging.getLogger("r2mf_monai.monailabel")

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(REPO))

from r2mf_monai.bundle_paths import find_bundle  # noqa: E402
from r2mf_monai.outputs.atomic import write_json  # noqa: E402

DEFAULT_NAME = "r2mf_spine"
# MONAI Label appends ``Restored`` (which expects a channel-first array) and writes the result with ITK: a float or
# channel-first array cannot be written as a PNG/JPEG label. The bundle's postprocessing already ends with Invertd
# (back to the input's grid), so a uint8 cast and dropping the channel give the (W, H) label MONAI Label saves.
MONAILABEL_POSTPROCESSING = [
    {"_target_": "CastToTyped", "keys": "pred", "dtype": "uint8"},
    {"_target_": "SqueezeDimd", "keys": "pred", "dim": 0},
]
# Narrower than what the bundle reads (r2mf_monai.constants.RADIOGRAPH_SUFFIXES), on purpose: these are the formats
# this door is tested with end to end (tests/integration/test_monailabel.py: PNG, JPEG, single-frame DICOM). MONAI
# Label lists them for its viewers and, unless asked for another result_extension, writes a label in its image's
# format with ITK, which has no GIF writer. Any other suffix of the reader's list can be added with --extensions.
DEFAULT_EXTENSIONS = "*.png,*.jpg,*.jpeg,*.dcm"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine: ``localhost`` or a loopback address (127.0.0.0/8,
    ::1). A host name is not resolved: any other name counts as reachable from elsewhere."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def auth_enabled(env: dict[str, str] | None = None) -> bool:
    """Whether MONAI Label will check tokens: ``MONAI_LABEL_AUTH_ENABLE`` set to a true value, as MONAI Label's
    settings (pydantic) read it from the environment."""
    value = (os.environ if env is None else env).get("MONAI_LABEL_AUTH_ENABLE", "")
    return value.strip().lower() in ("1", "true", "t", "yes", "y", "on")


def warn_if_exposed(host: str, env: dict[str, str] | None = None) -> bool:
    """Log a WARNING when the server will listen beyond this machine with MONAI Label's authentication off.

    Returns:
        whether it warned.
    """
    if is_loopback(host) or auth_enabled(env):
        return False
    logger.warning(
        "MONAI Label will listen on %s with authentication off: anyone who can reach this port can read the studies "
        "and labels, run inference and start training. Set MONAI_LABEL_AUTH_ENABLE=true with a Keycloak realm "
        "(MONAI_LABEL_AUTH_REALM_URI, MONAI_LABEL_AUTH_CLIENT_ID; scripts/monailabel/README.md), or keep "
        "--host 127.0.0.1",
        host,
    )
    return True


def _parse_override(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE as JSON where it parses (``image_size=64``, ``network_def#channels=[8,16]``)."""
    if "=" not in text:
        raise ValueError(f"--override '{text}' is not KEY=VALUE")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def _set(config: dict, key: str, value: Any) -> None:
    """Set ``a#b#0`` in a nested config as ``monai.bundle.ConfigParser`` ids address it."""
    parts = key.split("#")
    node: Any = config
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def prepare_app(
    app_dir: str | os.PathLike,
    bundle: str | os.PathLike = REPO / "bundle",
    name: str = DEFAULT_NAME,
    model: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    python: str = sys.executable,
) -> Path:
    """Put the ``monaibundle`` sample app in ``app_dir`` and this bundle in its ``model/<name>`` folder.

    Args:
        app_dir: folder that receives ``monaibundle/`` (created; an existing app there is reused).
        bundle: the bundle folder to serve. Defaults to the repository's ``bundle/``.
        name: the model name in MONAI Label (``/infer/<name>``). Defaults to ``r2mf_spine``.
        model: the weights to serve (a ``model.pt`` state dict). Defaults to ``BUNDLE/models/model.pt``; when a
            copy already holds a ``model.pt`` (e.g. one MONAI Label trained) and ``model`` is not given, it is kept.
        overrides: config ids and values applied to the copy's inference.json and train.json (e.g.
            ``{"image_size": 64}``).
        python: the MONAI Label venv's Python, used to extract the sample app.

    Returns:
        the app folder (``app_dir/monaibundle``).

    Raises:
        FileNotFoundError: when the bundle has no ``configs/inference.json`` or no weights can be found.
    """
    bundle = find_bundle(Path(bundle).resolve(), config="inference.json", option="--bundle")
    app_dir = Path(app_dir).resolve()
    app = app_dir / "monaibundle"
    if not (app / "main.py").is_file():
        app_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [python, "-m", "monailabel.main", "apps", "--download", "--name", "monaibundle", "--output", str(app_dir)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    target = app / "model" / name
    (target / "models").mkdir(parents=True, exist_ok=True)
    # configs and docs are refreshed from the bundle every time; scripts/ too if a bundle has one
    for sub in ("configs", "docs", "scripts"):
        if (bundle / sub).is_dir():
            shutil.rmtree(target / sub, ignore_errors=True)
            shutil.copytree(bundle / sub, target / sub)
    weights = Path(model) if model else bundle / "models" / "model.pt"
    if model or not (target / "models" / "model.pt").is_file():
        if not weights.is_file():
            raise FileNotFoundError(
                f"--model: '{weights}' does not exist; train the bundle first or pass --model PATH/model.pt"
            )
        shutil.copyfile(weights, target / "models" / "model.pt")
        # what built the weights (network_def, image_size; r2mf_monai.checkpoint) travels with them
        if weights.with_suffix(".json").is_file():
            shutil.copyfile(weights.with_suffix(".json"), target / "models" / "model.json")
    served = target / "models" / "model.json"
    served_config = json.loads(served.read_text(encoding="utf-8")) if served.is_file() else {}

    overrides = dict(overrides or {})
    for config_name in ("inference.json", "train.json"):
        path = target / "configs" / config_name
        if not path.is_file():
            continue
        config = json.loads(path.read_text(encoding="utf-8"))
        if config_name == "train.json":
            # MONAI Label fine-tunes the served model.pt in place: train the network it was built with, and let
            # the best model replace it (the bundle otherwise keeps an existing model.pt and writes beside it)
            config["overwrite"] = True
            for key in ("network_def", "image_size"):
                if key in served_config:
                    config[key] = served_config[key]
        for key, value in overrides.items():
            _set(config, key, value)
        if config_name == "inference.json":
            post = config["postprocessing"]
            transforms = post["transforms"] if isinstance(post, dict) else post
            transforms.extend(MONAILABEL_POSTPROCESSING)
        else:
            # MONAI Label fine-tunes the served model.pt by inserting its own CheckpointLoader into train#handlers,
            # but only when no handler's _target_ is literally "CheckpointLoader". The bundle's resume loader (off
            # unless resume=true) is the same class under its full name, so MONAI Label's loader goes in too.
            for handler in config.get("train", {}).get("handlers", []):
                if isinstance(handler, dict) and handler.get("_target_") == "CheckpointLoader":
                    handler["_target_"] = "monai.handlers.CheckpointLoader"
        write_json(path, config, indent=4)
    logger.info("MONAI Label app ready: %s (bundle '%s' in %s)", app, name, target)
    return app


def server_command(
    app: str | os.PathLike,
    studies: str | os.PathLike,
    name: str = DEFAULT_NAME,
    host: str = "127.0.0.1",
    port: int = 8000,
) -> list[str]:
    """The ``monailabel start_server`` command line for the app made by :func:`prepare_app`."""
    launcher = Path(sys.executable).parent / "monailabel"
    return [
        str(launcher),
        "start_server",
        "--app",
        str(app),
        "--studies",
        str(studies),
        "--conf",
        "models",
        name,
        # 'github' makes get_bundle_models take a model/<name> folder as a local bundle (no zoo look-up)
        "--conf",
        "zoo_source",
        "github",
        # the app would otherwise download SAM2 weights at start
        "--conf",
        "sam2",
        "false",
        "--host",
        host,
        "--port",
        str(port),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", required=True, help="folder of radiographs (PNG/JPEG/single-frame DICOM)")
    parser.add_argument(
        "--app-dir", default=str(REPO / ".monailabel"), help="where the app is put (default: %(default)s)"
    )
    parser.add_argument("--bundle", default=str(REPO / "bundle"), help="bundle folder (default: %(default)s)")
    parser.add_argument("--name", default=DEFAULT_NAME, help="model name in MONAI Label (default: %(default)s)")
    parser.add_argument("--model", default=None, help="model.pt to serve (default: BUNDLE/models/model.pt)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s; see README.md before another)"
    )
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--extensions", default=DEFAULT_EXTENSIONS, help="image file patterns (default: %(default)s)")
    parser.add_argument(
        "--override", action="append", default=[], metavar="KEY=VALUE", help="config override, e.g. image_size=256"
    )
    parser.add_argument("--prepare-only", action="store_true", help="build the app and print the command; no server")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    studies = Path(args.studies).resolve()
    if not studies.is_dir():
        raise FileNotFoundError(f"--studies '{studies}' is not a folder")
    overrides = dict(_parse_override(o) for o in args.override)
    app = prepare_app(args.app_dir, args.bundle, args.name, args.model, overrides)
    cmd = server_command(app, studies, args.name, args.host, args.port)
    warn_if_exposed(args.host)
    env = dict(os.environ)
    # the monailabel launcher runs whatever `python` is first on PATH: pin it to this interpreter
    env["MONAILABEL_PYEXE"] = sys.executable
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    patterns = [p.strip() for p in args.extensions.split(",") if p.strip()]
    env["MONAI_LABEL_DATASTORE_FILE_EXT"] = json.dumps(patterns)
    if args.prepare_only:
        print(" ".join(cmd))
        return 0
    logger.info("starting: %s", " ".join(cmd))
    os.execve(cmd[0], cmd, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
