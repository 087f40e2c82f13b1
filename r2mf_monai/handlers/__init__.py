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

"""Ignite/MONAI handlers of our own: a per-epoch metrics CSV, the run's progress bar and epoch lines, the model's
``model.json``, the review flag and the stratified evaluation report. Under ``torch.distributed``
(``multi_gpu_evaluate.json``) the review flag and the report gather every rank's records and rank 0 writes them
(:mod:`r2mf_monai.handlers.distributed`)."""

from __future__ import annotations

from r2mf_monai.handlers.epoch_csv import EpochMetricsCSV
from r2mf_monai.handlers.model_config import ModelConfigSaver
from r2mf_monai.handlers.progress import TrainingProgress
from r2mf_monai.handlers.review_flag import ReviewFlag, flip_dropout_uncertainty, mask_uncertainty, review_uncertainty
from r2mf_monai.handlers.segmentation_report import SegmentationReport, segmentation_metrics

__all__ = [
    "EpochMetricsCSV",
    "ModelConfigSaver",
    "ReviewFlag",
    "SegmentationReport",
    "TrainingProgress",
    "flip_dropout_uncertainty",
    "mask_uncertainty",
    "review_uncertainty",
    "segmentation_metrics",
]
