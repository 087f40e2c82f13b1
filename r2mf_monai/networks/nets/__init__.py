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

"""Networks: R2MF-Net (paper §3.2, §3.7)."""

from __future__ import annotations

from .r2mfnet import R2MFNet, R2MFnet, r2mfnet

__all__ = ["R2MFNet", "R2MFnet", "r2mfnet"]
