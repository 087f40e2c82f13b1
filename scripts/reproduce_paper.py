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

"""Reproduce the experiments of the R2MF-Net paper (Tables 1-4 and the quality strata of §4.8) on synthetic data.

The work lives in :mod:`r2mf_monai.experiments.reproduction`; run with ``--help`` for the options::

    python scripts/reproduce_paper.py --out outputs/reproduction              # the CPU budget (see --help)
    python scripts/reproduce_paper.py --out outputs/paper --image_size 512 --patients 228 --scale 1.0 \\
        --max_epochs 150                                                      # the paper's settings (GPU)
    python scripts/reproduce_paper.py --out /tmp/smoke --smoke                # two tiny models, one step each
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(REPO))

from r2mf_monai.experiments.reproduction import main  # noqa: E402

if __name__ == "__main__":
    main(bundle_root=str(REPO / "bundle"))
