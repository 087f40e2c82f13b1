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

"""ONNX Runtime as an inference backend of the bundle, for CPU users without a GPU build of PyTorch.

The exported graph is R2MF-Net in eval mode (paper §3.2: the fine network's logits only, no deep-supervision head),
with one input ``image`` (B, 1, S, S) and one output ``pred`` (B, 1, S, S), the batch dimension dynamic and S the
bundle's ``image_size`` (the inference pipeline always pads to S x S, §4.1). :class:`OnnxRuntimeNetwork` wraps an
ONNX Runtime session as a ``torch.nn.Module``, so the bundle's ``inference.json`` runs it as ``network_def`` through
an override and every other step (loading, resizing, post-processing, writers) stays the same:

.. code-block:: bash

    python -m monai.bundle run inference --config_file bundle/configs/inference.json \\
        --network_def '{"_target_": "r2mf_monai.inference.onnx_backend.OnnxRuntimeNetwork", "path": "model.onnx"}' \\
        --handlers#0#_disabled_ true   # the CheckpointLoader: the weights are inside the .onnx file

or simply ``r2mf-monai infer IN OUT --backend onnxruntime`` (:func:`onnx_overrides` builds those overrides and
exports the ONNX file from ``models/model.pt`` when it is missing).
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from monai.data import MetaTensor
from monai.utils import optional_import

from r2mf_monai.checkpoint import load_weights
from r2mf_monai.outputs.atomic import atomic_write

__all__ = ["BACKENDS", "OnnxRuntimeNetwork", "export_onnx", "onnx_overrides"]

ort, _has_ort = optional_import("onnxruntime")
logger = logging.getLogger(__name__)

BACKENDS = ("pytorch", "onnxruntime")
INPUT_NAME = "image"
OUTPUT_NAME = "pred"
COARSE_NAME = "coarse"
"""The second output of a cascade network's export: the coarse stage's logits (the review flag's ``"cascade"``)."""


class _BothStages(nn.Module):
    """A cascade network's ``forward_stages`` as its forward, so that the export has both outputs."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network.forward_stages(x)


class OnnxRuntimeNetwork(nn.Module):
    """An exported R2MF-Net run by ONNX Runtime behind the ``torch.nn.Module`` interface of the bundle's network.

    ``forward`` takes the same (B, 1, S, S) float tensor as the PyTorch network and returns the logits as a tensor
    on the input's device; a :class:`monai.data.MetaTensor` input gives a MetaTensor output with the input's
    metadata and applied operations, as the PyTorch network's output has, so ``Invertd`` works unchanged. The module
    has no parameters: ``.to(device)``, ``.eval()`` and ``torch.no_grad()`` are no-ops for it.

    A model exported from a cascade network has a second output, ``coarse`` (:func:`export_onnx`); then the module
    also has ``forward_stages(x)``, giving ``(fine, coarse)`` logits from one run, as R2MF-Net's has, for the review
    flag's ``"cascade"`` method.

    Args:
        path: the ``.onnx`` file (input ``image``, output ``pred``, optionally ``coarse``; see :func:`export_onnx`).
        providers: ONNX Runtime execution providers. Defaults to ``["CPUExecutionProvider"]``.
        num_threads: intra-op threads. Defaults to ``torch.get_num_threads()``, so ONNX Runtime uses the cores
            PyTorch would have used.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
        ValueError: when the file is not a readable ONNX model with an input named ``image``.
        ImportError: when onnxruntime is not installed (``pip install 'r2mf-monai[onnx]'``).
    """

    def __init__(self, path: str | os.PathLike, providers: list[str] | None = None, num_threads: int | None = None):
        super().__init__()
        if not _has_ort:
            raise ImportError("the onnxruntime backend needs onnxruntime: pip install 'r2mf-monai[onnx]'")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"ONNX model '{self.path}' does not exist "
                "(export one with r2mf_monai.inference.onnx_backend.export_onnx)"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(num_threads or torch.get_num_threads())
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own exception types for corrupt files
            raise ValueError(f"'{self.path}' is not a readable ONNX model: {e}") from e
        inputs = {i.name: i for i in self.session.get_inputs()}
        if INPUT_NAME not in inputs:
            raise ValueError(f"ONNX model '{self.path}' has no input named '{INPUT_NAME}' (it has {sorted(inputs)})")
        # the static dimensions of the graph (None where dynamic), for a clear error instead of ORT's
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inputs[INPUT_NAME].shape)
        outputs = [o.name for o in self.session.get_outputs()]
        self.output_name = outputs[0]
        self.has_stages = COARSE_NAME in outputs[1:]
        if self.has_stages:
            self.forward_stages = self._forward_stages  # only where the model has the coarse output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, [self.output_name])[0]

    def _forward_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(fine, coarse)`` logits of one run."""
        fine, coarse = self._run(x, [self.output_name, COARSE_NAME])
        return fine, coarse

    def _run(self, x: torch.Tensor, names: list[str]) -> list[torch.Tensor]:
        if x.ndim != len(self.input_shape) or any(
            want is not None and got != want for got, want in zip(x.shape[1:], self.input_shape[1:], strict=True)
        ):
            raise ValueError(
                f"ONNX model '{self.path}' takes input of shape {self.input_shape} (None = any), got {tuple(x.shape)}"
            )
        array = x.detach().cpu().numpy() if not isinstance(x, MetaTensor) else x.as_tensor().detach().cpu().numpy()
        results = []
        for out in self.session.run(names, {INPUT_NAME: np.ascontiguousarray(array, dtype=np.float32)}):
            pred = torch.from_numpy(out).to(x.device)
            if isinstance(x, MetaTensor):
                # what a convolution on a MetaTensor does: the output carries the input's metadata (Invertd needs it)
                pred = MetaTensor(pred, meta=x.meta, applied_operations=x.applied_operations)
                pred.is_batch = x.is_batch
            results.append(pred)
        return results

    def extra_repr(self) -> str:
        return f"path='{self.path}', input_shape={self.input_shape}"


def _embed_external_data(path: Path) -> None:
    """Make ``path`` one self-contained file: weights kept in side files (the exporter's ``<name>.data``, named after
    the temporary file it was given) are read in, saved inside the model, and the side files removed.

    The model is far under protobuf's 2 GB limit (R2MF-Net: tens of MB), so embedding is always possible; a model
    file alone is what ``--backend onnxruntime`` and a copy to another machine need.
    """
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors, uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    sides = {ExternalDataInfo(t).location for t in _get_all_tensors(model) if uses_external_data(t)}
    if not sides:
        return
    onnx.load_external_data_for_model(model, str(path.parent))
    onnx.save_model(model, str(path), save_as_external_data=False)
    for location in sides:
        side = path.parent / location
        if side.resolve().parent == path.parent.resolve():  # only a side file beside the model, never elsewhere
            side.unlink(missing_ok=True)


def export_onnx(
    network: nn.Module,
    output: str | os.PathLike,
    image_size: int,
    checkpoint: str | os.PathLike | None = None,
    verify: bool = True,
    rtol: float = 1e-3,
    atol: float = 1e-4,
) -> Path:
    """Export ``network`` in eval mode to ONNX with ``image``/``pred`` names and a dynamic batch dimension; a cascade
    network (one with ``forward_stages``, as R2MF-Net) gets a second output, ``coarse``, its coarse stage's logits.

    Uses :func:`monai.networks.utils.convert_to_onnx` (PyTorch's exporter; torch >= 2.6 needs ``onnxscript``) and,
    with ``verify``, checks ONNX Runtime's output against PyTorch's on a random input. The file is written to a
    temporary name in the same folder and renamed, with the weights inside it (no ``.data`` side file).

    Args:
        network: the R2MF-Net (e.g. the bundle's ``network_def``).
        output: the ``.onnx`` file to write.
        image_size: side S of the (1, 1, S, S) input the pipeline feeds the network (the bundle's ``image_size``).
        checkpoint: optional ``model.pt`` to load first (a state dict or a dict with a ``"model"`` entry).
        verify: compare ONNX Runtime with PyTorch after export. Defaults to ``True``.
        rtol: relative tolerance of that check. Defaults to ``1e-3``.
        atol: absolute tolerance of that check, in units of the largest output magnitude (at least 1), as the
            integration tests compare ONNX Runtime with PyTorch. Defaults to ``1e-4``.

    Raises:
        FileNotFoundError: when ``checkpoint`` is given and does not exist.
        ValueError: when ``image_size`` is not positive.
    """
    from monai.networks.utils import convert_to_onnx

    if int(image_size) <= 0:
        raise ValueError(f"image_size must be positive, got {image_size}")
    if checkpoint is not None:
        if not os.path.isfile(checkpoint):
            raise FileNotFoundError(f"checkpoint '{checkpoint}' does not exist")
        network.load_state_dict(load_weights(checkpoint))
    network = network.to("cpu").eval()
    output = Path(output)
    example = torch.rand(1, 1, int(image_size), int(image_size))
    if verify:  # the tolerance on the logits' own scale: 1e-4 of logits of 20 is rounding through 130 layers
        with torch.no_grad():
            atol = atol * max(1.0, float(torch.as_tensor(network(example)).abs().max()))
    output_names = [OUTPUT_NAME]
    if callable(getattr(network, "forward_stages", None)):
        network, output_names = _BothStages(network).eval(), [OUTPUT_NAME, COARSE_NAME]
    with atomic_write(output) as tmp:
        convert_to_onnx(
            network,
            inputs=[example],
            input_names=[INPUT_NAME],
            output_names=output_names,
            dynamic_axes={INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in output_names}},
            filename=str(tmp),
            verify=verify,
            use_ort=verify,
            rtol=rtol,
            atol=atol,
            # the weights inside the model: a side file would be named after the temporary file
            **({"external_data": False} if "external_data" in inspect.signature(torch.onnx.export).parameters else {}),
        )
        _embed_external_data(tmp)
    logger.info("exported ONNX model to %s", output)
    return output


def _has_coarse_output(path: Path) -> bool:
    """Whether the ONNX model at ``path`` has the ``coarse`` output (exported from a cascade network since 0.14.0)."""
    import onnx

    try:
        return COARSE_NAME in {o.name for o in onnx.load(str(path), load_external_data=False).graph.output}
    except Exception:  # an unreadable file: OnnxRuntimeNetwork names it when it opens it
        return True


def onnx_overrides(
    config_file: str | os.PathLike,
    bundle_root: str | os.PathLike,
    onnx_path: str | os.PathLike | None = None,
    ckpt_path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Config overrides that make the bundle's ``inference.json`` run on ONNX Runtime.

    ``network_def`` becomes an :class:`OnnxRuntimeNetwork` and the ``CheckpointLoader`` in ``handlers`` is disabled
    (the weights are in the .onnx file). When ``onnx_path`` does not exist it is exported first from the config's
    ``network_def`` and ``ckpt_path`` (``models/model.pt``) at the config's ``image_size``; the default
    ``models/model.onnx`` is also exported again when ``model.pt`` is newer (after retraining).

    Args:
        config_file: the bundle's ``inference.json``.
        bundle_root: the bundle folder (``bundle_root`` of the config).
        onnx_path: the ONNX model. Defaults to the checkpoint's name with ``.onnx`` (``BUNDLE/models/model.onnx``).
        ckpt_path: the checkpoint to export from. Defaults to the config's ``ckpt_path`` (``models/model.pt``).

    Raises:
        FileNotFoundError: when the ONNX file is missing and so is the checkpoint to export it from.
    """
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(config_file))
    parser["bundle_root"] = os.path.abspath(bundle_root)
    if ckpt_path:
        parser["ckpt_path"] = os.path.abspath(ckpt_path)
    ckpt = parser.get_parsed_content("ckpt_path")
    default = not onnx_path
    onnx_path = Path(onnx_path) if onnx_path else Path(ckpt).with_suffix(".onnx")
    # the default model.onnx is derived from model.pt: export it when missing, and again after retraining
    stale = (
        default and onnx_path.is_file() and os.path.isfile(ckpt) and os.path.getmtime(ckpt) > onnx_path.stat().st_mtime
    )
    network = None
    if default and onnx_path.is_file() and not stale and os.path.isfile(ckpt) and not _has_coarse_output(onnx_path):
        # exported before bundle 0.14.0, with the fine logits only: a cascade network's is exported again with both
        network = parser.get_parsed_content("network_def")
        stale = callable(getattr(network, "forward_stages", None))
    if not onnx_path.is_file() or stale:
        if not os.path.isfile(ckpt):
            raise FileNotFoundError(
                f"--onnx_path '{onnx_path}' does not exist, nor does the checkpoint '{ckpt}' to export it from"
            )
        logger.info("exporting %s to %s (%s)", ckpt, onnx_path, "stale" if stale else "no ONNX model yet")
        export_onnx(
            network if network is not None else parser.get_parsed_content("network_def"),
            onnx_path,
            parser.get_parsed_content("image_size"),
            checkpoint=ckpt,
        )
    overrides: dict[str, Any] = {
        "network_def": {"_target_": f"{__name__}.OnnxRuntimeNetwork", "path": str(onnx_path.resolve())}
    }
    for i, handler in enumerate(parser.get("handlers", [])):
        if isinstance(handler, dict) and str(handler.get("_target_", "")).split(".")[-1] == "CheckpointLoader":
            overrides[f"handlers#{i}#_disabled_"] = True
    return overrides
