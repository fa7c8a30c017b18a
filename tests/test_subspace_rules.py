"""Tests of what the teacher-student rule of fmlib.experiments.subspace says: why a verdict is what it is.

The rule's verdicts are tested on contrary data in tests/test_subspace_experiments.py; here the
number and the rule text are shown to state the reason of a "partly" (a certified bound too loose to
inform), and the student's relative error to tell a student that learned the teacher from one that
did not (the zero field, an injected bug, scores exactly 1).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from fmlib.experiments.subspace import TeacherStudent, teacher_student, teacher_student_rule
from fmlib.experiments.verdicts import Verdict
from fmlib.ode import time_grid


def _result(certified, estimated, distance=(1.0, 1.0)) -> TeacherStudent:
    return TeacherStudent(times=np.linspace(0, 1, 3), error=np.array([2.0, 1.0, 0.0]),
                          distance=np.asarray(distance, float), bound_certified=np.asarray(certified, float),
                          bound_estimated=np.asarray(estimated, float), lipschitz_certified=5.0,
                          lipschitz_estimated=1.0, speed=np.array([4.0, 4.0, 0.0]))


def test_the_number_says_why_the_certified_bound_gives_only_partly():
    partly = teacher_student_rule(_result([80.0, 90.0], [3.0, 5.0]))
    assert partly.verdict is Verdict.PARTLY
    assert "holds on all 2 trajectories (required: a theorem)" in partly.number
    assert "median bound / distance 85 (> 10: too loose to inform)" in partly.number
    assert "(not certified): holds on 100%, median bound / distance 4" in partly.number
    assert "reproduced if the certified bound's is <= 10" in partly.rule
    full = teacher_student_rule(_result([3.0, 5.0], [3.0, 5.0]))
    assert full.verdict is Verdict.REPRODUCED and "(<= 10: informative)" in full.number


def test_relative_error_in_the_number_and_its_absence():
    assert "0.38 x the teacher's speed" in teacher_student_rule(_result([3.0, 5.0], [3.0, 5.0])).number  # (2/4+1/4)/2
    unmeasured = dataclasses.replace(_result([3.0, 5.0], [3.0, 5.0]), speed=None)
    assert np.isnan(unmeasured.relative_error()) and "speed" not in teacher_student_rule(unmeasured).number


class _Linear(nn.Module):
    """v(x, t) = A x."""

    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.a = nn.Parameter(a)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x @ self.a.T


class _Teacher:
    def __init__(self, a: torch.Tensor) -> None:
        self.a = a

    def velocity(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return x @ self.a.T

    def posterior_mean(self, x: torch.Tensor, t: float) -> torch.Tensor:
        return x + (1 - t) * self.velocity(x, t)


def test_relative_error_of_a_perfect_student_and_mutation_a_student_that_learned_nothing():
    generator = torch.Generator().manual_seed(2)
    a = torch.randn(4, 4, generator=generator, dtype=torch.float64)
    x0 = torch.randn(16, 4, generator=generator, dtype=torch.float64)
    lipschitz = float(torch.linalg.matrix_norm(a, 2))
    perfect = teacher_student(_Teacher(a), _Linear(a.clone()), x0, time_grid(20), lipschitz)
    assert perfect.relative_error() < 1e-12 and perfect.speed is not None and perfect.speed[-1] == 0.0
    zero = teacher_student(_Teacher(a), _Linear(torch.zeros_like(a)), x0, time_grid(20), lipschitz)
    assert abs(zero.relative_error() - 1.0) < 1e-12  # the zero field's error is the teacher's speed
    assert "1.00 x the teacher's speed" in teacher_student_rule(zero).number


def test_projection_onto_the_span_and_the_table_of_distances():
    from fmlib.experiments.subspace import generalisation_table, make_setup, project_onto_span

    setup = make_setup("subspace", 64, 32, d=16, k=2, seed=0)
    inside = setup.held_out[:16]
    assert torch.allclose(project_onto_span(inside, setup.basis), inside, atol=1e-12)  # already in the span
    generator = torch.Generator().manual_seed(3)
    off = inside + 2.0 * torch.randn(inside.shape, generator=generator, dtype=torch.float64)
    projected = project_onto_span(off, setup.basis)
    residual = projected - projected @ setup.basis @ setup.basis.T
    assert float(residual.abs().max()) < 1e-12
    table, found = generalisation_table({"as sampled": off, "projected": projected, "held-out points (one half)":
                                         setup.held_out[:16]}, setup)
    assert list(table["samples"]) == ["as sampled", "projected", "held-out points (one half)"]
    # the off-span part is what makes samples look far: projected, they are much nearer the training points
    assert found["as sampled"].distances.ratio > 2 * found["projected"].distances.ratio
    with pytest.raises(ValueError, match="samples must be"):
        project_onto_span(off[:, :8], setup.basis)


def test_zero_field_floor_contrary_data():
    tight = _result([3.0, 5.0], [3.0, 5.0])
    assert teacher_student_rule(tight).verdict is Verdict.REPRODUCED
    # the same tight bound for a student whose error equals the teacher's speed: void
    unlearned = dataclasses.replace(tight, error=np.array([4.0, 4.0, 0.0]))
    void = teacher_student_rule(unlearned)
    assert void.verdict is Verdict.NOT_REPRODUCED and "does not beat the zero field" in void.number
    assert "(<= 10: informative)" in void.number  # the bound's own slack is still stated as it is
    assert "void (not reproduced) if the student does not beat the zero field" in void.rule
    loose = dataclasses.replace(unlearned, bound_certified=np.array([80.0, 90.0]), bound_estimated=np.array([3.0, 5.0]))
    assert teacher_student_rule(loose).verdict is Verdict.NOT_REPRODUCED  # void: no partly either


def test_zero_field_floor_mutation_a_student_that_never_trained():
    """Mutation: a student frozen at zero has a tight bound (small L) but imitates nothing: not reproduced."""
    generator = torch.Generator().manual_seed(4)
    a = 0.1 * torch.randn(4, 4, generator=generator, dtype=torch.float64)
    x0 = torch.randn(16, 4, generator=generator, dtype=torch.float64)
    lipschitz = float(torch.linalg.matrix_norm(a, 2))
    near = teacher_student(_Teacher(a), _Linear(a + 0.01), x0, time_grid(20), lipschitz)
    assert near.relative_error() < 1.0 and teacher_student_rule(near).verdict is Verdict.REPRODUCED
    frozen = teacher_student(_Teacher(a), _Linear(torch.zeros_like(a)), x0, time_grid(20), lipschitz)
    slack = np.median(frozen.bound_certified / frozen.distance)
    assert slack <= 10.0  # the bound alone would call it informative
    assert teacher_student_rule(frozen).verdict is Verdict.NOT_REPRODUCED


class _ConstantCoefficient:
    """An off-span field :math:`v = b\\, x / (1 - t)` with a constant b, measured off the span of e_1."""

    def __init__(self, b):
        self.b = b

    def velocity(self, x, t):
        return self.b * x / (1.0 - t)

    def posterior_mean(self, x, t):
        return x + (1.0 - t) * self.velocity(x, t)


def test_off_span_at_one_is_small_for_an_unconverged_coefficient_so_the_rule_also_reads_b():
    """Chapter 5, section (2): on the refined grid any b < 0 leaves little off-span part at t = 1.

    b = -1/2 (half way to the optimum -1) passes the off-span criterion of ``off-subspace-decay``;
    only the coefficient criterion max |b + 1| keeps the verdict at partly. A zero coefficient (no
    decay learned, the mutation) keeps its whole off-span part.
    """
    from fmlib.experiments.subspace import off_subspace_decay_rule
    from fmlib.metrics import off_span_trajectories

    x0 = torch.randn(16, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    basis = torch.zeros(4, 1, dtype=torch.float64)
    basis[0, 0] = 1.0
    grid = time_grid(50, spacing="quadratic")
    half_way = float(np.median(off_span_trajectories(_ConstantCoefficient(-0.5), x0, grid, basis).sample_ratio))
    assert half_way < 0.05  # Euler on the grid: about 0.016 (b = -0.63 gives about 0.004)
    assert off_subspace_decay_rule(half_way, 0.5, 0.5).verdict is Verdict.PARTLY
    assert off_subspace_decay_rule(half_way, 0.5, 0.0).verdict is Verdict.REPRODUCED
    none = float(np.median(off_span_trajectories(_ConstantCoefficient(0.0), x0, grid, basis).sample_ratio))
    assert none == pytest.approx(1.0)


def test_teacher_student_figure_names_its_quantity():
    """Fig 5.3 left: the y axis says what the curves are (velocity norms) and their unit; both panels are drawn."""
    import matplotlib.pyplot as plt

    from fmlib.experiments.subspace import ERROR_AXIS_LABEL, figure_teacher_student

    fig = figure_teacher_student(_result([2.0, 3.0], [1.5, 2.0], distance=(1.0, 0.5)))
    left, right = fig.axes
    assert left.get_ylabel() == ERROR_AXIS_LABEL and "velocity norm" in ERROR_AXIS_LABEL
    assert "per unit t" in ERROR_AXIS_LABEL
    assert len(left.get_lines()) == 2 and len(right.get_lines()) == 3
    assert "Gronwall" in right.get_ylabel()
    plt.close(fig)
