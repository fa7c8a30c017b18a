r"""Per-sample gradients of a loss with ``torch.func`` and the trace of their covariance.

Reu et al. (arXiv 2510.18118; ``shared/notes/reu_2510.18118.md``) read which of several (near)
zero-loss fields optimisation favours from the variance of the per-sample loss gradient. For
parameters :math:`\theta \in \mathbb{R}^P` and per-sample losses :math:`\ell_i(\theta)`,
:math:`g_i = \nabla_\theta \ell_i`, the diagnostic is

.. math::

    \operatorname{tr} \widehat{\operatorname{Cov}}(g) = \frac{1}{B - 1} \sum_{i=1}^{B} \|g_i - \bar g\|^2,
    \qquad \bar g = \frac{1}{B} \sum_i g_i,

the unbiased estimate of :math:`E\|g - E g\|^2`. A field consistent with a deterministic pairing
has :math:`\ell_i = 0` for every sample, hence :math:`g_i = 0` and a zero trace.

The per-sample gradients are ``vmap(grad(loss_of_one_sample))`` over ``functional_call`` of the
module (the recipe of the torch.func tutorial "Per-sample-gradients"), computed in chunks; the trace
is accumulated in float64 over the chunks with Chan et al.'s pairwise update of the mean and the
sum of squared deviations, so no (B, P) tensor is kept and no large mean cancels a small variance.
:func:`per_sample_gradients_loop` is the Python-loop reference (tests and the benchmark).

A loss is given per sample as ``loss(model, *batch) -> (B,)``: ``model(*inputs)`` calls the module,
``batch`` are tensors whose first dimension is the sample index; e.g. :func:`flow_matching_loss`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from fmlib._checks import check_positive_int

__all__ = [
    "GradientVariance",
    "SampleLoss",
    "flow_matching_loss",
    "gradient_variance",
    "per_sample_gradients",
    "per_sample_gradients_loop",
]

SampleLoss = Callable[..., Tensor]
"""``loss(model, *batch) -> (B,)``: per-sample losses of a batch; ``model(*inputs)`` runs the module."""


def flow_matching_loss(model: Callable[..., Tensor], x_t: Tensor, t: Tensor, target: Tensor) -> Tensor:
    r"""Per-sample flow matching loss :math:`\|v_\theta(x_t, t) - \text{target}\|^2` (summed over d); (B,).

    ``model(x_t, t)`` with x_t (B, d) and t (B,) returns (B, d).
    """
    return ((model(x_t, t) - target) ** 2).sum(dim=-1)


def _check_batch_tensors(batch: tuple[Tensor, ...]) -> int:
    if not batch or not all(isinstance(b, Tensor) and b.dim() >= 1 for b in batch):
        raise ValueError("batch must be one or more tensors whose first dimension indexes the samples")
    sizes = {b.shape[0] for b in batch}
    if len(sizes) != 1:
        raise ValueError(f"batch tensors must share their first dimension, got sizes {sorted(sizes)}")
    return sizes.pop()


def _split(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(trainable parameters, everything else the module needs), detached."""
    params = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("model has no parameters with requires_grad=True")
    frozen = {k: p.detach() for k, p in model.named_parameters() if not p.requires_grad}
    frozen.update({k: b.detach() for k, b in model.named_buffers()})
    return params, frozen


def per_sample_gradients(
    model: nn.Module, loss: SampleLoss, *batch: Tensor, chunk_size: int | None = None
) -> dict[str, Tensor]:
    r"""The gradients :math:`g_i = \nabla_\theta \ell_i` of every sample, by ``vmap`` over ``grad``.

    Args:
        model: the module; its parameters with ``requires_grad`` are :math:`\theta`.
        loss: per-sample losses ``loss(model_call, *batch) -> (B,)`` (see module docstring).
        batch: tensors with the sample index first, e.g. x_t (B, d), t (B,), target (B, d).
        chunk_size: samples per vectorised call (None: all at once).

    Returns:
        parameter name -> (B, *parameter shape) gradients.
    """
    _check_batch_tensors(batch)
    params, frozen = _split(model)

    def loss_of_one(p: dict[str, Tensor], *sample: Tensor) -> Tensor:
        def call(*inputs: Tensor) -> Tensor:
            return functional_call(model, {**p, **frozen}, inputs)

        return loss(call, *(s.unsqueeze(0) for s in sample))[0]

    in_dims = (None, *([0] * len(batch)))
    return vmap(grad(loss_of_one), in_dims=in_dims, chunk_size=chunk_size)(params, *batch)


def per_sample_gradients_loop(model: nn.Module, loss: SampleLoss, *batch: Tensor) -> dict[str, Tensor]:
    """The reference: one ``torch.autograd.grad`` call per sample, in a Python loop; same result as
    :func:`per_sample_gradients`."""
    size = _check_batch_tensors(batch)
    names = [k for k, p in model.named_parameters() if p.requires_grad]
    params = [p for p in model.parameters() if p.requires_grad]
    rows: list[tuple[Tensor, ...]] = []
    for i in range(size):
        value = loss(model, *(b[i : i + 1] for b in batch))[0]
        rows.append(torch.autograd.grad(value, params))
    return {name: torch.stack([row[j] for row in rows]) for j, name in enumerate(names)}


@dataclass(frozen=True)
class GradientVariance:
    r"""The per-sample gradient statistics of one batch.

    Attributes:
        trace: :math:`\frac{1}{B-1} \sum_i \|g_i - \bar g\|^2`, the trace of the gradient covariance.
        mean_gradient_norm: :math:`\|\bar g\|`, the norm of the batch gradient.
        loss: the mean per-sample loss :math:`\frac{1}{B} \sum_i \ell_i`.
        batch: B.
        parameters: P, the number of scalar parameters.
    """

    trace: float
    mean_gradient_norm: float
    loss: float
    batch: int
    parameters: int


def _flat(grads: dict[str, Tensor]) -> Tensor:
    return torch.cat([g.reshape(g.shape[0], -1) for g in grads.values()], dim=1).double()


def gradient_variance(
    model: nn.Module, loss: SampleLoss, *batch: Tensor, chunk_size: int = 1024, vectorised: bool = True
) -> GradientVariance:
    r"""The trace of the covariance of the per-sample gradients over a batch (module docstring).

    Args:
        model, loss, batch: as in :func:`per_sample_gradients`; B >= 2.
        chunk_size: samples per chunk; memory is O(chunk_size x P).
        vectorised: ``torch.func`` (True) or the Python loop reference (False, for benchmarks).

    Returns:
        :class:`GradientVariance`.
    """
    size = _check_batch_tensors(batch)
    if size < 2:
        raise ValueError(f"a variance needs at least 2 samples, got a batch of {size}")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    count, mean, m2, loss_sum = 0, None, 0.0, 0.0
    for start in range(0, size, chunk_size):
        part = tuple(b[start : start + chunk_size] for b in batch)
        if vectorised:
            g = _flat(per_sample_gradients(model, loss, *part))
        else:
            g = _flat(per_sample_gradients_loop(model, loss, *part))
        with torch.no_grad():
            loss_sum += float(loss(model, *part).double().sum())
        n_b, mean_b = g.shape[0], g.mean(dim=0)
        m2_b = float(((g - mean_b) ** 2).sum())
        if mean is None:
            count, mean, m2 = n_b, mean_b, m2_b
            continue
        delta = mean_b - mean
        total = count + n_b
        m2 += m2_b + float((delta**2).sum()) * count * n_b / total
        mean = mean + delta * (n_b / total)
        count = total
    return GradientVariance(
        trace=m2 / (count - 1),
        mean_gradient_norm=float(mean.norm()),
        loss=loss_sum / count,
        batch=count,
        parameters=int(mean.shape[0]),
    )
