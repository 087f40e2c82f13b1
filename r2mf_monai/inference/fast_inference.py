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

"""Faster inference of a trained network without changing its maths (paper §4.9: inference time per image).

:func:`prepare_for_inference` wraps a network (R2MF-Net or any baseline) in a :class:`FastInferenceNetwork`, a
``torch.nn.Module`` that the bundle's ``inference.json`` can use as its ``network``. In training mode it is the
wrapped network unchanged; in eval mode its first forward builds, once, an inference copy of the network:

- batch normalisation folded into the convolution before it (:py:meth:`R2MFNet.fuse_for_inference`; exact up to
  rounding);
- the memory format: ``channels_last`` (NHWC), in which oneDNN's convolutions need no layout reorders, or NCHW;
- the backend: eager PyTorch, TorchScript (``torch.jit.freeze`` + ``torch.jit.optimize_for_inference``, which also
  fuses convolutions with their activations) or ``torch.compile`` (Inductor with weight freezing);
- the precision: ``"fp32"``; ``"bf16"`` (``torch.autocast`` with bfloat16: convolutions and matrix products in
  bfloat16, reductions and the output in float32); or ``"auto"``, which takes bfloat16 only where the hardware runs
  it natively (CPU flags ``avx512_bf16`` or ``amx_bf16``, or a CUDA device that supports it) and only if, on the
  first ``check_batches`` batches it sees (3 by default: one patient's three views), the bfloat16 masks agree with
  the float32 masks (worst Dice >= ``min_dice``, 0.995 by default); otherwise float32. The checked batches return
  their float32 output. ``fp32_modules`` names submodules that stay float32 inside the bfloat16 path; by default
  those the network names itself with a ``float32_modules()`` method (R2MF-Net: the full-resolution input level of
  both stages, :py:meth:`R2MFNet.float32_modules`), none for a network without one.

The output is always float32 logits in the contiguous layout, and a :class:`monai.data.MetaTensor` input gives a
MetaTensor output with the input's metadata (what a convolution on a MetaTensor gives), so post-processing such as
``Invertd`` is unchanged. ``state_dict``/``load_state_dict`` are those of the wrapped network, so MONAI's
``CheckpointLoader`` loads a ``model.pt`` saved from the plain network; loading (or ``.to()``) discards the
inference copy, which is rebuilt at the next forward.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
from monai.data import MetaTensor
from monai.metrics import compute_dice

from r2mf_monai.inference.image_statistics import ImageStatisticsBatchNorm
from r2mf_monai.utils import ensure_int, ensure_option

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "FastInferenceNetwork",
    "cpu_flags",
    "mask_agreement",
    "native_bf16",
    "prepare_for_inference",
]

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
"""Precisions of :class:`FastInferenceNetwork`."""

BACKENDS = ("eager", "torchscript", "compile")
"""Backends of :class:`FastInferenceNetwork`."""

_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_DROPOUT = (nn.modules.dropout._DropoutNd,)


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (an empty set where there is none, e.g. on macOS or Windows)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` computes bfloat16 natively (not emulated, which is slower than float32).

    On CPU: the ``avx512_bf16`` or ``amx_bf16`` flag and a PyTorch built with oneDNN; on CUDA:
    ``torch.cuda.is_bf16_supported()`` for that device.
    """
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False
        with torch.cuda.device(device):
            return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    return torch.backends.mkldnn.is_available() and any(flag in cpu_flags() for flag in _CPU_BF16_FLAGS)


def mask_agreement(logits_a: torch.Tensor, logits_b: torch.Tensor, threshold: float = 0.0) -> float:
    """Worst per-image Dice between the masks ``logits > threshold`` of two outputs of the same batch.

    Logit 0 is probability 0.5, the bundle's threshold. Two empty masks agree perfectly (Dice 1).
    """
    if logits_a.shape != logits_b.shape:
        raise ValueError(f"the outputs differ in shape: {tuple(logits_a.shape)} vs {tuple(logits_b.shape)}.")
    a = (torch.as_tensor(logits_a).detach().float() > threshold).float()
    b = (torch.as_tensor(logits_b).detach().float() > threshold).float()
    if a.ndim < 3:
        raise ValueError(f"expected a (B, C, *spatial) batch, got shape {tuple(a.shape)}.")
    dice = compute_dice(a.cpu(), b.cpu(), include_background=True, ignore_empty=False)
    return float(dice.min())


def _plain(x: torch.Tensor) -> torch.Tensor:
    return x.as_tensor() if isinstance(x, MetaTensor) else x


def _like_input(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``out`` as a convolution on ``x`` gives it: a MetaTensor with ``x``'s metadata and applied operations when ``x``
    is one (Invertd uses them), else ``out`` itself."""
    if not isinstance(x, MetaTensor):
        return out
    wrapped = MetaTensor(out, meta=x.meta, applied_operations=x.applied_operations)
    wrapped.is_batch = x.is_batch
    return wrapped


def _structural_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose modules and parameter objects are new but whose tensors are shared.

    What preparation changes (modules replaced by folding, parameters converted to channels-last, activations made
    in-place, train/eval flags) then leaves the wrapped network untouched, without ``copy.deepcopy``'s cost (the
    Python object graph of a MONAI network takes about half a second to deep-copy on this project's CPU).
    """
    clone = copy.copy(module)
    clone._parameters = {
        k: None if v is None else nn.Parameter(v.detach(), requires_grad=False) for k, v in module._parameters.items()
    }
    clone._buffers = dict(module._buffers)
    clone._modules = {k: None if m is None else _structural_copy(m) for k, m in module._modules.items()}
    return clone


def _float32(value: Any) -> Any:
    if torch.is_tensor(value):
        return value.float()
    if isinstance(value, (list, tuple)):
        return type(value)(_float32(v) for v in value)
    return value


class _Float32Island(nn.Module):
    """``module`` computed in float32 inside a bfloat16 autocast region (inputs cast, autocast off)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args: Any) -> Any:
        with torch.autocast(args[0].device.type, enabled=False):
            return self.module(*[_float32(a) for a in args])


def _with_float32_islands(net: nn.Module, names: Sequence[str]) -> nn.Module:
    """A copy of ``net`` (sharing its weights) whose submodules ``names`` run in float32 under autocast."""
    island = copy.copy(net)
    island._modules = dict(net._modules)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = island
        for part in parent_name.split(".") if parent_name else []:
            # copy each module on the path, so that the float32 copy shares weights but not structure with ``net``
            original = parent._modules[part]
            clone = copy.copy(original)
            clone._modules = dict(original._modules)
            parent._modules[part] = clone
            parent = clone
        target = parent._modules[child]
        if not isinstance(target, _Float32Island):
            parent._modules[child] = _Float32Island(target)
    return island


class FastInferenceNetwork(nn.Module):
    """A network prepared for fast eval-mode inference: folded batch norm, a memory format, a backend, a precision.

    See the module docstring for what each option does; :func:`prepare_for_inference` is the usual way to build one.

    Args:
        network: the network to wrap (its weights may be loaded later, through this wrapper or directly).
        precision: ``"fp32"``, ``"bf16"`` or ``"auto"``. Defaults to ``"auto"``.
        channels_last: run in the channels-last memory format; ``None`` chooses it on CPU and CUDA unless the
            network has instance normalisation (the benchmark, bundle/docs/benchmark.md, found channels-last faster
            for batch-norm networks and slower for instance-norm ones). Defaults to ``None``.
        fuse: fold batch normalisation into convolutions where the network offers ``fuse_for_inference()``.
            Defaults to ``True``.
        backend: ``"eager"``, ``"torchscript"`` (float32 only) or ``"compile"``. Defaults to ``"eager"``.
        min_dice: agreement that ``"auto"`` requires between bfloat16 and float32 masks. Defaults to ``0.995``.
        check_batches: batches that ``"auto"`` computes in both precisions (returning the float32 result) before it
            adopts bfloat16; any batch below ``min_dice`` settles on float32. Defaults to ``3`` (one patient's three
            views when the bundle feeds one image a batch).
        threshold: logit above which a pixel is foreground, for that check. Defaults to ``0.0`` (probability 0.5).
        fp32_modules: names (as in ``network.named_modules()``) of submodules computed in float32 on the bfloat16
            path: their tensor inputs are cast to float32 and autocast is off inside them; ``()`` for none. Defaults
            to ``None``: those of ``network.float32_modules()`` where the network has that method, else none.

    Attributes:
        selected_precision: the precision in use (``None`` while ``"auto"`` is still checking).
        agreement: the worst Dice measured by ``"auto"`` so far (``None`` when not measured).

    Raises:
        ValueError: for an unknown ``precision`` or ``backend``, ``"bf16"`` with ``"torchscript"``, or a
            ``min_dice`` outside [0, 1], or an ``fp32_modules`` name that ``network`` lacks.
    """

    def __init__(
        self,
        network: nn.Module,
        precision: str = "auto",
        channels_last: bool | None = None,
        fuse: bool = True,
        backend: str = "eager",
        min_dice: float = 0.995,
        threshold: float = 0.0,
        check_batches: int = 3,
        fp32_modules: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(network, nn.Module):
            raise ValueError(f"network must be a torch.nn.Module, got {type(network).__name__}.")
        precision = ensure_option("precision", precision, PRECISIONS)
        backend = ensure_option("backend", backend, BACKENDS)
        if backend == "torchscript" and precision == "bf16":
            raise ValueError("precision='bf16' needs backend 'eager' or 'compile' (TorchScript ignores autocast).")
        if not 0.0 <= float(min_dice) <= 1.0:
            raise ValueError(f"min_dice must be in [0, 1], got min_dice={min_dice!r}.")
        check_batches = ensure_int("check_batches", check_batches)
        if fp32_modules is None:
            fp32_modules = tuple(network.float32_modules()) if hasattr(network, "float32_modules") else ()
        fp32_modules = (fp32_modules,) if isinstance(fp32_modules, str) else tuple(fp32_modules)
        names = dict(network.named_modules())
        for name in fp32_modules:
            if not name or name not in names:
                raise ValueError(f"fp32_modules: {type(network).__name__} has no submodule {name!r}.")
        self.network = network
        self.fp32_modules = fp32_modules
        self.precision = precision
        self.channels_last = channels_last
        self.fuse = bool(fuse)
        self.backend = backend
        self.min_dice = float(min_dice)
        self.threshold = float(threshold)
        self.check_batches = check_batches
        self._checked = 0
        self.selected_precision: str | None = None
        self.agreement: float | None = None
        # the prepared copy and its runners; a plain dict so that nn.Module does not register (or save) them
        self._cache: dict[str, Any] = {}

    # --- the wrapped network's weights are the wrapper's weights ------------------------------------------------
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return self.network.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        self.reset()
        return self.network.load_state_dict(state_dict, strict=strict, assign=assign)

    def _apply(self, fn: Callable, recurse: bool = True) -> FastInferenceNetwork:  # .to(), .cuda(), .float(), ...
        self.reset()
        return super()._apply(fn, recurse)

    def reset(self) -> None:
        """Discard the inference copy (rebuilt at the next eval forward), e.g. after changing the weights."""
        self._cache = {}
        self._checked = 0
        self.selected_precision = None
        self.agreement = None

    # --- preparation ------------------------------------------------------------------------------------------
    def _device(self, x: torch.Tensor) -> torch.device:
        p = next(self.network.parameters(), None)
        return p.device if p is not None else x.device

    def _use_channels_last(self, x: torch.Tensor) -> bool:
        if self.channels_last is not None:
            return bool(self.channels_last) and x.ndim == 4
        # measured (bundle/docs/benchmark.md): channels-last speeds up the batch-norm networks (R2MF-Net 1.6x) but
        # slows those with instance normalisation (DynUNet, SwinUNETR), whose CPU kernels prefer NCHW
        instance_norm = any(isinstance(m, nn.modules.instancenorm._InstanceNorm) for m in self.network.modules())
        return x.ndim == 4 and self._device(x).type in ("cpu", "cuda") and not instance_norm

    def _prepared_module(self, channels_last: bool) -> nn.Module:
        net = _structural_copy(self.network).eval()
        if self.fuse and hasattr(net, "fuse_for_inference"):
            net = net.fuse_for_inference()
            # every activation of R2MF-Net's blocks reads a temporary (a convolution's or a sum's output) that nothing
            # else reads, so it may overwrite it: one large allocation (and its page faults) less per activation; the
            # same holds for the batch normalisations that mix each image's statistics (they read a convolution's
            # output), whose folding the image's statistics prevent
            for m in net.modules():
                if isinstance(m, (nn.LeakyReLU, nn.ReLU, ImageStatisticsBatchNorm)):
                    m.inplace = True
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        return net

    def _runner(self, net: nn.Module, x: torch.Tensor, bf16: bool) -> Callable[[torch.Tensor], torch.Tensor]:
        device_type = self._device(x).type
        if self.backend == "torchscript":
            with torch.no_grad():
                try:
                    scripted = torch.jit.script(net)
                except Exception as e:  # networks that TorchScript cannot compile are traced instead
                    logger.info("torch.jit.script failed (%s); tracing instead", str(e).splitlines()[0])
                    scripted = torch.jit.trace(net, x, check_trace=False)
                frozen = torch.jit.optimize_for_inference(torch.jit.freeze(scripted.eval()))
            return frozen
        if bf16 and self.fp32_modules:
            net = _with_float32_islands(net, self.fp32_modules)
        fn: Callable[[torch.Tensor], torch.Tensor] = net
        if self.backend == "compile":
            # Inductor with frozen weights: constant-folds and pre-packs the weights and fuses each convolution with
            # the activation or sum after it (oneDNN post-ops) on CPU
            options = {"freezing": True} if device_type == "cpu" else None
            fn = torch.compile(net, dynamic=False, options=options)
        if not bf16:
            return fn

        def autocast_forward(t: torch.Tensor) -> torch.Tensor:
            with torch.autocast(device_type, dtype=torch.bfloat16):
                return fn(t)

        return autocast_forward

    def _module_for(self, x: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
        """The prepared copy (built at the first call) and ``x`` in its memory format."""
        if "module" not in self._cache:
            self._cache["channels_last"] = self._use_channels_last(x)
            self._cache["module"] = self._prepared_module(self._cache["channels_last"])
        if self._cache["channels_last"]:
            x = x.contiguous(memory_format=torch.channels_last)
        return self._cache["module"], x

    def _run(self, key: str, x: torch.Tensor) -> torch.Tensor:
        module, x = self._module_for(x)
        if key not in self._cache:
            self._cache[key] = self._runner(module, x, bf16=key == "bf16")
        out = self._cache[key](x)
        return out.float().contiguous()

    def _select(self, x: torch.Tensor) -> torch.Tensor:
        """Run a batch while the precision is not chosen yet; choose it when the evidence is in."""
        if self.precision == "fp32" or (self.precision == "auto" and self.backend == "torchscript"):
            self.selected_precision = "fp32"
            return self._run("fp32", x)
        if self.precision == "bf16":
            self.selected_precision = "bf16"
            return self._run("bf16", x)
        device = self._device(x)
        if not native_bf16(device):
            logger.info("precision 'auto': %s has no native bfloat16, using float32", device)
            self.selected_precision = "fp32"
            return self._run("fp32", x)
        ref = self._run("fp32", x)
        dice = mask_agreement(ref, self._run("bf16", x), self.threshold)
        self.agreement = dice if self.agreement is None else min(self.agreement, dice)
        self._checked += 1
        if self.agreement < self.min_dice:
            self.selected_precision = "fp32"
        elif self._checked >= self.check_batches:
            self.selected_precision = "bf16"
        if self.selected_precision is not None:
            # either outcome is the designed behaviour, not a problem: INFO, so the choice is in every run's log
            logger.info(
                "precision 'auto': bfloat16 masks agree with float32 with Dice >= %.4f on %d batch(es) (needed %.4f): "
                "using %s",
                self.agreement,
                self._checked,
                self.min_dice,
                "bfloat16" if self.selected_precision == "bf16" else "float32",
            )
        return ref

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: the input batch, as the wrapped network takes it (a MetaTensor is fine).

        Returns:
            in training mode (or with any dropout layer of the wrapped network in training mode, as Monte-Carlo
            dropout sets it) the wrapped network's output; in eval mode its float32 logits, computed by the
            prepared copy (a MetaTensor carrying ``x``'s metadata when ``x`` is one).
        """
        if self.training or any(m.training for m in self.network.modules() if isinstance(m, _DROPOUT)):
            # training, or Monte-Carlo dropout (e.g. the review flag's): the prepared copy has no live dropout
            return self.network(x)
        plain = _plain(x)
        with torch.no_grad():
            out = self._select(plain) if self.selected_precision is None else self._run(self.selected_precision, plain)
        return _like_input(out, x)

    def forward_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both stages of a cascade network in one pass: ``(fine, coarse)`` logits, the fine ones those
        :meth:`forward` gives (same prepared copy, same precision), each a MetaTensor carrying ``x``'s metadata when
        ``x`` is one.

        With the ``"torchscript"`` or ``"compile"`` backend the stages run on the prepared eager copy (the compiled
        graph returns the fine logits only), so they may differ from :meth:`forward`'s by rounding. Under
        ``"auto"`` precision, while the choice is still being checked, a call also runs that check's passes.

        Args:
            x: the input batch, as :meth:`forward` takes it.

        Raises:
            AttributeError: when the wrapped network has no ``forward_stages`` (not a cascade).
        """
        if not callable(getattr(self.network, "forward_stages", None)):
            raise AttributeError(f"{type(self.network).__name__} has no forward_stages: it is not a cascade network")
        if self.training or any(m.training for m in self.network.modules() if isinstance(m, _DROPOUT)):
            return self.network.forward_stages(x)
        plain = _plain(x)
        with torch.no_grad():
            if self.selected_precision is None:
                if self.precision == "auto" and self.backend != "torchscript":
                    self._select(plain)  # the check runs as forward would run it; its output is not needed here
                else:
                    self.selected_precision = "bf16" if self.precision == "bf16" else "fp32"
            fine, coarse = self._run_stages(self.selected_precision or "fp32", plain)
        return _like_input(fine, x), _like_input(coarse, x)

    def _run_stages(self, precision: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_run` for ``forward_stages``: the prepared eager copy (float32 islands under bfloat16)."""
        net, x = self._module_for(x)
        if precision != "bf16":
            fine, coarse = net.forward_stages(x)
        else:
            if "stages_bf16" not in self._cache:
                self._cache["stages_bf16"] = _with_float32_islands(net, self.fp32_modules) if self.fp32_modules else net
            with torch.autocast(self._device(x).type, dtype=torch.bfloat16):
                fine, coarse = self._cache["stages_bf16"].forward_stages(x)
        return fine.float().contiguous(), coarse.float().contiguous()

    def extra_repr(self) -> str:
        return (
            f"precision={self.precision!r}, channels_last={self.channels_last}, fuse={self.fuse}, "
            f"backend={self.backend!r}, fp32_modules={self.fp32_modules}, "
            f"selected_precision={self.selected_precision!r}"
        )


def prepare_for_inference(network: nn.Module, **options: Any) -> nn.Module:
    """Wrap ``network`` for fast inference, ready to infer (in eval mode); use the result as the bundle's ``network``.

    A network without parameters (e.g. :class:`r2mf_monai.inference.onnx_backend.OnnxRuntimeNetwork`, whose weights
    live in another runtime) has nothing to prepare and is returned unchanged, so the same config serves both backends.

    Example (the bundle's ``inference.json``)::

        "network": "$r2mf_monai.inference.fast_inference.prepare_for_inference(@network_def.to(@device),
                     precision=@precision, channels_last=@channels_last)"

    Args:
        network: the network (weights may be loaded afterwards, e.g. by ``CheckpointLoader``).
        options: the keyword arguments of :class:`FastInferenceNetwork` (``precision``, ``channels_last``, ``fuse``,
            ``backend``, ``min_dice``, ``threshold``, ``check_batches``, ``fp32_modules``), with its defaults:
            ``"auto"`` precision, the memory format chosen by the network's normalisation, batch norm folded, eager
            PyTorch, and the float32 modules the network names itself.

    Returns:
        a :class:`FastInferenceNetwork` in eval mode (``.train()`` on it runs the wrapped network unprepared), or
        ``network`` itself when it has no parameters.

    Raises:
        ValueError: for a bad argument (the message names it).
        TypeError: for an unknown option.
    """
    if isinstance(network, nn.Module) and next(network.parameters(), None) is None:
        logger.info("%s has no parameters (another runtime runs it): used as it is", type(network).__name__)
        return network
    return FastInferenceNetwork(network, **options).eval()
