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

"""Test-time mirroring: the mean of the network's probabilities on a film and on its mirror image (paper §5.4).

MONAI's :class:`monai.data.TestTimeAugmentation` re-runs a whole random transform chain per sample, with its inverse,
and returns the spread of many samples; one deterministic mirror of the already-preprocessed batch needs only this
inferer. The review flag's ``"flip"`` method (:class:`r2mf_monai.handlers.ReviewFlag`) scores an image by how much its
mask moves between the plain and the mirrored pass: this inferer keeps both maps of its last batch, so the flag then
needs no pass of its own.
"""

from __future__ import annotations

from typing import Any

import torch
from monai.data import MetaTensor
from monai.inferers import Inferer, SimpleInferer
from monai.utils import convert_to_tensor

from r2mf_monai.utils import ensure_bool

__all__ = ["MirrorAverageInferer", "make_inferer"]


class MirrorAverageInferer(Inferer):
    """Run ``network`` on the batch and on its mirror image; return the logit of the two probability maps' mean.

    The network must give one logit per pixel and channel (a sigmoid output, as R2MF-Net's). The result is again a
    logit (``torch.logit`` of the mean probability, clamped to ``[eps, 1 - eps]``), so post-processing written for the
    plain network (``Activationsd(sigmoid=True)``, thresholds) is unchanged; a MetaTensor input's metadata and applied
    operations are carried as the plain pass carries them, so ``Invertd`` is unchanged too.

    Args:
        flip_axis: tensor axis of the mirror. Defaults to ``2``: x in MONAI's (B, C, W, H) layout, the left-right
            mirror under which a coronal film stays a coronal film (training flips films the same way).
        eps: clamp of the mean probability before the logit. Defaults to ``1e-6``.

    Attributes:
        last_probabilities: ``(plain, mirrored)``, the float32 sigmoid maps of the last batch (the mirrored one flipped
            back onto the film), for :class:`r2mf_monai.handlers.ReviewFlag`; ``None`` before the first call.
    """

    def __init__(self, flip_axis: int = 2, eps: float = 1e-6) -> None:
        super().__init__()
        if not 0.0 < eps < 0.5:
            raise ValueError(f"eps must be in (0, 0.5), got {eps}")
        self.flip_axis = flip_axis
        self.eps = eps
        self.last_probabilities: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        """
        Args:
            inputs: the preprocessed batch, (B, C, spatial...).
            network: the model; called as ``network(inputs, *args, **kwargs)``.

        Returns:
            the logits of the mean probability, shaped and typed as ``network(inputs)``'s.
        """
        if not -inputs.ndim <= self.flip_axis < inputs.ndim or self.flip_axis % inputs.ndim < 2:
            raise ValueError(f"flip_axis {self.flip_axis} is not a spatial axis of a {inputs.ndim}-d batch")
        logits = network(inputs, *args, **kwargs)
        # without MONAI's metadata (same storage), so that a flip or an activation records nothing
        mirrored_logits = network(convert_to_tensor(inputs, track_meta=False).flip(self.flip_axis), *args, **kwargs)
        plain = torch.sigmoid(convert_to_tensor(logits, track_meta=False).float())
        mirrored = torch.sigmoid(convert_to_tensor(mirrored_logits, track_meta=False).float()).flip(self.flip_axis)
        self.last_probabilities = (plain, mirrored)
        mean_logits = torch.logit((plain + mirrored) / 2.0, eps=self.eps).to(logits.dtype)
        if isinstance(logits, MetaTensor):  # the plain pass's metadata and applied operations (Invertd reads them)
            out = MetaTensor(mean_logits, meta=logits.meta, applied_operations=logits.applied_operations)
            out.is_batch = logits.is_batch
            return out
        return mean_logits


def make_inferer(mirror_average: bool | str = True, flip_axis: int = 2, keep_stages: bool | str = False) -> Inferer:
    """The bundles' inferer: :class:`MirrorAverageInferer` when ``mirror_average``; else, with ``keep_stages``,
    :class:`r2mf_monai.inference.cascade_inferer.CascadeInferer` (the plain network, keeping both stages' maps for
    the review flag's ``"cascade"`` method); else MONAI's ``SimpleInferer``.

    ``mirror_average`` and ``keep_stages`` may come from a command line as ``"false"``/``"true"`` (``python -m
    monai.bundle run ... --mirror_average false`` gives the string), which is read as the bool it says, never as a
    non-empty string.

    Raises:
        ValueError: a ``mirror_average`` or ``keep_stages`` that is not a boolean (names the key).
    """
    if ensure_bool("mirror_average", mirror_average):
        return MirrorAverageInferer(flip_axis=flip_axis)
    if ensure_bool("keep_stages", keep_stages):
        from r2mf_monai.inference.cascade_inferer import CascadeInferer

        return CascadeInferer()
    return SimpleInferer()
