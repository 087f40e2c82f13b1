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

"""Distribution ``r2mf-monai``: R2MF-Net spinal-column segmentation as a MONAI bundle.

On a CPU-only machine install ``torch==2.13.0`` (or a wheel from PyTorch's CPU index) *before* this package:
``torch>=2.4`` alone lets pip pick a multi-GB CUDA build.
"""

from __future__ import annotations

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# the version is written once, in r2mf_monai/__init__.py (importing the package here would need its dependencies)
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "r2mf_monai" / "__init__.py").read_text(), re.M).group(1)

INSTALL_REQUIRES = [
    "monai>=1.6,<1.7",
    "torch>=2.4",
    "numpy>=1.24",
    "scipy",
    "nibabel",
    "pydicom>=2.4",
    "highdicom>=0.22",
    "itk>=5.3",
    "scikit-image>=0.21",
    "pillow",
    "matplotlib",
    "tqdm",
    "tensorboard",
    "pytorch-ignite>=0.4.11",
    "fire",
    # verify_metadata needs jsonschema and none of MONAI's extras pulls it in
    "jsonschema",
]

EXTRAS = {
    # the CPU-only ONNX path; torch>=2.6 exports through the dynamo exporter, which needs onnxscript
    "onnx": ["onnx>=1.16", "onnxruntime>=1.18", "onnxscript"],
    # decoders for the compressed transfer syntaxes pydicom cannot decode on its own
    "dicom": ["pylibjpeg", "pylibjpeg-libjpeg", "pylibjpeg-openjpeg"],
    # MONAI Deploy and MONAI Label live in venvs of their own (see README): they pin torch, pydicom and protobuf
    "deploy": ["monai-deploy-app-sdk>=4.0,<5"],
    "label": ["monailabel==0.8.5", "pydicom<3", "pynetdicom<3", "dicomweb-client<0.60", "highdicom<0.23"],
}
# the SwinUNETR baseline (bundle/configs/baselines) needs einops
EXTRAS["baselines"] = ["einops"]
EXTRAS["test"] = [
    "pytest>=8",
    "pytest-timeout",
    "ruff",
    *EXTRAS["onnx"],
    *EXTRAS["dicom"],
    *EXTRAS["baselines"],
]

setup(
    name="r2mf-monai",
    version=VERSION,
    description="R2MF-Net spinal-column segmentation of scoliosis radiographs as a MONAI bundle, with Cobb angles",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["r2mf_monai", "r2mf_monai.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["r2mf-monai=r2mf_monai.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Intended Audience :: Science/Research",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
    ],
)
