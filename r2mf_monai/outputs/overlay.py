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

"""Mask PNGs and mask-over-radiograph overlays, in plain (H, W) arrays (row 0 at the top of the picture).

Not a paper equation: the picture a reader checks a segmentation on (the paper's Fig. 6 shows masks the same way).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from r2mf_monai.outputs.atomic import atomic_write

__all__ = [
    "window_percentile",
    "overlay_mask",
    "save_mask_png",
    "save_overlay",
    "comparison_overlay",
    "save_comparison_overlay",
]

#: Default fill and outline colour: Okabe-Ito vermillion, which stands out on bright bone and on grey soft tissue
#: alike and stays distinguishable for colour-blind readers (orange, green and sky blue were paler on bone).
DEFAULT_COLOR = (213, 94, 0)
#: Colours of the prediction-versus-label comparison (Okabe-Ito): agreement, over- and under-segmentation.
COMPARISON_COLORS = {"true positive": (0, 158, 115), "false positive": (213, 94, 0), "false negative": (86, 180, 233)}


def _as_2d(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] in (3, 4):  # an RGB(A) picture: grey = mean of the colour channels
        array = array[..., :3].mean(axis=-1)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) array, got shape {tuple(array.shape)}.")
    return array


def _binary(mask: np.ndarray) -> np.ndarray:
    return mask if mask.dtype == bool else mask > 0.5


def _downsample(grey: np.ndarray, masks: Sequence[np.ndarray], max_height: int | None):
    """Area-downsample a picture (uint8, or float32 before its window) and its masks (area, then 0.5 threshold) to at
    most ``max_height`` rows."""
    height, width = grey.shape
    if max_height is None or height <= max_height:
        return grey, list(masks)
    size = (max(1, round(width * max_height / height)), max_height)  # PIL sizes are (width, height)
    picture = grey if grey.dtype == np.uint8 else np.ascontiguousarray(grey, dtype=np.float32)  # PIL mode "L" or "F"
    grey = np.asarray(Image.fromarray(picture).resize(size, Image.Resampling.BOX))
    small = [
        np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize(size, Image.Resampling.BOX)) >= 128 for m in masks
    ]
    return grey, small


def _outline(mask: np.ndarray, width: int) -> np.ndarray:
    """Inner outline: the mask minus its erosion; border_value=1 keeps the picture frame from being outlined."""
    if width <= 0 or not mask.any():
        return np.zeros_like(mask)
    inner = ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool), iterations=width, border_value=1)
    return mask & ~inner


def _check_max_height(max_height: int | None) -> None:
    if max_height is not None and max_height < 1:
        raise ValueError(f"max_height must be positive or None, got {max_height}.")


WINDOW_SAMPLE = 1 << 20
"""Most pixels :func:`window_percentile` reads for its percentiles (every k-th pixel of a larger picture)."""


def window_percentile(image: np.ndarray, lower: float = 1.0, upper: float = 99.0) -> np.ndarray:
    """Window a radiograph of any intensity range to uint8 between two of its percentiles.

    Args:
        image: (H, W) array (or (H, W, 3) colour, averaged to grey); NaNs are ignored.
        lower: percentile mapped to 0. Defaults to ``1.0``.
        upper: percentile mapped to 255. Defaults to ``99.0``.

    Returns:
        (H, W) uint8 array. A constant image gives zeros.

    Raises:
        ValueError: when ``image`` is not 2-D or the percentiles are not ``0 <= lower < upper <= 100``.
    """
    if not 0.0 <= lower < upper <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= lower < upper <= 100, got lower={lower}, upper={upper}.")
    img = _as_2d(image, "image").astype(np.float32, copy=False)
    # the window of a film of millions of pixels from every k-th of them: the same grey levels (within one) for a
    # fraction of the time (3 Mpx: 90 ms for the exact percentiles, a tenth of that from a 1 Mpx sample); the sample
    # is taken before the non-finite pixels are dropped, so that no full-size copy of the film is made
    flat = img.ravel()
    sample = flat[:: -(-flat.size // WINDOW_SAMPLE)] if flat.size else flat
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:  # no finite pixel in the sample: the film's own, if it has any
        sample = flat[np.isfinite(flat)]
    if sample.size == 0:
        return np.zeros(img.shape, np.uint8)
    lo, hi = (float(v) for v in np.percentile(sample, (lower, upper)))
    if hi <= lo:
        return np.zeros(img.shape, np.uint8)
    # in place on one float copy: (img - lo) / (hi - lo) clipped to [0, 1], times 255, rounded; NaN goes to 0
    out = np.subtract(img, lo, dtype=np.float32)
    out *= 255.0 / (hi - lo)
    np.clip(out, 0.0, 255.0, out=out)
    np.nan_to_num(out, copy=False, nan=0.0)
    out += 0.5
    return out.astype(np.uint8)


def overlay_mask(
    image: np.ndarray,
    mask: np.ndarray,
    color: Sequence[int] = DEFAULT_COLOR,
    alpha: float = 0.35,
    outline_width: int | None = None,
    max_height: int | None = 1500,
    percentiles: tuple[float, float] = (1.0, 99.0),
) -> np.ndarray:
    """Draw a mask on a radiograph: grey picture, semi-transparent colour fill and a crisp, opaque outline.

    The radiograph is windowed to its ``percentiles`` (1st-99th by default) so that any intensity range (8-bit PNG,
    12/16-bit DICOM, normalised floats) looks the same. Pictures taller than ``max_height`` are down-sampled for the
    overlay only (area filter for the picture, area-then-0.5 threshold for the mask), so that a 3000-row radiograph
    gives a viewable file of about 1500 rows; the masks themselves are always written at full size.

    Args:
        image: (H, W) radiograph, bone bright (or (H, W, 3) colour, averaged to grey).
        mask: (H, W) mask, foreground where ``> 0.5`` (bool, 0/1 or 0/255).
        color: RGB of the fill and the outline. Defaults to Okabe-Ito vermillion ``(213, 94, 0)``.
        alpha: opacity of the fill in [0, 1]. Defaults to ``0.35``.
        outline_width: outline thickness in output pixels, drawn just inside the mask edge; ``None`` picks
            ``max(1, round(longer side / 500))`` (3 pixels on a 1500-row overlay). ``0`` draws no outline.
        max_height: down-sample pictures taller than this many rows; ``None`` keeps the full size.
            Defaults to ``1500``.
        percentiles: the (lower, upper) percentiles of the window. Defaults to ``(1.0, 99.0)``.

    Returns:
        (h, w, 3) uint8 RGB array; (h, w) = (H, W) unless down-sampled.

    Raises:
        ValueError: when the shapes differ or an argument is out of range.
    """
    img = _as_2d(image, "image")
    msk = _as_2d(mask, "mask")
    if img.shape != msk.shape:
        raise ValueError(f"image and mask must have the same (H, W) shape, got {img.shape} and {msk.shape}.")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    if len(color) != 3:
        raise ValueError(f"color must be an RGB triple, got {color!r}.")
    _check_max_height(max_height)
    if outline_width is not None and outline_width < 0:
        raise ValueError(f"outline_width must be >= 0 or None, got {outline_width}.")

    # down-sampled first, then windowed: the window's float arithmetic on the overlay's pixels, not the film's (a
    # 2100-row film: 30 of the overlay's 75 ms went into windowing it at full size)
    picture, (fg,) = _downsample(img.astype(np.float32, copy=False), [_binary(msk)], max_height)
    grey = window_percentile(picture, *percentiles)
    if outline_width is None:
        outline_width = max(1, round(max(fg.shape) / 500))

    rgb = np.repeat(grey[..., None], 3, axis=-1)
    colour = np.asarray(color, np.float32)
    # the blend in float on the mask's pixels only, rounded as before; elsewhere the grey is copied as it is
    rgb[fg] = ((1.0 - alpha) * grey[fg].astype(np.float32)[:, None] + alpha * colour + 0.5).astype(np.uint8)
    rgb[_outline(fg, outline_width)] = np.asarray(color, np.uint8)
    return rgb


def save_mask_png(mask: np.ndarray, path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """Write an (H, W) mask as a single-channel uint8 PNG, 0 = background and 255 = foreground, atomically.

    Args:
        mask: (H, W) mask, foreground where ``> 0.5`` (bool, 0/1 or 0/255).
        path: the ``.png`` file to write.
        root: the output folder ``path`` must stay inside (see :func:`r2mf_monai.outputs.atomic.check_inside`).

    Returns:
        The written path.
    """
    msk = _as_2d(mask, "mask")
    out = _binary(msk).astype(np.uint8) * 255
    with atomic_write(path, root=root) as tmp:
        Image.fromarray(out).save(tmp)
    return Path(path)


OVERLAY_PNG_COMPRESSION = 1
"""zlib level of the overlay PNGs, which are written for every inference: a 1500 x 735 overlay took 77 ms at level 1,
113 ms at 3 and 268 ms at PIL's default 6 (files 705, 625 and 585 KB; bundle 0.7.0, this CPU)."""


def save_overlay(
    image: np.ndarray, mask: np.ndarray, path: str | os.PathLike, root: str | os.PathLike | None = None, **kwargs
) -> Path:
    """Write :func:`overlay_mask` of ``image`` and ``mask`` as an RGB PNG, atomically.

    Args:
        image: (H, W) radiograph, bone bright.
        mask: (H, W) mask.
        path: the ``.png`` file to write.
        root: the output folder ``path`` must stay inside (see :func:`r2mf_monai.outputs.atomic.check_inside`).
        kwargs: passed to :func:`overlay_mask` (``color``, ``alpha``, ``outline_width``, ``max_height``, ...).

    Returns:
        The written path.
    """
    rgb = overlay_mask(image, mask, **kwargs)
    with atomic_write(path, root=root) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG", compress_level=OVERLAY_PNG_COMPRESSION)
    return Path(path)


def comparison_overlay(
    pred: np.ndarray,
    label: np.ndarray,
    image: np.ndarray | None = None,
    title: str | None = None,
    alpha: float = 0.45,
    max_height: int | None = 1500,
) -> np.ndarray:
    """Prediction against label on the radiograph: agreement, over- and under-segmentation in three colours.

    True positives are filled bluish green, false positives (predicted, not labelled) vermillion and false
    negatives (labelled, missed) sky blue (Okabe-Ito colours, distinguishable for colour-blind readers); the label's
    edge is outlined in white. A header band holds ``title`` and a colour legend. Taller pictures are down-sampled
    to ``max_height`` rows as in :func:`overlay_mask`.

    Args:
        pred: (H, W) predicted mask, foreground where ``> 0.5``.
        label: (H, W) reference mask.
        image: (H, W) radiograph windowed to its 1st-99th percentile; ``None`` draws opaque fills on black.
        title: text of the header band (e.g. the case name and its Dice); ``None`` for the legend alone.
        alpha: opacity of the fills in [0, 1]. Defaults to ``0.45``.
        max_height: down-sample pictures taller than this; ``None`` keeps the full size. Defaults to ``1500``.

    Returns:
        (h + header, w, 3) uint8 RGB array.

    Raises:
        ValueError: when the shapes differ or an argument is out of range.
    """
    prd, lab = _binary(_as_2d(pred, "pred")), _binary(_as_2d(label, "label"))
    img = np.zeros(prd.shape, np.float32) if image is None else _as_2d(image, "image")
    if not prd.shape == lab.shape == img.shape:
        raise ValueError(
            f"pred, label and image must share one (H, W) shape, got {prd.shape}, {lab.shape}, {img.shape}."
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    _check_max_height(max_height)

    grey, (prd, lab) = _downsample(window_percentile(img), [prd, lab], max_height)
    rgb = np.repeat(grey[..., None], 3, axis=-1).astype(np.float32)
    opacity = alpha if image is not None else 1.0  # nothing to see through on a blank background
    for name, region in (("true positive", prd & lab), ("false positive", prd & ~lab), ("false negative", ~prd & lab)):
        colour = np.asarray(COMPARISON_COLORS[name], np.float32)
        rgb[region] = (1.0 - opacity) * rgb[region] + opacity * colour
    rgb[_outline(lab, max(1, round(max(lab.shape) / 750)))] = 255.0
    picture = Image.fromarray((rgb + 0.5).astype(np.uint8))

    # header band: title, then the legend (PIL's bundled font, no font file needed)
    font_size = int(np.clip(picture.width / 28, 9, 22))
    font = ImageFont.load_default(size=font_size)
    n_lines = 2 if title else 1
    header = Image.new("RGB", (picture.width, (font_size + 6) * n_lines + 4), (0, 0, 0))
    draw = ImageDraw.Draw(header)
    y = 3
    if title:
        draw.text((4, y), title, fill=(255, 255, 255), font=font)
        y += font_size + 6
    x = 4
    for name, colour in COMPARISON_COLORS.items():
        draw.rectangle((x, y + 2, x + font_size - 2, y + font_size), fill=colour)
        x += font_size + 2
        short = {"true positive": "TP", "false positive": "FP", "false negative": "FN"}[name]
        draw.text((x, y), short, fill=(255, 255, 255), font=font)
        x += int(draw.textlength(short, font=font)) + font_size
    out = Image.new("RGB", (picture.width, picture.height + header.height))
    out.paste(header, (0, 0))
    out.paste(picture, (0, header.height))
    return np.asarray(out)


def save_comparison_overlay(
    path: str | os.PathLike,
    pred: np.ndarray,
    label: np.ndarray,
    image: np.ndarray | None = None,
    title: str | None = None,
    **kwargs,
) -> Path:
    """Write :func:`comparison_overlay` as an RGB PNG, atomically (the evaluation's worst-case pictures).

    Args:
        path: the ``.png`` file to write.
        pred: (H, W) predicted mask.
        label: (H, W) reference mask.
        image: (H, W) radiograph, or ``None``.
        title: header text.
        kwargs: passed to :func:`comparison_overlay` (``alpha``, ``max_height``).

    Returns:
        The written path.
    """
    rgb = comparison_overlay(pred, label, image=image, title=title, **kwargs)
    with atomic_write(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG", compress_level=OVERLAY_PNG_COMPRESSION)
    return Path(path)
