"""Tests of the chapter-level part of fmlib.experiments.concentration: the checks, the verdict rule, the tables.

The verdict rule is fed contrary numbers giving each of the three verdicts. The checks are run on a
tiny grid (ten small data sets, a few hundred draws: about a second) unmutated, where the exact law
holds and the verdict is PARTLY, and with plausible bugs injected into the weights or the bound,
each of which must stop the run (ClaimBroken naming ``concentration``) or change the verdict.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import ndtr

from fmlib.closed_form import ClosedFormField
from fmlib.experiments import concentration as conc
from fmlib.experiments.concentration import (
    DASH,
    ConcentrationEvidence,
    ConcentrationSpec,
    check_bound,
    check_exact_law,
    concentration_finding,
    concentration_rule,
    gauss_summary,
    measure_grid,
    plane_summary,
    slack_summary,
)
from fmlib.experiments.verdicts import ClaimBroken, Verdict
from fmlib.path import time_to_snr

TINY = {
    "n_draws": 300, "n_times": 8, "t_min": 0.02, "t_max": 0.999, "n_separations": 2, "delta_min": 0.5,
    "delta_max": 4.0, "n_simplex": 4, "dim": 4, "n_points": [2, 5], "dims": [2, 8], "n_dims_points": 3,
    "delta_sweep": 1.0, "n_gauss": 6, "gauss_dims": [2, 8], "n_digits": 20, "eta": 0.1, "level": 0.01,
    "alpha": 0.001, "seed": 0, "device": "cpu",
}


def tiny_spec(**changes: object) -> ConcentrationSpec:
    return ConcentrationSpec(**{**TINY, **changes})


@pytest.fixture(scope="module")
def measured() -> conc.ConcentrationGrid:
    return measure_grid(tiny_spec(), progress=False)


def verdict_of(spec: ConcentrationSpec) -> Verdict:
    """Measure, check the exact law (may raise ClaimBroken), check the bound, and apply the rule."""
    grid = measure_grid(spec, progress=False)
    return concentration_finding(check_exact_law(grid), check_bound(grid), spec).verdict


# --- the rule on contrary numbers ------------------------------------------------------------------

HOLDS = ConcentrationEvidence(n_bound_tests=100, n_violations=0, n_law_tests=200, law_min_p_adjusted=0.4,
                              limit_bound=1e-30, alpha=0.001, level=0.01)


def test_rule_gives_partly_when_our_reconstruction_holds_but_the_paper_could_not_be_read():
    finding = concentration_rule(HOLDS)
    assert finding.claim == "concentration" and finding.verdict is Verdict.PARTLY
    assert "0 of 100" in finding.number and "not compared" in finding.number


def test_rule_gives_reproduced_only_once_the_papers_statement_is_compared():
    assert concentration_rule(HOLDS, statement_read=True).verdict is Verdict.REPRODUCED
    assert not conc.PAPER_STATEMENT_READ  # the notes say the statement could not be read


@pytest.mark.parametrize("change", [
    {"n_violations": 1},  # the bound exceeded beyond the margin once
    {"n_bound_tests": 0},  # the bound is nowhere below 1: nothing tested
    {"law_min_p_adjusted": 0.0009},  # the exact law rejected
    {"limit_bound": 0.5},  # the bound does not vanish as t -> 1
])
def test_rule_gives_not_reproduced_on_contrary_numbers(change):
    for statement_read in (False, True):
        assert concentration_rule(replace(HOLDS, **change), statement_read=statement_read).verdict is \
            Verdict.NOT_REPRODUCED


# --- parameters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "name"), [
    ({"t_min": 0.5, "t_max": 0.4}, "t_min"),
    ({"delta_min": 5.0, "delta_max": 1.0}, "delta_min"),
    ({"n_dims_points": 4, "dims": [2, 8]}, "n_dims_points"),
    ({"n_times": 1}, "n_times"),
    ({"level": 1.5}, "level"),
    ({"gauss_dims": []}, "gauss_dims"),
])
def test_spec_rejects_bad_parameters_naming_them(change, name):
    with pytest.raises(ValueError, match=name):
        tiny_spec(**change)


def test_spec_reads_the_notebook_namespace():
    spec = ConcentrationSpec.from_namespace({**TINY, "unrelated": 1})
    assert spec.n_points == (2, 5) and spec.times[0] == 0.0 and len(spec.times) == TINY["n_times"]
    assert math.isclose(spec.times[-1], TINY["t_max"]) and math.isclose(spec.times[1], TINY["t_min"])


# --- the unmutated checks ---------------------------------------------------------------------------


def test_unmutated_tiny_grid_passes_the_law_and_gives_partly(measured):
    law, bound = check_exact_law(measured), check_bound(measured)
    assert law.pathwise_spread < conc.PATHWISE_TOLERANCE and law.min_p_adjusted >= TINY["alpha"]
    assert law.n_tests == int(np.isfinite(np.concatenate([
        measured.laws["ks_p"], measured.laws["variance_p"], measured.binomial_pvalues])).sum()
        + len(measured.laws) + law.n_simplex_tests)
    assert bound.n_tests > 0 and bound.n_violations == 0 and bound.limit_bound < TINY["level"]
    assert concentration_finding(law, bound, measured.spec).verdict is Verdict.PARTLY
    assert set(measured.rows["block"]) == set(conc.FAMILIES)


def test_tables_are_readable_and_never_show_inf_or_nan(measured):
    law = check_exact_law(measured)
    slack = slack_summary(measured)
    tables = [law.table, conc.dims_summary(measured).table, slack.simplices, slack.uneven,
              gauss_summary(measured).table]
    for table in tables:
        assert isinstance(table.index, pd.RangeIndex)  # row labels are columns, kept in the CSV
        text = table.to_string().lower()
        assert "nan" not in text and "inf" not in text, text
        assert not any("_" in str(column) for column in table.columns), table.columns  # readable headers
    assert list(law.table["data"]) == [conc.FAMILIES[b] for b in measured.laws["block"].unique()]


def test_censored_crossings_show_a_dash_with_finite_records_elsewhere():
    grid = measure_grid(tiny_spec(t_max=0.3, n_times=4), progress=False)  # the weights cannot concentrate by 0.3
    gauss, slack = gauss_summary(grid), slack_summary(grid)
    assert np.isinf(gauss.fresh["t measured"]).all() and (gauss.table["t* measured"] == DASH).all()
    assert (slack.uneven["t* measured"] == DASH).all()
    records = {**gauss.records(), **slack.records(), **plane_summary(grid).records()}
    assert records["gauss_t_low_d_text"] == DASH and records["digits_t_measured_text"] == DASH
    assert records["plane_n_censored"] == TINY["n_separations"]
    for table in (gauss.table, slack.simplices, slack.uneven):
        assert "inf" not in table.to_string().lower() and "nan" not in table.to_string().lower()


# --- mutations: each must stop the run or change the verdict -------------------------------------------


def _logits(field: ClosedFormField, x: torch.Tensor, t: float, power: float) -> torch.Tensor:
    """-||x - t y_i||^2 / (2 (1 - t)^power), unnormalised."""
    return -torch.cdist(x, t * field.data) ** 2 / (2 * (1 - t) ** power)


def test_mutation_wrong_temperature_stops_the_run(monkeypatch):
    """1/(1 - t) instead of 1/(1 - t)^2 in the weights: the log-ratio no longer follows its exact law."""
    monkeypatch.setattr(ClosedFormField, "log_weights",
                        lambda self, x, t: torch.log_softmax(_logits(self, x, t, 1.0), dim=1))
    with pytest.raises(ClaimBroken, match=r"\[concentration\]"):
        verdict_of(tiny_spec())


def test_mutation_monte_carlo_ignoring_the_field_stops_the_run(monkeypatch):
    """Uniform weights whatever x and t (the field ignored): w changes with t."""
    monkeypatch.setattr(ClosedFormField, "log_weights",
                        lambda self, x, t: torch.full((x.shape[0], self.n), -math.log(self.n), dtype=x.dtype))
    with pytest.raises(ClaimBroken, match=r"\[concentration\].*changed with t"):
        verdict_of(tiny_spec())


class _OneNoise:
    """torch as fmlib.experiments.concentration sees it, except that randn repeats one draw of z in every row."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def randn(rows, *shape, **kwargs):
        return torch.randn(1, *shape, **kwargs).expand(rows, *shape)


def test_mutation_monte_carlo_reusing_one_draw_stops_the_run(monkeypatch):
    """Every draw on a path with the same z: the pathwise identity still holds, but not the law of w."""
    monkeypatch.setattr(conc, "torch", _OneNoise())
    with pytest.raises(ClaimBroken, match=r"\[concentration\] the Monte Carlo disagrees with the exact law"):
        verdict_of(tiny_spec())


def test_mutation_unnormalised_weights_changes_the_verdict(monkeypatch):
    """Logits without the log-sum-exp: ratios (and the law) unchanged, but lambda_k < 1 - eta always."""
    monkeypatch.setattr(ClosedFormField, "log_weights", lambda self, x, t: _logits(self, x, t, 2.0))
    assert verdict_of(tiny_spec()) is Verdict.NOT_REPRODUCED


def _summary_checks(grid: conc.ConcentrationGrid) -> dict[str, bool]:
    """The chapter test's assertions on the numbers of the figures and tables (sections (c) to (g))."""
    r = {**plane_summary(grid).records(), **slack_summary(grid).records(), **gauss_summary(grid).records()}
    return {
        "slack at t* >= 1": r["slack_at_tstar_max"] >= 1.0,
        "0 <= plane shift < 0.05": 0.0 <= r["plane_shift_min"] <= r["plane_shift_max"] < 0.05,
        "digits: t bound > t union": r["digits_t_bound"] > r["digits_t_union"],
        "digits: t union >= t measured - 0.05": r["digits_t_union"] >= r["digits_t_measured"] - 0.05,
        "embedded t range < 0.05": r["embedded_t_range"] < 0.05,
        "gauss t high d < low d": r["gauss_t_high_d"] < r["gauss_t_low_d"],
    }


def test_mutations_break_the_chapter_test_s_summary_checks(measured, monkeypatch):
    """Each summary check of the chapter test fails under a plausible bug (all hold unmutated).

    The measured times come from the event 'some point outweighs y_k', an ordering of the logits that no temperature
    error changes; a sign error in the weights (the farthest point weighs most) censors them. The bound's times and
    slack are theory: a bound evaluated at twice the separation (a distance where its half is meant) falls below
    the exact probability."""
    assert all(_summary_checks(measured).values()), _summary_checks(measured)
    real_bound, real_time = conc.concentration_bound, conc.concentration_time
    with monkeypatch.context() as patch:
        patch.setattr(conc, "concentration_bound", lambda t, sep, n, **k: real_bound(t, 2 * np.asarray(sep), n, **k))
        patch.setattr(conc, "concentration_time", lambda sep, n, **k: real_time(2 * np.asarray(sep), n, **k))
        doubled = _summary_checks(measured)
    assert not any(doubled[k] for k in ("slack at t* >= 1", "0 <= plane shift < 0.05", "digits: t bound > t union"))
    real_weights = ClosedFormField.log_weights
    monkeypatch.setattr(ClosedFormField, "log_weights",
                        lambda self, x, t: real_weights(self, x, t).neg().log_softmax(dim=1))
    flipped = _summary_checks(measure_grid(tiny_spec(), progress=False))
    assert not any(flipped[k] for k in ("digits: t union >= t measured - 0.05", "embedded t range < 0.05",
                                        "gauss t high d < low d"))


def _flipped_bound(sign_drift: float, sign_log: float):
    """The bounds of fmlib.theory with the signs of their two terms as given; (-1, +1) is the true bound.

    At t = 0 (u = 0) every per-pair probability is 1, as in fmlib.theory, whatever the signs: the
    mutants differ from the true bound by the sign only, not by their value at t = 0.
    """

    def bound(t, separation, n_points, *, eps=1.0):
        u = time_to_snr(np.asarray(t, dtype=np.float64)) * separation
        with np.errstate(divide="ignore", invalid="ignore"):
            arg = sign_log * np.log(1 / eps) / np.where(u > 0, u, 1.0) + sign_drift * u / 2
        pair = np.where(u > 0, ndtr(arg), 1.0)
        return np.minimum(1.0, (np.asarray(n_points) - 1.0) * pair)

    def eta_bound(t, separation, n_points, *, eta):
        eps = eta / ((np.asarray(n_points) - 1.0) * (1 - eta))
        return bound(t, separation, n_points, eps=np.minimum(eps, 1.0))

    return bound, eta_bound


@pytest.mark.parametrize(("sign_drift", "sign_log"), [(+1.0, +1.0), (-1.0, -1.0)],
                         ids=["+s delta / 2", "-log(1/eps)"])
def test_mutation_sign_error_in_the_bound_changes_the_verdict(monkeypatch, sign_drift, sign_log):
    """Phi(log(1/eps)/(s delta) + s delta/2): never vanishes; Phi(-log(1/eps)/(s delta) - ...): exceeded."""
    bound, eta_bound = _flipped_bound(sign_drift, sign_log)
    monkeypatch.setattr(conc, "concentration_bound", bound)
    monkeypatch.setattr(conc, "not_concentrated_bound", eta_bound)
    assert verdict_of(tiny_spec()) is Verdict.NOT_REPRODUCED


@pytest.mark.parametrize("n_points", [2, 5])
def test_unmutated_flipped_bound_helper_is_the_true_bound(n_points):
    """The mutation helper with the right signs gives fmlib.theory's bounds, t = 0 included: the mutants
    differ by a sign only (an earlier helper gave 0.5 instead of 1 at t = 0 for N = 2, which alone
    changed the verdict)."""
    bound, eta_bound = _flipped_bound(-1.0, +1.0)
    t = np.array([0.0, 0.1, 0.5, 0.9])
    np.testing.assert_allclose(bound(t, 0.7, n_points), conc.concentration_bound(t, 0.7, n_points), rtol=1e-12)
    np.testing.assert_allclose(eta_bound(t, 0.7, n_points, eta=0.1),
                               conc.not_concentrated_bound(t, 0.7, n_points, eta=0.1), rtol=1e-12)


def test_unmutated_flipped_bound_helper_keeps_the_verdict(monkeypatch):
    """Control for the sign mutations: the same patching with the right signs leaves the verdict PARTLY."""
    bound, eta_bound = _flipped_bound(-1.0, +1.0)
    monkeypatch.setattr(conc, "concentration_bound", bound)
    monkeypatch.setattr(conc, "not_concentrated_bound", eta_bound)
    assert verdict_of(tiny_spec()) is Verdict.PARTLY


# --- section (g): which curves fall on the simplex's, and the dashes the prose counts ---------------------


def test_simplex_gap_is_one_on_the_simplex_curve_and_sees_a_shift():
    spec = tiny_spec(n_times=60, t_min=0.01, t_max=0.9999)
    exact = conc.simplex_outweigh_probability(spec.times, 1.0, 100)
    assert conc.simplex_gap(spec.times, exact, 1.0, 100) == pytest.approx(1.0, rel=0.03)
    # a curve drawn against s x median with a median twice the true separation lies twice as far right
    assert conc.simplex_gap(spec.times, exact, 2.0, 100) == pytest.approx(2.0, rel=0.03)
    # a curve that concentrates later only at small probabilities: the farthest level decides
    late_tail = np.where(exact < 0.3, conc.simplex_outweigh_probability(spec.times, 0.4, 100), exact)
    assert conc.simplex_gap(spec.times, late_tail, 1.0, 100) > 2.0
    assert conc.simplex_gap(spec.times[:10], exact[:10], 1.0, 100) == math.inf  # never falls through 0.1: censored


def test_gauss_summary_names_the_dimensions_on_and_off_the_simplex_curve(measured):
    gauss = gauss_summary(measured)
    fresh = gauss.fresh.assign(d=[2, 8], **{"simplex gap": [3.0, 1.05]})
    records = conc.GaussSummary(fresh, gauss.embedded, gauss.simplex_t, gauss.table).records()
    assert records["gauss_on_simplex_dims"] == "8" and records["gauss_off_simplex_dims"] == "2"
    assert records["gauss_gap_low_d"] == 3.0 and records["gauss_gap_tolerance_percent"] == 10
    fresh = fresh.assign(**{"simplex gap": [1 / 1.2, math.inf]})  # to the left, or censored: off as well
    assert conc.GaussSummary(fresh, gauss.embedded, gauss.simplex_t, gauss.table).on_simplex() == ([], [2, 8])


def test_dash_count_counts_only_censored_times():
    table = pd.DataFrame({"t* measured": ["0.5", DASH, DASH], "ratio": [DASH, "1", "2"]})
    assert conc.dash_count(table) == "2" and conc.dash_count(table.iloc[:2]) == "one"
    assert conc.dash_count(table.iloc[:1], table.iloc[:1]) == "none"


def test_spaced_labels_lower_a_tick_label_that_would_touch_its_neighbour():
    from fmlib.experiments.concentration_figures import spaced_labels

    assert spaced_labels([2, 8, 32, 128, 512, 2048, 4096]) == ["2", "8", "32", "128", "512", "2048", "\n4096"]
    assert spaced_labels([512, 1024, 2048, 4096]) == ["512", "\n1024", "2048", "\n4096"]
    assert spaced_labels([2, 8, 32]) == ["2", "8", "32"]


def test_figures_label_every_tick_with_a_plain_number(measured):
    """Fig 2.5's separations read 2, 3, 4 (not 2 x 10^0); Fig 2.6 labels every d it marks, the last one too."""
    import matplotlib.pyplot as plt

    from fmlib.experiments import concentration_figures as figs

    heat = figs.figure_heat(measured, plane_summary(measured))
    heat.canvas.draw()
    ax = heat.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels() + ax.get_yticklabels(minor=True) if t.get_text()]
    assert labels and not any("times" in label or "^" in label for label in labels), labels
    crowded = measure_grid(tiny_spec(dims=[2, 16]), progress=False)  # d = 8 and 16 side by side on the top right
    gauss = figs.figure_gauss(crowded, gauss_summary(crowded))
    gauss.canvas.draw()
    for ax in gauss.axes[:2]:
        assert all(t.get_text().strip() for t in ax.get_xticklabels()), [t.get_text() for t in ax.get_xticklabels()]
    plt.close("all")
