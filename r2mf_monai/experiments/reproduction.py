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

"""Reproduce the experiments of the R2MF-Net paper (Tables 1-4 and the quality strata of §4.8) on synthetic data.

The models are those of :mod:`r2mf_monai.experiments.models`; :func:`complexity_table` gives the parameters and
FLOPs of the ablation ladder (Table 2 rows, Table 4 columns, §4.6 and §4.9) without training anything.

Every model is trained and evaluated by the bundle itself, exactly as a user runs it::

    python -m monai.bundle run training   --config_file "['configs/train.json', <baseline override>]" ...
    python -m monai.bundle run evaluating --config_file "['configs/train.json', 'configs/evaluate.json',
                                                          <baseline override>]" ...

with the data set, image size, epochs, seed and output folders as overrides. The models are R2MF-Net, the cumulative
ablation ladder of Table 2 (baseline two-stage U-Net, + R2-Jump, + Inception-R, + MC-Skip; + SCSE-Lite is the full
R2MF-Net) and the baselines of ``bundle/configs/baselines`` (Table 3). The tables (``tables.md`` and
``tables.json`` in ``--out``) are shaped like the paper's Tables 1-4 and the §4.8 quality strata.

The run is resumable: a model whose ``models/model.pt`` and ``eval/metrics_summary.json`` exist is neither trained
nor evaluated again; a model whose training was interrupted resumes from its last ``checkpoint_*.pt``. On a machine
with CUDA the bundle trains on the GPU (with AMP) without any change.

Examples::

    python scripts/reproduce_paper.py --out outputs/reproduction              # the CPU budget (see --help)
    python scripts/reproduce_paper.py --out outputs/paper --image_size 512 --patients 228 --scale 1.0 \\
        --max_epochs 150                                                      # the paper's settings (GPU)
    python scripts/reproduce_paper.py --out /tmp/smoke --smoke                # two tiny models, one step each
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from r2mf_monai.bundle_paths import find_bundle
from r2mf_monai.constants import QUALITIES, VIEWS
from r2mf_monai.experiments.benchmark import timed_calls
from r2mf_monai.experiments.models import (
    ABLATION,
    FULL_ABLATION_LABEL,
    MODELS,
    build_network,
    config_files,
    missing_package,
)
from r2mf_monai.networks.complexity import count_complexity
from r2mf_monai.outputs.atomic import write_json, write_text
from r2mf_monai.utils import ensure_int

__all__ = [
    "NOT_AVAILABLE",
    "PAPER_TABLE4",
    "QUALITIES",
    "ablation_label",
    "complexity_table",
    "main",
    "run_model",
    "tables",
]

logger = logging.getLogger(__name__)

NOT_AVAILABLE = {
    "HarDNet-Seg": "no maintained PyTorch implementation to build on (not written here)",
    "TransUNet": "no maintained PyTorch implementation to build on (not written here)",
}
"""Models of the paper's Table 3 that are not reproduced, and why."""

SMOKE_RUNS = ("r2mfnet", "unet")
"""The models of ``--smoke``."""

PAPER_TABLE4 = {"parameters": 16.5e6, "flops": 59.1e9, "image_size": 512}
"""R2MF-Net's row of the paper's Table 4: 16.5 M parameters, 59.1 GFLOPs at 512x512."""


def ablation_label(model: str) -> str:
    """The label of a model as a row of the ablation ladder (R2MF-Net is its last row, "+ SCSE-Lite")."""
    return FULL_ABLATION_LABEL if model == "r2mfnet" else MODELS[model].label


def complexity_table(
    image_size: int = 512, output: str | os.PathLike | None = None, bundle_root: str | os.PathLike | None = None
) -> str:
    """Markdown table of parameters and FLOPs at 1x1xNxN for every row of the ablation ladder (Table 2), vs Table 4.

    Args:
        image_size: side ``N`` of the square single-channel input, a positive multiple of 16. Defaults to ``512``.
        output: optional path of a Markdown file to write the table to (written to a temporary name, then renamed).
        bundle_root: the bundle folder whose ``train.json`` defines the networks; defaults to the checkout's or the
            current one.

    Returns:
        the table and its notes, as Markdown text.

    Raises:
        ValueError: when ``image_size`` is not a positive multiple of 16.
        FileNotFoundError: when the bundle's configs are missing.
    """
    if ensure_int("image_size", image_size) % 16:
        raise ValueError(f"image_size must be a positive multiple of 16, got image_size={image_size!r}.")
    lines = [
        f"| Variant (paper Table 2) | Parameters (M) | GFLOPs at 1x1x{image_size}x{image_size} | GMACs |",
        "|---|---:|---:|---:|",
    ]
    for model in ABLATION:
        with torch.device("meta"):  # no memory, no arithmetic: the full width at 512 px in well under a second
            network = build_network(model, bundle_root)
        m = count_complexity(network, image_size)
        cells = f"{m['parameters'] / 1e6:.2f} | {m['flops'] / 1e9:.1f} | {m['macs'] / 1e9:.1f}"
        lines.append(f"| {ablation_label(model)} | {cells} |")
    paper_flops = PAPER_TABLE4["flops"] * (image_size / PAPER_TABLE4["image_size"]) ** 2
    scaled = "" if image_size == PAPER_TABLE4["image_size"] else " (scaled from 512x512 by pixel count)"
    lines.append(
        f"| Paper, Table 4 (R2MF-Net) | {PAPER_TABLE4['parameters'] / 1e6:.1f} | {paper_flops / 1e9:.1f}{scaled} | |"
    )
    lines += [
        "",
        "Measured with `torch.utils.flop_counter.FlopCounterMode` on one eval-mode forward pass (the coarse network",
        "runs too: the fine one needs its output). FLOPs count one multiply-add as 2 (GFLOPs = 2 x GMACs); only",
        "convolutions and matrix products are counted, not normalisation, activations, pooling or interpolation.",
        "Parameters are trainable parameters. Every variant is the bundle's `train.json` network (widths 32-256,",
        "bottleneck 256, R2-Jump steps 4, 3, 2, 1) with the blocks of the later rows switched off.",
    ]
    text = "\n".join(lines) + "\n"
    if output is not None:
        write_text(output, text)
        logger.info("complexity table written to %s", Path(output))
    return text


def _cli_value(value: Any) -> str:
    """A config override as monai.bundle's command line (python-fire) parses it back."""
    if isinstance(value, bool) or value is None:
        return repr(value) if value is not None else "$None"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _bundle(args: list[str], overrides: dict[str, Any], log_file: Path, cwd: Path) -> float:
    """Run ``python -m monai.bundle ...`` with overrides; log to ``log_file``; return its wall time."""
    cmd = [sys.executable, "-m", "monai.bundle", *args]
    for key, value in overrides.items():
        cmd += [f"--{key}", _cli_value(value)]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log_file, "a", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    if proc.returncode != 0:
        tail = log_file.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise RuntimeError(f"'{' '.join(args[:2])}' failed ({proc.returncode}); see {log_file}:\n" + "\n".join(tail))
    return time.perf_counter() - t0


def run_model(name: str, args: argparse.Namespace, configs: Path, data_dir: Path) -> dict[str, Any]:
    """Train (unless done) and evaluate (unless done) one model; return its record."""
    spec = MODELS[name]
    run_dir = Path(args.out) / "runs" / name
    models_dir, eval_dir = run_dir / "models", run_dir / "eval"
    record: dict[str, Any] = {"name": name, "label": spec.label, "table": spec.table}
    reason = missing_package(name)
    if reason:
        record["not_run"] = reason
        return record
    files = config_files(name, configs.parent)
    overrides: dict[str, Any] = {
        "bundle_root": str(configs.parent),
        "dataset_dir": str(data_dir),
        "image_size": args.image_size,
        "seed": args.seed,
        "num_workers": args.num_workers,
        **spec.config,
    }
    if args.smoke:
        overrides.update(spec.smoke)
    done_file = run_dir / "train_done.json"
    summary_file = eval_dir / "metrics_summary.json"
    model_file = models_dir / "model.pt"
    if not (done_file.is_file() and model_file.is_file()):
        train = {
            **overrides,
            "ckpt_dir": str(models_dir),
            "output_dir": str(run_dir / "logs"),
            "max_epochs": args.max_epochs,
            "early_stop_patience": args.early_stop_patience,
        }
        if args.epoch_length:
            train["train#trainer#epoch_length"] = args.epoch_length
        resume = models_dir.is_dir() and any(models_dir.glob("checkpoint*.pt"))
        if resume:
            train["resume"] = True
            logger.info("%s: resuming interrupted training from %s", name, models_dir)
        logger.info("%s: training (log: %s)", name, run_dir / "train.log")
        seconds = _bundle(
            ["run", "training", "--config_file", json.dumps(files)], train, run_dir / "train.log", configs.parent
        )
        epochs = _epochs_run(run_dir / "logs" / "metrics.csv")
        previous = json.loads(done_file.read_text()) if done_file.is_file() else {}
        done = {"train_seconds": seconds + previous.get("train_seconds", 0.0), "epochs": epochs}
        done_file.write_text(json.dumps(done))
    record.update(json.loads(done_file.read_text()))
    if not summary_file.is_file():
        logger.info("%s: evaluating on the %s split", name, args.eval_split)
        evaluate = {
            **overrides,
            "ckpt_path": str(model_file),
            "eval_dir": str(eval_dir),
            "eval_split": args.eval_split,
            "output_dir": str(run_dir / "logs"),
        }
        _bundle(
            # a baseline's override goes last: its network_def replaces evaluate.json's (built from model.json)
            ["run", "evaluating", "--config_file", json.dumps([files[0], str(configs / "evaluate.json"), *files[1:]])],
            evaluate,
            run_dir / "eval.log",
            configs.parent,
        )
    record["summary"] = json.loads(summary_file.read_text())
    record.update(_complexity(name, configs.parent, overrides, args.image_size))
    return record


def _epochs_run(metrics_csv: Path) -> int | None:
    if not metrics_csv.is_file():
        return None
    rows = [line for line in metrics_csv.read_text().splitlines()[1:] if line.strip()]
    return len(rows)


def _complexity(name: str, bundle: Path, overrides: dict[str, Any], image_size: int) -> dict[str, Any]:
    """Parameters, GFLOPs at 512x512 and the latency of one image at ``image_size`` on the run's device."""
    network_overrides = {k: v for k, v in overrides.items() if k.startswith("network_def")}
    net = build_network(name, bundle, network_overrides).eval()
    out: dict[str, Any] = {}
    c512 = count_complexity(net, 512)
    out["parameters"], out["gflops_512"] = c512["parameters"], c512["flops"] / 1e9
    device = "cuda" if torch.cuda.is_available() else "cpu"
    net = net.to(device)
    x = torch.rand(1, 1, image_size, image_size, device=device)
    with torch.no_grad():
        times = timed_calls(net, x, device, 4)[1:]  # the first pass warms up
    out["latency_ms"] = 1e3 * statistics.median(times)
    out["latency_device"] = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    return out


def _metric(summary: dict[str, Any], group: str, key: str, metric: str) -> float:
    value = summary.get(group, {}).get(key, {}).get(metric, {})
    return float(value.get("mean", math.nan)) if value.get("n", 0) else math.nan


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def tables(records: list[dict[str, Any]], settings: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Markdown and JSON shaped like the paper's Tables 1-4 and the §4.8 quality strata."""
    done = [r for r in records if "summary" in r]
    data: dict[str, Any] = {"settings": settings, "table1": {}, "table2": {}, "table3": {}, "table4": {}, "quality": {}}
    views_head = (
        "| {} | Coronal | Left-bending | Right-bending | Mean | Dice, all (%) | Paper mean |\n"
        "|---|---:|---:|---:|---:|---:|---:|"
    )
    lines = ["# R2MF-Net paper reproduction on synthetic data", ""]
    lines += [f"- {k}: {v}" for k, v in settings.items()] + [""]

    lines += [
        "## Table 1: R2MF-Net per view",
        "",
        "| Direction | IoU (%) | Dice (%) | ASD (px) |",
        "|---|---:|---:|---:|",
    ]
    main = next((r for r in done if r["name"] == "r2mfnet"), None)
    for view in VIEWS:
        if main is None:
            break
        row = {m: _metric(main["summary"], "view", view, m) for m in ("iou", "dice", "asd_px")}
        data["table1"][view] = row
        lines.append(f"| {view} | {_fmt(row['iou'])} | {_fmt(row['dice'])} | {_fmt(row['asd_px'], 1)} |")

    def iou_rows(rows: list[dict[str, Any]], key: str, title: str) -> None:
        nonlocal lines
        lines += ["", f"## {title}", "", views_head.format("Model")]
        ours, paper = {}, {}
        for r in rows:
            reference = MODELS[r["name"]].paper_iou if r.get("name") in MODELS else None
            paper_mean = statistics.mean(reference) if reference else math.nan
            if "summary" not in r:
                lines.append(f"| {r['label']} | not run: {r.get('not_run', 'failed')} | | | | | {_fmt(paper_mean)} |")
                data[key][r["label"]] = {"not_run": r.get("not_run", "failed")}
                continue
            ious = {v: _metric(r["summary"], "view", v, "iou") for v in VIEWS}
            mean = statistics.mean(ious.values())
            dice = _metric(r["summary"], "all", "all", "dice")
            data[key][r["label"]] = {**ious, "mean": mean, "dice_all": dice, "paper_mean": paper_mean}
            cells = [_fmt(ious[v]) for v in VIEWS] + [_fmt(mean), _fmt(dice), _fmt(paper_mean)]
            lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
            ours[r["label"]] = mean
            if reference:
                paper[r["label"]] = paper_mean
        both = [label for label in ours if label in paper]
        if len(both) > 1:
            rank_ours = " > ".join(sorted(both, key=lambda k: -ours[k]))
            rank_paper = " > ".join(sorted(both, key=lambda k: -paper[k]))
            verdict = "the same" if rank_ours == rank_paper else "**different**"
            lines += ["", f"Ordering by mean IoU, here: {rank_ours}.", f"In the paper: {rank_paper} ({verdict})."]
            data[key]["_ordering"] = {"here": rank_ours, "paper": rank_paper, "same": rank_ours == rank_paper}

    ladder = [r for r in records if r["table"] == "ablation"] + [
        {**r, "label": FULL_ABLATION_LABEL} for r in records if r["name"] == "r2mfnet"
    ]
    iou_rows(ladder, "table2", "Table 2: ablation (IoU %)")
    baselines = [r for r in records if r["table"] == "baseline"] + [r for r in records if r["name"] == "r2mfnet"]
    baselines += [{"label": k, "not_run": v, "table": "baseline"} for k, v in NOT_AVAILABLE.items()]
    iou_rows(baselines, "table3", "Table 3: comparison with other models (IoU %)")

    lines += [
        "",
        "## Table 4: complexity and inference time",
        "",
        f"| Model | Parameters (M) | GFLOPs (512x512) | Time (ms / image at {settings['image_size']}, "
        "eager fp32) | Training time (min) | Epochs |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in done:
        data["table4"][r["label"]] = {
            k: r.get(k) for k in ("parameters", "gflops_512", "latency_ms", "latency_device", "train_seconds", "epochs")
        }
        lines.append(
            f"| {r['label']} | {r['parameters'] / 1e6:.2f} | {r['gflops_512']:.1f} | {r['latency_ms']:.0f} "
            f"({r['latency_device']}) | {r.get('train_seconds', math.nan) / 60:.1f} | {r.get('epochs')} |"
        )

    lines += ["", "## §4.8: Dice (%) by image quality", "", "| Model | High | Medium | Low |", "|---|---:|---:|---:|"]
    for r in done:
        dice = {q: _metric(r["summary"], "quality", q, "dice") for q in QUALITIES}
        data["quality"][r["label"]] = dice
        lines.append(f"| {r['label']} | " + " | ".join(_fmt(dice[q]) for q in QUALITIES) + " |")
    lines.append("")
    return "\n".join(lines), data


def main(argv: list[str] | None = None, bundle_root: str | None = None) -> dict[str, Any]:
    """Command line of the reproduction (``scripts/reproduce_paper.py``); ``bundle_root`` is ``--bundle_root``'s
    default (the checkout's or the current bundle when ``None``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder (data, runs/<model>/, tables.md, tables.json)")
    parser.add_argument("--models", nargs="*", default=None, choices=sorted(MODELS), help="default: all")
    parser.add_argument("--image_size", type=int, default=256, help="default 256 (the paper: 512)")
    parser.add_argument("--patients", type=int, default=60, help="synthetic patients (the paper: 228)")
    parser.add_argument("--scale", type=float, default=0.5, help="synthetic image scale (1.0: 1024-2500 px tall)")
    parser.add_argument("--max_epochs", type=int, default=20, help="default 20 (the paper: up to 150)")
    parser.add_argument("--early_stop_patience", type=int, default=15, help="epochs without improvement (§4.3)")
    parser.add_argument("--epoch_length", type=int, default=None, help="iterations per epoch (default: all)")
    parser.add_argument("--eval_split", default="test", choices=("training", "validation", "test"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--data_dir", default=None, help="an existing synthetic data set (default: OUT/data)")
    parser.add_argument("--bundle_root", default=bundle_root, help="the bundle folder (default: ./bundle or .)")
    parser.add_argument("--smoke", action="store_true", help="two tiny models, one step each (for the tests)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.smoke:
        args.models = args.models or list(SMOKE_RUNS)
        args.image_size, args.patients, args.scale = 64, 4, 0.1
        args.max_epochs, args.epoch_length, args.num_workers = 1, 1, 0
    models = args.models or list(MODELS)
    configs = find_bundle(args.bundle_root, option="--bundle_root") / "configs"
    if args.image_size <= 0 or args.image_size % 32:
        raise ValueError(f"--image_size must be a positive multiple of 32, got {args.image_size}")
    out = Path(args.out).resolve()  # the bundle runs with bundle/ as its working folder: paths must be absolute
    args.out = str(out)
    out.mkdir(parents=True, exist_ok=True)

    from tqdm.auto import tqdm

    from r2mf_monai.data.synthetic import synthesize_dataset

    data_dir = Path(args.data_dir).resolve() if args.data_dir else out / "data"
    if not (data_dir / "datalist.json").is_file():
        logger.info("synthesising %d patients (scale %.2f) into %s", args.patients, args.scale, data_dir)
        split = (max(args.patients - 2, 1), 1, 1) if args.patients < 10 else None
        synthesize_dataset(data_dir, patients=args.patients, seed=args.seed, scale=args.scale, split=split)
    settings = {
        "image_size": args.image_size,
        "patients": args.patients,
        "synthetic_scale": args.scale,
        "max_epochs": args.max_epochs,
        "epoch_length": args.epoch_length or "all training images",
        "early_stop_patience": args.early_stop_patience,
        "seed": args.seed,
        "eval_split": args.eval_split,
        "smoke": args.smoke,
    }
    records = []
    for name in tqdm(models, desc="models"):
        try:
            records.append(run_model(name, args, configs, data_dir))
        except RuntimeError as e:
            logger.error("%s", e)
            spec = MODELS[name]
            records.append({"name": name, "label": spec.label, "table": spec.table, "not_run": "failed"})
        text, data = tables(records, settings)  # written after every model, so a partial run has its tables
        write_text(out / "tables.md", text)
        write_json(out / "tables.json", data, allow_nan=True)
    logger.info("tables written to %s and %s", out / "tables.md", out / "tables.json")
    return data
