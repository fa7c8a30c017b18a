r"""Nearest training points, streamed: the k-nearest search and the copy criterion built on it.

Distances to the training points are found by streaming over the data in chunks with the matrix
product trick :math:`\|x - y\|^2 = \|x\|^2 - 2\langle x, y\rangle + \|y\|^2` (no (B, n, d) tensor, no
copy of the data as ``torch.cdist`` makes); the distances reported for the points found are then
recomputed from explicit differences, so an exact copy is at distance 0 up to round-off of the
difference itself rather than of :math:`\|x\|^2`. The same search serves the closed form's limit
at t = 1 (the nearest training point) and the copy criterion of Gu et al. (2023).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fmlib._checks import check_chunk_size, check_data, check_float, check_points, check_positive_int

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "NearestNeighbors",
    "copy_fraction",
    "nearest_index",
    "nearest_indices",
    "nearest_neighbor_distance",
    "squared_norms",
]



DEFAULT_CHUNK_ROWS = 8192
"""Rows of the data per chunk in :func:`nearest_index`: large enough for efficient GEMMs."""


def squared_norms(data: Tensor) -> Tensor:
    r""":math:`\|y_i\|^2` for each row of ``data`` (n, d), shape (n,); chunk by chunk, never a full copy."""
    return torch.cat([y.square().sum(dim=1) for y in data.split(DEFAULT_CHUNK_ROWS)])



def nearest_indices(
    x: Tensor, data: Tensor, k: int = 1, *, sq_norms: Tensor | None = None, chunk_size: int | None = None
) -> tuple[Tensor, Tensor]:
    r"""Indices of and squared distances to the ``k`` nearest rows of ``data`` for each row of ``x``.

    .. math:: \|x - y_i\|^2 = \|x\|^2 + \big(\|y_i\|^2 - 2\langle x, y_i\rangle\big)

    ranked by the bracket, one matrix product per chunk of ``data`` and a running top-k; ``data``
    is never copied. Ties: with k = 1 the lowest index wins (the first minimum of each chunk, and a
    later chunk only replaces it when strictly nearer); with k > 1 tied neighbours come in any order.

    Args:
        x: (B, d) queries.
        data: (n, d) training points, same dtype and device as ``x``.
        k: how many neighbours, >= 1; positions beyond n get index 0 and squared distance inf.
        sq_norms: (n,) precomputed ``||y_i||^2`` (computed when None).
        chunk_size: rows of ``data`` per chunk (default 8192).

    Returns:
        ``(index, sq_dist)``: (B, k) int64 indices, nearest first, and (B, k)
        squared distances from the expansion above (clamped at 0 against round-off).
    """
    check_data(data)
    check_points(x, data)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    chunk = check_chunk_size(chunk_size) or DEFAULT_CHUNK_ROWS
    if sq_norms is None:
        sq_norms = squared_norms(data)
    best = torch.full((x.shape[0], k), float("inf"), dtype=x.dtype, device=x.device)
    best_index = torch.zeros(x.shape[0], k, dtype=torch.long, device=x.device)
    for start in range(0, data.shape[0], chunk):
        y = data[start : start + chunk]
        score = torch.addmm(sq_norms[start : start + chunk].unsqueeze(0), x, y.T, alpha=-2.0)
        if k == 1:
            value, index = score.min(dim=1, keepdim=True)  # first minimum: the lowest index on ties
            nearer = value < best
            best, best_index = torch.where(nearer, value, best), torch.where(nearer, index + start, best_index)
            continue
        value, index = score.topk(min(k, y.shape[0]), dim=1, largest=False)
        best, order = torch.cat([best, value], dim=1).topk(k, dim=1, largest=False)
        best_index = torch.cat([best_index, index + start], dim=1).gather(1, order)
    sq_dist = (best + x.square().sum(dim=1, keepdim=True)).clamp_(min=0.0)
    return best_index, sq_dist


def nearest_index(
    x: Tensor, data: Tensor, *, sq_norms: Tensor | None = None, chunk_size: int | None = None
) -> tuple[Tensor, Tensor]:
    r"""Index of and squared distance to the nearest row of ``data``: :func:`nearest_indices` with k = 1.

    .. math:: i^*(x) = \arg\min_i \|x - y_i\|^2

    Returns:
        ``(index, sq_dist)``: (B,) int64 indices and (B,) squared distances.
    """
    index, sq_dist = nearest_indices(x, data, 1, sq_norms=sq_norms, chunk_size=chunk_size)
    return index[:, 0], sq_dist[:, 0]



@dataclass(frozen=True)
class NearestNeighbors:
    r"""The nearest training point of each sample.

    Attributes:
        distance: (B,) Euclidean distance :math:`\|x_b - y_{i^*}\|` (not squared).
        index: (B,) int64 index :math:`i^*` of the nearest training point (lowest on ties).
    """

    distance: Tensor
    index: Tensor


def __check_samples(samples: Tensor, data: Tensor, chunk_size: int | None) -> int:
    """Check ``samples`` against ``data`` and return the number of data rows per chunk."""
    check_data(data)
    check_points(samples, data, "samples", "data")
    return DEFAULT_CHUNK_ROWS if chunk_size is None else check_positive_int(chunk_size, "chunk_size")


def _check_samples(samples: Tensor, data: Tensor, chunk_size: int | None) -> int:
    """Check ``samples`` against ``data`` and return the number of data rows per chunk."""
    check_data(data)
    check_points(samples, data, "samples", "data")
    return DEFAULT_CHUNK_ROWS if chunk_size is None else check_positive_int(chunk_size, "chunk_size")


def nearest_neighbor_distance(samples: Tensor, data: Tensor, *, chunk_size: int | None = None) -> NearestNeighbors:
    r"""Distance from each sample to its nearest training point, and that point's index.

    .. math:: i^*(x) = \arg\min_i \|x - y_i\|, \qquad \mathrm{distance}(x) = \|x - y_{i^*(x)}\|

    The index comes from :func:`fmlib.closed_form.nearest_index` (streamed, one matrix product per
    chunk); the distance is recomputed from the explicit difference :math:`x - y_{i^*}`.

    Args:
        samples: (B, d) generated points.
        data: (n, d) training points, same dtype and device.
        chunk_size: rows of ``data`` per chunk (default 8192).

    Returns:
        :class:`NearestNeighbors` with ``distance`` (B,) and ``index`` (B,).
    """
    chunk = _check_samples(samples, data, chunk_size)
    index, _ = nearest_index(samples, data, chunk_size=chunk)
    return NearestNeighbors(distance=(samples - data[index]).norm(dim=1), index=index)


def _two_nearest_distances(x: Tensor, data: Tensor, chunk: int) -> Tensor:
    r"""(B, 2) distances to the nearest and second-nearest rows of ``data`` (inf for the second when n = 1).

    The two neighbours come from :func:`fmlib.closed_form.nearest_indices`; their distances are
    recomputed from explicit differences and sorted.
    """
    index, sq_dist = nearest_indices(x, data, 2, chunk_size=chunk)
    distance = (x.unsqueeze(1) - data[index]).norm(dim=2)
    distance[torch.isinf(sq_dist)] = float("inf")
    return distance.sort(dim=1).values


def copy_fraction(samples: Tensor, data: Tensor, *, ratio: float = 1 / 3, chunk_size: int | None = None) -> float:
    r"""Fraction of samples that copy a training point: nearest distance below ``ratio`` times the second nearest.

    .. math::

        \mathrm{copy}(x) = \mathbb{1}\big[\|x - y_{(1)}(x)\| < r\, \|x - y_{(2)}(x)\|\big], \qquad
        \text{fraction} = \frac{1}{B} \sum_b \mathrm{copy}(x_b),

    with :math:`y_{(1)}, y_{(2)}` the nearest and second-nearest training points and r = ``ratio``
    (1/3: the criterion of Yoon et al. 2023, "Diffusion probabilistic models generalize when they
    fail to memorize", and Gu et al. 2023, "On memorization in diffusion models").

    Conventions: a sample at distance 0 from a training point is a copy (even when that point is
    duplicated in ``data``, where both distances are 0); with a single training point (n = 1) the
    second distance is taken as infinite, so every sample counts as a copy (the limit of a second
    point moved infinitely far away).

    Args:
        samples: (B, d) generated points.
        data: (n, d) training points, same dtype and device.
        ratio: r in (0, 1].
        chunk_size: rows of ``data`` per chunk (default 8192).

    Returns:
        The fraction in [0, 1], a float.
    """
    chunk = _check_samples(samples, data, chunk_size)
    ratio = check_float(ratio, "ratio", low=0.0, high=1.0, low_open=True)
    distance = _two_nearest_distances(samples, data, chunk)
    nearest, second = distance[:, 0], distance[:, 1]
    copies = (nearest < ratio * second) | (nearest == 0)
    return float(copies.to(torch.float64).mean())
