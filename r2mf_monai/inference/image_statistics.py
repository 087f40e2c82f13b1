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

"""Batch normalisation with each image's own statistics at inference: a test-time answer to a domain shift.

A network trained on synthetic films normalises its features at inference with the means and variances it saw in
training (the running statistics of batch normalisation, §3.7). A real film's features have other statistics, and
that shift is part of what the network gets wrong on them. Normalising instead with a mix of the running statistics and
the image's own (AdaBN, Li et al. 2016; prediction-time batch normalisation, Nado et al. 2020; the mixing weight as in
You et al. 2021, "Test-time batch statistics calibration for covariate shift") adapts the network to each film with no
training and no data beyond the film itself. Each image's statistics are its own, over its pixels, so a mask does not
depend on which films share its batch.

PyTorch and MONAI normalise with running or batch statistics only, not with a mix of running and per-image ones: this
module is that layer and the conversion of a trained network to it.
"""

from __future__ import annotations

import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["ImageStatisticsBatchNorm", "checked_image_weight", "use_image_statistics"]


def checked_image_weight(image_weight: float, name: str = "image_weight") -> float:
    """``image_weight`` as a float in [0, 1].

    Raises:
        ValueError: naming ``name`` (the argument, or the config key it came from) for anything else.
    """
    try:
        weight = float(image_weight)
    except (TypeError, ValueError):
        weight = float("nan")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {image_weight!r}")
    return weight


@torch.jit.unused
def _capturing_graph():  # no annotation: TorchScript reads it as the string "bool" here
    """Whether the forward pass is being captured (ONNX export, tracing, ``torch.compile``) rather than run."""
    # torch.onnx is imported lazily by torch, and that import took 0.18 s of a 2.4 s end-to-end run: where nothing has
    # imported it yet, no ONNX export is running
    onnx = sys.modules.get("torch.onnx")
    exporting = onnx is not None and onnx.is_in_onnx_export()
    return exporting or torch.jit.is_tracing() or torch.compiler.is_compiling()


class ImageStatisticsBatchNorm(_BatchNorm):
    """Batch normalisation that, in eval mode, normalises each image with ``(1 - image_weight)`` times the running
    statistics plus ``image_weight`` times the image's own (per channel, over its pixels; the variance unbiased, as
    running statistics take it); in training mode it is PyTorch's batch normalisation.

    Its parameters and buffers are those of the batch normalisation it replaces (same names, so a state dict of the
    trained network loads into it). It is not a ``BatchNorm2d``: inference paths that fold batch normalisation into the
    convolution before it (:py:meth:`R2MFNet.fuse_for_inference`) leave it alone, since its statistics are not fixed.

    Args:
        num_features: channels.
        image_weight: weight of the image's own statistics in [0, 1]; ``0`` is plain eval-mode batch normalisation,
            ``1`` the image's statistics alone (instance normalisation with the learnt affine). Defaults to ``0.5``.
        eps, momentum, affine: as ``torch.nn.BatchNorm2d``'s.
        inplace: in eval mode with image statistics, when no gradient is wanted, normalise the input tensor itself
            and return it, as ``nn.ReLU(inplace=True)`` does: only where nothing else reads the input (a
            convolution's output). :func:`~r2mf_monai.inference.fast_inference.prepare_for_inference` sets it on
            R2MF-Net's prepared copy. Defaults to ``False``.
    """

    def __init__(
        self,
        num_features: int,
        image_weight: float = 0.5,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        inplace: bool = False,
    ) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine, track_running_stats=True)
        self.image_weight = checked_image_weight(image_weight)
        self.inplace = bool(inplace)

    @classmethod
    def from_batch_norm(cls, bn: _BatchNorm, image_weight: float = 0.5) -> ImageStatisticsBatchNorm:
        """The layer with ``bn``'s parameters, running statistics, device and dtype."""
        if not bn.track_running_stats:
            raise ValueError(f"{type(bn).__name__} keeps no running statistics to mix with the image's")
        layer = cls(bn.num_features, image_weight, eps=bn.eps, momentum=bn.momentum, affine=bn.affine)
        layer.load_state_dict(bn.state_dict())
        return layer.to(device=bn.running_mean.device, dtype=bn.running_mean.dtype).train(bn.training)

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 3:
            raise ValueError("expected an input with spatial dimensions (B, C, ...)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        # written out rather than super().forward(), which TorchScript (ckpt_export's model.ts) cannot compile
        self._check_input_dim(input)
        running_mean, running_var = self.running_mean, self.running_var
        assert running_mean is not None and running_var is not None  # track_running_stats is always on here
        if self.training or self.image_weight == 0.0:
            factor = 0.0
            if self.training:
                num_batches = self.num_batches_tracked
                assert num_batches is not None
                num_batches.add_(1)
                factor = 1.0 / float(num_batches) if self.momentum is None else float(self.momentum)
            return F.batch_norm(
                input, running_mean, running_var, self.weight, self.bias, self.training, factor, self.eps
            )
        # graph capture (ONNX, tracing, torch.compile) and TorchScript, which drops an op whose outputs go unused, do
        # not keep the kernel's in-place update in _mixed_one: for them the same mix, written out
        written_out = True if torch.jit.is_scripting() else _capturing_graph()
        if written_out:
            return self._mixed_written_out(input, running_mean, running_var)
        inplace = self.inplace and not (torch.is_grad_enabled() and input.requires_grad)
        if input.shape[0] == 1:
            return self._mixed_one(input, running_mean, running_var, inplace)
        # each image by itself: its statistics are its own whatever the batch, and the memory format is kept
        if inplace:
            for image in input.split(1):  # views of the input: each normalised where it lies
                self._mixed_one(image, running_mean, running_var, True)
            return input
        return torch.cat([self._mixed_one(image, running_mean, running_var, False) for image in input.split(1)])

    def _mixed_one(
        self, image: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor, inplace: bool = False
    ) -> torch.Tensor:
        """One image (a batch of one) normalised with the mix of the running statistics and its own."""
        mean, var = running_mean.clone(), running_var.clone()
        # PyTorch's statistics kernel updates running statistics as (1 - momentum) * running + momentum * the batch's
        # (the variance unbiased, as running statistics take it): with momentum = image_weight and a batch of one
        # image that is the mix. batch_norm_update_stats computes the statistics only (the training-mode
        # native_batch_norm also wrote a normalised copy, 2.4x slower on a 16 x 256 x 256 map), 5x faster than
        # torch.var_mean. On the image as it comes (channels-last in the fast inference path): a reshape to
        # (1, channels, pixels) would copy it and hand the next convolution a tensor in the other memory format,
        # which made a pass twice as slow
        torch.batch_norm_update_stats(image, mean, var, self.image_weight)
        if not inplace:
            return F.batch_norm(image, mean, var, self.weight, self.bias, False, 0.0, self.eps)
        # x * scale + shift: the per-channel form the CPU batch-norm kernel computes (R2MF-Net's logits within 1e-4 of
        # it), written into the input; no new map, whose allocation and page faults cost more than the arithmetic (with
        # batch_norm_update_stats, a 256 px R2MF-Net pass 0.26 -> 0.20 s on 2 threads)
        weight, bias = self.weight, self.bias
        scale = torch.rsqrt(var + self.eps)
        if weight is not None:
            scale = scale * weight
        shift = -mean * scale
        if bias is not None:
            shift = shift + bias
        shape = [1, -1] + [1] * (image.dim() - 2)
        return torch.addcmul(shift.view(shape), image, scale.view(shape), out=image)

    def _mixed_written_out(
        self, input: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor
    ) -> torch.Tensor:
        """The same mix with ``torch.var_mean``, for graph capture and TorchScript; each (image, channel) pair is a
        channel of a batch of one, as instance normalisation computes it."""
        batch, channels = input.shape[0], input.shape[1]
        flat = input.reshape(1, batch * channels, -1)
        w = self.image_weight
        image_var, image_mean = torch.var_mean(flat[0], dim=1, unbiased=True)
        mean = (1.0 - w) * running_mean.repeat(batch) + w * image_mean
        var = (1.0 - w) * running_var.repeat(batch) + w * image_var
        weight, bias = self.weight, self.bias
        out = F.batch_norm(
            flat,
            mean,
            var,
            None if weight is None else weight.repeat(batch),
            None if bias is None else bias.repeat(batch),
            False,
            0.0,
            self.eps,
        )
        return out.reshape(input.shape)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, image_weight={self.image_weight}" + (", inplace=True" if self.inplace else "")


def use_image_statistics(network: nn.Module, image_weight: float = 0.5) -> nn.Module:
    """Replace, in place, every 2-D or 3-D batch normalisation of ``network`` that keeps running statistics by an
    :class:`ImageStatisticsBatchNorm` with ``image_weight``; ``0`` leaves the network as it is.

    State-dict names are unchanged, so weights load before or after (MONAI's ``CheckpointLoader`` included).

    Returns:
        ``network``.

    Raises:
        ValueError: an ``image_weight`` outside [0, 1].
    """
    if checked_image_weight(image_weight) == 0.0:
        return network
    for parent in list(network.modules()):
        for name, child in list(parent.named_children()):
            # images have pixels to take statistics over: 2-D and 3-D batch normalisation only
            if isinstance(child, (nn.BatchNorm2d, nn.BatchNorm3d)) and child.track_running_stats:
                setattr(parent, name, ImageStatisticsBatchNorm.from_batch_norm(child, image_weight))
    return network
