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

"""A checkpoint that knows its network: ``model.json`` beside ``model.pt``.

``model.pt`` stays a plain state dict, as the model zoo ships it, so ``torch.load`` + ``load_state_dict``, MONAI's
``CheckpointLoader``, ``ckpt_export``, MONAI Label and MONAI Deploy load it unchanged. What built it lies beside it,
in a file of the same name with ``.json``: a MONAI config fragment ``{"network_def": {"_target_": ..., args},
"image_size": N, "r2mf_monai_version": ...}`` (usable as an override file, ``--config_file "[..., 'model.json']"``).
Training writes it (:class:`r2mf_monai.handlers.ModelConfigSaver`); ``inference.json`` and ``evaluate.json`` build the
network with :func:`network_from_checkpoint` and read ``image_size`` with :func:`read_model_config`, so a model
trained at any width and size infers with no overrides. A network and checkpoint that do not fit stop with one line
naming both shapes (:func:`check_checkpoint_fits`) instead of PyTorch's list of every mismatched tensor.
"""

from __future__ import annotations

import collections
import datetime
import importlib
import json
import logging
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

import r2mf_monai
from r2mf_monai.outputs.atomic import atomic_write

__all__ = [
    "CheckpointMismatchError",
    "check_checkpoint_fits",
    "checkpoint_shapes",
    "describe_network",
    "input_clahe",
    "load_weights",
    "log_trained_model",
    "model_config_path",
    "network_from_checkpoint",
    "new_model_path",
    "read_model_config",
    "write_model_config",
]

logger = logging.getLogger(__name__)


class CheckpointMismatchError(ValueError):
    """A checkpoint's tensors do not fit the network it is loaded into (the message is one line)."""


def model_config_path(ckpt_path: str | os.PathLike) -> Path:
    """``models/model.json`` for ``models/model.pt``: the checkpoint's name with ``.json``."""
    return Path(ckpt_path).with_suffix(".json")


def _unwrap(network: torch.nn.Module) -> torch.nn.Module:
    # DistributedDataParallel and the inference wrappers keep the network in ``.module``
    while hasattr(network, "module") and isinstance(network.module, torch.nn.Module):
        network = network.module
    return network


def _public_path(cls: type) -> str:
    """The ``package.Class`` that configs use for ``cls`` (``monai.networks.nets.UNet``, not ``...unet.UNet``)."""
    parts = cls.__module__.split(".")
    # the deepest package that exports it, as MONAI's configs name classes; the defining module last
    for end in [*range(len(parts) - 1, 0, -1), len(parts)]:
        module = importlib.import_module(".".join(parts[:end]))
        if getattr(module, cls.__qualname__, None) is cls:
            return f"{module.__name__}.{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def describe_network(network: torch.nn.Module) -> dict[str, Any]:
    """The ``network_def`` that rebuilds ``network``: ``{"_target_": "module.Class", **arguments}``.

    The arguments are the network's ``init_args`` (R2MF-Net records its own). A network without them (MONAI's
    baselines) is described by its class alone, and :func:`network_from_checkpoint` asks for its arguments.
    """
    network = _unwrap(network)
    args = getattr(network, "init_args", None)
    described = {"_target_": _public_path(type(network))}
    if isinstance(args, dict):
        described.update(json.loads(json.dumps(args)))  # tuples become lists, as in a JSON config
    return described


def write_model_config(
    ckpt_path: str | os.PathLike,
    network: torch.nn.Module,
    image_size: int,
    clahe_clip_limit: float | None = None,
    clahe_tiles: int = 8,
) -> Path:
    """Write ``<ckpt>.json`` atomically; return its path. It holds the network's ``network_def``, ``image_size`` and
    the fixed CLAHE of the input (``clahe_clip_limit``, ``None`` for none, and ``clahe_tiles``;
    :class:`r2mf_monai.transforms.CLAHEd`), which inference must repeat."""
    path = model_config_path(ckpt_path)
    content = {
        "network_def": describe_network(network),
        "image_size": int(image_size),
        "clahe_clip_limit": None if clahe_clip_limit is None else float(clahe_clip_limit),
        "clahe_tiles": int(clahe_tiles),
        "r2mf_monai_version": r2mf_monai.__version__,
    }
    text = json.dumps(content, indent=4) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return path
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    logger.debug("network of %s written to %s", ckpt_path, path)
    return path


def read_model_config(ckpt_path: str | os.PathLike) -> dict[str, Any]:
    """The ``model.json`` beside a checkpoint: ``{"network_def": {...}, "image_size": N, ...}``.

    Raises:
        FileNotFoundError: when there is none (names both files and what to do).
        ValueError: when it is not such a JSON object (names the file).
    """
    path = model_config_path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"'{path}' does not exist: nothing says which network built '{ckpt_path}'. Write it "
            '({"network_def": {"_target_": ..., ...}, "image_size": N}), or give --network_def and --image_size.'
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"'{path}' is not valid JSON: {e}") from e
    if not (isinstance(config, dict) and isinstance(config.get("network_def"), dict)):
        raise ValueError(f"'{path}' has no 'network_def' object")
    if "_target_" not in config["network_def"]:
        raise ValueError(f"'{path}': 'network_def' has no '_target_'")
    if not isinstance(config.get("image_size"), int) or config["image_size"] <= 0:
        raise ValueError(f"'{path}': 'image_size' must be a positive integer, got {config.get('image_size')!r}")
    clip = config.setdefault("clahe_clip_limit", None)  # weights of bundle 0.4.0 and before: no CLAHE
    if clip is not None and not (isinstance(clip, (int, float)) and 0 < clip <= 1):
        raise ValueError(f"'{path}': 'clahe_clip_limit' must be null or in (0, 1], got {clip!r}")
    tiles = config.setdefault("clahe_tiles", 8)
    if not isinstance(tiles, int) or isinstance(tiles, bool) or tiles < 1:
        raise ValueError(f"'{path}': 'clahe_tiles' must be a positive integer, got {tiles!r}")
    return config


def input_clahe(init_ckpt: str | os.PathLike | None) -> tuple[float | None, int]:
    """The input CLAHE (``clahe_clip_limit``, ``clahe_tiles``) that training from ``init_ckpt`` must keep: the one its
    ``model.json`` records, ``(None, 8)`` (none) when there is no ``init_ckpt`` or no ``model.json`` beside it.

    Fine-tuning weights that saw CLAHE'd inputs on plain ones (or the reverse) would silently start from a network
    that no longer fits its inputs; ``train.json`` takes its defaults from here.

    Raises:
        ValueError: a ``model.json`` that is not valid (see :func:`read_model_config`).
    """
    if not init_ckpt or not model_config_path(init_ckpt).is_file():
        return None, 8
    config = read_model_config(init_ckpt)
    return config["clahe_clip_limit"], config["clahe_tiles"]


def load_weights(ckpt_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The network weights of ``ckpt_path``: the state dict itself, or the ``"model"`` entry of a MONAI
    ``CheckpointSaver`` dict (loaded on the CPU, tensors only).

    Raises:
        ValueError: when the file holds no state dict.
    """
    state = torch.load(str(ckpt_path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):  # a CheckpointSaver dict
        state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"'{ckpt_path}' holds no state dict")
    return state


def _tensor_shape(storage: Any, offset: int, size: tuple[int, ...], *args: Any) -> tuple[int, ...]:
    """Stands in for ``torch._utils._rebuild_tensor_v2``: the tensor's shape, no storage read."""
    return tuple(size)


def _parameter_shape(data: Any, *args: Any) -> Any:
    """Stands in for ``torch._utils._rebuild_parameter``: the wrapped tensor's stand-in."""
    return data


class _ShapeUnpickler(pickle.Unpickler):
    """Reads the pickle of a ``torch.save`` zip archive with each tensor replaced by its shape.

    Only the globals a state dict needs are resolved, to harmless stand-ins; any other raises ``UnpicklingError``, so
    nothing from the file runs (as ``torch.load(weights_only=True)``, whose unpickler is written in Python and takes
    0.1-0.2 s for R2MF-Net's 788 tensors on this CPU, while this C unpickler takes under 10 ms).
    """

    _GLOBALS: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _tensor_shape,
        ("torch._utils", "_rebuild_parameter"): _parameter_shape,
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._GLOBALS:
            return self._GLOBALS[module, name]
        if module == "torch" and name.endswith("Storage"):  # a storage type only names the dtype
            return name
        raise pickle.UnpicklingError(f"{module}.{name} is not read for shapes")

    def persistent_load(self, pid: Any) -> None:
        return None  # a tensor's storage: never read


def checkpoint_shapes(ckpt_path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor of ``ckpt_path``'s state dict (or of its ``"model"`` entry), read without
    loading the tensors where the file is a ``torch.save`` zip archive of plain tensors; any other file is loaded with
    :func:`load_weights`.

    Raises:
        ValueError: when the file holds no state dict.
    """
    state: Any = None
    try:
        with zipfile.ZipFile(ckpt_path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) == 1:
                with archive.open(pickles[0]) as f:
                    state = _ShapeUnpickler(f).load()
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, OSError, TypeError, ValueError, AttributeError):
        state = None  # not a plain zip state dict: torch's own loader decides (and names what is wrong)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):  # a CheckpointSaver dict
        state = state["model"]
    if isinstance(state, dict) and state and all(isinstance(v, tuple) for v in state.values()):
        return {str(k): v for k, v in state.items()}
    return {key: tuple(tensor.shape) for key, tensor in load_weights(ckpt_path).items()}


def check_checkpoint_fits(network: torch.nn.Module, ckpt_path: str | os.PathLike, hint: str = "") -> None:
    """Raise one line when the checkpoint's tensors do not fit ``network`` (names, shapes), else nothing.

    Args:
        network: the network the weights are meant for.
        ckpt_path: a state dict, or a dict with a ``"model"`` state dict (MONAI's ``CheckpointSaver``).
        hint: appended to the message (what to do).

    Raises:
        FileNotFoundError: when the checkpoint does not exist.
        CheckpointMismatchError: at the first differing tensor, with both shapes and how many more differ.
    """
    if not os.path.isfile(ckpt_path):
        raise FileNotFoundError(f"checkpoint '{ckpt_path}' does not exist")
    saved = checkpoint_shapes(ckpt_path)
    wanted = _unwrap(network).state_dict()
    problems = []
    for key, tensor in wanted.items():
        if key not in saved:
            problems.append(f"{key} {tuple(tensor.shape)} is in the network but not in the checkpoint")
        elif saved[key] != tuple(tensor.shape):
            problems.append(f"{key} is {saved[key]} in the checkpoint but {tuple(tensor.shape)} in the network")
    problems += [f"{key} {saved[key]} is in the checkpoint only" for key in saved if key not in wanted]
    if problems:
        more = f" (and {len(problems) - 1} more tensors differ)" if len(problems) > 1 else ""
        raise CheckpointMismatchError(
            f"'{ckpt_path}' does not fit {type(_unwrap(network)).__name__}: {problems[0]}{more}{hint}"
        )


def network_from_checkpoint(
    ckpt_path: str | os.PathLike, *, image_statistics_weight: float = 0.0, **overrides: Any
) -> torch.nn.Module:
    """The network that ``ckpt_path`` was trained with, built from its ``model.json``; checked against the weights.

    The bundle's ``inference.json`` and ``evaluate.json`` use it as ``network_def``
    (``{"_target_": "r2mf_monai.checkpoint.network_from_checkpoint", "ckpt_path": "@ckpt_path"}``), so overrides
    such as ``--network_def#dropout 0`` still apply: they replace the recorded arguments of the same name.

    Args:
        ckpt_path: the weights, with their ``model.json`` beside them.
        image_statistics_weight: weight of each image's own feature statistics in the network's batch normalisation
            at inference (:func:`r2mf_monai.inference.image_statistics.use_image_statistics`); ``0`` (the default)
            keeps the running statistics of training alone.
        overrides: constructor arguments that replace the recorded ones.

    Raises:
        FileNotFoundError: when the checkpoint or its ``model.json`` does not exist.
        ValueError: when ``model.json`` records the class only (give the arguments, e.g. the baseline override file),
            or ``image_statistics_weight`` is not in [0, 1].
        CheckpointMismatchError: when the built network does not fit the weights (one line, both shapes).
    """
    from monai.bundle import ConfigParser

    from r2mf_monai.inference.image_statistics import checked_image_weight, use_image_statistics

    # the config key's name in the message, before anything is built
    weight = checked_image_weight(image_statistics_weight, name="image_statistics_weight")
    if not os.path.isfile(ckpt_path):
        raise FileNotFoundError(f"checkpoint '{ckpt_path}' does not exist")
    config = read_model_config(ckpt_path)
    network_def = {**config["network_def"], **overrides}
    try:
        network = ConfigParser({"network_def": network_def}).get_parsed_content("network_def")
    except Exception as e:  # MONAI wraps the constructor's error; one line naming the file is what a user needs
        cause = e.__cause__ or e
        raise ValueError(
            f"could not build {network_def['_target_']} from '{model_config_path(ckpt_path)}': "
            f"{type(cause).__name__}: {cause}; give the network's arguments (network_def)."
        ) from e
    if overrides:
        hint = f"; drop the overrides {sorted(overrides)} to build it as '{model_config_path(ckpt_path).name}' says"
    else:
        hint = f"; '{model_config_path(ckpt_path).name}' does not describe this checkpoint"
    check_checkpoint_fits(network, ckpt_path, hint=hint)
    return use_image_statistics(network, weight)


def new_model_path(ckpt_dir: str | os.PathLike, overwrite: bool = False, name: str = "model.pt") -> str:
    """Where training puts its best model: ``ckpt_dir/model.pt`` when there is none yet or ``overwrite``, else
    ``ckpt_dir/model_<YYYYmmdd-HHMMSS>.pt`` beside it, so shipped or earlier weights are never replaced silently."""
    ckpt_dir = Path(ckpt_dir)
    default = ckpt_dir / name
    if overwrite or not default.exists():
        if default.exists():
            logger.warning("overwrite: this run replaces %s (and %s)", default, model_config_path(default).name)
        return str(default)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    stem, suffix = os.path.splitext(name)
    path = ckpt_dir / f"{stem}_{stamp}{suffix}"
    count = 1
    while path.exists():
        count += 1
        path = ckpt_dir / f"{stem}_{stamp}-{count}{suffix}"
    logger.info("%s exists and is kept; this run's best model goes to %s (--overwrite true replaces it)", default, path)
    return str(path)


def log_trained_model(model_file: str | os.PathLike, bundle_root: str | os.PathLike, evaluator: Any = None) -> None:
    """Log where training put its best model and the command that infers with it (the end of ``train.json``)."""
    from r2mf_monai.bundle_paths import default_bundle_root

    path, root = Path(model_file).resolve(), Path(bundle_root).resolve()
    if not path.is_file():
        logger.warning("no model was saved to %s (no validation ran, or none improved on the first)", path)
        return
    state = getattr(evaluator, "state", None)
    best = ""
    if state is not None and getattr(state, "best_metric_epoch", -1) >= 0:
        best = f" ({state.key_metric_name} {state.best_metric:.4f} at epoch {state.best_metric_epoch})"
    logger.info("best model: %s%s; what built it: %s", path, best, model_config_path(path))
    options = "" if root == Path(default_bundle_root()) else f" --bundle_dir {root}"
    options += "" if path == root / "models" / "model.pt" else f" --model {path}"
    logger.info("infer with it: r2mf-monai infer INPUT_DIR OUTPUT_DIR%s", options)
