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

"""Preview of a synthetic data set: a grid of patients' triplets (coronal, left, right) with the masks outlined.

The images are read back from the written files (DICOM windowed with its VOI window, MONOCHROME1 inverted; PNG as
stored), so the preview also shows what a reader of the data set gets.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from r2mf_monai.constants import VIEWS
from r2mf_monai.outputs.atomic import write_with

__all__ = ["read_display", "write_preview"]


def read_display(path: str | os.PathLike) -> np.ndarray:
    """Read a synthetic image for display: float (H, W) in [0, 1], bone bright.

    DICOM files are windowed with their first VOI window (or their stored range) and MONOCHROME1 is inverted;
    PNG files are scaled by their own maximum possible value.

    Raises:
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    if path.suffix.lower() == ".dcm":
        import pydicom

        ds = pydicom.dcmread(path)
        a = ds.pixel_array.astype(np.float32) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        if "WindowCenter" in ds and "WindowWidth" in ds:
            c = float(np.atleast_1d(ds.WindowCenter)[0])
            w = float(np.atleast_1d(ds.WindowWidth)[0])
            y = np.clip((a - (c - w / 2)) / max(w, 1.0), 0, 1)
        else:
            y = (a - a.min()) / max(float(a.max() - a.min()), 1.0)
        return 1.0 - y if ds.PhotometricInterpretation == "MONOCHROME1" else y
    with Image.open(path) as im:
        a = np.asarray(im)
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    top = 4095.0 if a.max() <= 4095 else 65535.0  # 12-bit values in a 16-bit PNG are common
    return np.clip(a.astype(np.float32) / top, 0, 1)


def write_preview(
    dataset_dir: str | os.PathLike,
    output: str | os.PathLike,
    patients: int | list[str] = 4,
    height: int = 360,
    per_row: int = 2,
    dpi: int = 100,
) -> Path:
    """Draw ``patients`` triplets from a synthetic data set with their masks outlined; caption view, quality, Cobb.

    Args:
        dataset_dir: folder with ``ground_truth.json`` (written by :func:`synthesize_dataset`).
        output: PNG file to write.
        patients: how many patients (the first ones), or a list of patient ids. Defaults to ``4``.
        height: height in pixels of each tile. Defaults to ``360``.
        per_row: triplets side by side. Defaults to ``2``.
        dpi: resolution of the figure. Defaults to ``100``.

    Raises:
        FileNotFoundError: no ground_truth.json in ``dataset_dir``.
        ValueError: unknown patient id.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    root = Path(dataset_dir)
    gt_path = root / "ground_truth.json"
    if not gt_path.is_file():
        raise FileNotFoundError(f"ground_truth.json not found in {root}")
    gt = json.loads(gt_path.read_text(encoding="utf-8"))
    ids = sorted(gt["patients"]) if not isinstance(patients, list) else patients
    if isinstance(patients, int):
        ids = ids[: max(1, patients)]
    for pid in ids:
        if pid not in gt["patients"]:
            raise ValueError(f"patient {pid!r} not in {gt_path}")
    tile_w = int(height * 0.5)
    per_row = min(per_row, len(ids))
    n_rows = -(-len(ids) // per_row)
    n_cols = 3 * per_row
    cap = 34  # caption height in pixels
    fig_h = n_rows * (height + cap)
    fig = Figure(figsize=(n_cols * tile_w * 1.02 / dpi, fig_h / dpi), dpi=dpi, facecolor="black")
    FigureCanvasAgg(fig)
    for j, pid in enumerate(ids):
        row, slot = divmod(j, per_row)
        rec = gt["patients"][pid]
        for k, view in enumerate(VIEWS):
            v = rec["views"][view]
            img = read_display(root / v["image"])
            with Image.open(root / v["label"]) as m:
                mask = np.asarray(m) > 127
            f = height / img.shape[0]
            size = (max(int(img.shape[1] * f), 1), height)
            img_s = np.asarray(Image.fromarray((img * 255).astype(np.uint8)).resize(size, Image.Resampling.BILINEAR))
            mask_s = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size, Image.Resampling.BILINEAR))
            bottom = (n_rows - 1 - row) * (height + cap) / fig_h
            ax = fig.add_axes(((3 * slot + k) / n_cols, bottom, 1.0 / n_cols, height / fig_h))
            ax.imshow(img_s, cmap="gray", vmin=0, vmax=255, interpolation="bilinear")
            overlay = np.zeros(mask_s.shape + (4,), np.float32)
            overlay[mask_s > 127] = (1.0, 0.3, 0.1, 0.08)
            ax.imshow(overlay)
            ax.contour(mask_s, levels=[127], colors=["#ff5a1e"], linewidths=0.8, alpha=0.85)
            ax.set_xlim(-0.5, size[0] - 0.5)
            ax.set_ylim(size[1] - 0.5, -0.5)
            ax.set_axis_off()
            cobb = v["major_cobb_deg"]
            ax.set_title(
                f"{pid} {view.replace('_', ' ')}\n{v['quality']} quality, Cobb {cobb:.0f}\N{DEGREE SIGN}",
                color="white",
                fontsize=7,
                pad=2,
            )
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_with(out, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi, facecolor="black"))
