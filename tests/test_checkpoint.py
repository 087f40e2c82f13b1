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
"""r2mf_monai.checkpoint: model.json beside model.pt, the network built from it, one line when weights do not fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.networks.nets import UNet

import r2mf_monai
from r2mf_monai.checkpoint import (
    CheckpointMismatchError,
    check_checkpoint_fits,
    checkpoint_shapes,
    describe_network,
    model_config_path,
    network_from_checkpoint,
    new_model_path,
    read_model_config,
    write_model_config,
)
from r2mf_monai.networks.nets import R2MFNet

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
TINY = {"channels": [4, 8, 16, 32], "recurrent_steps": [2, 1, 1, 0], "use_scse": False}


def _saved(tmp_path: Path, image_size: int = 64, **kwargs) -> tuple[Path, R2MFNet]:
    net = R2MFNet(**{**TINY, **kwargs})
    ckpt = tmp_path / "model.pt"
    torch.save(net.state_dict(), ckpt)
    write_model_config(ckpt, net, image_size)
    return ckpt, net


def test_model_json_round_trip_rebuilds_the_same_network(tmp_path: Path) -> None:
    ckpt, net = _saved(tmp_path, image_size=96, skip_fusion=["add", "cat", "cat", "cat"])
    config = read_model_config(ckpt)
    assert model_config_path(ckpt) == tmp_path / "model.json"
    assert config["image_size"] == 96 and config["r2mf_monai_version"] == r2mf_monai.__version__
    assert config["network_def"]["_target_"] == "r2mf_monai.networks.nets.R2MFNet"
    assert config["network_def"]["channels"] == TINY["channels"]
    rebuilt = network_from_checkpoint(ckpt)
    rebuilt.load_state_dict(torch.load(ckpt, weights_only=True))
    x = torch.rand(1, 1, 32, 32)
    torch.testing.assert_close(rebuilt.eval()(x), net.eval()(x))


def test_overrides_replace_recorded_arguments(tmp_path: Path) -> None:
    ckpt, _ = _saved(tmp_path)
    assert network_from_checkpoint(ckpt, dropout=0.0).init_args["dropout"] == 0.0


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (
            {"channels": [8, 16, 32, 64]},
            r"is \(6, 1, 3, 3\) in the checkpoint but \(12, 1, 3, 3\) in the network.*drop the",
        ),
        ({"use_scse": True}, r"in the network but not in the checkpoint"),
    ],
)
def test_a_checkpoint_that_does_not_fit_is_one_line_naming_both_shapes(
    tmp_path: Path, overrides: dict, expected: str
) -> None:
    ckpt, _ = _saved(tmp_path)
    with pytest.raises(CheckpointMismatchError, match=expected) as err:
        network_from_checkpoint(ckpt, **overrides)
    assert "\n" not in str(err.value) and str(ckpt) in str(err.value)


def test_a_model_json_that_does_not_describe_its_checkpoint_says_so(tmp_path: Path) -> None:
    ckpt, _ = _saved(tmp_path)
    write_model_config(ckpt, R2MFNet(**{**TINY, "channels": [8, 16, 32, 64]}), 64)
    with pytest.raises(CheckpointMismatchError, match="'model.json' does not describe this checkpoint"):
        network_from_checkpoint(ckpt)


def test_check_accepts_a_checkpoint_saver_dict(tmp_path: Path) -> None:
    net = R2MFNet(**TINY)
    torch.save({"model": net.state_dict(), "epoch": 1}, tmp_path / "checkpoint.pt")
    check_checkpoint_fits(net, tmp_path / "checkpoint.pt")


def _adam_saver_dict(net: torch.nn.Module) -> dict:
    opt = torch.optim.Adam(net.parameters())
    net(torch.rand(1, 1, 32, 32)).mean().backward()
    opt.step()
    return {"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}


@pytest.mark.parametrize(
    "make, legacy",
    [
        (lambda net: net.state_dict(), False),
        (lambda net: {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}, False),
        (_adam_saver_dict, False),
        (lambda net: net.state_dict(), True),  # the pre-1.6 file format: read by torch's own loader
    ],
)
def test_checkpoint_shapes_are_those_torch_load_gives(tmp_path: Path, make, legacy: bool) -> None:
    torch.manual_seed(0)
    net = R2MFNet(**TINY)
    torch.save(make(net), tmp_path / "w.pt", _use_new_zipfile_serialization=not legacy)
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert checkpoint_shapes(tmp_path / "w.pt") == expected


def test_checkpoint_shapes_of_a_zip_state_dict_read_no_tensor(tmp_path: Path, monkeypatch) -> None:
    import r2mf_monai.checkpoint as checkpoint

    net = R2MFNet(**TINY)
    torch.save(net.state_dict(), tmp_path / "w.pt")

    def no_load(path):
        raise AssertionError("the tensors were loaded")

    monkeypatch.setattr(checkpoint, "load_weights", no_load)
    assert checkpoint_shapes(tmp_path / "w.pt") == {k: tuple(v.shape) for k, v in net.state_dict().items()}


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return pathlib.Path.touch, (self.marker,)


def test_checkpoint_shapes_run_nothing_from_the_file(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    torch.save({"weight": torch.zeros(2), "payload": _RunsCode(marker)}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match="(?i)weights.only|unsupported|global"):
        checkpoint_shapes(tmp_path / "evil.pt")
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, error, expected",
    [
        (None, FileNotFoundError, "model.json' does not exist"),
        ("{not json", ValueError, "is not valid JSON"),
        ('{"image_size": 64}', ValueError, "no 'network_def'"),
        ('{"network_def": {"channels": [4]}, "image_size": 64}', ValueError, "no '_target_'"),
        ('{"network_def": {"_target_": "x.Y"}, "image_size": 0}', ValueError, "'image_size' must be a positive"),
        (
            '{"network_def": {"_target_": "x.Y"}, "image_size": 64, "clahe_clip_limit": "strong"}',
            ValueError,
            "'clahe_clip_limit' must be null or in",
        ),
        (
            '{"network_def": {"_target_": "x.Y"}, "image_size": 64, "clahe_clip_limit": 0.01, "clahe_tiles": 0}',
            ValueError,
            "'clahe_tiles' must be a positive",
        ),
    ],
)
def test_bad_model_json_is_named(tmp_path: Path, content: str | None, error: type, expected: str) -> None:
    ckpt = tmp_path / "model.pt"
    torch.save(R2MFNet(**TINY).state_dict(), ckpt)
    if content is not None:
        (tmp_path / "model.json").write_text(content)
    with pytest.raises(error, match=expected):
        network_from_checkpoint(ckpt)


@pytest.mark.parametrize("clip_limit, tiles", [(None, 8), (0.015, 8), (0.03, 12)])
def test_model_json_records_the_input_clahe(tmp_path: Path, clip_limit: float | None, tiles: int) -> None:
    net = R2MFNet(**TINY)
    write_model_config(tmp_path / "model.pt", net, 64, clahe_clip_limit=clip_limit, clahe_tiles=tiles)
    config = read_model_config(tmp_path / "model.pt")
    assert (config["clahe_clip_limit"], config["clahe_tiles"]) == (clip_limit, tiles)


@pytest.mark.parametrize("with_json, clip_limit", [(False, None), (True, None), (True, 0.015)])
def test_training_from_weights_keeps_their_input_clahe(
    tmp_path: Path, with_json: bool, clip_limit: float | None
) -> None:
    from r2mf_monai.checkpoint import input_clahe

    net = R2MFNet(**TINY)
    torch.save(net.state_dict(), tmp_path / "model.pt")
    if with_json:
        write_model_config(tmp_path / "model.pt", net, 64, clahe_clip_limit=clip_limit, clahe_tiles=6)
    assert input_clahe(tmp_path / "model.pt") == ((clip_limit, 6) if with_json else (None, 8))
    assert input_clahe("") == (None, 8)  # train.json's init_ckpt when training from scratch


def test_a_model_json_of_older_weights_means_no_clahe(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text('{"network_def": {"_target_": "x.Y"}, "image_size": 64}')
    config = read_model_config(tmp_path / "model.pt")
    assert (config["clahe_clip_limit"], config["clahe_tiles"]) == (None, 8)


def test_a_network_without_recorded_arguments_is_described_by_class_and_asks_for_them(tmp_path: Path) -> None:
    net = UNet(2, 1, 1, channels=(4, 8), strides=(2,))
    assert describe_network(net) == {"_target_": "monai.networks.nets.UNet"}
    torch.save(net.state_dict(), tmp_path / "model.pt")
    write_model_config(tmp_path / "model.pt", net, 64)
    with pytest.raises(ValueError, match="could not build monai.networks.nets.UNet .*give the network's arguments"):
        network_from_checkpoint(tmp_path / "model.pt")


def test_the_shipped_weights_know_their_network() -> None:
    ckpt = REPO / "bundle" / "models" / "model.pt"
    config = read_model_config(ckpt)
    assert config["image_size"] == 256 and config["network_def"]["channels"] == [16, 32, 64, 128]
    net = network_from_checkpoint(ckpt)
    net.load_state_dict(torch.load(ckpt, weights_only=True))  # strict: every tensor fits


@pytest.mark.parametrize("existing, overwrite, expected", [([], False, "model.pt"), (["model.pt"], True, "model.pt")])
def test_new_model_path_takes_model_pt_when_free_or_overwriting(
    tmp_path: Path, existing: list[str], overwrite: bool, expected: str
) -> None:
    for name in existing:
        (tmp_path / name).write_bytes(b"weights")
    assert new_model_path(tmp_path, overwrite=overwrite) == str(tmp_path / expected)


def test_new_model_path_keeps_existing_weights(tmp_path: Path) -> None:
    (tmp_path / "model.pt").write_bytes(b"shipped")
    first = Path(new_model_path(tmp_path))
    assert first.parent == tmp_path and first.name.startswith("model_") and first.suffix == ".pt"
    first.write_bytes(b"run 1")
    second = Path(new_model_path(tmp_path))
    assert second != first and not second.exists()
    assert (tmp_path / "model.pt").read_bytes() == b"shipped"


def test_write_model_config_leaves_an_unchanged_file_alone(tmp_path: Path) -> None:
    ckpt, net = _saved(tmp_path)
    before = model_config_path(ckpt).stat().st_mtime_ns
    write_model_config(ckpt, net, 64)
    assert model_config_path(ckpt).stat().st_mtime_ns == before
    assert json.loads(model_config_path(ckpt).read_text())["image_size"] == 64


@pytest.mark.parametrize("weight", [-0.5, 1.5, "half"])
def test_a_bad_image_statistics_weight_is_named(tmp_path: Path, weight) -> None:
    ckpt, _ = _saved(tmp_path)
    with pytest.raises(ValueError, match="image_statistics_weight must be a number in"):
        network_from_checkpoint(ckpt, image_statistics_weight=weight)
