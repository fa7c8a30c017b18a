"""fmlib.losses: the EFM target against the closed form, its exact moments, the samplers, the registry."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import pytest
import torch

from fmlib.closed_form import ClosedFormField
from fmlib.losses import (
    BATCH_COUPLINGS,
    LOSSES,
    CFMSampler,
    EFMSampler,
    InterpolantSampler,
    efm_exact_moments,
    efm_target,
    make_loss,
    register_coupling,
    register_loss,
)


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("t", [0.0, 0.3, 0.9, 0.999])
@pytest.mark.parametrize("m", [1, 2, 7])
def test_efm_target_is_the_closed_form_of_the_pool(t: float, m: int) -> None:
    data = _randn(9, 4, seed=1)
    x0, x1 = _randn(5, 4, seed=2), data[[0, 3, 3, 8, 1]]
    others = torch.cat([data[[3, 5]], data[[2, 7, 7, 0]]])[: m - 1]  # with a duplicate of a row's x1
    x_t = (1 - t) * x0 + t * x1
    expected = torch.stack(
        [ClosedFormField(torch.cat([x1[b : b + 1], others])).velocity(x_t[b : b + 1], t)[0] for b in range(5)]
    )
    got = efm_target(x0, x1, torch.full((5,), t, dtype=torch.float64), others)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


def test_efm_with_pool_one_is_cfm_bit_for_bit() -> None:
    data = _randn(20, 3, seed=0).float()
    x1 = data[:16]
    cfm = CFMSampler(data).sample(x1, torch.Generator().manual_seed(5))
    efm = EFMSampler(data, pool_size=1).sample(x1, torch.Generator().manual_seed(5))
    assert torch.equal(cfm.x_t, efm.x_t) and torch.equal(cfm.t, efm.t) and torch.equal(cfm.target, efm.target)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_efm_is_unbiased_by_exact_enumeration(seed: int) -> None:
    """n = 6, d = 3, M = 3, t = 0.4 as in the notes: bias at round-off, variance below CFM's."""
    data = _randn(6, 3, seed=seed)
    t = 0.4
    x = (1 - t) * _randn(3, seed=seed + 10) + t * data[0]
    moments = efm_exact_moments(data, x, t, 3)
    assert moments.bias < 1e-12
    assert moments.variance < moments.cfm_variance
    assert moments.variance > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mutation_pool_without_x1_is_biased(seed: int) -> None:
    """b_1 drawn uniformly instead of b_1 = x1: the enumeration shows a bias far above round-off."""
    data = _randn(6, 3, seed=seed)
    t = 0.4
    x = (1 - t) * _randn(3, seed=seed + 10) + t * data[0]
    assert efm_exact_moments(data, x, t, 3, anchor="uniform").bias > 0.1


def test_efm_variance_decreases_with_pool_size() -> None:
    """Variance shrinks as M grows (exact, n = 4): M = 1 is CFM's variance."""
    data = _randn(4, 2, seed=3)
    x = 0.5 * _randn(2, seed=4) + 0.5 * data[1]
    variances = [efm_exact_moments(data, x, 0.5, m).variance for m in (1, 2, 4, 6)]
    assert variances[0] == pytest.approx(efm_exact_moments(data, x, 0.5, 1).cfm_variance, rel=1e-12)
    assert all(a > b for a, b in itertools.pairwise(variances))


def test_sampler_pool_always_holds_x1() -> None:
    """Two points 100 apart: for t > 1/2 the pool's closed form is x1 - x0 only if x1 is in the pool."""
    data = torch.tensor([[-50.0, 0.0, 0.0], [50.0, 0.0, 0.0]])
    x1 = data[torch.randint(2, (2000,), generator=torch.Generator().manual_seed(0))]
    batch = EFMSampler(data, pool_size=2).sample(x1, torch.Generator().manual_seed(1))
    late = batch.t > 0.5
    x0 = (batch.x_t - batch.t[:, None] * x1) / (1 - batch.t[:, None])
    torch.testing.assert_close(batch.target[late], (x1 - x0)[late], rtol=1e-3, atol=1e-3)


class _PoolWithoutX1(EFMSampler):
    """Mutation: the pool is M uniform draws (b_1 uniform), as the notes warn against."""

    name = "_efm_without_x1"

    def target(self, x0, x1, x_t, t, generator):
        index = torch.randint(self.data.shape[0], (self.pool_size,), generator=generator)
        pool = self.data[index]
        anchor = pool[:1].expand_as(x1)
        return efm_target((x_t - t[:, None] * anchor) / (1 - t[:, None]), anchor, t, pool[1:])


def test_mutation_sampler_without_x1_fails_the_pool_check() -> None:
    data = torch.tensor([[-50.0, 0.0, 0.0], [50.0, 0.0, 0.0]])
    x1 = data[torch.randint(2, (2000,), generator=torch.Generator().manual_seed(0))]
    batch = _PoolWithoutX1(data, pool_size=2).sample(x1, torch.Generator().manual_seed(1))
    late = batch.t > 0.5
    x0 = (batch.x_t - batch.t[:, None] * x1) / (1 - batch.t[:, None])
    wrong = ((batch.target - (x1 - x0))[late].norm(dim=1) > 1).double().mean()
    assert wrong > 0.1


def test_efm_target_variance_below_cfm_on_batches() -> None:
    """Monte Carlo: E||target - u*(x_t, t)||^2 of EFM (M = 32) below CFM's, same (x0, x1, t)."""
    data = _randn(40, 8, seed=7).float()
    field = ClosedFormField(data.double())
    x1 = data[torch.randint(40, (4000,), generator=torch.Generator().manual_seed(2))]
    errors = {}
    for sampler in (CFMSampler(data), EFMSampler(data, pool_size=32)):
        batch = sampler.sample(x1, torch.Generator().manual_seed(3))
        optimal = field.velocity(batch.x_t.double(), batch.t.double())
        errors[sampler.name] = float((batch.target.double() - optimal).square().sum(dim=1).mean())
    assert errors["efm"] < 0.7 * errors["cfm"]


def test_interpolant_noise_and_coupling() -> None:
    register_coupling("_test_reverse", lambda x0, x1, g: (x0.flip(0), x1))
    try:
        data = torch.zeros(1, 2)
        x1 = torch.zeros(20000, 2)
        batch = make_loss("cfm", data, sigma=0.5).sample(x1, torch.Generator().manual_seed(0))
        x0 = -batch.target  # target x1 - x0 with x1 = 0
        noise = batch.x_t - (1 - batch.t[:, None]) * x0
        assert float(noise.std()) == pytest.approx(0.5, rel=0.03)
        plain = make_loss("cfm", data).sample(x1[:4], torch.Generator().manual_seed(9))
        flipped = make_loss("cfm", data, coupling="_test_reverse").sample(x1[:4], torch.Generator().manual_seed(9))
        torch.testing.assert_close(flipped.target, plain.target.flip(0))
    finally:
        del BATCH_COUPLINGS["_test_reverse"]


def test_register_loss_and_options() -> None:
    class Half(InterpolantSampler):
        name = "_test_half"

        def __init__(self, data, *, factor: float = 0.5) -> None:
            super().__init__(data)
            self.factor = factor

        def target(self, x0, x1, x_t, t, generator):
            return self.factor * (x1 - x0)

    register_loss(Half)
    try:
        loss = make_loss("_test_half", torch.zeros(2, 2), factor=0.25)
        assert loss.options() == {"factor": 0.25}
        with pytest.raises(ValueError, match="new non-empty"):
            register_loss(Half)
    finally:
        del LOSSES["_test_half"]
    assert make_loss("efm", torch.zeros(2, 2), pool_size=4).options() == {"pool_size": 4}
    assert make_loss("cfm", torch.zeros(2, 2)).options() == {"sigma": 0.0, "coupling": "independent"}


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("cfn", {}, "did you mean 'cfm'"),
        ("efm", {"pool_size": 0}, "pool_size"),
        ("efm", {"pool_size": 2.5}, "pool_size"),
        ("cfm", {"pool_size": 3}, "takes no option pool_size"),
        ("cfm", {"sigma": -1.0}, "sigma"),
        ("cfm", {"coupling": "ot"}, "coupling"),
    ],
)
def test_make_loss_errors(name: str, options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_loss(name, torch.zeros(3, 2), **options)


def test_exact_moments_errors() -> None:
    data = _randn(6, 2, seed=0)
    with pytest.raises(ValueError, match="too many"):
        efm_exact_moments(data, data[0], 0.5, 9)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        efm_exact_moments(data, data[0], 1.0, 2)
    with pytest.raises(ValueError, match="anchor"):
        efm_exact_moments(data, data[0], 0.5, 2, anchor="first")


def test_a_fresh_process_knows_every_registered_loss_coupling_and_net():
    """A stored OSDNet or paired model must load where only fmlib.train is imported (fmlib/__init__ registers them)."""
    code = ("import json, sys, fmlib.train, fmlib.losses as l, fmlib.nets as n; "
            "print(json.dumps([sorted(l.LOSSES), sorted(l.BATCH_COUPLINGS), sorted(n.NETS), 'ot' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    losses, couplings, nets, pot_imported = json.loads(out)
    assert not pot_imported, "POT (over a second to import) is imported by minibatch OT only, not at start-up"
    assert {"cfm", "efm", "paired", "closed-form-teacher"} <= set(losses)
    assert {"independent", "minibatch-ot"} <= set(couplings) and {"mlp", "unet", "osdnet"} <= set(nets)
