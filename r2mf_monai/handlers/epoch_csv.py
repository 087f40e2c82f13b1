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

"""A per-epoch history of training loss, learning rate and validation metrics as a CSV file.

MONAI's ``MetricsSaver`` writes the metrics of the *last* evaluation only, and TensorBoard event files need
TensorBoard to read; a plain CSV with one row per epoch is what people open in a spreadsheet, so it is written here.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from monai.handlers import from_engine

from r2mf_monai.outputs.atomic import atomic_write

if TYPE_CHECKING:
    import torch
    from ignite.engine import Engine

__all__ = ["EpochMetricsCSV"]

logger = logging.getLogger(__name__)


class EpochMetricsCSV:
    """Append one row per trainer epoch: ``epoch, train_loss, lr, <validation metrics>``.

    Attach it to the trainer *after* the ``ValidationHandler`` so that the validation of the epoch has run. The file
    is rewritten atomically each epoch (temporary name, then rename); on resume the existing rows are kept.

    Args:
        filename: CSV path.
        validator: the evaluator whose ``state.metrics`` are recorded; ``None`` records training columns only.
        optimizer: optimizer whose first parameter group's ``lr`` is recorded.
        output_transform: maps ``engine.state.output`` to the iteration loss. Defaults to
            ``from_engine(["loss"], first=True)`` as in MONAI's bundles.
    """

    def __init__(
        self,
        filename: str,
        validator: Engine | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        output_transform: Callable[[Any], Any] = from_engine(["loss"], first=True),
    ) -> None:
        self.filename = filename
        self.validator = validator
        self.optimizer = optimizer
        self.output_transform = output_transform
        self._loss_sum = 0.0
        self._loss_count = 0

    def attach(self, engine: Engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._accumulate)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    def _reset(self, engine: Engine) -> None:
        self._loss_sum, self._loss_count = 0.0, 0

    def _accumulate(self, engine: Engine) -> None:
        loss = self.output_transform(engine.state.output)
        value = float(loss.item() if hasattr(loss, "item") else loss)
        if math.isfinite(value):
            self._loss_sum += value
            self._loss_count += 1

    def _read_rows(self) -> list[dict[str, str]]:
        if not os.path.isfile(self.filename):
            return []
        with open(self.filename, newline="") as f:
            return list(csv.DictReader(f))

    def _write(self, engine: Engine) -> None:
        row: dict[str, Any] = {
            "epoch": engine.state.epoch,
            "train_loss": self._loss_sum / max(self._loss_count, 1),
        }
        if self.optimizer is not None:
            row["lr"] = self.optimizer.param_groups[0]["lr"]
        if self.validator is not None and self.validator.state.metrics:
            for key, value in self.validator.state.metrics.items():
                if isinstance(value, (int, float)):
                    row[key] = value
        rows: list[dict[str, Any]] = [r for r in self._read_rows() if int(r["epoch"]) < row["epoch"]]
        rows.append(row)
        fields: list[str] = []
        for r in rows:
            fields.extend(k for k in r if k not in fields)
        os.makedirs(os.path.dirname(os.path.abspath(self.filename)), exist_ok=True)
        with atomic_write(self.filename) as tmp, open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        logger.debug("epoch metrics written to %s", self.filename)
