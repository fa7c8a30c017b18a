"""What chapter 7 computes: splits, sample statistics, predictions, and the verdict rules on contrary data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import fmlib.experiments.generalising_fields as gf
from fmlib.experiments.generalising_fields import (
    FieldSpec,
    PredictionPoint,
    SampleStats,
    class_posterior_curve,
    collapse_points,
    compare_fields,
    creation_rule,
    image_split,
    prediction_rule,
    speciation_points,
    two_classes,
)
from fmlib.experiments.verdicts import ClaimBroken, Verdict, require
from fmlib.phase_times import covariance_top_eigenvalue, ou_collapse_time


def stats(label="field", copies=0, batch=64, nn_train=4.0, low=None, high=None):
    low = copies / batch if low is None else low
    high = copies / batch if high is None else high
    return SampleStats(label, copies, batch, copies / batch, low, high, nn_train, nn_train, 1.0, math.nan)


REFERENCE = stats("held-out images", nn_train=3.0)
EXACT = stats("exact", copies=64, low=0.95, high=1.0, nn_train=0.0)


@pytest.mark.parametrize(
    "field_stats, exact, verdict",
    [
        (stats(copies=0, high=0.06, nn_train=4.0), EXACT, Verdict.REPRODUCED),
        (stats(copies=0, high=0.06, nn_train=7.0), EXACT, Verdict.PARTLY),  # new but far from the data
        (stats(copies=20, low=0.2, high=0.45), EXACT, Verdict.PARTLY),  # fewer copies, still many
        (stats(copies=0, high=0.06), stats("exact", copies=10, low=0.08, high=0.3), Verdict.PARTLY),  # exact no copier
        (stats(copies=60, low=0.85, high=0.99), EXACT, Verdict.NOT_REPRODUCED),
    ],
)
def test_creation_rule_gives_each_verdict(field_stats, exact, verdict):
    finding = creation_rule("patch-creates", field_stats, exact, REFERENCE)
    assert finding.verdict is verdict
    assert finding.claim == "patch-creates" and "copies" in finding.number


def test_creation_number_states_each_condition_and_which_fails():
    """The default run's case: every copy condition holds and the distance misses 2x held-out by about 1%."""
    field_stats = stats("patch 5x5", copies=0, batch=48, high=0.074, nn_train=5.16)
    exact = stats("exact", copies=48, batch=48, low=0.926, high=1.0, nn_train=0.0)
    finding = creation_rule("patch-creates", field_stats, exact, stats("held-out images", nn_train=2.55))
    assert finding.verdict is Verdict.PARTLY
    assert "upper 95% limit 0.074 <= 0.1: holds" in finding.number
    assert "lower limit 0.926 >= 0.5: holds" in finding.number
    assert "5.16 > 2 x held-out images' 2.55 = 5.10: fails by 1%" in finding.number
    assert "(0.074 < 0.926): holds" in finding.number


@pytest.mark.parametrize(
    "field_stats, exact, fragments",
    [
        (stats(copies=0, high=0.06, nn_train=4.0), EXACT,
         ["0.060 <= 0.1: holds", "4.00 <= 2 x held-out images' 3.00 = 6.00: holds"]),
        (stats(copies=0, high=0.06, nn_train=9.0), EXACT, ["9.00 > 2 x held-out images' 3.00 = 6.00: fails by 50%"]),
        (stats(copies=20, low=0.2, high=0.45), EXACT, ["0.450 > 0.1: fails", "(0.450 < 0.950): holds"]),
        (stats(copies=0, high=0.06), stats("exact", copies=10, low=0.08, high=0.3), ["0.080 < 0.5: fails"]),
        (stats(copies=60, low=0.85, high=0.99), EXACT, ["0.990 > 0.1: fails", "(0.990 >= 0.950): fails"]),
        (stats(copies=0, high=0.06, nn_train=6.03), EXACT, ["6.03 > 2 x held-out images' 3.00 = 6.00: fails by 0.5%"]),
    ],
)
def test_creation_number_on_contrary_data(field_stats, exact, fragments):
    """Each condition's wording follows its own outcome (a number that always said "holds" would fail here)."""
    number = creation_rule("patch-creates", field_stats, exact, REFERENCE).number
    for fragment in fragments:
        assert fragment in number, (fragment, number)


def point(ratio, low=None, high=None, censored=0):
    low = ratio if low is None else low
    high = ratio if high is None else high
    return PredictionPoint("gaussian", 32, 100, 1.0, ratio, 1.0, ratio, low, high, censored, 3)


@pytest.mark.parametrize(
    "points, verdict",
    [
        ([point(0.94, 0.9, 0.98), point(1.3, 1.2, 1.4)], Verdict.REPRODUCED),
        ([point(0.7, 0.65, 0.75), point(1.0, 0.9, 1.1)], Verdict.PARTLY),
        ([point(0.3, 0.2, 0.4), point(1.0, 0.9, 1.1)], Verdict.NOT_REPRODUCED),
        ([point(1.0, 0.9, 1.1), point(math.nan, censored=3)], Verdict.NOT_REPRODUCED),
        ([point(0.9)], Verdict.REPRODUCED),  # one resample: the ratio itself stands for its interval
    ],
)
def test_prediction_rule_gives_each_verdict(points, verdict):
    assert prediction_rule("collapse-prediction", points, "Gaussian").verdict is verdict


def test_prediction_rule_needs_points():
    with pytest.raises(ValueError, match="at least one point"):
        prediction_rule("collapse-prediction", [], "Gaussian")


def test_point_aggregation_and_censoring():
    p = gf._point("gaussian", 8, 100, [1.0, 1.0, 1.0], [0.5, 0.5, math.inf], [1.0, 0.5, 1.0])
    assert p.censored == 1 and p.resamples == 3
    assert p.ratio == pytest.approx(math.sqrt(2.0))  # ratios 1 and 2
    assert p.low < p.ratio < p.high
    assert p.t_measured == pytest.approx(0.5) and p.s_predicted == pytest.approx(math.sqrt(0.5))
    empty = gf._point("gaussian", 8, 100, [1.0], [math.inf], [1.0])
    assert math.isnan(empty.ratio) and empty.censored == 1


def test_image_split_is_disjoint_and_checks_its_input():
    split = image_split("digits", 30, seed=1, device="cpu")
    assert split.half_a.shape == split.half_b.shape == split.heldout.shape == (30, 64)
    together = torch.cat([split.half_a, split.half_b, split.heldout])
    assert torch.unique(together, dim=0).shape[0] == 90
    assert split.image_shape == (1, 8, 8)
    assert image_split("image_patches", 5, resolution=4, device="cpu").image_shape == (3, 4, 4)
    with pytest.raises(ValueError, match="3 n_half"):
        image_split("digits", 600)
    with pytest.raises(ValueError, match="cifar10_dir"):
        image_split("cifar10", 5)
    with pytest.raises(ValueError, match=r"odd"):
        FieldSpec("patch", patch=4)
    with pytest.raises(ValueError, match="sigma"):
        FieldSpec("smoothed", sigma=-1.0)


@pytest.fixture(scope="module")
def comparison():
    split = image_split("digits", 40, seed=0, device="cpu", dtype=torch.float64)
    specs = [FieldSpec("exact"), FieldSpec("smoothed", sigma=0.0), FieldSpec("smoothed", sigma=1.0),
             FieldSpec("patch", patch=3), FieldSpec("patch", patch=15, equivariant=False), FieldSpec("linear")]
    return compare_fields(split, specs, batch=16, steps=16, seed=0)


def test_exact_field_copies_and_the_reference_looks_new(comparison):
    exact, reference = comparison.by_label("exact"), comparison.reference
    assert exact.copy_fraction == 1.0 and exact.nn_train < 1e-3 and exact.ratio < 1e-3
    assert reference.copy_fraction <= 0.2 and 0.5 <= reference.ratio <= 2.0


def test_mutation_the_copy_and_reference_checks_fail_under_plausible_bugs(monkeypatch):
    """The chapter test's exact_copy == 1, exact_ratio < 1e-3 and heldout_copy <= 0.2, 0.5 <= heldout_ratio <= 2.
    Mutations: a solver that ignores the field (the samples stay noise: no copies, ratio ~1); a held-out set that is
    the training half (a split that is not disjoint: every held-out image 'copies', ratio 0)."""
    import dataclasses

    from fmlib.ode import integrate as real

    split = image_split("digits", 40, seed=0, device="cpu", dtype=torch.float64)
    reference = gf.heldout_reference(split)
    assert reference.copy_fraction <= 0.2 and 0.5 <= reference.ratio <= 2.0
    leaked = gf.heldout_reference(dataclasses.replace(split, heldout=split.half_a))
    assert leaked.copy_fraction > 0.2 and leaked.ratio < 0.5

    class Still:
        def velocity(self, x, t):
            return torch.zeros_like(x)

        def posterior_mean(self, x, t):
            return x

    monkeypatch.setattr(gf, "integrate", lambda field, x, ts, **options: real(Still(), x, ts, **options))
    frozen = compare_fields(split, [FieldSpec("exact")], batch=16, steps=16, seed=0).by_label("exact")
    assert frozen.copy_fraction < 1.0 and frozen.ratio > 1e-3


def test_mutation_no_smoothing_is_the_exact_field_and_copies(comparison):
    """sigma = 0: the same samples as the exact field, and the rule cannot say the field creates."""
    no_smoothing = comparison.by_label("smoothed, sigma 0")
    assert torch.allclose(comparison.samples["smoothed, sigma 0"], comparison.samples["exact"])
    exact = comparison.by_label("exact")
    assert creation_rule("smoothing-creates", no_smoothing, exact, comparison.reference).verdict is (
        Verdict.NOT_REPRODUCED)
    smoothed = comparison.by_label("smoothed, sigma 1")
    assert smoothed.copy_fraction < exact.copy_fraction
    assert creation_rule("smoothing-creates", smoothed, exact, comparison.reference).verdict is not (
        Verdict.NOT_REPRODUCED)


def test_mutation_whole_image_patch_memorises_again(comparison):
    """The whole-image patch at the same position is the exact closed form: the rule flips to not reproduced."""
    exact, reference = comparison.by_label("exact"), comparison.reference
    whole = comparison.by_label("patch 15x15 (same position)")
    assert torch.allclose(comparison.samples["patch 15x15 (same position)"], comparison.samples["exact"], atol=1e-8)
    assert creation_rule("patch-creates", whole, exact, reference).verdict is Verdict.NOT_REPRODUCED
    small = comparison.by_label("patch 3x3")
    assert creation_rule("patch-creates", small, exact, reference).verdict is not Verdict.NOT_REPRODUCED


def test_two_halves_score():
    """The exact field gives each half's own training images; the linear field nearly the same sample."""
    split = image_split("digits", 400, seed=0, device="cpu", dtype=torch.float64)
    result = compare_fields(split, [FieldSpec("exact"), FieldSpec("linear")], batch=16, steps=16)
    exact, linear = result.by_label("exact"), result.by_label("linear")
    assert exact.two_halves > 0.5, exact
    assert linear.two_halves < 0.3, linear


def test_two_classes_and_class_posterior():
    data, labels = two_classes(400, 8, 4.0, generator=torch.Generator().manual_seed(0))
    assert covariance_top_eigenvalue(data) == pytest.approx(17.0, rel=0.15)
    assert labels.sum() == 200
    curve = class_posterior_curve(data, labels, [0.0, 0.3, 0.99], batch=64, generator=torch.Generator().manual_seed(1))
    assert curve[0] == pytest.approx(0.5, abs=1e-12)  # t = 0: uniform weights over balanced classes
    assert curve[1] > 0.75 and curve[2] > 0.999


def test_speciation_prediction_and_its_mutation(monkeypatch):
    """Well-separated classes follow s_S = 1/sqrt(Lambda - 1); a map that forgets the square root must fail the rule."""
    result = speciation_points([0.5, 6.0], d=32, n=200, resamples=3, batch=64, grid_points=20)
    assert result.curves.shape == (2, 20) and result.top_eigenvalues[1] == pytest.approx(37.0, rel=0.2)
    assert [p.family for p in result.inside()] == ["two classes, m = 6"]  # m = 0.5: collapse comes first
    assert 0.8 <= result.inside()[0].ratio <= 1.25
    assert prediction_rule("speciation-prediction", result.inside(), "two classes").verdict is Verdict.REPRODUCED
    monkeypatch.setattr(gf, "speciation_snr", lambda lam: 1.0 / (lam - 1.0))
    wrong = speciation_points([6.0], d=32, n=200, resamples=3, batch=64, grid_points=20).points
    assert prediction_rule("speciation-prediction", wrong, "two classes").verdict is Verdict.NOT_REPRODUCED


def signal_only_collapse_snr(n, d, sigma):
    """A wrong SNR map: our t taken as OU's signal coefficient e^-tau (the noise coefficients not matched)."""
    t = math.exp(-ou_collapse_time(n, d, sigma))
    return t / (1 - t)


def test_collapse_prediction_and_a_wrong_snr_map(monkeypatch):
    """Gaussian data, d = 8: measured s* near sqrt(n^(2/d) - 1)/sigma; the signal-only map must fail the rule."""
    grid = [("gaussian", 8, 100)]
    points = collapse_points(grid, resamples=3, batch=64, device="cpu")
    assert points[0].censored == 0 and 0.8 <= points[0].ratio <= 1.25
    assert prediction_rule("collapse-prediction", points, "Gaussian").verdict is Verdict.REPRODUCED
    monkeypatch.setattr(gf, "collapse_snr", signal_only_collapse_snr)
    wrong = collapse_points(grid, resamples=3, batch=64, device="cpu")
    assert prediction_rule("collapse-prediction", wrong, "Gaussian").verdict is Verdict.NOT_REPRODUCED


def test_identities_checked_at_run_time_and_their_mutations(monkeypatch):
    split = image_split("digits", 20, seed=2, device="cpu", dtype=torch.float64)
    assert gf.whole_patch_gap(split) < 1e-10
    assert gf.check_patch_sizes(split, [3, 15]) == [3, 15]
    with pytest.raises(ValueError, match="larger than the image"):
        gf.check_patch_sizes(split, [3, 17])
    assert gf.snr_map_gap() < 1e-9
    import fmlib.phase_times as phase_times

    monkeypatch.setattr(phase_times, "ou_to_flow_time", lambda tau: math.exp(-tau))  # signal-only map
    assert gf.snr_map_gap() > 1e-2


@pytest.mark.parametrize("mutant", [
    lambda real: lambda data, shape, size, **options: real(data, shape, size - 2, **options),  # off by one pixel
    lambda real: lambda data, shape, size, **options: real(data, shape, size, equivariant=True),  # any position
])
def test_mutation_the_whole_image_patch_identity_stops_the_run(monkeypatch, mutant):
    """The chapter's check require(whole_patch_gap < 1e-4, "closed-form"): a whole-image patch one pixel short on each
    side (2 (w - 1) - 1 for 2 w - 1), or a patch field that forgets its position (equivariant), is not the closed form:
    the gap is order 0.1 and the run stops."""
    split = image_split("digits", 20, seed=2, device="cpu", dtype=torch.float64)
    require(gf.whole_patch_gap(split) < 1e-4, "closed-form", "the unmutated whole-image patch field")
    monkeypatch.setattr(gf, "PatchField", mutant(gf.PatchField))
    with pytest.raises(ClaimBroken, match="closed-form"):
        require(gf.whole_patch_gap(split) < 1e-4, "closed-form", "the whole-image patch field is not the closed form")


def test_tables_and_figures(comparison):
    table = gf.stats_table(comparison.stats)
    assert list(table["field"]) == [s.label for s in comparison.stats]
    fig = gf.figure_samples(comparison, (1, 8, 8), columns=4)
    assert len(fig.axes) == 4 * (len(comparison.samples) + len(comparison.samples_b))
    sweep = [(1.0, comparison.by_label("smoothed, sigma 1")), (0.0, comparison.by_label("exact"))]
    gf.figure_sweep(sweep, [(3, comparison.by_label("patch 3x3"))], comparison.reference)
    points = [point(0.9), point(1.1)]
    result = gf.Speciation([point(1.0)], np.array([0.1, 0.5]), np.array([[0.5, 0.9]]), np.array([5.0]))
    assert len(gf.points_table(points)) == 2
    gf.figure_prediction(points, result)


def test_sample_grid_has_no_frames_in_the_book_style(comparison):
    """Fig 7.1's image cells: no spine, no tick (the book's style alone leaves an L of two spines), labels kept."""
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    from fmlib.plots import use_style

    with mpl.rc_context():
        use_style()
        fig = gf.figure_samples(comparison, (1, 8, 8), columns=3)
    for ax in fig.axes:
        assert not any(spine.get_visible() for spine in ax.spines.values())
        assert not ax.get_xticks().size and not ax.get_yticks().size
    assert fig.axes[0].get_ylabel() == "exact (A)" and fig.axes[3].get_ylabel() == "exact (B)"
    plt.close(fig)


def test_where_copying_stops():
    sweep = [(0.0, stats(copies=64)), (0.5, stats(copies=30)), (1.0, stats(copies=2)), (2.0, stats(copies=0))]
    assert gf.where_copying_stops(sweep) == 1.0
    assert gf.where_copying_stops(sweep[:2]) != gf.where_copying_stops(sweep[:2])  # NaN: copying never stops
    assert gf.where_copying_stops([(3, stats(copies=5)), (1, stats(copies=0))]) == 3.0
    assert gf.where_copying_stops([(9, stats(copies=0)), (7, stats(copies=20)), (5, stats(copies=0))]) == 5.0


def test_ratio_range():
    assert gf.ratio_range([point(0.5), point(math.nan, censored=3), point(0.96)]) == "0.50 to 0.96"
    assert gf.ratio_range([point(0.7)]) == "0.70"
    assert gf.ratio_range([point(math.nan, censored=3)]) == "no point measured"


def test_r_squared():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(50, 4, generator=g, dtype=torch.float64)
    assert gf.r_squared(y, y) == 1.0
    assert gf.r_squared(y.mean(0).expand_as(y), y) == pytest.approx(0.0, abs=1e-12)
    assert gf.r_squared(-y, y) < -1.0  # a negated field explains nothing


class _Negated:
    def __init__(self, field):
        self.field = field

    def velocity(self, x, t):
        return -self.field.velocity(x, t)


def test_agreement_with_a_network_that_is_a_field(comparison):
    """A 'network' equal to the exact field: r^2 = 1 for the exact field; negated, it fails (mutation)."""
    split = image_split("digits", 30, seed=0, device="cpu", dtype=torch.float64)
    specs = [FieldSpec("exact"), FieldSpec("linear")]
    network = gf.build_field(FieldSpec("exact"), split.half_a, split.image_shape)
    good = gf.agreement_with_network(split, specs, network, [0.2, 0.7], batch=16)
    assert good.velocity.shape == (2, 2) and np.allclose(good.velocity[0], 1.0) and np.allclose(good.denoiser[0], 1.0)
    bad = gf.agreement_with_network(split, specs, _Negated(network), [0.2, 0.7], batch=16)
    assert (bad.velocity[0] < 0).all()
    gf.figure_agreement(good)


def test_the_network_is_chapter_4s_model_loaded_not_retrained(results_store):
    """Part 2's network is the very checkpoint chapter 4's recipe stores: same key, loaded, same rows."""
    from fmlib.experiments.learned_fields import TrainingRecipe, load_split

    small = {"width": 16, "depth": 2, "steps": 5, "n": 20}
    source = load_split("digits", held_out=297, seed=0)
    trained = TrainingRecipe(net_options={"width": 16, "depth": 2}, steps=5, progress=False, device="cpu").train(
        source, 20)
    split, model = gf.chapter4_network("digits", device="cpu", **small)
    assert model.loaded and model.key == trained.key, "chapter 7 must load chapter 4's network, not train its own"
    assert torch.equal(split.half_a, source.pool[:20]) and torch.equal(split.half_b, source.pool[20:40])
    assert torch.equal(split.heldout, source.held_out) and split.image_shape == (1, 8, 8)
    _, retrained = gf.chapter4_network("digits", device="cpu", **{**small, "steps": 6})
    assert not retrained.loaded and retrained.key != model.key
    assert model.field().velocity(split.heldout[:3], 0.5).shape == (3, 64)


def test_prediction_parameters_are_checked_before_work():
    gf.check_prediction_parameters([8, 32], 32, [1.0, 4.0], 32, 400)
    with pytest.raises(ValueError, match="theory_min_d"):
        gf.check_prediction_parameters([2, 8], 32, [4.0], 32, 400)
    with pytest.raises(ValueError, match="mean_norms"):
        gf.check_prediction_parameters([32], 32, [0.5, 1.0], 32, 400)
