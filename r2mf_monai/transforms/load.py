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

"""Load a radiograph of any supported format as a channel-first (1, W, H) MetaTensor, in one config line (§4.1).

Why not plain ``LoadImaged(reader=RadiographReader())``: when a user-named reader fails in ``read`` (a missing
file, one that is no image at all, a DICOM header pydicom cannot parse), MONAI's ``LoadImage`` logs the failure,
tries every default reader in turn (ITK, Pydicom, PIL, Nibabel, ...) and finally raises
``RuntimeError("LoadImage cannot find a suitable reader for file: ...")`` followed by every reader's traceback, and
a default reader may even accept a file ours refused. :class:`LoadRadiograph` passes the reader at call time, which
``LoadImage`` uses alone and without catching, checks for missing, empty and folder paths first, and turns any
failure into one :class:`~r2mf_monai.transforms.readers.RadiographReadError` whose message names the file and the
reason. (Checks made in ``get_data`` - 3-D volumes, multi-frame files, undecodable pixel data - already reach the
user unchanged through plain ``LoadImage``.)
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import EnsureChannelFirst, LoadImage, LoadImaged
from monai.utils import ensure_tuple, get_equivalent_dtype

from r2mf_monai.transforms.readers import (
    DEFAULT_MAX_PIXELS,
    RadiographNotFoundError,
    RadiographReader,
    RadiographReadError,
)

__all__ = ["HANDOVER_BYTES", "LoadRadiograph", "LoadRadiographd", "LoadRadiographD", "LoadRadiographDict"]

HANDOVER_BYTES = 256 * 2**20
"""Most bytes of probed images kept for the pipeline's own read (:meth:`LoadRadiograph.probe`); the oldest go
first. Three views of a patient (about 2 x 10^6 pixels each, float32) take 25 MB."""

# probed images waiting for the pipeline's read of the same file with the same loader settings: {key: (image, bytes)}
_handover: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
_handover_lock = threading.Lock()


def _file_key(path: str) -> tuple:
    """The file as it is now: a file replaced or rewritten after the probe no longer matches."""
    st = os.stat(path)
    return os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino


class LoadRadiograph(LoadImage):
    """``LoadImage`` with :class:`~r2mf_monai.transforms.readers.RadiographReader` and one clear error per bad file.

    Gives a float32 ``MetaTensor`` of shape (1, W, H) (MONAI's ``PILReader`` orientation) whose metadata carry
    ``filename_or_obj``, the pixel spacing and the affine (see :mod:`r2mf_monai.transforms.readers`). An input that
    is already an array or tensor (e.g. handed over by a MONAI Deploy operator) is passed through as a MetaTensor in
    the same (W, H) orientation, with a channel added to a 2-D array.

    Args:
        voi_lut: DICOM VOI LUT policy, see :class:`~r2mf_monai.transforms.readers.DicomRadiographReader`.
            Defaults to ``"sequence"``.
        dtype: output data type. Defaults to ``np.float32``.
        ensure_channel_first: add the channel dimension. Defaults to ``True``.
        image_only: return only the MetaTensor (else ``(image, meta)``). Defaults to ``True``.
        max_pixels: largest image decoded, in pixel values (rows x columns x samples x frames, as the file's header
            declares them); a larger file is refused before decoding. ``None`` for no limit. Defaults to
            :data:`~r2mf_monai.transforms.readers.DEFAULT_MAX_PIXELS` (4300 x 12900 = 55.47 million: a
            43 x 129 cm long-cassette film at 0.1 mm, and no larger).

    Raises:
        RadiographNotFoundError: for a path that does not exist (also a ``FileNotFoundError``).
        RadiographReadError: for an empty, corrupt, truncated, 3-D, multi-frame, too large or unsupported file, or a
            folder.
    """

    def __init__(
        self,
        voi_lut: str = "sequence",
        dtype: Any = np.float32,
        ensure_channel_first: bool = True,
        image_only: bool = True,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.radiograph_reader = RadiographReader(voi_lut=voi_lut, max_pixels=max_pixels)
        self._settings = (voi_lut, repr(dtype), ensure_channel_first, image_only, max_pixels)
        super().__init__(
            reader=self.radiograph_reader,
            image_only=image_only,
            dtype=dtype,
            ensure_channel_first=ensure_channel_first,
        )

    def __call__(self, filename: Any, reader: Any = None):
        """Load ``filename`` (a path, a list of paths stacked as channels, or an array passed through).

        Args:
            filename: the file(s) to load.
            reader: ignored unless given, then used as in ``LoadImage`` (its errors are still named).
        """
        if isinstance(filename, (np.ndarray, torch.Tensor)):
            return self._pass_through(filename)
        names = [str(f) for f in ensure_tuple(filename)]
        if not names:
            raise ValueError("LoadRadiograph got an empty list of files.")
        for name in names:
            path = os.path.expanduser(name)
            if not os.path.exists(path):
                raise RadiographNotFoundError(name, "no such file")
            if os.path.isdir(path):
                raise RadiographReadError(
                    name, "is a folder; give one file per radiograph (DICOM series of 2-D radiographs are not stacked)"
                )
            if os.path.getsize(path) == 0:
                raise RadiographReadError(name, "the file is empty (0 bytes)")
        key = self._handover_key(names) if reader is None else None
        if key is not None:
            with _handover_lock:
                kept = _handover.pop(key, None)
            if kept is not None:
                return kept[0]
        try:
            return super().__call__(filename, reader=reader or self.radiograph_reader)
        except RadiographReadError:
            raise
        except Exception as e:
            raise RadiographReadError(names[0], f"{type(e).__name__}: {e}") from e

    def probe(self, filename: str | os.PathLike) -> None:
        """Read ``filename`` as :meth:`__call__` does (raising the same errors), and keep the result for the next
        read of the unchanged file by a loader with the same settings, which then takes it instead of decoding the
        file again (once: the kept image is handed over, not copied).

        ``r2mf_monai.inference.discover_inputs`` reads every input before a run to leave out the broken ones; with
        this the run's own read of a patient's films costs nothing. At most :data:`HANDOVER_BYTES` are kept.
        """
        name = os.fspath(filename)
        result = self(name)
        image = result[0] if isinstance(result, tuple) else result
        size = int(image.numel() * image.element_size()) if isinstance(image, torch.Tensor) else 0
        key = self._handover_key([name])
        if key is None or size > HANDOVER_BYTES:
            return
        with _handover_lock:
            _handover[key] = (result, size)
            while sum(kept[1] for kept in _handover.values()) > HANDOVER_BYTES:
                _handover.popitem(last=False)

    def _handover_key(self, names: list[str]) -> tuple | None:
        if len(names) != 1:
            return None
        try:
            return (*self._settings, *_file_key(os.path.expanduser(names[0])))
        except OSError:
            return None

    def _pass_through(self, data: np.ndarray | torch.Tensor):
        img = data if isinstance(data, MetaTensor) else MetaTensor(torch.as_tensor(data))
        if self.dtype is not None:
            img = img.to(dtype=get_equivalent_dtype(self.dtype, torch.Tensor))
        if self.ensure_channel_first and img.ndim == 2:
            img = EnsureChannelFirst(channel_dim="no_channel")(img)
        return img if self.image_only else (img, img.meta)


class LoadRadiographd(LoadImaged):
    """Dictionary version of :class:`LoadRadiograph`: one line in a bundle config loads images and masks.

    Equivalent to ``LoadImaged(keys, reader=RadiographReader(), ensure_channel_first=True)`` followed by
    ``EnsureChannelFirstd``, but with :class:`~r2mf_monai.transforms.readers.RadiographReadError` naming the file
    for a missing, empty, corrupt, 3-D or unsupported file instead of MONAI's generic reader-fallback error.

    Args:
        keys: keys of the file paths to load (e.g. ``["image", "label"]``).
        voi_lut: DICOM VOI LUT policy, see :class:`~r2mf_monai.transforms.readers.DicomRadiographReader`.
            Defaults to ``"sequence"``.
        dtype: output data type. Defaults to ``np.float32``.
        ensure_channel_first: add the channel dimension, giving (1, W, H). Defaults to ``True``.
        image_only: store only MetaTensors (else also ``<key>_meta_dict``). Defaults to ``True``.
        allow_missing_keys: don't raise for a key absent from the data (e.g. no label at inference).
            Defaults to ``False``.
        max_pixels: largest image decoded, see :class:`LoadRadiograph` (``inference.json``'s ``max_pixels``).
            Defaults to :data:`~r2mf_monai.transforms.readers.DEFAULT_MAX_PIXELS` (55.47 million: a 43 x 129 cm
            long-cassette film at 0.1 mm, and no larger).
    """

    def __init__(
        self,
        keys: KeysCollection,
        voi_lut: str = "sequence",
        dtype: Any = np.float32,
        ensure_channel_first: bool = True,
        image_only: bool = True,
        allow_missing_keys: bool = False,
        meta_keys: KeysCollection | None = None,
        overwriting: bool = False,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        super().__init__(
            keys,
            reader=None,
            dtype=dtype,
            meta_keys=meta_keys,
            overwriting=overwriting,
            image_only=image_only,
            ensure_channel_first=ensure_channel_first,
            allow_missing_keys=allow_missing_keys,
        )
        self._loader = LoadRadiograph(
            voi_lut=voi_lut,
            dtype=dtype,
            ensure_channel_first=ensure_channel_first,
            image_only=image_only,
            max_pixels=max_pixels,
        )

    def __call__(self, data: Mapping[Hashable, Any], reader: Any = None) -> dict[Hashable, Any]:
        """Load every key of ``data``.

        Args:
            data: a dictionary with file paths under ``keys``.
            reader: optional runtime reader, see :class:`LoadRadiograph`.
        """
        return super().__call__(data, reader)

    def probe(self, data: Mapping[Hashable, Any]) -> None:
        """:meth:`LoadRadiograph.probe` for every key of ``data``: read each file (raising the same errors as
        :meth:`__call__`) and keep the images for the pipeline's read of the same files."""
        for key in self.key_iterator(dict(data)):
            self._loader.probe(data[key])


LoadRadiographD = LoadRadiographDict = LoadRadiographd
