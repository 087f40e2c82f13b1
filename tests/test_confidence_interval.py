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
"""Bootstrap intervals of a mean over films (r2mf_monai.confidence_interval)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from r2mf_monai.confidence_interval import mean_confidence_interval


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng: rng.normal(5.0, 2.0, 400),
        lambda rng: rng.exponential(4.0, 232),  # skewed, as angle errors are
        lambda rng: np.concatenate([rng.exponential(2.0, 470), [117.0, 40.0, 12.0]]),  # a few films far off
    ],
)
def test_interval_holds_the_mean_within_the_values(draw):
    values = draw(np.random.default_rng(1))
    low, high = mean_confidence_interval(values)
    assert values.min() <= low < values.mean() < high <= values.max()
    assert mean_confidence_interval(values) == (low, high)  # seeded: the same summary every run
    assert mean_confidence_interval(values, seed=5) != (low, high)


def test_normal_width_is_the_textbook_one():
    """For normal values the 95 % interval of the mean is about mean +/- 1.96 sd / sqrt(n)."""
    values = np.random.default_rng(2).normal(0.0, 3.0, 900)
    low, high = mean_confidence_interval(values)
    expected = 2 * 1.96 * values.std(ddof=1) / math.sqrt(values.size)
    assert high - low == pytest.approx(expected, rel=0.15)
    assert (low + high) / 2 == pytest.approx(values.mean(), abs=0.05)


def test_a_far_off_film_widens_the_interval_upwards():
    base = list(np.random.default_rng(3).exponential(2.0, 300))
    low0, high0 = mean_confidence_interval(base)
    low1, high1 = mean_confidence_interval([*base, 117.0])
    assert high1 - low1 > 2 * (high0 - low0)
    assert high1 - np.mean([*base, 117.0]) > np.mean([*base, 117.0]) - low1  # skewed towards the outlier


@pytest.mark.parametrize(
    "values, expected",
    [([], None), ([3.0], None), ([None, 2.0, float("nan")], None), ([2.5, 2.5, 2.5], (2.5, 2.5))],
)
def test_too_few_or_identical_values(values, expected):
    assert mean_confidence_interval(values) == expected


def test_missing_values_are_left_out():
    values = list(np.random.default_rng(4).normal(1.0, 1.0, 50))
    assert mean_confidence_interval([*values, None, float("nan")]) == mean_confidence_interval(values)


@pytest.mark.parametrize("kwargs", [{"confidence_level": 1.0}, {"confidence_level": 0.0}, {"n_resamples": 0}])
def test_bad_settings_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        mean_confidence_interval([1.0, 2.0, 3.0], **kwargs)


def test_groups_are_resampled_whole():
    """Three views a patient share the patient's level: resampling patients gives the honest, wider interval."""
    rng = np.random.default_rng(5)
    patients = rng.normal(90.0, 4.0, 40)
    values = np.repeat(patients, 3) + rng.normal(0.0, 1.0, 120)
    ids = np.repeat([f"P{i:03d}" for i in range(40)], 3)
    low, high = mean_confidence_interval(values, groups=ids)
    plain_low, plain_high = mean_confidence_interval(values)
    assert low < values.mean() < high
    assert high - low > 1.3 * (plain_high - plain_low)
    # one value a group is the plain bootstrap of the mean again
    singles = mean_confidence_interval(values, groups=range(120))
    assert singles == pytest.approx((plain_low, plain_high), rel=0.01)


@pytest.mark.parametrize(
    "values, groups, expected", [([1.0, 2.0, 3.0], ["a", "a", "a"], None), ([1.0, None, 3.0], ["a", "b", "a"], None)]
)
def test_one_group_gives_no_interval(values, groups, expected):
    assert mean_confidence_interval(values, groups=groups) == expected


def test_groups_must_match_the_values():
    with pytest.raises(ValueError, match="2 ids for 3 values"):
        mean_confidence_interval([1.0, 2.0, 3.0], groups=["a", "b"])


def test_groups_with_the_same_mean_fall_back_to_percentiles():
    """Every jackknife mean equal: BCa cannot be computed (0/0), the percentile interval is the groups' mean."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing of SciPy's BCa warning reaches the caller
        assert mean_confidence_interval([1.0, 1.0, 2.0, 2.0], groups=["a", "b", "a", "b"]) == (1.5, 1.5)
