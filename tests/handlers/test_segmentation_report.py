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
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from r2mf_monai.handlers.segmentation_report import SegmentationReport, segmentation_metrics


def _square(shape: tuple[int, int], top: int, left: int, size: int) -> np.ndarray:
    m = np.zeros(shape, dtype=np.uint8)
    m[top : top + size, left : left + size] = 1
    return m


@pytest.mark.parametrize("shift", [0, 2, 5])
def test_overlap_of_shifted_squares_matches_hand_computation(shift: int) -> None:
    a = _square((64, 64), 10, 10, 20)
    b = _square((64, 64), 10, 10 + shift, 20)
    inter = 20 * (20 - shift)
    got = segmentation_metrics(a, b)
    assert got["dice"] == pytest.approx(100 * 2 * inter / 800, abs=1e-4)
    assert got["iou"] == pytest.approx(100 * inter / (800 - inter), abs=1e-4)
    if shift == 0:
        assert got["asd_px"] == 0 and got["hd95_px"] == 0
    else:
        assert 0 < got["asd_px"] <= shift and got["hd95_px"] == pytest.approx(shift, abs=1e-6)
    assert math.isnan(got["asd_mm"])


@pytest.mark.parametrize("spacing", [(0.5, 0.5), (0.2, 0.2)])
def test_distances_scale_with_the_pixel_spacing(spacing: tuple[float, float]) -> None:
    a = _square((64, 64), 10, 10, 20)
    b = _square((64, 64), 10, 14, 20)  # shifted along axis 1
    got = segmentation_metrics(a, b, spacing=spacing)
    assert got["hd95_mm"] == pytest.approx(got["hd95_px"] * spacing[1], rel=1e-6)
    assert got["asd_mm"] == pytest.approx(got["asd_px"] * spacing[1], rel=1e-6)


def test_summary_groups_by_view_and_quality_and_correlates_the_review_score() -> None:
    report = SegmentationReport(output_dir="unused", num_worst=0)
    rng = np.random.default_rng(0)
    for i in range(9):
        dice = 60.0 + 4 * i
        report.rows.append(
            {
                "image": f"{i}.png",
                "patient_id": f"P{i // 3}",
                "view": ["coronal", "left_bending", "right_bending"][i % 3],
                "quality": ["high", "low", "medium"][i % 3],
                "iou": dice / 1.2,
                "dice": dice,
                "asd_px": 1.0,
                "hd95_px": 2.0,
                "asd_mm": math.nan,
                "hd95_mm": math.nan,
                "review_score": (100 - dice) / 100 + rng.normal(0, 0.001),
            }
        )
    summary = report.summary()
    assert summary["view"]["coronal"]["dice"]["n"] == 3
    assert summary["view"]["coronal"]["dice"]["mean"] == pytest.approx(np.mean([60, 72, 84]))
    assert summary["quality"]["low"]["dice"]["n"] == 3
    assert summary["all"]["all"]["asd_mm"]["n"] == 0 and summary["all"]["all"]["asd_mm"]["ci95"] is None
    # the mean's interval resamples the three patients whole, so it is as wide as their means are apart
    low, high = summary["all"]["all"]["dice"]["ci95"]
    patient_means = [np.mean([60 + 4 * i for i in range(p * 3, p * 3 + 3)]) for p in range(3)]
    assert min(patient_means) <= low < np.mean(patient_means) < high <= max(patient_means)
    assert summary["review"]["spearman_rho"] == pytest.approx(1.0, abs=1e-6)
    table = report.markdown(summary)
    assert "| coronal | 3 |" in table and "n/a" in table and "Spearman" in table
    assert f"95 % bootstrap interval of the mean {low:.2f}-{high:.2f} %, resampling patients" in table


def test_films_without_a_spine_are_counted(tmp_path) -> None:
    from ignite.engine import Engine

    report = SegmentationReport(output_dir=str(tmp_path), image_key=None, num_worst=0)
    mask = torch.zeros(1, 16, 16)
    mask[0, 6:10, 2:14] = 1
    verdicts = [{"spine_found": True}, {"spine_found": False, "reason": "no spine found: the predicted mask is empty"}]
    outputs = [{"pred": mask, "label": mask, "spine": v} for v in verdicts]
    engine = Engine(lambda e, b: outputs)
    report.attach(engine)
    engine.run([[{"image": torch.zeros(1, 16, 16)}, {"image": torch.zeros(1, 16, 16)}]], max_epochs=1)
    summary = json.loads((tmp_path / "metrics_summary.json").read_text())
    assert summary["spine_check"] == {"checked": 2, "no_spine_found": 1, "images": ["case_1"]}
    assert "no spine found on 1 of 2 films" in (tmp_path / "metrics_table.md").read_text()
    assert "spine_found" in (tmp_path / "metrics_per_image.csv").read_text().splitlines()[0]
