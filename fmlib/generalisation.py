r"""Does a generative model copy its training set? Distances against held-out data, kernel MMD, two halves.

Four measures, each read against real data the model never saw (held-out points):

- the copy criterion of Gu et al. (2023) and Yoon et al. (2023), :func:`fmlib.neighbours.copy_fraction`
  (nearest over second-nearest training distance below 1/3), reported beside the same fraction for
  held-out points (:func:`summarise`): in low dimension real points pass the criterion too (the
  issue measured 12-39% on 2-D toys), so the fraction alone does not show copying there;
- the distance of each sample to its nearest training point against that of held-out points
  (:func:`distance_to_training`): a model that copies puts its samples much closer to the training
  set than new data from the same law would be;
- the kernel maximum mean discrepancy to held-out data (:func:`mmd`, unbiased estimator, Gaussian
  kernel with the median heuristic), a two-sample distance between laws (Gretton et al., JMLR 2012);
  with :func:`mmd_to_training_set` (a model's law against the empirical measure of its own training
  set, where the two-sample estimator's independence fails) and :func:`mmd_spread` (the sampling
  noise of an MMD² of two samples of one law);
- the two-halves test of Kadkhodaie et al. (2023) (:func:`two_halves_agreement`): two models
  trained on disjoint halves of the data and integrated from the same noises give nearly the same
  samples when they generalise, and each its own training points when they memorise (different
  samples, though the same noise still leads both to similar training points). We report the
  distance between the two samples of each noise relative to the distance between samples of
  different noises.

All distances use the streamed nearest-neighbour search of :mod:`fmlib.neighbours` (no (B, n, d)
tensor, no copy of the data).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import linalg
from torch import Tensor

from fmlib._checks import check_batch, check_data, check_float, check_points, check_positive_int, check_same_shape
from fmlib.neighbours import copy_fraction, nearest_neighbor_distance

__all__ = [
    "MMD",
    "DistanceComparison",
    "Generalisation",
    "TwoHalves",
    "disjoint_halves",
    "distance_to_training",
    "frechet_distance",
    "mmd",
    "mmd_spread",
    "mmd_to_training_set",
    "summarise",
    "two_halves_agreement",
]

MEDIAN_ROWS = 1000
"""Rows of each sample used for the median heuristic of :func:`mmd` (the first ones): O(2000^2) distances."""

_BLOCK_ROWS = 2048
"""Rows per block of the kernel sums of :func:`mmd`."""


@dataclass(frozen=True)
class DistanceComparison:
    r"""Distances to the nearest training point, of samples and of held-out points.

    Attributes:
        sample_distance: (B,) :math:`\min_i \|x_b - y_i\|` for each sample.
        held_out_distance: (H,) the same for each held-out point.
        sample_median: median of ``sample_distance``.
        held_out_median: median of ``held_out_distance``.
        ratio: ``sample_median / held_out_median``: about 1 when samples sit like new data, well
            below 1 when they copy training points.
        closer_fraction: fraction of samples closer to the training set than the ``quantile``-th
            quantile of the held-out distances: about ``quantile`` for new data, about 1 for copies.
        quantile: the quantile used, in (0, 1).
    """

    sample_distance: Tensor
    held_out_distance: Tensor
    sample_median: float
    held_out_median: float
    ratio: float
    closer_fraction: float
    quantile: float


def distance_to_training(
    samples: Tensor, train: Tensor, held_out: Tensor, *, quantile: float = 0.05, chunk_size: int | None = None
) -> DistanceComparison:
    r"""Nearest-training-point distances of ``samples`` compared with those of ``held_out`` points.

    .. math::

        \rho(x) = \min_i \|x - y_i\|, \qquad
        \text{ratio} = \frac{\operatorname{median}_b \rho(x_b)}{\operatorname{median}_h \rho(z_h)}, \qquad
        \text{closer} = \frac{1}{B}\sum_b \mathbb{1}[\rho(x_b) < q_\alpha(\rho(z))]

    with :math:`y` the training points, :math:`z` the held-out points and :math:`q_\alpha` the
    empirical :math:`\alpha`-quantile (``torch.quantile``, linear interpolation).

    Args:
        samples: (B, d) generated points.
        train: (n, d) training points.
        held_out: (H, d) real points not in ``train``.
        quantile: :math:`\alpha` in (0, 1).
        chunk_size: rows of ``train`` per chunk of the nearest search.

    Returns:
        :class:`DistanceComparison`.
    """
    check_data(train, "train")
    check_points(samples, train, "samples", "train")
    check_points(held_out, train, "held_out", "train")
    quantile = check_float(quantile, "quantile", low=0.0, high=1.0, low_open=True, high_open=True)
    sample_distance = nearest_neighbor_distance(samples, train, chunk_size=chunk_size).distance
    held_out_distance = nearest_neighbor_distance(held_out, train, chunk_size=chunk_size).distance
    sample_median = float(sample_distance.median())
    held_out_median = float(held_out_distance.median())
    threshold = torch.quantile(held_out_distance.double(), quantile)
    return DistanceComparison(
        sample_distance=sample_distance,
        held_out_distance=held_out_distance,
        sample_median=sample_median,
        held_out_median=held_out_median,
        ratio=sample_median / held_out_median if held_out_median > 0 else float("inf"),
        closer_fraction=float((sample_distance.double() < threshold).double().mean()),
        quantile=quantile,
    )


@dataclass(frozen=True)
class MMD:
    r"""An unbiased estimate of the squared maximum mean discrepancy.

    Attributes:
        mmd2: :math:`\widehat{\mathrm{MMD}}^2_u`; its expectation is 0 when both samples come from
            one law, and it can be slightly negative then.
        bandwidth: the kernel's h.
    """

    mmd2: float
    bandwidth: float


def _sq_distances(a: Tensor, b: Tensor) -> Tensor:
    """(A, B) squared distances by the expansion ||a||^2 - 2<a, b> + ||b||^2, clamped at 0."""
    return (a.square().sum(1, keepdim=True) - 2.0 * a @ b.T + b.square().sum(1)).clamp_(min=0.0)


def _kernel_sum(a: Tensor, b: Tensor, scale: float, *, same: bool) -> float:
    """Sum of exp(-||a_i - b_j||^2 * scale) over all pairs (off-diagonal ones when ``same``), in blocks."""
    total = 0.0
    for start in range(0, a.shape[0], _BLOCK_ROWS):
        block = _sq_distances(a[start : start + _BLOCK_ROWS], b).mul_(-scale).exp_()
        total += float(block.sum())
        if same:  # remove the pairs i = j as computed (not 1: the expansion leaves round-off there)
            total -= float(block.diagonal(offset=start).sum())
    return total


def mmd(x: Tensor, y: Tensor, *, bandwidth: float | None = None) -> MMD:
    r"""Unbiased kernel MMD² of samples ``x`` and ``y``, Gaussian kernel (Gretton et al., JMLR 2012: MMD²_u).

    .. math::

        k(a, b) = \exp\Big(-\frac{\|a - b\|^2}{2 h^2}\Big), \qquad
        \widehat{\mathrm{MMD}}^2_u = \frac{\sum_{i \ne j} k(x_i, x_j)}{m (m - 1)}
        + \frac{\sum_{i \ne j} k(y_i, y_j)}{n (n - 1)} - \frac{2 \sum_{i, j} k(x_i, y_j)}{m n}

    Bandwidth by the median heuristic when ``bandwidth`` is None: h is the median of the pairwise
    distances :math:`\|z_i - z_j\|`, i < j, of the pooled first :data:`MEDIAN_ROWS` rows of each
    sample. Computed in float64, in blocks of rows (memory O(block x (m + n))).

    Args:
        x: (m, d) sample, m >= 2.
        y: (n, d) sample, n >= 2, same dtype and device.
        bandwidth: h > 0, or None for the median heuristic.

    Returns:
        :class:`MMD` with the estimate and the bandwidth used.
    """
    check_data(x, "x")
    check_points(y, x, "y", "x")
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"mmd needs at least 2 points in each sample, got {x.shape[0]} and {y.shape[0]}")
    x, y = x.double(), y.double()
    if bandwidth is None:
        pooled = torch.cat([x[:MEDIAN_ROWS], y[:MEDIAN_ROWS]])
        upper = torch.triu_indices(pooled.shape[0], pooled.shape[0], offset=1, device=pooled.device)
        distances = _sq_distances(pooled, pooled)[upper[0], upper[1]].sqrt()
        bandwidth = float(distances.median())
        if bandwidth == 0:
            raise ValueError("the median pairwise distance is 0 (mostly identical points); pass bandwidth explicitly")
    else:
        bandwidth = check_float(bandwidth, "bandwidth", low=0.0, low_open=True)
    scale = 1.0 / (2.0 * bandwidth**2)
    m, n = x.shape[0], y.shape[0]
    xx = _kernel_sum(x, x, scale, same=True) / (m * (m - 1))
    yy = _kernel_sum(y, y, scale, same=True) / (n * (n - 1))
    xy = _kernel_sum(x, y, scale, same=False) / (m * n)
    return MMD(mmd2=xx + yy - 2.0 * xy, bandwidth=bandwidth)


def mmd_to_training_set(x: Tensor, train: Tensor, *, bandwidth: float) -> float:
    r"""MMD^2 between the law of ``x`` and the empirical measure of the training set :math:`\hat Y`, Gaussian kernel.

    .. math::

        \frac{\sum_{i \ne j} k(x_i, x_j)}{m (m - 1)} + \frac{\sum_{j, l} k(y_j, y_l)}{n^2}
        - \frac{2 \sum_{i, j} k(x_i, y_j)}{m n}

    Unbiased for :math:`\mathrm{MMD}^2(P, \hat Y)` when the m rows of ``x`` (m, d) are independent draws of
    P given the training set ``train`` (n, d): endpoints integrated from FRESH noise, not from the training
    sources. It is 0 in expectation for a model that copies training points chosen at random, and about
    :math:`(1 - \bar k)/n > 0` (:math:`\bar k` the mean kernel between two points of the law) for new data
    from the law of the training set. Why not the two-sample :func:`mmd`: its
    unbiasedness assumes x independent of y, and a model's samples depend on its training set (copies
    give about :math:`-2 (1 - \bar k)/n`, a negative value that measures dependence, not a distance);
    endpoints from the training sources depend on their own paired targets as well.
    """
    check_data(x, "x")
    check_points(train, x, "train", "x")
    if x.shape[0] < 2:
        raise ValueError(f"mmd_to_training_set needs at least 2 rows of x, got {x.shape[0]}")
    bandwidth = check_float(bandwidth, "bandwidth", low=0.0, low_open=True)
    x, train = x.double(), train.double()
    scale, m, n = 1.0 / (2.0 * bandwidth**2), x.shape[0], train.shape[0]
    xx = _kernel_sum(x, x, scale, same=True) / (m * (m - 1))
    yy = (_kernel_sum(train, train, scale, same=True) + n) / n**2  # every pair, the n with j = l (k = 1) included
    return xx + yy - 2.0 * _kernel_sum(x, train, scale, same=False) / (m * n)


def mmd_spread(a: Tensor, b: Tensor, *, bandwidth: float, repeats: int = 20, seed: int = 0) -> float:
    """Standard deviation of the unbiased MMD^2 (:func:`mmd`) between two samples of ONE law:
    the pooled rows of ``a`` (m, d) and ``b`` (n, d) re-split at random ``repeats`` times into m and n rows.
    The size of the sampling noise of an MMD^2 of two independent samples of these sizes."""
    repeats = check_positive_int(repeats, "repeats")
    if repeats < 2:
        raise ValueError(f"repeats={repeats}: a standard deviation needs at least 2 re-splits")
    pooled, m = torch.cat([a, b]).double(), a.shape[0]
    g = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(repeats):
        order = torch.randperm(pooled.shape[0], generator=g)
        values.append(mmd(pooled[order[:m]], pooled[order[m:]], bandwidth=bandwidth).mmd2)
    return float(np.std(values, ddof=1))


def frechet_distance(features_a: Tensor, features_b: Tensor) -> float:
    r"""Fréchet distance between Gaussians fitted to two sets of features: FID when they are Inception features.

    .. math::

        \mathrm{FD} = \|\mu_a - \mu_b\|^2 + \operatorname{tr}\big(\Sigma_a + \Sigma_b
        - 2 (\Sigma_a \Sigma_b)^{1/2}\big)

    (Heusel et al., NeurIPS 2017), with sample means and unbiased covariances, in float64; the matrix
    square root is ``scipy.linalg.sqrtm`` (its imaginary round-off dropped). FID proper needs the
    pool features of the Inception-v3 network of that paper; this function takes whatever features
    it is given.

    Args:
        features_a: (m, k) features, m >= 2.
        features_b: (n, k) features, n >= 2.

    Returns:
        the distance, >= 0 up to round-off.
    """
    check_data(features_a, "features_a")
    check_points(features_b, features_a, "features_b", "features_a")
    if features_a.shape[0] < 2 or features_b.shape[0] < 2:
        raise ValueError("frechet_distance needs at least 2 feature vectors on each side")
    a = features_a.detach().double().cpu().numpy()
    b = features_b.detach().double().cpu().numpy()
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = linalg.sqrtm(cov_a @ cov_b)
    trace = np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(np.real(root))
    return float(np.sum((mu_a - mu_b) ** 2) + trace)


@dataclass(frozen=True)
class TwoHalves:
    r"""Agreement of two models trained on disjoint halves, integrated from the same noises.

    Attributes:
        distance: (B,) :math:`\|x^A_b - x^B_b\|`, the two samples of noise b.
        reference: median of :math:`\|x^A_b - x^B_{b+1}\|` (B taken cyclically): two samples of
            different noises, the scale of unrelated samples.
        relative: ``median(distance) / reference``: near 0 when both models compute the same map
            (they generalise), about 1 when their samples are unrelated. Two models that each copy
            their own half score in between: the same noise leads both to training images that are
            closer to each other than images reached from different noises.
    """

    distance: Tensor
    reference: float
    relative: float


def two_halves_agreement(samples_a: Tensor, samples_b: Tensor) -> TwoHalves:
    r"""The two-halves test of Kadkhodaie et al. (2023): distances between the two models' samples per noise.

    .. math::

        r = \frac{\operatorname{median}_b \|x^A_b - x^B_b\|}{\operatorname{median}_b \|x^A_b - x^B_{b+1 \bmod B}\|}

    Args:
        samples_a: (B, d) samples of model A, row b from noise b; B >= 2.
        samples_b: (B, d) samples of model B from the same noises, same order.

    Returns:
        :class:`TwoHalves`.
    """
    samples_a = check_batch(samples_a, "samples_a")
    samples_b = check_same_shape(samples_b, samples_a, "samples_b", "samples_a")
    if samples_a.shape[0] < 2:
        raise ValueError(f"two_halves_agreement needs at least 2 noises, got {samples_a.shape[0]}")
    distance = (samples_a - samples_b).norm(dim=1)
    reference = float((samples_a - samples_b.roll(-1, dims=0)).norm(dim=1).median())
    median = float(distance.median())
    return TwoHalves(distance=distance, reference=reference, relative=median / reference if reference > 0 else 0.0)


def disjoint_halves(data: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Two disjoint training sets of n rows each: rows [0, n) and [n, 2n) of ``data`` (shuffle it first).

    Raises:
        ValueError: 2 n larger than the number of rows.
    """
    check_data(data)
    n = check_positive_int(n, "n")
    if 2 * n > data.shape[0]:
        raise ValueError(f"two disjoint halves of n={n} need {2 * n} rows, data has {data.shape[0]}; lower n")
    return data[:n], data[n : 2 * n]


@dataclass(frozen=True)
class Generalisation:
    """The memorisation measures of one set of samples against one training set and held-out data.

    Attributes:
        copy_fraction: fraction of samples that pass the copy criterion (ratio 1/3).
        held_out_copy_fraction: the same fraction for the held-out points (the criterion's false
            positive rate on new real data).
        distances: :class:`DistanceComparison`.
        mmd: :class:`MMD` of the samples against the held-out points.
    """

    copy_fraction: float
    held_out_copy_fraction: float
    distances: DistanceComparison
    mmd: MMD


def summarise(samples: Tensor, train: Tensor, held_out: Tensor, *, quantile: float = 0.05) -> Generalisation:
    """Copy fractions (samples and held-out points), nearest distances and MMD to held-out data.

    Args:
        samples: (B, d) generated points.
        train: (n, d) training points; n >= 2 for a meaningful copy ratio.
        held_out: (H, d) real points not in ``train``, H >= 2.
        quantile: the quantile of :func:`distance_to_training`.

    Returns:
        :class:`Generalisation`.
    """
    distances = distance_to_training(samples, train, held_out, quantile=quantile)
    return Generalisation(
        copy_fraction=copy_fraction(samples, train),
        held_out_copy_fraction=copy_fraction(held_out, train),
        distances=distances,
        mmd=mmd(samples, held_out),
    )
