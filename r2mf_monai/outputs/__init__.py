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

"""The output layer: atomic writing, mask PNG/NIfTI and overlays, DICOM SEG, and the bundle's saving transform.

``SaveSegmentationd`` (and ``SUPPORTED_FORMATS``) are imported on first use, so that code which only draws or
writes masks (the measurement report, the CLI) does not pay for importing MONAI and torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from r2mf_monai.outputs.atomic import atomic_write, full_suffix
from r2mf_monai.outputs.dicom_seg import read_dicom_header, spinal_column_segment, write_dicom_seg
from r2mf_monai.outputs.overlay import (
    comparison_overlay,
    overlay_mask,
    save_comparison_overlay,
    save_mask_png,
    save_overlay,
    window_percentile,
)

__all__ = [
    "SUPPORTED_FORMATS",
    "SaveSegmentationD",
    "SaveSegmentationDict",
    "SaveSegmentationd",
    "atomic_write",
    "comparison_overlay",
    "full_suffix",
    "overlay_mask",
    "read_dicom_header",
    "save_comparison_overlay",
    "save_mask_png",
    "save_overlay",
    "spinal_column_segment",
    "window_percentile",
    "write_dicom_seg",
]

_LAZY = {"SUPPORTED_FORMATS", "SaveSegmentationD", "SaveSegmentationDict", "SaveSegmentationd"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("r2mf_monai.outputs.save_segmentation"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
