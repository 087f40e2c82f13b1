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

"""A per-image review flag from the network's own uncertainty (paper §5.4).

The score is the disagreement ``sum|p - v| / (sum p + sum v)`` between the plain probability map ``p`` and a
variant ``v`` (``1 - Dice`` for binary maps), averaged over the variants. Three methods give the first variant:

- ``"cascade"`` (the bundles' default since 0.14.0): ``v`` is the coarse stage's map of the same pass (§3.2: the fine
  network reads the film and the coarse map and redraws it); the score is how far the fine network had to move it.
  It costs no forward pass when the run's inferer keeps both stages
  (:class:`r2mf_monai.inference.cascade_inferer.CascadeInferer`), and needs a cascade network (``forward_stages``).
- ``"flip"``: ``v`` is the map of the horizontally flipped image, flipped back (one more forward pass an
  image). MONAI's ``TestTimeAugmentation`` re-runs a whole transform chain per sample (its inverse included); one flip
  on the already-preprocessed batch needs no more than this handler.
- ``"mask"``: ``v`` is the map's own mask, ``p > 0.5``. The score is the share of the probability mass that is not
  sure of its side of the threshold: 0 for a map of 0s and 1s, higher where the outline is a wide soft band or whole
  regions sit near 0.5. It costs no forward pass (the run's own map is reused).

With ``mc_samples`` > 0, as many passes with the dropout layers active are added as variants (Monte-Carlo dropout).
A confident, stable segmentation scores near 0; an image the network is unsure about (low contrast, an unusual
anatomy) scores higher. Images above ``threshold`` are flagged for a human to review. How well each method ranks the
poor masks and the wrong Cobb angles of real AASCE films is in the bundle's docs/README.md ("Review flag").

An image is also flagged, whatever its score, when the post-processing found no spine in it
(:class:`r2mf_monai.transforms.SpinePlausibilityd`'s verdict, ``"spine"`` in the output item) or its reader had
something to say about its pixels (``read_warnings`` in its metadata: a constant or 1 x 1 picture, a signed/unsigned
mix-up); ``review.json`` says why.

``review.json`` belongs to the folder, not to one run: each run merges its images into it (one entry per image path,
the newest run's entry wins, each entry with its run's id and time; ``runs`` lists the runs), under an exclusive
lock on the folder so that two runs writing into one folder at the same time both keep their images. At its start a
run removes the entries of the images it is about to score, so a run that stops half-way leaves no stale score for
them.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import os
import uuid
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch

from r2mf_monai.handlers.distributed import gather_in_sampler_order, is_writer
from r2mf_monai.inference.cascade_inferer import stages_of
from r2mf_monai.outputs.atomic import atomic_write

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["ReviewFlag", "REVIEW_METHODS", "flip_dropout_uncertainty", "mask_uncertainty", "review_uncertainty"]

logger = logging.getLogger(__name__)

#: the first variant of each method (see the module docstring)
REVIEW_METHODS = ("flip", "mask", "cascade")

_SCORE = {
    "mask": "sum|p - m| / (sum p + sum m) between the probability map (p) and its own mask (m = p > 0.5)",
    "flip": "mean sum|p - v| / (sum p + sum v) between the plain (p) and augmented (v) probability maps",
    "cascade": "sum|p - c| / (sum p + sum c) between the fine (p) and coarse (c) stages' probability maps of one pass",
}


def _disagreement(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``sum|a - b| / (sum a + sum b)`` per image: 0 for identical maps, ``1 - Dice`` for binary ones."""
    dims = tuple(range(1, a.ndim))
    return (a - b).abs().sum(dims) / (a.sum(dims) + b.sum(dims) + eps)


def mask_uncertainty(prob: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Per-image score in [0, 1]: disagreement between a probability map and its own mask (``prob > threshold``).

    ``sum|p - m| / (sum p + sum m)``: 0 for a map of 0s and 1s; a map whose pixels all sit at 0.5 +/- d scores
    ``(0.5 - d) / (1.5 + d)``. No forward pass.

    Args:
        prob: probability maps (B, C, ...).
        threshold: the mask's threshold. Defaults to ``0.5``.
    """
    prob = torch.as_tensor(prob).float()
    return _disagreement(prob, (prob > threshold).float()).clamp(0.0, 1.0)


@torch.no_grad()
def review_uncertainty(
    network: torch.nn.Module,
    image: torch.Tensor,
    method: str = "flip",
    mc_samples: int = 0,
    base: torch.Tensor | None = None,
    mirrored: torch.Tensor | None = None,
    flip_axis: int = 2,
    coarse: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-image score in [0, 1]: mean disagreement between the plain probability map and each variant's.

    The disagreement ``sum|p - v| / (sum p + sum v)`` is 0 for identical maps and equals ``1 - Dice`` for binary
    ones, so the score reads as "how much of the mask moves".

    Args:
        network: the segmentation network (its mode is restored afterwards); returns logits (B, 1, ...).
        image: preprocessed batch (B, C, W, H).
        method: the first variant: ``"flip"`` (the mirrored image's map, flipped back), ``"mask"`` (the plain
            map's own mask, no pass) or ``"cascade"`` (the coarse stage's map, ``network.forward_stages``).
            Defaults to ``"flip"``.
        mc_samples: extra variants from passes with the dropout layers in train mode. Defaults to ``0``.
        base: the plain probability map of ``image`` when the caller has it already (the inference run's own
            ``sigmoid(network(image))``): one forward pass less. Defaults to ``None`` (computed here).
        mirrored: for ``"flip"``, the probability map of the mirrored ``image``, flipped back, when the caller has it
            already (:class:`r2mf_monai.inference.mirror_average.MirrorAverageInferer`'s): no flip pass here.
            Defaults to ``None`` (computed here).
        flip_axis: tensor axis of the horizontal flip. Defaults to ``2`` (MONAI's (W, H) layout: x).
        coarse: for ``"cascade"``, the coarse stage's probability map of the pass that gave ``base``, when the caller
            has it already (:class:`r2mf_monai.inference.cascade_inferer.CascadeInferer`'s). Defaults to ``None``:
            both stages are computed here (one pass), and ``base`` becomes their fine map.

    Raises:
        ValueError: an unknown ``method``, or ``"cascade"`` with a network that has no ``forward_stages``.
    """
    if method not in REVIEW_METHODS:
        raise ValueError(f"review method must be one of {REVIEW_METHODS}, got {method!r}.")
    stages = None
    if method == "cascade" and coarse is None:
        stages = stages_of(network)
        if stages is None:
            raise ValueError(
                f"review method 'cascade' needs a cascade network (forward_stages, as R2MF-Net's); "
                f"{type(network).__name__} has none: use review_method 'flip' or 'mask'."
            )
    was_training = network.training
    network.eval()
    try:
        if stages is not None:
            fine_logits, coarse_logits = stages(image)
            base, coarse = torch.sigmoid(fine_logits.float()), torch.sigmoid(coarse_logits.float())
        if base is None:
            base = torch.sigmoid(network(image).float())
        base = torch.as_tensor(base).float()
        if method == "mask":
            variants = [(base > 0.5).float()]
        elif method == "cascade":
            variants = [torch.as_tensor(coarse).float()]
        else:
            if mirrored is None:
                mirrored = torch.sigmoid(network(image.flip(flip_axis)).float()).flip(flip_axis)
            variants = [torch.as_tensor(mirrored).float()]
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


def flip_dropout_uncertainty(
    network: torch.nn.Module,
    image: torch.Tensor,
    flip_axis: int = 2,
    mc_samples: int = 0,
    base: torch.Tensor | None = None,
    mirrored: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`review_uncertainty` with ``method="flip"``: the plain map against the mirrored pass's (and
    ``mc_samples`` Monte-Carlo dropout passes')."""
    return review_uncertainty(
        network, image, method="flip", mc_samples=mc_samples, base=base, mirrored=mirrored, flip_axis=flip_axis
    )


@contextlib.contextmanager
def _folder_lock(folder: str) -> Iterator[None]:
    """An exclusive ``flock`` on the folder itself (no lock file is left behind), for read-merge-write of
    ``review.json`` by runs that share the folder."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_review(path: str) -> dict[str, Any]:
    """The review file at ``path`` (``{}`` when missing; a damaged one is replaced, with a warning)."""
    try:
        with open(path) as f:
            report = json.load(f)
        if isinstance(report, dict) and isinstance(report.get("images"), list):
            return report
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        pass
    logger.warning("%s is damaged or not a review list: it is started afresh", path)
    return {}


def _key(entry: dict[str, Any]) -> str:
    return str(entry.get("path") or entry.get("image"))


class ReviewFlag:
    """Ignite handler: score every image of an evaluation/inference run and flag the uncertain ones.

    Merges the run's images into ``review.json`` in ``output_dir`` at the end (see the module docstring: one entry
    per image path with score, flag, the reasons for the flag, the spine check's verdict and the reader's warnings,
    and the run's id and time; the newest run wins), puts ``review_score`` and ``review_flag`` into each output item
    so later handlers (the evaluation report) see them, and logs every flagged image.

    Args:
        output_dir: folder of ``review.json``; ``None`` writes nothing.
        threshold: score above which an image is flagged. Defaults to ``0.02`` (choose it on your own validation data
            for the method - see docs/README.md).
        mc_samples: Monte-Carlo dropout passes in addition (one forward pass each). Defaults to ``0``.
        image_key: the network input in the batch. Defaults to ``"image"``.
        verdict_key: the spine check's verdict in each output item
            (:class:`r2mf_monai.transforms.SpinePlausibilityd`). Defaults to ``"spine"``.
        files_key: the written outputs in each output item (:class:`r2mf_monai.outputs.SaveSegmentationd`'s
            ``files_key``), recorded as ``outputs`` so that a later ``r2mf-monai measure`` finds each mask's entry
            (the mask of ``b/x.png`` or of ``y.png`` beside ``y.dcm`` is not named after the image alone). Defaults
            to ``"pred_files"``.
        prob_key: the network's sigmoid probabilities on its own grid in each output item (what the bundles'
            post-processing copies before thresholding), used as the plain map instead of a second plain forward
            pass; ``None``, or an item without it, runs that pass. Defaults to ``"prob"``.
        inferer: the run's inferer when it keeps the plain and mirrored maps of its last batch
            (``last_probabilities``, :class:`r2mf_monai.inference.mirror_average.MirrorAverageInferer`): for
            ``"flip"`` the score is read from them and the flag runs no pass of its own (``prob_key`` is then not
            used: the run's own map is their mean); for ``"cascade"``, when it keeps both stages' maps of its last
            batch (``last_stage_probabilities``, :class:`r2mf_monai.inference.cascade_inferer.CascadeInferer`), the
            score is read from them, else the flag runs ``forward_stages`` itself. ``"mask"`` scores the run's own
            map. Defaults to ``None``.
        method: ``"flip"`` (the run's map against the mirrored image's, one pass an image), ``"mask"`` (against
            its own mask, no forward pass) or ``"cascade"`` (against the coarse stage's map of the same pass, no
            forward pass with a :class:`~r2mf_monai.inference.cascade_inferer.CascadeInferer`); see the module
            docstring. Defaults to ``"flip"`` (a keyword after the arguments of earlier versions, so positional calls
            keep their meaning; the bundles' configs choose ``"cascade"``).

    Raises:
        ValueError: ``threshold`` outside [0, 1], ``mc_samples`` < 0 or an unknown ``method``.
    """

    def __init__(
        self,
        output_dir: str | None,
        threshold: float = 0.02,
        mc_samples: int = 0,
        image_key: str = "image",
        verdict_key: str = "spine",
        files_key: str = "pred_files",
        prob_key: str | None = "prob",
        inferer: Any = None,
        method: str = "flip",
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if mc_samples < 0:
            raise ValueError(f"mc_samples must be >= 0, got {mc_samples}")
        if method not in REVIEW_METHODS:
            raise ValueError(f"method must be one of {REVIEW_METHODS}, got {method!r}")
        self.method = method
        self.output_dir = output_dir
        self.threshold = threshold
        self.mc_samples = mc_samples
        self.image_key = image_key
        self.verdict_key = verdict_key
        self.files_key = files_key
        self.prob_key = prob_key
        self.inferer = inferer
        self.records: list[dict[str, Any]] = []
        self.run_id = ""
        self.started = ""

    def attach(self, engine: Engine) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._score)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._write)

    @property
    def path(self) -> str | None:
        """The review file, ``output_dir/review.json`` (``None`` without an output folder)."""
        return None if self.output_dir is None else os.path.join(self.output_dir, "review.json")

    def _start(self, engine: Engine) -> None:
        self.records.clear()
        now = datetime.datetime.now(datetime.timezone.utc)
        self.started = now.isoformat(timespec="seconds")
        self.run_id = f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        if self.path is None or not is_writer() or not os.path.isfile(self.path):
            return
        # the images of this run are its own: their entries of earlier runs go now, so that a run that stops
        # half-way leaves no stale score for them
        data = getattr(getattr(engine.state, "dataloader", None), "dataset", None)
        items = getattr(data, "data", None)
        paths = {
            os.path.abspath(str(i[self.image_key])) for i in items or () if isinstance(i, dict) and self.image_key in i
        }
        if paths:
            self._merge([], drop=paths)

    def _score(self, engine: Engine) -> None:
        batch = engine.state.batch if isinstance(engine.state.batch, list) else [engine.state.batch]
        outputs = engine.state.output if isinstance(engine.state.output, list) else [engine.state.output]
        images = torch.stack([torch.as_tensor(b[self.image_key]) for b in batch]).to(engine.state.device)
        maps = self._inferer_probabilities(images)  # taken in any case, so no later batch reads them
        stages = self._inferer_probabilities(images, "last_stage_probabilities")
        coarse = None
        if maps is not None and self.method == "flip":
            base, mirrored = maps
        elif stages is not None and self.method == "cascade":
            (base, coarse), mirrored = stages, None
        else:
            base, mirrored = self._plain_probabilities(outputs, images), None
            if self.method == "cascade":
                base = None  # computed with its coarse map in one pass of forward_stages
        scores = review_uncertainty(
            engine.network,
            images,
            method=self.method,
            mc_samples=self.mc_samples,
            base=base,
            mirrored=mirrored,
            coarse=coarse,
        )
        for item, source, score in zip(outputs, batch, scores.tolist(), strict=True):
            meta = getattr(source[self.image_key], "meta", {}) or {}
            source_name = str(meta.get("filename_or_obj", f"case_{len(self.records)}"))
            name = os.path.basename(source_name)
            verdict = item.get(self.verdict_key) if isinstance(item, dict) else None
            warnings_ = [w for w in str(meta.get("read_warnings", "") or "").split("; ") if w]
            why = []
            if score > self.threshold:
                why.append(f"uncertainty {score:.4f} > {self.threshold:.4f}")
            if isinstance(verdict, dict) and verdict.get("spine_found") is False:
                why.append(verdict.get("reason") or "no spine found")
            why += warnings_
            flagged = bool(why)
            item["review_score"], item["review_flag"] = score, flagged
            record: dict[str, Any] = {
                "image": name,
                "path": os.path.abspath(source_name) if os.path.exists(source_name) else source_name,
                "score": score,
                "flagged": flagged,
                "why": why,
                "spine_found": None if not isinstance(verdict, dict) else verdict.get("spine_found"),
                "warnings": warnings_,
            }
            if isinstance(verdict, dict) and verdict.get("spine_found") is False:
                record["no_spine_reason"] = verdict.get("reason", "")
            files = item.get(self.files_key) if isinstance(item, dict) else None
            if isinstance(files, dict) and files:
                record["outputs"] = {str(k): os.path.abspath(str(v)) for k, v in files.items()}
            self.records.append(record)
            if flagged:
                logger.warning("review flag: %s (%s)", name, "; ".join(why))

    def _inferer_probabilities(
        self, images: torch.Tensor, attribute: str = "last_probabilities"
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The pair of maps the inferer keeps of this batch under ``attribute`` (``last_probabilities``: plain and
        mirrored; ``last_stage_probabilities``: fine and coarse), taken so that a later batch never reads them, or
        ``None`` when it keeps none or they do not match the batch."""
        maps = getattr(self.inferer, attribute, None)
        if maps is None:
            return None
        setattr(self.inferer, attribute, None)
        wanted = (images.shape[0], *images.shape[2:])
        if any(m.ndim != images.ndim or (m.shape[0], *m.shape[2:]) != wanted for m in maps):
            return None
        return maps[0].to(images.device), maps[1].to(images.device)

    def _plain_probabilities(self, outputs: list[Any], images: torch.Tensor) -> torch.Tensor | None:
        """The run's own probability maps on the network grid (``prob_key`` of every output item), or ``None``
        when an item lacks it or it does not match the image grid: then the plain pass is computed again."""
        if self.prob_key is None:
            return None
        probs = [item.get(self.prob_key) if isinstance(item, dict) else None for item in outputs]
        if not all(isinstance(p, torch.Tensor) and tuple(p.shape) == tuple(images.shape[1:]) for p in probs):
            return None
        return torch.stack(probs).to(images.device)

    def _merge(self, records: list[dict[str, Any]], drop: Iterable[str] = ()) -> dict[str, Any]:
        """Merge ``records`` (this run's) into ``review.json`` under the folder lock, dropping the entries of
        ``drop`` first; returns what was written."""
        assert self.output_dir is not None and self.path is not None
        os.makedirs(self.output_dir, exist_ok=True)
        with _folder_lock(self.output_dir):
            old = _read_review(self.path)
            mine = {_key(r) for r in records} | set(drop)
            kept = [e for e in old.get("images", []) if isinstance(e, dict) and _key(e) not in mine]
            images = [*records, *kept]
            runs = [r for r in old.get("runs", []) if isinstance(r, dict) and r.get("run_id") != self.run_id]
            if records:
                runs.append(
                    {"run_id": self.run_id, "started": self.started, "finished": _now(), "images": len(records)}
                )
            report = {
                "method": self.method + (f" + {self.mc_samples} MC-dropout passes" if self.mc_samples else ""),
                "score": _SCORE[self.method],
                "threshold": self.threshold,
                "flagged": sum(bool(e.get("flagged")) for e in images),
                "no_spine_found": sum(e.get("spine_found") is False for e in images),
                "run_id": self.run_id if records else old.get("run_id", ""),
                "runs": runs,
                "images": images,
            }
            with atomic_write(self.path, root=self.output_dir) as tmp, open(tmp, "w") as f:
                json.dump(report, f, indent=2)
        return report

    def _write(self, engine: Engine) -> None:
        # under torch.distributed (multi_gpu_evaluate.json) each rank scored a share: rank 0 writes them all
        self.records = gather_in_sampler_order(self.records)
        if self.output_dir is None or not is_writer():
            return
        for record in self.records:
            record["run_id"], record["time"] = self.run_id, self.started
        report = self._merge(self.records)
        logger.info(
            "review of %d images written to %s (%d flagged, %d with no spine found; %d images from earlier runs kept)",
            len(self.records),
            self.path,
            sum(r["flagged"] for r in self.records),
            sum(r["spine_found"] is False for r in self.records),
            len(report["images"]) - len(self.records),
        )


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
