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
"""ModelConfigSaver: model.json appears beside the best model once the CheckpointSaver has written it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine

from r2mf_monai.handlers import ModelConfigSaver
from r2mf_monai.networks.nets import R2MFNet


@pytest.mark.parametrize("image_size, clahe", [(64, None), (256, 0.015)])
def test_model_json_follows_the_saved_model(tmp_path: Path, image_size: int, clahe: float | None) -> None:
    net = R2MFNet(channels=[4, 8, 16, 32])
    model_file = tmp_path / "model_run.pt"
    evaluator = Engine(lambda engine, batch: None)
    ModelConfigSaver(str(model_file), net, image_size, clahe_clip_limit=clahe).attach(evaluator)
    evaluator.run([0])
    assert not (tmp_path / "model_run.json").exists()  # nothing saved yet: nothing to describe
    torch.save(net.state_dict(), model_file)
    evaluator.run([0])
    config = json.loads((tmp_path / "model_run.json").read_text())
    assert config["image_size"] == image_size and config["network_def"]["channels"] == [4, 8, 16, 32]
    assert (config["clahe_clip_limit"], config["clahe_tiles"]) == (clahe, 8)
