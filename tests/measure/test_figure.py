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

import numpy as np
import pytest
from PIL import Image

from r2mf_monai.measure.figure import REGION_COLOURS, _notes, draw_study
from r2mf_monai.measure.levels import LevelModel
from r2mf_monai.measure.report import measure_study
from tests.measure.shapes import s_curve_mask, straight_mask
from tests.measure.test_endplates import CASES, _film_of, corner_spine

VIEWS = {"coronal": (-20.0, 20.0, -40.0), "left_bending": (25.0, 30.0, -10.0), "right_bending": (-35.0, -10.0, -20.0)}


def _colour_pixels(png, hex_colour: str, tol: int = 40) -> int:
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb - target).sum(-1) < tol).sum())


@pytest.fixture(scope="module")
def report():
    masks = {v: s_curve_mask(t) for v, t in VIEWS.items()}
    return measure_study(masks, spacing=0.5, patient_id="P1", levels=LevelModel(sacrum_mm=0.0))


@pytest.mark.parametrize("with_images", [False, True])
def test_three_views_side_by_side(report, tmp_path, with_images):
    images = None
    if with_images:
        rng = np.random.default_rng(0)
        images = {v: np.clip(m * 0.5 + rng.random(m.shape) * 0.3, 0, 1) for v, m in report.masks.items()}
    path = tmp_path / "fig.png"
    draw_study(report, path, images=images)
    im = Image.open(path)
    assert im.format == "PNG" and im.size[0] > im.size[1] > 800  # three tall panels side by side, plus the table
    # the curves are drawn in their region colours: the main thoracic and thoracolumbar/lumbar Cobb lines and labels
    regions = {c.region for vm in report.views.values() for c in vm.curves}
    for region in regions:
        assert _colour_pixels(path, REGION_COLOURS[region]) > 100, region
    assert _colour_pixels(path, "#F0E442") > 300  # the centreline


def test_one_view_figure(tmp_path):
    r = measure_study({"scan": s_curve_mask()}, patient_id="scan")
    draw_study(r, tmp_path / "one.png")
    w, h = Image.open(tmp_path / "one.png").size
    assert h > w / 2 and w >= 9.5 * 150 - 1  # at least 9.5 inches wide for the text at 150 dpi


@pytest.mark.parametrize(
    "masks",
    [
        {"coronal": s_curve_mask(VIEWS["coronal"]), "left_bending": straight_mask(length=60)},  # a fragment
        {"coronal": np.zeros((300, 200), bool)},  # nothing measured at all
    ],
)
def test_a_view_not_measured_is_marked(tmp_path, masks):
    r = measure_study(masks, patient_id="P2", levels=LevelModel(sacrum_mm=0.0))
    assert r.not_measured
    draw_study(r, tmp_path / "fig.png")
    assert _colour_pixels(tmp_path / "fig.png", "#ff5252") > 200  # "not measured" written over its panel
    assert (_colour_pixels(tmp_path / "fig.png", "#F0E442") > 300) == ("coronal" in r.views)  # the measured centreline


def test_notes_say_how_the_angles_were_read(report, monkeypatch):
    # smooth columns: levels from the column's length and the centreline tangent
    notes = _notes(report)
    assert any(n.startswith("Levels estimated from the column's length") for n in notes)
    assert not any("outline's corners" in n for n in notes)
    # a corner-built coronal column (the AASCE annotation) beside a smooth bending view: each said as it was read, and a
    # mended vertebra is named
    import dataclasses

    import r2mf_monai.measure.cobb as cobb

    real_fit = cobb.fit_vertebrae
    monkeypatch.setattr(cobb, "fit_vertebrae", lambda *a, **k: dataclasses.replace(real_fit(*a, **k), mended=("T8",)))
    corners_mask, _, _ = corner_spine(*CASES[1])
    mixed = measure_study(
        {"coronal": corners_mask, "left_bending": s_curve_mask(VIEWS["left_bending"])}, patient_id="P3"
    )
    assert mixed.views["coronal"].vertebrae is not None and mixed.views["left_bending"].vertebrae is None
    text = " ".join(" ".join(_notes(mixed)).split())  # the notes are wrapped
    assert "Coronal: levels and Cobb angles (endplate tilts) from the vertebrae read off the outline's corners" in text
    assert "Left bending: levels estimated from the column's length" in text
    assert "Coronal: tilt of T8 taken from the neighbouring vertebrae" in text


def test_notes_say_when_the_film_was_read(report):
    film = s_curve_mask(VIEWS["coronal"]).astype(np.float32) * 0.6 + 0.2
    with_film = measure_study({"coronal": s_curve_mask(VIEWS["coronal"])}, images={"coronal": film}, patient_id="P4")
    assert with_film.views["coronal"].film_tilt_deg is not None
    text = " ".join(" ".join(_notes(with_film)).split())
    assert "Cobb angles from the centreline tangent and the endplates seen on the film" in text
    assert "endplates seen on the film" not in " ".join(_notes(report))  # the masks alone


def test_notes_say_when_the_film_placed_the_corners():
    mask, corners, _ = corner_spine(*CASES[1])
    film = _film_of(mask, corners)
    with_film = measure_study({"coronal": mask}, images={"coronal": film}, patient_id="P5")
    text = " ".join(" ".join(_notes(with_film)).split())
    assert "read off the outline's corners and the endplates' edges on the film" in text
    alone = measure_study({"coronal": mask}, images={"coronal": film}, patient_id="P5", film_weight=0.0)
    assert "edges on the film" not in " ".join(_notes(alone))
