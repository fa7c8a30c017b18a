"""Chapter 7's reconciliation of its collapse verdict with chapter 3's, and its two-halves reading."""

from __future__ import annotations

import math

import pytest

from fmlib.experiments import generalising_fields as gf
from fmlib.experiments.verdicts import Verdict
from fmlib.phase_times import collapse_snr

GRID = [(32, 100), (32, 1000), (128, 100), (128, 1000)]


def _points(drift: dict[int, float]) -> list[gf.PredictionPoint]:
    """Points whose measured s is the formula's times drift[n]."""
    out = []
    for d, n in GRID:
        predicted = collapse_snr(n, d, 1.0)
        ratio = drift[n]
        out.append(gf.PredictionPoint("gaussian", d, n, 1.0, ratio * predicted, predicted, ratio, ratio * 0.97,
                                      ratio * 1.03, 0, 3))
    return out


def test_collapse_shape_of_the_formula_itself():
    shape = gf.collapse_shape(_points({100: 1.0, 1000: 1.0}))
    assert shape.measured == pytest.approx(shape.formula)
    # at finite d the formula sqrt(n^(2/d) - 1) is not sqrt(log(n)/d): its own exponent of log n exceeds 1/2
    assert 0.52 < shape.formula[0] < 0.6 and 0.5 < shape.formula[1] < 0.6
    values = shape.values()
    assert values["shape_beta_n_excess"] == "+0.00"
    assert values["shape_ratio_by_n"] == "1.00 at n = 100, 1.00 at n = 1000"


def test_a_small_drift_with_n_passes_the_level_and_moves_the_exponent():
    """Mutation: measured times 10% low at n = 100 and 4% low at n = 1000; level test passes, beta_n moves."""
    points = _points({100: 0.90, 1000: 0.96})
    assert gf.prediction_rule("collapse-prediction", points, "Gaussian").verdict is Verdict.REPRODUCED
    shape = gf.collapse_shape(points)
    expected = math.log(0.96 / 0.90) / math.log(math.log(1000) / math.log(100))
    assert shape.measured[0] - shape.formula[0] == pytest.approx(expected)
    assert shape.measured[1] == pytest.approx(shape.formula[1])
    values = shape.values()
    assert values["shape_beta_n_excess"] == f"{expected:+.2f}"
    assert values["shape_ratio_by_n"] == "0.90 at n = 100, 0.96 at n = 1000"


def test_collapse_shape_needs_two_n_and_two_d():
    one = gf.collapse_shape(_points({100: 1.0, 1000: 1.0})[:1])
    assert all(math.isnan(v) for v in (*one.measured, *one.formula))
    assert one.values()["shape_beta_n_measured"].startswith("not fitted")
    diagonal = [p for p in _points({100: 1.0, 1000: 1.0}) if (p.d, p.n) in {(32, 100), (128, 1000)}]
    diagonal.append(gf.PredictionPoint("gaussian", 32, 100, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0, 3))
    assert math.isnan(gf.collapse_shape(diagonal).measured[0])  # n and d move together: not separable
    censored = gf.PredictionPoint("gaussian", 64, 10, 1.0, math.nan, 1.0, math.nan, math.nan, math.nan, 3, 3)
    assert gf.collapse_shape([*_points({100: 1.0, 1000: 1.0}), censored]).ratio_by_n.keys() == {100, 1000}


def test_rule_texts_say_what_each_collapse_verdict_tests():
    finding = gf.prediction_rule("collapse-prediction", _points({100: 1.0, 1000: 1.0}), "Gaussian")
    assert finding.rule.startswith("the formula with no fitted constant")
    from fmlib.experiments.stochastic_target import collapse_time_rule

    ch3 = collapse_time_rule({"alpha": (0.5, 0.48, 0.52), "beta_n": (0.5, 0.48, 0.52), "beta_d": (0.5, 0.48, 0.52)})
    assert ch3.rule.startswith("exponents fitted freely, no constant fixed")


def test_two_halves_of_copying_models_is_below_one_and_of_unrelated_samples_about_one():
    """Why the exact field scores well below 1: copies of one noise's nearest point in each half are related."""
    import torch

    from fmlib.generalisation import two_halves_agreement
    from fmlib.neighbours import nearest_index

    generator = torch.Generator().manual_seed(0)
    half_a, half_b = torch.randn(2, 300, 4, generator=generator, dtype=torch.float64)
    noise = torch.randn(256, 4, generator=generator, dtype=torch.float64)
    copies_a, copies_b = half_a[nearest_index(noise, half_a)[0]], half_b[nearest_index(noise, half_b)[0]]
    assert not torch.isclose(copies_a, copies_b).all(dim=1).any()  # never the same sample
    copying = two_halves_agreement(copies_a, copies_b).relative
    assert 0.05 < copying < 0.8, copying
    # mutation: a model B that ignores the noise (its copies in random order) gives unrelated samples
    shuffled = copies_b[torch.randperm(256, generator=generator)]
    unrelated = two_halves_agreement(copies_a, shuffled).relative
    assert 0.85 < unrelated < 1.15, unrelated
    assert two_halves_agreement(copies_a, copies_a.clone()).relative == 0.0


def test_agreement_figure_shows_every_value():
    """Mutation: the former axis, cut at -0.5, hid r^2 = -22.9; now the lowest value is on the plot."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    ts = np.array([0.1, 0.5, 0.9])
    low = gf.Agreement(ts, ["exact", "linear"], np.array([[0.9, 0.5, -22.9], [0.9, 0.8, 0.4]]),
                       np.array([[-5.0, 0.2, 0.9], [0.5, 0.7, 0.9]]))
    ax = gf.figure_agreement(low).axes[0]
    assert ax.get_yscale() == "symlog"
    bottom, top = ax.get_ylim()
    assert bottom <= -22.9 and top >= 0.9
    assert min(t for t in ax.get_yticks() if bottom <= t <= top) <= -20
    high = gf.Agreement(ts, ["linear"], np.array([[0.9, 0.8, 0.4]]), np.array([[0.5, 0.7, -0.3]]))
    ax = gf.figure_agreement(high).axes[0]
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] <= -0.3
