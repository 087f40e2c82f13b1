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

"""Argument checks shared by the whole package: the networks, the losses, the readers, the inference wrapper and
the experiments; and what every door does the same way with user errors and library logs.

Bad arguments raise ValueError at construction with the argument's name and value in the message (as MONAI's
networks do); string modes are looked up with MONAI's :func:`monai.utils.look_up_option`.
"""

from __future__ import annotations

import logging
import numbers
import warnings
from collections.abc import Collection
from typing import Any

from monai.utils import look_up_option

__all__ = [
    "SPATIAL_DIMS",
    "USER_ERRORS",
    "ensure_bool",
    "ensure_int",
    "ensure_option",
    "ensure_spatial_dims",
    "quiet_library_logs",
    "user_error_in",
]

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)
"""What the layers raise for an error a user caused (a bad value, a missing or unwritable file or folder): the
message names the option, key or file and is shown as one line (design.md, "Habits")."""

SPATIAL_DIMS = (1, 2, 3)
"""The spatial dimensions the networks are built for (MONAI's ``Conv``, ``Pool`` and norm factories)."""


def ensure_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an ``int`` when it is a whole number of at least ``minimum``.

    Args:
        name: the argument's name, for the message.
        value: the value to check; an integral float such as ``4.0`` is accepted, a bool is not.
        minimum: the smallest value allowed. Defaults to ``1`` (a positive integer).

    Raises:
        ValueError: naming the argument and its value.
    """
    whole = isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer()
    if not whole or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {name}={value!r}.")
    return int(value)


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def ensure_bool(name: str, value: Any) -> bool:
    """``value`` as a ``bool``: a bool, ``0``/``1``, or one of ``true/false``, ``yes/no``, ``on/off`` in any case.

    A command line gives ``--overlay false`` as the string ``"false"``, which Python's ``bool()`` reads as true.

    Raises:
        ValueError: naming the argument and its value.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    word = str(value).strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError(f"{name} must be true or false, got {value!r}.")


def ensure_spatial_dims(spatial_dims: Any) -> int:
    """``spatial_dims`` when it is one of :data:`SPATIAL_DIMS`.

    Raises:
        ValueError: naming the argument and its value.
    """
    if isinstance(spatial_dims, bool) or spatial_dims not in SPATIAL_DIMS:
        raise ValueError(f"spatial_dims must be 1, 2 or 3, got spatial_dims={spatial_dims!r}.")
    return int(spatial_dims)


def ensure_option(name: str, value: Any, supported: Collection[Any]) -> Any:
    """``value`` when it is one of ``supported`` (MONAI's :func:`~monai.utils.look_up_option`); for a mapping, the
    value it maps ``value`` to.

    Raises:
        ValueError: naming the argument, its value and the supported ones.
    """
    try:
        return look_up_option(value, supported)
    except ValueError as e:
        raise ValueError(f"{name}: {e}".replace("\n", " ").strip()) from None


def user_error_in(error: BaseException) -> BaseException | None:
    """The user error (one of :data:`USER_ERRORS`) that ``error`` is or wraps, else ``None``.

    MONAI's config parser wraps an error raised while it evaluates an expression in a ``RuntimeError("Failed to
    evaluate ConfigExpression ...")`` (perhaps twice, ``raise ... from e``): the first error of the ``__cause__``
    chain that is a user error is the one that names the problem.
    """
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, USER_ERRORS):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__
    return None


# the libraries' messages that say nothing about the user's films: MONAI builds its nvImageCodec DICOM reader with
# every LoadImage and warns, per instance, that the (GPU) codec is not installed; pydicom warns about each
# non-conforming value it reads (a file it cannot read is named by our reader); highdicom logs every module it copies
_QUIET_LOGGERS = {
    "monai.data.nvimgcodec_pydicom_plugin": logging.ERROR,
    "pydicom": logging.ERROR,
    "highdicom": logging.WARNING,
}
_QUIET_WARNINGS = (
    ("ignore", r"NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register", UserWarning, ""),
    ("ignore", "", UserWarning, r"pydicom(\.|$)"),
)


def quiet_library_logs() -> None:
    """Silence the libraries' per-file and per-instance chatter (bundle/configs/logging.conf sets the same levels
    for ``python -m monai.bundle``): the nvImageCodec notices on machines without it, pydicom's value warnings and
    highdicom's module copying. Errors, and warnings of this package, still show.
    """
    for name, level in _QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    for action, message, category, module in _QUIET_WARNINGS:
        warnings.filterwarnings(action, message=message, category=category, module=module)
