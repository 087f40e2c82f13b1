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

"""Data for training and testing: the synthetic generator (``synthetic/``), datalists from a user's folders
(``datalist``), the data set a training run needs, generated on first use (``ensure``), the view-balanced sampler
(``sampler``) and the AASCE landmark-to-mask converter (``landmarks``).

Nothing here is needed at inference (finding the inputs of a run is :mod:`r2mf_monai.inference.discover`).
Submodules are imported where they are used (for example ``from r2mf_monai.data.synthetic import
synthesize_dataset``), so importing this package stays cheap.
"""

from __future__ import annotations

__all__: list[str] = []
