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
"""Helpers shared by the test folders (as MONAI's ``tests/test_utils.py``)."""

from __future__ import annotations

import io

import torch
from monai.networks import eval_mode

__all__ = ["assert_script_roundtrip"]


def assert_script_roundtrip(
    net: torch.nn.Module, *inputs: object, rtol: float = 1e-5, atol: float = 1e-6
) -> torch.jit.ScriptModule:
    """Script ``net``, save it to bytes, load it back and check that it gives ``net``'s eval-mode output.

    Same kernels in the same order: the outputs agree within float32 rounding (``rtol``, ``atol``).

    Returns:
        the loaded TorchScript module (in eval mode), for further checks.
    """
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(net), buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    with eval_mode(net, loaded):
        torch.testing.assert_close(loaded(*inputs), net(*inputs), rtol=rtol, atol=atol)
    return loaded
