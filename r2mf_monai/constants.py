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

"""Facts every layer shares: the three views of a scoliosis study, the vertebrae the column masks span and the file
suffixes a radiograph (or mask) may have.

One source for each (design.md, "Habits"): the data tools, the transforms, the handlers, the measurement and the
experiments import them from here.
"""

from __future__ import annotations

__all__ = [
    "DICOM_SUFFIXES",
    "NIFTI_SUFFIXES",
    "QUALITIES",
    "RADIOGRAPH_SUFFIXES",
    "RASTER_SUFFIXES",
    "VERTEBRAE",
    "VIEWS",
]

VIEWS: tuple[str, ...] = ("coronal", "left_bending", "right_bending")
"""The radiographs of one patient, in the order they are listed: standing coronal (postero-anterior or
antero-posterior), then the left- and right-bending views (paper §4.1; Lenke et al. 2001 read flexibility from the
bending views)."""

VERTEBRAE: tuple[str, ...] = tuple([f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)])
"""The 17 thoracic and lumbar vertebrae, top to bottom: the levels a column mask spans and Cobb angles are named by
(the AASCE 2019 landmarks give four corners for each of them)."""

RASTER_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif")
"""Picture files (read with PIL), lower case."""
DICOM_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom", ".dic")
"""DICOM files (a file without a suffix is tried as DICOM too, by its preamble)."""
NIFTI_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz")
"""NIfTI files (one 2-D image)."""
RADIOGRAPH_SUFFIXES: tuple[str, ...] = RASTER_SUFFIXES + DICOM_SUFFIXES + NIFTI_SUFFIXES
"""Every suffix the bundle's reader (:class:`r2mf_monai.transforms.readers.RadiographReader`) accepts: input
discovery, datalists, the landmark converter, the measurement's mask files and the experiments take it from here."""

QUALITIES: tuple[str, ...] = ("high", "medium", "low")
"""Image-quality strata of the paper's §4.8 (the synthetic generator's levels and the evaluation's strata)."""
