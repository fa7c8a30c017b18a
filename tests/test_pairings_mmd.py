"""Chapter 6's MMD comparisons: why the two-sample estimator cannot compare endpoints with their own training
targets, the MMD^2 to the training set that replaces it, the noise of an MMD^2, and the summary's pattern."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from fmlib.experiments.pairings import MixtureResult, mixture_summary
from fmlib.generalisation import mmd, mmd_spread, mmd_to_training_set


def _normal(n: int, seed: int, d: int = 3) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _mean_kernel(y: torch.Tensor, h: float) -> float:
    k = torch.exp(-torch.cdist(y, y).square() / (2 * h * h))
    return float((k.sum() - k.diagonal().sum()) / (y.shape[0] * (y.shape[0] - 1)))


def test_two_sample_mmd_of_endpoints_near_their_own_targets_is_biased_by_the_pairs() -> None:
    """Endpoints x_i integrated from the training sources depend on their own targets y_i; the cross sum of the
    two-sample estimator keeps the n pairs (x_i, y_i), so its expectation is shifted by
    -2 (E k(x_i, y_i) - E k(x_i, y_j)) / n: negative whatever the laws. Here x_i = y_i + 0.1 z_i (one law)."""
    y, held_out = _normal(512, 0), _normal(512, 1)
    x = y + 0.1 * _normal(512, 2)
    h = mmd(held_out, y).bandwidth
    spread = mmd_spread(held_out, y, bandwidth=h)
    dependent = mmd(x, y, bandwidth=h).mmd2
    k_pair = float(torch.exp(-(x - y).square().sum(1) / (2 * h * h)).mean())
    kxy = torch.exp(-torch.cdist(x, y).square() / (2 * h * h))
    k_other = float((kxy.sum() - kxy.diagonal().sum()) / (512 * 511))
    bias = -2 * (k_pair - k_other) / 512
    assert bias < -spread  # larger than the noise of two independent samples of these sizes
    assert dependent == pytest.approx(bias, abs=0.1 * abs(bias))
    assert abs(mmd(x, held_out, bandwidth=h).mmd2) < 3 * spread  # the same x against independent data: noise only


def test_mmd_to_training_set_is_zero_for_copies_and_positive_for_new_data() -> None:
    """Averaged over 20 training sets of 50 points (one estimate has noise of the size of the signal, about 1/n)."""
    copies, new, expected = [], [], []
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        y = torch.randn(50, 3, generator=g, dtype=torch.float64)
        copies.append(mmd_to_training_set(y[torch.randint(50, (200,), generator=g)], y, bandwidth=2.0))
        new.append(mmd_to_training_set(torch.randn(200, 3, generator=g, dtype=torch.float64), y, bandwidth=2.0))
        expected.append((1 - _mean_kernel(y, 2.0)) / 50)
    target = sum(expected) / 20
    assert abs(sum(copies) / 20) < 0.15 * target
    assert sum(new) / 20 == pytest.approx(target, rel=0.3)
    # brute force of the formula
    y, x = _normal(30, 0), _normal(40, 1)
    kxx = torch.exp(-torch.cdist(x, x).square() / 8)
    brute = (float(kxx.sum() - 40) / (40 * 39) + float(torch.exp(-torch.cdist(y, y).square() / 8).mean())
             - 2 * float(torch.exp(-torch.cdist(x, y).square() / 8).mean()))
    assert mmd_to_training_set(x, y, bandwidth=2.0) == pytest.approx(brute, rel=1e-10)
    # mutation: the two-sample estimator on the same copies is negative by about (1 - k) / n, not 0
    twosample = []
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        y = torch.randn(50, 3, generator=g, dtype=torch.float64)
        twosample.append(mmd(y[torch.randint(50, (200,), generator=g)], y, bandwidth=2.0).mmd2)
    assert sum(twosample) / 20 < -0.5 * target
    with pytest.raises(ValueError, match="bandwidth"):
        mmd_to_training_set(x, y, bandwidth=0.0)


def test_mmd_spread_is_the_noise_of_independent_pairs_of_samples() -> None:
    h = 1.7
    spread = mmd_spread(_normal(200, 0), _normal(200, 1), bandwidth=h, repeats=30)
    draws = torch.tensor([mmd(_normal(200, 10 + 2 * k), _normal(200, 11 + 2 * k), bandwidth=h).mmd2 for k in range(30)])
    assert 0.5 < spread / float(draws.std()) < 2.0
    # mutation: a spread of the same split every time (no re-split) is 0
    a, b = _normal(200, 0), _normal(200, 1)
    same = [mmd(a, b, bandwidth=h).mmd2 for _ in range(3)]
    assert max(same) - min(same) == 0.0 < spread
    shifted = mmd(_normal(200, 5) + 0.5, _normal(200, 6), bandwidth=h).mmd2
    assert shifted > 5 * spread
    with pytest.raises(ValueError, match="repeats"):
        mmd_spread(a, b, bandwidth=h, repeats=1)


def _table(held: tuple[float, float], train: tuple[float, float], spread: float = 1e-4) -> MixtureResult:
    return MixtureResult(table=pd.DataFrame({
        "d": [3, 3], "sigma": [0.0, 0.05], "mmd_held_out": list(held), "mmd_train": list(train),
        "mmd_spread": [spread] * 2, "mmd_train_new": [2e-3] * 2, "to_pair": [1.0] * 2, "nearest_ratio": [1.0] * 2,
        "nearest_ratio_fresh": [1.0] * 2,
        "bandwidth": [1.0] * 2}), pairing="random")


def test_mixture_summary_says_whether_the_pattern_is_the_summarys() -> None:
    match = mixture_summary(_table((3e-3, 2e-3), (1e-5, 1e-4), spread=1e-5), 0.05)
    assert "at both sigma: it holds in every d" in match and "two spreads: it holds in every d" in match
    # the held-out MMD2 is noise (within two spreads of 0): nothing lies an order of magnitude below noise
    unresolved = mixture_summary(_table((1e-4, -1e-4), (-2e-3, -2e-3)), 0.05)
    assert "neither resolved" in unresolved and "at both sigma: it holds in no d" in unresolved
    # only 5 times below: not orders of magnitude
    close = mixture_summary(_table((3e-3, 3e-3), (6e-4, 6e-4)), 0.05)
    assert "at both sigma: it holds in no d" in close and "two spreads: it holds in no d" in close


def test_mixture_mmds_come_from_fresh_noise_not_from_the_training_sources(tmp_path, monkeypatch) -> None:
    """Mutation: the MMDs computed from the endpoints of the training sources (the former, dependent comparison).
    The fresh endpoints are replaced by far-away points: every MMD must see them, no distance to a target may."""
    import fmlib.experiments.pairings as ex

    calls, original = [], ex._endpoints

    def endpoints(model, x0, steps, method="euler"):
        calls.append(x0.clone())
        x = original(model, x0, steps, method)
        return x + 100.0 if x0.shape[0] == 14 else x  # the fresh sources (n_test = 14) land far away

    monkeypatch.setattr(ex, "_endpoints", endpoints)
    recipe = ex.Recipe(net_options={"width": 8, "depth": 1, "time_features": 0}, steps=2, batch_size=8,
                       device="cpu", store=str(tmp_path))
    table = ex.mixture_experiment([3], 10, 14, (0.0,), recipe, sample_steps=3).table.iloc[0]
    assert [c.shape[0] for c in calls] == [10, 14]
    assert not any(torch.equal(a, b) for a in calls[1] for b in calls[0])  # no training source among the fresh
    assert table["mmd_held_out"] > 0.5 and table["mmd_train"] > 0.5 and table["nearest_ratio_fresh"] > 10
    assert table["to_pair"] < 50 and table["nearest_ratio"] < 10  # these read the training sources' endpoints
