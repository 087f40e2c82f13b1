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

"""Readers and MONAI transforms of our own: what MONAI lacks for radiographs (paper §3.9, §4.1, §4.2).

- :mod:`.readers`: DICOM (MONOCHROME1, LUTs, compressed syntaxes), PNG/JPEG/TIFF (8/16 bit, colour to grey) and
  2-D NIfTI readers, all in MONAI's (W, H) orientation with the same metadata keys;
- :mod:`.load`: ``LoadRadiograph``/``LoadRadiographd``, one config line, one clear error per bad file;
- :mod:`.flip_view`: ``RandFlipViewd``, the §4.2 horizontal flip that swaps left/right bending views;
- :mod:`.closing`: ``BinaryClosing``/``BinaryClosingd``, the §3.9 3x3 closing;
- :mod:`.components`: ``KeepLargeComponents``/``KeepLargeComponentsd``, §3.9's largest component relaxed to every
  component at least a fraction of it (the column found in pieces on real films);
- :mod:`.framing`: ``RandSpineFramingd``, random clinical framing around the column (the field of view of real films);
- :mod:`.clahe`: ``RandCLAHEd``, random CLAHE (the look of processed clinical films), and ``CLAHEd``, the fixed
  CLAHE before the network;
- :mod:`.shadow`: ``RandColumnShadowd``, random soft-tissue shadow over part of the column (mediastinum, heart);
- :mod:`.resize`: ``AntiAliasedResized``, MONAI's anti-aliased bilinear resize computed only where it is sampled;
- :mod:`.plausibility`: ``SpinePlausibilityd``, the "is it a spine?" verdict on each predicted mask.

Everything else in the pipeline (min-max scaling, aspect-preserving resize and zero padding, the affine and
intensity augmentations, sigmoid, threshold, ``Invertd``) is MONAI's own.
"""

from __future__ import annotations

from r2mf_monai.transforms.clahe import CLAHED, CLAHEd, CLAHEDict, RandCLAHED, RandCLAHEd, RandCLAHEDict
from r2mf_monai.transforms.closing import BinaryClosing, BinaryClosingD, BinaryClosingd, BinaryClosingDict
from r2mf_monai.transforms.components import (
    KeepLargeComponents,
    KeepLargeComponentsD,
    KeepLargeComponentsd,
    KeepLargeComponentsDict,
)
from r2mf_monai.transforms.flip_view import MIRRORED_VIEWS, RandFlipViewD, RandFlipViewd, RandFlipViewDict, mirror_view
from r2mf_monai.transforms.framing import RandSpineFramingD, RandSpineFramingd, RandSpineFramingDict
from r2mf_monai.transforms.load import LoadRadiograph, LoadRadiographD, LoadRadiographd, LoadRadiographDict
from r2mf_monai.transforms.plausibility import SpinePlausibilityD, SpinePlausibilityd, SpinePlausibilityDict
from r2mf_monai.transforms.readers import (
    DicomRadiographReader,
    NiftiRadiographReader,
    RadiographNotFoundError,
    RadiographReader,
    RadiographReadError,
    RasterRadiographReader,
    pixel_spacing_from_meta,
)
from r2mf_monai.transforms.resize import (
    AntiAliasedResize,
    AntiAliasedResizeD,
    AntiAliasedResized,
    AntiAliasedResizeDict,
)
from r2mf_monai.transforms.shadow import RandColumnShadowD, RandColumnShadowd, RandColumnShadowDict

__all__ = [
    "AntiAliasedResize",
    "AntiAliasedResized",
    "AntiAliasedResizeD",
    "AntiAliasedResizeDict",
    "RandColumnShadowd",
    "RandColumnShadowD",
    "RandColumnShadowDict",
    "CLAHEd",
    "CLAHED",
    "CLAHEDict",
    "RandCLAHEd",
    "RandCLAHED",
    "RandCLAHEDict",
    "RandSpineFramingd",
    "RandSpineFramingD",
    "RandSpineFramingDict",
    "BinaryClosing",
    "BinaryClosingd",
    "BinaryClosingD",
    "BinaryClosingDict",
    "KeepLargeComponents",
    "KeepLargeComponentsD",
    "KeepLargeComponentsd",
    "KeepLargeComponentsDict",
    "MIRRORED_VIEWS",
    "RandFlipViewd",
    "RandFlipViewD",
    "RandFlipViewDict",
    "mirror_view",
    "LoadRadiograph",
    "LoadRadiographd",
    "LoadRadiographD",
    "LoadRadiographDict",
    "SpinePlausibilityd",
    "SpinePlausibilityD",
    "SpinePlausibilityDict",
    "DicomRadiographReader",
    "NiftiRadiographReader",
    "RadiographNotFoundError",
    "RadiographReader",
    "RadiographReadError",
    "RasterRadiographReader",
    "pixel_spacing_from_meta",
]
