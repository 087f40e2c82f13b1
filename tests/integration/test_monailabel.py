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
"""The bundle served by a real MONAI Label 0.8.5 server (``scripts/monailabel/start_server.py``), over HTTP only.

The server runs in the MONAI Label venv (``.ci/venv-label``, or ``$R2MF_LABEL_VENV``; made by
``bash .ci/integration.sh label``) on a free localhost port; this test runs in the core venv and stops the server
in every case. Annotation assist: ``POST /infer`` returns a mask of the image's size that matches the bundle's own
inference (``r2mf-monai infer``). Training: labels are saved with ``PUT /datastore/label`` and ``POST /train`` runs
the bundle's train.json for one epoch, which writes a new model that the server then uses.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.integration.conftest import REPO, TINY_CHANNELS, TINY_IMAGE_SIZE, dice, infer_reference

# the server tests (marked slow and integration) need MONAI Label's venv; the launcher's host check (at the end)
# runs in the core venv without a server

MODEL = "r2mf_spine"
START_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, method: str = "GET", data: bytes | None = None, headers: dict | None = None, timeout=120):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.headers.get("content-type", ""), resp.read()


def _multipart(field: str, path: Path) -> tuple[bytes, str]:
    """A multipart/form-data body with one file field (the standard library has no encoder)."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{path.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def _image_size(path: Path) -> tuple[int, int]:
    """(rows, columns) of a PNG or DICOM radiograph."""
    if path.suffix == ".dcm":
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return int(ds.Rows), int(ds.Columns)
    with Image.open(path) as im:
        return im.size[1], im.size[0]


@pytest.fixture(scope="module")
def server(label_python: Path, tmp_path_factory: pytest.TempPathFactory, tiny_bundle: Path, tiny_data: Path):
    """A MONAI Label server on a free port with a studies folder of three PNG and one DICOM radiograph."""
    python = label_python
    base = tmp_path_factory.mktemp("monailabel")
    studies = base / "studies"
    studies.mkdir()
    images = sorted((tiny_data / "images").iterdir())
    pngs = [p for p in images if p.suffix == ".png"][:3]
    dicoms = [p for p in images if p.suffix == ".dcm"][:1]
    for p in pngs + dicoms:
        shutil.copy(p, studies / p.name)
    port = _free_port()
    log = base / "server.log"
    cmd = [
        str(python),
        str(REPO / "scripts" / "monailabel" / "start_server.py"),
        "--studies",
        str(studies),
        "--app-dir",
        str(base / "apps"),
        "--bundle",
        str(tiny_bundle),
        "--port",
        str(port),
        # the scratch bundle's narrow network, for train.json too (its inference.json already says so)
        "--override",
        f"image_size={TINY_IMAGE_SIZE}",
        "--override",
        f"network_def#channels={json.dumps(TINY_CHANNELS)}",
        "--override",
        "num_workers=0",
    ]
    with open(log, "w") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, cwd=base)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"MONAI Label server exited with {proc.returncode}:\n{log.read_text()[-6000:]}")
            try:
                status, _, body = _request(f"{url}/info/", timeout=5)
                if status == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"MONAI Label server not up after {START_TIMEOUT_S} s:\n{log.read_text()[-6000:]}")
            time.sleep(1)
        yield {
            "url": url,
            "info": json.loads(body),
            "studies": studies,
            "images": pngs + dicoms,
            "app_bundle": base / "apps" / "monaibundle" / "model" / MODEL,
            "log": log,
        }
    finally:
        # the server and anything it started (its own process group)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


@pytest.fixture(scope="module")
def reference_masks(tmp_path_factory: pytest.TempPathFactory, server: dict, tiny_bundle: Path) -> dict[str, np.ndarray]:
    """The bundle's own masks of the studies (``r2mf-monai infer``, PyTorch backend, core venv)."""
    return infer_reference(tmp_path_factory.mktemp("reference"), server["images"], tiny_bundle)


def _infer(server: dict, image: Path) -> np.ndarray:
    # a PNG label whatever the input's format (a DICOM input would otherwise come back as .dcm)
    params = urllib.parse.urlencode({"params": json.dumps({"result_extension": ".png"})}).encode()
    status, ctype, body = _request(
        f"{server['url']}/infer/{MODEL}?image={image.stem}&output=image",
        method="POST",
        data=params,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200 and "png" in ctype, (status, ctype)
    return np.asarray(Image.open(io.BytesIO(body)))


@pytest.mark.slow
@pytest.mark.integration
def test_server_lists_bundle_as_2d_segmentation(server: dict) -> None:
    model = server["info"]["models"][MODEL]
    assert model["type"] == "segmentation"
    assert model["dimension"] == 2
    assert model["labels"] == {"spinal column": 1}
    assert MODEL in server["info"]["trainers"]


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("index", [0, 3])  # a PNG and the DICOM radiograph
def test_infer_returns_mask_of_image_size(server: dict, reference_masks: dict, index: int) -> None:
    image = server["images"][index]
    mask = _infer(server, image)
    assert mask.shape == _image_size(image), (image.name, mask.shape)
    assert set(np.unique(mask)) <= {0, 1}
    reference = reference_masks[image.stem]
    assert reference.shape == mask.shape
    assert dice(mask, reference) >= 0.99, image.name


@pytest.mark.slow
@pytest.mark.integration
def test_train_through_monailabel(server: dict, tiny_data: Path) -> None:
    # save the three PNG studies' labels as a user's final annotations (0/255 PNG masks)
    for image in server["images"][:3]:
        body, ctype = _multipart("label", tiny_data / "labels" / image.name)
        status, _, _ = _request(
            f"{server['url']}/datastore/label?image={image.stem}&tag=final",
            method="PUT",
            data=body,
            headers={"Content-Type": ctype},
        )
        assert status == 200
    model_file = server["app_bundle"] / "models" / "model.pt"
    before = model_file.read_bytes()
    request = {"max_epochs": 1, "val_split": 0.34, "device": "cpu", "multi_gpu": False}
    status, _, _ = _request(
        f"{server['url']}/train/{MODEL}?run_sync=true",
        method="POST",
        data=json.dumps(request).encode(),
        headers={"Content-Type": "application/json"},
        timeout=300,
    )
    assert status == 200, server["log"].read_text()[-4000:]
    # the bundle's train.json ran on the MONAI Label datastore: its CSV has one epoch and the model was replaced
    rows = (server["app_bundle"] / "eval" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 2, rows
    assert model_file.read_bytes() != before
    # the server serves the new model
    image = server["images"][0]
    assert _infer(server, image).shape == _image_size(image)


def _launcher():
    """scripts/monailabel/start_server.py as a module (it uses only the standard library and r2mf_monai)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("start_server", REPO / "scripts" / "monailabel" / "start_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "host, env, warns",
    [
        ("127.0.0.1", {}, False),
        ("localhost", {}, False),
        ("::1", {}, False),
        ("127.0.1.1", {}, False),
        ("0.0.0.0", {}, True),
        ("192.168.1.20", {"MONAI_LABEL_AUTH_ENABLE": "false"}, True),
        ("spine-server.hospital.org", {}, True),  # a name is not resolved: it may be reachable
        ("0.0.0.0", {"MONAI_LABEL_AUTH_ENABLE": "true"}, False),
        ("::", {"MONAI_LABEL_AUTH_ENABLE": "1"}, False),
    ],
)
def test_warns_when_the_server_is_reachable_without_auth(host, env, warns, caplog) -> None:
    launcher = _launcher()
    with caplog.at_level("WARNING", logger="r2mf_monai.monailabel"):
        assert launcher.warn_if_exposed(host, env) is warns
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(lines) == int(warns)
    if warns:
        assert host in lines[0] and "MONAI_LABEL_AUTH_ENABLE=true" in lines[0]
