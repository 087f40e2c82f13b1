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

"""One progress bar for a whole training run and one summary line per epoch.

ignite's ``ProgressBar`` restarts every epoch (its ETA is the epoch's) and MONAI's ``StatsHandler`` logs every
iteration; a run of 40 epochs then prints hundreds of lines and never says when it will end. This handler keeps one
tqdm bar over epochs x iterations, logs ``epoch 3/40: train_loss ..., val_mean_dice ... (best ...), lr ..., 23.4 s``
at INFO after each epoch's validation, and the iteration losses at DEBUG only.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from monai.handlers import from_engine
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

if TYPE_CHECKING:
    import torch
    from ignite.engine import Engine

__all__ = ["TrainingProgress"]

logger = logging.getLogger(__name__)


class TrainingProgress:
    """A tqdm bar over the whole run (``max_epochs * epoch_length`` iterations, with ETA) and per-epoch lines.

    Attach it to the trainer after the ``ValidationHandler``, so that an epoch's line carries its validation.

    Args:
        validator: the evaluator whose ``state.metrics`` (and best key metric) each epoch's line reports.
        optimizer: the optimizer whose first parameter group's ``lr`` each line reports.
        output_transform: maps ``engine.state.output`` to the iteration loss. Defaults to
            ``from_engine(["loss"], first=True)`` as in MONAI's bundles.
        bar: show the bar (else the lines only). Defaults to ``True``.
    """

    def __init__(
        self,
        validator: Engine | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        output_transform: Callable[[Any], Any] = from_engine(["loss"], first=True),
        bar: bool = True,
    ) -> None:
        self.validator = validator
        self.optimizer = optimizer
        self.output_transform = output_transform
        self.bar = bar
        self._pbar: tqdm | None = None
        self._redirect: Any = None
        self._loss_sum, self._loss_count, self._epoch_start = 0.0, 0, 0.0

    def attach(self, engine: Engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)
        engine.add_event_handler(Events.COMPLETED | Events.TERMINATE, self._close)

    def _started(self, engine: Engine) -> None:
        total = engine.state.max_epochs * engine.state.epoch_length
        if self.bar:
            # log lines (ours, MONAI's, ignite's) go through tqdm.write while the bar is up, so they do not cut it
            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()
            self._pbar = tqdm(total=total, initial=engine.state.iteration, desc="training", unit="it", leave=True)

    def _epoch_started(self, engine: Engine) -> None:
        self._loss_sum, self._loss_count, self._epoch_start = 0.0, 0, time.perf_counter()

    def _iteration_completed(self, engine: Engine) -> None:
        loss = self.output_transform(engine.state.output)
        value = float(loss.item() if hasattr(loss, "item") else loss)
        if math.isfinite(value):
            self._loss_sum += value
            self._loss_count += 1
        if self._pbar is not None:
            self._pbar.set_postfix_str(f"epoch {engine.state.epoch}/{engine.state.max_epochs}, loss {value:.4f}")
            self._pbar.update(1)
        logger.debug(
            "epoch %d/%d iteration %d/%d: loss %.4f",
            engine.state.epoch,
            engine.state.max_epochs,
            (engine.state.iteration - 1) % engine.state.epoch_length + 1,
            engine.state.epoch_length,
            value,
        )

    def summary(self, engine: Engine) -> str:
        """The epoch's line: mean training loss, validation metrics (with the best so far), lr, seconds."""
        parts = [f"train_loss {self._loss_sum / max(self._loss_count, 1):.4f}"]
        state = getattr(self.validator, "state", None)
        if state is not None and state.metrics and state.epoch == engine.state.epoch:
            for key, value in state.metrics.items():
                if isinstance(value, (int, float)):
                    best = ""
                    if key == state.key_metric_name and state.best_metric_epoch >= 0:
                        best = f" (best {state.best_metric:.4f} at epoch {state.best_metric_epoch})"
                    parts.append(f"{key} {value:.4f}{best}")
        if self.optimizer is not None:
            parts.append(f"lr {self.optimizer.param_groups[0]['lr']:.2e}")
        parts.append(f"{time.perf_counter() - self._epoch_start:.1f} s")
        return f"epoch {engine.state.epoch}/{engine.state.max_epochs}: " + ", ".join(parts)

    def _epoch_completed(self, engine: Engine) -> None:
        logger.info(self.summary(engine))

    def _close(self, engine: Engine) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None
