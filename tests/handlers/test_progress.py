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
"""TrainingProgress: one bar over the whole run, one INFO line per epoch, iteration losses at DEBUG only."""

from __future__ import annotations

import logging

import pytest
import torch
from ignite.engine import Engine, Events

from r2mf_monai.handlers import TrainingProgress

LOGGER = "r2mf_monai.handlers.progress"


class _Validator(Engine):
    """A stand-in evaluator with the state fields MONAI's evaluators carry."""

    def __init__(self) -> None:
        super().__init__(lambda engine, batch: None)
        self.state.key_metric_name = "val_mean_dice"
        self.state.best_metric, self.state.best_metric_epoch = -1.0, -1

    def validate(self, epoch: int) -> None:
        dice = [0.5, 0.7, 0.6][epoch - 1]
        self.state.epoch, self.state.metrics = epoch, {"val_mean_dice": dice, "val_loss": 1.0 - dice}
        if dice > self.state.best_metric:
            self.state.best_metric, self.state.best_metric_epoch = dice, epoch


def _run(epochs: int, length: int, bar: bool, caplog: pytest.LogCaptureFixture) -> TrainingProgress:
    validator = _Validator()
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    # MONAI engines decollate their output into a list of per-sample dicts
    trainer = Engine(lambda engine, batch: [{"loss": torch.tensor(float(batch))}])
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: validator.validate(e.state.epoch))
    progress = TrainingProgress(validator=validator, optimizer=optimizer, bar=bar)
    progress.attach(trainer)
    bars = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED(once=1), lambda e: bars.append(progress._pbar))
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        trainer.run(list(range(length)), max_epochs=epochs)
    progress.bars = bars
    return progress


@pytest.mark.parametrize("epochs, length", [(3, 4), (2, 7)])
def test_one_line_per_epoch_and_iterations_at_debug(epochs: int, length: int, caplog: pytest.LogCaptureFixture) -> None:
    _run(epochs, length, bar=False, caplog=caplog)
    # the handler's own records: whether ignite's engine lines reach caplog too depends on the root logger's level,
    # which any earlier bundle run in the session sets (ConfigWorkflow applies the bundle's logging.conf: INFO)
    records = [r for r in caplog.records if r.name == LOGGER]
    info = [r.getMessage() for r in records if r.levelno == logging.INFO]
    debug = [r.getMessage() for r in records if r.levelno == logging.DEBUG]
    assert len(info) == epochs and len(debug) == epochs * length
    mean_loss = sum(range(length)) / length
    assert info[0].startswith(f"epoch 1/{epochs}: train_loss {mean_loss:.4f}, val_mean_dice 0.5000 (best 0.5000 at")
    assert "val_loss 0.5000" in info[0] and "lr 1.00e-02" in info[0] and info[0].endswith(" s")
    assert "(best 0.7000 at epoch 2)" in info[1]
    assert debug[-1] == f"epoch {epochs}/{epochs} iteration {length}/{length}: loss {length - 1:.4f}"


def test_the_bar_spans_the_whole_run_and_closes(caplog: pytest.LogCaptureFixture) -> None:
    progress = _run(3, 4, bar=True, caplog=caplog)
    (bar,) = progress.bars
    assert bar.total == 12 and bar.n == 12  # epochs x iterations, complete
    assert progress._pbar is None and progress._redirect is None
