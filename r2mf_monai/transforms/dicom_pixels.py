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

"""Pixel data of DICOM files from real archives that pydicom alone does not decode.

pydicom decodes the transfer syntaxes it has decoders for (natively or through the installed plugins). Three kinds
of file found in hospital archives are not among them, and the DCMTK and GDCM toolkits read all three:

- a data set **without File Meta Information** (no (0002,0010) Transfer Syntax UID), as old modalities and
  ``dcmconv --write-dataset`` write it. pydicom reads its elements (it finds the VR and byte order by looking) but
  will not decode pixels without a transfer syntax. The transfer syntax is the encoding pydicom found; compressed
  (encapsulated) pixel data without one are refused, since read as native pixels they would be noise.
- **GE's private "implicit VR little endian, big endian pixel data"** (``1.2.840.113619.5.2``), written by older GE
  CR and DX units: the elements are implicit VR little endian, the pixel words are big endian. Their bytes are
  swapped and the pixels decoded as implicit VR little endian.
- the **retired JPEG processes** (extended 3/5, spectral selection, full progression, hierarchical, lossless process
  15: ``1.2.840.10008.1.2.4.52``-``.56`` and ``.58``-``.66``). pydicom has no decoder for them; the JPEG reference
  library behind ``pylibjpeg-libjpeg`` (the ``dicom`` extra) decodes every process of ISO 10918-1, so the single
  frame is handed to it.

Everything else goes to ``ds.pixel_array`` untouched.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

__all__ = [
    "GE_PRIVATE_BIG_ENDIAN_PIXELS",
    "RETIRED_JPEG_SYNTAXES",
    "decode_failure",
    "decode_pixel_array",
    "decoder_available",
    "syntax_name",
    "transfer_syntax",
]

GE_PRIVATE_BIG_ENDIAN_PIXELS = "1.2.840.113619.5.2"
"""GE's private transfer syntax: implicit VR little endian elements, big endian pixel data."""

RETIRED_JPEG_SYNTAXES = frozenset(f"1.2.840.10008.1.2.4.{n}" for n in (52, 53, 54, 55, 56, *range(58, 67)))
"""The retired JPEG transfer syntaxes (DICOM PS3.5 Annex A.4.1, retired in 2006), decoded with ``libjpeg``."""


NEWER_SYNTAX_NAMES = {
    "1.2.840.10008.1.2.4.110": "JPEG XL Lossless",
    "1.2.840.10008.1.2.4.111": "JPEG XL JPEG Recompression",
    "1.2.840.10008.1.2.4.112": "JPEG XL",
    "1.2.840.10008.1.2.8.1": "Deflated Image Frame Compression",
}
"""Transfer syntaxes added to DICOM in 2024 that pydicom 3.0 neither names nor decodes: named in the reader's error."""


def syntax_name(syntax: Any) -> str:
    """The transfer syntax's name: pydicom's (the UID where pydicom knows no name), or :data:`NEWER_SYNTAX_NAMES`."""
    name = NEWER_SYNTAX_NAMES.get(str(syntax))
    if name is not None:
        return f"{name} ({syntax}, a 2024 syntax that pydicom does not decode yet)"
    return str(getattr(syntax, "name", syntax))


def transfer_syntax(ds: Any) -> Any:
    """The data set's (0002,0010) Transfer Syntax UID, or ``None`` when it has no File Meta Information."""
    meta = getattr(ds, "file_meta", None)
    return None if meta is None else meta.get("TransferSyntaxUID")


def decoder_available(syntax: Any) -> bool:
    """Whether an installed decoder reads the compressed ``syntax``: a pydicom plugin, or ``libjpeg`` for the
    retired JPEG processes."""
    if syntax in RETIRED_JPEG_SYNTAXES:
        return importlib.util.find_spec("libjpeg") is not None
    try:
        from pydicom.pixels import get_decoder  # pydicom >= 3

        return bool(get_decoder(syntax).is_available)
    except Exception:  # pydicom 2, or no decoder for the syntax at all
        return False


def decode_failure(ds: Any, syntax: Any) -> tuple[str, str]:
    """The transfer syntax's name and a hint why its pixel data did not decode, for the reader's one-line error.

    Args:
        ds: the data set after :func:`decode_pixel_array` failed on it.
        syntax: its transfer syntax before the attempt (:func:`transfer_syntax`).
    """
    if syntax is None:
        read_in = transfer_syntax(ds)  # what decode_pixel_array took from the encoding the file was read in
        return "none: no File Meta Information", f"its elements read as {read_in.name}; " if read_in is not None else ""
    name = syntax_name(syntax)
    if str(syntax) in NEWER_SYNTAX_NAMES:
        return name, ""
    if not syntax.is_transfer_syntax:  # a private or unknown UID: `is_compressed` would raise
        return name, "an unknown or private transfer syntax that no installed decoder reads; "
    if not syntax.is_compressed:
        return name, ""
    if decoder_available(syntax):
        return name, "the installed decoders failed on this data (corrupt or unsupported variant); "
    return name, "no decoder installed for it (pip install 'r2mf-monai[dicom]' for pylibjpeg and plugins); "


def _syntax_read_in(ds: Any) -> Any:
    """The transfer syntax of the encoding pydicom found while reading a data set without File Meta Information."""
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    encoding = getattr(ds, "original_encoding", None)  # pydicom >= 3
    if encoding is None or None in encoding:  # pydicom 2 (the MONAI Label environment)
        encoding = (getattr(ds, "is_implicit_VR", None), getattr(ds, "is_little_endian", None))
    # implicit VR big endian is no DICOM encoding: left to pydicom's own error
    return {
        (True, True): ImplicitVRLittleEndian,
        (False, True): ExplicitVRLittleEndian,
        (False, False): ExplicitVRBigEndian,
    }.get(tuple(encoding))


def _single_frame(pixel_data: bytes) -> bytes:
    """The first frame of encapsulated pixel data (pydicom 3 and 2 name the generator differently)."""
    try:
        from pydicom.encaps import generate_frames

        return next(generate_frames(pixel_data, number_of_frames=1))
    except ImportError:  # pydicom 2
        from pydicom.encaps import generate_pixel_data_frame

        return next(generate_pixel_data_frame(pixel_data, 1))


def _decode_with_libjpeg(ds: Any, syntax: Any) -> np.ndarray:
    """One frame of a retired JPEG process, decoded by the JPEG reference library (``pylibjpeg-libjpeg``)."""
    try:
        import libjpeg
    except ImportError as e:
        raise NotImplementedError(
            f"the retired transfer syntax {syntax.name} needs pylibjpeg-libjpeg (pip install 'r2mf-monai[dicom]')"
        ) from e
    pixels = libjpeg.decode(bytes(_single_frame(ds.PixelData)))
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    expected = (int(ds.Rows), int(ds.Columns)) + ((samples,) if samples > 1 else ())
    if pixels.shape != expected:
        raise ValueError(f"the JPEG stream holds {pixels.shape} pixels, the header declares {expected}")
    if samples > 1 and str(getattr(ds, "PhotometricInterpretation", "")).upper().startswith("YBR"):
        try:
            from pydicom.pixels import convert_color_space
        except ImportError:  # pydicom 2
            from pydicom.pixel_data_handlers.util import convert_color_space

        pixels = convert_color_space(pixels, "YBR_FULL", "RGB")  # as pydicom's pixel_array gives colour
    if int(getattr(ds, "PixelRepresentation", 0) or 0) == 1:  # two's complement in BitsStored bits
        bits = int(getattr(ds, "BitsStored", 8 * pixels.itemsize) or 8 * pixels.itemsize)
        pixels = pixels.astype(np.int32)
        pixels[pixels >= 2 ** (bits - 1)] -= 2**bits
    return pixels


def decode_pixel_array(ds: Any) -> np.ndarray:
    """``ds.pixel_array``, also for the three kinds of file of the module docstring.

    Args:
        ds: a ``pydicom`` data set with pixel data.

    Returns:
        the stored pixel values (before any LUT), as ``ds.pixel_array`` gives them.

    Raises:
        whatever ``ds.pixel_array`` raises (the reader turns it into one line naming the file);
        ``NotImplementedError`` for a retired JPEG syntax without ``pylibjpeg-libjpeg``; ``ValueError`` for compressed
        pixel data without File Meta Information, or a JPEG stream whose size is not the header's.
    """
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID, ImplicitVRLittleEndian

    syntax = transfer_syntax(ds)
    if syntax is None:
        if "PixelData" in ds and ds["PixelData"].is_undefined_length:
            # encapsulated: read as native pixels, RLE or JPEG bytes would give a picture of noise (pydicom only
            # warns when there are more bytes than the frame needs)
            raise ValueError(
                "compressed (encapsulated) pixel data without File Meta Information: the transfer syntax that says "
                "how they were compressed is missing"
            )
        read_in = _syntax_read_in(ds)
        if read_in is not None:
            if getattr(ds, "file_meta", None) is None:
                ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = read_in
    elif syntax == GE_PRIVATE_BIG_ENDIAN_PIXELS:
        width = int(getattr(ds, "BitsAllocated", 16) or 16) // 8
        if width > 1:
            words = np.frombuffer(ds.PixelData, dtype=f">u{width}")
            ds.PixelData = words.astype(f"<u{width}").tobytes()
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    elif syntax in RETIRED_JPEG_SYNTAXES:
        try:
            return ds.pixel_array
        except NotImplementedError:  # no pydicom decoder for it (the case today)
            return _decode_with_libjpeg(ds, UID(syntax))
    return ds.pixel_array
