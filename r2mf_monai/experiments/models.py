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

"""The one list of models the experiments compare: R2MF-Net, its ablation ladder (paper Table 2) and the baselines
(Table 3), each as the bundle builds it.

A model is ``train.json``'s ``network_def``, merged with its override file in ``bundle/configs/baselines`` (if any)
and its own config overrides (the ablation rows switch R2MF-Net's blocks off). The benchmark
(:mod:`r2mf_monai.experiments.benchmark`), the paper reproduction (:mod:`r2mf_monai.experiments.reproduction`) and
the complexity table read it from here.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from r2mf_monai.bundle_paths import find_bundle
from r2mf_monai.utils import ensure_option

__all__ = [
    "ABLATION",
    "BASELINES",
    "FULL_ABLATION_LABEL",
    "MODELS",
    "ModelSpec",
    "build_network",
    "config_files",
    "missing_package",
]

_R2MF_SMOKE = {"network_def#channels": [4, 8, 16, 32]}
_UNET_SMOKE = {"network_def#channels": [4, 8, 16, 32, 64]}


@dataclass(frozen=True)
class ModelSpec:
    """One model of the experiments.

    Args:
        label: its name in the tables.
        table: where the reproduction lists it: ``"main"`` (R2MF-Net), ``"ablation"`` (Table 2) or ``"baseline"``
            (Table 3).
        override: its file in ``bundle/configs/baselines``; ``None`` for ``train.json``'s R2MF-Net.
        config: config overrides on top (``{"network_def#use_scse": False}``).
        smoke: config overrides that make it a few thousand parameters wide, for smoke runs.
        paper_iou: the paper's IoU (%) per view (coronal, left-bending, right-bending), where it reports one.
        package: a package it needs beyond the core install, if any.
    """

    label: str
    table: str
    override: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    smoke: Mapping[str, Any] = field(default_factory=dict)
    paper_iou: tuple[float, float, float] | None = None
    package: str | None = None


_OFF = {"network_def#use_mcskip": False, "network_def#use_scse": False}
MODELS: dict[str, ModelSpec] = {
    "r2mfnet": ModelSpec("R2MF-Net (full)", "main", smoke=_R2MF_SMOKE, paper_iou=(93.25, 94.52, 94.01)),
    "two_stage_unet": ModelSpec(
        "Baseline 2-stage U-Net", "ablation", "two_stage_unet.json", smoke=_R2MF_SMOKE, paper_iou=(89.21, 90.45, 89.73)
    ),
    "ablation_r2jump": ModelSpec(
        "+ R2-Jump",
        "ablation",
        config={"network_def#use_inception": False, **_OFF},
        smoke=_R2MF_SMOKE,
        paper_iou=(91.08, 92.11, 91.67),
    ),
    "ablation_inception": ModelSpec(
        "+ Inception-R", "ablation", config=_OFF, smoke=_R2MF_SMOKE, paper_iou=(91.52, 92.34, 92.01)
    ),
    "ablation_mcskip": ModelSpec(
        "+ MC-Skip",
        "ablation",
        config={"network_def#use_scse": False},
        smoke=_R2MF_SMOKE,
        paper_iou=(92.03, 92.89, 92.47),
    ),
    "deeplabv3plus": ModelSpec(
        "DeepLabV3+ (smp, ResNet-34)",
        "baseline",
        "deeplabv3plus.json",
        paper_iou=(90.42, 91.35, 90.97),
        package="segmentation_models_pytorch",
    ),
    "attention_unet": ModelSpec(
        "Attention U-Net", "baseline", "attention_unet.json", smoke=_UNET_SMOKE, paper_iou=(89.93, 90.48, 90.25)
    ),
    "resunet": ModelSpec(
        "ResUNet (MONAI UNet, 2 residual units)",
        "baseline",
        "resunet.json",
        smoke=_UNET_SMOKE,
        paper_iou=(89.88, 90.70, 90.11),
    ),
    "unet": ModelSpec("U-Net (MONAI UNet)", "baseline", "unet.json", smoke=_UNET_SMOKE),
    "swin_unetr": ModelSpec(
        "SwinUNETR 2-D (for Swin-UNet)",
        "baseline",
        "swin_unetr.json",
        smoke={"network_def#feature_size": 12},
        paper_iou=(91.34, 92.27, 92.01),
        package="einops",
    ),
    "dynunet": ModelSpec(
        "DynUNet (nnU-Net-style)", "baseline", "dynunet.json", smoke={"network_def#filters": [4, 8, 16, 32, 64, 64]}
    ),
}
"""Model key -> :class:`ModelSpec`. The paper's IoU comes from Table 2 for the ladder and Table 3 for the baselines;
R2MF-Net's is Table 2's "R2MF-Net (full)" = Table 3's row (Table 2 also lists "+ SCSE-Lite" at 92.56/93.34/93.02)."""

ABLATION = ("two_stage_unet", "ablation_r2jump", "ablation_inception", "ablation_mcskip", "r2mfnet")
"""The cumulative ladder of Table 2, in order; its last row is the full R2MF-Net."""

FULL_ABLATION_LABEL = "+ SCSE-Lite (= R2MF-Net, full)"
"""R2MF-Net's label as the last row of the ladder."""

BASELINES = tuple(name for name, spec in MODELS.items() if spec.table == "baseline")
"""The other models of Table 3."""


def missing_package(model: str) -> str | None:
    """Why ``model`` cannot be built in this environment (a package it needs is not installed), or ``None``."""
    package = ensure_option("model", model, MODELS).package
    if package is None or importlib.util.find_spec(package) is not None:
        return None
    return f"{package} is not installed (see bundle/docs/baselines.md)"


def config_files(model: str, bundle_root: str | os.PathLike | None = None) -> list[str]:
    """``train.json`` and the model's override file: the ``--config_file`` list that trains it.

    Raises:
        ValueError: for an unknown model.
        FileNotFoundError: when the bundle or the override file is missing.
    """
    spec = ensure_option("model", model, MODELS)
    configs = find_bundle(bundle_root) / "configs"
    files = [str(configs / "train.json")]
    if spec.override is not None:
        path = configs / "baselines" / spec.override
        if not path.is_file():
            raise FileNotFoundError(f"baseline override '{path}' does not exist")
        files.append(str(path))
    return files


def build_network(
    model: str, bundle_root: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None
) -> nn.Module:
    """The model's ``network_def`` as the bundle builds it: ``train.json``, its override file, its config.

    Args:
        model: a key of :data:`MODELS`.
        bundle_root: the bundle folder (holding ``configs/``); defaults to the checkout's or the current one.
        overrides: more config overrides such as ``{"network_def#channels": [8, 16, 32, 64]}``.

    Raises:
        ValueError: for an unknown model.
        FileNotFoundError: when the bundle or the override file is missing.
    """
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(config_files(model, bundle_root))
    for key, value in {**MODELS[model].config, **(overrides or {})}.items():
        parser[key] = value
    return parser.get_parsed_content("network_def", instantiate=True)
