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

"""An inferer that keeps both stages of a cascade network's pass, for the review flag's ``"cascade"`` method.

R2MF-Net draws its mask in two stages (paper §3.2): the coarse network reads the film, the fine network reads the film
and the coarse map. Where the fine network had to move the coarse map a lot, the network is unsure of the film; the
review flag (:class:`r2mf_monai.handlers.ReviewFlag`, ``method="cascade"``) scores that disagreement. Both maps come out
of the one pass that draws the mask, so this score costs no pass of its own, where ``"flip"`` runs the network a
second time on the mirrored film. MONAI's ``SimpleInferer`` returns the network's output only; this inferer returns the
same fine logits and keeps the two probability maps of its last batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from monai.inferers import Inferer
from monai.utils import convert_to_tensor

__all__ = ["CascadeInferer", "stages_of"]


def stages_of(network: Any) -> Callable[..., tuple[torch.Tensor, torch.Tensor]] | None:
    """``network.forward_stages``, looked up through ``DistributedDataParallel`` and ``DataParallel`` (the wrapped
    ``module``'s, as the multi-GPU configs wrap it), or ``None`` for a network that is not a cascade."""
    if isinstance(network, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
        network = network.module
    stages = getattr(network, "forward_stages", None)
    return stages if callable(stages) else None


class CascadeInferer(Inferer):
    """Run ``network`` once and return its fine logits, keeping the fine and coarse probability maps.

    ``network.forward_stages(inputs)`` (R2MF-Net, its prepared copies, an ONNX model exported from it, and any of these
    inside ``DistributedDataParallel``: :func:`stages_of`) gives ``(fine, coarse)`` logits; a network
    without it (a baseline U-Net, a TorchScript or ONNX model exported with one output) is run as ``network(inputs)``
    and nothing is kept, so the inferer serves any network the bundle runs.

    Attributes:
        last_stage_probabilities: ``(fine, coarse)``, the float32 sigmoid maps of the last batch, for
            :class:`r2mf_monai.handlers.ReviewFlag`; ``None`` before the first call or after a network without stages.
    """

    def __init__(self) -> None:
        super().__init__()
        self.last_stage_probabilities: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        """
        Args:
            inputs: the preprocessed batch, (B, C, spatial...).
            network: the model; ``network.forward_stages(inputs, *args, **kwargs)`` when it has that method, else
                ``network(inputs, *args, **kwargs)``.

        Returns:
            the fine logits, as ``network(inputs)`` gives them (a MetaTensor input gives a MetaTensor output).
        """
        stages = stages_of(network)
        if stages is None:
            self.last_stage_probabilities = None
            return network(inputs, *args, **kwargs)
        fine, coarse = stages(inputs, *args, **kwargs)
        self.last_stage_probabilities = tuple(  # type: ignore[assignment]
            torch.sigmoid(convert_to_tensor(t, track_meta=False).float()) for t in (fine, coarse)
        )
        return fine
