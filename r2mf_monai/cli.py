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

"""The ``r2mf-monai`` command (python-fire). One thin function per sub-command; the work lives in the library.

Each function imports its module lazily so that ``r2mf-monai --help`` stays fast and a sub-command only pays for
what it uses.
"""

from __future__ import annotations

from typing import Any

import fire


def summary(image_size: int = 512, output: str | None = None) -> str:
    """Parameters and GFLOPs at 1x1xNxN of the default R2MF-Net and of every ablation variant (paper Table 2/4).

    Args:
        image_size: side of the square input. Defaults to ``512``.
        output: optional path of a Markdown file to write the table to.
    """
    from r2mf_monai.networks.complexity import complexity_table

    return complexity_table(image_size=image_size, output=output)


def synthesize(
    out_dir: str,
    patients: int = 228,
    seed: int = 0,
    split: tuple[int, int, int] | None = None,
    scale: float = 1.0,
    workers: int | None = None,
    preview: bool = False,
) -> str:
    """Generate a synthetic multi-view scoliosis data set (images, masks, datalist.json, ground_truth.json).

    Args:
        out_dir: folder to write into (created).
        patients: number of patients; each gives coronal, left-bending and right-bending views. Defaults to ``228``.
        seed: random seed; the same seed gives the same files. Defaults to ``0``.
        split: patients in (training, validation, test); defaults to the paper's 148/40/40 proportions.
        scale: image-size factor (1.0 gives 1024-2500 px tall portrait images; tests use small factors).
        workers: processes to render with; defaults to the CPU count.
        preview: also write ``preview.png``, a grid of triplets with the masks overlaid.
    """
    from r2mf_monai.data.synthetic import synthesize_dataset

    return str(
        synthesize_dataset(
            out_dir, patients=patients, seed=seed, split=split, scale=scale, workers=workers, preview=preview
        )
    )


def datalist(
    images: str,
    labels: str | None = None,
    output: str = "datalist.json",
    pattern: str = r"(?P<patient_id>[^_]+)_(?P<view>coronal|left|right)",
    split: tuple[float, float, float] = (0.65, 0.175, 0.175),
    seed: int = 0,
) -> str:
    """Build a MONAI datalist (training/validation/test, split by patient) from a user's image and label folders.

    Args:
        images: folder of radiographs (DICOM, PNG, JPEG, NIfTI).
        labels: folder of masks with the same stem as their image; omit for an unlabelled (inference) list.
        output: datalist JSON to write.
        pattern: regular expression with named groups ``patient_id`` and ``view`` matched against file stems.
        split: fractions of patients for training, validation and test.
        seed: seed of the patient shuffle.
    """
    from r2mf_monai.data.datalist import build_datalist

    return str(build_datalist(images, labels, output=output, pattern=pattern, split=split, seed=seed))


def landmarks2mask(landmarks: str, images: str, out_dir: str) -> str:
    """Convert AASCE/SpineWeb-style vertebra corner landmarks (17 x 4 corners, .mat or .csv) to whole-column masks.

    Args:
        landmarks: a landmark file or a folder of them.
        images: folder of the matching images (for the mask size).
        out_dir: folder for the PNG masks.
    """
    from r2mf_monai.data.landmarks import convert_landmarks

    return str(convert_landmarks(landmarks, images, out_dir))


def measure(masks: str, output: str | None = None, spacing: float | None = None) -> Any:
    """Scoliosis measurements (curves, Cobb angles, flexibility, Lenke type) from masks or a study folder.

    Args:
        masks: a mask file, a folder of masks, or a study folder with coronal, left and right views.
        output: folder for the JSON report and figure; defaults to next to the masks.
        spacing: pixel spacing in mm where the files do not carry it.
    """
    from r2mf_monai.measure.report import measure_path

    return measure_path(masks, output=output, spacing=spacing)


COMMANDS = {
    "summary": summary,
    "synthesize": synthesize,
    "datalist": datalist,
    "landmarks2mask": landmarks2mask,
    "measure": measure,
}


def main() -> None:
    """Entry point of the ``r2mf-monai`` console script."""
    fire.Fire(COMMANDS, name="r2mf-monai")


if __name__ == "__main__":
    main()
