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

"""What only inference needs: input discovery, the fast paths, the ONNX Runtime backend and the bundle's workflow.

The bundle's ``inference.json`` reads its inputs with :mod:`r2mf_monai.inference.discover`, wraps its network with
:func:`r2mf_monai.inference.fast_inference.prepare_for_inference` and, for ``r2mf-monai infer --backend onnxruntime``,
runs it through :mod:`r2mf_monai.inference.onnx_backend`; :mod:`r2mf_monai.inference.column_top` is the optional
second look at the top of the column (``column_top_second_look``). ``r2mf-monai infer`` and the public benchmark run
that config from Python with :mod:`r2mf_monai.inference.workflow`. Submodules are imported where they are used, so
importing this package stays cheap.
"""

from __future__ import annotations

__all__: list[str] = []
