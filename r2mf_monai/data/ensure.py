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

"""Make sure a bundle run has a data set: the user's datalist, or the synthetic one generated on first use.

A fresh clone has no data (the paper's clinical images are private), so ``train.json`` calls
:func:`ensure_datalist`: it returns the datalist when there is one, generates the synthetic data set into an empty
``dataset_dir`` otherwise (logging that it does so), and refuses to guess when ``dataset_dir`` holds files but no
datalist.
"""

from __future__ import annotations

import logging
import os

__all__ = ["ensure_datalist"]

logger = logging.getLogger(__name__)


def ensure_datalist(datalist: str, dataset_dir: str, patients: int = 228, seed: int = 0, scale: float = 1.0) -> str:
    """Return ``datalist``, generating the synthetic data set into ``dataset_dir`` first when neither exists.

    Args:
        datalist: path of the MONAI datalist JSON (``training``/``validation``/``test`` lists).
        dataset_dir: folder of the data set; generated into when it is missing or empty.
        patients: synthetic patients to generate (three views each). Defaults to ``228`` (paper §4.1).
        seed: seed of the synthetic generator. Defaults to ``0``.
        scale: image-size factor of the synthetic generator. Defaults to ``1.0``.

    Raises:
        FileNotFoundError: ``dataset_dir`` holds files but ``datalist`` does not exist (names both).
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        # under torchrun only rank 0 generates; the others wait for it (multi_gpu_train.json)
        if dist.get_rank() == 0:
            path = _ensure(datalist, dataset_dir, patients, seed, scale)
        dist.barrier()
        return path if dist.get_rank() == 0 else _ensure(datalist, dataset_dir, patients, seed, scale)
    return _ensure(datalist, dataset_dir, patients, seed, scale)


def _ensure(datalist: str, dataset_dir: str, patients: int, seed: int, scale: float) -> str:
    if os.path.isfile(datalist):
        return os.path.abspath(datalist)
    if os.path.isdir(dataset_dir) and any(not name.startswith(".") for name in os.listdir(dataset_dir)):
        raise FileNotFoundError(
            f"datalist '{datalist}' does not exist, and dataset_dir '{dataset_dir}' is not empty: build a datalist "
            "with `r2mf-monai datalist --images DIR --labels DIR --output DATALIST` and pass --datalist DATALIST"
        )
    from r2mf_monai.data.synthetic import synthesize_dataset

    logger.warning(
        "no data set in '%s': generating the synthetic data set there (%d patients, seed %d, scale %s)",
        os.path.abspath(dataset_dir),
        patients,
        seed,
        scale,
    )
    written = synthesize_dataset(dataset_dir, patients=patients, seed=seed, scale=scale)
    if os.path.abspath(str(written)) != os.path.abspath(datalist):
        raise FileNotFoundError(
            f"the synthetic data set was written to '{written}', not to the datalist '{datalist}': "
            "pass --datalist pointing into dataset_dir"
        )
    return os.path.abspath(datalist)
