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

"""MONAI image readers for projection radiographs: DICOM, PNG/JPEG/TIFF/BMP and 2-D NIfTI (paper §4.1 input).

Every reader returns one grey-level 2-D array in MONAI's 2-D convention, the one ``LoadImage`` with ``PILReader``
gives: spatial axes (W, H), i.e. ``array[x, y]`` with x the image column and y the image row (row 0 at the top of
the picture). A DICOM file and a PNG file that hold the same pixels load to the same array.

All readers write the same metadata keys, so that a batch may mix formats and still collate:

- ``format``: ``"DICOM"``, ``"PNG"``, ``"JPEG"``, ``"TIFF"``, ``"BMP"``, ``"GIF"`` or ``"NIfTI"``;
- ``spatial_shape`` ``(W, H)``, ``original_channel_dim`` (``nan``: no channel), ``space``;
- ``affine`` / ``original_affine``: 4x4; for DICOM and raster files ``diag(column spacing, row spacing, 1, 1)``
  (identity when the spacing is unknown; a projection radiograph has no patient frame), for NIfTI the file's own;
- ``spacing``: spacing per array axis ``(x, y)`` = (column, row) in mm, ``1.0`` where unknown (MONAI's meaning);
- ``pixel_spacing``: ``(row spacing, column spacing)`` in mm as in DICOM PixelSpacing, ``nan`` where unknown
  (read it with :func:`pixel_spacing_from_meta`, which gives ``None`` then);
- ``pixel_spacing_source``: ``"PixelSpacing"``, ``"ImagerPixelSpacing"``, ``"NIfTI pixdim"`` or ``"none"``;
- ``source_mode``: the DICOM PhotometricInterpretation or the PIL mode the pixels came in;
- ``inverted``: whether MONOCHROME1 pixels were inverted.

DICOM handling (pydicom):

- the Modality LUT (Rescale Slope/Intercept or Modality LUT Sequence) is applied;
- a VOI LUT *Sequence* is applied when present (``voi_lut="sequence"``, the default): it is the modality's own,
  usually non-linear, mapping of raw detector values to a viewable image. A linear window (Window Center/Width)
  is *not* applied by default, since it clips data and the per-image min-max normalisation of §4.1 follows
  anyway; ``voi_lut="all"`` applies the window too (pydicom's ``apply_voi_lut``), ``"none"`` neither;
- MONOCHROME1 is inverted so that bone is bright: ``lo + hi - value`` where ``[lo, hi]`` is the output range of the
  stored bit depth after the same LUTs (so a MONOCHROME1 file with pixels ``4095 - p`` at 12 bits loads as ``p``).
  The Presentation LUT Shape is not consulted (pydicom inverts only for ``INVERSE``; real MONOCHROME1 files
  often leave it out);
- colour (RGB, YBR, PALETTE COLOR) is converted to grey with the ITU-R BT.601 luma weights, like the raster reader
  (a radiograph stored in colour is a grey picture in a colour container, e.g. a secondary capture);
- multi-frame files (NumberOfFrames > 1) are refused: a radiograph is one frame;
- a signed PixelRepresentation over data that are unsigned (the two readings differ by a wrap-around at
  ``2**(BitsStored - 1)``) is detected and warned about, see :func:`signed_wrap_check`;
- compressed transfer syntaxes are decoded by whatever pydicom plugin is installed (RLE natively; JPEG baseline,
  extended and lossless, JPEG-LS and JPEG 2000 through ``pylibjpeg`` with its ``-libjpeg``/``-openjpeg`` plugins,
  the ``dicom`` extra of this package); a data set without File Meta Information, GE's private big-endian-pixel
  syntax and the retired JPEG processes as :mod:`r2mf_monai.transforms.dicom_pixels` says;
- spacing from PixelSpacing, else ImagerPixelSpacing (also inside the functional groups of an enhanced file),
  else none; a zero, negative or non-finite value counts as missing.

Raster handling (Pillow): 16-bit grey PNG/TIFF (PIL modes ``I;16*``) stay 16-bit, 32-bit integer and float images
keep their values, RGB/RGBA/palette images become grey (exactly one channel when R = G = B, else BT.601 luma; alpha
is dropped), multi-frame files (animated GIF, multi-page TIFF) are refused. EXIF orientation is not applied, as in
MONAI's ``PILReader``.

Bounded memory: every reader checks the size the file *declares* before decoding it (Pillow's header size, DICOM
Rows x Columns x SamplesPerPixel x NumberOfFrames, the NIfTI header's shape) against ``max_pixels`` (default
:data:`DEFAULT_MAX_PIXELS`) and refuses a larger file, so a 79 KB PNG that declares 9000 x 9000 pixels is refused
before its 81 million pixels are allocated. DICOM pixel data are read from the file only when decoded (``dcmread``
with ``defer_size``); Pillow's own decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) is an error too, not a
warning.

Honest pixels: a picture that cannot give a mask (every pixel the same value, or a 1 x 1 image) and a suspected
signed/unsigned mix-up are logged as a WARNING naming the file and recorded in the metadata key ``read_warnings``
(``""`` when there is nothing to say), which :class:`r2mf_monai.handlers.ReviewFlag` puts into ``review.json``.
A DICOM's Modality, BodyPartExamined and ViewPosition are kept (``modality``, ``body_part_examined``,
``view_position``; ``""`` for other formats) for the spine check of :mod:`r2mf_monai.measure.plausibility`.

A reader raises :class:`RadiographReadError` (a ``ValueError``) naming the file and the reason. ``read`` only
parses the header; decoding and every check happen in ``get_data``, whose errors ``monai.transforms.LoadImage``
does not catch, so they reach the user as they are (``read`` errors, by contrast, make ``LoadImage`` try its
other readers and end in a generic ``RuntimeError``; :class:`r2mf_monai.transforms.load.LoadRadiograph` avoids
that).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from monai.data import ImageReader, NibabelReader
from monai.data.utils import affine_to_spacing
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple

from r2mf_monai.constants import DICOM_SUFFIXES, NIFTI_SUFFIXES, RADIOGRAPH_SUFFIXES, RASTER_SUFFIXES
from r2mf_monai.transforms.dicom_pixels import decode_failure, decode_pixel_array, transfer_syntax
from r2mf_monai.utils import ensure_option

__all__ = [
    "RadiographReadError",
    "RadiographNotFoundError",
    "DicomRadiographReader",
    "RasterRadiographReader",
    "NiftiRadiographReader",
    "RadiographReader",
    "DEFAULT_MAX_PIXELS",
    "signed_wrap_check",
    "pixel_spacing_from_meta",
    "detect_format",
    "RASTER_SUFFIXES",
    "DICOM_SUFFIXES",
    "NIFTI_SUFFIXES",
    "RADIOGRAPH_SUFFIXES",
    "has_dicom_preamble",
]

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike


# ITU-R BT.601 luma weights, the ones PIL's convert("L") uses; applied in float to keep full precision.
_LUMA = np.array([0.299, 0.587, 0.114])
_VOI_CHOICES = ("sequence", "all", "none")

#: Default largest image a reader decodes, in decoded values (rows x columns x samples per pixel x frames): a
#: 43 x 129 cm long-cassette (full-spine) film sampled at 0.1 mm is 4300 x 12900 = 55.47 million grey pixels, the
#: largest radiograph this bundle is meant for. Larger declared sizes are refused before decoding (a decompression
#: bomb, or not a radiograph); a colour file counts three values per pixel. Raise it with ``max_pixels``.
DEFAULT_MAX_PIXELS = 4300 * 12900

# the signed/unsigned check (signed_wrap_check): a wrap-around makes neighbours differ by more than half the stored
# range; it is reported when the declared reading has at least this many such jumps, and this many times as many as
# the other reading (a real edge from air to metal may give a few in either reading, a wrap gives thousands)
_WRAP_MIN_JUMPS = 16
_WRAP_RATIO = 4.0
# rows sampled for the check: whole rows keep neighbours neighbours; about this many values are enough to see a wrap
_WRAP_SAMPLE_VALUES = 1 << 20


class RadiographReadError(ValueError):
    """A radiograph that cannot be read; the message names the file and the reason.

    Args:
        path: the file.
        reason: what is wrong with it.
    """

    def __init__(self, path: PathLike | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read radiograph '{self.path}': {reason}")

    def __reduce__(self):  # picklable across DataLoader worker processes
        return (self.__class__, (self.path, self.reason))


class RadiographNotFoundError(RadiographReadError, FileNotFoundError):
    """A radiograph path that does not exist (both a :class:`RadiographReadError` and a ``FileNotFoundError``)."""


def _check_max_pixels(max_pixels: int | None) -> int | None:
    if max_pixels is not None and (isinstance(max_pixels, bool) or int(max_pixels) != max_pixels or max_pixels < 1):
        raise ValueError(f"max_pixels must be a positive whole number of pixels or None, got {max_pixels!r}.")
    return None if max_pixels is None else int(max_pixels)


def _refuse_if_too_large(name: str, dims: Sequence[int], what: str, max_pixels: int | None) -> None:
    """Raise before decoding when the declared ``dims`` (their product is the number of decoded values) exceed
    ``max_pixels``; ``what`` says what the dims are (e.g. ``"columns x rows"``)."""
    count = int(np.prod([int(d) for d in dims], dtype=np.float64))
    if max_pixels is not None and count > max_pixels:
        size = " x ".join(str(int(d)) for d in dims)
        raise RadiographReadError(
            name,
            f"the file declares {size} ({what}) = {count / 1e6:.2f} million pixel values, more than max_pixels = "
            f"{max_pixels / 1e6:.2f} million (a 43 x 129 cm film at 0.1 mm is 55.47); not decoded (raise max_pixels "
            "for a larger radiograph)",
        )


def signed_wrap_check(stored: np.ndarray, bits_stored: int) -> str | None:
    """Whether signed stored values look like unsigned data read as signed (a DICOM PixelRepresentation mix-up).

    Unsigned data read as two's complement wrap at ``2**(bits_stored - 1)``: the brightest pixels become the most
    negative ones, so wherever the true image crosses that value two neighbours differ by almost the whole stored
    range. A radiograph is spatially smooth: neighbours differ by more than half the stored range only at a few
    hard edges. The test counts such jumps between horizontal neighbours in the signed reading and in the unsigned
    one (``value mod 2**bits_stored``); the signed reading is implausible when it has many (at least
    ``_WRAP_MIN_JUMPS``) and ``_WRAP_RATIO`` times as many as the unsigned reading. Only negative values can be
    wrapped, so an image without them passes at once.

    Args:
        stored: the stored pixel values as decoded by pydicom with PixelRepresentation = 1 (signed integers).
        bits_stored: the DICOM BitsStored.

    Returns:
        a sentence describing the suspected mix-up, or ``None`` when the signed reading is plausible.
    """
    arr = np.asarray(stored)
    if arr.ndim != 2 or arr.shape[1] < 2 or not np.issubdtype(arr.dtype, np.signedinteger) or arr.min() >= 0:
        return None
    step = max(1, int(arr.size // _WRAP_SAMPLE_VALUES))
    rows = arr[::step].astype(np.int64)
    half = 2 ** (bits_stored - 1)
    signed_jumps = int((np.abs(np.diff(rows, axis=1)) > half).sum())
    if signed_jumps < _WRAP_MIN_JUMPS:
        return None
    unsigned_jumps = int((np.abs(np.diff(rows % (2 * half), axis=1)) > half).sum())
    if signed_jumps < _WRAP_RATIO * unsigned_jumps:
        return None
    negative = float((arr < 0).mean())
    return (
        f"PixelRepresentation says signed, but the values look unsigned: {negative:.0%} of the pixels are negative "
        f"and {signed_jumps} neighbour pairs jump by more than half the {bits_stored}-bit range (a wrap-around) where "
        f"the unsigned reading has {unsigned_jumps}; the mask may be wrong - check the file's PixelRepresentation"
    )


def _content_warnings(arr: np.ndarray, name: str, extra: Sequence[str] = ()) -> str:
    """Log (WARNING, naming the file) and return, joined by ``"; "``, what makes a decoded picture unusable or
    suspect: a 1 x 1 image, one where every pixel has the same value (no mask can come of it), and ``extra``."""
    warnings_: list[str] = list(extra)
    if arr.size <= 1:
        warnings_.append(f"the image is only {' x '.join(map(str, arr.shape))} pixel(s): nothing to segment")
    elif arr.size and np.ptp(arr) == 0:
        value = arr.flat[0]
        warnings_.append(f"every pixel has the value {value:g}: nothing to segment, the mask will be empty")
    for text in warnings_:
        logger.warning("%s: %s", name, text)
    return "; ".join(warnings_)


def _suffix(path: PathLike) -> str:
    name = str(path).lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def has_dicom_preamble(path: PathLike) -> bool:
    """Whether ``path`` starts with the DICOM preamble (``DICM`` at byte 128); ``False`` when it cannot be read."""
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"GIF8", "GIF"),
)


def detect_format(path: PathLike) -> str | None:
    """Family of a radiograph file, ``"dicom"``, ``"raster"`` or ``"nifti"``, from its content, else its suffix.

    Args:
        path: the file.

    Returns:
        the family, or ``None`` when neither the content nor the suffix is recognised.
    """
    if has_dicom_preamble(path):
        return "dicom"
    try:
        with open(path, "rb") as f:
            head = f.read(352)
    except OSError:
        head = b""
    if any(head.startswith(magic) for magic, _ in _MAGIC):
        return "raster"
    if len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return "nifti"
    suffix = _suffix(path)
    if suffix in NIFTI_SUFFIXES:
        return "nifti"
    if suffix in RASTER_SUFFIXES:
        return "raster"
    if suffix in DICOM_SUFFIXES or suffix == "":
        return "dicom"  # DICOM files without a preamble or a suffix are common in PACS exports
    return None


def _valid_spacing(value: Any) -> tuple[float, float] | None:
    """(row, column) spacing from a DICOM multi-value, or None when missing, zero, negative or non-finite."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split("\\")
    elif not isinstance(value, Sequence):
        value = [value]
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    if len(values) == 1:
        values = values * 2
    if len(values) < 2 or not np.all(np.isfinite(values[:2])) or min(values[:2]) <= 0:
        return None
    return values[0], values[1]


def _radiograph_meta(
    fmt: str,
    shape_wh: Sequence[int],
    pixel_spacing: tuple[float, float] | None,
    spacing_source: str,
    source_mode: str,
    inverted: bool = False,
    affine: np.ndarray | None = None,
) -> dict:
    """The metadata every reader of this module writes (same keys for every format, see the module docstring)."""
    row, col = pixel_spacing if pixel_spacing is not None else (1.0, 1.0)
    if affine is None:
        affine = np.diag([col, row, 1.0, 1.0])
    affine = np.asarray(affine, dtype=np.float64)
    return {
        "format": fmt,
        MetaKeys.SPATIAL_SHAPE: np.asarray(shape_wh, dtype=np.int64),
        MetaKeys.ORIGINAL_CHANNEL_DIM: float("nan"),
        MetaKeys.SPACE: SpaceKeys.RAS,
        MetaKeys.AFFINE: affine.copy(),
        MetaKeys.ORIGINAL_AFFINE: affine.copy(),
        "spacing": np.asarray([col, row], dtype=np.float64),
        "pixel_spacing": np.asarray(pixel_spacing if pixel_spacing is not None else (np.nan, np.nan), np.float64),
        "pixel_spacing_source": spacing_source if pixel_spacing is not None else "none",
        "source_mode": source_mode,
        "inverted": bool(inverted),
        "read_warnings": "",
        "modality": "",
        "body_part_examined": "",
        "view_position": "",
    }


def pixel_spacing_from_meta(meta: dict) -> tuple[float, float] | None:
    """``(row spacing, column spacing)`` in mm from the metadata of a loaded radiograph, ``None`` when unknown.

    Args:
        meta: a ``MetaTensor.meta`` (or meta dict) written by a reader of this module.
    """
    value = meta.get("pixel_spacing")
    if value is None:
        return None
    arr = np.asarray(value.cpu() if hasattr(value, "cpu") else value, dtype=np.float64).reshape(-1)
    if arr.size < 2 or not np.all(np.isfinite(arr[:2])) or np.any(arr[:2] <= 0):
        return None
    return float(arr[0]), float(arr[1])


def _to_grey(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) colour -> (H, W) grey: one channel exactly when R = G = B, else BT.601 luma in float."""
    rgb = rgb[..., :3]
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return rgb[..., 0]
    return rgb.astype(np.float64) @ _LUMA


@dataclass
class _Stack:
    """Several files read into one multi-channel image (the ImageReader protocol for a list of files)."""

    items: list
    filenames: list[str]


def _stack(arrays: list[np.ndarray], metas: list[dict], filenames: list[str]) -> tuple[np.ndarray, dict]:
    if len(arrays) == 1:
        return arrays[0], metas[0]
    if any(a.shape != arrays[0].shape for a in arrays):
        shapes = ", ".join(f"{f}: {a.shape}" for f, a in zip(filenames, arrays, strict=True))
        raise RadiographReadError(filenames[0], f"files stacked as channels differ in size ({shapes})")
    meta = dict(metas[0])
    meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = 0
    return np.stack(arrays, axis=0), meta


def _open_each(data: Sequence[PathLike] | PathLike, open_one: Callable[[str], Any], what: str) -> _Stack:
    """Open every file of ``data`` with ``open_one``; a missing or unreadable one raises naming the file (the
    libraries raise many exception types for a damaged file)."""
    items, names = [], []
    for name in map(str, ensure_tuple(data)):
        try:
            items.append(open_one(name))
        except RadiographReadError:
            raise
        except FileNotFoundError as e:
            raise RadiographNotFoundError(name, "no such file") from e
        except Exception as e:
            raise RadiographReadError(name, f"not a readable {what} ({type(e).__name__}: {e})") from e
        names.append(name)
    return _Stack(items, names)


def _decode(
    img: Any, placeholder: str, decode_one: Callable[[Any, str], tuple[np.ndarray, dict]]
) -> tuple[np.ndarray, dict]:
    """Decode what a reader's ``read`` returned (a :class:`_Stack`, or bare objects, named ``placeholder`` in errors)
    one file at a time and stack the results as channels."""
    if isinstance(img, _Stack):
        stack = img
    else:
        items = list(ensure_tuple(img))
        stack = _Stack(items, [placeholder] * len(items))
    decoded = [decode_one(item, name) for item, name in zip(stack.items, stack.filenames, strict=True)]
    return _stack([array for array, _ in decoded], [meta for _, meta in decoded], stack.filenames)


class DicomRadiographReader(ImageReader):
    """Single-frame DICOM radiographs (CR, DX, DX-for-presentation, secondary capture) with pydicom.

    See the module docstring for what is applied (Modality LUT, VOI LUT Sequence, MONOCHROME1 inversion, colour to
    grey) and refused (multi-frame). Output: (W, H) float32 array, MONAI's ``PILReader`` orientation.

    Args:
        voi_lut: ``"sequence"`` applies a VOI LUT Sequence when the file has one and never a linear window
            (the default: windowing clips data and min-max normalisation follows); ``"all"`` applies the VOI LUT
            Sequence or else the first Window Center/Width (pydicom ``apply_voi_lut``); ``"none"`` applies neither.
            Defaults to ``"sequence"``.
        force: read files without the DICOM preamble (``pydicom.dcmread(force=True)``) when they have a DICOM
            suffix or none. Defaults to ``True``.
        max_pixels: largest Rows x Columns x SamplesPerPixel x NumberOfFrames decoded; a file declaring more is
            refused before its pixel data are read. ``None`` for no limit. Defaults to :data:`DEFAULT_MAX_PIXELS`
            (55.47 million: a 43 x 129 cm long-cassette film at 0.1 mm, and no larger).

    Raises:
        ValueError: when ``voi_lut`` is not one of the choices or ``max_pixels`` is not a positive number.
        RadiographReadError: (when reading) for a file that is not DICOM, has no pixel data, has several frames,
            declares more than ``max_pixels`` pixels, or cannot be decoded; the message names the file.
    """

    def __init__(
        self, voi_lut: str = "sequence", force: bool = True, max_pixels: int | None = DEFAULT_MAX_PIXELS
    ) -> None:
        self.voi_lut = ensure_option("voi_lut", voi_lut, _VOI_CHOICES)
        self.force = force
        self.max_pixels = _check_max_pixels(max_pixels)

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        """Whether every file has a DICOM suffix, no suffix, or the DICOM preamble."""
        return all(
            _suffix(f) in DICOM_SUFFIXES or _suffix(f) == "" or has_dicom_preamble(f) for f in ensure_tuple(filename)
        )

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs) -> Any:
        """Parse the DICOM header(s); pixel data are decoded in :meth:`get_data`.

        Args:
            data: a file or a list of files (stacked as channels).
            kwargs: passed to ``pydicom.dcmread``; ``defer_size`` defaults to ``"64 KB"``, so the pixel data stay on
                disk until :meth:`get_data` has checked the declared size.
        """
        import pydicom
        from pydicom.errors import InvalidDicomError

        kwargs.setdefault("defer_size", "64 KB")

        def open_one(name: str) -> Any:
            try:
                return pydicom.dcmread(name, **kwargs)
            except InvalidDicomError:
                if not (self.force and (_suffix(name) in DICOM_SUFFIXES or _suffix(name) == "")):
                    raise
                ds = pydicom.dcmread(name, force=True, **kwargs)
                ds._r2mf_forced = True  # no preamble: may be no DICOM at all, said if no pixel data follows
                return ds

        return _open_each(data, open_one, "DICOM file")

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        """Decode, apply the LUTs, invert MONOCHROME1, convert colour to grey, transpose to (W, H).

        Args:
            img: what :meth:`read` returned.
        """
        return _decode(img, "<dataset>", self._get_one)

    def _get_one(self, ds: Any, name: str) -> tuple[np.ndarray, dict]:
        try:
            from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut
        except ImportError:  # pydicom < 3 (setup.py allows >= 2.4; MONAI Label 0.8.5 needs < 3): same functions
            from pydicom.pixel_data_handlers.util import apply_color_lut, apply_modality_lut, apply_voi_lut

        if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
            if getattr(ds, "_r2mf_forced", False):
                raise RadiographReadError(name, "not a DICOM image (no DICOM preamble and no pixel data found)")
            raise RadiographReadError(name, "the DICOM file has no pixel data (not an image, or truncated)")
        try:
            frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        except (TypeError, ValueError) as e:
            raise RadiographReadError(name, f"invalid NumberOfFrames ({e})") from e
        if frames > 1:
            raise RadiographReadError(
                name, f"multi-frame DICOM ({frames} frames); a radiograph must be a single 2-D frame"
            )
        try:
            dims = [int(getattr(ds, k, None) or 0) for k in ("Rows", "Columns")]
            samples_declared = int(getattr(ds, "SamplesPerPixel", 1) or 1)
        except (TypeError, ValueError) as e:
            raise RadiographReadError(name, f"invalid Rows, Columns or SamplesPerPixel ({e})") from e
        _refuse_if_too_large(
            name, [*dims, samples_declared, frames], "rows x columns x samples per pixel x frames", self.max_pixels
        )
        tsyntax = transfer_syntax(ds)
        try:
            pixels = decode_pixel_array(ds)
        except Exception as e:
            tname, hint = decode_failure(ds, tsyntax)
            raise RadiographReadError(
                name, f"cannot decode the pixel data (transfer syntax {tname}): {hint}{type(e).__name__}: {e}"
            ) from e
        photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper().strip()
        samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
        if pixels.ndim == 3 and samples == 1:
            raise RadiographReadError(name, f"pixel data of shape {pixels.shape} is not a single 2-D frame")
        if pixels.ndim not in (2, 3):
            raise RadiographReadError(name, f"pixel data of shape {pixels.shape} is not a 2-D image")

        inverted = False
        notes: list[str] = []
        if samples == 1 and int(getattr(ds, "PixelRepresentation", 0) or 0) == 1 and pixels.ndim == 2:
            bits = int(getattr(ds, "BitsStored", getattr(ds, "BitsAllocated", 16)) or 16)
            note = signed_wrap_check(pixels, bits)
            if note:
                notes.append(note)
        try:
            if photometric == "PALETTE COLOR":
                pixels = _to_grey(apply_color_lut(pixels, ds))
            elif samples > 1 or pixels.ndim == 3:
                # pydicom's pixel_array already converts YBR to RGB
                pixels = _to_grey(pixels)
            else:
                pixels, inverted = self._grey_lut(pixels, ds, photometric, apply_modality_lut, apply_voi_lut)
        except RadiographReadError:
            raise
        except Exception as e:
            raise RadiographReadError(name, f"cannot apply the DICOM LUTs: {type(e).__name__}: {e}") from e

        spacing, source = self._spacing(ds)
        rows, cols = pixels.shape
        meta = _radiograph_meta("DICOM", (cols, rows), spacing, source, photometric, inverted)
        meta["read_warnings"] = _content_warnings(pixels, name, notes)
        meta["modality"] = str(getattr(ds, "Modality", "") or "").strip().upper()
        meta["body_part_examined"] = str(getattr(ds, "BodyPartExamined", "") or "").strip().upper()
        meta["view_position"] = str(getattr(ds, "ViewPosition", "") or "").strip().upper()
        return np.ascontiguousarray(pixels.T), meta

    def _grey_lut(self, pixels, ds, photometric, apply_modality_lut, apply_voi_lut) -> tuple[np.ndarray, bool]:
        """Modality LUT, VOI LUT (per ``voi_lut``) and MONOCHROME1 inversion of a grey frame."""
        bits = int(getattr(ds, "BitsStored", getattr(ds, "BitsAllocated", 16)) or 16)
        signed = int(getattr(ds, "PixelRepresentation", 0) or 0) == 1
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        stored_range = np.array([lo, hi], dtype=np.int64)

        has_voi = "VOILUTSequence" in ds or (self.voi_lut == "all" and "WindowCenter" in ds)
        has_voi = has_voi and self.voi_lut != "none"

        def voi(arr: np.ndarray) -> np.ndarray:
            arr = apply_modality_lut(arr, ds)
            if has_voi:
                arr = apply_voi_lut(arr, ds, index=0, prefer_lut=True)
            return arr

        out = voi(pixels)
        if photometric == "MONOCHROME1":
            ends = np.asarray(voi(stored_range), dtype=np.float64)
            out = (ends.min() + ends.max()) - out.astype(np.float64)
            return out, True
        return out, False

    @staticmethod
    def _spacing(ds: Any) -> tuple[tuple[float, float] | None, str]:
        """PixelSpacing, else ImagerPixelSpacing (top level, then the functional groups), else None."""
        for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
            spacing = _valid_spacing(getattr(ds, keyword, None))
            if spacing is not None:
                return spacing, keyword
        for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            seq = getattr(ds, group, None)
            if not seq:
                continue
            measures = getattr(seq[0], "PixelMeasuresSequence", None)
            if measures:
                spacing = _valid_spacing(getattr(measures[0], "PixelSpacing", None))
                if spacing is not None:
                    return spacing, "PixelSpacing"
        return None, "none"


class RasterRadiographReader(ImageReader):
    """PNG (8/16 bit), JPEG, TIFF, BMP and single-frame GIF radiographs with Pillow, as grey (W, H) arrays.

    The orientation is that of MONAI's ``PILReader`` (``reverse_indexing=True``). 16-bit grey images keep their
    16 bits (PIL's ``I;16`` modes are read as uint16, never through an 8-bit ``"L"`` conversion); colour becomes grey
    (see the module docstring). Pixel spacing is unknown for these formats (DPI tags are not patient spacing).

    Args:
        max_pixels: largest width x height x bands decoded; a file whose header declares more is refused before
            decoding. ``None`` for no limit (Pillow's own ``PIL.Image.MAX_IMAGE_PIXELS`` still applies, as an error).
            Defaults to :data:`DEFAULT_MAX_PIXELS` (55.47 million: a 43 x 129 cm long-cassette film at 0.1 mm).

    Raises:
        ValueError: when ``max_pixels`` is not a positive number.
        RadiographReadError: (when reading) for a file Pillow cannot open or decode (e.g. truncated), one with
            several frames, or one declaring more than ``max_pixels`` (or Pillow's limit); the message names the file.
    """

    def __init__(self, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
        self.max_pixels = _check_max_pixels(max_pixels)

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        """Whether every file has a raster suffix or a raster magic number."""
        return all(
            _suffix(f) in RASTER_SUFFIXES or (os.path.isfile(f) and detect_format(f) == "raster")
            for f in ensure_tuple(filename)
        )

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs) -> Any:
        """Open the file(s) with Pillow (header only); decoding happens in :meth:`get_data`.

        Args:
            data: a file or a list of files (stacked as channels).
            kwargs: passed to ``PIL.Image.open``.
        """
        from PIL import Image

        def open_one(name: str) -> Any:
            # Image.open reads the header only; Pillow's decompression-bomb warning becomes an error
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                try:
                    return Image.open(name, **kwargs)
                except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
                    raise RadiographReadError(name, f"refused by Pillow's decompression-bomb check: {e}") from e

        return _open_each(data, open_one, "image")

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        """Decode to a grey (W, H) array with the module's metadata.

        Args:
            img: what :meth:`read` returned.
        """
        return _decode(img, "<image>", self._get_one)

    def _get_one(self, im: Any, name: str) -> tuple[np.ndarray, dict]:
        try:
            _refuse_if_too_large(name, [*im.size, len(im.getbands())], "width x height x bands", self.max_pixels)
        except RadiographReadError:
            im.close()
            raise
        frames = int(getattr(im, "n_frames", 1) or 1)
        if frames > 1:
            raise RadiographReadError(name, f"the image has {frames} frames; a radiograph must be a single frame")
        try:
            im.load()  # decodes; raises on truncated or corrupt data
            mode = im.mode
            if mode == "1":
                arr = np.asarray(im.convert("L"))
            elif mode in ("L", "I", "F") or mode.startswith("I;16"):
                arr = np.asarray(im)
                arr = arr.astype(arr.dtype.newbyteorder("=")) if not arr.dtype.isnative else arr
            elif mode in ("LA", "La"):
                arr = np.asarray(im.getchannel("L"))
            elif mode in ("P", "PA"):
                arr = _to_grey(np.asarray(im.convert("RGB")))
            else:  # RGB, RGBA, CMYK, YCbCr, LAB, HSV, ...
                arr = _to_grey(np.asarray(im.convert("RGB") if mode not in ("RGB", "RGBA") else im))
        except RadiographReadError:
            raise
        except Exception as e:
            raise RadiographReadError(name, f"cannot decode the image ({type(e).__name__}: {e})") from e
        finally:
            fmt = (im.format or _suffix(name).lstrip(".")).upper()
            im.close()
        if arr.ndim != 2:
            raise RadiographReadError(name, f"decoded to shape {arr.shape}, not a 2-D grey image")
        fmt = "JPEG" if fmt in ("JPG", "MPO") else fmt
        meta = _radiograph_meta(fmt, (arr.shape[1], arr.shape[0]), None, "none", mode)
        meta["read_warnings"] = _content_warnings(arr, name)
        return np.ascontiguousarray(arr.T), meta


class NiftiRadiographReader(NibabelReader):
    """2-D NIfTI radiographs (a 2-D image, or 3-D/4-D with singleton trailing dimensions) via MONAI's NibabelReader.

    NIfTI stores ``data[i, j]`` with i along x (image column), which is already MONAI's (W, H) convention: a NIfTI
    whose data array is the transpose of a PNG's pixel matrix loads to the same array as that PNG. The file's
    affine is kept; the pixel spacing comes from it (in mm; metres and microns are converted; with unknown units a
    spacing of exactly 1 counts as unknown, anything else as mm).

    Args:
        max_pixels: largest number of values (the product of the header's shape) decoded; a file declaring more is
            refused before its data are read. ``None`` for no limit. Defaults to :data:`DEFAULT_MAX_PIXELS`.
        kwargs: passed to ``monai.data.NibabelReader`` (``as_closest_canonical`` stays ``False``: reorienting would
            flip the picture relative to the other formats).

    Raises:
        ValueError: when ``max_pixels`` is not a positive number.
        RadiographReadError: (when reading) for a 3-D volume, a multi-channel or colour image, a file declaring
            more than ``max_pixels`` values, or a file nibabel cannot read; the message names the file.
    """

    def __init__(self, max_pixels: int | None = DEFAULT_MAX_PIXELS, **kwargs) -> None:
        kwargs.setdefault("as_closest_canonical", False)
        kwargs.setdefault("squeeze_non_spatial_dims", False)
        super().__init__(**kwargs)
        self.max_pixels = _check_max_pixels(max_pixels)

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs) -> Any:
        """Load the NIfTI header(s) with nibabel.

        Args:
            data: a file or a list of files.
            kwargs: passed to ``nibabel.load``.
        """
        names = [str(n) for n in ensure_tuple(data)]
        for name in names:
            if not os.path.exists(name):
                raise RadiographNotFoundError(name, "no such file")
        try:
            return super().read(names if len(names) > 1 else names[0], **kwargs)
        except Exception as e:
            raise RadiographReadError(names[0], f"not a readable NIfTI file ({type(e).__name__}: {e})") from e

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        """Decode and reduce to a 2-D (W, H) array with the module's metadata.

        Args:
            img: what :meth:`read` returned.
        """
        names = list(self.filenames)
        arrays, metas = [], []
        for im, name in zip(ensure_tuple(img), names, strict=True):
            self.filenames = [name]
            _refuse_if_too_large(name, im.shape, "NIfTI header shape", self.max_pixels)
            try:
                data, header = super().get_data(im)
            except Exception as e:
                raise RadiographReadError(name, f"cannot decode the NIfTI data ({type(e).__name__}: {e})") from e
            finally:
                self.filenames = names
            arrays.append(self._to_2d(np.asarray(data), name))
            metas.append(self._meta(im, header, arrays[-1].shape))
            metas[-1]["read_warnings"] = _content_warnings(arrays[-1], name)
        return _stack(arrays, metas, names)

    @staticmethod
    def _to_2d(data: np.ndarray, name: str) -> np.ndarray:
        if data.dtype.names is not None:
            raise RadiographReadError(name, "colour (RGB) NIfTI is not supported; save the radiograph as grey")
        shape = data.shape
        if data.ndim < 2 or any(s != 1 for s in shape[2:]):
            kind = "a 3-D volume or a multi-channel image" if data.ndim > 2 else "not a 2-D image"
            raise RadiographReadError(name, f"NIfTI data of shape {shape} is {kind}; a radiograph must be 2-D")
        return np.ascontiguousarray(data.reshape(shape[:2]))

    @staticmethod
    def _meta(im: Any, header: dict, shape: tuple[int, ...]) -> dict:
        affine = np.asarray(header[MetaKeys.ORIGINAL_AFFINE], dtype=np.float64)
        sx, sy = (float(v) for v in affine_to_spacing(affine, r=2))
        unit = "unknown"
        with contextlib.suppress(Exception):  # units are optional
            unit = im.header.get_xyzt_units()[0]
        factor = {"meter": 1000.0, "micron": 0.001}.get(unit, 1.0)
        sx, sy = sx * factor, sy * factor
        known = np.isfinite([sx, sy]).all() and min(sx, sy) > 0 and not (unit == "unknown" and sx == sy == 1.0)
        meta = _radiograph_meta(
            "NIfTI", shape, (sy, sx) if known else None, "NIfTI pixdim", str(im.get_data_dtype()), affine=affine
        )
        meta[MetaKeys.AFFINE] = np.asarray(header[MetaKeys.AFFINE], dtype=np.float64)
        return meta


@dataclass
class _Dispatched:
    reader: ImageReader
    obj: Any


class RadiographReader(ImageReader):
    """One reader for every radiograph format: DICOM, PNG/JPEG/TIFF/BMP/GIF and 2-D NIfTI, chosen by file content.

    The format is detected from the file's magic number (DICOM preamble, PNG/JPEG/TIFF/BMP/GIF signatures, NIfTI
    header), else from its suffix (``.dcm``/no suffix -> DICOM). Usable as ``LoadImage(reader=RadiographReader())``
    or, for errors that name the file without MONAI's reader fallback, through
    :class:`r2mf_monai.transforms.load.LoadRadiograph`.

    Args:
        voi_lut: see :class:`DicomRadiographReader`. Defaults to ``"sequence"``.
        max_pixels: largest declared image decoded, in pixel values (rows x columns x samples x frames); larger
            files are refused before decoding. ``None`` for no limit. Defaults to :data:`DEFAULT_MAX_PIXELS`
            (55.47 million: a 43 x 129 cm long-cassette film at 0.1 mm, and no larger).

    Raises:
        RadiographReadError: for a file whose format is not recognised, and everything the format's reader raises.
    """

    def __init__(self, voi_lut: str = "sequence", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
        self.max_pixels = _check_max_pixels(max_pixels)
        self.readers = {
            "dicom": DicomRadiographReader(voi_lut=voi_lut, max_pixels=max_pixels),
            "raster": RasterRadiographReader(max_pixels=max_pixels),
            "nifti": NiftiRadiographReader(max_pixels=max_pixels),
        }

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        """Whether every file has a radiograph suffix (or none, as DICOM exports often do)."""
        return all(_suffix(f) in RADIOGRAPH_SUFFIXES or _suffix(f) == "" for f in ensure_tuple(filename))

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs) -> Any:
        """Detect the format of the (first) file and read with that format's reader.

        Args:
            data: a file or a list of files of one format (stacked as channels).
            kwargs: passed to the format's reader.
        """
        names = [str(n) for n in ensure_tuple(data)]
        for name in names:
            if not os.path.exists(name):
                raise RadiographNotFoundError(name, "no such file")
        family = detect_format(names[0])
        if family is None:
            raise RadiographReadError(
                names[0], f"unknown format (supported: DICOM, {', '.join(RASTER_SUFFIXES + NIFTI_SUFFIXES)})"
            )
        reader = self.readers[family]
        return _Dispatched(reader, reader.read(names if len(names) > 1 else names[0], **kwargs))

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        """Decode with the reader :meth:`read` chose.

        Args:
            img: what :meth:`read` returned.
        """
        return img.reader.get_data(img.obj)
