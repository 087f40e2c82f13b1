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
"""The bundle's inference workflow from Python, with the shipped weights (the path of ``r2mf-monai infer``)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from r2mf_monai.checkpoint import CheckpointMismatchError
from r2mf_monai.inference.workflow import (
    check_overrides,
    inference_overrides,
    output_formats,
    parse_device,
    run_inference_workflow,
)

BUNDLE = Path(__file__).resolve().parents[2] / "bundle"
MODEL = BUNDLE / "models" / "model.pt"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def films(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three views of one small synthetic patient."""
    from r2mf_monai.data.synthetic import synthesize_dataset

    root = tmp_path_factory.mktemp("films")
    synthesize_dataset(root, patients=1, scale=0.1, workers=1, formats=("png16",))
    return root / "images"


def _overrides(films: Path, out: Path, model: str | os.PathLike | None = None) -> dict:
    return inference_overrides(
        BUNDLE, model=model, device="cpu", dataset_dir=str(films), output_dir=str(out), output_formats=["png"],
        save_overlay=False, review=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    "model, device, expected",
    [
        (None, None, {}),
        (MODEL, None, {"ckpt_path": str(MODEL)}),
        (None, "cpu", {"device": torch.device("cpu")}),  # a typed value, never an expression string
        (MODEL, torch.device("cpu"), {"ckpt_path": str(MODEL), "device": torch.device("cpu")}),
    ],
)
def test_inference_overrides(model, device, expected, tmp_path):
    overrides = inference_overrides(os.path.relpath(BUNDLE), model=model, device=device, output_dir=str(tmp_path))
    assert overrides == {"bundle_root": str(BUNDLE), "output_dir": str(tmp_path), **expected}


TOUCH = "__import__('pathlib').Path('PWNED').touch()"


@pytest.mark.parametrize(
    "device, expected",
    [
        (f"cpu') if {TOUCH} is None else torch.device('cpu", "is not a device"),
        ("gpu", "is not a device"),
        ("cuda:7", "is not available here"),
    ],
)
def test_parse_device_refuses(device, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=f"--device: .*{expected}"):
        parse_device(device)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize(
    "formats, expected",
    [("png,nii", ["png", "nii"]), (["PNG", " dcmseg "], ["png", "dcmseg"]), ("png,png", ["png"])],
)
def test_output_formats(formats, expected):
    assert output_formats(formats) == expected


@pytest.mark.parametrize("formats", ["png,tiff", f"png,${TOUCH}", "", ["@output_dir"]])
def test_output_formats_refuses(formats):
    with pytest.raises(ValueError, match="--formats: "):
        output_formats(formats)


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"device": "$torch.device('cpu')"}, "device"),  # an expression
        ({"output_formats": ["png", f"${TOUCH}"]}, "output_formats#1"),
        ({"output_dir": "@bundle_root"}, "output_dir"),  # a reference
        ({"dataset_dir": "%/tmp/other.json#dataset_dir"}, "dataset_dir"),  # a macro: reads another config
        ({"output_dir": "/tmp/a::b"}, "output_dir"),  # rewritten to "a#b" by the parser
        ({"review": {"_target_": "os.system", "command": "true"}}, "review"),  # an object to build
        ({"network_def": {"_target_": "os.system", "command": "true"}}, "network_def#_target_"),
        ({"network_def": {"_target_": "r2mf_monai.networks.R2MFNet", "channels": "$[1]"}}, "network_def#channels"),
        ({"$x": 1}, "$x"),
    ],
)
def test_check_overrides_refuses_what_the_parser_would_evaluate(overrides, key):
    with pytest.raises(ValueError, match=re.escape(key)):
        check_overrides(overrides)


def test_check_overrides_keeps_plain_values():
    plain = {
        "output_dir": "/data/$HOME/@x/100%",  # "$", "@" and "%" inside a path are literal to the parser
        "device": torch.device("cpu"),
        "network_def": {"_target_": "r2mf_monai.networks.R2MFNet", "channels": [8, 16, 32, 64]},
        "handlers#1#_disabled_": True,
    }
    assert check_overrides(plain) == plain


def test_a_device_object_is_not_evaluated_again():
    """MONAI's parser keeps a non-string override as it is: the typed device is what the config's ``@device`` is."""
    from monai.bundle import ConfigParser

    parser = ConfigParser({"device": "$torch.device('cuda')", "kind": "$@device.type"})
    parser.update(inference_overrides(BUNDLE, device="cpu"))
    assert parser.get_parsed_content("device") == torch.device("cpu") and parser.get_parsed_content("kind") == "cpu"


def test_run_inference_workflow_refuses_an_unknown_key(films, tmp_path):
    with pytest.raises(ValueError, match="precison: no such key in .*inference.json"):
        run_inference_workflow(BUNDLE, {**_overrides(films, tmp_path / "out"), "precison": "fp32"})
    assert not (tmp_path / "out").exists()


def test_run_inference_workflow_unwraps_a_user_error(tmp_path, capsys):
    """An empty folder fails inside MONAI's ConfigExpression: the error is the ValueError naming the folder; the log
    (bundle/configs/logging.conf: stdout) says which bundle ran."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no radiograph .* found in .*empty") as info:
        run_inference_workflow(BUNDLE, _overrides(tmp_path / "empty", tmp_path / "out"))
    assert info.value.__suppress_context__
    version = json.loads((BUNDLE / "configs" / "metadata.json").read_text())["version"]
    assert f"bundle {BUNDLE}, version {version}" in capsys.readouterr().out


def test_inference_overrides_missing_model(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--model '.*nowhere\.pt' does not exist"):
        inference_overrides(BUNDLE, model=tmp_path / "nowhere.pt")


def test_run_inference_workflow_writes_masks(films, tmp_path):
    out = tmp_path / "out"
    run_inference_workflow(BUNDLE, _overrides(films, out, model=MODEL))
    for image in sorted(films.iterdir()):
        with Image.open(image) as src, Image.open(out / f"{image.stem}_mask.png") as mask:
            assert mask.size == src.size, image.name
            assert set(np.unique(np.asarray(mask))) <= {0, 255}


@pytest.mark.parametrize("on", ["true", True, "false", None])
def test_the_second_look_at_the_column_top_only_adds_above_the_mask(on, films, tmp_path):
    """The bundle's wiring of ``ColumnTopSecondLookd`` (off by default): the crop goes through the bundle's own
    preprocessing and the network, and the mask changes only above its first pass's top."""
    off_dir, on_dir = tmp_path / "off", tmp_path / "on"
    run_inference_workflow(BUNDLE, _overrides(films, off_dir, model=MODEL))
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level=logging.INFO)
    handler.emit = records.append  # the bundle's logging.conf replaces the root's handlers, pytest's caplog among them
    logger = logging.getLogger("r2mf_monai.inference.column_top")
    logger.addHandler(handler)
    try:
        switch = {} if on is None else {"column_top_second_look": on}  # None: the bundle's default, off
        run_inference_workflow(
            BUNDLE, {**_overrides(films, on_dir, model=MODEL), **switch, "column_top_min_fraction": 0.01}
        )
    finally:
        logger.removeHandler(handler)
    looked = [r.getMessage() for r in records if r.getMessage().startswith("column top:")]
    expected = len(list(films.iterdir())) if on in ("true", True) else 0  # every view's mask starts below 1 %
    assert len(looked) == expected, looked
    for image in sorted(films.iterdir()):
        off = np.asarray(Image.open(off_dir / f"{image.stem}_mask.png")) > 0
        with_look = np.asarray(Image.open(on_dir / f"{image.stem}_mask.png")) > 0
        top = int(np.nonzero(off.any(axis=1))[0][0])
        assert np.array_equal(with_look[top:], off[top:]), image.name
        if expected:
            assert image.name in " ".join(looked)
        else:
            assert np.array_equal(with_look, off), image.name


def test_one_film_in_every_lossless_dicom_encoding_gets_one_mask(films, tmp_path):
    """The pixels a PACS sends are the same film whatever the transfer syntax or photometric interpretation: the
    whole pipeline (reader, preprocessing, network, inversion onto the film) must give byte-identical masks."""
    import pydicom
    from pydicom.uid import (
        DeflatedExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        JPEG2000Lossless,
        JPEGLSLossless,
        RLELossless,
    )

    from r2mf_monai.transforms.dicom_pixels import GE_PRIVATE_BIG_ENDIAN_PIXELS
    from tests.transforms.radiograph_files import write_dicom

    film = next(p for p in sorted(films.iterdir()) if "coronal" in p.name)
    with Image.open(film) as im:
        pixels = np.asarray(im).astype(np.uint16)
    inverted = (65535 - pixels).astype(np.uint16)
    src = tmp_path / "in"
    src.mkdir()
    write_dicom(src / "base_coronal.dcm", pixels, bits_stored=16)
    write_dicom(src / "mono1_coronal.dcm", inverted, bits_stored=16, photometric="MONOCHROME1")
    write_dicom(src / "mono1rle_coronal.dcm", inverted, bits_stored=16, photometric="MONOCHROME1",
                transfer_syntax=RLELossless)  # fmt: skip
    for name, syntax in (("rle", RLELossless), ("jpeg2000", JPEG2000Lossless), ("jpegls", JPEGLSLossless)):
        write_dicom(src / f"{name}_coronal.dcm", pixels, bits_stored=16, transfer_syntax=syntax)
    write_dicom(src / "nopreamble_coronal.dcm", pixels, bits_stored=16, preamble=False)
    for name, syntax in (("deflated", DeflatedExplicitVRLittleEndian), ("implicit", ImplicitVRLittleEndian)):
        ds = pydicom.dcmread(src / "base_coronal.dcm")
        ds.file_meta.TransferSyntaxUID = syntax
        ds.save_as(src / f"{name}_coronal.dcm", implicit_vr=syntax == ImplicitVRLittleEndian)
    # from real archives (r2mf_monai.transforms.dicom_pixels): a data set without File Meta Information, and GE's
    # private syntax with big endian pixel words
    ds = pydicom.dcmread(src / "base_coronal.dcm")
    del ds.file_meta
    pydicom.dcmwrite(src / "nometa_coronal.dcm", ds, implicit_vr=False, little_endian=True, enforce_file_format=False)
    wide = (pixels * 16 + 8).astype(np.uint16)  # both bytes used, so that a swap left out is no mere rescaling
    ds = pydicom.dcmread(write_dicom(src / "wide_coronal.dcm", wide, bits_stored=16))
    ds.PixelData = wide.astype(">u2").tobytes()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.UID(GE_PRIVATE_BIG_ENDIAN_PIXELS)
    ds.save_as(src / "ge_coronal.dcm", implicit_vr=True, little_endian=True)
    out = tmp_path / "out"
    run_inference_workflow(BUNDLE, _overrides(src, out, model=MODEL))
    masks = {p.name.split("_")[0]: np.asarray(Image.open(p)) for p in sorted(out.glob("*_mask.png"))}
    assert len(masks) == 12 and masks["base"].shape == pixels.shape and masks["base"].any()
    np.testing.assert_array_equal(masks.pop("ge"), masks.pop("wide"), err_msg="ge")
    for name, mask in masks.items():
        np.testing.assert_array_equal(mask, masks["base"], err_msg=name)


@pytest.mark.parametrize("review, written", [("false", False), ("no", False), ("true", True), (True, True)])
def test_run_inference_workflow_types_a_boolean_given_as_text(review, written, films, tmp_path):
    # a command line's `--overrides '{"review": false}'` arrives as the string "false": `$not @review` would read it
    # as true and score every film
    out = tmp_path / "out"
    run_inference_workflow(BUNDLE, {**_overrides(films, out, model=MODEL), "review": review})
    assert (out / "review.json").is_file() == written


def test_run_inference_workflow_refuses_a_boolean_that_is_not_one(films, tmp_path):
    with pytest.raises(ValueError, match="review must be true or false, got 'maybe'"):
        run_inference_workflow(BUNDLE, {**_overrides(films, tmp_path / "out", model=MODEL), "review": "maybe"})


@pytest.mark.parametrize("method, threshold", [(None, 0.09), ("flip", 0.11), ("mask", 0.09)])
def test_the_review_flag_reuses_the_run_s_probabilities(films, tmp_path, monkeypatch, method, threshold):
    # the bundle's post-processing keeps `prob` to the end, so the review flag runs no plain pass of its own; the
    # default "cascade" method gets the coarse map of the run's own pass from the inferer, so it runs no pass at all,
    # nor does "mask"; each method takes its own calibrated threshold from `review_thresholds`
    import r2mf_monai.handlers.review_flag as review_flag

    given = []
    real = review_flag.review_uncertainty

    def recording(*args, **kwargs):
        given.append((kwargs.get("base") is not None, kwargs.get("coarse") is not None, kwargs.get("method")))
        return real(*args, **kwargs)

    monkeypatch.setattr(review_flag, "review_uncertainty", recording)
    out = tmp_path / "out"
    overrides = {**_overrides(films, out, model=MODEL), "review": True}
    if method is not None:
        overrides["review_method"] = method
    run_inference_workflow(BUNDLE, overrides)
    method = method or "cascade"
    assert given == [(True, method == "cascade", method)] * len(list(films.iterdir()))
    review = json.loads((out / "review.json").read_text())
    assert len(review["images"]) == len(given) and review["method"] == method
    assert review["threshold"] == threshold


def test_an_unknown_review_method_is_named(films, tmp_path):
    with pytest.raises(ValueError, match="'entropy'"):
        run_inference_workflow(
            BUNDLE, {**_overrides(films, tmp_path / "out", model=MODEL), "review": True, "review_method": "entropy"}
        )


@pytest.mark.parametrize("wrong", ["does_not_fit", "no_model_json"])
def test_run_inference_workflow_checkpoint_error_is_itself(wrong, films, tmp_path):
    model = tmp_path / "model.pt"
    shutil.copy(MODEL, model)
    if wrong == "does_not_fit":  # a model.json that does not describe its weights (twice the widths)
        config = json.loads((BUNDLE / "models" / "model.json").read_text())
        config["network_def"]["channels"] = [2 * c for c in config["network_def"]["channels"]]
        (tmp_path / "model.json").write_text(json.dumps(config))
    error = CheckpointMismatchError if wrong == "does_not_fit" else FileNotFoundError
    out = tmp_path / "out"
    with pytest.raises(error, match="model.json") as info:
        run_inference_workflow(BUNDLE, _overrides(films, out, model=model))
    assert info.value.__suppress_context__  # the error itself, not MONAI's chain of config errors
    assert not list(out.glob("*_mask.png"))
