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

"""Experiments around the bundle, not needed to train or infer: the inference benchmark, the paper reproduction,
the complexity table and the measurement-accuracy study (``scripts/`` are thin doors to them).

:mod:`r2mf_monai.experiments.models` is the one list of the models they compare. Submodules are imported where they
are used, so importing this package stays cheap.
"""

from __future__ import annotations

__all__: list[str] = []
