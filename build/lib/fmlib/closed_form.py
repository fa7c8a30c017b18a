r"""The closed-form optimal velocity field of flow matching for an empirical distribution.

Convention (shared by Gao & Li, arXiv 2410.23594, Section 4.1; Bertrand et al., arXiv 2506.03719,
Proposition 1; Reu et al., arXiv 2510.18118): :math:`x_t = (1 - t) x_0 + t x_1`,
:math:`x_0 \sim N(0, I_d)`, :math:`x_1` uniform over the n training points :math:`y_1, \dots, y_n`.
Bayes' rule with the equal-variance Gaussian likelihoods :math:`N(x; t y_i, (1 - t)^2 I)` gives

.. math::

    \lambda_i(x, t) = \operatorname{softmax}_i\Big(-\frac{\|x - t y_i\|^2}{2 (1 - t)^2}\Big), \qquad
    D(x, t) = \sum_i \lambda_i(x, t)\, y_i, \qquad
    u^*(x, t) = \frac{D(x, t) - x}{1 - t}.

:math:`D` is the posterior mean :math:`E[x_1 \mid x_t = x]` (the denoiser) and :math:`u^*` the
minimiser of the conditional flow matching loss.

Evaluation. :math:`\|x - t y\|^2 = \|x\|^2 - 2 t \langle x, y\rangle + t^2 \|y\|^2`; the first term
is constant in i and cancels in the softmax, so the logits of a chunk of data are one matrix
product plus a rank-one term. The data are streamed in chunks with a running maximum ``m``, a
running sum ``s`` and a running weighted sum ``a`` (rescaled by ``exp(m_old - m_new)`` when a chunk
raises the maximum), so memory is O(B x chunk + n) and no (B, n, d) or (B, n) tensor is formed by
:meth:`ClosedFormField.posterior_mean`. Shifted logits are clamped at the smallest argument whose
exp is a normal number (-87 in float32, -708 in float64) before ``exp``: the weights this changes
are below 1e-38 of the largest, and it avoids the slow paths of vectorised ``exp`` on very negative
inputs and of GEMM on subnormal numbers (``shared/notes/closed_form.md``).

At t = 1 the posterior is a point mass on the nearest training point (ties go to the lowest index).
"""

from __future__ import annotations

import torch
from torch import Tensor

from fmlib._checks import as_time, check_chunk_size, check_data, check_points
from fmlib.neighbours import nearest_index, squared_norms

__all__ = ["ClosedFormField", "posterior_mean", "velocity"]


DEFAULT_CHUNK_ELEMENTS = 1 << 24
"""Size of the (B, chunk) block of logits that :class:`ClosedFormField` picks its chunks by.

2^24 elements (64 MB in float32) is 65,536 rows at B = 256. Few large chunks cost the same as
many small ones on an idle machine, but every chunk runs about eight parallel regions, and on a
loaded machine each one waits for a descheduled thread: at B = 256, n = 50,000, d = 64 on two
shared cores, chunks of 8192 rows took 3.5x the two bare matrix products and one chunk 1.4x
(``benchmarks/closed_form.py``).
"""

MIN_CHUNK_ROWS = 1024
"""Fewest rows per default chunk, however large the batch."""

_EXP_FLOOR = {torch.float32: -87.0, torch.float64: -708.0}
"""Smallest shifted logit kept before ``exp``: exp of it is still a normal number."""










class ClosedFormField:
    r"""The optimal velocity field :math:`u^*` of flow matching for the training points ``data``.

    Holds the data and their squared norms (computed once); every method streams over the data
    in chunks of ``chunk_size`` rows.

    Args:
        data: (n, d) training points :math:`y_i`, float32 or float64, on any device.
        chunk_size: rows of data per chunk; memory is O(B x chunk_size + n). By default (None) as
            many rows as keep the (B, chunk) block of logits within 2^24 elements (64 MB in
            float32; 65,536 rows at B = 256), at least 1024 and at most n.

    Every method takes ``x`` of shape (B, d) with the dtype and device of ``data`` and ``t`` a float
    or a tensor of shape (B,) in [0, 1]; results have the dtype and device of ``x``.

    Example:
        >>> field = ClosedFormField(torch.tensor([[0.0, 1.0], [2.0, 0.0]]))
        >>> field.posterior_mean(torch.tensor([[0.0, 0.9]]), 0.9).round(decimals=4)
        tensor([[0., 1.]])
    """

    def __init__(self, data: Tensor, *, chunk_size: int | None = None) -> None:
        self.data = check_data(data)
        self.sq_norms = squared_norms(data)
        self.chunk_size = check_chunk_size(chunk_size)

    def _rows_per_chunk(self, batch: int) -> int:
        """Rows of data per chunk for a batch of ``batch`` queries: ``chunk_size``, or the default."""
        if self.chunk_size is not None:
            return self.chunk_size
        return min(self.n, max(MIN_CHUNK_ROWS, DEFAULT_CHUNK_ELEMENTS // max(batch, 1)))

    @property
    def n(self) -> int:
        """Number of training points."""
        return self.data.shape[0]

    @property
    def d(self) -> int:
        """Dimension of the data."""
        return self.data.shape[1]

    def _prepare(self, x: Tensor, t: float | Tensor) -> tuple[Tensor, Tensor, Tensor, float | None]:
        """Checked ``x``; ``t`` and ``1 - t`` as (B,) tensors; ``t`` as a Python float when given as one.

        With a float ``t`` the branches on t = 1 are decided in Python, so a call on a GPU does not
        wait for the device to answer a comparison, and ``1 - t`` is taken in double precision before
        the cast: in float32, a t within 3e-8 of 1 would otherwise round to 1 and divide by zero.
        """
        check_points(x, self.data)
        t_tensor = as_time(t, x.shape[0], x)
        if isinstance(t, (int, float)) and not isinstance(t, bool):
            return x, t_tensor, torch.full_like(t_tensor, 1.0 - float(t)), float(t)
        return x, t_tensor, 1.0 - t_tensor, None

    def _logit_coefficients(self, t: Tensor, gap: Tensor) -> tuple[Tensor, Tensor]:
        r"""Per-row coefficients so that logit_i = a <x, y_i> - b ||y_i||^2 (up to a constant in i).

        :math:`a = t / (1 - t)^2`, :math:`b = t^2 / (2 (1 - t)^2)`; (B,) each, for rows with t < 1;
        ``gap`` is :math:`1 - t`.
        """
        inv = 1.0 / gap**2
        return t * inv, 0.5 * t * t * inv

    def _chunk_logits(self, ax: Tensor, b: Tensor, start: int, chunk: int, out: Tensor | None = None) -> Tensor:
        """Logits (B, c) of the data rows ``start:start + chunk``, up to a per-row constant.

        ``ax`` is ``a x`` (B, d), ``b`` is (B,) (:meth:`_logit_coefficients`).
        """
        y = self.data[start : start + chunk]
        y_sq = self.sq_norms[start : start + chunk]
        if out is None or out.shape[1] != y.shape[0]:
            out = torch.empty(ax.shape[0], y.shape[0], dtype=ax.dtype, device=ax.device)
        torch.outer(-b, y_sq, out=out)
        return out.addmm_(ax, y.T)

    def log_weights(self, x: Tensor, t: float | Tensor) -> Tensor:
        r"""Log posterior weights :math:`\log \lambda_i(x, t)`, shape (B, n).

        Forms the full (B, n) matrix: meant for inspection and moderate n. At t = 1 the weight is
        one-hot on the nearest training point (log 0 = -inf elsewhere).
        """
        x, t, gap, _ = self._prepare(x, t)
        logits = torch.empty(x.shape[0], self.n, dtype=x.dtype, device=x.device)
        inner = t < 1
        if bool(inner.any()):
            xi = x[inner]
            a, b = self._logit_coefficients(t[inner], gap[inner])
            ax, chunk = xi * a.unsqueeze(1), self._rows_per_chunk(xi.shape[0])
            parts = [self._chunk_logits(ax, b, s, chunk) for s in range(0, self.n, chunk)]
            logits[inner] = torch.log_softmax(torch.cat(parts, dim=1), dim=1)
        if not bool(inner.all()):
            index, _ = nearest_index(x[~inner], self.data, sq_norms=self.sq_norms, chunk_size=self.chunk_size)
            one_hot = torch.full((index.shape[0], self.n), float("-inf"), dtype=x.dtype, device=x.device)
            one_hot[torch.arange(index.shape[0], device=x.device), index] = 0.0
            logits[~inner] = one_hot
        return logits

    def weights(self, x: Tensor, t: float | Tensor) -> Tensor:
        r"""Posterior weights :math:`\lambda_i(x, t)`, shape (B, n); each row sums to 1."""
        return self.log_weights(x, t).exp()

    def posterior_mean(self, x: Tensor, t: float | Tensor) -> Tensor:
        r"""The denoiser :math:`D(x, t) = E[x_1 \mid x_t = x] = \sum_i \lambda_i(x, t) y_i`, shape (B, d).

        Streams over the data with a running log-sum-exp; never forms a (B, n) tensor. At t = 1
        returns the limit, the nearest training point.
        """
        x, t, gap, scalar = self._prepare(x, t)
        if scalar is not None and scalar < 1:
            return self._streamed_mean(x, t, gap)
        out = torch.empty_like(x)
        inner = t < 1
        if bool(inner.all()):
            return self._streamed_mean(x, t, gap)
        if bool(inner.any()):
            out[inner] = self._streamed_mean(x[inner], t[inner], gap[inner])
        index, _ = nearest_index(x[~inner], self.data, sq_norms=self.sq_norms, chunk_size=self.chunk_size)
        out[~inner] = self.data[index]
        return out

    def _streamed_mean(self, x: Tensor, t: Tensor, gap: Tensor) -> Tensor:
        """The running-log-sum-exp pass of :meth:`posterior_mean` for rows with t < 1.

        Returns a fresh (B, d) tensor that callers may overwrite.
        """
        a, b = self._logit_coefficients(t, gap)
        ax = x * a.unsqueeze(1)
        floor = _EXP_FLOOR[x.dtype]
        chunk = self._rows_per_chunk(x.shape[0])
        # The first chunk sets the running max, sum and weighted sum (no zero-filled start to rescale).
        buffer = self._chunk_logits(ax, b, 0, chunk)
        running_max = buffer.amax(dim=1, keepdim=True)
        buffer.sub_(running_max).clamp_(min=floor).exp_()
        running_sum = buffer.sum(dim=1, keepdim=True)
        weighted_sum = buffer @ self.data[:chunk]
        for start in range(chunk, self.n, chunk):
            buffer = self._chunk_logits(ax, b, start, chunk, out=buffer)
            new_max = torch.maximum(running_max, buffer.amax(dim=1, keepdim=True))
            rescale = (running_max - new_max).exp_()
            running_sum.mul_(rescale)
            weighted_sum.mul_(rescale)
            running_max = new_max
            buffer.sub_(new_max).clamp_(min=floor).exp_()
            running_sum.add_(buffer.sum(dim=1, keepdim=True))
            weighted_sum.addmm_(buffer, self.data[start : start + chunk])
        return weighted_sum.div_(running_sum)

    def velocity(self, x: Tensor, t: float | Tensor) -> Tensor:
        r"""The optimal velocity :math:`u^*(x, t) = (D(x, t) - x) / (1 - t)`, shape (B, d).

        Raises ValueError at t = 1, where the field is not defined (it blows up away from the data);
        use :meth:`posterior_mean` there, or an ODE solver's denoiser step (:mod:`fmlib.ode`).
        """
        x, t, gap, scalar = self._prepare(x, t)
        if (scalar >= 1) if scalar is not None else bool((t >= 1).any()):
            raise ValueError(
                "velocity is undefined at t = 1 (it divides by 1 - t); "
                "use posterior_mean(x, 1.0) for the limit, or integrate with fmlib.ode"
            )
        return self._streamed_mean(x, t, gap).sub_(x).div_(gap.unsqueeze(1))


def posterior_mean(x: Tensor, t: float | Tensor, data: Tensor, *, chunk_size: int | None = None) -> Tensor:
    """One-shot :meth:`ClosedFormField.posterior_mean`: the denoiser for ``data`` (n, d) at x (B, d)."""
    return ClosedFormField(data, chunk_size=chunk_size).posterior_mean(x, t)


def velocity(x: Tensor, t: float | Tensor, data: Tensor, *, chunk_size: int | None = None) -> Tensor:
    """One-shot :meth:`ClosedFormField.velocity`: the optimal field for ``data`` (n, d) at x (B, d)."""
    return ClosedFormField(data, chunk_size=chunk_size).velocity(x, t)
