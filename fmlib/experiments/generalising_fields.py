r"""Closed-form fields that generalise, and a prediction of the critical time: what chapter 7 computes.

Three parts, each a function returning dataclasses, and the verdict rules of the chapter's claims.

1. **Samples side by side** (:func:`compare_fields`). A data set of images is split into two
   disjoint training halves A and B and a held-out set of the same size (:func:`image_split`).
   Each field of :mod:`fmlib.closed_form` / :mod:`fmlib.local_fields` (:class:`FieldSpec`) is built
   on A and on B and integrated from the same noises; per field (:class:`SampleStats`):

   * the copy fraction: samples whose nearest training point (of A) is closer than 1/3 of the
     second nearest (:func:`fmlib.neighbours.copy_fraction`, the criterion of Yoon et al. and
     Gu et al.), with exact 95% Clopper-Pearson limits;
   * the distance to the nearest training point and to the nearest held-out point, and the median
     of their ratio: about 0 for copies, about 1 for a new draw from the data distribution (the
     held-out set has as many points as A; :func:`heldout_reference` measures the ratio for the
     held-out points themselves);
   * the two-halves score of Kadkhodaie et al. (:func:`fmlib.generalisation.two_halves_agreement`):
     the median distance between the samples of the fields built on A and on B from the same
     noise, over the median distance between samples of different noises (0: the two halves give
     the same sample; about 1: unrelated samples).

2. **Prediction against measurement** (:func:`collapse_points`, :func:`speciation_points`). The
   collapse time of Biroli et al. mapped to our path (:func:`fmlib.phase_times.collapse_snr`,
   :math:`s_C = \sqrt{n^{2/d} - 1} / \sigma`, with :math:`\sigma^2` the mean per-coordinate variance
   of the training set) against chapter 3's measured :math:`t^*` (cosine above 0.9 for half the
   pairs, :func:`fmlib.experiments.stochastic_target.measure_point`); the speciation time
   :math:`s_S = 1/\sqrt{\Lambda - 1}` against the time at which the mean posterior probability of
   the true class, on paths from two separated classes, reaches 3/4. Ratios are of signal-to-noise
   ratios, measured over predicted, :math:`s_{meas} / s_{pred}` (:math:`s = t/(1 - t)`), one per
   resampled training set; the interval is a Student-t 95% interval of the mean of their logarithm.

3. **Verdict rules** (:func:`creation_rule`, :func:`prediction_rule`), criteria fixed before the run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from scipy import stats
from torch import Tensor

from fmlib._checks import check_choice, check_float, check_positive_int, resolve_device
from fmlib.closed_form import ClosedFormField
from fmlib.data import DATASETS, make_dataset
from fmlib.experiments.learned_fields import TrainingRecipe, load_split, training_rows
from fmlib.experiments.stochastic_target import measure_point
from fmlib.experiments.verdicts import Finding, Verdict
from fmlib.generalisation import two_halves_agreement
from fmlib.local_fields import LinearField, PatchField, SmoothedField
from fmlib.neighbours import copy_fraction, nearest_indices
from fmlib.ode import integrate, time_grid
from fmlib.path import snr_grid, time_to_snr
from fmlib.phase_times import collapse_snr, covariance_top_eigenvalue, speciation_snr
from fmlib.stats import binomial_limits, crossing_time
from fmlib.train import TrainedModel

__all__ = [
    "FIELD_KINDS",
    "Agreement",
    "CollapseShape",
    "FieldComparison",
    "FieldSpec",
    "PredictionPoint",
    "SampleStats",
    "Speciation",
    "Split",
    "agreement_with_network",
    "build_field",
    "chapter4_network",
    "check_patch_sizes",
    "check_prediction_parameters",
    "class_posterior_curve",
    "collapse_points",
    "collapse_shape",
    "compare_fields",
    "creation_rule",
    "figure_agreement",
    "figure_prediction",
    "figure_samples",
    "figure_sweep",
    "heldout_reference",
    "image_split",
    "points_table",
    "prediction_rule",
    "r_squared",
    "ratio_range",
    "sample_stats",
    "snr_map_gap",
    "speciation_points",
    "stats_table",
    "two_classes",
    "where_copying_stops",
    "whole_patch_gap",
]

FIELD_KINDS = ("exact", "smoothed", "patch", "linear")
"""The fields :func:`build_field` knows."""

IMAGE_SETS = {"digits": (1, 8, 8), "cifar10": (3, 32, 32)}
"""Image shapes (C, H, W) of the data sets of fixed dimension; image patches are (3, r, r)."""

SPECIATION_LEVEL = 0.75
"""The measured speciation time is where the mean posterior probability of the true class reaches this."""

RESAMPLE_SEED_STEP = 7919
"""Resample r of a prediction point uses seed ``seed + r * RESAMPLE_SEED_STEP``."""


# ------------------------------------------------------------------------------------------------
# Part 1: samples side by side


@dataclass(frozen=True)
class Split:
    """Two disjoint training halves and a held-out set of one image data set, each (m, C H W)."""

    name: str
    half_a: Tensor
    half_b: Tensor
    heldout: Tensor
    image_shape: tuple[int, int, int]


def image_split(name: str, n_half: int, *, resolution: int = 8, seed: int = 0, device: str | torch.device = "auto",
                dtype: torch.dtype = torch.float32, cifar10_dir: str = "") -> Split:
    """3 n_half distinct images of ``name`` ("digits", "image_patches" at ``resolution``, "cifar10"), split in three.

    The images are drawn in random order with ``seed`` (:func:`fmlib.data.make_dataset`); the first
    n_half are half A, the next half B, the last the held-out set.
    """
    name = check_choice(name, ("digits", "image_patches", "cifar10"), "name")
    n_half = check_positive_int(n_half, "n_half")
    dataset = DATASETS[name]
    dataset.check_n(3 * n_half, "3 n_half")
    options: dict[str, object] = {"dtype": dtype}
    if name == "image_patches":
        options["resolution"] = check_positive_int(resolution, "resolution")
        shape = (3, resolution, resolution)
    else:
        shape = IMAGE_SETS[name]
    if name == "cifar10":
        if not cifar10_dir:
            raise ValueError("name='cifar10' needs cifar10_dir, the directory of CIFAR-10's python files")
        options["root"] = cifar10_dir
    generator = torch.Generator().manual_seed(seed)
    data = make_dataset(name, 3 * n_half, generator=generator, device=resolve_device(device), **options)
    return Split(name, data[:n_half], data[n_half : 2 * n_half], data[2 * n_half :], shape)


@dataclass(frozen=True)
class FieldSpec:
    """Which field: ``kind`` in :data:`FIELD_KINDS`, with its smoothing ``sigma`` or its ``patch`` size."""

    kind: str
    sigma: float = 0.0
    patch: int = 0
    equivariant: bool = True

    def __post_init__(self) -> None:
        check_choice(self.kind, FIELD_KINDS, "kind")
        check_float(self.sigma, "sigma", low=0.0)
        if self.kind == "patch" and (self.patch < 1 or self.patch % 2 == 0):
            raise ValueError(f"a patch field needs an odd patch size >= 1, got patch={self.patch}")

    @property
    def label(self) -> str:
        """A short name for tables and figures."""
        if self.kind == "smoothed":
            return f"smoothed, sigma {self.sigma:g}"
        if self.kind == "patch":
            return f"patch {self.patch}x{self.patch}" + ("" if self.equivariant else " (same position)")
        return self.kind


def build_field(spec: FieldSpec, data: Tensor, image_shape: Sequence[int], *, n_samples: int = 8,
                seed: int = 0) -> object:
    """The field of ``spec`` on ``data`` (n, d): ClosedFormField, SmoothedField, PatchField or LinearField."""
    if spec.kind == "exact":
        return ClosedFormField(data)
    if spec.kind == "smoothed":
        return SmoothedField(data, spec.sigma, n_samples=n_samples, seed=seed)
    if spec.kind == "patch":
        return PatchField(data, image_shape, spec.patch, equivariant=spec.equivariant)
    return LinearField(data)


@dataclass(frozen=True)
class SampleStats:
    """What the samples of one field say about copying (module docstring, part 1).

    Attributes:
        label: the field's label.
        copies, batch: samples counted as copies of a point of A, and samples.
        copy_fraction, copy_low, copy_high: copies / batch and its exact 95% limits (one-sided 2.5% each).
        nn_train, nn_heldout: median distance to the nearest point of A, of the held-out set.
        ratio: median over samples of (distance to A) / (distance to held-out).
        two_halves: the two-halves score (NaN when not measured).
    """

    label: str
    copies: int
    batch: int
    copy_fraction: float
    copy_low: float
    copy_high: float
    nn_train: float
    nn_heldout: float
    ratio: float
    two_halves: float


def _nearest_distance(x: Tensor, data: Tensor, *, exclude_self: bool = False) -> Tensor:
    """(B,) distance to the nearest row of ``data`` (to the second nearest when x is data itself)."""
    index, _ = nearest_indices(x, data, 2 if exclude_self else 1)
    return (x - data[index[:, -1]]).norm(dim=1)


def sample_stats(label: str, samples: Tensor, split: Split, other: Tensor | None = None) -> SampleStats:
    """:class:`SampleStats` of ``samples`` (B, d) generated from the field on half A (``other``: the same on B)."""
    batch = samples.shape[0]
    copies = round(copy_fraction(samples, split.half_a) * batch)
    low, high = binomial_limits(copies, batch, 0.025)
    to_train, to_heldout = _nearest_distance(samples, split.half_a), _nearest_distance(samples, split.heldout)
    two_halves = two_halves_agreement(samples, other).relative if other is not None and batch > 1 else math.nan
    return SampleStats(
        label, copies, batch, copies / batch, float(low), float(high), float(to_train.median()),
        float(to_heldout.median()), float((to_train / to_heldout).median()), two_halves,
    )


def heldout_reference(split: Split) -> SampleStats:
    """:class:`SampleStats` of the held-out images themselves: what a new draw from the data looks like.

    Their distance to the held-out set is to the nearest *other* held-out image.
    """
    held = split.heldout
    copies = round(copy_fraction(held, split.half_a) * held.shape[0])
    low, high = binomial_limits(copies, held.shape[0], 0.025)
    to_train, to_heldout = _nearest_distance(held, split.half_a), _nearest_distance(held, held, exclude_self=True)
    return SampleStats("held-out images", copies, held.shape[0], copies / held.shape[0], float(low), float(high),
                       float(to_train.median()), float(to_heldout.median()), float((to_train / to_heldout).median()),
                       math.nan)


@dataclass(frozen=True)
class FieldComparison:
    """:func:`compare_fields`' result: one :class:`SampleStats` per field and the samples on half A.

    Attributes:
        stats: per field, in the order of the specs.
        samples: (B, d) samples of each field on half A, by label.
        reference: :func:`heldout_reference` of the split.
        noise: (B, d) the noises every field started from.
        samples_b: the same on half B (empty without the two-halves test).
    """

    stats: list[SampleStats]
    samples: dict[str, Tensor] = field(repr=False)
    reference: SampleStats
    noise: Tensor = field(repr=False)
    samples_b: dict[str, Tensor] = field(repr=False, default_factory=dict)

    def by_label(self, label: str) -> SampleStats:
        """The stats of the field called ``label``."""
        for item in self.stats:
            if item.label == label:
                return item
        raise KeyError(label)


def compare_fields(split: Split, specs: Sequence[FieldSpec], *, batch: int = 32, steps: int = 12,
                   n_samples: int = 8, seed: int = 0, two_halves: bool = True, progress: bool = False
                   ) -> FieldComparison:
    """Each field of ``specs`` on half A (and on B when ``two_halves``), integrated from the same noises.

    Euler steps on the quadratic grid of :func:`fmlib.ode.time_grid` (refined toward t = 1, last
    step the denoiser); smoothed fields draw their perturbations with ``seed`` on both halves.
    """
    from tqdm.auto import tqdm

    batch, steps = check_positive_int(batch, "batch"), check_positive_int(steps, "steps")
    generator = torch.Generator().manual_seed(seed)
    data = split.half_a
    noise = torch.randn(batch, data.shape[1], generator=generator, dtype=torch.float64).to(data)
    grid = time_grid(steps, spacing="quadratic")
    results, samples, samples_b = [], {}, {}
    for spec in tqdm(specs, desc="fields", disable=not progress):
        on_a = integrate(build_field(spec, data, split.image_shape, n_samples=n_samples, seed=seed), noise, grid).x
        on_b = None
        if two_halves:
            field_b = build_field(spec, split.half_b, split.image_shape, n_samples=n_samples, seed=seed)
            on_b = samples_b[spec.label] = integrate(field_b, noise, grid).x
        results.append(sample_stats(spec.label, on_a, split, on_b))
        samples[spec.label] = on_a
    return FieldComparison(results, samples, heldout_reference(split), noise, samples_b)


def where_copying_stops(sweep: Sequence[tuple[float, SampleStats]], *, stop: float = 0.1) -> float:
    """The first value of ``sweep`` (in its order) from which the copy fraction stays at most ``stop``; NaN if none.

    Order a smoothing sweep by increasing sigma and a patch sweep by decreasing patch size: the
    value returned is then the least smoothing (the largest patch) at which copying has stopped.
    """
    values = [value for value, _ in sweep]
    copying = [s.copy_fraction > stop for _, s in sweep]
    last = max((k for k, c in enumerate(copying) if c), default=-1)
    return float(values[last + 1]) if last + 1 < len(values) else math.nan


def ratio_range(points: Sequence[PredictionPoint]) -> str:
    """The range of the finite ratios of ``points`` as text ("0.52 to 0.96"), or "no point measured"."""
    ratios = [p.ratio for p in points if math.isfinite(p.ratio)]
    if not ratios:
        return "no point measured"
    return f"{min(ratios):.2f}" if len(ratios) == 1 else f"{min(ratios):.2f} to {max(ratios):.2f}"


def _holds(condition: bool, value: float = math.nan, limit: float = math.nan) -> str:
    """"holds" or "fails", with by how much ``value`` exceeds ``limit`` (in percent) when both are given."""
    if condition:
        return "holds"
    if not (math.isfinite(value) and math.isfinite(limit)) or limit <= 0:
        return "fails"
    excess = 100.0 * (value / limit - 1.0)
    if excess < 0.1:
        return "fails by less than 0.1%"
    return f"fails by {excess:.0f}%" if excess >= 1 else f"fails by {excess:.1f}%"


def creation_rule(claim: str, field_stats: SampleStats, exact: SampleStats, reference: SampleStats) -> Finding:
    """The verdict on "this training-free field creates new samples", against the exact closed form.

    Criterion (fixed before the run), with exact 95% limits on the copy fractions:

    * REPRODUCED: the field's upper limit is at most 0.1, the exact field's lower limit at least
      0.5 (in the same setting the exact field does copy), and the field's samples are no farther
      from the training set than twice the held-out images are (median distance to the nearest
      training image: new, yet close to the data);
    * PARTLY: the field copies significantly less than the exact field (its upper limit below the
      exact field's lower limit), but not all of the above;
    * NOT_REPRODUCED: otherwise.

    The distance condition asks whether the samples are near the data at all; the per-sample ratio
    (distance to the training set over distance to the held-out set, :class:`SampleStats`) asks
    whether they are nearer the training set than new data, and is about 1 for samples far from
    every image too. :attr:`Finding.number` states each condition with its values and whether it
    holds (a failed distance condition says by how much, in percent of its limit).
    """
    limit = 2.0 * reference.nn_train
    near_data = field_stats.nn_train <= limit
    fewer = field_stats.copy_high < exact.copy_low
    field_rare = field_stats.copy_high <= 0.1
    exact_copies = exact.copy_low >= 0.5
    full = field_rare and exact_copies and near_data
    number = "; ".join([
        f"{field_stats.label}: {field_stats.copies}/{field_stats.batch} copies, upper 95% limit "
        f"{field_stats.copy_high:.3f} {'<=' if field_rare else '>'} 0.1: {_holds(field_rare)}",
        f"exact field: {exact.copies}/{exact.batch}, lower limit {exact.copy_low:.3f} "
        f"{'>=' if exact_copies else '<'} 0.5: {_holds(exact_copies)}",
        f"median distance to the training set {field_stats.nn_train:.2f} {'<=' if near_data else '>'} 2 x held-out "
        f"images' {reference.nn_train:.2f} = {limit:.2f}: {_holds(near_data, field_stats.nn_train, limit)}",
        f"fewer copies than the exact field ({field_stats.copy_high:.3f} {'<' if fewer else '>='} "
        f"{exact.copy_low:.3f}): {_holds(fewer)}",
    ])
    rule = ("reproduced: copy fraction <= 0.1 (upper 95% limit), exact field >= 0.5 (lower limit), median distance "
            "to the training set <= 2x that of held-out images (nearness to the data, not the 'ratio' column); "
            "partly: significantly fewer copies than the exact field (upper limit below the exact field's lower "
            "limit); not reproduced: otherwise")
    verdict = Verdict.REPRODUCED if full else (Verdict.PARTLY if fewer else Verdict.NOT_REPRODUCED)
    return Finding(claim, verdict, number, rule)


# ------------------------------------------------------------------------------------------------
# Against a trained network


def chapter4_network(data: str, *, resolution: int = 8, cifar10_dir: str = "", net: str = "mlp", width: int = 256,
                     depth: int = 3, steps: int = 3000, n: int = 300, held_out: int = 297, seed: int = 0,
                     device: str = "auto") -> tuple[Split, TrainedModel]:
    """Chapter 4's CFM network on its first n training images, and the split it was trained on.

    Train once, use many times: the data split (:func:`fmlib.experiments.learned_fields.load_split`)
    and the recipe (:class:`~fmlib.experiments.learned_fields.TrainingRecipe`) are chapter 4's, so with
    chapter 4's parameters (the defaults here: digits, 297 held out, an MLP of 3 x 256, 3000 steps,
    batch 128, learning rate 1e-3, EMA 0.999, n = 300, the CFM model of its section 2) the network
    is loaded from the store when chapter 4 has run, and trained (then stored) otherwise.

    Returns:
        ``(split, model)``: half A is the network's n training images, half B the next n (the
        second network of chapter 4's two-halves test), the held-out set chapter 4's.
    """
    spec = {"digits": "digits", "image_patches": f"image_patches:{resolution}", "cifar10": "cifar10"}
    data = check_choice(data, spec, "data")
    source = load_split(spec[data], held_out=held_out, seed=seed, cifar10_dir=cifar10_dir)
    recipe = TrainingRecipe(net=net, net_options={"width": width, "depth": depth} if net == "mlp" else {},
                            steps=steps, seed=seed, device=device, progress=False)
    model = recipe.train(source, n)
    side = math.isqrt(source.d // max(source.channels, 1))
    split = Split(data, training_rows(source, n, 0), training_rows(source, n, 1), source.held_out,
                  (max(source.channels, 1), side, side))
    return split, model


def r_squared(prediction: Tensor, target: Tensor) -> float:
    r"""Coefficient of determination of ``target`` (B, d) by ``prediction`` (B, d), pooled over coordinates.

    .. math:: r^2 = 1 - \frac{\sum_{b, j} (p_{bj} - y_{bj})^2}{\sum_{b, j} (y_{bj} - \bar y_j)^2}

    with :math:`\bar y_j` the mean of coordinate j over the batch: 1 for a perfect prediction, 0 for
    the batch mean, negative below.
    """
    target, prediction = target.double(), prediction.double()
    total = float((target - target.mean(dim=0)).square().sum())
    return 1.0 - float((prediction - target).square().sum()) / total if total > 0 else math.nan


@dataclass(frozen=True)
class Agreement:
    """:func:`agreement_with_network`: r^2 of the network's velocity (and denoiser) by each field, per time.

    Attributes:
        ts: (T,) times.
        labels: the fields, in order.
        velocity: (F, T) r^2 of the network's velocity by each field's velocity.
        denoiser: (F, T) the same for the denoisers :math:`D = x + (1 - t) u`.
    """

    ts: np.ndarray
    labels: list[str]
    velocity: np.ndarray
    denoiser: np.ndarray


def agreement_with_network(split: Split, specs: Sequence[FieldSpec], network: object, ts: Sequence[float], *,
                           batch: int = 128, n_samples: int = 8, seed: int = 0) -> Agreement:
    r"""How well each field (built on half A) predicts the network, at points on paths of held-out images.

    At each t, :math:`x_t = t\, y + (1 - t)\, z` with y drawn from the held-out set and
    :math:`z \sim N(0, I)` (the same draws at every t); :func:`r_squared` of the network's velocity
    (``network.velocity``) by the field's, and of the denoisers.
    """
    generator = torch.Generator().manual_seed(seed)
    held = split.heldout
    index = torch.randint(held.shape[0], (check_positive_int(batch, "batch"),), generator=generator)
    noise = torch.randn(batch, held.shape[1], generator=generator, dtype=torch.float64).to(held)
    fields = [build_field(spec, split.half_a, split.image_shape, n_samples=n_samples, seed=seed) for spec in specs]
    velocity = np.empty((len(specs), len(ts)))
    denoiser = np.empty_like(velocity)
    for k, t in enumerate(ts):
        x = t * held[index] + (1.0 - t) * noise
        target = network.velocity(x, float(t))
        for f, field_ in enumerate(fields):
            u = field_.velocity(x, float(t))
            velocity[f, k] = r_squared(u, target)
            denoiser[f, k] = r_squared(x + (1.0 - t) * u, x + (1.0 - t) * target)
    return Agreement(np.asarray(ts, dtype=np.float64), [spec.label for spec in specs], velocity, denoiser)


# ------------------------------------------------------------------------------------------------
# Part 2: prediction against measurement


@dataclass(frozen=True)
class PredictionPoint:
    """One point of a prediction test: measured and predicted signal-to-noise ratios over resamples.

    Attributes:
        family: the data ("gaussian", "digits", ..., or "two classes, mean norm m").
        d, n: dimension and training-set size.
        scale: the data's parameter in the prediction (sigma for the collapse, Lambda for the
            speciation), mean over resamples.
        s_measured, s_predicted: geometric means over the resamples of the measured and predicted
            :math:`s = t / (1 - t)`.
        ratio, low, high: geometric mean of :math:`s_{meas} / s_{pred}` and its 95% interval
            (Student t on the logarithms; NaN with fewer than two usable resamples).
        censored: resamples whose measured time fell outside the grid (left out of the means).
        resamples: training sets drawn.
        s_collapse: for a speciation point, the predicted collapse :math:`s_C` of the same data
            (geometric mean; NaN otherwise): speciation is only a separate event when :math:`s_S < s_C`.
    """

    family: str
    d: int
    n: int
    scale: float
    s_measured: float
    s_predicted: float
    ratio: float
    low: float
    high: float
    censored: int
    resamples: int
    s_collapse: float = math.nan

    @property
    def t_measured(self) -> float:
        """The measured time :math:`t = s / (1 + s)`."""
        return self.s_measured / (1.0 + self.s_measured)

    @property
    def t_predicted(self) -> float:
        """The predicted time."""
        return self.s_predicted / (1.0 + self.s_predicted)


def _point(family: str, d: int, n: int, scales: list[float], measured: list[float], predicted: list[float],
           collapse: list[float] | None = None) -> PredictionPoint:
    """Aggregate per-resample measured times (t, possibly censored at +-inf) and predicted s."""
    t = np.asarray(measured, dtype=np.float64)
    usable = np.isfinite(t)
    s_meas, s_pred = time_to_snr(t[usable]), np.asarray(predicted)[usable]
    log_ratio = np.log(s_meas / s_pred) if usable.any() else np.empty(0)
    ratio = float(np.exp(log_ratio.mean())) if log_ratio.size else math.nan
    low = high = math.nan
    if log_ratio.size >= 2:
        half = stats.t.ppf(0.975, log_ratio.size - 1) * log_ratio.std(ddof=1) / math.sqrt(log_ratio.size)
        low, high = float(np.exp(log_ratio.mean() - half)), float(np.exp(log_ratio.mean() + half))
    s_collapse = _geometric_mean(np.asarray(collapse)) if collapse else math.nan
    return PredictionPoint(family, d, n, float(np.mean(scales)), _geometric_mean(s_meas), _geometric_mean(s_pred),
                           ratio, low, high, int((~usable).sum()), len(measured), s_collapse)


def _geometric_mean(values: np.ndarray) -> float:
    return float(np.exp(np.log(values).mean())) if values.size else math.nan


def collapse_points(grid: Sequence[tuple[str, int, int]], *, resamples: int = 3, batch: int = 128, seed: int = 0,
                    refine: int = 4, threshold: float = 0.9, level: float = 0.5, device: str = "auto",
                    progress: bool = False) -> list[PredictionPoint]:
    """Measured :math:`t^*` (chapter 3's criterion) against the predicted collapse, per (family, d, n) of ``grid``.

    Each resample r draws a new training set and new pairs (seed ``seed + r * RESAMPLE_SEED_STEP``);
    the prediction uses that training set's :math:`\\sigma` (square root of its mean per-coordinate
    variance).
    """
    from tqdm.auto import tqdm

    resamples = check_positive_int(resamples, "resamples")
    out = []
    for family, d, n in tqdm(list(grid), desc="collapse", disable=not progress):
        scales, measured, predicted = [], [], []
        for r in range(resamples):
            point = measure_point(family, d, n, batch=batch, seed=seed + r * RESAMPLE_SEED_STEP, refine=refine,
                                  threshold=threshold, level=level, n_boot=1, device=device)
            sigma = math.sqrt(point.variance)
            scales.append(sigma)
            measured.append(point.critical.t_star)
            predicted.append(collapse_snr(n, point.d, sigma))
        out.append(_point(family, point.d, n, scales, measured, predicted))
    return out


@dataclass(frozen=True)
class CollapseShape:
    r"""Level and shape of the measured collapse against the formula, on the points of one verdict.

    Chapter 3 grades ``collapse-time`` on the exponents of
    :math:`\log s = \log a + \beta_n \log\log n - \beta_d \log d`, fitted freely
    (:func:`fmlib.experiments.stochastic_target.fit_exponents`); :func:`prediction_rule` grades the
    level of the formula with no fitted constant. This fits the same exponents by least squares to
    the measured :math:`s` of the points and to the formula's own :math:`s`, and gives the ratio
    measured / predicted per n (geometric mean over the points of that n).

    Attributes:
        measured, formula: ``(beta_n, beta_d)``; NaN without two distinct n and two distinct d.
        ratio_by_n: n -> geometric mean of the ratios of the points of that n.
    """

    measured: tuple[float, float]
    formula: tuple[float, float]
    ratio_by_n: dict[int, float]

    def values(self) -> dict[str, str]:
        """Text for the prose: ``shape_beta_n_measured`` ... and ``shape_ratio_by_n``."""
        def text(value: float) -> str:
            return f"{value:.2f}" if math.isfinite(value) else "not fitted (it needs two n and two d)"

        out = {f"shape_beta_{name}_{kind}": text(value) for kind, pair in
               (("measured", self.measured), ("formula", self.formula)) for name, value in zip("nd", pair, strict=True)}
        drift = self.measured[0] - self.formula[0]
        out["shape_beta_n_excess"] = f"{drift:+.2f}" if math.isfinite(drift) else "not fitted"
        out["shape_ratio_by_n"] = ", ".join(f"{r:.2f} at n = {n}" for n, r in sorted(self.ratio_by_n.items())) or (
            "no point measured")
        return out


def collapse_shape(points: Sequence[PredictionPoint]) -> CollapseShape:
    """:class:`CollapseShape` of the points with a measured ratio."""
    usable = [p for p in points if math.isfinite(p.ratio)]
    by_n: dict[int, list[float]] = {}
    for p in usable:
        by_n.setdefault(p.n, []).append(math.log(p.ratio))
    ratio_by_n = {n: math.exp(float(np.mean(logs))) for n, logs in by_n.items()}
    nan2 = (math.nan, math.nan)
    n = np.array([p.n for p in usable], dtype=np.float64)
    d = np.array([p.d for p in usable], dtype=np.float64)
    design = np.stack([np.ones_like(n), np.log(np.log(n)), -np.log(d)], axis=1)
    if len(usable) < 3 or np.linalg.matrix_rank(design) < 3:
        return CollapseShape(nan2, nan2, ratio_by_n)

    def fit(s: np.ndarray) -> tuple[float, float]:
        coef = np.linalg.lstsq(design, np.log(s), rcond=None)[0]
        return float(coef[1]), float(coef[2])

    return CollapseShape(fit(np.array([p.s_measured for p in usable])),
                         fit(np.array([p.s_predicted for p in usable])), ratio_by_n)


def two_classes(n: int, d: int, mean_norm: float, *, generator: torch.Generator | None = None,
                dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    r"""n points of two equal classes :math:`\pm m e_1 + N(0, I_d)`, :math:`m` = ``mean_norm``; and the labels (n,).

    The covariance of the mixture has largest eigenvalue :math:`\Lambda = m^2 + 1` (along :math:`e_1`).
    """
    n, d = check_positive_int(n, "n"), check_positive_int(d, "d")
    mean_norm = check_float(mean_norm, "mean_norm", low=0.0)
    labels = torch.arange(n) % 2
    points = torch.randn(n, d, generator=generator, dtype=torch.float64)
    points[:, 0] += mean_norm * (2.0 * labels - 1.0)
    return points.to(dtype), labels


def class_posterior_curve(data: Tensor, labels: Tensor, ts: Sequence[float], *, batch: int = 128,
                          generator: torch.Generator | None = None) -> np.ndarray:
    r"""Mean posterior probability of the true class on paths from the data, at each time of ``ts``: (T,).

    .. math:: P(t) = \frac1B \sum_b \sum_{i:\, c_i = c(a_b)} \lambda_i\big(t\, a_b + (1 - t) z_b,\, t\big),

    with :math:`a_b` drawn uniformly from ``data``, :math:`z_b \sim N(0, I)` (the same draws at every t)
    and the weights of the closed form on ``data``.
    """
    field_ = ClosedFormField(data)
    index = torch.randint(data.shape[0], (batch,), generator=generator)
    noise = torch.randn(batch, data.shape[1], generator=generator, dtype=torch.float64).to(data)
    same = (labels[index].unsqueeze(1) == labels.unsqueeze(0)).to(data)  # (B, n)
    curve = []
    for t in ts:
        weights = field_.weights(t * data[index] + (1.0 - t) * noise, float(t))
        curve.append(float((weights * same).sum(dim=1).mean()))
    return np.asarray(curve)


@dataclass(frozen=True)
class Speciation:
    """:func:`speciation_points`' result: the points, and the curves of the first training set.

    Attributes:
        points: one :class:`PredictionPoint` per mean norm.
        ts: (T,) the time grid.
        curves: (M, T) :func:`class_posterior_curve` of the first resample, per mean norm.
        top_eigenvalues: (M,) :math:`\\Lambda` of those training sets.
    """

    points: list[PredictionPoint]
    ts: np.ndarray = field(repr=False)
    curves: np.ndarray = field(repr=False)
    top_eigenvalues: np.ndarray = field(repr=False)

    def inside(self) -> list[PredictionPoint]:
        """The points where speciation is predicted before collapse (:math:`s_S < s_C`), the prediction's setting."""
        return [p for p in self.points if p.s_predicted < p.s_collapse]


def speciation_points(mean_norms: Sequence[float], *, d: int = 32, n: int = 400, resamples: int = 3,
                      batch: int = 128, grid_points: int = 25, seed: int = 0) -> Speciation:
    """Measured speciation against the prediction :math:`s_S = 1/\\sqrt{\\Lambda - 1}`, one point per mean norm.

    Measured: where :func:`class_posterior_curve` reaches :data:`SPECIATION_LEVEL`. Per resample a
    new training set (:func:`two_classes`) and new paths; :math:`\\Lambda` is the top eigenvalue
    of that training set's covariance (:func:`fmlib.phase_times.covariance_top_eigenvalue`).
    """
    ts = snr_grid(1e-3, 1e2, grid_points)
    points, curves, tops = [], [], []
    for mean_norm in mean_norms:
        scales, measured, predicted, collapse = [], [], [], []
        for r in range(check_positive_int(resamples, "resamples")):
            generator = torch.Generator().manual_seed(seed + r * RESAMPLE_SEED_STEP)
            data, labels = two_classes(n, d, mean_norm, generator=generator)
            lam = covariance_top_eigenvalue(data)
            curve = class_posterior_curve(data, labels, ts, batch=batch, generator=generator)
            if r == 0:
                curves.append(curve)
                tops.append(lam)
            scales.append(lam)
            measured.append(crossing_time(ts, curve, SPECIATION_LEVEL))
            predicted.append(speciation_snr(lam))
            collapse.append(collapse_snr(n, d, math.sqrt(float(data.var(dim=0, unbiased=False).mean()))))
        points.append(_point(f"two classes, m = {mean_norm:g}", d, n, scales, measured, predicted, collapse))
    return Speciation(points, ts, np.stack(curves), np.asarray(tops))


def prediction_rule(claim: str, points: Sequence[PredictionPoint], what: str) -> Finding:
    """The verdict on a prediction with no fitted constant, from the ratios measured / predicted of ``points``.

    A test of the level of each measured time against the formula, not of how the time scales with n
    and d (chapter 3's ``collapse-time`` grades the exponents, fitted freely; :func:`collapse_shape`).
    ``points`` are those inside the prediction's setting (the chapter says which); criterion fixed
    before the run:

    * REPRODUCED: every point has a ratio, and every ratio's 95% interval overlaps [0.8, 1.25];
    * PARTLY: every ratio lies within a factor 2, [0.5, 2];
    * NOT_REPRODUCED: otherwise (a ratio outside [0.5, 2], or a point censored on every resample).
    """
    if not points:
        raise ValueError(f"prediction_rule needs at least one point ({what})")
    ratios = np.array([p.ratio for p in points])
    lows = np.array([p.low if math.isfinite(p.low) else p.ratio for p in points])
    highs = np.array([p.high if math.isfinite(p.high) else p.ratio for p in points])
    measured = np.isfinite(ratios)
    full = bool(measured.all() and np.all((highs >= 0.8) & (lows <= 1.25)))
    partial = bool(measured.all() and np.all((ratios >= 0.5) & (ratios <= 2.0)))
    shown = ratios[measured]
    number = (f"{what}: ratio measured/predicted {shown.min():.2f} to {shown.max():.2f} over {measured.sum()} points"
              if shown.size else f"{what}: no point measured")
    if not measured.all():
        number += f" ({(~measured).sum()} censored)"
    rule = ("the formula with no fitted constant, point by point (the level of the time, not its exponents): "
            "reproduced: every 95% interval of the ratio overlaps [0.8, 1.25]; partly: every ratio within a factor 2; "
            "not reproduced: otherwise")
    verdict = Verdict.REPRODUCED if full else (Verdict.PARTLY if partial else Verdict.NOT_REPRODUCED)
    return Finding(claim, verdict, number, rule)


# ------------------------------------------------------------------------------------------------
# Identities the chapter checks at run time, and its tables and figures


def check_patch_sizes(split: Split, sizes: Sequence[int]) -> list[int]:
    """``sizes`` if each is a valid patch size for the split's images (a PatchField says why not, before any work)."""
    for size in sizes:
        PatchField(split.half_a, split.image_shape, size)
    return list(sizes)


def check_prediction_parameters(collapse_dims: Sequence[int], theory_min_d: int, mean_norms: Sequence[float],
                                speciation_d: int, speciation_n: int) -> None:
    """ValueError, before any work, when part 3 could not judge its predictions.

    The collapse needs a Gaussian dimension of at least ``theory_min_d``; the speciation a mean norm
    m whose predicted speciation comes clearly before the predicted collapse for the population
    (:math:`1/m < 0.8\\, s_C` with :math:`\\sigma^2 = 1 + m^2/d`; the rule uses the training sets' own values).
    """
    if not any(d >= theory_min_d for d in collapse_dims):
        raise ValueError(f"collapse_dims={list(collapse_dims)} has no dimension >= theory_min_d={theory_min_d}, "
                         "where the collapse prediction is judged; add one or lower theory_min_d")
    if not any(m > 0 and 1.0 / m < 0.8 * collapse_snr(speciation_n, speciation_d, math.sqrt(1.0 + m * m / speciation_d))
               for m in mean_norms):
        raise ValueError(f"no mean norm in mean_norms={list(mean_norms)} separates the classes before the collapse for "
                         f"speciation_n={speciation_n}, speciation_d={speciation_d}; add a larger one (e.g. 4)")


def whole_patch_gap(split: Split, times: Sequence[float] = (0.2, 0.6, 0.95), batch: int = 8, seed: int = 0) -> float:
    """Largest relative gap between the whole-image patch field at the same position and the exact closed form.

    On paths of points of half A at ``times``; the two are the same function (module docstring of
    :mod:`fmlib.local_fields`), so the gap is round-off.
    """
    data = split.half_a
    whole = PatchField(data, split.image_shape, 2 * max(split.image_shape[1:]) - 1, equivariant=False)
    exact = ClosedFormField(data)
    generator = torch.Generator().manual_seed(seed)
    index = torch.randint(data.shape[0], (batch,), generator=generator)
    gap = 0.0
    for t in times:
        noise = torch.randn(batch, data.shape[1], generator=generator, dtype=torch.float64).to(data)
        x = t * data[index] + (1.0 - t) * noise
        reference = exact.posterior_mean(x, t)
        gap = max(gap, float(((whole.posterior_mean(x, t) - reference).norm(dim=1) / reference.norm(dim=1)).max()))
    return gap


def snr_map_gap(taus: Sequence[float] = (0.1, 0.5, 1.5), *, n: int = 50, d: int = 16, seed: int = 0) -> float:
    r"""Largest gap between the posterior log-weights under OU at :math:`\tau` and on our path at the mapped time.

    Under OU, :math:`x_\tau = e^{-\tau} a + \sqrt{1 - e^{-2\tau}} z`, the weights are
    :math:`\operatorname{softmax}_i(-\|x_\tau - e^{-\tau} y_i\|^2 / (2 (1 - e^{-2\tau})))`; on our
    path at :math:`t` = :func:`fmlib.phase_times.ou_to_flow_time` of :math:`\tau` they are those of
    the closed form at :math:`c\, x_\tau` (:func:`fmlib.phase_times.ou_to_flow_scale`). Equal when
    the signal-to-noise ratios match (float64, Gaussian training points).
    """
    from fmlib.phase_times import ou_to_flow_scale, ou_to_flow_time

    generator = torch.Generator().manual_seed(seed)
    data = torch.randn(n, d, generator=generator, dtype=torch.float64)
    exact = ClosedFormField(data)
    gap = 0.0
    for tau in taus:
        decay, var = math.exp(-tau), -math.expm1(-2.0 * tau)
        x = decay * data[:8] + math.sqrt(var) * torch.randn(8, d, generator=generator, dtype=torch.float64)
        ou = torch.log_softmax(-((x[:, None] - decay * data[None]) ** 2).sum(-1) / (2.0 * var), dim=1)
        ours = exact.log_weights(ou_to_flow_scale(tau) * x, ou_to_flow_time(tau))
        gap = max(gap, float((ours - ou).abs().max()))
    return gap


def stats_table(items: Sequence[SampleStats]) -> pd.DataFrame:
    """One row per field: copies with their interval, distances, ratio and two-halves score."""
    return pd.DataFrame([{
        "field": s.label, "copies": f"{s.copies}/{s.batch}", "copy fraction": round(s.copy_fraction, 3),
        "95% low": round(s.copy_low, 3), "95% high": round(s.copy_high, 3),
        "to training": round(s.nn_train, 2), "to held-out": round(s.nn_heldout, 2),
        "ratio": round(s.ratio, 2), "two halves": round(s.two_halves, 2),
    } for s in items])


def points_table(points: Sequence[PredictionPoint]) -> pd.DataFrame:
    """One row per prediction point: measured and predicted t, the ratio of s with its interval, censoring.

    The interval's limits keep two (low) and three (high) significant digits, so a low limit near 0 is not shown as 0.
    """
    return pd.DataFrame([{
        "data": p.family, "d": p.d, "n": p.n, "t measured": round(p.t_measured, 3),
        "t predicted": round(p.t_predicted, 3), "ratio": round(p.ratio, 2), "95% low": float(f"{p.low:.2g}"),
        "95% high": float(f"{p.high:.3g}"), "censored": f"{p.censored}/{p.resamples}",
    } for p in points])


def figure_samples(comparison: FieldComparison, image_shape: Sequence[int], columns: int = 8) -> Figure:
    """Samples from the same noises (columns): per field a row on half A and, below it, a row on half B."""
    import matplotlib.pyplot as plt

    rows = []
    for label, on_a in comparison.samples.items():
        rows.append((f"{label} (A)", on_a))
        if label in comparison.samples_b:
            rows.append((f"{label} (B)", comparison.samples_b[label]))
    columns = min(columns, comparison.noise.shape[0])
    fig, axes = plt.subplots(len(rows), columns, figsize=(1.0 * columns + 2.2, 1.0 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(columns):
            axes[r, c].imshow(_as_image(images[c], image_shape), cmap="gray_r" if image_shape[0] == 1 else None)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            for spine in axes[r, c].spines.values():  # no frame: the book's style keeps a bottom and a left spine
                spine.set_visible(False)
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.subplots_adjust(left=0.22, wspace=0.05, hspace=0.08)
    return fig


def _as_image(row: Tensor, image_shape: Sequence[int]) -> np.ndarray:
    """A flattened image in [-1, 1] as an (H, W) or (H, W, 3) array in [0, 1]."""
    image = ((row.detach().double().cpu().reshape(*image_shape) + 1.0) / 2.0).clamp(0.0, 1.0)
    return image[0].numpy() if image_shape[0] == 1 else image.permute(1, 2, 0).numpy()


def figure_sweep(by_sigma: Sequence[tuple[float, SampleStats]], by_patch: Sequence[tuple[int, SampleStats]],
                 reference: SampleStats) -> Figure:
    """Copy fraction (with its interval) and the distance ratio against the smoothing sigma and the patch size."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, sweep, name in ((axes[0], by_sigma, "smoothing sigma"), (axes[1], by_patch, "patch size P")):
        x = np.array([v for v, _ in sweep], dtype=np.float64)
        frac = np.array([s.copy_fraction for _, s in sweep])
        err = np.array([[s.copy_fraction - s.copy_low for _, s in sweep],
                        [s.copy_high - s.copy_fraction for _, s in sweep]])
        ax.errorbar(x, frac, yerr=err, marker="o", capsize=3, label="copy fraction (95%)")
        ax.plot(x, [min(s.ratio, 1.5) for _, s in sweep], marker="s", label="distance to training / to held-out")
        ax.axhline(reference.ratio, color="gray", ls=":", label="held-out images' ratio")
        ax.set_xlabel(name)
    axes[0].set_ylabel("fraction, ratio")
    axes[1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def figure_prediction(points: Sequence[PredictionPoint], speciation: Speciation) -> Figure:
    """Left: measured against predicted s (collapse, speciation), the line of equality; right: speciation curves."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    groups: dict[str, list[PredictionPoint]] = {}
    for p in list(points) + list(speciation.points):
        groups.setdefault(p.family.split(",")[0] + (f", d {p.d}" if p.family == "gaussian" else ""), []).append(p)
    for name, group in groups.items():
        ok = [p for p in group if math.isfinite(p.ratio)]
        ax.scatter([p.s_predicted for p in ok], [p.s_measured for p in ok], label=name, s=28)
    lims = np.array([0.05, 20.0])
    ax.plot(lims, lims, color="gray", lw=1)
    ax.fill_between(lims, 0.8 * lims, 1.25 * lims, color="gray", alpha=0.15, lw=0)
    ax.set_xscale("log"), ax.set_yscale("log")
    ax.set_xlabel("predicted s = t/(1-t)"), ax.set_ylabel("measured s")
    ax.legend(fontsize=7, ncol=2)
    ax = axes[1]
    s = time_to_snr(speciation.ts)
    for curve, lam, p in zip(speciation.curves, speciation.top_eigenvalues, speciation.points, strict=True):
        label = p.family.removeprefix("two classes, ") + f", Lambda {lam:.1f}"
        ax.plot(s * math.sqrt(max(lam - 1.0, 1e-12)), curve, label=label)
    ax.axvline(1.0, color="gray", ls=":"), ax.axhline(SPECIATION_LEVEL, color="gray", ls="--", lw=1)
    ax.set_xscale("log"), ax.set_xlim(1e-2, 1e2)
    ax.set_xlabel("s sqrt(Lambda - 1)  (1 = predicted speciation)"), ax.set_ylabel("P(true class | x_t)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


AGREEMENT_LINEAR_RANGE = 1.0
"""Figure of the agreement: the y axis is linear on [-1, 1] and logarithmic below -1 (symlog), so no value is cut."""


def figure_agreement(agreement: Agreement) -> Figure:
    """r^2 of the network's velocity (solid) and denoiser (dashed) by each field, against t.

    Every value is on the plot: when some r^2 is below -1 the y axis is linear on [-1, 1] and
    logarithmic below (:data:`AGREEMENT_LINEAR_RANGE`), with a dotted line at 0.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for k, label in enumerate(agreement.labels):
        line = ax.plot(agreement.ts, agreement.velocity[k], marker="o", label=label)[0]
        ax.plot(agreement.ts, agreement.denoiser[k], ls="--", marker=".", color=line.get_color())
    lowest = float(np.nanmin([agreement.velocity, agreement.denoiser]))
    if lowest < -AGREEMENT_LINEAR_RANGE:
        ax.set_yscale("symlog", linthresh=AGREEMENT_LINEAR_RANGE, linscale=1.0)
        ax.set_ylim(1.3 * lowest, 1.05)
        ticks = [v for v in (-1000, -100, -50, -20, -10, -5, -1, -0.5, 0, 0.5, 1) if v >= 1.3 * lowest]
        ax.set_yticks(ticks, [f"{v:g}" for v in ticks])
        ax.yaxis.set_minor_locator(plt.NullLocator())
        ax.set_ylabel("r^2 (linear above -1, log below)\nsolid: velocity, dashed: denoiser")
    else:
        ax.set_ylim(min(lowest, 0.0) - 0.05, 1.02)
        ax.set_ylabel("r^2 (solid: velocity, dashed: denoiser)")
    ax.axhline(0.0, color="gray", ls=":", lw=1)
    ax.set_xlabel("t")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
