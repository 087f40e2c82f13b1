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

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(REPO))

logger = logging.getLogger("reproduce_paper")

VIEWS = ("coronal", "left_bending", "right_bending")
QUALITIES = ("high", "medium", "low")

# name -> (row label, table, baseline override file or None, extra overrides)
RUNS: dict[str, tuple[str, str, str | None, dict[str, Any]]] = {
    "r2mfnet": ("R2MF-Net (full)", "main", None, {}),
    "ablation_baseline": ("Baseline 2-stage U-Net", "ablation", "two_stage_unet.json", {}),
    "ablation_r2jump": (
        "+ R2-Jump",
        "ablation",
        None,
        {"network_def#use_inception": False, "network_def#use_mcskip": False, "network_def#use_scse": False},
    ),
    "ablation_inception": (
        "+ Inception-R",
        "ablation",
        None,
        {"network_def#use_mcskip": False, "network_def#use_scse": False},
    ),
    "ablation_mcskip": ("+ MC-Skip", "ablation", None, {"network_def#use_scse": False}),
    "deeplabv3plus": ("DeepLabV3+", "baseline", "deeplabv3plus.json", {}),
    "attention_unet": ("Attention U-Net", "baseline", "attention_unet.json", {}),
    "resunet": ("ResUNet (MONAI UNet, 2 residual units)", "baseline", "resunet.json", {}),
    "unet": ("U-Net (MONAI UNet)", "baseline", "unet.json", {}),
    "swin_unetr": ("SwinUNETR 2-D (for Swin-UNet)", "baseline", "swin_unetr.json", {}),
    "dynunet": ("DynUNet (nnU-Net-style)", "baseline", "dynunet.json", {}),
}
NOT_AVAILABLE = {
    "HarDNet-Seg": "no maintained PyTorch implementation to build on (not written here)",
    "TransUNet": "no maintained PyTorch implementation to build on (not written here)",
}
# the paper's IoU (%) per view (coronal, left-bending, right-bending): Table 2 for the ladder, Table 3 for the
# baselines; R2MF-Net is Table 2's "R2MF-Net (full)" = Table 3's row (Table 2 also lists "+ SCSE-Lite" at
# 92.56/93.34/93.02)
PAPER_IOU: dict[str, tuple[float, float, float]] = {
    "r2mfnet": (93.25, 94.52, 94.01),
    "ablation_baseline": (89.21, 90.45, 89.73),
    "ablation_r2jump": (91.08, 92.11, 91.67),
    "ablation_inception": (91.52, 92.34, 92.01),
    "ablation_mcskip": (92.03, 92.89, 92.47),
    "deeplabv3plus": (90.42, 91.35, 90.97),
    "attention_unet": (89.93, 90.48, 90.25),
    "resunet": (89.88, 90.70, 90.11),
    "swin_unetr": (91.34, 92.27, 92.01),
}
SMOKE_RUNS = ("r2mfnet", "unet")


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


def _network_key(name: str) -> str:
    """The benchmark/smoke model key of a run (ablation variants are R2MF-Nets)."""
    if name.startswith("ablation_"):
        return "two_stage_unet" if name == "ablation_baseline" else "r2mfnet"
    return name


def _available(override: str | None) -> str | None:
    """Why a model cannot run in this environment, or None."""
    if override == "deeplabv3plus.json":
        try:
            import segmentation_models_pytorch  # noqa: F401
        except ImportError:
            return "segmentation-models-pytorch is not installed (needs its own venv, see bundle/docs/baselines.md)"
    if override == "swin_unetr.json":
        try:
            import einops  # noqa: F401
        except ImportError:
            return "einops is not installed (MONAI's SwinUNETR needs it)"
    return None


def run_model(name: str, args: argparse.Namespace, configs: Path, data_dir: Path) -> dict[str, Any]:
    """Train (unless done) and evaluate (unless done) one model; return its record."""
    label, table, override, extra = RUNS[name]
    run_dir = Path(args.out) / "runs" / name
    models_dir, eval_dir = run_dir / "models", run_dir / "eval"
    record: dict[str, Any] = {"name": name, "label": label, "table": table}
    reason = _available(override)
    if reason:
        record["not_run"] = reason
        return record
    files = [str(configs / "train.json")] + ([str(configs / "baselines" / override)] if override else [])
    overrides: dict[str, Any] = {
        "bundle_root": str(configs.parent),
        "dataset_dir": str(data_dir),
        "image_size": args.image_size,
        "seed": args.seed,
        "num_workers": args.num_workers,
        **extra,
    }
    if args.smoke:
        from r2mf_monai.experiments.benchmark import SMOKE_OVERRIDES  # narrow widths, by the benchmark's model key

        overrides.update(SMOKE_OVERRIDES.get(_network_key(name), {}))
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
    record.update(_complexity(files, overrides, args))
    return record


def _epochs_run(metrics_csv: Path) -> int | None:
    if not metrics_csv.is_file():
        return None
    rows = [line for line in metrics_csv.read_text().splitlines()[1:] if line.strip()]
    return len(rows)


def _complexity(files: list[str], overrides: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Parameters, GFLOPs at 512x512 and the latency of one image at ``--image_size`` on the run's device."""
    import torch
    from monai.bundle import ConfigParser

    from r2mf_monai.experiments.benchmark import count_complexity

    parser = ConfigParser()
    parser.read_config(files)
    for key, value in overrides.items():
        if key.startswith("network_def"):
            parser[key] = value
    net = parser.get_parsed_content("network_def", instantiate=True).eval()
    out: dict[str, Any] = {}
    c512 = count_complexity(net, 512)
    out["parameters"], out["gflops_512"] = c512["parameters"], c512["flops"] / 1e9
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = net.to(device)
    x = torch.rand(1, 1, args.image_size, args.image_size, device=device)
    times = []
    with torch.no_grad():
        for i in range(4):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            net(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i:
                times.append(time.perf_counter() - t0)
    out["latency_ms"] = 1e3 * statistics.median(times)
    out["latency_device"] = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
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
            reference = PAPER_IOU.get(r.get("name", ""))
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
        {**r, "label": "+ SCSE-Lite (= R2MF-Net, full)"} for r in records if r["name"] == "r2mfnet"
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


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder (data, runs/<model>/, tables.md, tables.json)")
    parser.add_argument("--models", nargs="*", default=None, choices=sorted(RUNS), help="default: all")
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
    parser.add_argument("--bundle_root", default=str(REPO / "bundle"))
    parser.add_argument("--smoke", action="store_true", help="two tiny models, one step each (for the tests)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.smoke:
        args.models = args.models or list(SMOKE_RUNS)
        args.image_size, args.patients, args.scale = 64, 4, 0.1
        args.max_epochs, args.epoch_length, args.num_workers = 1, 1, 0
    models = args.models or list(RUNS)
    configs = Path(args.bundle_root) / "configs"
    if not (configs / "train.json").is_file():
        raise FileNotFoundError(f"--bundle_root: no configs/train.json in '{args.bundle_root}'")
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
            records.append({"name": name, "label": RUNS[name][0], "table": RUNS[name][1], "not_run": "failed"})
        text, data = tables(records, settings)  # written after every model, so a partial run has its tables
        _write_atomic(out / "tables.md", text)
        _write_atomic(out / "tables.json", json.dumps(data, indent=2, allow_nan=True))
    logger.info("tables written to %s and %s", out / "tables.md", out / "tables.json")
    return data


if __name__ == "__main__":
    main()
