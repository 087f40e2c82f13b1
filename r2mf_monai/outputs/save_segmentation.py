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

"""``SaveSegmentationd``: the last step of the bundle's inference post-processing (mask PNG, NIfTI, overlay, SEG).

Not a paper equation: it writes the segmentation of the paper's §3 in the formats a user needs, on the grid of the
input picture.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Hashable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor, NibabelWriter
from monai.transforms import MapTransform
from monai.utils import ImageMetaKey, ensure_tuple

from r2mf_monai.outputs.atomic import atomic_write, check_inside, full_suffix
from r2mf_monai.outputs.dicom_seg import read_dicom_header, write_dicom_seg
from r2mf_monai.outputs.overlay import save_mask_png, save_overlay
from r2mf_monai.outputs.secondary_capture import write_secondary_capture
from r2mf_monai.transforms.readers import RADIOGRAPH_SUFFIXES, pixel_spacing_from_meta

__all__ = ["SaveSegmentationd", "SaveSegmentationD", "SaveSegmentationDict", "SUPPORTED_FORMATS", "output_stem"]

logger = logging.getLogger(__name__)

#: Output formats: ``png`` (uint8 0/255 mask), ``nii`` (NIfTI ``.nii.gz``, 0/1 uint8 with the image affine),
#: ``dcmseg`` (DICOM SEG, only for DICOM sources), ``sc`` (DICOM Secondary Capture of the overlay with the curves and
#: Cobb angles burnt in, for PACS that cannot show a SEG; only for DICOM sources).
SUPPORTED_FORMATS = ("png", "nii", "dcmseg", "sc")

# input suffixes stripped from the output stem: the reader's, and other image formats a pipeline may have converted
# from; anything else (e.g. the ".5" of a DICOM file named by its UID) is kept
_IMAGE_SUFFIXES = {*RADIOGRAPH_SUFFIXES, ".ima", ".mha", ".mhd", ".nrrd", ".nhdr"}


def output_stem(name: str | os.PathLike) -> str:
    """The stem of a source file's outputs (``<stem>_mask.png``, ...): its name without an image suffix.

    Args:
        name: the source file's name or path (only its last component counts).

    Returns:
        the name less its suffix (``.nii.gz`` as one) when that is an image suffix (the reader's
        :data:`~r2mf_monai.constants.RADIOGRAPH_SUFFIXES` and a few more, in any case), else the whole name.
    """
    name = Path(os.fspath(name)).name
    suffix = full_suffix(name)
    return name[: -len(suffix)] if suffix and suffix.lower() in _IMAGE_SUFFIXES else name


def _numbered(candidates: Sequence[str]) -> Iterator[str]:
    """The candidates, then the last one with ``_2``, ``_3``... appended."""
    yield from candidates
    yield from (f"{candidates[-1]}_{n}" for n in itertools.count(2))


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class SaveSegmentationd(MapTransform):
    """Write a binary spinal-column prediction as a mask PNG, a NIfTI mask, an overlay PNG and a DICOM SEG.

    Place it after ``Invertd`` (which brings the prediction back to the grid of the input picture) in the bundle's
    inference post-processing. It works on one item (after ``decollate_batch``) with

    * ``data[key]``: the prediction, a MetaTensor of shape (1, W, H) in MONAI's 2-D convention (as ``LoadImage``
      with ``PILReader`` gives it: ``array[0, x, y]``, x = image column, y = image row); foreground where ``> 0.5``;
    * ``data[image_key]`` (for the overlay): the radiograph as loaded, before normalisation, (C, W, H) on the same
      grid, any intensity range, bone bright (C > 1 is averaged to grey);
    * the prediction's meta data: ``filename_or_obj`` (names the outputs and is the DICOM SEG's source) and
      ``affine`` (the NIfTI affine, as ``SaveImaged`` writes it).

    For an input ``<stem>.<ext>`` it writes into ``output_dir``:

    * ``<stem>_<output_postfix>.png`` (``png``): single-channel uint8, 0 = background, 255 = spinal column, exactly
      the input's rows x columns and orientation, so it lies on the input picture pixel for pixel;
    * ``<stem>_<output_postfix>.nii.gz`` (``nii``): uint8 0/1 in MONAI's (W, H) order with the prediction's affine,
      written with MONAI's ``NibabelWriter`` (loads back with ``LoadImage`` onto the same grid);
    * ``<stem>_<overlay_postfix>.png`` (``overlay=True``): the radiograph windowed to its 1st-99th percentile, grey,
      with the mask as a semi-transparent vermillion fill and a crisp outline. Inputs taller than
      ``overlay_max_height`` (1500 rows by default) are down-sampled for the overlay only;
    * ``<stem>_<seg_postfix>.dcm`` (``dcmseg``): a DICOM SEG referencing the source image (see
      :func:`r2mf_monai.outputs.write_dicom_seg`); only when the source file is DICOM, otherwise a warning is logged
      and the SEG skipped;
    * ``<stem>_sc.dcm`` (``sc``): a DICOM Secondary Capture of the overlay with the centreline, Cobb lines and angles
      of the mask (measured here with the film's pixel spacing) burnt in, in the source's study (see
      :func:`r2mf_monai.outputs.secondary_capture.write_secondary_capture`); only for a DICOM source, as the SEG.

    Every file is written to a temporary name in its folder and renamed when complete. The written paths are
    recorded in ``data[files_key]`` (``"<key>_files"`` by default) as a dict with the keys ``"mask_png"``,
    ``"mask_nii"``, ``"overlay_png"``, ``"dicom_seg"`` and ``"dicom_sc"`` (those written), so later steps can report
    them. The prediction itself is left unchanged.

    Args:
        keys: key(s) of the prediction(s). Defaults to ``"pred"``.
        output_dir: output folder (created). Defaults to ``"./"``.
        image_key: key of the un-normalised radiograph for the overlay; ``None`` with ``overlay=False``.
            Defaults to ``"raw"``.
        formats: any of ``"png"``, ``"nii"``, ``"dcmseg"``, ``"sc"``. Defaults to ``("png", "nii")``.
        overlay: also write the overlay PNG. Defaults to ``True``.
        output_postfix: postfix of the mask files. Defaults to ``"mask"``.
        overlay_postfix: postfix of the overlay. Defaults to ``"overlay"``.
        seg_postfix: postfix of the DICOM SEG. Defaults to ``"seg"``.
        separate_folder: write each input's files into ``output_dir/<stem>/``. Defaults to ``False``.
        data_root_dir: when set, the input's folders below it are repeated under ``output_dir`` (as in
            ``SaveImaged``), so inputs with the same name in different folders do not overwrite each other.
        files_key: key of the dict of written paths; ``"<key>_files"`` when ``None``.
        overlay_max_height: overlays of taller inputs are down-sampled to this many rows; ``None`` keeps the full
            size. Defaults to ``1500``.
        overlay_kwargs: extra arguments of :func:`r2mf_monai.outputs.overlay_mask` (``color``, ``alpha``,
            ``outline_width``, ``percentiles``).
        seg_kwargs: extra arguments of :func:`r2mf_monai.outputs.write_dicom_seg` (``series_number``,
            ``series_description``, ...).
        allow_missing_keys: do not raise when a key in ``keys`` is missing. Defaults to ``False``.

    Raises:
        ValueError: for an unknown format, ``overlay=True`` without ``image_key``, a prediction that is not
            (1, W, H), or an image on another grid than the prediction (messages name the key and the source file).
        KeyError: when ``image_key`` is missing from the data and ``overlay=True``.
    """

    def __init__(
        self,
        keys: KeysCollection = "pred",
        output_dir: str | os.PathLike = "./",
        image_key: str | None = "raw",
        formats: Sequence[str] | str = ("png", "nii"),
        overlay: bool = True,
        output_postfix: str = "mask",
        overlay_postfix: str = "overlay",
        seg_postfix: str = "seg",
        separate_folder: bool = False,
        data_root_dir: str | os.PathLike = "",
        files_key: str | None = None,
        overlay_max_height: int | None = 1500,
        overlay_kwargs: Mapping[str, Any] | None = None,
        seg_kwargs: Mapping[str, Any] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.formats = tuple(str(f).lower().lstrip(".") for f in ensure_tuple(formats))
        unknown = [f for f in self.formats if f not in SUPPORTED_FORMATS]
        if unknown:
            raise ValueError(f"formats must be drawn from {SUPPORTED_FORMATS}, got {unknown} in formats={formats!r}.")
        if overlay and not image_key:
            raise ValueError("overlay=True needs image_key (the un-normalised radiograph); pass overlay=False.")
        if overlay_max_height is not None and overlay_max_height < 1:
            raise ValueError(f"overlay_max_height must be positive or None, got {overlay_max_height}.")
        self.output_dir = Path(output_dir)
        self.image_key = image_key
        self.overlay = overlay
        self.output_postfix = output_postfix
        self.overlay_postfix = overlay_postfix
        self.seg_postfix = seg_postfix
        self.separate_folder = separate_folder
        self.data_root_dir = str(data_root_dir) if data_root_dir else ""
        self.files_key = files_key
        self.overlay_kwargs = {"max_height": overlay_max_height, **dict(overlay_kwargs or {})}
        self.seg_kwargs = dict(seg_kwargs or {})
        self._data_index = 0
        self._bases: dict[str, str] = {}  # output base -> the source that owns it (see _output_base)

    def _output_base(self, source: Any) -> Path:
        """``output_dir[/relative folders][/stem]/stem``, without postfix or suffix, unique to ``source``.

        Two sources that would share a base (``y.dcm`` and ``y.png`` in one folder, or ``a/x.png`` and ``b/x.png``
        without ``data_root_dir``) must not mix or overwrite their outputs: the first one seen keeps ``<stem>``, a
        later one gets ``<stem>_<suffix>`` (``y_png``), then ``<stem>_<suffix>_2``... with a warning naming both.
        Inputs are seen in the sorted order of discovery, so a run names them the same way every time.
        """
        if isinstance(source, (str, os.PathLike)) and os.fspath(source):
            path = Path(os.fspath(source))
            stem = output_stem(path.name)
            folder = self.output_dir
            if self.data_root_dir:
                rel = os.path.relpath(os.path.abspath(path.parent), os.path.abspath(self.data_root_dir))
                if rel != os.pardir and not rel.startswith(os.pardir + os.sep):
                    folder = folder / rel
            owner = os.path.abspath(path)
            suffix = full_suffix(path.name).lstrip(".").replace(".", "_").lower() or "file"
            candidates = [stem, f"{stem}_{suffix}"]
        else:  # in-memory input: a running index, as SaveImage does
            folder, owner, candidates = self.output_dir, None, [f"{self._data_index}"]
        taken_by = None
        for stem in _numbered(candidates):
            base = (folder / stem if self.separate_folder else folder) / stem
            key = os.path.normcase(os.path.abspath(base))
            if owner is None or self._bases.setdefault(key, owner) == owner:
                break
            taken_by = taken_by or self._bases[key]
        if taken_by:
            logger.warning("%s has the output name of %s: its outputs are named %s_*", owner, taken_by, stem)
        return check_inside(base, self.output_dir)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            pred = d[key]
            meta = pred.meta if isinstance(pred, MetaTensor) else dict(d.get(f"{key}_meta_dict", {}))
            source = meta.get(ImageMetaKey.FILENAME_OR_OBJ)
            name = source if isinstance(source, str) and source else f"item {self._data_index}"
            arr = _to_numpy(pred)
            if arr.ndim == 3 and arr.shape[0] == 1:
                arr = arr[0]
            if arr.ndim != 2:
                raise ValueError(
                    f"{key!r} of {name} must be a single-channel 2-D prediction (1, W, H), got shape {pred.shape}."
                )
            mask_hw = np.ascontiguousarray((arr > 0.5).T)  # (W, H) -> (H, W): row 0 at the top of the picture
            # check every input before writing anything, so a bad item leaves no partial set of files
            image_hw = self._image_hw(d, key, mask_hw.shape, name) if self.overlay else None
            base = self._output_base(source)
            files: dict[str, str] = {}

            root = self.output_dir
            try:
                if "png" in self.formats:
                    files["mask_png"] = str(save_mask_png(mask_hw, f"{base}_{self.output_postfix}.png", root=root))
                if "nii" in self.formats:
                    files["mask_nii"] = str(
                        self._write_nifti(pred, mask_hw, meta, f"{base}_{self.output_postfix}.nii.gz", root)
                    )
                if image_hw is not None:
                    path = f"{base}_{self.overlay_postfix}.png"
                    files["overlay_png"] = str(save_overlay(image_hw, mask_hw, path, root=root, **self.overlay_kwargs))
                if "dcmseg" in self.formats:
                    # a film SpinePlausibilityd (its default verdict_key "spine") found no spine on gets no SEG
                    no_spine = isinstance(d.get("spine"), Mapping) and d["spine"].get("spine_found") is False
                    header = read_dicom_header(source) if isinstance(source, (str, os.PathLike)) and source else None
                    if no_spine:
                        logger.warning("%s: no DICOM SEG written (%s).", name, d["spine"].get("reason"))
                    elif header is None:
                        logger.warning("%s is not a DICOM file: no DICOM SEG written for it.", name)
                    else:
                        path = f"{base}_{self.seg_postfix}.dcm"
                        files["dicom_seg"] = str(write_dicom_seg(header, mask_hw, path, root=root, **self.seg_kwargs))
                if "sc" in self.formats:
                    # a film SpinePlausibilityd (its default verdict_key "spine") found no spine on gets no SC
                    verdict = d.get("spine")
                    header = read_dicom_header(source) if isinstance(source, (str, os.PathLike)) and source else None
                    if isinstance(verdict, Mapping) and verdict.get("spine_found") is False:
                        logger.warning("%s: no DICOM Secondary Capture written (%s).", name, verdict.get("reason"))
                    elif header is None:
                        logger.warning("%s is not a DICOM file: no DICOM Secondary Capture written for it.", name)
                    else:
                        path, spacing = f"{base}_sc.dcm", pixel_spacing_from_meta(meta)
                        # without an overlay image the writer loads the source file itself
                        sc = write_secondary_capture(header, mask_hw, path, image=image_hw, spacing=spacing, root=root)
                        files["dicom_sc"] = str(sc)
            except OSError as e:
                # one film whose outputs cannot be written (disk full, no permission, a file in the way of its
                # folder) is named and skipped, and the run goes on; what it had written is removed: all or nothing
                for written in files.values():
                    with contextlib.suppress(OSError):
                        os.remove(written)
                reason = f"{e.strerror}: {e.filename}" if e.strerror and e.filename else (e.strerror or str(e))
                logger.error("skipping %s: its outputs cannot be written (%s)", name, reason)
                files_key = self.files_key or f"{key}_files"
                d[files_key] = dict(d.get(files_key) or {})
                self._data_index += 1
                continue

            files_key = self.files_key or f"{key}_files"
            d[files_key] = {**dict(d.get(files_key) or {}), **files}
            logger.info("segmentation of %s written to %s", name, ", ".join(files.values()) or "nothing")
            self._data_index += 1
        return d

    def _image_hw(self, d: Mapping[Hashable, Any], key: Hashable, shape: tuple[int, int], name: str) -> np.ndarray:
        if self.image_key not in d:
            raise KeyError(
                f"image_key {self.image_key!r} (the un-normalised radiograph for the overlay of {name}) is not in the "
                f"data (keys: {list(d)}); copy it before normalising (CopyItemsd) or pass overlay=False."
            )
        image = _to_numpy(d[self.image_key])
        if image.ndim == 3:  # (C, W, H): grey = mean of the channels (a single channel as it is: no film-size copy)
            image = image[0] if image.shape[0] == 1 else image.mean(axis=0)
        image = image.astype(np.float32, copy=False)
        if image.ndim != 2 or image.T.shape != shape:
            raise ValueError(
                f"{self.image_key!r} of {name} has shape {tuple(d[self.image_key].shape)} but {key!r} is on a "
                f"(1, W, H) = (1, {shape[1]}, {shape[0]}) grid; save after Invertd so both lie on the input's grid."
            )
        return image.T

    @staticmethod
    def _write_nifti(pred: Any, mask_hw: np.ndarray, meta: Mapping, path: str, root: str | os.PathLike) -> Path:
        affine = pred.affine if isinstance(pred, MetaTensor) else meta.get("affine")
        affine = np.eye(4) if affine is None else _to_numpy(affine)
        writer = NibabelWriter(output_dtype=np.uint8)
        # back to MONAI's (1, W, H): NIfTI stores axis 0 = x (column), axis 1 = y (row), as LoadImage reads it
        writer.set_data_array(mask_hw.T[None].astype(np.uint8), channel_dim=0)
        # No resampling, so the affine is set directly: MONAI 1.6.1's set_metadata(resample=False) fails on 2-D
        # data (TypeError in spatial_resample, Project-MONAI/MONAI#9068), and SaveImaged to NIfTI fails with it.
        writer.affine = affine
        with atomic_write(path, root=root) as tmp:
            writer.write(tmp, verbose=False)
        return Path(path)


SaveSegmentationD = SaveSegmentationDict = SaveSegmentationd
