"""Tests of fmlib.experiments.subspace: off-span measurements, teacher-student bound, and the verdict rules.

Each rule is run on contrary data giving each of its outcomes; each identity check is shown to stop
the run under an injected bug (a negated field, a solver that ignores the field, a student error
left out of the bound).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from fmlib.closed_form import ClosedFormField
from fmlib.data import make_dataset
from fmlib.experiments.subspace import (
    ModuleField,
    TeacherStudent,
    coefficient_curve,
    jacobian_lipschitz_estimate,
    make_setup,
    mlp_config,
    mlp_lipschitz,
    off_subspace_decay_rule,
    osdnet_config,
    osdnet_rule,
    solver_laws,
    span_ode_law_rule,
    teacher_student,
    teacher_student_rule,
    train_grid,
)
from fmlib.experiments.verdicts import ClaimBroken, Verdict
from fmlib.generalisation import summarise
from fmlib.metrics import off_span_trajectories
from fmlib.ode import SOLVERS, time_grid
from fmlib.osdnet import span_basis
from fmlib.theory import gronwall_endpoint_bound


@pytest.fixture(scope="module")
def problem():
    generator = torch.Generator().manual_seed(0)
    y = make_dataset("subspace", 30, d=10, k=3, generator=generator, device="cpu", dtype=torch.float64)
    x0 = torch.randn(24, 10, generator=generator, dtype=torch.float64)
    return y, span_basis(y), x0


class Negated:
    """Mutation: the field with the wrong sign."""

    def __init__(self, field):
        self.field = field

    def velocity(self, x, t):
        return -self.field.velocity(x, t)

    def posterior_mean(self, x, t):
        return x + (1 - t) * self.velocity(x, t)


class Frozen:
    """Mutation: a solver that ignores the field (the state never moves)."""

    def velocity(self, x, t):
        return torch.zeros_like(x)

    def posterior_mean(self, x, t):
        return x


# --- the exact law of u* ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_optimal_field_follows_the_off_span_law(problem, method):
    y, basis, x0 = problem
    law = off_span_trajectories(ClosedFormField(y), x0, time_grid(30, spacing="quadratic"), basis, method=method)
    assert law.law_deviation < 1e-12
    assert np.allclose(law.path_ratio, 1 - law.times, atol=1e-12)
    assert np.allclose(law.velocity_ratio[:-1], 1.0, atol=1e-9) and np.isnan(law.velocity_ratio[-1])
    assert law.sample_ratio.max() < 1e-12
    finding = span_ode_law_rule({method: law.law_deviation}, {method: float(law.sample_ratio.max())})
    assert finding.verdict is Verdict.REPRODUCED and finding.claim == "span-ode-law"


@pytest.mark.parametrize("mutant", [Negated, Frozen])
def test_span_law_check_stops_a_broken_field(problem, mutant):
    y, basis, x0 = problem
    field = mutant(ClosedFormField(y)) if mutant is Negated else mutant()
    ts = time_grid(30, t_end=0.9) if mutant is Negated else time_grid(30)
    law = off_span_trajectories(field, x0, ts, basis)
    with pytest.raises(ClaimBroken, match="span-ode-law"):
        span_ode_law_rule({"euler": law.law_deviation}, {"euler": float(law.sample_ratio.max())})


def test_span_law_endpoint_check_stops_a_grid_that_ends_short_of_one(problem):
    """Mutation: the grid stops at t = 0.9 (e.g. to avoid the 1/(1 - t) of the last step). The law itself still holds
    to round-off, so only the second check (the off-span part left at the end) can stop the run, and it does."""
    y, basis, x0 = problem
    law = off_span_trajectories(ClosedFormField(y), x0, time_grid(30, t_end=0.9), basis)
    assert law.law_deviation < 1e-12 and abs(float(law.sample_ratio.max()) - 0.1) < 1e-12
    with pytest.raises(ClaimBroken, match="keep an off-span part"):
        span_ode_law_rule({"euler": law.law_deviation}, {"euler": float(law.sample_ratio.max())})


class NegatedClosedForm(ClosedFormField):
    """Mutation: u* with the wrong sign, (x - D(x, t)) / (1 - t)."""

    def velocity(self, x, t):
        return -super().velocity(x, t)

    def posterior_mean(self, x, t):
        return x + (1 - t) * self.velocity(x, t)


def chapter_law_rule(laws):
    """The chapter's call of the rule on the output of :func:`solver_laws`."""
    return span_ode_law_rule({f"{c}/{m}": laws[c, m].law_deviation for c, m in laws},
                             {f"{c}/{m}": float(laws[c, m].sample_ratio.max()) for c, m in laws})


def test_solver_laws_mutation_a_sign_error_in_the_closed_form_stops_the_run(problem, monkeypatch):
    """The chapter's path (solver_laws -> rule): a sign error in u* moves law_worst (the chapter test's < 1e-10) to
    order 1 for every solver, and the rule stops the run."""
    import fmlib.experiments.subspace as sub

    y, _, x0 = problem
    ts = time_grid(8, spacing="quadratic")
    table, laws = solver_laws({"toy": (y, 3, x0)}, ts)
    assert table["max deviation from (1-t) P x(0)"].max() < 1e-10
    chapter_law_rule(laws)
    monkeypatch.setattr(sub, "ClosedFormField", NegatedClosedForm)
    table, laws = solver_laws({"toy": (y, 3, x0)}, ts)
    assert table["max deviation from (1-t) P x(0)"].min() > 1.0
    with pytest.raises(ClaimBroken, match="deviates from"):
        chapter_law_rule(laws)


def test_solver_laws_mutation_data_rounded_to_float32_stop_the_run(problem):
    """The tolerance 1e-10 is tight enough to see training points rounded to float32 (the chapter's setup keeps them in
    float64): rounded points leave their span by ~1e-8, and so do the samples."""
    y, _, x0 = problem
    table, laws = solver_laws({"rounded": (y.float(), 3, x0)}, time_grid(8, spacing="quadratic"))
    assert table["max deviation from (1-t) P x(0)"].min() > 1e-9
    with pytest.raises(ClaimBroken, match="span-ode-law"):
        chapter_law_rule(laws)


def test_span_law_is_blind_to_the_weights(problem):
    """What the chapter says the check does NOT test: any denoiser in the span (here the plain data mean,
    weights ignored) keeps the law exactly, so a weight bug cannot be caught by it."""
    y, basis, x0 = problem

    class MeanDenoiser:
        def velocity(self, x, t):
            return (y.mean(0) - x) / (1 - t)

        def posterior_mean(self, x, t):
            return y.mean(0).expand_as(x)

    law = off_span_trajectories(MeanDenoiser(), x0, time_grid(30), basis)
    assert span_ode_law_rule({"euler": law.law_deviation}, {"euler": float(law.sample_ratio.max())}).verdict \
        is Verdict.REPRODUCED


def test_off_span_refuses_a_basis_of_another_dimension(problem):
    y, basis, x0 = problem
    with pytest.raises(ValueError, match="must match"):
        off_span_trajectories(ClosedFormField(y), x0[:, :5], time_grid(3, t_end=0.5), basis)


# --- verdict rules on contrary data ----------------------------------------------------------------

@pytest.mark.parametrize("osd, mlp, coef, verdict", [
    (0.01, 0.5, 0.05, Verdict.REPRODUCED),
    (0.01, 0.015, 0.05, Verdict.PARTLY),   # the MLP is as clean: the split is not what decays
    (0.01, 0.5, 0.6, Verdict.PARTLY),      # a(t) far from -1/(1 - t)
    (0.3, 0.5, 0.05, Verdict.NOT_REPRODUCED),
])
def test_off_subspace_decay_rule(osd, mlp, coef, verdict):
    assert off_subspace_decay_rule(osd, mlp, coef).verdict is verdict


def test_off_subspace_decay_rule_refuses_nan():
    with pytest.raises(ValueError, match="finite"):
        off_subspace_decay_rule(float("nan"), 0.5, 0.1)


def found(copies: bool, general: bool, scale: float = 1.0):
    """Generalisation measured on samples that copy the training points or are fresh points of the law
    (``scale`` > 1: fresh points blown up, off the data law)."""
    generator = torch.Generator().manual_seed(0)
    points = make_dataset("subspace", 90, d=10, k=3, generator=generator, device="cpu", dtype=torch.float64)
    train, held_out = points[:30], points[30:60]
    near = train[:20] + 1e-4 * torch.randn(20, 10, generator=generator, dtype=torch.float64)
    far = scale * points[60:80]
    samples = torch.cat([near if copies else far, far if general else near])
    return summarise(samples, train, held_out)


@pytest.mark.parametrize("osd, mlp, gen, verdict", [
    (0.01, 0.5, (False, True), Verdict.REPRODUCED),
    (0.01, 0.5, (True, False), Verdict.PARTLY),   # clean but copying
    (0.01, 0.5, (True, True), Verdict.PARTLY),    # clean, half the samples copy
    (0.5, 0.4, (False, True), Verdict.PARTLY),    # generalising but off the span
    (0.01, 0.005, (False, True), Verdict.PARTLY),  # generalising, small, but the MLP is cleaner
    (0.5, 0.4, (True, False), Verdict.NOT_REPRODUCED),
])
def test_osdnet_rule(osd, mlp, gen, verdict):
    assert osdnet_rule(osd, mlp, found(*gen)).verdict is verdict


def test_osdnet_rule_mutation_samples_off_the_data_law_do_not_generalise():
    """Mutation: an in-span network that blows its samples up (x 10) neither copies nor generalises."""
    blown = found(False, True, scale=10.0)
    assert blown.copy_fraction == 0.0 and blown.distances.ratio > 2.0
    assert osdnet_rule(0.01, 0.5, blown).verdict is Verdict.PARTLY
    assert osdnet_rule(0.5, 0.4, blown).verdict is Verdict.NOT_REPRODUCED


def test_osdnet_rule_mutation_samples_huddled_near_the_training_points_do_not_generalise():
    """Mutation: a network whose samples are each training point moved 30% of the way to its nearest neighbour (not
    copies by the 1/3 criterion, but 3x closer to the training set than held-out points): the lower bound 0.5 of the
    distance ratio refuses them."""
    generator = torch.Generator().manual_seed(0)
    points = make_dataset("subspace", 60, d=10, k=3, generator=generator, device="cpu", dtype=torch.float64)
    train, held_out = points[:30], points[30:]
    gaps = torch.cdist(train, train).fill_diagonal_(float("inf"))
    huddled = summarise(0.7 * train + 0.3 * train[gaps.argmin(1)], train, held_out)
    assert huddled.copy_fraction == 0.0 and huddled.distances.ratio < 0.5
    assert osdnet_rule(0.01, 0.5, huddled).verdict is Verdict.PARTLY


def bound_result(distance, certified, estimated) -> TeacherStudent:
    return TeacherStudent(times=np.linspace(0, 1, 3), error=np.zeros(3), distance=np.asarray(distance, float),
                          bound_certified=np.asarray(certified, float), bound_estimated=np.asarray(estimated, float),
                          lipschitz_certified=5.0, lipschitz_estimated=1.0)


@pytest.mark.parametrize("certified, estimated, verdict", [
    ([2.0, 3.0], [1.5, 2.0], Verdict.REPRODUCED),
    ([500.0, 900.0], [1.5, 2.0], Verdict.PARTLY),
    ([500.0, 900.0], [0.5, 2.0], Verdict.NOT_REPRODUCED),  # the estimated bound fails on half
    ([500.0, 900.0], [400.0, 800.0], Verdict.NOT_REPRODUCED),
])
def test_teacher_student_rule(certified, estimated, verdict):
    assert teacher_student_rule(bound_result([1.0, 1.0], certified, estimated)).verdict is verdict


def test_teacher_student_rule_stops_when_the_certified_bound_fails():
    with pytest.raises(ClaimBroken, match="teacher-student-bound"):
        teacher_student_rule(bound_result([1.0, 1.0], [2.0, 0.5], [2.0, 2.0]))


# --- teacher and student ---------------------------------------------------------------------------

class Linear(nn.Module):
    """v(x, t) = A x + c (no dependence on t)."""

    def __init__(self, a: torch.Tensor, c: torch.Tensor):
        super().__init__()
        self.a, self.c = nn.Parameter(a), nn.Parameter(c)

    def forward(self, x, t):
        return x @ self.a.T + self.c


class LinearTeacher:
    def __init__(self, a):
        self.a = a

    def velocity(self, x, t):
        return x @ self.a.T

    def posterior_mean(self, x, t):
        return x + (1 - t) * self.velocity(x, t)


def test_teacher_student_bound_on_linear_fields_and_the_ignored_error_mutation():
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(4, 4, generator=generator, dtype=torch.float64)
    c = 0.1 * torch.randn(4, generator=generator, dtype=torch.float64)
    student = Linear(a, c)
    lipschitz = float(torch.linalg.matrix_norm(a, 2))
    x0 = torch.randn(32, 4, generator=generator, dtype=torch.float64)
    result = teacher_student(LinearTeacher(a), student, x0, time_grid(40), lipschitz)
    assert np.allclose(result.error[:-1], float(c.norm()))
    assert abs(result.lipschitz_estimated - lipschitz) < 1e-9  # the Jacobian is A everywhere
    assert np.all(result.distance <= result.bound_certified) and np.all(result.distance > 0)
    assert teacher_student_rule(result).verdict is Verdict.REPRODUCED
    ignored = dataclasses.replace(result, bound_certified=gronwall_endpoint_bound(
        result.times, np.zeros((result.times.size, 32)), lipschitz))
    with pytest.raises(ClaimBroken, match="teacher-student-bound"):
        teacher_student_rule(ignored)


@pytest.mark.parametrize("factor", [0.0, 0.25])
def test_teacher_student_stops_when_l_is_not_an_upper_bound(factor):
    """Mutation: a 'Lipschitz constant' below the student's true one (0, or a quarter of ||A||), through
    :func:`teacher_student`, the chapter's path: some trajectory exceeds the bound and the run stops."""
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(4, 4, generator=generator, dtype=torch.float64)
    c = 0.1 * torch.randn(4, generator=generator, dtype=torch.float64)
    x0 = torch.randn(32, 4, generator=generator, dtype=torch.float64)
    lipschitz = factor * float(torch.linalg.matrix_norm(a, 2))
    result = teacher_student(LinearTeacher(a), Linear(a, c), x0, time_grid(40), lipschitz)
    with pytest.raises(ClaimBroken, match="teacher-student-bound"):
        teacher_student_rule(result)


class TimeMLP(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(d + 1, 32), nn.SiLU(), nn.Linear(32, 32), nn.SiLU(), nn.Linear(32, d))

    def forward(self, x, t):
        return self.layers(torch.cat([x, t.unsqueeze(1)], dim=1))


def test_certified_mlp_lipschitz_dominates_the_jacobian_estimate():
    torch.manual_seed(0)
    net = TimeMLP(3).double()
    points = 3 * torch.randn(4, 64, 3, dtype=torch.float64)
    times = np.array([0.0, 0.3, 0.6, 0.9])
    estimate = jacobian_lipschitz_estimate(lambda x, t: net(x, torch.full((x.shape[0],), t, dtype=x.dtype)),
                                           points, times)
    assert 0 < estimate <= mlp_lipschitz(net, 3, "silu")
    with pytest.raises(ValueError, match="first nn"):
        mlp_lipschitz(net, 40, "silu")


def tight_silu_student(d: int = 2) -> nn.Module:
    """A one-hidden-layer VelocityMLP v = W2 silu(W1 x) with W1 = [I, 0] and W2 = I: its certified constant
    ||W2|| * 1.1 * ||W1|| is within 0.02% of its Jacobian's norm where the pre-activations sit at silu's steepest
    point (x = 2.3994, slope 1.0998)."""
    from fmlib.nets import VelocityMLP

    net = VelocityMLP(d, width=d, depth=1, activation="silu", time_features=0).double()
    with torch.no_grad():
        first, last = net.layers[0], net.layers[2]
        first.weight.zero_()
        first.weight[:, :d] = torch.eye(d, dtype=torch.float64)
        last.weight.copy_(torch.eye(d, dtype=torch.float64))
        first.bias.zero_()
        last.bias.zero_()
    return net


def test_mutation_silu_taken_as_1_lipschitz_breaks_the_certified_constant(monkeypatch):
    """The chapter asserts L_cert >= L_est. Mutation: SiLU's constant taken as ReLU's 1 (SiLU's slope reaches 1.0998):
    on a student where the bound is tight the 'certified' constant falls below the Jacobian estimate."""
    import fmlib.experiments.subspace as sub

    net = tight_silu_student()
    points = torch.full((2, 8, 2), 2.3994, dtype=torch.float64) + 0.01 * torch.randn(2, 8, 2, dtype=torch.float64)
    estimate = jacobian_lipschitz_estimate(ModuleField(net).velocity, points, np.array([0.0, 0.5]))
    assert 1.09 < estimate <= mlp_lipschitz(net, 2, "silu") < 1.1 + 1e-12
    monkeypatch.setitem(sub.ACTIVATION_LIPSCHITZ, "silu", 1.0)
    assert mlp_lipschitz(net, 2, "silu") < estimate


def test_mutation_a_student_that_ignores_x_has_no_jacobian_estimate():
    """The chapter asserts L_est > 0. Mutation: a student that ignores x (the weights of its first layer on x zero):
    the estimate is 0 and the check fails."""
    net = tight_silu_student()
    points = torch.randn(2, 8, 2, dtype=torch.float64)
    assert jacobian_lipschitz_estimate(ModuleField(net).velocity, points, np.array([0.0, 0.5])) > 0.4
    with torch.no_grad():
        net.layers[0].weight[:, :2] = 0.0
    assert jacobian_lipschitz_estimate(ModuleField(net).velocity, points, np.array([0.0, 0.5])) == 0.0


def test_mutation_wrong_sign_of_a_in_osdnet_changes_the_decay_verdict(tmp_path, monkeypatch):
    """A sign error in OSDNet's forward (+a(t) P x written as -a(t) P x): training absorbs it (b learns +1, so the
    samples still leave no off-span part), and only the coefficient the chapter reads tells it: not reproduced."""
    import fmlib.osdnet
    from fmlib.experiments.subspace import ModuleField
    from fmlib.train import TrainConfig, train_or_load

    def negated(self, x, t):
        u = self.basis.to(x.dtype)
        scaled = -self.off_span_rate(t).to(x.dtype) * x
        return self.inner(x @ u, t) @ u.T + scaled - (scaled @ u) @ u.T

    monkeypatch.setattr(fmlib.osdnet.OSDNet, "forward", negated)
    setup = make_setup("subspace", 32, 8, d=6, k=2, seed=0)
    config = TrainConfig(net="osdnet", net_options={"basis": setup.basis.tolist(), "width": 8, "knots": 5},
                         steps=300, batch_size=64, lr=1e-2)
    model = train_or_load(config, setup.train, store=tmp_path, device="cpu", progress=False)
    curve = coefficient_curve(model, np.linspace(0.0, 0.75, 4))
    off = off_span_trajectories(ModuleField(model.ema), torch.randn(16, 6), time_grid(20), setup.basis)
    ratio = float(np.median(off.sample_ratio))
    assert ratio < 0.05, "the samples decay: the off-span ratio alone cannot see the bug"
    finding = off_subspace_decay_rule(ratio, 0.5, float(np.abs(curve + 1).max()))
    assert finding.verdict is not Verdict.REPRODUCED


# --- set-up, laws of every solver, the training grid ------------------------------------------------

def test_make_setup_checks_k_before_any_work_and_measures_the_digits():
    with pytest.raises(ValueError, match="k=9 exceeds d=8"):
        make_setup("subspace", 20, 5, d=8, k=9, seed=0)
    with pytest.raises(ValueError, match="numerical rank 4"):
        make_setup("subspace", 4, 5, d=8, k=6, seed=0)  # 4 points span at most 4 dimensions
    setup = make_setup("subspace", 20, 5, d=8, k=3, seed=0)
    assert setup.basis.shape == (8, 3) and setup.rank == 3 and setup.held_out.shape == (5, 8)
    digits = make_setup("digits", 300, 0, d=64, k=0, seed=0)
    assert digits.centred_rank < digits.rank <= 64 and digits.basis.shape == (64, digits.rank)


def test_solver_laws_and_train_grid(problem, tmp_path, monkeypatch):
    monkeypatch.setenv("FMLIB_RESULTS", str(tmp_path))
    y, basis, x0 = problem
    assert basis.shape == (10, 3)
    table, laws = solver_laws({"toy": (y, 3, x0)}, time_grid(8, spacing="quadratic"))
    assert set(laws) == {("toy", m) for m in SOLVERS}
    assert list(table["solver"]) == sorted(SOLVERS) and table["max deviation from (1-t) P x(0)"].max() < 1e-12
    setup = make_setup("subspace", 24, 8, d=6, k=2, seed=0)
    plan = [("MLP", 6, mlp_config(3, width=8, depth=1, lr=1e-3, seed=0)),
            ("OSDNet", 6, osdnet_config(setup, 3, width=8, lr=1e-3, seed=0))]
    grid, runs = train_grid({6: setup}, {6: torch.randn(10, 6)}, time_grid(4), plan, device="cpu", progress=False)
    assert list(grid["net"]) == ["MLP", "OSDNet"] and set(runs) == {("MLP", 6, 3), ("OSDNet", 6, 3)}
    assert coefficient_curve(runs["OSDNet", 6, 3].model, np.linspace(0, 0.9, 5)).shape == (5,)
