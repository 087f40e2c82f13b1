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

"""One run, one table: cost and speed of R2MF-Net and its baselines on this machine (paper §4.9, Table 4).

For every model (the bundle's ``train.json`` network, merged with an override of ``bundle/configs/baselines``) and
every inference path (eager float32, channels-last with folded batch norm, bfloat16 autocast, TorchScript,
``torch.compile``, ONNX Runtime, the ``"auto"`` path of :mod:`r2mf_monai.inference.fast_inference`, and CUDA float32
and AMP when a GPU is present) it measures, at ``image_size`` x ``image_size``:

- parameters and MACs (``torch.utils.flop_counter``: convolutions and matrix products; one multiply-add = 2 FLOPs);
- latency of one image: the median of ``repeats`` forward passes after ``warmup`` ones;
- the achieved GFLOP/s as a fraction of the same run's 2048x2048 float32 (and bfloat16) matrix-product rate;
- peak memory: the rise of the process's peak resident set size (``VmHWM``, reset through ``/proc/self/clear_refs``)
  over its resident size before the timed passes, i.e. activations and workspace of a forward pass;
- throughput of a batch of three (one patient's three views);
- agreement with eager float32: the worst per-image Dice of the masks (logit > 0) and the largest logit difference.

Each (model, path) runs in a fresh Python process, so that compilation caches, thread pools and memory peaks of one
measurement do not leak into the next, and a failing path (e.g. an exporter that does not support a network) is
reported in the table instead of stopping the run. Weights are the given checkpoint, or random He-normal weights
whose batch-norm statistics are set on the benchmark's synthetic images (so that activations have a trained
network's scale); the same weights serve every path of a model.

The end-to-end timing runs the bundle's ``inference.json`` (load DICOM, preprocess, infer, post-process, write
masks) on one synthetic patient's three DICOM views, with the network as shipped and with the prepared paths.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from r2mf_monai.bundle_paths import find_bundle
from r2mf_monai.checkpoint import load_weights, model_config_path
from r2mf_monai.constants import VIEWS
from r2mf_monai.experiments.models import MODELS, build_network
from r2mf_monai.networks.complexity import count_complexity
from r2mf_monai.outputs.atomic import write_json, write_text
from r2mf_monai.utils import ensure_int, ensure_option

__all__ = [
    "CPU_PATHS",
    "GPU_PATHS",
    "BENCHMARK_MODELS",
    "markdown_table",
    "matmul_rate",
    "precision_agreement",
    "run_benchmark",
    "run_end_to_end",
    "system_info",
    "timed_calls",
]

logger = logging.getLogger(__name__)

BENCHMARK_MODELS = (
    "r2mfnet",
    "two_stage_unet",
    "unet",
    "resunet",
    "attention_unet",
    "swin_unetr",
    "dynunet",
    "deeplabv3plus",
)
"""The models of :data:`r2mf_monai.experiments.models.MODELS` the benchmark times by default: R2MF-Net, the baseline of
the ablation and the baselines (the other ablation rows cost about what R2MF-Net costs)."""

CPU_PATHS = (
    "eager_fp32",
    "channels_last",
    "bf16",
    "bf16_mixed",
    "torchscript",
    "compile",
    "bf16_compile",
    "onnxruntime",
    "auto",
)
GPU_PATHS = ("cuda_fp32", "cuda_amp")
PATH_LABELS = {
    "eager_fp32": "eager fp32 (NCHW, as trained)",
    "channels_last": "fp32, BN folded, channels-last",
    "bf16": "bf16 autocast, BN folded, channels-last",
    "bf16_mixed": "bf16 autocast, input level fp32, BN folded, channels-last",
    "torchscript": "TorchScript freeze + optimize_for_inference",
    "compile": "torch.compile (Inductor, freezing)",
    "bf16_compile": "bf16 autocast + torch.compile (Inductor, freezing)",
    "onnxruntime": "ONNX Runtime (CPU EP)",
    "auto": "prepare_for_inference(precision='auto')",
    "cuda_fp32": "CUDA fp32, BN folded, channels-last",
    "cuda_amp": "CUDA AMP fp16 autocast",
}
BF16_PATHS = ("bf16", "bf16_mixed", "bf16_compile", "cuda_amp")

PATH_OPTIONS: dict[str, dict[str, Any]] = {
    "channels_last": {"precision": "fp32", "channels_last": True},
    "bf16": {"precision": "bf16", "channels_last": True, "fp32_modules": ()},
    "bf16_mixed": {"precision": "bf16", "channels_last": True, "fp32_modules": None},
    "torchscript": {"precision": "fp32", "backend": "torchscript"},
    "compile": {"precision": "fp32", "channels_last": True, "backend": "compile"},
    "bf16_compile": {"precision": "bf16", "channels_last": True, "backend": "compile", "fp32_modules": ()},
    "auto": {"precision": "auto", "fp32_modules": ()},
    "cuda_fp32": {"precision": "fp32", "channels_last": True},
}
"""The :func:`~r2mf_monai.inference.fast_inference.prepare_for_inference` arguments of each prepared path.
``bf16_mixed`` keeps the submodules the network names with ``float32_modules()`` in float32 (R2MF-Net's
full-resolution input level, where bfloat16 rounds the image itself); models without that method have no
``bf16_mixed`` row."""

SMOKE_MODELS = ("r2mfnet", "unet")
SMOKE_PATHS = ("eager_fp32", "channels_last", "bf16", "bf16_mixed", "torchscript", "onnxruntime", "auto")
AGREEMENT_PATHS = ("channels_last", "bf16", "bf16_mixed", "bf16_compile", "onnxruntime")
"""Paths whose masks :func:`precision_agreement` compares with eager float32 on the trained weights."""


# --- building blocks ------------------------------------------------------------------------------------------------
def matmul_rate(dtype: torch.dtype = torch.float32, size: int = 2048, repeats: int = 7) -> float:
    """GFLOP/s of a ``size`` x ``size`` matrix product on the CPU (median of ``repeats`` after one warm-up)."""
    a = torch.rand(size, size).to(dtype)
    b = torch.rand(size, size).to(dtype)
    times = []
    with torch.no_grad():
        torch.mm(a, b)
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - t0)
    return 2.0 * size**3 / statistics.median(times) / 1e9


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def system_info() -> dict[str, Any]:
    """CPU model and flags of interest, threads, library versions, load average, GPU (if any)."""
    from r2mf_monai.inference.fast_inference import cpu_flags, native_bf16

    info: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": sorted(f for f in cpu_flags() if f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")),
        "native_bf16_cpu": native_bf16("cpu"),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ},
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    for name in ("monai", "onnxruntime", "onnx"):
        try:
            info[name] = __import__(name).__version__
        except Exception:
            info[name] = None
    return info


def _proc_status_mb(key: str) -> float:
    try:
        with open("/proc/self/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return math.nan


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# --- one measurement, in its own process ----------------------------------------------------------------------------
def _calibrate_batch_norm(net: nn.Module, images: torch.Tensor) -> None:
    """Set batch-norm running statistics to the average over ``images`` (one at a time, as training with batch 1)."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    net.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average
        bn.train()
    with torch.no_grad():
        for i in range(images.shape[0]):
            net(images[i : i + 1])
    net.eval()


def _weights(spec: dict[str, Any]) -> nn.Module:
    """The model of ``spec`` with its benchmark weights (made and saved by the first measurement of the model)."""
    torch.manual_seed(int(spec["seed"]))
    net = build_network(spec["model"], spec["bundle_root"], spec.get("overrides"))
    weights = Path(spec["weights_file"])
    if weights.is_file():
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    else:
        if spec.get("checkpoint"):
            net.load_state_dict(load_weights(spec["checkpoint"]))
        else:
            _calibrate_batch_norm(net, torch.load(spec["images_file"], weights_only=True))
        torch.save(net.state_dict(), weights)
    return net.eval()


def _runner(spec: dict[str, Any], net: nn.Module, work: Path) -> tuple[Any, str]:
    """The callable of the path of ``spec`` and the device it runs on."""
    from r2mf_monai.inference.fast_inference import prepare_for_inference

    path = spec["path"]
    if path == "eager_fp32":
        return net, "cpu"
    if path == "cuda_fp32":
        return prepare_for_inference(net.cuda(), **PATH_OPTIONS[path]), "cuda"
    if path in PATH_OPTIONS:
        return prepare_for_inference(net, **PATH_OPTIONS[path]), "cpu"
    if path == "onnxruntime":
        from r2mf_monai.inference.onnx_backend import OnnxRuntimeNetwork, export_onnx

        onnx_file = work / f"{spec['model']}.onnx"
        if not onnx_file.is_file():
            export_onnx(copy.deepcopy(net), onnx_file, int(spec["image_size"]), verify=False)
        return OnnxRuntimeNetwork(onnx_file), "cpu"
    if path == "cuda_amp":
        inner = prepare_for_inference(net.cuda(), **PATH_OPTIONS["cuda_fp32"])

        def amp(x: torch.Tensor) -> torch.Tensor:
            with torch.autocast("cuda", dtype=torch.float16):
                return inner(x)

        return amp, "cuda"
    raise ValueError(f"unknown path {path!r}; choose from {CPU_PATHS + GPU_PATHS}.")


def timed_calls(fn: Any, x: torch.Tensor, device: str, n: int) -> list[float]:
    """Seconds of each of ``n`` calls ``fn(x)`` (synchronised on CUDA, so that a call's time is its own)."""
    times = []
    for _ in range(n):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn(x)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    """Time one (model, path); runs in a child process (see :func:`_child_main`)."""
    from r2mf_monai.inference.fast_inference import mask_agreement

    torch.set_num_threads(int(spec["threads"]))
    work = Path(spec["work_dir"])
    images = torch.load(spec["images_file"], weights_only=True)
    net = _weights(spec)
    t0 = time.perf_counter()
    fn, device = _runner(spec, net, work)
    setup_s = time.perf_counter() - t0
    x1 = images[:1].to(device)
    x3 = images[:3].to(device)
    out: dict[str, Any] = {"model": spec["model"], "path": spec["path"], "device": device}
    with torch.no_grad():
        t0 = time.perf_counter()
        fn(x1)  # builds the prepared copy / compiles / chooses the precision
        if device == "cuda":
            torch.cuda.synchronize()
        out["first_call_s"] = time.perf_counter() - t0 + setup_s
        timed_calls(fn, x1, device, max(int(spec["warmup"]) - 1, 0))
        rss = _proc_status_mb("VmRSS")
        peak_ok = _reset_peak_rss()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            base_gpu = torch.cuda.memory_allocated()
        times = timed_calls(fn, x1, device, int(spec["repeats"]))
        out["peak_extra_mb"] = _proc_status_mb("VmHWM") - rss if peak_ok else math.nan
        if device == "cuda":
            out["gpu_peak_extra_mb"] = (torch.cuda.max_memory_allocated() - base_gpu) / 2**20
        out["latency_s"] = statistics.median(times)
        out["latency_min_s"] = min(times)
        out["latency_max_s"] = max(times)
        out["repeats"] = len(times)
        if int(spec["batch"]) > 1 and images.shape[0] >= 3:
            fn(x3)
            times3 = timed_calls(fn, x3, device, max(2, int(spec["repeats"]) // 3))
            out["batch3_images_per_s"] = 3.0 / statistics.median(times3)
        logits = torch.cat(
            [torch.as_tensor(fn(images[i : i + 1].to(device))).float().cpu() for i in range(len(images))]
        )
    ref_file = Path(spec["ref_file"])
    if spec["path"] == "eager_fp32":
        torch.save(logits, ref_file)
    if ref_file.is_file():
        ref = torch.load(ref_file, weights_only=True)
        out["mask_dice_vs_fp32"] = mask_agreement(ref, logits)
        out["max_abs_diff"] = float((ref - logits).abs().max())
        out["max_abs_ref"] = float(ref.abs().max())
    for attr in ("selected_precision", "agreement"):
        if getattr(fn, attr, None) is not None:
            out[attr] = getattr(fn, attr)
    return out


def _agreement_images(spec: dict[str, Any]) -> tuple[torch.Tensor, list[str]]:
    """The evaluation split of the data set through inference.json's preprocessing (a fresh synthetic set if none)."""
    from monai.bundle import ConfigParser

    from r2mf_monai.data.synthetic import synthesize_dataset

    data_dir = Path(spec["data_dir"]) if spec.get("data_dir") else None
    if data_dir is None or not (data_dir / "datalist.json").is_file():
        # patients the shipped weights never saw: a new seed
        data_dir = Path(spec["work_dir"]) / "agreement_data"
        if not (data_dir / "datalist.json").is_file():
            synthesize_dataset(
                data_dir, patients=int(spec["patients"]), seed=101, scale=float(spec["scale"]), workers=1
            )
        split = None
    else:
        split = spec.get("split", "test")
    datalist = json.loads((data_dir / "datalist.json").read_text())
    items = (
        datalist[split] if split else [i for key in ("training", "validation", "test") for i in datalist.get(key, [])]
    )
    parser = ConfigParser()
    parser.read_config(str(find_bundle(spec["bundle_root"]) / "configs" / "inference.json"))
    for key, value in (spec.get("overrides") or {}).items():
        parser[key] = value
    preprocessing = parser.get_parsed_content("preprocessing")
    images = [preprocessing({"image": str(data_dir / item["image"])})["image"] for item in items]
    tensors = [(i.as_tensor() if hasattr(i, "as_tensor") else torch.as_tensor(i)).float() for i in images]
    return torch.stack(tensors), [str(item["image"]) for item in items]


def _agreement(spec: dict[str, Any]) -> dict[str, Any]:
    """Masks of each path against eager float32 with trained weights, image by image; runs in a child process."""
    from monai.bundle import ConfigParser
    from monai.metrics import compute_dice

    from r2mf_monai.inference.fast_inference import prepare_for_inference
    from r2mf_monai.inference.onnx_backend import OnnxRuntimeNetwork, export_onnx

    torch.set_num_threads(int(spec["threads"]))
    parser = ConfigParser()
    parser.read_config(str(find_bundle(spec["bundle_root"]) / "configs" / "inference.json"))
    for key, value in (spec.get("overrides") or {}).items():
        parser[key] = value
    net = parser.get_parsed_content("network_def", instantiate=True)
    net.load_state_dict(load_weights(spec["checkpoint"]))
    net.eval()
    images, names = _agreement_images(spec)

    def logits(fn: Any) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([torch.as_tensor(fn(images[i : i + 1])).float() for i in range(len(images))])

    ref = logits(net)
    rows = []
    for path in spec["paths"]:
        if path == "onnxruntime":
            onnx_file = Path(spec["work_dir"]) / "agreement_model.onnx"
            if not onnx_file.is_file():
                export_onnx(copy.deepcopy(net), onnx_file, int(images.shape[-1]), verify=False)
            fn: Any = OnnxRuntimeNetwork(onnx_file)
        else:
            fn = prepare_for_inference(net, **PATH_OPTIONS[path])
        out = logits(fn)
        dice = compute_dice((ref > 0).float(), (out > 0).float(), include_background=True, ignore_empty=False)
        dice = dice.flatten()
        worst = int(dice.argmin())
        rows.append(
            {
                "path": path,
                "n": len(names),
                "worst_dice": float(dice.min()),
                "mean_dice": float(dice.mean()),
                "below_0.995": int((dice < 0.995).sum()),
                "worst_image": names[worst],
                "max_abs_diff": float((ref - out).abs().max()),
                "max_abs_ref": float(ref.abs().max()),
            }
        )
    return {"rows": rows, "images": len(names), "image_size": int(images.shape[-1]), "checkpoint": spec["checkpoint"]}


def precision_agreement(
    checkpoint: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    split: str = "test",
    paths: Sequence[str] = AGREEMENT_PATHS,
    overrides: dict[str, Any] | None = None,
    threads: int | None = None,
    bundle_root: str | os.PathLike | None = None,
    work_dir: str | os.PathLike | None = None,
    patients: int = 11,
    scale: float = 0.5,
) -> dict[str, Any]:
    """How far each inference path's masks are from eager float32's with *trained* weights (the issue's agreement
    check: worst per-image Dice over a synthetic test split; random weights say little about this).

    Args:
        checkpoint: the weights; defaults to the bundle's ``models/model.pt``.
        data_dir: a data set with a ``datalist.json``; its ``split`` is used. Defaults to a fresh synthetic set of
            ``patients`` at ``scale`` (all of it: the weights never saw it).
        split: the datalist split. Defaults to ``"test"``.
        paths: keys of :data:`AGREEMENT_PATHS`.
        overrides: inference.json overrides (e.g. ``image_size`` and ``network_def#channels`` of other weights).
        threads: CPU threads. Defaults to PyTorch's.
        bundle_root: the bundle folder; defaults to the package's bundle.
        work_dir: folder for the synthetic set and the ONNX export; defaults to a temporary folder.
        patients: patients of the fresh synthetic set. Defaults to ``11`` (33 images).
        scale: synthetic image scale. Defaults to ``0.5``.

    Raises:
        ValueError: for an unknown path. FileNotFoundError: for missing weights.
    """
    for p in paths:
        ensure_option("paths", p, AGREEMENT_PATHS)
    configs = find_bundle(bundle_root) / "configs"
    checkpoint = Path(checkpoint) if checkpoint else configs.parent / "models" / "model.pt"
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint '{checkpoint}' does not exist")
    with contextlib.ExitStack() as stack:
        if work_dir is None:
            work_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="r2mf_agreement_"))
        spec = {
            "bundle_root": str(configs.parent),
            "checkpoint": str(checkpoint),
            "data_dir": str(data_dir) if data_dir else None,
            "split": split,
            "paths": list(paths),
            "overrides": overrides or {},
            "threads": int(threads or torch.get_num_threads()),
            "work_dir": str(work_dir),
            "patients": patients,
            "scale": scale,
        }
        return _agreement(spec)


def _end_to_end(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the bundle's inference.json on one patient's three DICOM views; time initialize and run."""
    from monai.bundle import ConfigParser, ConfigWorkflow

    torch.set_num_threads(int(spec["threads"]))
    configs = find_bundle(spec["bundle_root"]) / "configs"
    overrides: dict[str, Any] = {
        "bundle_root": str(configs.parent),
        "dataset_dir": spec["dicom_dir"],
        "output_dir": spec["out_dir"],
        "ckpt_path": spec["weights_file"],
        "num_workers": 0,
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        **(spec.get("overrides") or {}),
    }
    if spec.get("backend") == "onnxruntime":  # exported before the clock starts, as the CLI does once per model.pt
        from r2mf_monai.inference.onnx_backend import export_onnx, onnx_overrides

        onnx_path = Path(spec["work_dir"]) / f"e2e_{spec['variant']}.onnx"
        onnx_path.unlink(missing_ok=True)  # never a model exported from other weights
        parser = ConfigParser()
        parser.read_config(str(configs / "inference.json"))
        parser.update({k: v for k, v in overrides.items() if k in ("image_size", "network_def")})
        export_onnx(
            parser.get_parsed_content("network_def"),
            onnx_path,
            parser.get_parsed_content("image_size"),
            checkpoint=spec["weights_file"],
        )
        overrides.update(onnx_overrides(configs / "inference.json", configs.parent, onnx_path=onnx_path))
    t0 = time.perf_counter()
    workflow = ConfigWorkflow(
        config_file=str(configs / "inference.json"),
        meta_file=str(configs / "metadata.json"),
        logging_file=False,
        workflow_type="infer",
        **overrides,
    )
    workflow.initialize()
    init_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    workflow.run()
    run_s = time.perf_counter() - t0
    network = workflow.parser.get_parsed_content("network")
    workflow.finalize()
    masks = sorted(p.name for p in Path(spec["out_dir"]).rglob("*_mask.png"))
    return {
        "variant": spec["variant"],
        "initialize_s": init_s,
        "run_s": run_s,
        "masks": masks,
        "selected_precision": getattr(network, "selected_precision", None),
        "agreement": getattr(network, "agreement", None),
    }


def _child_main(argv: Sequence[str]) -> None:
    """``python -m r2mf_monai.experiments.benchmark _child SPEC.json``: one measurement, its result written to
    SPEC's result."""
    spec = json.loads(Path(argv[0]).read_text())
    logging.basicConfig(level=logging.WARNING)
    try:
        result = _end_to_end(spec) if spec.get("kind") == "e2e" else _measure(spec)
    except Exception as e:  # reported in the table: one failing path must not stop the benchmark
        result = {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]}
    Path(spec["result_file"]).write_text(json.dumps(result))


def _run_child(spec: dict[str, Any], timeout: float, isolate: bool = True) -> dict[str, Any]:
    """One measurement in a fresh process (``isolate``) or in this one; a finished one found in the work folder is
    reused when its settings are the same."""
    work = Path(spec["work_dir"])
    name = f"{spec.get('model', 'e2e')}_{spec.get('path', spec.get('variant'))}"
    spec_file, result_file = work / f"{name}.spec.json", work / f"{name}.result.json"
    if spec_file.is_file() and result_file.is_file():
        previous = json.loads(spec_file.read_text())
        previous.pop("result_file", None)
        if previous == json.loads(json.dumps(spec)):
            logger.info("%s: reusing the result in %s", name, result_file)
            return json.loads(result_file.read_text())
    if not isolate:
        try:
            return _end_to_end(spec) if spec.get("kind") == "e2e" else _measure(spec)
        except Exception as e:
            return {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]}
    spec = {**spec, "result_file": str(result_file)}
    spec_file.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "r2mf_monai.experiments.benchmark", "_child", str(spec_file)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    result_file = Path(spec["result_file"])
    if not result_file.is_file():
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        return {"error": f"process exited with {proc.returncode}: {' | '.join(tail)}"[:300]}
    return json.loads(result_file.read_text())


# --- the run --------------------------------------------------------------------------------------------------------
def _benchmark_images(work: Path, image_size: int, patients: int, scale: float, bundle_root: Any) -> torch.Tensor:
    """Synthetic radiographs through the bundle's inference preprocessing: (3 * patients, 1, S, S), views in order."""
    from monai.bundle import ConfigParser

    from r2mf_monai.data.synthetic import synthesize_dataset

    datalist = json.loads(
        Path(synthesize_dataset(work / "images_data", patients=patients, seed=11, scale=scale, workers=1)).read_text()
    )
    items = [item for split in ("training", "validation", "test") for item in datalist.get(split, [])]
    items.sort(key=lambda item: (item["patient_id"], VIEWS.index(item["view"]) if item["view"] in VIEWS else 3))
    parser = ConfigParser()
    parser.read_config(str(find_bundle(bundle_root) / "configs" / "inference.json"))
    parser["image_size"] = int(image_size)
    preprocessing = parser.get_parsed_content("preprocessing")
    images = []
    for item in items:
        image = preprocessing({"image": str(work / "images_data" / item["image"])})["image"]
        images.append((image.as_tensor() if hasattr(image, "as_tensor") else torch.as_tensor(image)).float())
    return torch.stack(images)


def run_benchmark(
    output_dir: str | os.PathLike | None = None,
    models: Sequence[str] | None = None,
    paths: Sequence[str] | None = None,
    image_size: int = 512,
    repeats: int = 10,
    warmup: int = 2,
    batch: int = 3,
    threads: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    end_to_end: bool = True,
    smoke: bool = False,
    bundle_root: str | os.PathLike | None = None,
    timeout: float = 1800.0,
    seed: int = 0,
    isolate: bool | None = None,
    work_dir: str | os.PathLike | None = None,
    agreement: bool = True,
    agreement_data: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Measure every (model, path) and write ``benchmark.md`` and ``benchmark.json`` to ``output_dir``.

    Args:
        output_dir: folder for the two table files; defaults to ``bundle/docs``.
        models: keys of :data:`MODELS`; defaults to all (DeepLabV3+ is reported as not run where
            segmentation-models-pytorch is missing).
        paths: keys of :data:`CPU_PATHS` (and :data:`GPU_PATHS`); defaults to all CPU paths, plus the GPU ones when
            CUDA is available.
        image_size: side of the square input. Defaults to ``512`` (§4.1).
        repeats: timed forward passes per measurement (the median is reported). Defaults to ``10``.
        warmup: untimed passes first (the first prepares or compiles). Defaults to ``2``.
        batch: 3 to also time a batch of one patient's three views, 1 not to. Defaults to ``3``.
        threads: CPU threads (``torch.set_num_threads``; ONNX Runtime gets the same). Defaults to PyTorch's.
        checkpoint: a trained R2MF-Net ``model.pt`` for the ``r2mfnet`` rows (else calibrated random weights).
        end_to_end: also time the bundle's inference.json on one patient's three DICOM views. Defaults to ``True``.
        smoke: tiny sizes, one repetition, two models, no compile and no end-to-end, in this process (for the
            tests).
        bundle_root: the bundle folder; defaults to the package's bundle.
        timeout: seconds allowed to each measurement process. Defaults to ``1800``.
        seed: seed of the random weights. Defaults to ``0``.
        isolate: run each measurement in a fresh process. Defaults to ``True`` (``False`` with ``smoke``).
        work_dir: keep the images, weights and each measurement's result here, and reuse the results found there
            (to finish an interrupted run with the same settings); defaults to a temporary folder.
        agreement: also compare each path's masks with eager fp32 on the bundle's trained ``models/model.pt``
            (:func:`precision_agreement`). Defaults to ``True``.
        agreement_data: the data set for that check (its test split); defaults to the repository's
            ``data/synthetic`` when present, else a fresh synthetic set.

    Returns:
        the results as written to ``benchmark.json``.

    Raises:
        ValueError: for an unknown model or path, or a bad size or count.
        FileNotFoundError: when ``checkpoint`` or the bundle's configs are missing.
    """
    from tqdm.auto import tqdm

    if smoke:
        models = list(models or SMOKE_MODELS)
        paths = list(paths or SMOKE_PATHS)
        image_size, repeats, warmup, end_to_end = min(image_size, 64), 1, 1, False
    isolate = not smoke if isolate is None else bool(isolate)
    models, paths = _selection(models, paths)
    if ensure_int("image_size", image_size) % 32:
        raise ValueError(f"image_size must be a positive multiple of 32, got image_size={image_size!r}.")
    repeats, warmup = ensure_int("repeats", repeats), ensure_int("warmup", warmup)
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint '{checkpoint}' does not exist")
    bundle = find_bundle(bundle_root)
    output = Path(output_dir) if output_dir is not None else bundle / "docs"
    threads = int(threads or torch.get_num_threads())
    torch.set_num_threads(threads)
    settings = {"image_size": image_size, "repeats": repeats, "warmup": warmup, "batch": batch, "smoke": smoke}
    settings["weights"] = (
        f"checkpoint {checkpoint}"
        if checkpoint
        else "random He-normal, batch-norm statistics from the benchmark's synthetic images"
    )
    results = _start(settings, threads)
    with contextlib.ExitStack() as stack:
        work = Path(work_dir) if work_dir is not None else None
        if work is None:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="r2mf_benchmark_")))
        work.mkdir(parents=True, exist_ok=True)
        if not (work / "images.pt").is_file():
            scale = 0.1 if smoke else 0.5
            torch.save(_benchmark_images(work, image_size, 1 if smoke else 2, scale, bundle), work / "images.pt")
        base = {**settings, "threads": threads, "seed": seed, "bundle_root": str(bundle), "work_dir": str(work)}
        base.pop("smoke")
        base.pop("weights")
        base["images_file"] = str(work / "images.pt")
        for model in tqdm(models, desc="models", position=0):
            results["rows"] += _model_rows(model, paths, base, checkpoint, smoke, timeout, isolate)
        if agreement and "r2mfnet" in models:
            results["agreement"] = _agreement_section(bundle, work, agreement_data, threads, smoke)
        if end_to_end and "r2mfnet" in models:
            results["end_to_end"] = run_end_to_end(work, bundle, image_size, threads, timeout, isolate)
    results["matmul_gflops_end"] = {"fp32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16)}
    results["system"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    _fractions(results)
    results["output_dir"] = str(output)
    write_json(output / "benchmark.json", results, allow_nan=True)
    write_text(output / "benchmark.md", markdown_table(results))
    logger.info("benchmark tables written to %s and %s", output / "benchmark.md", output / "benchmark.json")
    return results


def _selection(models: Sequence[str] | None, paths: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """The models and paths to run, checked; eager float32 (the reference of every agreement column) first."""
    models = list(models or BENCHMARK_MODELS)
    for m in models:
        ensure_option("models", m, MODELS)
    default_paths = CPU_PATHS + (GPU_PATHS if torch.cuda.is_available() else ())
    paths = [ensure_option("paths", p, CPU_PATHS + GPU_PATHS) for p in (paths or default_paths)]
    if "eager_fp32" in paths:
        paths.remove("eager_fp32")
        paths.insert(0, "eager_fp32")
    return models, paths


def _start(settings: dict[str, Any], threads: int) -> dict[str, Any]:
    """The results before any measurement: the machine, the settings and the matrix-product rates at the start."""
    info = system_info()
    info["torch_threads"] = threads
    logger.info("benchmark on %s, %d threads, load average %s", info["cpu"], threads, info["load_average"])
    rates = {"fp32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16)}
    return {"system": info, "settings": settings, "matmul_gflops_start": rates, "rows": [], "end_to_end": []}


def _model_rows(
    model: str,
    paths: Sequence[str],
    base: dict[str, Any],
    checkpoint: str | os.PathLike | None,
    smoke: bool,
    timeout: float,
    isolate: bool,
) -> list[dict[str, Any]]:
    """One row per path of ``model``: its complexity, and the measurement of a child process (or why not run)."""
    from tqdm.auto import tqdm

    overrides = dict(MODELS[model].smoke) if smoke else {}
    label = MODELS[model].label
    try:
        network = build_network(model, base["bundle_root"], overrides)
        complexity = count_complexity(network, base["image_size"])
    except Exception as e:  # e.g. DeepLabV3+ without segmentation-models-pytorch
        reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
        return [{"model": model, "label": label, "path": path, "error": reason[:300]} for path in paths]
    work = Path(base["work_dir"])
    spec = {
        **base,
        "model": model,
        "overrides": overrides,
        "weights_file": str(work / f"{model}_weights.pt"),
        "ref_file": str(work / f"{model}_ref.pt"),
        "checkpoint": str(checkpoint) if checkpoint and model == "r2mfnet" else None,
    }
    rows = []
    for path in tqdm(paths, desc=model, position=1, leave=False):
        if path == "bf16_mixed" and not hasattr(network, "float32_modules"):
            continue
        if path in GPU_PATHS and not torch.cuda.is_available():
            row: dict[str, Any] = {"error": "no CUDA device"}
        else:
            row = _run_child({**spec, "path": path}, timeout, isolate)
        row.update({"model": model, "label": label, "path": path, **complexity})
        if "latency_s" in row and complexity["flops"] > 0:
            row["gflops_per_s"] = complexity["flops"] / row["latency_s"] / 1e9
        rows.append(row)
        logger.info("%s / %s: %s", model, path, row.get("error") or f"{row['latency_s'] * 1e3:.1f} ms")
    return rows


def _agreement_section(
    bundle: Path, work: Path, agreement_data: str | os.PathLike | None, threads: int, smoke: bool
) -> dict[str, Any]:
    """:func:`precision_agreement` on the test split of ``agreement_data`` (default: the repository's synthetic set),
    or on a fresh synthetic set; a failure is reported in the table, like a failing path."""
    data = Path(agreement_data) if agreement_data else bundle.parent / "data" / "synthetic"
    data_ok = (data / "datalist.json").is_file() and not smoke
    try:
        section = precision_agreement(
            data_dir=data if data_ok else None,
            paths=[p for p in AGREEMENT_PATHS if not (smoke and "compile" in p)],
            threads=threads,
            bundle_root=bundle,
            work_dir=work,
            patients=1 if smoke else 11,
            scale=0.1 if smoke else 0.5,
        )
        section["data"] = f"test split of {data}" if data_ok else "a fresh synthetic set"
    except Exception as e:
        section = {"error": f"{type(e).__name__}: {e}"[:300]}
    logger.info("agreement on trained weights: %s", section.get("rows") or section)
    return section


E2E_VARIANTS: dict[str, tuple[str, bool, dict[str, Any]]] = {
    # name -> (label, paper-width network at the benchmark's size (else the shipped weights), inference overrides)
    "shipped": (
        "shipped weights, inference.json as shipped (precision fp32, review flag on: cascade, no pass of its own)",
        False,
        {},
    ),
    "shipped_flip": (
        "shipped weights, as shipped but review_method flip (a mirrored pass a view; the default up to 0.13)",
        False,
        {"review_method": "flip"},
    ),
    "shipped_mask": (
        "shipped weights, as shipped but review_method mask (no pass of its own)",
        False,
        {"review_method": "mask"},
    ),
    "shipped_fp32": ("shipped weights, precision fp32, no review flag", False, {"precision": "fp32", "review": False}),
    "shipped_onnx": ("shipped weights, ONNX Runtime, no review flag", False, {"review": False}),
    "eager": ("paper width, eager fp32 (`network_def` as trained), no review flag", True, {"review": False}),
    "fp32": ("paper width, precision fp32, no review flag", True, {"precision": "fp32", "review": False}),
    "bf16": ("paper width, precision bf16, no review flag", True, {"precision": "bf16", "review": False}),
    "fp32_review": ("paper width, precision fp32, review flag on", True, {"precision": "fp32"}),
}
"""End-to-end variants of :func:`run_benchmark`; the eager one replaces inference.json's prepared network, the ``_onnx``
ones run it on ONNX Runtime (:func:`r2mf_monai.inference.onnx_backend.onnx_overrides`)."""


def run_end_to_end(
    work: Path, bundle_root: Path, image_size: int, threads: int, timeout: float, isolate: bool
) -> list[dict]:
    """One row per :data:`E2E_VARIANTS` entry: the bundle's inference.json on one synthetic patient's three DICOM
    views (made in ``work``), timed in a child process (``isolate``) or in this one. A variant whose weights are
    missing (the paper-width ones before the r2mfnet rows ran) is reported with the reason, not run."""
    from monai.bundle import ConfigParser

    from r2mf_monai.data.synthetic import synthesize_dataset

    data = work / "e2e_data"
    if not (data / "datalist.json").is_file():
        synthesize_dataset(data, patients=1, seed=5, scale=1.0, workers=1, formats=("dicom",))
    parser = ConfigParser()
    parser.read_config(str(find_bundle(bundle_root) / "configs" / "train.json"))
    network_def = parser.get("network_def")
    random_weights = work / "r2mfnet_weights.pt"
    shipped = find_bundle(bundle_root) / "models" / "model.pt"
    rows = []
    for variant, (label, paper_width, variant_overrides) in E2E_VARIANTS.items():
        weights = random_weights if paper_width else shipped
        if not weights.is_file():
            reason = "no R2MF-Net weights (the r2mfnet rows failed)" if paper_width else f"no {shipped}"
            rows.append({"variant": variant, "label": label, "error": reason})
            continue
        overrides = dict(variant_overrides)
        if paper_width:
            # the benchmarked network (train.json's) at the benchmark's size, described beside its weights as training
            # describes a model (the bundle reads network, size and input CLAHE from that model.json; none here)
            config = model_config_path(weights)
            if not config.is_file():
                write_json(config, {"network_def": network_def, "image_size": image_size, "clahe_clip_limit": None})
        if variant == "eager":
            overrides["network"] = "$@network_def.to(@device)"
        spec = {
            "kind": "e2e",
            "variant": variant,
            "threads": threads,
            "bundle_root": str(bundle_root),
            "dicom_dir": str(data / "images"),
            "out_dir": str(work / f"e2e_out_{variant}"),
            "weights_file": str(weights),
            "work_dir": str(work),
            "overrides": overrides,
            "backend": "onnxruntime" if variant.endswith("_onnx") else "pytorch",
        }
        rows.append({"variant": variant, "label": label, **_run_child(spec, timeout, isolate)})
    return rows


def _fractions(results: dict[str, Any]) -> None:
    """Fractions of the matmul rates (the larger of the start and end measurements) and speed-ups."""
    fp32 = max(results["matmul_gflops_start"]["fp32"], results["matmul_gflops_end"]["fp32"])
    bf16 = max(results["matmul_gflops_start"]["bf16"], results["matmul_gflops_end"]["bf16"])
    results["matmul_gflops"] = {"fp32": fp32, "bf16": bf16}
    eager = {r["model"]: r["latency_s"] for r in results["rows"] if r["path"] == "eager_fp32" and "latency_s" in r}
    for row in results["rows"]:
        if "gflops_per_s" in row and row.get("device") == "cpu":
            row["fraction_fp32_matmul"] = row["gflops_per_s"] / fp32
            if row["path"] in BF16_PATHS or row.get("selected_precision") == "bf16":
                row["fraction_bf16_matmul"] = row["gflops_per_s"] / bf16
        if "latency_s" in row and row["model"] in eager:
            row["speedup_vs_eager_fp32"] = eager[row["model"]] / row["latency_s"]


def _load(values: Sequence[float] | None) -> str:
    return "n/a" if not values else ", ".join(f"{v:.2f}" for v in values)


def _f(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return format(value, fmt)


def markdown_table(results: dict[str, Any]) -> str:
    """The benchmark as Markdown: the machine, then one row per (model, path), then the end-to-end timings."""
    s, st = results["system"], results["settings"]
    size = st["image_size"]
    lines = [
        f"# Inference benchmark ({'smoke run' if st['smoke'] else f'{size}x{size}'})",
        "",
        f"- Machine: {s['cpu']} ({s['cpu_count']} CPUs; flags {', '.join(s['cpu_flags']) or 'n/a'}), "
        f"{s['torch_threads']} PyTorch threads; GPU: {s['cuda'] or 'none'}",
        f"- Software: Python {s['python']}, torch {s['torch']}, MONAI {s['monai']}, onnxruntime {s['onnxruntime']}",
        f"- Load average (1, 5, 15 min) at start {_load(s['load_average'])}, at end {_load(s.get('load_average_end'))}"
        f"; OpenMP environment: {s.get('env') or 'defaults'}",
        f"- 2048x2048 matrix product: fp32 {results['matmul_gflops']['fp32']:.0f} GFLOP/s, bf16 "
        f"{results['matmul_gflops']['bf16']:.0f} GFLOP/s (the larger of the start and end measurements)",
        f"- {st['repeats']} timed passes after {st['warmup']} warm-up passes, median; weights: {st['weights']}; "
        f"run on {s['date']}",
        "",
        "| Model | Path | Params (M) | GMAC | Latency (ms) | GFLOP/s | of fp32 mm | of bf16 mm | Speed-up | "
        "Batch 3 (img/s) | Peak extra RSS (MB) | Mask Dice vs fp32 (worst) | Max abs logit diff |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        label = PATH_LABELS.get(r["path"], r["path"])
        if "error" in r:
            lines.append(f"| {r['label']} | {label} | not run: {r['error']} |||||||||||")
            continue
        if r.get("selected_precision"):
            label += f" -> {r['selected_precision']}"
        lines.append(
            f"| {r['label']} | {label} | {r['parameters'] / 1e6:.2f} | {_f(r['macs'] / 1e9, '.4g')} | "
            f"{r['latency_s'] * 1e3:.1f} | {_f(r.get('gflops_per_s'), '.0f')} | "
            f"{_f(r.get('fraction_fp32_matmul'), '.2f')} | {_f(r.get('fraction_bf16_matmul'), '.2f')} | "
            f"{_f(r.get('speedup_vs_eager_fp32'), '.2f')} | {_f(r.get('batch3_images_per_s'), '.2f')} | "
            f"{_f(r.get('peak_extra_mb'), '.0f')} | {_f(r.get('mask_dice_vs_fp32'), '.4f')} | "
            f"{_f(r.get('max_abs_diff'), '.2g')} |"
        )
    lines += [
        "",
        "GMAC: multiply-adds of one 1-channel image (`torch.utils.flop_counter`, convolutions and matrix products; "
        "GFLOP = 2 GMAC). GFLOP/s: 2 x GMAC / latency; *of fp32 mm* / *of bf16 mm*: that rate over the matrix-product "
        "rate above. Speed-up: eager fp32 latency / this latency. Peak extra RSS: rise of the peak resident set size "
        "(VmHWM, reset before the timed passes) over the resident size before them. Mask Dice: worst per-image Dice "
        "between this path's masks (logit > 0) and eager fp32's on the synthetic images; max abs logit diff relative "
        "to logits of magnitude up to the largest in `benchmark.json` (`max_abs_ref`).",
        "",
    ]
    agreement = results.get("agreement") or {}
    if agreement.get("rows"):
        lines += [
            "## Agreement with eager fp32 on trained weights (the precision check)",
            "",
            f"Weights `{agreement['checkpoint']}` at {agreement['image_size']} px on {agreement['images']} synthetic "
            f"images ({agreement.get('data', '')}); per-image Dice between this path's masks (logit > 0) and eager "
            "fp32's. The bar for a default path is a worst case of 0.995.",
            "",
            "| Path | images | worst Dice | mean Dice | images below 0.995 | worst image | max abs logit diff |",
            "|---|---:|---:|---:|---:|---|---:|",
        ]
        for r in agreement["rows"]:
            lines.append(
                f"| {PATH_LABELS.get(r['path'], r['path'])} | {r['n']} | {r['worst_dice']:.4f} | "
                f"{r['mean_dice']:.4f} | {r['below_0.995']} | {r['worst_image']} | {r['max_abs_diff']:.2g} |"
            )
        lines.append("")
    elif agreement.get("error"):
        lines += ["## Agreement with eager fp32 on trained weights", "", f"Not run: {agreement['error']}", ""]
    if results.get("end_to_end"):
        lines += [
            "## One patient end to end (bundle inference.json: load DICOM, preprocess, infer, post-process, write)",
            "",
            "`ConfigWorkflow(inference.json)` initialise + run on one synthetic patient's three DICOM views (scale "
            "1.0: about 1000-2500 px tall): parse the config, build the network, load the weights, then for each view "
            "read the DICOM, preprocess, infer, post-process (components of at least a tenth of the largest, closing, "
            "back to the input grid) and "
            "write the PNG and NIfTI masks and an overlay. Process start and imports are not counted. *Shipped "
            "weights*: `models/model.pt` at the image size of its `model.json`; *paper width*: train.json's network "
            "at the benchmark's image size with the benchmark's weights. inference.json's other keys as shipped "
            "(each film's own batch-norm statistics at `image_statistics_weight`). The prepared networks include "
            "their one-off preparation (batch-norm folding) and, for 'auto', the views checked in both precisions. "
            'The review flag\'s `"flip"` method runs the network a second time on the mirrored image; '
            '`"mask"` runs no pass.',
            "",
            "| Variant | initialise (s) | run, 3 views (s) | precision used | masks written |",
            "|---|---:|---:|---|---:|",
        ]
        for r in results["end_to_end"]:
            label = r.get("label") or E2E_VARIANTS.get(r["variant"], (r["variant"],))[0]
            if "error" in r:
                lines.append(f"| {label} | not run: {r['error']} | | | |")
            else:
                chosen = r.get("selected_precision") or ""
                if r.get("agreement") is not None:
                    chosen += f" (checked Dice {r['agreement']:.4f})"
                lines.append(f"| {label} | {r['initialize_s']:.2f} | {r['run_s']:.2f} | {chosen} | {len(r['masks'])} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line of the benchmark (also ``scripts/benchmark.py`` and ``r2mf-monai benchmark``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default=None, help="folder for benchmark.md/.json (default bundle/docs)")
    parser.add_argument("--models", nargs="*", default=None, choices=sorted(MODELS), help="default: BENCHMARK_MODELS")
    parser.add_argument("--paths", nargs="*", default=None, choices=list(CPU_PATHS + GPU_PATHS))
    parser.add_argument("--image_size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=3, choices=(1, 3))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--checkpoint", default=None, help="trained R2MF-Net model.pt for the r2mfnet rows")
    parser.add_argument("--no_end_to_end", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition, two models")
    parser.add_argument("--bundle_root", default=None)
    parser.add_argument("--work_dir", default=None, help="keep (and reuse) the measurements here")
    parser.add_argument("--no_agreement", action="store_true", help="skip the check on the trained weights")
    parser.add_argument("--agreement_data", default=None, help="data set for that check (default data/synthetic)")
    options = vars(parser.parse_args(argv))  # the options are run_benchmark's arguments, two of them negated
    options["end_to_end"] = not options.pop("no_end_to_end")
    options["agreement"] = not options.pop("no_agreement")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return run_benchmark(**options)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_child":
        _child_main(sys.argv[2:])
    else:
        main()
