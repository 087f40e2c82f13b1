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

"""DICOM Secondary Capture (SC) of the overlay with the curves and Cobb angles burnt in: the output every PACS shows.

Not a paper equation: many PACS viewers cannot display a DICOM SEG, but all of them display a Secondary Capture
image. The SC holds the overlay picture of :func:`r2mf_monai.outputs.overlay_mask` (down-sampled to at most
``max_height`` rows, as the overlay PNG) with the centreline, the Cobb lines along the end vertebrae and the Cobb
angles drawn the way the study figure (:mod:`r2mf_monai.measure.figure`) draws them, under a caption band with the
measurement summary. The same summary is written as text in Image Comments (0020,4000).

Built with highdicom's ``SCImage.from_ref_dataset``: the SC copies the source's patient and study attributes (it sits
in the source study, in a new series) and references the source image. Checked with ``dciodvfy`` (see the tests).
Only a DICOM source has a study to sit in: for a PNG/JPEG source no SC is written (as for the SEG), because an SC with
a made-up patient and study would file an orphan study in the PACS.
"""

from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian

from r2mf_monai.measure.centreline import MaskNotMeasurableError
from r2mf_monai.measure.cobb import ViewMeasurement, measure_mask
from r2mf_monai.outputs.atomic import atomic_write

# the SEG writer's header reading, the Type 2 patient/study attributes it makes present and its fixes of legacy
# (ACR-NEMA) dates and times: one place for both outputs
from r2mf_monai.outputs.dicom_seg import _TYPE2_COPIED, _normalise_dates_and_times, _source_dataset
from r2mf_monai.outputs.overlay import overlay_mask

__all__ = ["burn_in_measurement", "measure_for_capture", "measurement_summary", "write_secondary_capture"]

logger = logging.getLogger(__name__)

#: First line of every caption: what made the picture and what it is not.
CAPTION_TITLE = "R2MF-Net spinal column (research use, not for diagnosis)"

_REQUIRED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID")


def _side(convex: str) -> str:
    return convex.replace("image_", "image ")


def measurement_summary(
    measurement: ViewMeasurement | None, reason: str | None = None, degree: str = " deg"
) -> list[str]:
    """The caption of a Secondary Capture: a title line, then one line per curve (or why there is none).

    Args:
        measurement: the view's measurement (:func:`r2mf_monai.measure.cobb.measure_mask`), or ``None`` when the mask
            was not measured.
        reason: why the mask was not measured (shown as ``"not measured: <reason>"``) when ``measurement`` is
            ``None``.
        degree: the unit after an angle: ``" deg"`` (plain ASCII, for DICOM text) or ``"°"`` for the picture.

    Returns:
        Lines of text, the first :data:`CAPTION_TITLE`.
    """
    lines = [CAPTION_TITLE]
    if measurement is None:
        lines.append(f"not measured: {reason or 'no measurement'}")
        return lines
    for c in measurement.curves:
        lines.append(
            f"{c.name} {c.cobb_deg:.0f}{degree} {c.upper_level}-{c.lower_level} (apex {c.apex_level}), "
            f"convex {_side(c.convex)}"
        )
    if not measurement.curves:
        lines.append(f"no curve of {measurement.min_cobb:g}{degree} or more")
    else:
        lines.append("levels estimated from the column length (+/- 1 level)")
    return lines


def measure_for_capture(
    mask: np.ndarray,
    spacing: float | tuple[float, float] | None = None,
    min_cobb: float = 5.0,
    image: np.ndarray | None = None,
) -> tuple[ViewMeasurement | None, str | None]:
    """Measure one view's mask for its Secondary Capture; a mask that cannot be measured gives its reason instead.

    Args:
        mask: (H, W) mask, row 0 at the top; foreground where ``> 0.5``.
        spacing: the film's pixel spacing in mm (one number or ``(row, column)``); ``None`` measures in pixels.
        min_cobb: smallest Cobb angle reported, degrees. Defaults to ``5.0``.
        image: the film on the mask's grid: a mask is then read with the endplates seen on it
            (:func:`r2mf_monai.measure.measure_mask`), as the JSON report reads it; ``None`` reads the mask alone.

    Returns:
        ``(measurement, None)``, or ``(None, reason)`` for a mask that carries no measurable column
        (:class:`~r2mf_monai.measure.centreline.MaskNotMeasurableError`: empty, a fragment, a looping centreline).
    """
    try:
        return measure_mask(mask, spacing=spacing, min_cobb=min_cobb, image=image), None
    except MaskNotMeasurableError as e:
        return None, str(e)


def _wrap(lines: Sequence[str], font: ImageFont.ImageFont, width: int, draw: ImageDraw.ImageDraw) -> list[str]:
    """Wrap each line to ``width`` pixels (a long line is split at spaces, continuation lines indented)."""
    out: list[str] = []
    for line in lines:
        chars = len(line)
        while chars > 8 and draw.textlength(textwrap.wrap(line, chars)[0], font=font) > width:
            chars = int(chars * 0.9)
        out += textwrap.wrap(line, chars, subsequent_indent="  ") or [""]
    return out


def _caption_band(lines: Sequence[str], width: int, font_px: int) -> np.ndarray:
    """A black band with the caption in white (Pillow's bundled font, as the comparison overlays' header)."""
    font = ImageFont.load_default(size=font_px)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    wrapped = _wrap(lines, font, width - 8, probe)
    step = font_px + max(2, font_px // 3)
    band = Image.new("RGB", (width, step * len(wrapped) + 2 * max(2, font_px // 3)), (0, 0, 0))
    draw = ImageDraw.Draw(band)
    y = max(2, font_px // 3)
    for i, line in enumerate(wrapped):
        draw.text((4, y), line, fill=(255, 255, 255) if i else (255, 214, 0), font=font)
        y += step
    return np.asarray(band)


def _annotations(measurement: ViewMeasurement, mask_shape: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """The centreline, CSVL, Cobb lines, end levels and angles of ``measurement`` as an RGBA layer of ``size``
    (h, w), drawn over the mask's pixel coordinates by the study figure's own drawing code (matplotlib)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # the study figure's drawing, so that the SC and the figure show a curve the same way (private helpers: the
    # figure module has no public per-view drawing function)
    from r2mf_monai.measure.figure import _CENTRELINE, _draw_curves, _stroke

    h, w = size
    rows, cols = mask_shape
    # the figure draws a 7-inch panel at 150 dpi with 11-point text: the same proportions at this picture's size
    dpi = max(h / 7.0, 8.0)
    fig = Figure(figsize=(w / dpi, h / dpi), dpi=dpi)
    fig.patch.set_alpha(0.0)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    ax.patch.set_alpha(0.0)
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    if measurement.csvl_col is not None:
        ax.plot([measurement.csvl_col] * 2, [-0.5, rows - 0.5], color="white", lw=1.0, ls=(0, (6, 4)),
                path_effects=_stroke(2.2))  # fmt: skip
    centreline = measurement.centreline
    if centreline is not None:
        ax.plot(centreline.points[:, 1], centreline.points[:, 0], color=_CENTRELINE, lw=1.6)
        _draw_curves(ax, measurement, fontsize=11.0)
    canvas.draw()
    layer = np.asarray(canvas.buffer_rgba())
    if layer.shape[:2] != (h, w):  # matplotlib rounds the canvas size: bring it to the picture's exactly
        layer = np.asarray(Image.fromarray(layer).resize((w, h), Image.Resampling.BILINEAR))
    return layer


def burn_in_measurement(
    image: np.ndarray,
    mask: np.ndarray,
    measurement: ViewMeasurement | None,
    reason: str | None = None,
    max_height: int | None = 1500,
    **overlay_kwargs: Any,
) -> np.ndarray:
    """The overlay of ``mask`` on ``image`` with the measurement burnt in, under a caption band.

    The picture is :func:`r2mf_monai.outputs.overlay_mask` (grey radiograph, vermillion mask) at the overlay's size
    (at most ``max_height`` rows); over it the centreline (yellow), the CSVL (dashed) and each curve's Cobb lines,
    end levels and angle, as in the study figure. Above it a black band holds :func:`measurement_summary` (with the
    reason when the mask was not measured). Pixels where nothing is drawn are the overlay's, unchanged.

    Args:
        image: (H, W) radiograph, bone bright, any intensity range.
        mask: (H, W) mask, foreground where ``> 0.5``.
        measurement: the view's measurement, or ``None`` when not measured.
        reason: why it was not measured.
        max_height: down-sample pictures taller than this; ``None`` keeps the full size. Defaults to ``1500``.
        overlay_kwargs: passed to :func:`r2mf_monai.outputs.overlay_mask` (``color``, ``alpha``, ...).

    Returns:
        (band + h, w, 3) uint8 RGB array, (h, w) the overlay's size.
    """
    rgb = overlay_mask(image, mask, max_height=max_height, **overlay_kwargs)
    h, w = rgb.shape[:2]
    if measurement is not None:
        layer = _annotations(measurement, np.asarray(mask).shape[:2], (h, w)).astype(np.float32)
        alpha = layer[..., 3:] / 255.0
        rgb = (rgb * (1.0 - alpha) + layer[..., :3] * alpha + 0.5).astype(np.uint8)
    font_px = int(np.clip(round(h / 70), 9, 24))
    band = _caption_band(measurement_summary(measurement, reason, degree="°"), w, font_px)
    return np.concatenate([band, rgb], axis=0)


def _load_image(source: str | os.PathLike) -> tuple[np.ndarray, tuple[float, float] | None]:
    """The radiograph as the pipeline loads it ((H, W), MONOCHROME1 inverted) and its pixel spacing."""
    from r2mf_monai.transforms.load import LoadRadiograph
    from r2mf_monai.transforms.readers import pixel_spacing_from_meta

    img = LoadRadiograph()(os.fspath(source))
    arr = np.asarray(img.detach().cpu().numpy() if hasattr(img, "detach") else img, dtype=np.float32)
    arr = arr.mean(axis=0) if arr.ndim == 3 else arr  # (C, W, H) -> (W, H)
    return np.ascontiguousarray(arr.T), pixel_spacing_from_meta(dict(getattr(img, "meta", {})))


def _header_copy(ds: Dataset) -> Dataset:
    """A header-only copy of ``ds`` with the Type 2 patient/study attributes present and legacy dates fixed."""
    src = Dataset()
    for element in ds:
        if element.keyword != "PixelData":
            src.add(element)
    for keyword in _TYPE2_COPIED:
        if keyword not in src:
            setattr(src, keyword, "")
    _normalise_dates_and_times(src)
    return src


def write_secondary_capture(
    source: str | os.PathLike | Dataset,
    mask: np.ndarray,
    output: str | os.PathLike,
    *,
    image: np.ndarray | None = None,
    spacing: float | tuple[float, float] | None = None,
    measurement: ViewMeasurement | None = None,
    reason: str | None = None,
    measure: bool = True,
    min_cobb: float = 5.0,
    max_height: int | None = 1500,
    series_number: int = 301,
    series_description: str = "Spine overlay with Cobb angles (R2MF-Net, research use)",
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    overlay_kwargs: Mapping[str, Any] | None = None,
    root: str | os.PathLike | None = None,
) -> Path:
    """Write a DICOM Secondary Capture of the overlay with the measurement burnt in, in the source's study.

    The SC (RGB, 8 bits) holds :func:`burn_in_measurement`: a caption band on top of the overlay picture, so it has
    ``band + h`` rows and ``w`` columns where ``(h, w)`` is the overlay's size (the source's Rows x Columns, or
    down-sampled to ``max_height`` rows). It copies the source's patient and study attributes, is a new series
    (Modality OT, ``series_number``), references the source image (Source Image Sequence), carries the caption as
    Image Comments (ASCII, ``deg`` for degrees) and no Pixel Spacing (it is a picture to look at, not to measure on:
    the numbers are in it). The file is written atomically.

    Args:
        source: the DICOM radiograph (a file path, or a pydicom dataset whose pixel data are not needed when
            ``image`` is given).
        mask: (Rows, Columns) mask of the source's pixel grid, row 0 at the top; foreground where ``> 0.5``.
        output: the ``.dcm`` file to write.
        image: (Rows, Columns) radiograph, bone bright, any range; ``None`` loads the source file with the
            pipeline's loader (:class:`r2mf_monai.transforms.LoadRadiograph`), which also gives its spacing.
        spacing: the film's pixel spacing in mm for the measurement; ``None`` takes the loaded file's (when
            ``image`` is ``None``), else measures in pixels.
        measurement: the view's measurement; ``None`` measures ``mask`` here (:func:`measure_for_capture`) unless
            ``measure`` is ``False``.
        reason: why the view is not measured, shown when ``measurement`` is ``None`` and ``measure`` is ``False``.
        measure: measure the mask when no ``measurement`` is given. Defaults to ``True``.
        min_cobb: smallest Cobb angle reported when measuring here, degrees. Defaults to ``5.0``.
        max_height: the picture's largest height (rows) before the caption; ``None`` keeps the full size.
            Defaults to ``1500`` (the overlay PNG's).
        series_number: Series Number. Defaults to ``301`` (the SEG's is 300).
        series_description: Series Description.
        series_instance_uid: UID of the new series; a new one when ``None``.
        sop_instance_uid: UID of the instance; a new one when ``None``.
        overlay_kwargs: passed to :func:`r2mf_monai.outputs.overlay_mask` (``color``, ``alpha``, ...).
        root: the output folder ``output`` must stay inside (see :func:`r2mf_monai.outputs.atomic.check_inside`).

    Returns:
        The written path.

    Raises:
        FileNotFoundError: when ``source`` is a path that does not exist.
        ValueError: when ``source`` is not a DICOM image (e.g. a PNG), the mask's or image's shape is not its
            Rows x Columns (each message names the source file), or ``output`` resolves outside ``root``.
    """
    name, ds = _source_dataset(
        source,
        _REQUIRED,
        not_dicom="source {name!r} is not a DICOM file; a Secondary Capture needs a DICOM source to take its patient "
        "and study from.",
        lacking="DICOM source {name!r} cannot place a Secondary Capture in its study: it lacks {missing}.",
    )
    mask = np.asarray(mask)
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if mask.ndim != 2 or (rows and cols and mask.shape != (rows, cols)):
        hint = " (it looks transposed: pass (H, W), not MONAI's (W, H))" if mask.shape == (cols, rows) else ""
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not match DICOM source {name!r}: Rows x Columns "
                         f"is {rows} x {cols}{hint}.")  # fmt: skip
    if image is None:
        if isinstance(source, Dataset):
            filename = getattr(source, "filename", None)
            if not isinstance(filename, (str, os.PathLike)) or not os.path.isfile(filename):
                raise ValueError(f"DICOM source {name!r}: pass image= (the dataset has no file to load it from).")
            source = filename
        image, file_spacing = _load_image(source)
        spacing = file_spacing if spacing is None else spacing
    image = np.asarray(image)
    if image.shape[:2] != mask.shape:
        raise ValueError(f"image of shape {tuple(image.shape)} and mask of shape {tuple(mask.shape)} of DICOM source "
                         f"{name!r} are not on one grid.")  # fmt: skip
    if measurement is None and measure:
        measurement, reason = measure_for_capture(mask, spacing=spacing, min_cobb=min_cobb, image=image)
    picture = burn_in_measurement(
        image, mask, measurement, reason=reason, max_height=max_height, **dict(overlay_kwargs or {})
    )
    sc = _build_sc(ds, picture, series_number, series_description, series_instance_uid, sop_instance_uid)
    sc.ImageComments = "\n".join(measurement_summary(measurement, reason))
    with atomic_write(output, root=root) as tmp:
        if int(pydicom.__version__.split(".")[0]) >= 3:
            pydicom.dcmwrite(tmp, sc, enforce_file_format=True)
        else:  # pragma: no cover - pydicom 2.x (the MONAI Label venv)
            pydicom.dcmwrite(tmp, sc, write_like_original=False)
    logger.info("DICOM Secondary Capture of %s written to %s", name, output)
    return Path(output)


def _copy_body_part_and_laterality(src: Dataset, sc: Dataset) -> None:
    """Body Part Examined and Laterality (General Series, Type 2C: needed for a paired or an unknown body part).

    With a body part, it is copied, and the source's Laterality when it has a value (the source knows whether its
    part is paired; an empty one on an unpaired part, as on pydicom's CSPINE test films, is an error). Without one,
    Laterality is required: the source's, else empty (unknown), which ``dciodvfy`` accepts with a warning where a
    missing one is an error (real anonymised films often have neither).
    """
    body_part = str(src.get("BodyPartExamined", "") or "").strip()
    if body_part:
        sc.BodyPartExamined = body_part
        if src.get("Laterality"):
            sc.Laterality = src.Laterality
    else:
        sc.Laterality = src.get("Laterality", "") or ""


def _build_sc(
    ds: Dataset,
    picture: np.ndarray,
    series_number: int,
    series_description: str,
    series_instance_uid: str | None,
    sop_instance_uid: str | None,
) -> hd.sc.SCImage:
    from r2mf_monai import __version__

    src = _header_copy(ds)
    # highdicom (0.23+) copies the character set and refuses the empty first value of a valid multi-valued one
    # (``\\ISO 2022 IR 87``): it is set after building, as the source has it
    charset = src.get("SpecificCharacterSet")
    if charset is not None:
        del src.SpecificCharacterSet
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=src,
        pixel_array=np.ascontiguousarray(picture, dtype=np.uint8),
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=series_instance_uid or hd.UID(),
        series_number=series_number,
        sop_instance_uid=sop_instance_uid or hd.UID(),
        instance_number=1,
        manufacturer="r2mf-monai",
        # highdicom needs one for a patient image; replaced below by the source's own (copied verbatim)
        patient_orientation=("P", "F"),
        transfer_syntax_uid=ExplicitVRLittleEndian,
        series_description=series_description,
        manufacturer_model_name="R2MF-Net",
        software_versions=str(__version__),
    )
    # Type 2C in General Image (no Image Orientation): the source's, empty when it has none. A down-sampled picture
    # keeps its directions, and the caption band on top does not turn it.
    sc.PatientOrientation = src.get("PatientOrientation", "")
    if charset is not None:  # the copied patient name is in the source's character set
        sc.SpecificCharacterSet = charset
    _copy_body_part_and_laterality(src, sc)
    # what the picture is made from (General Image, Type 3): the source image
    reference = Dataset()
    reference.ReferencedSOPClassUID = src.SOPClassUID
    reference.ReferencedSOPInstanceUID = src.SOPInstanceUID
    reference.PurposeOfReferenceCodeSequence = [hd.sr.CodedConcept(*codes.DCM.SourceImageForImageProcessingOperation)]
    sc.SourceImageSequence = [reference]
    sc.DerivationDescription = "Spinal column segmented by R2MF-Net, measured and drawn over the source image"
    sc.BurnedInAnnotation = "NO"  # the burnt-in caption names no patient and no date
    return sc
