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


"""Tests of r2mf_monai.outputs.save_segmentation (SaveSegmentationd in MONAI pipelines)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import highdicom as hd
import numpy as np
import pydicom
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.transforms import (
    Compose,
    CopyItemsd,
    EnsureChannelFirstd,
    Invertd,
    LoadImage,
    LoadImaged,
    Resized,
    ScaleIntensityd,
)
from PIL import Image

from r2mf_monai.constants import RADIOGRAPH_SUFFIXES
from r2mf_monai.outputs import SaveSegmentationd
from r2mf_monai.outputs.save_segmentation import output_stem
from tests.outputs.utils import make_dx


def _picture(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A non-square grey picture (bone bright) and an asymmetric rectangle mask, both (H, W)."""
    rng = np.random.default_rng(0)
    picture = rng.integers(20, 90, (height, width)).astype(np.uint8)
    mask = np.zeros((height, width), bool)
    mask[height // 5 : height - height // 4, width // 3 : width // 3 + max(3, width // 6)] = True
    mask[1, 2] = True  # a lone pixel near the top-left corner
    picture[mask] = 220
    return picture, mask


def _load_png(path):
    loader = Compose([LoadImaged("image", reader="PILReader", image_only=True), EnsureChannelFirstd("image")])
    return loader({"image": str(path)})


def _pred_from(image: MetaTensor) -> MetaTensor:
    pred = (image > 200).float()
    assert isinstance(pred, MetaTensor)
    return pred


def _read_png(path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "L"
        return np.asarray(im)


@pytest.mark.parametrize("height, width", [(60, 36), (36, 70)])
def test_png_mask_overlays_input_pixel_for_pixel(tmp_path, height, width):
    picture, mask = _picture(height, width)
    Image.fromarray(picture).save(tmp_path / "case_coronal.png")
    d = _load_png(tmp_path / "case_coronal.png")
    assert d["image"].shape == (1, width, height)  # MONAI's (1, W, H)
    d["pred"], d["raw"] = _pred_from(d["image"]), d["image"]
    out = SaveSegmentationd("pred", output_dir=tmp_path / "out", formats="png")(d)

    files = out["pred_files"]
    assert set(files) == {"mask_png", "overlay_png"}
    assert files["mask_png"] == str(tmp_path / "out" / "case_coronal_mask.png")
    saved = _read_png(files["mask_png"])
    assert saved.shape == (height, width) and saved.dtype == np.uint8
    np.testing.assert_array_equal(saved, mask.astype(np.uint8) * 255)
    with Image.open(files["overlay_png"]) as im:
        assert im.size == (width, height) and im.mode == "RGB"
        rgb = np.asarray(im).astype(int)
    np.testing.assert_array_equal(rgb[..., 0] != rgb[..., 2], mask)  # colour exactly where the mask is
    assert out["pred"] is d["pred"]  # the prediction is passed on unchanged


def test_after_resize_and_invertd(tmp_path):
    """The bundle's shape: preprocess (resize), predict on the small grid, Invertd back, then save."""
    picture, mask = _picture(90, 50)
    Image.fromarray(picture).save(tmp_path / "p.png")
    pre = Compose(
        [
            LoadImaged("image", reader="PILReader", image_only=True),
            EnsureChannelFirstd("image"),
            CopyItemsd("image", names="raw"),
            ScaleIntensityd("image"),
            Resized("image", spatial_size=(32, 64), mode="bilinear"),
        ]
    )
    d = pre({"image": str(tmp_path / "p.png")})
    d["pred"] = (d["image"] > 0.75).float()  # stands in for the network
    d = Invertd("pred", transform=pre, orig_keys="image", nearest_interp=True)(d)
    assert d["pred"].shape == (1, 50, 90)
    out = SaveSegmentationd("pred", output_dir=tmp_path / "out", formats=("png", "nii"))(d)
    saved = _read_png(out["pred_files"]["mask_png"]) > 0
    assert saved.shape == mask.shape
    assert (saved & mask).sum() / (saved | mask).sum() > 0.85  # IoU after a down- and up-sampling round trip


def test_nifti_loads_back_on_the_same_grid(tmp_path):
    pixels = (np.arange(40 * 24).reshape(40, 24) % 4096).astype(np.uint16)
    make_dx(tmp_path / "dx.dcm", pixels)
    image = LoadImage(reader="PydicomReader", image_only=True, ensure_channel_first=True)(str(tmp_path / "dx.dcm"))
    pred = (image > 500).float()
    out = SaveSegmentationd("pred", output_dir=tmp_path, formats="nii", overlay=False)({"pred": pred})
    back = LoadImage(image_only=True, ensure_channel_first=True)(out["pred_files"]["mask_nii"])
    assert back.shape == pred.shape
    np.testing.assert_array_equal(back.numpy(), pred.numpy())
    np.testing.assert_allclose(back.affine.numpy(), pred.affine.numpy())
    assert back.dtype == torch.uint8 or back.numpy().max() == 1


@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_dicom_seg_aligned_with_stored_pixels(tmp_path, photometric):
    rows, cols = 44, 26
    pixels = np.zeros((rows, cols), np.uint16)
    pixels[5:35, 9:15] = 3000
    pixels[2, 20] = 3000
    src = make_dx(tmp_path / "1.2.826.0.1.5", pixels, photometric)  # named by a UID, no extension
    image = LoadImage(reader="PydicomReader", image_only=True, ensure_channel_first=True)(
        str(tmp_path / "1.2.826.0.1.5")
    )
    assert image.shape == (1, cols, rows)
    d = {"pred": (image > 1000).float(), "raw": image}
    out = SaveSegmentationd("pred", output_dir=tmp_path / "out", formats=("png", "dcmseg"))(d)
    files = out["pred_files"]
    assert files["dicom_seg"] == str(tmp_path / "out" / "1.2.826.0.1.5_seg.dcm")  # the whole UID kept as stem
    seg = hd.seg.segread(files["dicom_seg"])
    back = seg.get_pixels_by_source_instance([src.SOPInstanceUID], segment_numbers=[1])[0, :, :, 0]
    np.testing.assert_array_equal(back.astype(bool), pixels > 1000)
    np.testing.assert_array_equal(_read_png(files["mask_png"]) > 0, pixels > 1000)


def test_dcmseg_skipped_for_non_dicom_source(tmp_path, caplog):
    picture, _ = _picture(30, 20)
    Image.fromarray(picture).save(tmp_path / "x.png")
    d = _load_png(tmp_path / "x.png")
    d["pred"] = _pred_from(d["image"])
    with caplog.at_level(logging.WARNING):
        out = SaveSegmentationd(output_dir=tmp_path / "o", formats=("png", "dcmseg"), overlay=False)(d)
    assert "not a DICOM file" in caplog.text and "x.png" in caplog.text
    assert set(out["pred_files"]) == {"mask_png"}
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["x_mask.png"]


@pytest.mark.parametrize(
    "kwargs, source, expected",
    [
        ({}, "/data/a/P1_coronal.png", "out/P1_coronal_mask.png"),
        ({"separate_folder": True}, "/data/a/P1_coronal.png", "out/P1_coronal/P1_coronal_mask.png"),
        ({"data_root_dir": "/data"}, "/data/a/P1_coronal.png", "out/a/P1_coronal_mask.png"),
        ({"output_postfix": "seg"}, "/data/a/scan.nii.gz", "out/scan_seg.png"),
        ({}, "/data/1.2.840.5", "out/1.2.840.5_mask.png"),
    ],
)
def test_output_names(tmp_path, kwargs, source, expected):
    pred = MetaTensor(torch.zeros(1, 4, 6), meta={"filename_or_obj": source})
    out = SaveSegmentationd(output_dir=tmp_path / "out", formats="png", overlay=False, **kwargs)({"pred": pred})
    assert out["pred_files"]["mask_png"] == str(tmp_path / expected)
    assert (tmp_path / expected).is_file()


@pytest.mark.parametrize(
    "name, expected",
    [("P1_coronal.JPG", "P1_coronal"), ("scan.nii.gz", "scan"), ("a.b.gif", "a.b"), ("x.dicom", "x"),
     ("1.2.840.5", "1.2.840.5"), ("notes.txt", "notes.txt")],
)  # fmt: skip
def test_output_stem_is_the_writers(tmp_path, name, expected):
    assert output_stem(f"/data/a/{name}") == expected
    pred = MetaTensor(torch.zeros(1, 4, 6), meta={"filename_or_obj": f"/data/a/{name}"})
    out = SaveSegmentationd(output_dir=tmp_path, formats="png", overlay=False)({"pred": pred})
    assert out["pred_files"]["mask_png"] == str(tmp_path / f"{expected}_mask.png")


@pytest.mark.parametrize("suffix", RADIOGRAPH_SUFFIXES)
def test_output_stem_strips_every_suffix_the_reader_accepts(suffix):
    assert output_stem(f"P1_coronal{suffix}") == output_stem(f"P1_coronal{suffix.upper()}") == "P1_coronal"


def test_in_memory_inputs_get_an_index(tmp_path):
    saver = SaveSegmentationd(output_dir=tmp_path, formats="png", overlay=False, files_key="written")
    first = saver({"pred": torch.ones(1, 3, 5)})
    second = saver({"pred": np.zeros((1, 3, 5))})
    assert first["written"]["mask_png"].endswith("0_mask.png")
    assert second["written"]["mask_png"].endswith("1_mask.png")
    assert _read_png(first["written"]["mask_png"]).shape == (5, 3)


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="formats"):
        SaveSegmentationd(formats=("png", "jpeg"))
    with pytest.raises(ValueError, match="image_key"):
        SaveSegmentationd(image_key=None)
    pred = MetaTensor(torch.zeros(1, 4, 6), meta={"filename_or_obj": "/x/case.png"})
    with pytest.raises(KeyError, match="'raw'.*case.png"):
        SaveSegmentationd(output_dir=tmp_path)({"pred": pred})
    with pytest.raises(ValueError, match="'raw' of /x/case.png"):
        SaveSegmentationd(output_dir=tmp_path)({"pred": pred, "raw": torch.zeros(1, 6, 4)})
    with pytest.raises(ValueError, match="'pred' of /x/case.png.*\\(1, W, H\\)"):
        SaveSegmentationd(output_dir=tmp_path)({"pred": MetaTensor(torch.zeros(2, 4, 6), meta=pred.meta)})
    assert not list(tmp_path.rglob("*.png"))


def test_bundle_config_snippet(tmp_path):
    """The JSON a bundle's inference.json uses instantiates and runs."""
    config = {
        "output_dir": str(tmp_path / "eval"),
        "saver": {
            "_target_": "r2mf_monai.outputs.SaveSegmentationd",
            "keys": "pred",
            "image_key": "raw",
            "output_dir": "@output_dir",
            "formats": ["png", "nii", "dcmseg"],
            "overlay": True,
            "output_postfix": "mask",
            "separate_folder": False,
        },
    }
    parser = ConfigParser(json.loads(json.dumps(config)))
    saver = parser.get_parsed_content("saver")
    assert isinstance(saver, SaveSegmentationd)
    picture, mask = _picture(30, 20)
    Image.fromarray(picture).save(tmp_path / "c.png")
    d = _load_png(tmp_path / "c.png")
    d["pred"], d["raw"] = _pred_from(d["image"]), d["image"]
    out = saver(d)
    assert set(out["pred_files"]) == {"mask_png", "mask_nii", "overlay_png"}
    np.testing.assert_array_equal(_read_png(tmp_path / "eval" / "c_mask.png") > 0, mask)


def test_rgb_raw_and_pydicom_raw(tmp_path):
    """Colour pictures (3 channels) give a grey overlay; the mask and overlay keep the input's size."""
    picture, mask = _picture(40, 30)
    Image.fromarray(np.stack([picture] * 3, -1)).save(tmp_path / "rgb.png")
    d = LoadImaged("image", reader="PILReader", image_only=True, ensure_channel_first=True)(
        {"image": str(tmp_path / "rgb.png")}
    )
    assert d["image"].shape == (3, 30, 40)
    d["pred"], d["raw"] = _pred_from(d["image"][:1]), d["image"]
    d["pred"].meta["filename_or_obj"] = str(tmp_path / "rgb.png")
    out = SaveSegmentationd(output_dir=tmp_path / "o", formats="png")(d)
    with Image.open(out["pred_files"]["overlay_png"]) as im:
        assert im.size == (30, 40)
    assert pydicom is not None


def _saved(saver: SaveSegmentationd, source: str) -> str:
    pred = MetaTensor(torch.zeros(1, 4, 6), meta={"filename_or_obj": source})
    return saver({"pred": pred})["pred_files"].get("mask_png", "")


@pytest.mark.parametrize(
    "kwargs, sources, expected, warned",
    [
        # the input's folders below data_root_dir (the bundle passes its dataset_dir) are kept
        ({"data_root_dir": "/data"}, ["/data/a/x.png", "/data/b/x.png"], ["a/x_mask.png", "b/x_mask.png"], False),
        # without them, the second x.png gets its suffix instead of overwriting the first's outputs
        ({}, ["/data/a/x.png", "/data/b/x.png"], ["x_mask.png", "x_png_mask.png"], True),
        # y.dcm and y.png in one folder: their masks, overlays and SEG never mix
        ({"data_root_dir": "/data"}, ["/data/y.dcm", "/data/y.png"], ["y_mask.png", "y_png_mask.png"], True),
        ({}, ["/d/y.png", "/e/y.png", "/f/y.png"], ["y_mask.png", "y_png_mask.png", "y_png_2_mask.png"], True),
        ({"separate_folder": True}, ["/d/y.dcm", "/d/y.png"], ["y/y_mask.png", "y_png/y_png_mask.png"], True),
        # the same source again (a second epoch, a re-run in one process) keeps its name
        ({}, ["/data/y.png", "/data/y.png"], ["y_mask.png", "y_mask.png"], False),
    ],
)
def test_duplicate_stems_do_not_collide(tmp_path, caplog, kwargs, sources, expected, warned):
    saver = SaveSegmentationd(output_dir=tmp_path, formats="png", overlay=False, **kwargs)
    with caplog.at_level(logging.WARNING):
        written = [_saved(saver, s) for s in sources]
    assert written == [str(tmp_path / e) for e in expected]
    assert ("has the output name of" in caplog.text) is warned


def test_outputs_stay_in_the_output_folder(tmp_path):
    """A symbolic link in the output folder (where an input's relative folder goes) is not followed outside."""
    out, outside = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    outside.mkdir()
    (out / "a").symlink_to(outside, target_is_directory=True)
    saver = SaveSegmentationd(output_dir=out, formats="png", overlay=False, data_root_dir=tmp_path / "in")
    with pytest.raises(ValueError, match="outside the output folder"):
        _saved(saver, str(tmp_path / "in" / "a" / "x.png"))
    assert list(outside.iterdir()) == []


def test_write_failure_skips_the_image_and_goes_on(tmp_path, caplog):
    """A file in the way of one input's output folder (as root too, unlike a read-only folder): that input is named,
    skipped, and leaves nothing; the next one is written."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "blocked").write_text("a file where a folder should be")
    picture, mask = _picture(30, 20)
    saver = SaveSegmentationd(output_dir=out, formats=("png", "nii"), data_root_dir=tmp_path / "in")
    results = []
    with caplog.at_level(logging.ERROR):
        for sub in ("blocked", "fine"):
            meta = {"filename_or_obj": str(tmp_path / "in" / sub / "x.png")}
            pred = MetaTensor(torch.as_tensor(mask.T[None], dtype=torch.float32), meta=meta)
            raw = torch.as_tensor(picture.T[None], dtype=torch.float32)
            results.append(saver({"pred": pred, "raw": raw})["pred_files"])
    assert results[0] == {} and "x.png: its outputs cannot be written" in caplog.text
    assert "blocked" in caplog.text
    assert sorted(results[1]) == ["mask_nii", "mask_png", "overlay_png"]
    assert sorted(p.name for p in (out / "fine").iterdir()) == ["x_mask.nii.gz", "x_mask.png", "x_overlay.png"]


def test_full_disk_skips_the_image_and_goes_on(tmp_path):
    """``ulimit -f`` in a child process: the large picture's overlay does not fit, the small picture's outputs do."""
    child = textwrap.dedent(
        f"""
        import logging, resource, signal
        import numpy as np, torch
        from monai.data import MetaTensor
        from r2mf_monai.outputs import SaveSegmentationd

        logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(message)s")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        saver = SaveSegmentationd(output_dir={str(tmp_path / "out")!r}, formats=("png",))
        rng = np.random.default_rng(0)
        for name, size in (("large", 400), ("small", 24)):
            mask = np.zeros((size, size), np.float32)
            mask[size // 4 : -size // 4, size // 3 : -size // 3] = 1
            meta = {{"filename_or_obj": f"/in/{{name}}.png"}}
            pred = MetaTensor(torch.as_tensor(mask[None]), meta=meta)
            # noise, which PNG cannot compress: the large overlay needs far more than the limit
            raw = torch.as_tensor(rng.integers(0, 255, (1, size, size)).astype(np.float32))
            print(name, sorted(saver({{"pred": pred, "raw": raw}})["pred_files"]))
        """
    )
    run = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "large []" in run.stdout and "small ['mask_png', 'overlay_png']" in run.stdout, run.stdout
    assert "skipping /in/large.png: its outputs cannot be written (File too large" in run.stderr, run.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["small_mask.png", "small_overlay.png"]


def test_no_seg_for_a_film_without_a_spine(tmp_path, caplog):
    # SpinePlausibilityd's verdict (data["spine"]) says no spine: the mask PNG is written, the DICOM SEG is not
    pixels = np.zeros((44, 26), np.uint16)
    pixels[5:35, 9:15] = 3000
    make_dx(tmp_path / "ankle.dcm", pixels, "MONOCHROME2")
    image = LoadImage(reader="PydicomReader", image_only=True, ensure_channel_first=True)(str(tmp_path / "ankle.dcm"))
    verdict = {"spine_found": False, "reason": "no spine found: the DICOM BodyPartExamined is ANKLE"}
    d = {"pred": (image > 1000).float(), "raw": image, "spine": verdict}
    with caplog.at_level(logging.WARNING):
        out = SaveSegmentationd("pred", output_dir=tmp_path / "out", formats=("png", "dcmseg"))(d)
    assert "dicom_seg" not in out["pred_files"] and not list((tmp_path / "out").glob("*_seg.dcm"))
    assert "mask_png" in out["pred_files"] and "no DICOM SEG written (no spine found" in caplog.text
