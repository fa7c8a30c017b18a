"""fmlib.path: x_t, the conditional target, pairs, and the signal-to-noise map."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fmlib.path import conditional_target, draw_pairs, interpolate, log_snr, snr_grid, snr_to_time, time_to_snr


def test_interpolate_ends_at_noise_and_data_and_its_derivative_is_the_target():
    x0, x1 = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    assert torch.equal(interpolate(x0, x1, 0.0), x0) and torch.equal(interpolate(x0, x1, 1.0), x1)
    t, h = 0.37, 1e-6
    derivative = (interpolate(x0, x1, t + h) - interpolate(x0, x1, t - h)) / (2 * h)
    assert torch.allclose(derivative, conditional_target(x0, x1), atol=1e-8)
    per_row = interpolate(x0, x1, torch.linspace(0, 1, 5, dtype=torch.float64))
    assert torch.equal(per_row[0], x0[0]) and torch.equal(per_row[-1], x1[-1])


def test_snr_map_and_its_inverse():
    t = np.array([0.0, 0.1, 0.5, 0.9])
    assert np.allclose(snr_to_time(time_to_snr(t)), t)
    assert time_to_snr(0.5) == 1.0 and time_to_snr(1.0) == np.inf and snr_to_time(np.inf) == 1.0
    assert np.isnan(log_snr(0.0)) and log_snr(0.5) == 0.0
    grid = snr_grid(1e-2, 1e2, 5)
    assert np.allclose(np.diff(np.log(time_to_snr(grid))), np.log(10.0))


def test_draw_pairs_takes_rows_of_the_data_and_follows_the_seed():
    data = torch.arange(12.0).reshape(6, 2)
    x0, x1 = draw_pairs(data, 50, generator=torch.Generator().manual_seed(0))
    assert x0.shape == x1.shape == (50, 2)
    assert all(any(torch.equal(row, y) for y in data) for row in x1)
    again = draw_pairs(data, 50, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x0, again[0]) and torch.equal(x1, again[1])
    with pytest.raises(ValueError, match="batch"):
        draw_pairs(data, 0)
