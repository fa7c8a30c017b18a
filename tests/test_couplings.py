"""fmlib.couplings: the maps against their defining properties, minibatch OT against brute force,
the noisy interpolant's noise level (with the mutation 'sigma applied twice'), bad input."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor

import fmlib.couplings as couplings
from fmlib.couplings import (
    COUPLINGS,
    NOISE_SCHEDULES,
    IndependentCoupling,
    MinibatchOTCoupling,
    NoisyPairsField,
    PairedSampler,
    gaussian_ot_map,
    make_coupling,
    minibatch_ot,
    noisy_interpolant,
    plane_rotation,
    register_pairs,
    rotated_ot_map,
    rotation_shift_map,
    shuffled_ot_pairs,
    sqrtm_spd,
)


def _spd(d: int, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return a @ a.T / d + 0.5 * torch.eye(d, dtype=torch.float64)


@pytest.mark.parametrize("d", [1, 3, 6])
def test_ot_map_is_the_symmetric_square_root(d: int) -> None:
    cov, mean = _spd(d), torch.arange(d, dtype=torch.float64)
    t_map = gaussian_ot_map(mean, cov)
    a = t_map.matrix
    torch.testing.assert_close(a, a.T)
    torch.testing.assert_close(a @ a, cov)
    assert float(torch.linalg.eigvalsh(a).min()) > 0  # monotone: the gradient of a convex potential
    x = torch.randn(5, d, dtype=torch.float64)
    torch.testing.assert_close(t_map(x), mean + x @ a)


@pytest.mark.parametrize("d", [2, 5])
def test_rotated_map_pushes_to_the_same_law_but_pairs_differently(d: int) -> None:
    cov, mean = _spd(d, 1), torch.zeros(d, dtype=torch.float64)
    rot = plane_rotation(d, 0.7)
    torch.testing.assert_close(rot.T @ rot, torch.eye(d, dtype=torch.float64))
    assert float(torch.linalg.det(rot)) == pytest.approx(1.0)
    r_map, o_map = rotated_ot_map(mean, cov, rot), gaussian_ot_map(mean, cov)
    torch.testing.assert_close(r_map.matrix @ r_map.matrix.T, cov)  # covariance of T(x0) is A A^T = M
    x = torch.randn(4, d, dtype=torch.float64)
    assert float((r_map(x) - o_map(x)).norm()) > 0.1


def test_rotation_180_segments_meet_at_the_centre() -> None:
    t_map = rotation_shift_map(2, 5.0)
    x0 = torch.randn(7, 2, dtype=torch.float64)
    mid = 0.5 * x0 + 0.5 * t_map(x0)
    torch.testing.assert_close(mid, torch.full_like(mid, 2.5))


def test_couplings_by_name_draw_pairs_of_the_right_kind() -> None:
    g = torch.Generator().manual_seed(0)
    mean, cov = torch.ones(3, dtype=torch.float64), _spd(3)
    pairs = make_coupling("ot", mean=mean, cov=cov).sample(6, generator=g)
    torch.testing.assert_close(pairs.x1, gaussian_ot_map(mean, cov)(pairs.x0))
    pairs = make_coupling("rotation-180", d=2).sample(5, generator=g)
    torch.testing.assert_close(pairs.x1, 5.0 - pairs.x0)
    data = torch.randn(10, 3, dtype=torch.float64, generator=g)
    pairs = make_coupling("independent", target=data).sample(4000, generator=g)
    assert all(any(torch.equal(row, y) for y in data) for row in pairs.x1[:20])
    cross = (pairs.x0 - pairs.x0.mean(0)).T @ (pairs.x1 - pairs.x1.mean(0)) / 4000
    assert float(cross.abs().max()) < 0.1  # independent: no cross-covariance (5 sigma is ~0.08)
    assert set(COUPLINGS) >= {"independent", "ot", "rotated-ot", "rotation-180", "shuffled-ot", "minibatch-ot"}


def test_independent_coupling_accepts_a_sampler() -> None:
    coupling = IndependentCoupling(lambda b, g: torch.zeros(b, 4), dim=4)
    pairs = coupling.sample(3)
    assert pairs.x0.shape == pairs.x1.shape == (3, 4)


def _cost(x0: Tensor, x1: Tensor) -> float:
    return float(((x0 - x1) ** 2).sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_minibatch_ot_is_the_optimal_assignment(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x0, x1 = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g) + 1
    best = min(_cost(x0, x1[list(p)]) for p in itertools.permutations(range(6)))
    paired = minibatch_ot(x0, x1)
    assert _cost(x0, paired) == pytest.approx(best, rel=1e-6)
    assert sorted(map(tuple, paired.tolist())) == sorted(map(tuple, x1.tolist()))  # a permutation of x1
    # mutation: the identity assignment (an independent coupling) is not optimal here
    assert _cost(x0, x1) > best * (1 + 1e-6)


def test_minibatch_ot_coupling_sorts_in_one_dimension() -> None:
    data = torch.linspace(-3, 3, 50, dtype=torch.float64)[:, None]
    pairs = MinibatchOTCoupling(data).sample(40, generator=torch.Generator().manual_seed(0))
    order = pairs.x0[:, 0].argsort()
    assert bool((pairs.x1[order, 0].diff() >= 0).all())  # monotone rearrangement


def test_shuffled_ot_pairs() -> None:
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(20, 2, dtype=torch.float64, generator=g)
    t_map = gaussian_ot_map(torch.zeros(2, dtype=torch.float64), _spd(2))
    pairs = shuffled_ot_pairs(x0, t_map, generator=g)
    torch.testing.assert_close(pairs.ot_partner, t_map(x0))
    torch.testing.assert_close(pairs.x1, t_map(x0)[pairs.permutation])
    assert int((pairs.permutation != torch.arange(20)).sum()) > 10
    batch = pairs.coupling.sample(30, generator=g)
    index = [int((x0 - row).norm(dim=1).argmin()) for row in batch.x0]
    torch.testing.assert_close(batch.x1, pairs.x1[index])


def _noise_level_error(sigma: float, schedule: str) -> float:
    """Relative error of the measured noise std (x_t minus the segment, over g(t)) against sigma."""
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(4000, 3, generator=g, dtype=torch.float64), torch.randn(4000, 3, generator=g).double()
    t = torch.rand(4000, generator=g, dtype=torch.float64) * 0.8 + 0.1
    sample = noisy_interpolant(x0, x1, t, sigma=sigma, schedule=schedule, generator=g)
    residual = sample.x_t - ((1 - t)[:, None] * x0 + t[:, None] * x1)
    profile = NOISE_SCHEDULES[schedule](t)[:, None]
    torch.testing.assert_close(sample.target, x1 - x0)
    return abs(float((residual / profile).std()) / sigma - 1)


@pytest.mark.parametrize("schedule", sorted(NOISE_SCHEDULES))
def test_noise_level_is_sigma(schedule: str) -> None:
    assert _noise_level_error(0.05, schedule) < 0.03  # 12,000 normals: std error of the std ~0.7 %


@pytest.mark.parametrize("mutation", [lambda s: 2 * s, lambda s: s * s])
def test_mutation_sigma_applied_twice_is_caught(monkeypatch, mutation) -> None:
    original = couplings.noise_scale
    monkeypatch.setattr(couplings, "noise_scale", lambda t, sigma, schedule: original(t, mutation(sigma), schedule))
    assert _noise_level_error(0.05, "constant") > 0.03


def test_sigma_zero_lies_on_the_segment_and_bridge_vanishes_at_the_ends() -> None:
    x0, x1 = torch.randn(5, 2), torch.randn(5, 2)
    s = noisy_interpolant(x0, x1, 0.3, sigma=0.0)
    torch.testing.assert_close(s.x_t, 0.7 * x0 + 0.3 * x1)
    for t in (0.0, 1.0):
        s = noisy_interpolant(x0, x1, t, sigma=0.5, schedule="bridge")
        torch.testing.assert_close(s.x_t, (1 - t) * x0 + t * x1)
    s = noisy_interpolant(x0, x1, 0.0, sigma=0.5)
    assert float((s.x_t - x0).abs().max()) > 0  # constant schedule: noise also at t = 0


def test_sqrtm_spd() -> None:
    cov = _spd(4)
    root = sqrtm_spd(cov)
    torch.testing.assert_close(root @ root, cov)


def test_bad_input() -> None:
    d2 = torch.eye(2, dtype=torch.float64)
    with pytest.raises(ValueError, match="sigma"):
        noisy_interpolant(torch.zeros(2, 2), torch.zeros(2, 2), 0.5, sigma=-0.1)
    with pytest.raises(ValueError, match="schedule"):
        noisy_interpolant(torch.zeros(2, 2), torch.zeros(2, 2), 0.5, schedule="cosine")
    with pytest.raises(ValueError, match=r"coupling='rotated' is not one of.*did you mean 'rotated-ot'"):
        make_coupling("rotated", mean=torch.zeros(2), cov=d2)
    with pytest.raises(ValueError, match="square"):
        gaussian_ot_map(torch.zeros(2, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="positive definite"):
        gaussian_ot_map(torch.zeros(2, dtype=torch.float64), torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64)))
    with pytest.raises(ValueError, match="positive definite"):
        gaussian_ot_map(torch.zeros(2, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="symmetric"):
        skew = torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=torch.float64)
        gaussian_ot_map(torch.zeros(2, dtype=torch.float64), skew)
    with pytest.raises(ValueError, match="must match"):
        gaussian_ot_map(torch.zeros(3, dtype=torch.float64), d2)
    with pytest.raises(ValueError, match="orthogonal"):
        rotated_ot_map(torch.zeros(2, dtype=torch.float64), d2, 2 * d2)
    with pytest.raises(ValueError, match="bad arguments"):
        make_coupling("ot", mean=torch.zeros(2))
    with pytest.raises(ValueError, match="must match"):
        minibatch_ot(torch.zeros(3, 2), torch.zeros(4, 2))
    assert math.isfinite(float(plane_rotation(3, 1.0).sum()))


def _brute_force_pairs_velocity(x0: Tensor, x1: Tensor, x: Tensor, t: float, gamma: float) -> Tensor:
    """sum_i softmax_i(-|x - (1 - t) x0_i - t x1_i|^2 / (2 gamma^2)) (x1_i - x0_i), explicit differences, float64."""
    centres = ((1 - t) * x0 + t * x1).double()
    logits = -((x.double()[:, None, :] - centres[None]) ** 2).sum(-1) / (2 * gamma**2)
    return torch.softmax(logits, dim=1) @ (x1 - x0).double()


@pytest.mark.parametrize("schedule", sorted(NOISE_SCHEDULES))
def test_noisy_pairs_field_is_the_posterior_mean_of_the_pair_velocity(schedule: str) -> None:
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(30, 3, generator=g, dtype=torch.float64), torch.randn(30, 3, generator=g, dtype=torch.float64)
    field = NoisyPairsField(x0, x1, sigma=0.4, schedule=schedule)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    for t in (0.2, 0.5, 0.9):
        gamma = float(NOISE_SCHEDULES[schedule](torch.tensor(t, dtype=torch.float64))) * 0.4
        torch.testing.assert_close(field.velocity(x, t), _brute_force_pairs_velocity(x0, x1, x, t, gamma))
        # mutation: the noise level applied twice (gamma^2 in place of gamma) gives another field
        wrong = _brute_force_pairs_velocity(x0, x1, x, t, gamma * gamma)
        assert float((field.velocity(x, t) - wrong).abs().max()) > 1e-3
    torch.testing.assert_close(field.weights(x, 0.3).sum(1), torch.ones(5, dtype=torch.float64))


def test_noisy_pairs_field_of_many_map_pairs_approaches_the_gaussian_field() -> None:
    from fmlib.gaussian import AffinePairField

    g = torch.Generator().manual_seed(1)
    t_map = rotation_shift_map(1, 5.0)
    x0 = torch.randn(40_000, 1, generator=g, dtype=torch.float64)
    field = NoisyPairsField(x0, t_map(x0), sigma=0.3)
    x = torch.linspace(1.0, 4.0, 7, dtype=torch.float64)[:, None]
    exact = AffinePairField(t_map, sigma=0.3).velocity(x, 0.5)
    assert float((field.velocity(x, 0.5) - exact).abs().max()) < 0.1


def test_noisy_pairs_field_bad_input_and_bridge_ends() -> None:
    x0 = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        NoisyPairsField(x0, x0 + 1, sigma=0.0)
    field = NoisyPairsField(x0, x0 + 1, sigma=0.1, schedule="bridge")
    torch.testing.assert_close(field.weights(torch.tensor([[0.9]], dtype=torch.float64), 0.0),
                               torch.tensor([[0.0, 1.0]], dtype=torch.float64))


def test_paired_sampler_draws_each_target_with_its_own_source() -> None:
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(50, 2, generator=g)
    pairs = shuffled_ot_pairs(x0, rotation_shift_map(2, 5.0, dtype=torch.float32), generator=g)
    key = register_pairs(pairs.x0, pairs.x1)
    sampler = PairedSampler(pairs.x1, pairs=key, sigma=0.0)
    index = torch.randint(50, (40,), generator=g)
    batch = sampler.sample(pairs.x1[index], g)
    torch.testing.assert_close(batch.target, pairs.x1[index] - pairs.x0[index])
    t = batch.t[:, None]
    torch.testing.assert_close(batch.x_t, (1 - t) * pairs.x0[index] + t * pairs.x1[index])
    # mutation: pairing a target with another pair's source is seen by the same check
    wrong = pairs.x0[(index + 1) % 50]
    assert float((batch.target - (pairs.x1[index] - wrong)).abs().max()) > 1e-3
    noisy = PairedSampler(pairs.x1, pairs=key, sigma=0.05).sample(pairs.x1[index], g)
    residual = noisy.x_t - ((1 - noisy.t[:, None]) * pairs.x0[index] + noisy.t[:, None] * pairs.x1[index])
    assert 0.02 < float(residual.std()) < 0.08


def test_paired_sampler_keeps_near_duplicate_targets_apart() -> None:
    """Two distinct targets 1e-3 apart at norm ~30 (float32): the row index, not a search, names the source.

    Mutation (the former design): finding each target's row by the nearest-row search of
    ``||y||^2 - 2 <x, y>`` in float32 gave these targets the wrong sources, silently.
    """
    g = torch.Generator().manual_seed(0)
    x1 = 10 + torch.randn(64, 8, generator=g)
    x1[1] = x1[0]
    x1[1, 0] += 1e-3
    x0 = torch.randn(64, 8, generator=g)
    sampler = PairedSampler(x1, pairs=register_pairs(x0, x1))
    index = torch.tensor([0, 1] * 20)
    batch = sampler.sample_rows(index, g)
    torch.testing.assert_close(batch.target, x1[index] - x0[index])
    searched = (sampler._data_sq - 2 * x1[index] @ x1.T).argmin(dim=1)
    assert not torch.equal(searched, index), "the search no longer confuses them: the mutation shows nothing"
    with pytest.raises(ValueError, match="not a row"):
        sampler.sample(x1[index], g)


def test_paired_loss_trains_through_fmlib_train(tmp_path) -> None:
    from fmlib.train import TrainConfig, train_or_load

    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(16, 2, generator=g)
    x1 = rotation_shift_map(2, 5.0, dtype=torch.float32)(x0)
    key = register_pairs(x0, x1)
    config = TrainConfig(net="mlp", net_options={"width": 8, "depth": 1}, loss="paired",
                         loss_options={"pairs": key, "sigma": 0.05, "schedule": "bridge"}, steps=3, batch_size=8)
    model = train_or_load(config, x1, store=tmp_path, device="cpu", progress=False)
    assert model.losses.numel() == 1 and bool(torch.isfinite(model.losses).all())
    assert train_or_load(config, x1, store=tmp_path, device="cpu", progress=False).loaded


def test_paired_sampler_bad_input() -> None:
    x0 = torch.randn(4, 2)
    with pytest.raises(ValueError, match="repeated rows"):
        register_pairs(x0, torch.zeros(4, 2))
    key = register_pairs(x0, x0 + 1)
    with pytest.raises(ValueError, match="not registered"):
        PairedSampler(x0 + 1, pairs="pairs-unknown")
    with pytest.raises(ValueError, match="not the targets"):
        PairedSampler(x0, pairs=key)
    with pytest.raises(ValueError, match="sigma"):
        PairedSampler(x0 + 1, pairs=key, sigma=-1.0)


def test_minibatch_ot_is_a_coupling_of_the_cfm_loss() -> None:
    from fmlib.losses import make_loss

    data = torch.linspace(-3, 3, 64)[:, None]
    g = torch.Generator().manual_seed(0)
    batch = make_loss("cfm", data, coupling="minibatch-ot").sample(data[torch.randperm(64, generator=g)[:32]], g)
    x0 = batch.x_t - batch.t[:, None] * batch.target  # x_t = x0 + t (x1 - x0) at sigma = 0
    x1 = x0 + batch.target
    order = x0[:, 0].argsort()
    assert bool((x1[order, 0].diff() >= -1e-5).all())  # in 1-D the OT pairing is the monotone one
    # mutation: the independent coupling is not monotone
    batch = make_loss("cfm", data).sample(data[torch.randperm(64, generator=g)[:32]], g)
    x0 = batch.x_t - batch.t[:, None] * batch.target
    assert not bool(((x0 + batch.target)[x0[:, 0].argsort(), 0].diff() >= -1e-5).all())
