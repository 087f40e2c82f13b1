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

"""Scoliosis measurements from spinal-column masks: centreline, curves, Cobb angles, flexibility, Lenke type.

The step after segmentation that the paper motivates (R2MF-Net §1, §3.9, §5): masks in, angles out. This layer knows
masks (numpy (H, W), row 0 at the head, nonzero = column), pixel spacing and, where it is given, the film a mask was
drawn on; it imports no network, transform or command-line code.

- :mod:`.centreline`: smoothed, arc-length-parametrised centreline and its tangent angle.
- :mod:`.levels`: vertebral levels estimated from the position along the column; Lenke regions.
- :mod:`.endplates`: vertebra corners and endplate tilts read from the notches of a corner-built outline (AASCE masks).
- :mod:`.film_tilt`: the endplate tilt read from the film along the centreline, blended with the tangent.
- :mod:`.cobb`: curves between tangent (or vertebra-tilt) extremes, Cobb angles, apex, end levels, CSVL deviation.
- :mod:`.lenke`: flexibility on side-bending views, structural curves, Lenke curve type and lumbar modifier.
- :mod:`.readers`: reading mask files and radiographs with their pixel spacing.
- :mod:`.study`: the study model (:class:`.study.StudyReport`) and :func:`.study.measure_study`.
- :mod:`.report`: per-study JSON reports and figures, :func:`.report.measure_path` for the command line.
- :mod:`.figure`: the study figure (views side by side with Cobb lines and the numbers).
"""

from __future__ import annotations

from r2mf_monai.measure.centreline import Centreline, MaskNotMeasurableError, extract_centreline
from r2mf_monai.measure.cobb import LOWEST_LEVELS, Curve, ViewMeasurement, find_curves, measure_mask
from r2mf_monai.measure.endplates import VertebraFit, aasce_angles, fit_vertebrae
from r2mf_monai.measure.film_tilt import blend_tilts, film_tilts
from r2mf_monai.measure.lenke import (
    CurveAssessment,
    LenkeClassification,
    classify_lenke,
    lenke_curve_type,
    lumbar_modifier,
)
from r2mf_monai.measure.levels import LevelModel, region_of
from r2mf_monai.measure.readers import read_mask
from r2mf_monai.measure.report import measure_path, write_report
from r2mf_monai.measure.study import StudyReport, measure_study

__all__ = [
    "LOWEST_LEVELS",
    "Centreline",
    "Curve",
    "CurveAssessment",
    "LenkeClassification",
    "LevelModel",
    "MaskNotMeasurableError",
    "StudyReport",
    "VertebraFit",
    "ViewMeasurement",
    "aasce_angles",
    "blend_tilts",
    "classify_lenke",
    "extract_centreline",
    "film_tilts",
    "find_curves",
    "fit_vertebrae",
    "lenke_curve_type",
    "lumbar_modifier",
    "measure_mask",
    "measure_path",
    "measure_study",
    "read_mask",
    "region_of",
    "write_report",
]
