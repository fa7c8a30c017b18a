"""fmlib.generalisation: distances against held-out data, MMD, two halves, summary; with mutations."""

from __future__ import annotations

import pytest
import torch

import fmlib.generalisation
from fmlib.generalisation import (
    disjoint_halves,
    distance_to_training,
    frechet_distance,
    mmd,
    summarise,
    two_halves_agreement,
)


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _brute_mmd2(x: torch.Tensor, y: torch.Tensor, h: float) -> float:
    def k(a, b):
        return torch.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * h * h))

    m, n = x.shape[0], y.shape[0]
    kxx, kyy = k(x, x), k(y, y)
    xx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    yy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(xx + yy - 2 * k(x, y).mean())


def test_mmd_against_brute_force_and_median_heuristic() -> None:
    x, y = _randn(30, 3, seed=0), _randn(20, 3, seed=1) + 0.5
    result = mmd(x, y)
    pooled = torch.cat([x, y])
    i, j = torch.triu_indices(50, 50, offset=1)
    assert result.bandwidth == pytest.approx(float((pooled[i] - pooled[j]).norm(dim=1).median()), rel=1e-12)
    assert result.mmd2 == pytest.approx(_brute_mmd2(x, y, result.bandwidth), abs=1e-12)
    assert mmd(x, y, bandwidth=0.7).mmd2 == pytest.approx(_brute_mmd2(x, y, 0.7), abs=1e-12)


def test_mmd_blocks_do_not_change_the_result(monkeypatch) -> None:
    x, y = _randn(25, 2, seed=2), _randn(17, 2, seed=3)
    whole = mmd(x, y, bandwidth=1.0).mmd2
    monkeypatch.setattr(fmlib.generalisation, "_BLOCK_ROWS", 4)
    assert mmd(x, y, bandwidth=1.0).mmd2 == pytest.approx(whole, abs=1e-13)


def test_mmd_near_zero_on_one_law_and_large_on_a_shift() -> None:
    same = [mmd(_randn(300, 4, seed=s), _randn(300, 4, seed=s + 100)).mmd2 for s in range(5)]
    shifted = mmd(_randn(300, 4, seed=7), _randn(300, 4, seed=8) + 1.0).mmd2
    assert max(abs(v) for v in same) < 0.01
    assert sum(same) / 5 == pytest.approx(0.0, abs=0.005)  # unbiased: the mean over draws sits at 0
    assert shifted > 0.1


def test_mutation_biased_mmd_is_positive_on_one_law(monkeypatch) -> None:
    """Keeping the i = j terms (the V-statistic) gives a positive value on one law: the test sees it."""
    original = fmlib.generalisation._kernel_sum
    monkeypatch.setattr(
        fmlib.generalisation, "_kernel_sum", lambda a, b, scale, same: original(a, b, scale, same=False)
    )
    same = [mmd(_randn(100, 4, seed=s), _randn(100, 4, seed=s + 100)).mmd2 for s in range(5)]
    assert sum(same) / 5 > 0.01


def test_distance_to_training_new_data_vs_copies() -> None:
    train, held_out = _randn(200, 5, seed=0), _randn(300, 5, seed=1)
    new = distance_to_training(_randn(300, 5, seed=2), train, held_out)
    assert new.ratio == pytest.approx(1.0, abs=0.1) and new.closer_fraction < 0.15
    copies = train[torch.randint(200, (300,), generator=torch.Generator().manual_seed(3))]
    copied = distance_to_training(copies + 1e-3 * _randn(300, 5, seed=4), train, held_out)
    assert copied.ratio < 0.01 and copied.closer_fraction == 1.0
    assert copied.sample_distance.shape == (300,) and copied.held_out_distance.shape == (300,)
    assert copied.held_out_median == pytest.approx(float(copied.held_out_distance.median()))


def test_two_halves_agreement() -> None:
    noise = _randn(64, 3, seed=0)
    same_map = two_halves_agreement(2 * noise, 2 * noise + 1e-3 * _randn(64, 3, seed=1))
    assert same_map.relative < 0.01
    unrelated = two_halves_agreement(_randn(64, 3, seed=2), _randn(64, 3, seed=3))
    assert unrelated.relative == pytest.approx(1.0, abs=0.25)
    assert same_map.distance.shape == (64,)


def test_summary_reports_the_held_out_false_positive_rate() -> None:
    train, held_out = _randn(100, 2, seed=0), _randn(200, 2, seed=1)
    result = summarise(train[:50] + 1e-4, train, held_out)
    assert result.copy_fraction == 1.0
    assert 0.0 < result.held_out_copy_fraction < 0.6  # in 2-D new points pass the 1/3 criterion too
    assert result.mmd.mmd2 > 0 and result.distances.ratio < 0.01


def test_frechet_distance_of_gaussians() -> None:
    """Large samples of N(m1, diag(v1)) and N(m2, diag(v2)): FD -> |m1 - m2|^2 + sum (sqrt v1 - sqrt v2)^2."""
    a = _randn(200000, 2, seed=0) * torch.tensor([1.0, 2.0]) + torch.tensor([0.0, 1.0])
    b = _randn(200000, 2, seed=1) * torch.tensor([3.0, 2.0])
    assert frechet_distance(a, b) == pytest.approx(1.0 + (1.0 - 3.0) ** 2, rel=0.02)
    assert abs(frechet_distance(a, a)) < 1e-9
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(a[:1], b)


def test_disjoint_halves() -> None:
    data = _randn(10, 2, seed=0)
    a, b = disjoint_halves(data, 5)
    assert torch.equal(torch.cat([a, b]), data)
    with pytest.raises(ValueError, match="need 12 rows"):
        disjoint_halves(data, 6)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: mmd(torch.zeros(1, 2, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64)), "at least 2"),
        (lambda: mmd(torch.zeros(3, 2, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64)), "pass bandwidth"),
        (lambda: mmd(torch.zeros(3, 2), torch.zeros(3, 3)), "dimension"),
        (lambda: mmd(torch.ones(3, 2), torch.zeros(3, 2), bandwidth=0.0), "bandwidth"),
        (lambda: two_halves_agreement(torch.zeros(3, 2), torch.zeros(4, 2)), "shape"),
        (lambda: distance_to_training(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 2), quantile=1.0), "quant"),
    ],
)
def test_errors(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()
