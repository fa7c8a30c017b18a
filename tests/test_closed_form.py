"""ClosedFormField against brute-force float64 references (tests/problems.py), properties, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fmlib.closed_form import ClosedFormField, posterior_mean, velocity
from fmlib.neighbours import nearest_index, nearest_indices
from tests.problems import (
    brute_force_log_weights,
    brute_force_nearest,
    brute_force_posterior_mean,
    brute_force_velocity,
    relative_error,
)

TOLERANCE = {torch.float64: 1e-9, torch.float32: 2e-3}


def make_problem(n: int, d: int, t: float, batch: int = 16, seed: int = 0, on_path: bool = True):
    """Data and query points: on the conditional paths of random training points, or from the marginal at t."""
    g = torch.Generator().manual_seed(seed)
    data = torch.randn(n, d, generator=g, dtype=torch.float64)
    index = torch.randint(0, n, (batch,), generator=g)
    noise = torch.randn(batch, d, generator=g, dtype=torch.float64)
    x = t * data[index] + (1 - t) * noise if on_path else noise
    return data, x


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("d", [1, 2, 64, 3072])
@pytest.mark.parametrize("t", [0.0, 0.05, 0.3, 0.9, 0.99, 0.999])
def test_posterior_mean_and_velocity_match_brute_force(dtype, d, t):
    n = 37 if d < 3072 else 23
    data, x = make_problem(n, d, t)
    field = ClosedFormField(data.to(dtype), chunk_size=10)  # 10 does not divide n
    mean = field.posterior_mean(x.to(dtype), t)
    assert mean.dtype == dtype and mean.shape == x.shape
    assert relative_error(mean, brute_force_posterior_mean(x, t, data)) <= TOLERANCE[dtype]
    u = field.velocity(x.to(dtype), t)
    assert relative_error(u, brute_force_velocity(x, t, data)) <= TOLERANCE[dtype] / (1 - t) * 2


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("t", [0.02, 0.1, 0.2])
def test_spread_weights_in_high_dimension(dtype, t):
    """Small t in d = 3072: many weights share the mass, the hard case for round-off."""
    data, x = make_problem(200, 3072, t, on_path=False)
    x = x * 1.0 + t * data.mean(0)
    field = ClosedFormField(data.to(dtype), chunk_size=64)
    assert relative_error(field.posterior_mean(x.to(dtype), t), brute_force_posterior_mean(x, t, data)) <= TOLERANCE[
        dtype
    ]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_weights_match_brute_force(dtype):
    data, x = make_problem(29, 5, 0.7)
    field = ClosedFormField(data.to(dtype), chunk_size=4)
    log_w = field.log_weights(x.to(dtype), 0.7)
    ref = brute_force_log_weights(x, 0.7, data)
    assert log_w.shape == (16, 29)
    assert torch.allclose(log_w.exp().double(), ref.exp(), atol=10 * TOLERANCE[dtype])
    assert torch.allclose(field.weights(x.to(dtype), 0.7).sum(1).double(), torch.ones(16, dtype=torch.float64),
                          atol=1e-5)


def test_per_row_times_match_scalar_times():
    data, x = make_problem(31, 4, 0.5)
    ts = torch.linspace(0.0, 0.99, 16, dtype=torch.float64)
    field = ClosedFormField(data, chunk_size=7)
    batched = field.velocity(x, ts)
    one_by_one = torch.cat([field.velocity(x[i : i + 1], float(ts[i])) for i in range(16)])
    assert torch.allclose(batched, one_by_one, atol=1e-12)
    assert relative_error(batched, brute_force_velocity(x, ts, data)) < 1e-9


def test_limit_at_t_one_is_nearest_point():
    data, x = make_problem(40, 3, 0.8)
    field = ClosedFormField(data, chunk_size=9)
    index, _ = brute_force_nearest(x, data)
    assert torch.equal(field.posterior_mean(x, 1.0), data[index])
    near_one = field.posterior_mean(x, 1 - 1e-9)
    assert relative_error(near_one, data[index]) < 1e-9
    mixed = torch.tensor([0.5, 1.0] * 8, dtype=torch.float64)
    out = field.posterior_mean(x, mixed)
    assert torch.equal(out[1::2], data[index][1::2])
    assert relative_error(out[0::2], brute_force_posterior_mean(x[0::2], 0.5, data)) < 1e-9
    log_w = field.log_weights(x, 1.0)
    assert torch.equal(log_w.argmax(1), index) and torch.isinf(log_w).sum() == 16 * 39


def test_one_shot_functions_match_the_class():
    data, x = make_problem(11, 3, 0.4)
    field = ClosedFormField(data)
    assert torch.equal(posterior_mean(x, 0.4, data), field.posterior_mean(x, 0.4))
    assert torch.equal(velocity(x, 0.4, data, chunk_size=3), ClosedFormField(data, chunk_size=3).velocity(x, 0.4))


def test_nearest_index_matches_brute_force():
    data, x = make_problem(53, 7, 0.5)
    index, sq_dist = nearest_index(x, data, chunk_size=8)
    ref_index, ref_dist = brute_force_nearest(x, data)
    assert torch.equal(index, ref_index)
    assert torch.allclose(sq_dist.sqrt(), ref_dist, atol=1e-9)


def test_extreme_logits_stay_finite_in_float32():
    """Far from all data, at t near 1, the logits reach -1e9: the running max keeps the result exact."""
    data = torch.randn(300, 16, generator=torch.Generator().manual_seed(1))
    x = 50 * torch.randn(8, 16, generator=torch.Generator().manual_seed(2))
    out = ClosedFormField(data, chunk_size=64).posterior_mean(x, 0.9999)
    assert torch.isfinite(out).all()
    assert relative_error(out, brute_force_posterior_mean(x, 0.9999, data)) < 2e-3


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 20), d=st.integers(1, 6), batch=st.integers(1, 5), chunk=st.integers(1, 25),
    t=st.one_of(st.sampled_from([0.0, 1e-6, 0.999999]), st.floats(0.0, 0.999)),
    seed=st.integers(0, 2**16),
)
def test_properties(n, d, batch, chunk, t, seed):
    data, x = make_problem(n, d, t, batch=batch, seed=seed)
    field = ClosedFormField(data, chunk_size=chunk)
    mean = field.posterior_mean(x, t)
    assert mean.shape == (batch, d) and torch.isfinite(mean).all()
    assert relative_error(mean, brute_force_posterior_mean(x, t, data)) < 1e-8
    w = field.weights(x, t)
    assert w.shape == (batch, n) and torch.allclose(w.sum(1), torch.ones(batch, dtype=torch.float64))
    # the denoiser is a convex combination: it lies in the bounding box of the data
    assert (mean >= data.min(0).values - 1e-9).all() and (mean <= data.max(0).values + 1e-9).all()
    if n == 1:
        assert torch.allclose(mean, data.expand(batch, d))


def test_results_follow_the_dtype_of_x():
    data, x = make_problem(5, 2, 0.3)
    out = ClosedFormField(data.float()).velocity(x.float(), torch.tensor(0.3))
    assert out.dtype == torch.float32


@pytest.mark.parametrize("t", [1 - 1e-6, 1 - 1e-7, 1 - 1e-8, 1 - 1e-12])
def test_float32_times_within_rounding_of_one_stay_finite(t):
    """1 - t is taken in double precision for a float t: no division by zero after the cast to float32."""
    data, x = make_problem(20, 3, 0.5)
    field = ClosedFormField(data.float())
    mean = field.posterior_mean(x.float(), t)
    index, _ = brute_force_nearest(x, data)
    assert torch.isfinite(mean).all() and torch.allclose(mean.double(), data[index], atol=1e-6)
    assert torch.isfinite(field.velocity(x.float(), t)).all()
    assert torch.isfinite(field.log_weights(x.float(), t)).any(dim=1).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ClosedFormField(torch.zeros(0, 3)), r"data is empty"),
        (lambda: ClosedFormField(torch.zeros(3)), r"data must have shape \(n, d\)"),
        (lambda: ClosedFormField(torch.zeros(3, 2, dtype=torch.int64)), r"data must be float32 or float64"),
        (lambda: ClosedFormField([[0.0]]), r"data must be a torch.Tensor"),
        (lambda: ClosedFormField(torch.zeros(3, 2), chunk_size=0), r"chunk_size must be a positive integer"),
        (lambda: ClosedFormField(torch.zeros(3, 2)).velocity(torch.zeros(4, 3), 0.5), r"x has dimension d=3"),
        (lambda: ClosedFormField(torch.zeros(3, 2)).velocity(torch.zeros(4, 2, dtype=torch.float64), 0.5),
         r"x has dtype torch.float64 but data has torch.float32"),
        (lambda: ClosedFormField(torch.zeros(3, 2)).velocity(torch.zeros(2), 0.5), r"x must have shape \(B, d\)"),
        (lambda: ClosedFormField(torch.zeros(3, 2)).velocity(torch.zeros(4, 2), 1.5), r"t must lie in \[0, 1\]"),
        (lambda: ClosedFormField(torch.zeros(3, 2)).velocity(torch.zeros(4, 2), -0.1), r"t must lie in \[0, 1\]"),
        (lambda: ClosedFormField(torch.zeros(3, 2)).velocity(torch.zeros(4, 2), float("nan")), r"t must lie in"),
        (lambda: ClosedFormField(torch.zeros(3, 2)).velocity(torch.zeros(4, 2), torch.zeros(3)),
         r"t must be a float or a tensor of shape \(4,\)"),
        (lambda: ClosedFormField(torch.zeros(3, 2)).velocity(torch.zeros(4, 2), "0.5"), r"t must be a float"),
        (lambda: ClosedFormField(torch.zeros(3, 2)).velocity(torch.zeros(4, 2), 1.0), r"velocity is undefined at t"),
    ],
)
def test_errors_name_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    data, x = make_problem(500, 64, 0.5)
    cpu = ClosedFormField(data).velocity(x, 0.5)
    gpu = ClosedFormField(data.cuda()).velocity(x.cuda(), 0.5)
    assert gpu.device.type == "cuda" and relative_error(gpu.cpu(), cpu) < 1e-9


def test_docstring_examples_run():
    import doctest

    import fmlib.closed_form

    assert doctest.testmod(fmlib.closed_form, raise_on_error=False).failed == 0


def test_nearest_indices_rank_like_brute_force():
    data, x = make_problem(41, 6, 0.5)
    index, sq_dist = nearest_indices(x, data, 3, chunk_size=5)
    ref = (x[:, None, :] - data[None]).norm(dim=-1).sort(dim=1)
    assert torch.equal(index, ref.indices[:, :3])
    assert torch.allclose(sq_dist.sqrt(), ref.values[:, :3], atol=1e-9)
    one_point_index, one_point_dist = nearest_indices(x, data[:1], 2)
    assert torch.equal(one_point_index[:, 0], torch.zeros(16, dtype=torch.long))
    assert torch.isinf(one_point_dist[:, 1]).all()
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        nearest_indices(x, data, 0)
