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

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from scipy.io import savemat

from r2mf_monai.cli import landmarks2mask
from r2mf_monai.data.landmarks import column_mask, convert_landmarks, misordered_vertebrae, read_csv_landmarks
from tests.transforms.radiograph_files import write_dicom

H, W = 300, 160


def aasce_points(tilt: float = 0.15) -> np.ndarray:
    """68 (x, y) corners in the AASCE order (top-left, top-right, bottom-left, bottom-right), 17 vertebrae head to
    feet, a gentle S curve with tilted vertebrae and gaps (discs) between them."""
    pts = []
    for i in range(17):
        top, bottom = 15 + i * 16, 15 + i * 16 + 11
        xc, t, half = 80 + 20 * np.sin(i / 4), tilt * np.cos(i / 3), 18
        pts += [
            (xc - half, top - half * t),
            (xc + half, top + half * t),
            (xc - half, bottom - half * t),
            (xc + half, bottom + half * t),
        ]
    return np.array(pts, dtype=np.float64)


def write_case(root: Path, points: np.ndarray, name: str = "sunhl-1th-01 A AP.jpg"):
    (root / "images").mkdir(exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    Image.fromarray(np.zeros((H, W), np.uint8)).save(root / "images" / name)
    savemat(root / "labels" / f"{name}.mat", {"p2": points})
    return root / "images", root / "labels"


def test_mat_folder_to_column_mask(tmp_path):
    points = aasce_points()
    images, labels = write_case(tmp_path, points)
    out = convert_landmarks(labels, images, tmp_path / "masks")
    mask = np.asarray(Image.open(out / "sunhl-1th-01 A AP.png"))
    assert mask.shape == (H, W) and mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    fg = mask > 0
    assert ndimage.label(fg)[1] == 1  # one contiguous column
    corners = points.reshape(17, 4, 2)
    for i, v in enumerate(corners):
        cx, cy = v.mean(axis=0)
        assert fg[int(round(cy)), int(round(cx))]  # vertebral body
        if i < 16:  # the disc space between this vertebra and the next
            gap_y = (v[2:, 1].mean() + corners[i + 1][:2, 1].mean()) / 2
            gap_x = (v[2:, 0].mean() + corners[i + 1][:2, 0].mean()) / 2
            assert fg[int(round(gap_y)), int(round(gap_x))]
    # nothing outside the column's extent (1-pixel outline tolerance)
    assert not fg[: int(points[:, 1].min()) - 2].any() and not fg[int(points[:, 1].max()) + 3 :].any()
    assert not fg[:, : int(points[:, 0].min()) - 2].any() and not fg[:, int(points[:, 0].max()) + 3 :].any()
    # the area is that of the column polygon, within its outline
    assert abs(fg.sum() - 36 * (points[:, 1].max() - points[:, 1].min())) < 0.15 * fg.sum()


def test_corner_order_does_not_matter():
    points = aasce_points(tilt=0.3)
    shuffled = points.reshape(17, 4, 2).copy()
    rng = np.random.default_rng(0)
    for v in shuffled:
        rng.shuffle(v)
    vertebra_order = rng.permutation(17)
    shuffled = shuffled[vertebra_order].reshape(-1, 2)
    np.testing.assert_array_equal(column_mask(points, (H, W)), column_mask(shuffled, (H, W)))


def _rotated(points: np.ndarray, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    centre = points.mean(axis=0)
    return (points - centre) @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]]) + centre


@pytest.mark.parametrize("tilt", [0.0, 0.3, 0.8])  # up to a 39 degree tilt
@pytest.mark.parametrize("rotation", [0.0, 25.0, -40.0])
def test_corners_in_the_aasce_order_pass(tilt, rotation):
    points = _rotated(aasce_points(tilt=tilt), rotation)
    wedged = points.copy()
    wedged[2::4, 1] -= 5  # bottom-left corners up: wedge-shaped bodies
    for p in (points, wedged):
        assert misordered_vertebrae(p).size == 0


@pytest.mark.parametrize(
    "vertebra, swap",
    [
        (16, (1, 2)),  # top-right listed where bottom-left lies (AASCE film 161 A's L5)
        (0, (0, 1)),  # left and right swapped
        (8, (0, 2)),  # top and bottom swapped
        (5, (2, 3)),
    ],
)
def test_swapped_corners_are_found(vertebra, swap):
    points = aasce_points(tilt=0.3).reshape(17, 4, 2)
    points[vertebra, list(swap)] = points[vertebra, list(swap[::-1])]
    np.testing.assert_array_equal(misordered_vertebrae(points.reshape(-1, 2)), [vertebra])


def test_a_folded_body_is_found():
    points = aasce_points().reshape(17, 4, 2)
    points[3, 3] = points[3, 0] + (5, -4)  # bottom-right corner clicked above the top-left one
    np.testing.assert_array_equal(misordered_vertebrae(points.reshape(-1, 2)), [3])


def test_landmarks2mask_names_misordered_vertebrae(tmp_path, caplog):
    points = aasce_points(tilt=0.3).reshape(17, 4, 2)
    points[16, [1, 2]] = points[16, [2, 1]]
    images, labels = write_case(tmp_path, points.reshape(-1, 2))
    with caplog.at_level("WARNING", logger="r2mf_monai.data.landmarks"):
        out = convert_landmarks(labels, images, tmp_path / "masks")
    assert "'sunhl-1th-01 A AP.jpg'" in caplog.text and "vertebra 17 (of 17" in caplog.text
    # the mask does not depend on the order
    np.testing.assert_array_equal(
        np.asarray(Image.open(out / "sunhl-1th-01 A AP.png")), column_mask(aasce_points(tilt=0.3), (H, W))
    )


@pytest.mark.parametrize("header", [False, True])
def test_csv_layout_matches_mat(tmp_path, header):
    points = aasce_points()
    images, labels = write_case(tmp_path, points, name="a.jpg")
    mat_out = convert_landmarks(labels / "a.jpg.mat", images, tmp_path / "from_mat")
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    values = np.concatenate([points[:, 0] / W, points[:, 1] / H])  # 68 x then 68 y, normalised
    rows = ([",".join(f"c{i}" for i in range(136))] if header else []) + [",".join(f"{v:.10f}" for v in values)]
    (csv_dir / "landmarks.csv").write_text("\n".join(rows) + "\n")
    (csv_dir / "filenames.csv").write_text(("filenames\n" if header else "") + "a.jpg\n")
    csv_out = convert_landmarks(csv_dir, images, tmp_path / "from_csv")
    np.testing.assert_array_equal(np.asarray(Image.open(mat_out / "a.png")), np.asarray(Image.open(csv_out / "a.png")))


def test_size_from_a_dicom_image(tmp_path):
    (tmp_path / "images").mkdir()
    write_dicom(tmp_path / "images" / "P0001_coronal.dcm", np.zeros((H, W), np.uint16), bits_stored=12)
    savemat(tmp_path / "P0001_coronal.mat", {"p2": aasce_points()})
    out = landmarks2mask(str(tmp_path / "P0001_coronal.mat"), str(tmp_path / "images"), str(tmp_path / "m"))
    assert np.asarray(Image.open(Path(out) / "P0001_coronal.png")).shape == (H, W)


def test_wrong_point_count_in_mat(tmp_path):
    images, labels = write_case(tmp_path, aasce_points()[:64])
    with pytest.raises(ValueError, match=r"sunhl-1th-01 A AP.jpg.mat.*expected 68 points .*got 64"):
        convert_landmarks(labels, images, tmp_path / "masks")
    assert not list((tmp_path / "masks").glob("*.png"))


def test_any_multiple_of_four_when_asked(tmp_path):
    images, labels = write_case(tmp_path, aasce_points()[:64])
    out = convert_landmarks(labels, images, tmp_path / "masks", num_vertebrae=None)
    assert (out / "sunhl-1th-01 A AP.png").is_file()
    with pytest.raises(ValueError, match="multiple of 4"):
        column_mask(aasce_points()[:66], (H, W))


def test_csv_errors(tmp_path):
    (tmp_path / "landmarks.csv").write_text(",".join(["0.5"] * 130) + "\n")
    (tmp_path / "filenames.csv").write_text("a.jpg\n")
    with pytest.raises(ValueError, match="row 1 .*expected 68 points"):
        read_csv_landmarks(tmp_path / "landmarks.csv", tmp_path / "filenames.csv")
    (tmp_path / "filenames.csv").write_text("a.jpg\nb.jpg\n")
    with pytest.raises(ValueError, match="1 rows but .*names 2 images"):
        read_csv_landmarks(tmp_path / "landmarks.csv", tmp_path / "filenames.csv")
    with pytest.raises(FileNotFoundError, match="nothere.csv"):
        read_csv_landmarks(tmp_path / "landmarks.csv", tmp_path / "nothere.csv")


def test_missing_image_and_empty_folder(tmp_path):
    images, labels = write_case(tmp_path, aasce_points())
    savemat(labels / "other.jpg.mat", {"p2": aasce_points()})
    with pytest.raises(FileNotFoundError, match="other.jpg"):
        convert_landmarks(labels, images, tmp_path / "masks")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="no .mat files and no landmarks.csv"):
        convert_landmarks(tmp_path / "nothing", images, tmp_path / "masks")


def test_pixels_read_as_normalised_is_caught(tmp_path):
    images, labels = write_case(tmp_path, aasce_points() / np.array([W, H]))  # normalised values in a .mat
    with pytest.raises(ValueError, match="normalised"):
        convert_landmarks(labels, images, tmp_path / "masks")
