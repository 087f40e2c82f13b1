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
"""r2mf_monai.experiments.reproduction: the complexity table of the ablation ladder."""

from __future__ import annotations

import pytest
import torch

from r2mf_monai.experiments.models import ABLATION, build_network
from r2mf_monai.experiments.reproduction import ablation_label, complexity_table
from r2mf_monai.networks.complexity import count_complexity


def test_table(tmp_path):
    out = tmp_path / "sub" / "complexity.md"
    text = complexity_table(64, output=out)
    assert out.read_text(encoding="utf-8") == text
    assert sorted(p.name for p in out.parent.iterdir()) == ["complexity.md"]  # no temporary file left behind
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| Variant")]
    assert [r.split("|")[1].strip() for r in rows[:-1]] == [ablation_label(m) for m in ABLATION]
    assert rows[-1].startswith("| Paper, Table 4")
    params = [float(r.split("|")[2]) for r in rows[:-1]]
    assert params == sorted(params)  # each row of the ladder adds a block
    full = count_complexity(build_network("r2mfnet"), 64)
    assert float(rows[-2].split("|")[2]) == pytest.approx(full["parameters"] / 1e6, abs=0.005)
    assert float(rows[-2].split("|")[3]) == pytest.approx(full["flops"] / 1e9, abs=0.05)
    assert "2 x GMACs" in text


def test_ladder_switches_blocks_off_in_order():
    flags = ("use_r2jump", "use_inception", "use_mcskip", "use_scse")
    with torch.device("meta"):
        nets = [build_network(m) for m in ABLATION]
    on = [[getattr(n, f) for f in flags] for n in nets]
    assert on == [[i < k for i in range(4)] for k in range(5)]


@pytest.mark.parametrize("size", [0, 50, -16, 32.0 + 0.5])
def test_bad_image_size(size):
    with pytest.raises(ValueError, match="image_size"):
        complexity_table(size)
