"""Chapter 3's verdict rules on contrary data, its grids and tables, and mutation tests of its measurements.

The rules (``cosine_high_d_rule``, ``dimension_sweep_rule``, ``collapse_time_rule``,
``losses_equivalence_rule``) each give all three verdicts here; the mutation tests inject a field that
ignores the data (zero or negated), a wrong temperature, and a wrong SNR map, and show that the
measured t* or the verdicts change while the unmutated pipeline gives its expected verdicts.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from fmlib.closed_form import ClosedFormField
from fmlib.data import make_dataset
from fmlib.experiments import stochastic_target as st
from fmlib.experiments.verdicts import ClaimBroken, Verdict
from fmlib.path import snr_to_time

REPRODUCED, PARTLY, NOT = Verdict.REPRODUCED, Verdict.PARTLY, Verdict.NOT_REPRODUCED


# --- the one grading and "falls with d" ------------------------------------------------------------


def test_grading_needs_every_part_on_the_claimed_data_for_reproduced():
    assert st.grade({"a": True, "b": True}, True) is REPRODUCED
    assert st.grade({"a": True, "b": True}, False) is PARTLY
    assert st.grade({"a": True, "b": False}, True) is PARTLY
    assert st.grade({"a": False, "b": False}, True) is NOT
    with pytest.raises(ValueError, match="at least one part"):
        st.grade({}, True)


def test_falls_with_d_needs_three_dimensions_and_a_negative_rank_correlation():
    assert st.falls_with_d([1, 2, 3, 4], [4.0, 3.0, 2.0, 1.0]).holds
    assert not st.falls_with_d([1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0]).holds
    assert st.falls_with_d([1, 2, 3], [3.0, 1.0, 2.0]).rho == pytest.approx(-0.5)  # one swap still falls
    few = st.falls_with_d([1, 2, 3], [2.0, math.nan, 1.0])
    assert math.isnan(few.rho) and not few.holds and few.dimensions == 2
    with pytest.raises(ValueError, match="one length"):
        st.falls_with_d([1, 2], [1.0])


def test_the_size_of_the_falls_rule_is_stated_exactly():
    """Orderings with rho <= -0.5: 3 of 6 over three dimensions, 5 of 24 over four (a lenient rule, said so)."""
    assert st.falls_by_chance(3) == pytest.approx(0.5) and st.falls_by_chance(4) == pytest.approx(5 / 24)
    rng = np.random.default_rng(0)
    hits = np.mean([st.falls_with_d([1, 2, 3, 4], rng.permutation(4).astype(float)).holds for _ in range(1000)])
    assert hits == pytest.approx(st.falls_by_chance(4), abs=0.05)
    with pytest.raises(ValueError, match="dimensions"):
        st.falls_by_chance(2)


# --- verdict rules on contrary data ----------------------------------------------------------------


def high_d(data="cifar10", n=50_000, fraction=0.95, two_d=0.9):
    return st.HighD(data=data, n=n, fraction_at_paper_time=fraction, t_star=0.02, low=0.01, high=0.03, t90=0.08,
                    first_fraction=0.2, initial=0.2, variance=0.4, two_d_t_star=two_d, two_d_n=n,
                    two_d_fraction_half=0.3)


def test_cosine_high_d_rule_gives_each_verdict():
    assert st.cosine_high_d_rule(high_d()).verdict is REPRODUCED
    assert st.cosine_high_d_rule(high_d(data="image_patches")).verdict is PARTLY  # a stand-in
    assert st.cosine_high_d_rule(high_d(n=1000)).verdict is PARTLY  # CIFAR-10 but not its 50,000 images
    assert st.cosine_high_d_rule(high_d(two_d=0.3)).verdict is PARTLY  # 2-D aligned early: half the claim
    finding = st.cosine_high_d_rule(high_d(fraction=0.5, two_d=0.3))
    assert finding.verdict is NOT and "F(t = 0.2) >= 0.9 in high d: no" in finding.number
    # never aligned by t = 0.9999, in 2-D or in high d: the closed form did not collapse, the run stops
    with pytest.raises(ClaimBroken, match=r"\[cosine-high-d\].*2-D"):
        st.cosine_high_d_rule(high_d(two_d=math.inf))
    with pytest.raises(ClaimBroken, match=r"\[cosine-high-d\].*high-d"):
        st.cosine_high_d_rule(dataclasses.replace(high_d(fraction=0.0), t_star=math.inf))


def trend(family, t_star, width_log_snr, d=(192, 768, 3072), width_t=None):
    d = np.asarray(d, dtype=float)
    t = np.asarray(t_star, dtype=float)
    w_s = np.asarray(width_log_snr, dtype=float)
    w_t = t * w_s if width_t is None else np.asarray(width_t, dtype=float)
    return st.Trend(family, 1000, 192, d, t, w_t, w_s, st.falls_with_d(d, t), st.falls_with_d(d, w_s),
                    st.falls_with_d(d, w_t))


def test_dimension_sweep_rule_gives_each_verdict_and_grades_sharpening_in_log_snr():
    falling = ([0.3, 0.1, 0.03], [0.6, 0.4, 0.2])
    assert st.dimension_sweep_rule([trend("imagenette", *falling)]).verdict is REPRODUCED
    assert st.dimension_sweep_rule([trend("image_patches", *falling)]).verdict is PARTLY  # stand-in data
    # a transition that only moves: constant width in log s, so a width in t that falls with t*
    moving = trend("imagenette", [0.3, 0.1, 0.03], [0.35, 0.35, 0.35])
    assert moving.narrows_in_t.holds and not moving.sharpens.holds
    assert st.dimension_sweep_rule([moving]).verdict is PARTLY
    rising = trend("imagenette", [0.03, 0.1, 0.3], [0.2, 0.4, 0.6])
    assert st.dimension_sweep_rule([rising]).verdict is NOT
    # every family must show a part for it to hold
    assert st.dimension_sweep_rule([trend("imagenette", *falling), rising]).verdict is NOT
    with pytest.raises(ValueError, match="at least one"):
        st.dimension_sweep_rule([])


def test_dimension_sweep_number_says_each_family_so_a_no_in_one_family_reads_as_such():
    """The parts are conjunctions over families: the number names them ("in every family") and gives each one."""
    patches = trend("image_patches", [0.3, 0.1, 0.03], [0.6, 0.4, 0.2])
    gauss = trend("gaussian", [0.3, 0.1, 0.03], [0.2, 0.4, 0.6])  # t* falls, the width in log s rises
    number = st.dimension_sweep_rule([patches, gauss]).number
    assert "t* falls with d in every family: yes (image patches yes, gaussian yes)" in number
    assert "width in log s falls with d in every family: no (image patches yes, gaussian no)" in number
    swapped = st.dimension_sweep_rule([dataclasses.replace(patches, sharpens=gauss.sharpens),
                                       dataclasses.replace(gauss, sharpens=patches.sharpens)]).number
    assert "in every family: no (image patches no, gaussian yes)" in swapped
    alone = st.dimension_sweep_rule([patches]).number
    assert alone.endswith("(t* falls with d in every family: yes; width in log s falls with d in every family: yes)")


def test_the_two_bertrand_rules_use_the_same_words_for_the_same_evidence():
    all_hold = ([0.3, 0.1, 0.03], [0.6, 0.4, 0.2])
    none_hold = ([0.03, 0.1, 0.3], [0.2, 0.4, 0.6])
    pairs = [
        (high_d(), trend("imagenette", *all_hold)),  # every part, on the claimed data
        (high_d(data="image_patches"), trend("image_patches", *all_hold)),  # every part, on stand-in data
        (high_d(two_d=0.3), trend("imagenette", [0.3, 0.1, 0.03], [0.2, 0.4, 0.6])),  # one part of two
        (high_d(fraction=0.1, two_d=0.3), trend("imagenette", *none_hold)),  # no part
    ]
    verdicts = [(st.cosine_high_d_rule(a).verdict, st.dimension_sweep_rule([b]).verdict) for a, b in pairs]
    assert verdicts == [(REPRODUCED, REPRODUCED), (PARTLY, PARTLY), (PARTLY, PARTLY), (NOT, NOT)]


def exponents(alpha=(0.5, 0.48, 0.52), beta_n=(0.5, 0.47, 0.53), beta_d=(0.5, 0.49, 0.51)):
    return {"alpha": alpha, "beta_n": beta_n, "beta_d": beta_d}


def test_collapse_time_rule_compares_the_exponents_with_one_half_by_their_intervals():
    assert st.collapse_time_rule(exponents()).verdict is REPRODUCED
    assert st.collapse_time_rule(exponents(), family="image_patches").verdict is PARTLY
    assert st.collapse_time_rule(exponents(beta_n=(0.6, 0.56, 0.64))).verdict is PARTLY  # interval misses 1/2 +- 0.05
    assert st.collapse_time_rule(exponents(alpha=(0.5, -0.5, 1.5))).verdict is PARTLY  # too wide to tell
    far = st.collapse_time_rule(exponents(alpha=(1.0, 0.9, 1.1), beta_n=(1.0, 0.9, 1.1), beta_d=(0.2, 0.1, 0.3)))
    assert far.verdict is NOT
    nan3 = (math.nan,) * 3
    assert st.collapse_time_rule(exponents(alpha=nan3, beta_n=nan3, beta_d=nan3)).verdict is NOT
    with pytest.raises(ValueError, match="beta_d"):
        st.collapse_time_rule({"alpha": (0.5, 0.4, 0.6), "beta_n": (0.5, 0.4, 0.6)})


def test_losses_equivalence_rule_gives_each_verdict():
    d = [8, 64, 512]
    assert st.losses_equivalence_rule({"gaussian": (d, [0.4, 0.2, 0.05]), "digits": ([64], [0.08])}).verdict \
        is REPRODUCED
    assert st.losses_equivalence_rule({"gaussian": (d, [0.4, 0.2, 0.15])}).verdict is PARTLY  # falls, stays large
    assert st.losses_equivalence_rule({"gaussian": (d, [0.01, 0.03, 0.05])}).verdict is PARTLY  # small, but grows
    assert st.losses_equivalence_rule({"gaussian": (d, [0.1, 0.3, 0.5])}).verdict is NOT
    assert st.losses_equivalence_rule({"digits": ([64], [0.5])}).verdict is NOT  # one d: only the size is judged
    with pytest.raises(ValueError, match="one length"):
        st.losses_equivalence_rule({"gaussian": ([8, 64], [0.1])})


# --- measurements, tables -------------------------------------------------------------------------


def test_loss_ratio_is_v_over_one_plus_v_at_small_t_and_vanishes_after_collapse():
    gen = torch.Generator().manual_seed(0)
    data = 0.5 * make_dataset("gaussian", 20, d=256, generator=gen, device="cpu", dtype=torch.float64)
    v = float(data.var(dim=0, unbiased=False).mean())
    mean_sq = float(data.mean(dim=0).pow(2).mean())
    ratio = st.loss_ratio(ClosedFormField(data), data, [1e-4, 0.9], batch=512, generator=gen)
    # at t = 0, x1 - x0 - u* = x1 - mean: E||x1 - mean||^2 / E||x1 - x0||^2 = v / (1 + v + mean^2)
    assert ratio.per_time[0] == pytest.approx(v / (1 + v + mean_sq), rel=0.15)
    assert ratio.per_time[1] < 1e-6
    assert 0 < ratio.overall < ratio.per_time[0]
    negated = st.loss_ratio(lambda x, t: -ClosedFormField(data).velocity(x, t), data, [0.5], batch=64, generator=gen)
    assert negated.per_time[0] > 1.0  # the check sees a wrong field


def test_grid_table_shows_censored_times_as_a_dash_and_reads_a_sweep_back():
    settings = st.Settings(batch=16, grid_points=6, refine=0, n_boot=20)
    point = settings.measure("gaussian", 4, 3)
    summary = {**point.summary(), "t_star": -math.inf, "t_star_low": -math.inf, "censored": "left"}
    row = {"family": "gaussian", "d": 4, "n": 3, "batch": 16, "threshold": 0.9, "level": 0.5, "seed": 0, "stale": False,
           **summary}
    swept = pd.DataFrame([row, {**row, "seed": 1}])  # the same point swept with another seed is not this grid's
    grid = st.grid_from_sweep(swept, settings, ["gaussian"])
    assert len(grid.points) == 1
    table = grid.table()
    assert table.loc[0, "t*"] == "\N{EN DASH}" and table.loc[0, "95% low"] == "\N{EN DASH}"
    assert not table.astype(str).apply(lambda c: c.str.contains("inf")).any().any()
    assert grid.censored("left") == 1 and grid.points.loc[0, "replicates"].shape == point.critical.replicates.shape
    with pytest.raises(ValueError, match="no current cosine_point run"):
        st.grid_from_sweep(swept.assign(batch=32), settings, ["gaussian"])
    # a point measured on another time grid is another measurement: kept out, and the message says which setting
    assert len(st.grid_from_sweep(swept.assign(refine=0, s_min=1e-3), settings, ["gaussian"]).points) == 1
    mixed = pd.concat([swept.assign(refine=0), swept.assign(refine=8, d=8)], ignore_index=True)
    assert st.grid_from_sweep(mixed, settings, ["gaussian"]).points["d"].tolist() == [4]
    with pytest.raises(ValueError, match=r"differing: refine \(chapter 0, swept \[8\]\).*-p refine 6"):
        st.grid_from_sweep(swept.assign(refine=8), settings, ["gaussian"])


def test_width_in_log_snr_is_the_rise_measured_in_log_s():
    point = st.Settings(batch=64, grid_points=10, refine=4, n_boot=20).measure("gaussian", 64, 30)
    c = point.critical
    t90 = c.t_star + c.width
    assert c.width_log_snr == pytest.approx(math.log(t90 / (1 - t90)) - math.log(c.t_star / (1 - c.t_star)))


def test_training_set_spread_compares_the_pairs_interval_with_independent_sets():
    settings = st.Settings(batch=32, grid_points=8, refine=2, n_boot=50)
    spread = st.training_set_spread(settings, "gaussian", [8, 32], 60, 4, n_boot=200, progress=False)
    assert spread.set_t_stars.shape == (2, 4)
    # the K sets are independent draws: their t* differ from each other and from set 0's (a spread that measured
    # set 0 again K times would have sets_sd = 0 and pass every other line of this test)
    # (one set may hit set 0's t* exactly: F is a multiple of 1/B and may reach 1/2 on a shared grid time)
    assert np.all(spread.sets_sd > 0) and not np.all(spread.set_t_stars == spread.t_star[:, None], axis=1).any()
    assert np.all(spread.reference_low <= spread.reference) and np.all(spread.reference <= spread.reference_high)
    assert np.all(spread.single_low <= spread.single_high)
    assert spread.values()["sets_outside_pairs"] == int(spread.outside_pairs.sum())
    assert set(spread.table()["median outside pairs-only interval"]) <= {"yes", "no"}
    with pytest.raises(ValueError, match="n_sets must be at least 2"):
        st.training_set_spread(settings, "gaussian", [8], 60, 1)


# --- mutation tests --------------------------------------------------------------------------------


def test_mutation_training_sets_that_are_not_independent_are_seen(monkeypatch):
    """Mutation: every 'independent' training set is the grid's own (the seed is dropped)."""
    measure = st.Settings.measure
    monkeypatch.setattr(st.Settings, "measure", lambda self, family, d, n, *, ts=None, seed=None:
                        measure(self, family, d, n, ts=ts))
    settings = st.Settings(batch=32, grid_points=8, refine=2, n_boot=50)
    spread = st.training_set_spread(settings, "gaussian", [8], 60, 3, n_boot=100, progress=False)
    assert np.all(spread.sets_sd == 0) and np.all(spread.set_t_stars == spread.t_star[:, None])


class ZeroField(ClosedFormField):
    """Ignores the data: u = 0."""

    def velocity(self, x, t):
        return torch.zeros_like(x)


class NegatedField(ClosedFormField):
    """A sign error: -u*."""

    def velocity(self, x, t):
        return -super().velocity(x, t)


class WarmField(ClosedFormField):
    """Temperature 1/(1 - t) instead of 1/(1 - t)^2 in the posterior weights."""

    def _logit_coefficients(self, t, gap):
        return t / gap, 0.5 * t * t / gap


def pipeline():
    """The chapter's measurements at tiny sizes: t* of a few points and the four verdicts."""
    settings = st.Settings(batch=32, grid_points=8, refine=2, n_boot=50)
    patches, moons = settings.measure("image_patches", 3072, 200), settings.measure("two_moons", 2, 200)
    grid = st.measure_grid(settings, ["gaussian"], dims=[32, 128, 512], resolutions=[], sizes=[30, 100, 300],
                           max_work=math.inf, curve_n=100, progress=False)
    laws = st.fit_laws(grid, ["gaussian"], min_d=16, n_boot=200)
    trend_ = st.dimension_trend(grid, "gaussian", 100, min_d=16)
    losses = st.measure_loss_ratios(["gaussian"], dims=[8, 64, 512], resolutions=[], n=100, times=6, batch=32,
                                    progress=False)
    try:
        cosine = st.cosine_high_d_rule(st.high_d_summary(patches, moons)).verdict
    except ClaimBroken as broken:  # the closed form did not collapse by t = 0.9999: the run would stop
        cosine = broken
    verdicts = (cosine, laws.collapse_finding().verdict, st.dimension_sweep_rule([trend_]).verdict,
                losses.finding().verdict)
    return grid, moons, trend_, laws, verdicts


@pytest.fixture(scope="module")
def clean():
    return pipeline()


def test_unmutated_pipeline_gives_the_expected_verdicts(clean):
    grid, moons, trend_, _, verdicts = clean
    assert verdicts == (PARTLY, REPRODUCED, PARTLY, REPRODUCED)
    assert np.isfinite(grid.points["t_star"]).all() and moons.critical.t_star > 0.9
    assert trend_.moves.holds


@pytest.mark.parametrize("mutant", [ZeroField, NegatedField])
def test_a_field_that_ignores_the_data_censors_every_t_star_and_changes_the_verdicts(monkeypatch, clean, mutant):
    monkeypatch.setattr(st, "ClosedFormField", mutant)
    grid, _, _, _, verdicts = pipeline()
    assert (grid.points["t_star"] == math.inf).all()
    # cosine-high-d: without its collapse check the verdict stayed "partly reproduced" (2-D t* = inf > 0.5 holds)
    assert isinstance(verdicts[0], ClaimBroken) and verdicts[0].claim == "cosine-high-d"
    assert verdicts[1:3] == (NOT, NOT) and verdicts[3] in (PARTLY, NOT)
    assert verdicts != clean[4]


def test_a_wrong_temperature_moves_t_star_out_of_its_intervals(monkeypatch, clean):
    monkeypatch.setattr(st, "ClosedFormField", WarmField)
    grid, moons, _, _, _ = pipeline()
    ref = clean[0].points
    outside = (grid.points["t_star"] > ref["high"]) | (grid.points["t_star"] < ref["low"])
    assert outside.sum() >= 2, "a posterior at the wrong temperature must collapse later"
    assert (grid.points["t_star"] >= ref["t_star"]).all()
    assert moons.critical.t_star > clean[1].critical.high


def exact_law_grid() -> st.Grid:
    """t* of the law s* = sqrt(log(n) / d) with 2% noise, and pair-bootstrap-like replicates."""
    rng = np.random.default_rng(0)
    rows = []
    for d in (16, 64, 256, 1024):
        for n in (10, 100, 1000, 10000):
            s = math.sqrt(math.log(n) / d) * math.exp(rng.normal(0, 0.02))
            reps = snr_to_time(s * np.exp(rng.normal(0, 0.02, 50)))
            t = float(snr_to_time(s))
            rows.append({"family": "gaussian", "d": d, "n": n, "t_star": t, "low": float(reps.min()),
                         "high": float(reps.max()), "censored": "none", "width": 0.1, "width_log_snr": 0.3,
                         "fraction_first": 0.0, "initial_alignment": 0.0, "variance": 1.0, "seconds": 0.0,
                         "ts": np.zeros(2), "fraction": np.zeros(2), "replicates": reps})
    return st.Grid(pd.DataFrame(rows, columns=st.GRID_COLUMNS))


def test_a_wrong_snr_map_changes_the_collapse_verdict_and_the_widths(monkeypatch, clean):
    grid = exact_law_grid()
    assert st.fit_laws(grid, ["gaussian"], min_d=16, n_boot=200).collapse_finding().verdict is REPRODUCED
    monkeypatch.setattr(st, "log_snr", lambda t: np.log(np.asarray(t, dtype=np.float64)))  # forgets 1 - t
    assert st.fit_laws(grid, ["gaussian"], min_d=16, n_boot=200).collapse_finding().verdict is not REPRODUCED
    mutated_grid, _, _, mutated_laws, _ = pipeline()
    assert not np.allclose(mutated_grid.points["width_log_snr"], clean[0].points["width_log_snr"])
    assert mutated_laws.fits["gaussian", "power"].alpha < clean[3].fits["gaussian", "power"].alpha - 0.05


def _capacity_checks(values: dict, rho_t: float) -> dict[str, bool]:
    """The chapter test's range checks on the Gaussian capacity fit and the trend of t* with d."""
    return {"alpha": 0.35 < values["gaussian_capacity_alpha"] < 0.65, "c": 0.5 < values["gaussian_capacity_c"] < 2.0,
            "rmse": values["gaussian_capacity_rmse"] < 0.15, "rho_t": rho_t == pytest.approx(-1.0)}


def test_mutations_move_the_capacity_fit_out_of_the_chapter_test_s_ranges(monkeypatch, clean):
    """Unmutated, the tiny pipeline passes all four checks. A field that ignores the data censors every t*: no fit,
    all four fail. A wrong SNR map (log t for log t/(1 - t)) moves c out of (0.5, 2) on the exact-law grid (0.60 ->
    0.39); on the tiny pipeline it moves alpha by 0.1 but inside (0.35, 0.65): the alpha range cannot see it."""
    _, _, trend_, laws, _ = clean
    assert all(_capacity_checks(laws.values(), trend_.moves.rho).values())
    with monkeypatch.context() as patch:
        patch.setattr(st, "ClosedFormField", ZeroField)
        _, _, zero_trend, zero_laws, _ = pipeline()
    assert not any(_capacity_checks(zero_laws.values(), zero_trend.moves.rho).values())
    exact = st.fit_laws(exact_law_grid(), ["gaussian"], min_d=16, n_boot=200).values()
    assert 0.5 < exact["gaussian_capacity_c"] < 2.0
    monkeypatch.setattr(st, "log_snr", lambda t: np.log(np.asarray(t, dtype=np.float64)))
    assert st.fit_laws(exact_law_grid(), ["gaussian"], min_d=16, n_boot=200).values()["gaussian_capacity_c"] < 0.5


def test_the_book_says_when_a_measured_value_falls_outside_a_law_interval():
    laws = st.fit_laws(exact_law_grid(), ["gaussian"], min_d=16, n_boot=200)
    law_t = float(snr_to_time(math.sqrt(math.log(1000) / 256)))
    inside = laws.covers("gaussian", law_t, law_t - 0.01, law_t + 0.01, n=1000, d=256)
    assert inside["gaussian_power_cifar_covers"] == "inside"
    assert inside["gaussian_power_cifar_overlap"] == "overlaps"
    far = laws.covers("gaussian", 0.9, 0.85, 0.95, n=1000, d=256)
    assert set(far.values()) == {"outside", "does not overlap"}
    # the point outside, its interval reaching into the law's (Ch3 3.6: 0.016, 0.013 to 0.021 against 0.020 to 0.027)
    _, law_low, law_high = laws.fits["gaussian", "power"].predict(1000, 256)
    near = laws.covers("gaussian", law_low - 0.002, law_low - 0.005, law_low + 0.001, n=1000, d=256)
    assert near["gaussian_power_cifar_covers"] == "outside" and near["gaussian_power_cifar_overlap"] == "overlaps"
    above = laws.covers("gaussian", law_high + 0.002, law_high + 0.001, law_high + 0.005, n=1000, d=256)
    assert above["gaussian_power_cifar_overlap"] == "does not overlap"
    values = laws.values()
    assert values["gaussian_exponents_containing_half"] == "3 of 3"
    assert values["gaussian_capacity_reference"].startswith("the interval of c excludes 1")  # c = 1/sqrt(2) here
    fit = laws.fits["gaussian", "capacity"]  # Exercise 3.1 quotes the fitted law's t* at n = 1000, d = 64 and 4096
    for d in (64, 4096):
        s_star = fit.c * (1000 ** (2 / d) - 1) ** fit.alpha
        key = f"gaussian_capacity_t_n1000_d{d}"
        assert values[key] == pytest.approx(s_star / (1 + s_star), rel=1e-9)
        assert values[f"{key}_low"] <= values[key] <= values[f"{key}_high"]


def test_high_d_summary_reports_the_two_d_initial_alignment():
    def point(cosines: np.ndarray) -> st.PointMeasurement:
        ts = np.array([0.001, 0.2, 0.5, 0.9999])
        critical = st.CriticalTime(0.9, 0.8, 0.95, np.zeros(3), 0.95, 0.05, 0.5)
        return st.PointMeasurement("two_moons", 2, 10, st.CosineCurves(ts=ts, cosines=cosines), critical, 1.0, 0.0, 0.0)

    two_d = point(np.array([[0.95, 0.95, 0.95, 0.1], [0.95, 0.1, 0.1, 0.1], [0.95, 0.1, 0.1, 0.1], [1.0] * 4]))
    values = st.high_d_summary(point(np.ones((4, 4))), two_d).values()
    assert values["moons_first_fraction"] == 0.75  # F at the first time, not at t = 0.5 (0.25) or at the last (1)
    assert values["moons_fraction_half"] == 0.25
