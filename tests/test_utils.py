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
"""r2mf_monai/utils.py: the user error inside MONAI's config errors, and the libraries' chatter kept out of the log."""

from __future__ import annotations

import logging
import warnings

import pytest

from r2mf_monai.utils import ensure_bool, quiet_library_logs, user_error_in


def _wrapped(error: BaseException, times: int) -> BaseException:
    """``error`` wrapped as MONAI's ConfigExpression does (``raise RuntimeError(...) from e``), ``times`` times."""
    for _ in range(times):
        try:
            raise RuntimeError("Failed to evaluate ConfigExpression: ...") from error
        except RuntimeError as e:
            error = e
    return error


@pytest.mark.parametrize("times", [0, 1, 2])
@pytest.mark.parametrize("error", [ValueError("no radiograph found in 'x'"), FileNotFoundError("x"), PermissionError()])
def test_user_error_in_finds_the_cause(error, times):
    assert user_error_in(_wrapped(error, times)) is error


@pytest.mark.parametrize("error", [RuntimeError("a bug"), TypeError("a bug"), _wrapped(KeyError("k"), 2)])
def test_user_error_in_leaves_other_errors(error):
    assert user_error_in(error) is None


def test_quiet_library_logs(caplog):
    """Building MONAI's LoadImage (every reader, nvImageCodec's too) says nothing on a machine without nvImageCodec;
    pydicom's value warnings and highdicom's module copying stay out of the log; our own warnings stay in."""
    from monai.transforms import LoadImage

    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO):
        warnings.simplefilter("always")  # not once per place: every warning that gets through is recorded
        quiet_library_logs()
        LoadImage(image_only=True)
        logging.getLogger("pydicom").warning("Invalid value for VR IS: '1A'")
        logging.getLogger("highdicom.base").info('copy attributes of module "Patient"')
        warnings.warn_explicit("Invalid value for VR IS", UserWarning, "valuerep.py", 1, module="pydicom.valuerep")
        logging.getLogger("r2mf_monai.outputs").warning("ours")
    assert not [str(w.message) for w in caught], [str(w.message) for w in caught]
    assert [r.getMessage() for r in caplog.records] == ["ours"]


@pytest.mark.parametrize(
    "value, expected",
    [(True, True), (False, False), ("false", False), ("False", False), ("no", False), ("off", False), (0, False)]
    + [("true", True), ("YES", True), ("on", True), (1, True)],
)
def test_ensure_bool_reads_command_line_words(value, expected):
    # fire gives "--overlay false" as the string "false", which bool() reads as True
    assert ensure_bool("--overlay", value) is expected


@pytest.mark.parametrize("value", ["maybe", 2, "", None])
def test_ensure_bool_names_the_option(value):
    with pytest.raises(ValueError, match="--overlay must be true or false"):
        ensure_bool("--overlay", value)
