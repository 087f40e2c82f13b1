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

"""A per-image review flag from test-time augmentation and Monte-Carlo dropout (paper §5.4).

The network is run again on the horizontally flipped image (flipped back afterwards) and, optionally, a few times
with its dropout layers active; the score is the disagreement ``sum|p - v| / (sum p + sum v)`` between the
plain probability map and each variant's (``1 - Dice`` for binary maps), averaged. A confident, stable segmentation
scores near 0; an image the network is unsure about (low contrast, an unusual anatomy) moves the mask between
variants and scores higher. Images above ``threshold`` are flagged for a human to review. MONAI's
``TestTimeAugmentation`` re-runs a whole transform chain per sample (its inverse included); one flip and a few
dropout passes on the already-preprocessed batch need no more than this handler.
"""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Any

import torch

from r2mf_monai.handlers.distributed import gather_in_sampler_order, is_writer
from r2mf_monai.outputs.atomic import atomic_write

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["ReviewFlag", "flip_dropout_uncertainty"]

logger = logging.getLogger(__name__)


def _disagreement(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``sum|a - b| / (sum a + sum b)`` per image: 0 for identical maps, ``1 - Dice`` for binary ones."""
    dims = tuple(range(1, a.ndim))
    return (a - b).abs().sum(dims) / (a.sum(dims) + b.sum(dims) + eps)


@torch.no_grad()
def flip_dropout_uncertainty(
    network: torch.nn.Module, image: torch.Tensor, flip_axis: int = 2, mc_samples: int = 0
) -> torch.Tensor:
    """Per-image score in [0, 1]: mean disagreement between the plain probability map and each variant's.

    The disagreement ``sum|p - v| / (sum p + sum v)`` is 0 for identical maps and equals ``1 - Dice`` for binary
    ones, so the score reads as "how much of the mask moves".

    Args:
        network: the segmentation network (its mode is restored afterwards); returns logits (B, 1, ...).
        image: preprocessed batch (B, C, W, H).
        flip_axis: tensor axis of the horizontal flip. Defaults to ``2`` (MONAI's (W, H) layout: x).
        mc_samples: extra passes with dropout layers in train mode (0 for flip only). Defaults to ``0``.
    """
    was_training = network.training
    network.eval()
    try:
        base = torch.sigmoid(network(image).float())
        variants = [torch.sigmoid(network(image.flip(flip_axis)).float()).flip(flip_axis)]
        if mc_samples > 0:
            dropouts = [m for m in network.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
            for m in dropouts:
                m.train()
            variants += [torch.sigmoid(network(image).float()) for _ in range(mc_samples)]
            for m in dropouts:
                m.eval()
        scores = torch.stack([_disagreement(base, v) for v in variants]).mean(0)
    finally:
        network.train(was_training)
    return scores.clamp(0.0, 1.0)


class ReviewFlag:
    """Ignite handler: score every image of an evaluation/inference run and flag the uncertain ones.

    Writes ``review.json`` (score and flag per image, the threshold and method) to ``output_dir`` at the end, puts
    ``review_score`` and ``review_flag`` into each output item so later handlers (the evaluation report) see them,
    and logs every flagged image.

    Args:
        output_dir: folder of ``review.json``; ``None`` writes nothing.
        threshold: score above which an image is flagged. Defaults to ``0.02`` (2 % of the mask moves; choose
            it on your own validation data - see docs/README.md).
        mc_samples: Monte-Carlo dropout passes in addition to the flip. Defaults to ``0``.
        image_key: the network input in the batch. Defaults to ``"image"``.
    """

    def __init__(
        self, output_dir: str | None, threshold: float = 0.02, mc_samples: int = 0, image_key: str = "image"
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if mc_samples < 0:
            raise ValueError(f"mc_samples must be >= 0, got {mc_samples}")
        self.output_dir = output_dir
        self.threshold = threshold
        self.mc_samples = mc_samples
        self.image_key = image_key
        self.records: list[dict[str, Any]] = []

    def attach(self, engine: Engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, lambda e: self.records.clear())
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._score)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    def _score(self, engine: Engine) -> None:
        batch = engine.state.batch if isinstance(engine.state.batch, list) else [engine.state.batch]
        outputs = engine.state.output if isinstance(engine.state.output, list) else [engine.state.output]
        images = torch.stack([torch.as_tensor(b[self.image_key]) for b in batch]).to(engine.state.device)
        scores = flip_dropout_uncertainty(engine.network, images, mc_samples=self.mc_samples)
        for item, source, score in zip(outputs, batch, scores.tolist(), strict=True):
            meta = getattr(source[self.image_key], "meta", {}) or {}
            name = os.path.basename(str(meta.get("filename_or_obj", f"case_{len(self.records)}")))
            flagged = score > self.threshold
            item["review_score"], item["review_flag"] = score, flagged
            self.records.append({"image": name, "score": score, "flagged": flagged})
            if flagged:
                logger.warning("review flag: %s (uncertainty %.4f > %.4f)", name, score, self.threshold)

    def _write(self, engine: Engine) -> None:
        # under torch.distributed (multi_gpu_evaluate.json) each rank scored a share: rank 0 writes them all
        self.records = gather_in_sampler_order(self.records)
        if self.output_dir is None or not is_writer():
            return
        os.makedirs(self.output_dir, exist_ok=True)
        path = os.path.join(self.output_dir, "review.json")
        report = {
            "method": "flip" + (f" + {self.mc_samples} MC-dropout passes" if self.mc_samples else ""),
            "score": "mean sum|p - v| / (sum p + sum v) between the plain (p) and augmented (v) probability maps",
            "threshold": self.threshold,
            "flagged": sum(r["flagged"] for r in self.records),
            "images": self.records,
        }
        with atomic_write(path, root=self.output_dir) as tmp, open(tmp, "w") as f:
            json.dump(report, f, indent=2)
        logger.info("review scores of %d images written to %s", len(self.records), path)
