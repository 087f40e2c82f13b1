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

"""R2MF-Net spinal-column segmentation of scoliosis radiographs, as a MONAI bundle."""

from __future__ import annotations

# the one place the version is written: setup.py reads it, metadata.json's required r2mf-monai and version must equal
# it (tests/test_version.py), DICOM SEG files and measurement reports stamp it
__version__ = "0.16.0"
