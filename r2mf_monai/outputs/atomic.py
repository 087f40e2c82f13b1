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

"""Atomic file writing: write to a temporary name in the destination folder, then rename.

Not from the paper: a project rule (design.md, "Habits") so that an interrupted run never leaves a half-written
mask, overlay, table or DICOM object under its final name. :func:`atomic_write` is the one writer; :func:`write_with`,
:func:`write_text` and :func:`write_json` are its short forms, used by every module and script that writes a file.

A writer that writes into an output folder passes it as ``root``: a final path that resolves outside it (``..`` in a
name, a symbolic link on the way) is refused before any folder is made. :func:`confined_path` builds such a path from
name parts that come from outside (file names, DICOM attributes) and refuses a part that is not one plain name.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "check_inside", "confined_path", "full_suffix", "write_json", "write_text", "write_with"]

# compressed containers whose writers pick the codec from the last suffix and the format from the one before
_COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")


def full_suffix(path: str | os.PathLike) -> str:
    """The suffix a writer uses to pick its format: ``".png"`` for ``a.b.png``, ``".nii.gz"`` for ``a.nii.gz``.

    Args:
        path: a file name or path.

    Returns:
        The last suffix, or the last two when the last one is a compression suffix (``.gz``, ``.bz2``, ``.xz``,
        ``.zst``); ``""`` when the name has none.
    """
    suffixes = Path(path).suffixes
    if len(suffixes) >= 2 and suffixes[-1].lower() in _COMPRESSED_SUFFIXES:
        return "".join(suffixes[-2:])
    return suffixes[-1] if suffixes else ""


def check_inside(path: str | os.PathLike, root: str | os.PathLike) -> Path:
    """Refuse ``path`` when it does not resolve to a place strictly inside the folder ``root``.

    Both are resolved with :func:`os.path.realpath` (symbolic links followed, ``..`` applied after them), so a link
    in the output folder that points elsewhere, or a name such as ``../../x``, is caught; the parts of ``path`` that
    do not exist yet are taken as written.

    Args:
        path: the path about to be written.
        root: the output folder it must stay in.

    Returns:
        ``path`` as a :class:`~pathlib.Path` (unchanged).

    Raises:
        ValueError: naming the path and the folder, when it resolves outside ``root`` (or to ``root`` itself).
    """
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if real == real_root or os.path.commonpath([real_root, real]) != real_root:
        raise ValueError(
            f"refusing to write {os.fspath(path)!r}: it resolves to {real!r}, outside the output folder "
            f"{os.fspath(root)!r} ({real_root!r})."
        )
    return Path(path)


def confined_path(root: str | os.PathLike, *parts: str) -> Path:
    """``root/part/part...`` from name parts that come from outside (a file name, a DICOM attribute), checked.

    Each part must be one plain name: not empty, not ``.`` or ``..``, without a path separator (``/``, ``\\``) or
    a NUL character. The joined path must then resolve inside ``root`` (:func:`check_inside`).

    Example::

        confined_path("out", "P0001_coronal", "P0001_coronal_mask.png")  # Path("out/P0001_coronal/P0001_...png")

    Args:
        root: the output folder.
        parts: the folder and file names below it.

    Returns:
        The joined path.

    Raises:
        ValueError: naming the part (or the path) and the folder, for a part that is not a plain name or a path that
            resolves outside ``root``.
    """
    if not parts:
        raise ValueError(f"no file name given below the output folder {os.fspath(root)!r}.")
    for part in parts:
        text = str(part)
        if text in ("", ".", "..") or any(c in text for c in ("/", "\\", "\0", os.sep)):
            raise ValueError(
                f"{text!r} is not a plain file name (no separator, '.', '..' or NUL): refusing to write it under "
                f"the output folder {os.fspath(root)!r}."
            )
    return check_inside(Path(root).joinpath(*(str(p) for p in parts)), root)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike, makedirs: bool = True, root: str | os.PathLike | None = None
) -> Iterator[Path]:
    """Context manager yielding a temporary path next to ``path``; renamed to ``path`` when the block succeeds.

    The temporary name keeps the suffix (``name.tmp-1a2b3c4d.png``, ``name.tmp-1a2b3c4d.nii.gz``) so writers that
    choose the format from the suffix (PIL, nibabel, MONAI's ``ImageWriter`` classes) still work. It lies in the same
    folder, so the final :func:`os.replace` is atomic on POSIX file systems: readers see either the old file or the
    complete new one. The temporary file is not created in advance, so the writer creates it with the usual
    permissions (umask), not the 0600 of :func:`tempfile.mkstemp`.

    If the block raises, the temporary file is removed and the exception propagates; an existing file at ``path``
    is left untouched.

    Example::

        with atomic_write("out/case_mask.png") as tmp:
            PIL.Image.fromarray(mask).save(tmp)

    Args:
        path: the final file path.
        makedirs: create the parent folder when it does not exist. Defaults to ``True``.
        root: the output folder ``path`` must resolve inside (:func:`check_inside`), checked before any folder is
            made; ``None`` (no check) for writers whose caller chose the path itself.

    Yields:
        The temporary path to write to.

    Raises:
        FileNotFoundError: when the parent folder does not exist and ``makedirs`` is ``False``, or when the block
            finished without writing the temporary file.
        ValueError: when ``root`` is given and ``path`` resolves outside it (nothing is made or written).
    """
    final = Path(path)
    if root is not None:
        check_inside(final, root)
    parent = final.parent
    if makedirs:
        parent.mkdir(parents=True, exist_ok=True)
    elif not parent.is_dir():
        raise FileNotFoundError(f"output folder {str(parent)!r} for {str(final)!r} does not exist.")
    suffix = full_suffix(final)
    stem = final.name[: len(final.name) - len(suffix)] if suffix else final.name
    tmp = parent / f"{stem}.tmp-{uuid.uuid4().hex[:8]}{suffix}"
    while tmp.exists():  # pragma: no cover - a collision of 32 random bits in one folder
        tmp = parent / f"{stem}.tmp-{uuid.uuid4().hex[:8]}{suffix}"
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"nothing was written to the temporary file {str(tmp)!r} for {str(final)!r}.")
        os.replace(tmp, final)
    finally:
        # on success tmp has been renamed away; on any failure (including KeyboardInterrupt) it is removed here
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_with(
    path: str | os.PathLike,
    write: Callable[[Path], Any],
    makedirs: bool = True,
    root: str | os.PathLike | None = None,
) -> Path:
    """Call ``write(tmp)`` inside :func:`atomic_write`: ``write`` writes the file it is given, which then becomes
    ``path``.

    Example::

        write_with("out/figure.png", lambda tmp: fig.savefig(tmp, format="png"))

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    with atomic_write(path, makedirs=makedirs, root=root) as tmp:
        write(tmp)
    return Path(path)


def write_text(
    path: str | os.PathLike, text: str, makedirs: bool = True, root: str | os.PathLike | None = None
) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (inside ``root`` when given); returns ``path``."""
    return write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), makedirs=makedirs, root=root)


def write_json(
    path: str | os.PathLike,
    content: Any,
    indent: int = 2,
    makedirs: bool = True,
    root: str | os.PathLike | None = None,
    **kwargs: Any,
) -> Path:
    """Write ``content`` as JSON (``json.dumps(content, indent=indent, **kwargs)`` and a final newline) to ``path``
    atomically (inside ``root`` when given); returns ``path``."""
    return write_text(path, json.dumps(content, indent=indent, **kwargs) + "\n", makedirs=makedirs, root=root)
