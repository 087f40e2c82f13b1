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

"""The bundle's inference workflow run from Python: ``configs/inference.json`` with overrides.

This is ``python -m monai.bundle run inference --config_file BUNDLE/configs/inference.json`` with the keys of a
caller (``r2mf-monai infer``, the public benchmark) overridden, built and run through MONAI's
:class:`monai.bundle.ConfigWorkflow`. A checkpoint that cannot be used (no ``model.json`` beside it, or weights
that do not fit the network) comes out as that error, not as the chain of MONAI's config errors around it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["inference_overrides", "run_inference_workflow"]


def inference_overrides(
    bundle_root: str | os.PathLike, model: str | os.PathLike | None = None, device: str | None = None, **keys: Any
) -> dict[str, Any]:
    """The overrides of ``inference.json`` for one run: the bundle folder, the caller's ``keys``, the weights and
    the device.

    Args:
        bundle_root: the bundle folder.
        model: the weights (``ckpt_path``); defaults to the config's (``BUNDLE/models/model.pt``).
        device: ``cpu``, ``cuda`` or ``cuda:N``; defaults to the config's.
        keys: any other bundle keys (``dataset_dir``, ``output_dir``, ``output_formats``, ...).

    Raises:
        FileNotFoundError: ``model`` is not a file (named as the ``--model`` option).
    """
    overrides: dict[str, Any] = {"bundle_root": os.path.abspath(bundle_root), **keys}
    if model is not None:
        if not os.path.isfile(model):
            raise FileNotFoundError(f"--model '{model}' does not exist")
        overrides["ckpt_path"] = os.path.abspath(model)
    if device is not None:
        overrides["device"] = f"$torch.device('{device}')"
    return overrides


def run_inference_workflow(bundle_root: str | os.PathLike, overrides: Mapping[str, Any]) -> None:
    """Build the bundle's inference :class:`~monai.bundle.ConfigWorkflow` with ``overrides``, run and finalise it.

    Args:
        bundle_root: the bundle folder (``configs/inference.json``, ``metadata.json`` and ``logging.conf``).
        overrides: bundle keys to override (see :func:`inference_overrides`).

    Raises:
        FileNotFoundError: a checkpoint without its ``model.json`` (or another missing file), as itself.
        CheckpointMismatchError: weights that do not fit the network, as itself.
    """
    from monai.bundle import ConfigWorkflow

    from r2mf_monai.checkpoint import CheckpointMismatchError

    configs = os.path.join(os.path.abspath(bundle_root), "configs")
    workflow = ConfigWorkflow(
        config_file=os.path.join(configs, "inference.json"),
        meta_file=os.path.join(configs, "metadata.json"),
        logging_file=os.path.join(configs, "logging.conf"),
        workflow_type="infer",
        **overrides,
    )
    try:
        workflow.initialize()
        workflow.run()
    except Exception as e:
        # the error about the checkpoint that MONAI's config parser wraps (perhaps twice), not the whole chain
        cause: BaseException | None = e
        while cause is not None and not isinstance(cause, (CheckpointMismatchError, FileNotFoundError)):
            cause = cause.__cause__
        if cause is None:
            raise
        raise cause from None
    workflow.finalize()
