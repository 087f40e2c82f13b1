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

"""Benchmark R2MF-Net and its baselines on this machine: one run, one table (bundle/docs/benchmark.md and .json).

The work lives in :mod:`r2mf_monai.experiments.benchmark` (also ``r2mf-monai benchmark``); run with ``--help`` for
the options::

    python scripts/benchmark.py                      # every model and path at 512x512 (about 30 min on 2 cores)
    python scripts/benchmark.py --models r2mfnet --paths eager_fp32 channels_last bf16 onnxruntime
    python scripts/benchmark.py --smoke --output_dir /tmp/bench   # tiny sizes, seconds
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(REPO))

from r2mf_monai.experiments.benchmark import main  # noqa: E402

if __name__ == "__main__":
    main()
