"""fmlib.stats: the one crossing time (rising and falling, censoring, interpolation), Bonferroni, intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fmlib.path import snr_to_time, time_to_snr
from fmlib.stats import bonferroni, crossing_time, crossing_times, percentile_interval


def test_falling_crossing_is_the_rising_crossing_of_the_mirrored_curve():
    ts = snr_to_time(np.geomspace(0.01, 100, 9))
    curve = np.array([0.9, 0.8, 0.7, 0.6, 0.3, 0.4, 0.2, 0.1, 0.05])
    assert crossing_time(ts, curve, 0.5, falling=True) == pytest.approx(crossing_time(ts, -curve, -0.5))
    # the last run at or below 0.5 starts at index 4 (0.4 after 0.3 stays below): the crossing lies between
    # indices 3 and 4, a third of the way (0.6 -> 0.3) in log s, whose grid step is log sqrt(10)
    log_s = np.log(time_to_snr(ts[3])) + (0.6 - 0.5) / (0.6 - 0.3) * 0.5 * np.log(10.0)
    assert crossing_time(ts, curve, 0.5, falling=True) == pytest.approx(snr_to_time(np.exp(log_s)))


def test_a_curve_that_returns_is_read_from_its_end():
    ts = snr_to_time(np.geomspace(0.1, 10, 5))
    up_down_up = [0.0, 0.9, 0.1, 0.6, 1.0]
    t = crossing_time(ts, up_down_up, 0.5)
    assert ts[2] < t < ts[3], "the first crossing (between ts[0] and ts[1]) must not be the answer"


def test_censoring_is_signed_infinity_and_rows_agree_with_single_curves():
    ts = np.array([0.1, 0.3, 0.5, 0.7])
    rows = np.array([[0.6, 0.7, 0.8, 0.9], [0.0, 0.1, 0.2, 0.3], [0.0, 0.4, 0.6, 0.9]])
    out = crossing_times(ts, rows, 0.5)
    assert out[0] == -math.inf and out[1] == math.inf and ts[1] < out[2] < ts[2]
    assert np.array_equal(out, [crossing_time(ts, r, 0.5) for r in rows])


def test_a_grid_starting_at_zero_interpolates_linearly_in_t():
    assert crossing_time([0.0, 0.4], [1.0, 0.0], 0.5, falling=True) == pytest.approx(0.2)


def test_log_values_is_exact_for_a_power_law_and_linear_values_are_not():
    s = np.geomspace(0.1, 100, 6)
    p = 0.5 * s**-1.5
    exact = snr_to_time((0.01 / 0.5) ** (-1 / 1.5))
    assert crossing_time(snr_to_time(s), p, 0.01, falling=True, log_values=True) == pytest.approx(exact, rel=1e-12)
    assert crossing_time(snr_to_time(s), p, 0.01, falling=True) != pytest.approx(exact, rel=1e-3)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="strictly increasing"):
        crossing_time([0.5, 0.2], [0.0, 1.0])
    with pytest.raises(ValueError, match=r"values must be \(T,\) or \(R, T\)"):
        crossing_times([0.1, 0.2], [0.0, 1.0, 2.0], 0.5)
    with pytest.raises(ValueError, match="level must be positive"):
        crossing_time([0.1, 0.2], [0.1, 0.2], 0.0, log_values=True)


def test_bonferroni_multiplies_by_the_number_of_tests_made():
    adjusted = bonferroni([0.01, 0.2, np.nan, 0.5])
    assert np.allclose(adjusted[[0, 1, 3]], [0.03, 0.6, 1.0]) and np.isnan(adjusted[2])


def test_percentile_interval_ignores_nan():
    values = np.concatenate([np.linspace(0, 1, 1001), [np.nan] * 50])
    low, high = percentile_interval(values, 0.9)
    assert low == pytest.approx(0.05) and high == pytest.approx(0.95)
