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

"""Write ``model.json`` (what built the model) beside the best model that MONAI's ``CheckpointSaver`` saves."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from r2mf_monai.checkpoint import write_model_config

if TYPE_CHECKING:
    import torch
    from ignite.engine import Engine

__all__ = ["ModelConfigSaver"]


class ModelConfigSaver:
    """After each validation, write ``<model>.json`` beside ``model_file`` once that file exists.

    Attach it to the evaluator after the ``CheckpointSaver`` that writes ``model_file`` (its key-metric save runs on
    the evaluator's ``EPOCH_COMPLETED``; this runs on ``COMPLETED``). The JSON holds the network's ``network_def``,
    ``image_size`` and the input's CLAHE (see :mod:`r2mf_monai.checkpoint`); it is rewritten only when its content
    changes.

    Args:
        model_file: the best model's path (``train.json``'s ``model_file``).
        network: the trained network (its ``init_args`` describe it).
        image_size: the side of the square training input.
        clahe_clip_limit: the fixed CLAHE of the training input (:class:`r2mf_monai.transforms.CLAHEd`), ``None``
            for none. Defaults to ``None``.
        clahe_tiles: its tiles along the longer side. Defaults to ``8``.
    """

    def __init__(
        self,
        model_file: str,
        network: torch.nn.Module,
        image_size: int,
        clahe_clip_limit: float | None = None,
        clahe_tiles: int = 8,
    ) -> None:
        self.model_file = model_file
        self.network = network
        self.image_size = int(image_size)
        self.clahe_clip_limit = None if clahe_clip_limit is None else float(clahe_clip_limit)
        self.clahe_tiles = int(clahe_tiles)

    def attach(self, engine: Engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if os.path.isfile(self.model_file):
            write_model_config(self.model_file, self.network, self.image_size, self.clahe_clip_limit, self.clahe_tiles)
