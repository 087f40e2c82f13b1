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

"""R2MF-Net spinal-column segmentation as a MONAI Deploy application: DICOM radiographs in, DICOM SEG and SC out.

Graph (paper §3 for the network; the bundle's ``inference.json`` for everything around it)::

    DICOMDataLoaderOperator -> DICOMSeriesSelectorOperator (Modality CR|DX)
        -> RadiographBundleInferenceOperator -> SpineSegWriterOperator [-> SpineMeasurementOperator]

Run locally (MONAI Deploy venv: ``bash .ci/integration.sh deploy``)::

    .ci/venv-deploy/bin/python scripts/deploy/app.py -i DICOM_FOLDER -o OUTPUT_FOLDER -m bundle

``-m`` is the bundle folder (``configs/`` + ``models/model.pt``); without it, ``$R2MF_BUNDLE`` or this
repository's ``bundle/``. ``R2MF_MEASURE=0`` leaves the measurement report out. Every CR/DX single-frame instance of
every study in the input folder gets ``<file name>_seg.dcm`` in the output folder, and ``<file name>_sc.dcm``: a
Secondary Capture of the overlay with the curves and Cobb angles burnt in, for PACS that cannot show a SEG.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from monai.deploy.conditions import CountCondition
from monai.deploy.core import Application
from monai.deploy.operators.dicom_data_loader_operator import DICOMDataLoaderOperator
from monai.deploy.operators.dicom_series_selector_operator import DICOMSeriesSelectorOperator

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the operators beside this file, however it is launched

from spine_operators import (  # noqa: E402
    RadiographBundleInferenceOperator,
    SpineMeasurementOperator,
    SpineSegWriterOperator,
    find_bundle,
    measurement_available,
)

__all__ = ["RADIOGRAPH_RULES", "R2MFSpineSegApp"]

# Projection radiographs: computed (CR) and digital (DX) radiography, every matching series of every study.
RADIOGRAPH_RULES = """
{
    "selections": [
        {
            "name": "Projection radiograph",
            "conditions": {
                "Modality": "(?i)^(CR|DX)$"
            }
        }
    ]
}
"""


class R2MFSpineSegApp(Application):
    """Segments the spinal column in CR/DX radiographs with the R2MF-Net bundle and writes DICOM SEG files.

    The measurement report (curves, Cobb angles, Lenke type, ``r2mf_monai.measure.report``) is added when that module
    imports and ``R2MF_MEASURE`` is not ``0``; otherwise it is left out with a log line.
    """

    def compose(self) -> None:
        app_context = Application.init_app_context(self.argv)
        input_path = Path(app_context.input_path)
        output_path = Path(app_context.output_path)
        bundle = find_bundle(app_context.model_path)
        logging.info("input %s | output %s | bundle %s", input_path, output_path, bundle)

        loader = DICOMDataLoaderOperator(self, CountCondition(self, 1), input_folder=input_path, name="study_loader")
        selector = DICOMSeriesSelectorOperator(self, rules=RADIOGRAPH_RULES, all_matched=True, name="series_selector")
        infer = RadiographBundleInferenceOperator(self, bundle_path=bundle, name="r2mf_bundle_inference")
        writer = SpineSegWriterOperator(self, output_folder=output_path, name="dicom_seg_writer")

        self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
        self.add_flow(selector, infer, {("study_selected_series_list", "study_selected_series_list")})
        self.add_flow(infer, writer, {("seg_results", "seg_results")})
        if os.environ.get("R2MF_MEASURE", "1") != "0" and measurement_available():
            report = SpineMeasurementOperator(self, output_folder=output_path / "measurements", name="measurement")
            self.add_flow(writer, report, {("seg_files", "seg_files")})


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    R2MFSpineSegApp().run()
