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

"""MONAI Deploy (App SDK 4.x, holoscan) operators that run the R2MF-Net bundle on DICOM radiographs.

* :class:`RadiographBundleInferenceOperator` runs the bundle's own ``inference.json`` pipeline (pre-processing with
  ``LoadRadiographd``, R2MF-Net of paper §3, post-processing back to the source grid) on every selected instance.
  It reads each instance's file with the same loader as training and the CLI, so MONOCHROME1 inversion, rescale and
  spacing are handled once, in one place. (The SDK's ``MonaiBundleInferenceOperator`` needs adapters for a
  single-frame radiograph - no affine, a (W, H, 1) array without channel, no MONOCHROME1 inversion, one study
  only - and would duplicate the loader's work; see ``scripts/deploy/README.md``.)
* :class:`SpineSegWriterOperator` writes one DICOM SEG per instance with ``r2mf_monai.outputs.write_dicom_seg``.
* :class:`SpineMeasurementOperator` (optional) measures the SEGs with ``r2mf_monai.measure.report.measure_path``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec

__all__ = [
    "RadiographBundleInferenceOperator",
    "SpineMeasurementOperator",
    "SpineSegWriterOperator",
    "find_bundle",
    "measurement_available",
    "seg_file_names",
]

logger = logging.getLogger(__name__)

REPO_BUNDLE = Path(__file__).resolve().parents[2] / "bundle"


def find_bundle(model_path: str | os.PathLike | None) -> Path:
    """The bundle folder for the app's ``-m`` path: a bundle folder (``configs/inference.json``), a folder holding
    exactly one bundle (how ``holoscan package --models`` lays models out), or ``R2MF_BUNDLE`` / the repository's
    ``bundle/`` when the path is empty or missing.

    Raises:
        FileNotFoundError: when no bundle can be found (names the paths tried).
    """
    tried = []
    candidates = []
    if model_path:
        p = Path(model_path)
        candidates.append(p)
        if p.is_dir():
            candidates.extend(sorted(c for c in p.iterdir() if c.is_dir()))
    if os.environ.get("R2MF_BUNDLE"):
        candidates.append(Path(os.environ["R2MF_BUNDLE"]))
    candidates.append(REPO_BUNDLE)
    for c in candidates:
        tried.append(str(c))
        if (c / "configs" / "inference.json").is_file():
            return c.resolve()
    raise FileNotFoundError(f"no MONAI bundle (configs/inference.json) in any of: {', '.join(tried)}")


def _instances(study_selected_series_list: Any) -> list[Any]:
    """Every SOP instance of every selected series of every study (the SDK's selector output)."""
    found = []
    for study_selected in study_selected_series_list or []:
        for selected in study_selected.selected_series:
            found.extend(selected.series.get_sop_instances())
    return found


class RadiographBundleInferenceOperator(Operator):
    """Segments the spinal column in each selected single-frame radiograph with the bundle's inference config.

    Input ``study_selected_series_list`` (from ``DICOMSeriesSelectorOperator``); output ``seg_results``: a list of
    ``{"source": pydicom Dataset, "path": str, "mask": (Rows, Columns) uint8 0/1}``, one per instance.

    Args:
        fragment: the application.
        bundle_path: the bundle folder (``configs/inference.json``, ``models/model.pt`` or ``models/model.ts``).
        overrides: config ids and values applied to ``inference.json`` (as on ``monai.bundle run``'s command line),
            e.g. ``{"image_size": 256}``. The environment variable ``R2MF_BUNDLE_OVERRIDES`` (a JSON object) adds to
            them.
        device: ``"cpu"``, ``"cuda"``...; defaults to the config's ``device`` (CUDA when available).
    """

    def __init__(
        self,
        fragment: Fragment,
        *args,
        bundle_path: str | os.PathLike,
        overrides: dict[str, Any] | None = None,
        device: str | None = None,
        **kwargs,
    ) -> None:
        self.bundle_path = Path(bundle_path)
        self.overrides = dict(overrides or {})
        env = os.environ.get("R2MF_BUNDLE_OVERRIDES")
        if env:
            try:
                self.overrides.update(json.loads(env))
            except json.JSONDecodeError as e:
                raise ValueError(f"R2MF_BUNDLE_OVERRIDES is not a JSON object: {e}") from e
        self.device_name = device
        self._pipeline: tuple | None = None
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("study_selected_series_list")
        spec.output("seg_results").condition(ConditionType.NONE)

    def _load(self) -> tuple:
        """Parse the bundle once: pre-processing, network with weights, inferer, post-processing, device."""
        import torch
        from monai.bundle import ConfigParser

        config_file = self.bundle_path / "configs" / "inference.json"
        parser = ConfigParser()
        parser.read_config(str(config_file))
        parser["bundle_root"] = str(self.bundle_path)
        from r2mf_monai.inference.workflow import check_overrides, parse_device

        # plain values only: MONAI's parser would run a "$..." override (R2MF_BUNDLE_OVERRIDES) as code
        for key, value in check_overrides(self.overrides).items():
            parser[key] = value
        if self.device_name:
            parser["device"] = parse_device(self.device_name, option="device")  # a torch.device, not an expression
        device = parser.get_parsed_content("device")
        ts_path = self.bundle_path / "models" / "model.ts"
        ckpt = Path(parser.get_parsed_content("ckpt_path"))
        if ckpt.is_file():
            network = parser.get_parsed_content("network_def").to(device)
            state = torch.load(str(ckpt), map_location=device, weights_only=True)
            if isinstance(state, dict) and isinstance(state.get("model"), dict):
                state = state["model"]
            network.load_state_dict(state)
        elif ts_path.is_file():
            network = torch.jit.load(str(ts_path), map_location=device)
        else:
            raise FileNotFoundError(f"bundle '{self.bundle_path}': neither '{ckpt}' nor '{ts_path}' exists")
        network.eval()
        logger.info(
            "bundle %s loaded (weights %s, device %s)", self.bundle_path, ckpt if ckpt.is_file() else ts_path, device
        )
        return (
            parser.get_parsed_content("preprocessing"),
            network,
            parser.get_parsed_content("inferer"),
            parser.get_parsed_content("postprocessing"),
            device,
        )

    def segment(self, path: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
        """The (H, W) uint8 0/1 mask of one radiograph file, on its own pixel grid, and the bundle's spine check
        verdict on it (``SpinePlausibilityd``'s ``{"spine_found": bool, "reason": str, ...}``; empty when the
        bundle's post-processing has no such check)."""
        import torch

        if self._pipeline is None:
            self._pipeline = self._load()
        pre, network, inferer, post, device = self._pipeline
        data = pre({"image": str(path)})
        with torch.no_grad():
            data["pred"] = inferer(data["image"][None].to(device), network)[0]
        data = post(data)
        pred = np.asarray(data["pred"].detach().cpu()) if hasattr(data["pred"], "detach") else np.asarray(data["pred"])
        verdict = data.get("spine") if isinstance(data.get("spine"), dict) else {}
        # MONAI's 2-D arrays are (C, W, H) (x = column): transpose to the DICOM (Rows, Columns) grid
        return (pred[0] > 0.5).T.astype(np.uint8), verdict

    def compute(self, op_input, op_output, context) -> None:
        results = []
        for instance in _instances(op_input.receive("study_selected_series_list")):
            ds = instance.get_native_sop_instance()
            path = getattr(ds, "filename", None)
            if not isinstance(path, (str, os.PathLike)) or not os.path.isfile(path):
                logger.warning("skipping SOP instance %s: no file path", ds.get("SOPInstanceUID", "?"))
                continue
            if int(ds.get("NumberOfFrames", 1) or 1) > 1:
                logger.warning("skipping %s: multi-frame images are not radiographs this bundle segments", path)
                continue
            mask, verdict = self.segment(path)
            if verdict.get("spine_found") is False:
                # the same rule as r2mf-monai infer: a film with no spine gets no SEG and no Secondary Capture
                logger.warning(
                    "%s: no spine found (%s): no DICOM SEG or Secondary Capture", path, verdict.get("reason")
                )
                continue
            rows, cols = int(ds.Rows), int(ds.Columns)
            if mask.shape != (rows, cols):
                raise ValueError(f"{path}: mask shape {mask.shape} is not the image's Rows x Columns {(rows, cols)}")
            logger.info("%s: %d column pixels of %d", path, int(mask.sum()), mask.size)
            results.append({"source": ds, "path": str(path), "mask": mask})
        if not results:
            logger.warning("no CR or DX radiograph was selected (Modality CR|DX): nothing segmented")
        op_output.emit(results, "seg_results")


def seg_file_names(results: list[dict[str, Any]]) -> list[str]:
    """``<source name>_seg.dcm`` for each result (``{"path": source file, "source": its dataset}``), in their order.

    Two sources with the same file name (in two input folders) keep both SEGs: the one whose path sorts first keeps
    the plain name, the other gets its SOPInstanceUID after the name. A DICOM attribute never reaches a path as it is:
    the UID goes through :func:`r2mf_monai.outputs.dicom_seg.uid_file_part` (a valid UID is kept, anything else
    such as ``1/../../escaped`` is hashed), and the writer refuses a path outside the output folder.
    """
    from r2mf_monai.outputs.dicom_seg import uid_file_part

    names: dict[int, str] = {}
    used: set[str] = set()
    for i in sorted(range(len(results)), key=lambda k: str(results[k]["path"])):
        stem = Path(results[i]["path"]).name
        stem = stem[: -len(".dcm")] if stem.lower().endswith(".dcm") else stem
        if stem in used:  # same file name in two input folders: keep both
            stem = f"{stem}_{uid_file_part(results[i]['source'].get('SOPInstanceUID'))}"
        while stem in used:  # the same instance twice: a number
            stem = f"{stem}_{len(used)}"
        used.add(stem)
        names[i] = f"{stem}_seg.dcm"
    return [names[i] for i in range(len(results))]


class SpineSegWriterOperator(Operator):
    """Writes ``<source name>_seg.dcm`` (a DICOM SEG aligned with its source) for each result, and beside it
    ``<source name>_sc.dcm``: a DICOM Secondary Capture of the overlay with the curves and Cobb angles burnt in, in
    the source's study, for PACS that cannot show a SEG (``r2mf_monai.outputs.secondary_capture``).

    Input ``seg_results`` (from :class:`RadiographBundleInferenceOperator`); output ``seg_files``: the written paths,
    in input order, with their sources (``[{"seg": str, "sc": str, "source": str}]``).

    Args:
        fragment: the application.
        output_folder: the folder the SEG files are written to (created).
    """

    def __init__(self, fragment: Fragment, *args, output_folder: str | os.PathLike, **kwargs) -> None:
        self.output_folder = Path(output_folder)
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("seg_results")
        spec.output("seg_files").condition(ConditionType.NONE)

    def compute(self, op_input, op_output, context) -> None:
        from r2mf_monai.outputs.atomic import confined_path
        from r2mf_monai.outputs.dicom_seg import write_dicom_seg
        from r2mf_monai.outputs.secondary_capture import write_secondary_capture

        self.output_folder.mkdir(parents=True, exist_ok=True)
        written = []
        results = list(op_input.receive("seg_results") or [])
        for result, name in zip(results, seg_file_names(results), strict=True):
            path = confined_path(self.output_folder, name)
            out = write_dicom_seg(result["source"], result["mask"], path, root=self.output_folder)
            logger.info("DICOM SEG written: %s", out)
            # the same name with _sc: the picture every PACS shows (the writer loads and measures the source film)
            sc_path = confined_path(self.output_folder, name[: -len("_seg.dcm")] + "_sc.dcm")
            sc = write_secondary_capture(result["path"], result["mask"], sc_path, root=self.output_folder)
            written.append({"seg": str(out), "sc": str(sc), "source": result["path"]})
        op_output.emit(written, "seg_files")


def measurement_available() -> bool:
    """Whether ``r2mf_monai.measure.report`` (curves, Cobb angles, Lenke type) can be imported."""
    try:
        from r2mf_monai.measure.report import measure_path  # noqa: F401
    except ImportError as e:
        logger.warning("measurement report skipped: r2mf_monai.measure.report is not available (%s)", e)
        return False
    return True


class SpineMeasurementOperator(Operator):
    """Writes a measurement report (JSON + figure) for the written SEGs with ``r2mf_monai.measure.report``.

    Files named ``<patient>_<view>`` (views ``coronal``, ``left_bending``, ``right_bending``) give one report per
    patient with flexibility and Lenke type; others one report per image. A SEG that cannot be measured (e.g. an
    empty mask) is logged and skipped: the SEGs are the app's primary output.

    Args:
        fragment: the application.
        output_folder: the report folder (created).
    """

    def __init__(self, fragment: Fragment, *args, output_folder: str | os.PathLike, **kwargs) -> None:
        self.output_folder = Path(output_folder)
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("seg_files")

    def compute(self, op_input, op_output, context) -> None:
        import shutil
        import tempfile

        from r2mf_monai.measure.report import measure_path

        files = op_input.receive("seg_files")
        if not files:
            return
        # one folder of SEGs and one of their sources, so that measure_path groups views by patient
        with tempfile.TemporaryDirectory() as tmp:
            segs, images = Path(tmp, "segs"), Path(tmp, "images")
            segs.mkdir()
            images.mkdir()
            for f in files:
                # named as the source, so the reports are '<source>_measurements.*' and find their radiograph
                name = Path(f["seg"]).name.replace("_seg.dcm", ".dcm")
                shutil.copyfile(f["seg"], segs / name)
                os.symlink(os.path.abspath(f["source"]), images / name)
            try:
                reports = measure_path(segs, output=self.output_folder, images=images)
            except (ValueError, FileNotFoundError) as e:
                # one unmeasurable mask (e.g. empty) stops a folder run: measure the others one by one
                logger.warning("%s; measuring each SEG on its own", e)
                reports = {}
                for seg in sorted(segs.iterdir()):
                    try:
                        reports.update(measure_path(seg, output=self.output_folder, images=images / seg.name))
                    except (ValueError, FileNotFoundError) as err:
                        logger.warning("measurement report of %s skipped: %s", seg.name, err)
        for patient, paths in reports.items():
            logger.info("measurement report for %s: %s", patient, paths.get("report"))
