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

Overrides are plain values. MONAI's config parser evaluates a string that starts with ``$`` as Python, resolves
one that is ``@id`` as a reference and one that starts with ``%`` as a macro (which may read another config file),
and instantiates any dict with a ``_target_``: a command-line value that reached it as such a string would run
code. So the caller's values are typed first (a :class:`torch.device`, a checked list of formats; MONAI's parser
keeps a non-string object as it is) and :func:`check_overrides` refuses every value the parser would not take
literally.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["check_overrides", "inference_overrides", "output_formats", "parse_device", "run_inference_workflow"]

logger = logging.getLogger(__name__)

# what MONAI's ConfigParser does not take literally in a string: a leading "$" (expression), "@" (reference) or
# "%" (macro), a relative id ("@#", "%#") anywhere, and "::", which it rewrites to "#" anywhere
_NOT_LITERAL = re.compile(r"^[$@%]|[@%]#|::")


def _refuse(option: str, value: Any) -> ValueError:
    return ValueError(
        f"{option}: {value!r} would be evaluated by MONAI's config parser (it starts with '$', '@' or '%', or holds "
        "'::', '@#' or '%#'); give a plain value"
    )


def _check_plain(option: str, value: Any, network: bool = False) -> None:
    """Raise when ``value`` (or anything nested in it) is not taken literally by MONAI's config parser.

    With ``network``, a dict may name a ``_target_`` that is a :class:`torch.nn.Module` subclass (a ``network_def``).
    """
    if isinstance(value, str):
        if _NOT_LITERAL.search(value):
            raise _refuse(option, value)
    elif isinstance(value, Mapping):
        if "_target_" in value:
            if not network:
                raise ValueError(f"{option}: a '_target_' (an object to build) is not accepted here")
            _check_network_target(option, value["_target_"])
        for key, item in value.items():
            if key == "_target_":
                continue
            _check_plain(f"{option}#{key}", str(key))  # a key such as "$x" is a value to the parser too
            _check_plain(f"{option}#{key}", item)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(f"{option}#{i}", item)


def _check_network_target(option: str, target: Any) -> None:
    """A ``network_def``'s ``_target_`` must name a :class:`torch.nn.Module` class, not any callable."""
    import torch
    from monai.utils import optional_import

    if not isinstance(target, str) or _NOT_LITERAL.search(target) or target.count(".") == 0:
        raise ValueError(
            f"{option}#_target_: {target!r} must name a network class such as 'r2mf_monai.networks.R2MFNet'"
        )
    module, _, name = target.rpartition(".")
    found, ok = optional_import(module, name=name)
    if not ok or not (isinstance(found, type) and issubclass(found, torch.nn.Module)):
        raise ValueError(f"{option}#_target_: {target!r} is not a network class (a torch.nn.Module subclass)")


def check_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` when MONAI's config parser takes every value literally; a ``network_def`` (or a key under it)
    may build a :class:`torch.nn.Module` class.

    Args:
        overrides: bundle keys (``"a#b"`` for nested ones) and their values.

    Raises:
        ValueError: naming the key and the value that the parser would evaluate, resolve or build.
    """
    for key, value in overrides.items():
        _check_plain(str(key), str(key))
        _check_plain(str(key), value, network=str(key).split("#")[0] == "network_def")
    return dict(overrides)


def parse_device(device: Any, option: str = "--device") -> Any:
    """``device`` as a :class:`torch.device` (``cpu``, ``cuda``, ``cuda:N``, ...), checked to exist here.

    Raises:
        ValueError: naming ``option`` when ``device`` is not a device name or names a CUDA device this machine
            does not have.
    """
    import torch

    try:
        dev = device if isinstance(device, torch.device) else torch.device(str(device))
    except (RuntimeError, ValueError) as e:
        raise ValueError(f"{option}: {device!r} is not a device ({str(e).splitlines()[0]})") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if dev.index is None and count == 0 or dev.index is not None and dev.index >= count:
            raise ValueError(f"{option}: {device!r} is not available here ({count} CUDA device(s))")
    return dev


def output_formats(formats: Any, option: str = "--formats") -> list[str]:
    """The mask formats of one run, each one of :data:`r2mf_monai.outputs.save_segmentation.SUPPORTED_FORMATS`.

    Args:
        formats: a comma-separated string or a sequence of names.
        option: the caller's option, for the message.

    Raises:
        ValueError: naming ``option`` and the formats that are not supported.
    """
    from r2mf_monai.outputs.save_segmentation import SUPPORTED_FORMATS

    items = (
        formats.split(",") if isinstance(formats, str) else formats if isinstance(formats, (list, tuple)) else [formats]
    )
    given = [str(f).strip() for f in items if str(f).strip()]
    names = [f.lower() for f in given]
    unknown = [f for f in given if f.lower() not in SUPPORTED_FORMATS]
    if unknown or not names:
        what = f"unknown format(s) {', '.join(map(repr, unknown))}" if unknown else "no format given"
        raise ValueError(f"{option}: {what}; choose among {', '.join(SUPPORTED_FORMATS)}")
    return list(dict.fromkeys(names))


def inference_overrides(
    bundle_root: str | os.PathLike, model: str | os.PathLike | None = None, device: Any = None, **keys: Any
) -> dict[str, Any]:
    """The overrides of ``inference.json`` for one run: the bundle folder, the caller's ``keys``, the weights and
    the device, each a plain value (see :func:`check_overrides`).

    Args:
        bundle_root: the bundle folder.
        model: the weights (``ckpt_path``); defaults to the config's (``BUNDLE/models/model.pt``).
        device: ``cpu``, ``cuda`` or ``cuda:N`` (or a :class:`torch.device`); defaults to the config's.
        keys: any other bundle keys (``dataset_dir``, ``output_dir``, ``output_formats``, ...).

    Raises:
        FileNotFoundError: ``model`` is not a file (named as the ``--model`` option).
        ValueError: a device that is not one, or a value MONAI's parser would not take literally (named).
    """
    overrides: dict[str, Any] = {"bundle_root": os.path.abspath(bundle_root), **keys}
    if model is not None:
        if not os.path.isfile(model):
            raise FileNotFoundError(f"--model '{model}' does not exist")
        overrides["ckpt_path"] = os.path.abspath(model)
    if device is not None:
        overrides["device"] = parse_device(device)
    return check_overrides(overrides)


def bundle_version(bundle_root: str | os.PathLike) -> str:
    """The ``version`` in ``BUNDLE/configs/metadata.json`` (``"unknown"`` when it has none)."""
    try:
        with open(os.path.join(bundle_root, "configs", "metadata.json"), encoding="utf-8") as f:
            return str(json.load(f).get("version", "unknown"))
    except (OSError, ValueError):
        return "unknown"


def run_inference_workflow(bundle_root: str | os.PathLike, overrides: Mapping[str, Any]) -> None:
    """Build the bundle's inference :class:`~monai.bundle.ConfigWorkflow` with ``overrides``, run and finalise it.

    Args:
        bundle_root: the bundle folder (``configs/inference.json``, ``metadata.json`` and ``logging.conf``).
        overrides: bundle keys to override (see :func:`inference_overrides`); checked by :func:`check_overrides`.

    Raises:
        FileNotFoundError: a checkpoint without its ``model.json`` (or another missing file), as itself.
        ValueError: an override that is not a plain value; a user error (an empty input folder, weights that do not
            fit the network: :class:`~r2mf_monai.checkpoint.CheckpointMismatchError`) as itself, not wrapped in
            MONAI's config errors.
    """
    from monai.bundle import ConfigParser, ConfigWorkflow

    from r2mf_monai.utils import ensure_bool, quiet_library_logs, user_error_in

    overrides = check_overrides(overrides)
    root = os.path.abspath(bundle_root)
    configs = os.path.join(root, "configs")
    # a key the config does not have would be added and silently ignored (or fail deep inside): name it now
    known = ConfigParser(ConfigParser.load_config_files(os.path.join(configs, "inference.json")))
    for key in overrides:
        parent = key.rsplit("#", 1)[0] if "#" in key else key
        if parent not in known:
            raise ValueError(f"{key}: no such key in {os.path.join(configs, 'inference.json')}")
        # a command line gives `{"review": false}` as the string "false", which `$not @review` reads as true
        if key in known and isinstance(known[key], bool) and not isinstance(overrides[key], bool):
            overrides[key] = ensure_bool(key, overrides[key])
    workflow = ConfigWorkflow(
        config_file=os.path.join(configs, "inference.json"),
        meta_file=os.path.join(configs, "metadata.json"),
        logging_file=os.path.join(configs, "logging.conf"),
        workflow_type="infer",
        **overrides,
    )
    quiet_library_logs()  # after logging.conf: it sets the levels of the libraries' loggers as well
    logger.info("bundle %s, version %s", root, bundle_version(root))
    try:
        workflow.initialize()
        workflow.run()
    except Exception as e:
        # the user's error that MONAI's config parser wraps (perhaps twice) in RuntimeErrors, not the whole chain
        cause = user_error_in(e)
        if cause is None or cause is e:
            raise
        raise cause from None
    workflow.finalize()
