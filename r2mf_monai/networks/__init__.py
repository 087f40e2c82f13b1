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

"""R2MF-Net and its blocks as MONAI-style networks; knows tensors only (no transforms, no I/O)."""

from __future__ import annotations

from .blocks import InceptionResidualBlock, MultiScaleCrossStageSkip, R2JumpConnection, SCSELite
from .nets import R2MFNet

__all__ = ["InceptionResidualBlock", "MultiScaleCrossStageSkip", "R2JumpConnection", "R2MFNet", "SCSELite"]
