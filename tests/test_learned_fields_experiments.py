"""fmlib.experiments.learned_fields: the verdict rules on contrary data, the computations, mutations, bad input."""

from __future__ import annotations

import dataclasses
import math
import pickle

import numpy as np
import pytest
import torch

import fmlib.experiments.learned_fields as lf
import fmlib.train
from fmlib.experiments.verdicts import ClaimBroken, Verdict
from fmlib.losses import efm_target

PLAN = {
    "data": "digits",
    "hybrid_data": ["digits"],
    "held_out": 297,
    "pool_size": 1500,
    "efm_n": 30,
    "pool_sizes": [1, 4],
    "sizes": [10, 30],
    "hybrid_n": 30,
    "taus": [0.0, 0.5, 1.0],
    "sample_steps": 10,
    "n_noises": 16,
    "net": "mlp",
    "cifar10_dir": "",
}


@pytest.fixture(scope="module")
def split() -> lf.DataSplit:
    return lf.load_split("digits", held_out=100, seed=0)


def tiny_recipe(store: str) -> lf.TrainingRecipe:
    """The small trained network of the mutation tests (width 32, 300 steps): clean and mutated runs alike.

    A mutated run must use its own store: the checkpoint key does not see a monkeypatch, so it would
    otherwise load the clean network.
    """
    return lf.TrainingRecipe(net_options={"width": 32, "depth": 2}, steps=300, store=store, device="cpu",
                             progress=False)


@pytest.fixture
def recipe(tmp_path) -> lf.TrainingRecipe:
    return lf.TrainingRecipe(
        net_options={"width": 16, "depth": 1}, steps=20, store=str(tmp_path), device="cpu", progress=False
    )


# ------------------------------------------------------------------------------------ rules


class Still:
    """A field that never moves: zero velocity, the denoiser returns its input."""

    def velocity(self, x, t):
        return torch.zeros_like(x)

    def posterior_mean(self, x, t):
        return x


def ignore_the_field(monkeypatch) -> None:
    """Mutation: the chapter's solver (``lf.integrate``) integrates :class:`Still` whatever field it is given."""
    real = lf.integrate
    monkeypatch.setattr(lf, "integrate", lambda field, x, ts, **k: real(Still(), x, ts, **k))


def _enumeration(bias=1e-16, variance=(1.0, 2.0), cfm=(3.0, 4.0)) -> lf.EnumerationCheck:
    return lf.EnumerationCheck(6, 3, 3, 0.4, bias, 0.5, np.array(variance), np.array(cfm))


def _curve(ratio) -> lf.VarianceCurve:
    ratio = np.array(ratio, dtype=float)
    return lf.VarianceCurve(np.array([0.1, 0.5]), [1, 8], ratio, np.full_like(ratio, 0.01))


def test_efm_unbiased_rule_gives_each_verdict() -> None:
    good = _curve([[1.0, 1.0], [0.3, 0.5]])
    bad = _curve([[1.0, 1.0], [0.3, 1.5]])
    assert lf.efm_unbiased_rule(_enumeration(), good).verdict is Verdict.REPRODUCED
    assert lf.efm_unbiased_rule(_enumeration(), bad).verdict is Verdict.PARTLY
    assert lf.efm_unbiased_rule(_enumeration(variance=(5.0, 2.0)), good).verdict is Verdict.PARTLY
    assert lf.efm_unbiased_rule(_enumeration(variance=(5.0, 2.0)), bad).verdict is Verdict.NOT_REPRODUCED
    # a ratio of 1 everywhere (EFM no less variable than CFM) is not a measured reduction
    assert lf.efm_unbiased_rule(_enumeration(), _curve([[1.0, 1.0], [1.0, 1.0]])).verdict is Verdict.PARTLY
    with pytest.raises(ClaimBroken, match=r"\[efm-unbiased\]"):
        lf.efm_unbiased_rule(_enumeration(bias=0.3), good)


def _outcome(value: float, se: float = 0.01, metric: str = "MMD") -> lf.Outcome:
    return lf.Outcome(0.0, 0.1, 1.0, 0.05, metric, value, se)


def _comparison(values, metric="MMD") -> lf.LossComparison:
    outcomes = [_outcome(v, metric=metric) for v in values]
    return lf.LossComparison(
        100, [1, 128, 256][: len(values)], outcomes, [0.1] * len(values), [1.0] * len(values), [0.0] * len(values)
    )


def test_efm_fid_rule_gives_each_verdict() -> None:
    assert lf.efm_fid_rule(_comparison([1.0, 0.95, 1.02], metric="FID")).verdict is Verdict.REPRODUCED
    stand_in = lf.efm_fid_rule(_comparison([1.0, 0.95, 1.02]))
    assert stand_in.verdict is Verdict.PARTLY  # MMD stands in: equal or better for every M, still only partly
    assert "for 2 of 2 M > 1" in stand_in.number and "caps the verdict at partly" in stand_in.number
    assert "with MMD standing in for FID the verdict is at most partly" in stand_in.rule
    assert "caps" not in lf.efm_fid_rule(_comparison([1.0, 0.95, 1.02], metric="FID")).number
    assert lf.efm_fid_rule(_comparison([1.0, 0.95, 1.5], metric="FID")).verdict is Verdict.PARTLY  # one M only
    assert lf.efm_fid_rule(_comparison([1.0, 1.3, 1.5], metric="FID")).verdict is Verdict.NOT_REPRODUCED
    with pytest.raises(ValueError, match="M = 1"):
        lf.efm_fid_rule(lf.LossComparison(1, [128], [_outcome(1.0)], [0.1], [1.0], [0.0]))
    # the starting noises as a floor: CFM must beat them, else every M "ties" and the comparison is void
    beaten = dataclasses.replace(_comparison([1.0, 0.95, 1.02], metric="FID"), noise=_outcome(2.0, metric="FID"))
    assert lf.efm_fid_rule(beaten).verdict is Verdict.REPRODUCED
    void = lf.efm_fid_rule(dataclasses.replace(beaten, noise=_outcome(1.01, metric="FID")))
    assert void.verdict is Verdict.NOT_REPRODUCED and "comparison is void" in void.number


def test_efm_fid_mutation_untrained_networks_void_the_comparison(split, tmp_path, monkeypatch) -> None:
    """Two networks that learned nothing tie: without the noise floor the verdict stayed 'partly reproduced'."""
    x0 = lf.noises(32, split.d, 1)

    def verdict(store: str) -> lf.Finding:
        recipe = tiny_recipe(store)
        return lf.efm_fid_rule(lf.compare_losses(recipe, split, n=30, pool_sizes=[1, 4], x0=x0, sample_steps=10))

    assert verdict(str(tmp_path / "clean")).verdict is Verdict.PARTLY  # MMD stands in for FID
    mutations = {"optimiser never steps": (torch.optim.Adam, "step", lambda self, *args, **kwargs: None),
                 "EMA never updates": (fmlib.train.EMA, "update_parameters", lambda self, model: None)}
    for name, (owner, attribute, broken) in mutations.items():
        with monkeypatch.context() as patch:
            patch.setattr(owner, attribute, broken)
            mutated = verdict(str(tmp_path / name.replace(" ", "_")))
        assert mutated.verdict is Verdict.NOT_REPRODUCED and "comparison is void" in mutated.number, name
    # a sampler whose solver ignores the (stored, trained) field returns the noises themselves
    ignore_the_field(monkeypatch)
    frozen = verdict(str(tmp_path / "clean"))
    assert frozen.verdict is Verdict.NOT_REPRODUCED and "comparison is void" in frozen.number


def _capacity(copies, error, norm_factor=4.0) -> lf.Capacity:
    ts = np.array([0.02, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9])
    outcomes = [lf.Outcome(c, 0.0, 1.0, 0.05, "MMD", 0.1, 0.01) for c in copies]
    errors = np.array([error] * len(copies), dtype=float)
    return lf.Capacity([10, 100, 1000][: len(copies)], outcomes, ts, errors, norm_factor * errors, {"width": 8}, 10)


PEAKED = [1.0, 2.0, 3.0, 2.0, 1.0, 1.0, 4.0]  # local maximum at t = 0.2, rise at t = 0.9
FLAT = [3.0, 2.5, 2.0, 1.5, 1.0, 1.0, 1.0]


def test_capacity_rule_gives_each_verdict() -> None:
    assert lf.capacity_rule(_capacity([0.9, 0.4, 0.0], PEAKED)).verdict is Verdict.REPRODUCED
    assert lf.capacity_rule(_capacity([0.9, 0.4, 0.0], FLAT)).verdict is Verdict.PARTLY
    assert lf.capacity_rule(_capacity([0.2, 0.1, 0.0], PEAKED)).verdict is Verdict.PARTLY
    assert lf.capacity_rule(_capacity([0.2, 0.1, 0.0], FLAT)).verdict is Verdict.NOT_REPRODUCED
    assert "first n below 1/2: 100" in lf.capacity_rule(_capacity([0.9, 0.4, 0.0], FLAT)).number
    # the same peaked error from a network no better than the zero field (error ~ E||u*||^2): its shape is not read
    unlearned = lf.capacity_rule(_capacity([0.2, 0.1, 0.0], PEAKED, norm_factor=1.0))
    assert unlearned.verdict is Verdict.NOT_REPRODUCED and "not read" in unlearned.number
    assert lf.capacity_rule(_capacity([0.9, 0.4, 0.0], PEAKED, norm_factor=1.0)).verdict is Verdict.PARTLY


def test_capacity_rule_a_grid_that_does_not_bracket_the_transition() -> None:
    # the default run's pattern: already below 1/2 at the smallest n; the transition lies below the grid
    below = lf.capacity_rule(_capacity([0.43, 0.05, 0.0], PEAKED))
    assert "not bracketed: below 1/2 already at n = 10, the smallest n" in below.number
    assert below.verdict is Verdict.PARTLY  # (b) and (c) only: never reproduced without a seen transition
    assert "bracketed by the grid" in below.rule
    above = lf.capacity_rule(_capacity([0.9, 0.6, 0.3], FLAT))
    assert "not bracketed: still 0.30 > 0.1 at n = 1000, the largest n" in above.number
    assert above.verdict is Verdict.NOT_REPRODUCED
    assert lf.describe_bracket([10, 20], [0.2, 0.4]).count("n = ") == 2  # both ends missing
    with pytest.raises(ValueError, match="one length"):
        lf.describe_bracket([10, 20], [0.2])


def test_describe_copying_and_distance_reads_each_from_n_on() -> None:
    def outcomes(copies, ratios):
        return [lf.Outcome(c, 0.0, r, 0.05, "MMD", 0.1, 0.01) for c, r in zip(copies, ratios, strict=True)]

    sizes = [10, 30, 100, 300, 1000]
    default = lf.describe_copying_and_distance(sizes, outcomes([0.43, 0.05, 0.0, 0.0, 0.0],
                                                                [0.27, 0.65, 0.94, 1.22, 1.41]))
    assert default == ("From n = 100 on no sample is a copy (distance ratio 0.94 at n = 100; copy fraction 0.05 at "
                       "n = 30). From n = 300 on the samples are farther from the training set than held-out data "
                       "are (distance ratio above 1: 1.22 at n = 300, 1.41 at n = 1000).")
    # a ratio that dips back below 1 at the largest n is read from the end; copies that come back at the largest n
    dips = lf.describe_copying_and_distance(sizes, outcomes([0.43, 0.0, 0.0, 0.0, 0.1], [0.27, 1.1, 1.2, 1.3, 0.9]))
    assert dips.startswith("Some samples are copies at every n (copy fraction 0.10 at n = 1000, the largest).")
    assert dips.endswith("stays at or below 1 up to the largest n (0.90 at n = 1000): the samples are no farther "
                         "from the training set than held-out data are.")
    at_once = lf.describe_copying_and_distance([10, 20], outcomes([0.0, 0.0], [1.2, 1.3]))
    assert at_once.startswith("From n = 10 on no sample is a copy (distance ratio 1.20 at n = 10).")
    with pytest.raises(ValueError, match="one length"):
        lf.describe_copying_and_distance([10, 20], outcomes([0.0], [1.0]))


def test_capacity_rule_mutation_a_crossing_at_the_first_n_counted_as_a_transition() -> None:
    """Mutation: reading 'the copy fraction falls below 1/2 somewhere' would pass the unbracketed grid."""
    unbracketed = _capacity([0.43, 0.05, 0.0], PEAKED)
    assert lf.capacity_rule(unbracketed).verdict is Verdict.PARTLY
    # the same grid with one more copying point below it: now bracketed, all three features, reproduced
    bracketed = _capacity([0.9, 0.43, 0.0], PEAKED)
    assert lf.capacity_rule(bracketed).verdict is Verdict.REPRODUCED
    shifted = dataclasses.replace(unbracketed, outcomes=[dataclasses.replace(o, copy_fraction=0.5 + o.copy_fraction)
                                                         if i == 0 else o for i, o in enumerate(unbracketed.outcomes)])
    assert lf.capacity_rule(shifted).verdict is Verdict.REPRODUCED  # the bracket is what the verdict reads


def _hybrid(copies, d=64, name="x") -> lf.HybridCurve:
    taus = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    copies = np.array(copies, dtype=float)
    inner = taus < 1
    transition = lf.crossing_time(taus[inner], copies[inner], 0.5)
    ts = np.linspace(0, 0.9, 10)
    return lf.HybridCurve(name, d, 100, taus, copies, 1 - copies, transition, ts, ts, 0.5)


def test_hybrid_tau_rule_gives_each_verdict() -> None:
    early = _hybrid([0.0, 0.3, 0.9, 1.0, 1.0, 1.0])  # crosses 1/2 between tau = 0.2 and 0.4
    assert early.transition <= 0.3
    assert lf.hybrid_tau_rule([early]).verdict is Verdict.REPRODUCED
    late = _hybrid([0.0, 0.0, 0.0, 0.1, 0.9, 1.0])
    assert lf.hybrid_tau_rule([late]).verdict is Verdict.NOT_REPRODUCED
    copies_alone = _hybrid([0.9, 1.0, 1.0, 1.0, 1.0, 1.0])  # the network copies by itself: the test is void
    assert lf.hybrid_tau_rule([copies_alone]).verdict is Verdict.NOT_REPRODUCED
    # the rule reads the highest dimension
    assert lf.hybrid_tau_rule([late, _hybrid([0.0, 0.3, 0.9, 1.0, 1.0, 1.0], d=3072)]).verdict is Verdict.REPRODUCED
    assert "by tau = 0.3: no, by tau = 0.5: no" in lf.hybrid_tau_rule([late]).number


def test_hybrid_tau_rule_the_network_alone_must_beat_the_noises() -> None:
    early = _hybrid([0.0, 0.3, 0.9, 1.0, 1.0, 1.0])  # reproduced without a floor (see above)
    learned = dataclasses.replace(early, network=_outcome(0.01), noise=_outcome(0.5))
    finding = lf.hybrid_tau_rule([learned])
    assert finding.verdict is Verdict.REPRODUCED and "the noises themselves 0.5" in finding.number
    assert "beats the starting noises" in finding.rule
    # contrary data: the same copies from a network whose samples are no closer to the data than its noises
    unlearned = dataclasses.replace(early, network=_outcome(0.49), noise=_outcome(0.5))
    void = lf.hybrid_tau_rule([unlearned])
    assert void.verdict is Verdict.NOT_REPRODUCED and "does not beat the noises it starts from" in void.number
    assert "transition tau void" in void.number and "no transition can be read" in lf.hybrid_summary([unlearned])
    # a lower-d set failing the floor is reported as such; the verdict still reads the highest d
    both = lf.hybrid_tau_rule([unlearned, dataclasses.replace(learned, d=192, name="y")])
    assert both.verdict is Verdict.REPRODUCED and "x (d = 64, n = 100): transition tau void" in both.number


def test_hybrid_floor_mutation_a_network_that_never_trained(split, tmp_path, monkeypatch) -> None:
    """Mutation: an optimiser that never steps leaves a network no closer to the data than its noises: void."""
    x0 = lf.noises(32, split.d, 1)

    def curve(store: str) -> lf.HybridCurve:
        recipe = tiny_recipe(store)
        model = recipe.train(split, 30)
        return lf.hybrid_sweep(model, lf.training_rows(split, 30), split.held_out, x0, taus=[0.0, 0.5, 1.0],
                               steps=10, name="digits")

    clean = curve(str(tmp_path / "clean"))
    assert lf.beats_noise(clean.network, clean.noise)
    assert "does not beat" not in lf.hybrid_tau_rule([clean]).number
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *args, **kwargs: None)
    untrained = curve(str(tmp_path / "untrained"))
    assert not lf.beats_noise(untrained.network, untrained.noise)
    finding = lf.hybrid_tau_rule([untrained])
    assert finding.verdict is Verdict.NOT_REPRODUCED and "does not beat the noises it starts from" in finding.number


def test_describe_crossing() -> None:
    assert lf.describe_crossing(0.914) == "0.91"
    assert lf.describe_crossing(float("inf")) == "beyond the last tau below 1"
    assert lf.describe_crossing(float("-inf"), "t") == "already at the first t"
    assert lf.describe_crossing(float("nan")) == "not measured"


def test_hybrid_summary() -> None:
    late = _hybrid([0.0, 0.0, 0.0, 0.1, 0.9, 1.0])  # weight crossing 0.5 (see _hybrid), transition near 0.7
    assert "later than the time t = 0.50" in lf.hybrid_summary([late])
    never = _hybrid([0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    assert lf.hybrid_summary([never]) == ("On x (d = 64) fewer than half of the hybrid samples are copies at every "
                                          "tau below 1, and the largest weight along u* passes one half at t = 0.50.")
    at_once = dataclasses.replace(never, transition=-math.inf, weight_crossing=math.inf)
    assert lf.hybrid_summary([at_once]) == (
        "On x (d = 64) half of the hybrid samples are copies already at the first tau, and the largest weight "
        "along u* stays below one half up to the last t of the grid.")
    unmeasured = dataclasses.replace(late, weight_crossing=-math.inf, transition=math.nan)
    assert lf.hybrid_summary([unmeasured]) == (
        "On x (d = 64) the hybrid's transition is not measured, and the largest weight along u* is above one half "
        "already at the first t.")


def test_hybrid_tau_rule_partly() -> None:
    taus = np.array([0.0, 0.3, 0.45, 0.6, 1.0])
    copies = np.array([0.0, 0.1, 0.6, 0.9, 1.0])
    curve = lf.HybridCurve("x", 64, 10, taus, copies, 1 - copies, 0.4, taus[:-1], taus[:-1], 0.4)
    finding = lf.hybrid_tau_rule([curve])
    assert finding.verdict is Verdict.PARTLY
    # the number states the parts; it used to say "not reproduced at this scale" beside a "partly reproduced"
    assert "by tau = 0.3: no, by tau = 0.5: yes" in finding.number and "reproduced" not in finding.number


# ------------------------------------------------------------------------------ computations


def test_efm_enumeration_and_mutation(monkeypatch) -> None:
    check = lf.efm_enumeration(points=3)
    assert check.max_bias < 1e-12 and check.min_bias_without_x1 > 0.05
    assert np.all(check.variance < check.cfm_variance)
    real = lf.efm_exact_moments
    monkeypatch.setattr(lf, "efm_exact_moments", lambda *a, **k: real(*a, **{**k, "anchor": "uniform"}))
    with pytest.raises(ClaimBroken):  # mutation: the pool without x1 breaks the identity and stops the run
        lf.efm_unbiased_rule(lf.efm_enumeration(points=3), _curve([[1.0, 1.0], [0.3, 0.5]]))


def test_efm_enumeration_contrasts_fail_under_their_mutations(monkeypatch) -> None:
    """The chapter test's contrasts 0.1 < enum_bias_uniform and enum_variance < enum_cfm_variance. Mutations: the
    anchor option ignored (the 'uniform' pool still holds x1: bias 0, the contrast vanishes); the pool ignored (M = 1:
    EFM's variance is CFM's, and the rule's exact part fails)."""
    clean = lf.efm_enumeration(points=3)
    assert clean.min_bias_without_x1 > 0.1 and clean.variance.mean() < clean.cfm_variance.mean()
    real = lf.efm_exact_moments
    with monkeypatch.context() as patch:
        patch.setattr(lf, "efm_exact_moments", lambda data, x, t, m, anchor="x1": real(data, x, t, m))
        assert lf.efm_enumeration(points=3).min_bias_without_x1 < 1e-12
    monkeypatch.setattr(lf, "efm_exact_moments", lambda data, x, t, m, **options: real(data, x, t, 1, **options))
    ignored = lf.efm_enumeration(points=3)
    assert not ignored.variance.mean() < ignored.cfm_variance.mean()
    good = _curve([[1.0, 1.0], [0.3, 0.5]])
    assert lf.efm_unbiased_rule(clean, good).verdict is Verdict.REPRODUCED
    assert lf.efm_unbiased_rule(ignored, good).verdict is Verdict.PARTLY


def test_efm_enumeration_mutation_wrong_temperature_stops_the_run(monkeypatch) -> None:
    """Mutation: the pool's weights at temperature 1/(1 - t) instead of 1/(1 - t)^2 (in the target itself)."""
    import inspect
    import textwrap

    import fmlib.losses

    source = textwrap.dedent(inspect.getsource(fmlib.losses.efm_target))
    mutated_source = source.replace("s = (t / gap).unsqueeze(1)", "s = (t / gap.sqrt()).unsqueeze(1)")
    assert mutated_source != source
    namespace = dict(vars(fmlib.losses))
    exec(mutated_source, namespace)  # the function's own source with one change
    monkeypatch.setattr(fmlib.losses, "efm_target", namespace["efm_target"])
    with pytest.raises(ClaimBroken, match=r"\[efm-unbiased\] .*exact bias"):
        lf.efm_unbiased_rule(lf.efm_enumeration(points=3), _curve([[1.0, 1.0], [0.3, 0.5]]))


def test_efm_variance_falls_with_m_and_mutation_raises_it(split, monkeypatch) -> None:
    data = lf.training_rows(split, 50)
    curve = lf.efm_variance(data, pool_sizes=[1, 4, 32], ts=[0.2, 0.5], draws=256, seed=0)
    np.testing.assert_allclose(curve.ratio[0], 1.0)
    assert np.all(curve.ratio[2] < curve.ratio[1]) and np.all(curve.ratio[1] < 1.0)

    def without_x1(x0, x1, t, others):  # mutation: b_1 uniform (the first of the others), not x1
        if others.shape[0] == 0:
            return x1 - x0
        anchor = others[:1].expand_as(x1)
        x_t = (1 - t[:, None]) * x0 + t[:, None] * x1
        return efm_target((x_t - t[:, None] * anchor) / (1 - t[:, None]), anchor, t, others[1:])

    monkeypatch.setattr(lf, "efm_target", without_x1)
    mutated = lf.efm_variance(data, pool_sizes=[1, 4], ts=[0.2, 0.5], draws=256, seed=0)
    assert np.any(mutated.ratio[1] > 1.0)
    check = _enumeration()
    assert lf.efm_unbiased_rule(check, curve).verdict is Verdict.REPRODUCED
    assert lf.efm_unbiased_rule(check, mutated).verdict is Verdict.PARTLY
    # mutation: a target that ignores the pool (x1 - x0 whatever M): ratio 1, which '< 1 + 3 s.e.' alone accepted
    monkeypatch.setattr(lf, "efm_target", lambda x0, x1, t, others: x1 - x0)
    ignored = lf.efm_variance(data, pool_sizes=[1, 4, 32], ts=[0.2, 0.5], draws=256, seed=0)
    assert lf.efm_unbiased_rule(check, ignored).verdict is Verdict.PARTLY


def test_capacity_sweep_and_copying_mutation(split, recipe, monkeypatch) -> None:
    x0 = lf.noises(16, split.d, 1)
    capacity = lf.capacity_sweep(recipe, split, sizes=[20, 10], x0=x0, ts=[0.2, 0.5], sample_steps=5, error_draws=32)
    assert capacity.sizes == [10, 20] and capacity.error.shape == (2, 2) and np.all(capacity.error > 0)
    assert len(capacity.table()) == 2
    # mutation: a sampler that returns training points makes every n copy: the transition disappears
    monkeypatch.setattr(
        lf,
        "sample",
        lambda model, x0, steps: lf.training_rows(split, 10).repeat(2, 1)[: x0.shape[0]] + 1e-4,
    )
    copied = lf.capacity_sweep(recipe, split, sizes=[10, 20], x0=x0, ts=[0.2, 0.5], sample_steps=5, error_draws=32)
    assert [o.copy_fraction for o in copied.outcomes] == [1.0, 1.0]


def test_capacity_mutation_an_optimiser_that_never_steps(split, tmp_path, monkeypatch) -> None:
    """An untrained network's error is about E||u*||^2, with bumps that passed the early-peak feature by chance."""
    x0 = lf.noises(16, split.d, 1)
    ts = [0.02, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]

    def sweep(store: str) -> lf.Capacity:
        recipe = tiny_recipe(store)
        return lf.capacity_sweep(recipe, split, sizes=[10, 30], x0=x0, ts=ts, sample_steps=10, error_draws=64)

    clean = sweep(str(tmp_path / "clean"))
    assert np.all(clean.error < 0.8 * clean.optimal_norm)
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *args, **kwargs: None)
    untrained = sweep(str(tmp_path / "untrained"))
    assert np.mean(untrained.error[-1] / untrained.optimal_norm[-1]) > 1.0
    finding = lf.capacity_rule(untrained)
    assert finding.verdict is Verdict.NOT_REPRODUCED and "not read" in finding.number


def test_hybrid_sweep_ends_on_copies_and_mutation(split, recipe, monkeypatch) -> None:
    model = recipe.train(split, 20)
    train = lf.training_rows(split, 20)
    x0 = lf.noises(16, split.d, 1)
    curve = lf.hybrid_sweep(model, train, split.held_out, x0, taus=[0.0, 0.5, 1.0], steps=10, name="digits")
    assert curve.copy_fraction[-1] == 1.0  # u* alone lands on training points
    assert curve.max_weight[0] == pytest.approx(1 / 20, rel=1e-6)  # at t = 0 every weight is 1/n
    assert 0.0 < curve.weight_crossing < 1.0

    # mutation: a solver that ignores the field stays at the noise: u* alone no longer copies
    ignore_the_field(monkeypatch)
    mutated = lf.hybrid_sweep(model, train, split.held_out, x0, taus=[0.0, 0.5, 1.0], steps=10)
    assert mutated.copy_fraction[-1] < 0.5


def test_compare_losses_and_outcome_with_features(split, recipe) -> None:
    x0 = lf.noises(16, split.d, 1)
    comparison = lf.compare_losses(recipe, split, n=15, pool_sizes=[1, 4], x0=x0, sample_steps=5)
    table = comparison.table()
    assert list(table["loss"]) == ["CFM", "EFM, M = 4"] and "MMD" in table.columns
    assert all(h >= 0 for h in comparison.two_halves)

    class Features(torch.nn.Module):  # a stand-in for an Inception pool layer: mean colour per channel
        def forward(self, images):
            return images.mean(dim=(2, 3))

    rgb = torch.rand(40, 3 * 4 * 4) * 2 - 1
    outcome = lf.measure_outcome(rgb[:16], rgb[16:32], rgb[32:], features=Features())
    assert outcome.metric == "FID" and outcome.value >= -1e-9
    with pytest.raises(ValueError, match="RGB"):
        lf.measure_outcome(split.held_out[:16], split.pool[:10], split.held_out[16:], features=Features())


def test_recipe_stores_and_reloads(split, recipe) -> None:
    first = recipe.train(split, 12)
    again = recipe.train(split, 12)
    assert again.loaded and again.key == first.key
    other_half = recipe.train(split, 12, half=1)
    assert other_half.key != first.key
    assert recipe.config(split, 12, loss="efm", pool_size=8).loss_options == {"pool_size": 8}
    assert lf.TrainingRecipe(net="unet", net_options={}).config(split, 12).net_options == {"channels": 1}


# ------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"data": "digitz"}, "data spec"),
        ({"hybrid_data": ["cifar10"]}, "cifar10_dir"),
        ({"efm_n": 800}, "efm_n=800"),
        ({"sizes": [10, 2000]}, "sizes reach"),
        ({"hybrid_data": ["image_patches:4"], "hybrid_n": 2000}, "hybrid_n=2000"),
        ({"pool_sizes": [4, 8]}, "include 1"),
        ({"taus": [0.0, 0.55, 1.0]}, "multiples"),
        ({"taus": [0.1, 1.0]}, "start at 0"),
        ({"n_noises": 4}, "n_noises"),
        ({"net": "unet", "data": "two_moons"}, "needs images"),
        ({"held_out": 1797}, "no digits"),
    ],
)
def test_check_plan_errors(change, match) -> None:
    with pytest.raises(ValueError, match=match):
        lf.check_plan(**{**PLAN, **change})


def test_check_plan_accepts_the_defaults() -> None:
    lf.check_plan(**PLAN)


@pytest.mark.parametrize(
    ("spec", "kwargs", "match"),
    [
        ("mnist", {}, "data spec"),
        ("image_patches:x", {}, "resolution"),
        ("cifar10", {"cifar10_dir": "/nonexistent"}, "not a directory"),
        ("digits", {"held_out": 1797}, "no digits"),
    ],
)
def test_load_split_errors(spec, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        lf.load_split(spec, **kwargs)


def test_load_split_shapes_and_disjointness() -> None:
    split = lf.load_split("image_patches:2", held_out=10, pool_size=40, seed=1)
    assert split.pool.shape == (40, 12) and split.held_out.shape == (10, 12) and split.channels == 3
    digits = lf.load_split("digits", held_out=97, seed=0)
    assert digits.pool.shape == (1700, 64)
    # pool and held-out points partition the 1797 digits (all distinct rows): none is in both, none is lost
    # (the former check, cdist(...).min() >= 0, held for any split, overlapping or not)
    rows = torch.cat([digits.pool, digits.held_out])
    assert torch.unique(rows, dim=0).shape[0] == 1797
    assert torch.cdist(digits.pool, digits.held_out).min() > 0
    assert lf.load_split("two_moons", held_out=5, pool_size=20).d == 2


def _fake_cifar(root) -> None:
    """The official layout with 30 random images per file (what make_cifar10 reads)."""
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        with (root / name).open("wb") as file:
            pickle.dump({b"data": rng.integers(0, 256, (30, 3072), dtype=np.uint8), b"labels": [0] * 30}, file)


def test_cifar10_split_and_unet_recipe(tmp_path) -> None:
    """The GPU path on a tiny fake CIFAR-10: the split reads train and test files, the U-Net trains and samples."""
    root = tmp_path / "cifar-10-batches-py"
    _fake_cifar(root)
    split = lf.load_split("cifar10", held_out=10, pool_size=40, cifar10_dir=root)
    assert split.pool.shape == (40, 3072) and split.held_out.shape == (10, 3072) and split.channels == 3
    recipe = lf.TrainingRecipe(
        net="unet",
        net_options={"block_channels": [8], "norm_groups": 4},
        steps=2,
        batch_size=4,
        store=str(tmp_path / "store"),
        device="cpu",
        progress=False,
    )
    model = recipe.train(split, 8)
    assert model.config.net_options["channels"] == 3
    assert lf.sample(model, lf.noises(2, 3072, 0), steps=2).shape == (2, 3072)
    lf.check_plan(
        **{
            **PLAN,
            "data": "cifar10",
            "hybrid_data": ["cifar10"],
            "cifar10_dir": str(root),
            "pool_size": 100,
            "sizes": [10],
            "efm_n": 20,
            "hybrid_n": 10,
        }
    )


def test_recipe_errors(split, recipe) -> None:
    with pytest.raises(ValueError, match="lower n"):
        recipe.train(split, 900, half=1)
    with pytest.raises(ValueError, match="half"):
        recipe.train(split, 10, half=2)


def test_figures_label_both_quantities_and_keep_legends_off_the_data() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fmlib.experiments import learned_fields_figures as lff

    capacity = _capacity([0.43, 0.05, 0.0], PEAKED)
    fig = lff.figure_capacity(capacity)
    left, right = fig.axes
    assert "copy fraction" in left.get_ylabel() and "distance ratio" in left.get_ylabel()
    fig.canvas.draw()
    assert not [t for t in right.yaxis.get_minorticklabels() if t.get_text()]  # no crowded minor labels
    plt.close(fig)
    fig = lff.figure_hybrid([_hybrid([0.0, 0.3, 0.9, 1.0, 1.0, 1.0])])
    assert "dotted" not in fig.axes[0].get_xlabel()  # the legend explains the line styles, not the x-label
    legend = fig.axes[1].get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().x0 >= fig.axes[1].bbox.x1  # beside the axes
    plt.close(fig)


def test_fig_4_1_legend_reads_at_10_points_or_more_on_the_page() -> None:
    """Shown at the page's width (7.5 inches), the legend of Fig 4.1 keeps at least 10 points (fails for a legend
    set in 8 points, or for the figure drawn 10 inches wide)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fmlib.experiments import learned_fields_figures as lff
    from tests.test_stochastic_target_figures import shown_legend_points

    fig = lff.figure_efm_variance(_curve([[1.0, 1.0], [0.3, 0.5]]))
    assert shown_legend_points(fig) >= 10
    plt.close(fig)
