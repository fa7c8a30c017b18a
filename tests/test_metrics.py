"""fmlib.metrics against brute-force float64 references (explicit differences), properties, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fmlib.metrics
from fmlib.closed_form import ClosedFormField
from fmlib.data import make_simplex
from fmlib.metrics import Separation, cosine_to_target, pairwise_separation
from fmlib.neighbours import NearestNeighbors, copy_fraction, nearest_neighbor_distance
from tests.problems import (
    brute_force_copy_fraction,
    brute_force_nearest,
    brute_force_pairwise,
    brute_force_velocity,
)

TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4}


def _randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("batch", "n", "d", "chunk_size"), [(5, 7, 3, None), (5, 7, 3, 3), (4, 1, 1, None), (1, 9, 2, 1)]
)
def test_nearest_neighbor_distance_brute_force(batch: int, n: int, d: int, chunk_size: int | None, dtype) -> None:
    samples, data = _randn(batch, d, seed=1, dtype=dtype), _randn(n, d, seed=2, dtype=dtype)
    result = nearest_neighbor_distance(samples, data, chunk_size=chunk_size)
    assert isinstance(result, NearestNeighbors)
    assert result.distance.shape == (batch,) and result.index.shape == (batch,)
    assert result.distance.dtype == dtype and result.index.dtype == torch.long
    index, distance = brute_force_nearest(samples, data)
    assert torch.equal(result.index, index)
    torch.testing.assert_close(result.distance.double(), distance, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 6),
    n=st.integers(1, 12),
    d=st.integers(1, 5),
    chunk_size=st.one_of(st.none(), st.integers(1, 13)),
    seed=st.integers(0, 2**16),
)
def test_nearest_neighbor_distance_property(batch: int, n: int, d: int, chunk_size: int | None, seed: int) -> None:
    samples, data = _randn(batch, d, seed=seed), _randn(n, d, seed=seed + 1)
    result = nearest_neighbor_distance(samples, data, chunk_size=chunk_size)
    _, distance = brute_force_nearest(samples, data)
    torch.testing.assert_close(result.distance, distance, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(result.distance, (samples - data[result.index]).norm(dim=1), rtol=0, atol=0)


def test_exact_copies_are_at_distance_zero_in_float32() -> None:
    data = 100.0 + _randn(20, 64, dtype=torch.float32)  # large norms: the matrix trick alone would not give 0
    result = nearest_neighbor_distance(data[[3, 7, 7]], data, chunk_size=6)
    assert torch.equal(result.index, torch.tensor([3, 7, 7]))
    assert torch.equal(result.distance, torch.zeros(3))


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 8),
    n=st.integers(1, 10),
    d=st.integers(1, 4),
    chunk_size=st.one_of(st.none(), st.integers(1, 11)),
    ratio=st.floats(0.05, 1.0),
    seed=st.integers(0, 2**16),
)
def test_copy_fraction_brute_force(batch: int, n: int, d: int, chunk_size: int | None, ratio: float, seed: int) -> None:
    data = _randn(n, d, seed=seed)
    samples = torch.cat(
        [
            data[torch.arange(batch // 2) % n] + 0.01 * _randn(batch // 2, d, seed=seed + 1),
            _randn(batch - batch // 2, d),
        ]
    )
    fraction = copy_fraction(samples, data, ratio=ratio, chunk_size=chunk_size)
    assert fraction == pytest.approx(brute_force_copy_fraction(samples, data, ratio), abs=1e-12)
    assert 0.0 <= fraction <= 1.0


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 10), seed=st.integers(0, 2**16), low=st.floats(0.05, 1.0), high=st.floats(0.05, 1.0))
def test_copy_fraction_grows_with_ratio(n: int, seed: int, low: float, high: float) -> None:
    low, high = min(low, high), max(low, high)
    data, samples = _randn(n, 3, seed=seed), _randn(16, 3, seed=seed + 1)
    assert copy_fraction(samples, data, ratio=low) <= copy_fraction(samples, data, ratio=high)


def test_copy_fraction_conventions() -> None:
    data = make_simplex(5, separation=2.0, device="cpu", dtype=torch.float64)
    assert copy_fraction(data, data) == 1.0
    assert copy_fraction(torch.zeros(3, 4, dtype=torch.float64), data) == 0.0  # equidistant from all points
    near = data[:2] + torch.tensor([[0.5, 0, 0, 0], [0.9, 0, 0, 0]], dtype=torch.float64)
    assert copy_fraction(near, data, ratio=1 / 3) == 0.5  # 0.5 < 2 / 3 <= 0.9 roughly: one copy of two
    assert copy_fraction(_randn(4, 2) + 50.0, _randn(1, 2)) == 1.0  # n = 1: every sample copies the point
    duplicated = torch.cat([data, data[:1]])
    assert copy_fraction(data[:1], duplicated) == 1.0  # distance 0 counts even when d_2 = 0 too


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("t", [0.0, 0.3, 0.97, "tensor"])
def test_cosine_to_target_brute_force(t: float | str, dtype: torch.dtype) -> None:
    data = _randn(6, 3, seed=4, dtype=dtype)
    x0, x1 = _randn(5, 3, seed=5, dtype=dtype), data[[0, 1, 2, 3, 5]]
    t_value = torch.tensor([0.0, 0.2, 0.5, 0.8, 0.99], dtype=dtype) if t == "tensor" else t
    cosine = cosine_to_target(ClosedFormField(data), x0, x1, t_value)
    assert cosine.shape == (5,) and cosine.dtype == dtype
    t_col = (
        t_value.double() if isinstance(t_value, torch.Tensor) else torch.full((5,), t_value, dtype=torch.float64)
    ).unsqueeze(1)
    x_t = (1 - t_col) * x0.double() + t_col * x1.double()
    v = brute_force_velocity(x_t, t_col.squeeze(1), data)
    target = (x1 - x0).double()
    expected = (v * target).sum(1) / (v.norm(dim=1) * target.norm(dim=1))
    torch.testing.assert_close(cosine.double(), expected, rtol=TOLERANCE[dtype] * 10, atol=TOLERANCE[dtype] * 10)


def test_cosine_to_target_callable_and_degenerate_rows() -> None:
    x0 = _randn(3, 2)
    x1 = torch.stack([x0[0] + 1.0, x0[1], x0[2] - 1.0])
    seen: list[object] = []

    def toward_ones(x: torch.Tensor, t: float) -> torch.Tensor:
        seen.append(t)
        return torch.ones_like(x)

    cosine = cosine_to_target(toward_ones, x0, x1, 0.5)
    torch.testing.assert_close(cosine, torch.tensor([1.0, 0.0, -1.0], dtype=torch.float64))
    assert seen == [0.5]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 8), d=st.integers(1, 4), batch=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_cosine_to_target_bounded(n: int, d: int, batch: int, seed: int) -> None:
    data = _randn(n, d, seed=seed)
    t = torch.rand(batch, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 0.99
    cosine = cosine_to_target(ClosedFormField(data), _randn(batch, d, seed=seed + 1), data[torch.arange(batch) % n], t)
    assert bool(((cosine >= -1 - 1e-12) & (cosine <= 1 + 1e-12)).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [2, 3, 8])
def test_pairwise_separation_brute_force(n: int, dtype: torch.dtype) -> None:
    data = _randn(n, 4, seed=n, dtype=dtype) + 10.0
    separation = pairwise_separation(data)
    assert isinstance(separation, Separation)
    distances = brute_force_pairwise(data).sort().values
    m = distances.shape[0]
    median = float(distances[m // 2]) if m % 2 else float(distances[m // 2 - 1 : m // 2 + 1].mean())
    assert separation.minimum == pytest.approx(float(distances[0]), rel=TOLERANCE[dtype])
    assert separation.median == pytest.approx(median, rel=TOLERANCE[dtype])


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 12), block=st.integers(1, 30), seed=st.integers(0, 2**16))
def test_pairwise_separation_chunked(n: int, block: int, seed: int) -> None:
    """Blocks of any number of rows (patched small) give the brute-force minimum and median."""
    data = _randn(n, 3, seed=seed)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fmlib.metrics, "_PAIRWISE_BLOCK_ELEMENTS", block)
        separation = pairwise_separation(data)
    distances = brute_force_pairwise(data)
    assert separation.minimum == pytest.approx(float(distances.min()), rel=1e-10)
    assert separation.median == pytest.approx(float(distances.double().quantile(0.5)), rel=1e-10)


def test_pairwise_separation_of_simplex_is_exact() -> None:
    separation = pairwise_separation(make_simplex(50, d=60, separation=0.25, device="cpu", dtype=torch.float64))
    assert separation.minimum == pytest.approx(0.25, rel=1e-12)
    assert separation.median == pytest.approx(0.25, rel=1e-12)


def test_errors() -> None:
    data = _randn(4, 3)
    with pytest.raises(ValueError, match=r"samples has dimension d=2 but data has d=3"):
        nearest_neighbor_distance(_randn(2, 2), data)
    with pytest.raises(ValueError, match=r"chunk_size must be a positive integer, got 0"):
        nearest_neighbor_distance(data, data, chunk_size=0)
    with pytest.raises(ValueError, match=r"ratio must lie in \(0, 1\], got 1\.5"):
        copy_fraction(data, data, ratio=1.5)
    with pytest.raises(ValueError, match=r"samples has dtype torch\.float32 but data has torch\.float64"):
        copy_fraction(data.float(), data)
    with pytest.raises(ValueError, match=r"t must be < 1"):
        cosine_to_target(ClosedFormField(data), data, data, 1.0)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        cosine_to_target(ClosedFormField(data), data, data, -0.5)
    with pytest.raises(ValueError, match=r"x1 has shape \(3, 3\) but x0 has \(4, 3\)"):
        cosine_to_target(ClosedFormField(data), data, data[:3], 0.5)
    with pytest.raises(ValueError, match=r"field must have a velocity\(x, t\) method or be a callable"):
        cosine_to_target("u*", data, data, 0.5)
    with pytest.raises(ValueError, match=r"at least 2 points .* got n=1"):
        pairwise_separation(data[:1])
