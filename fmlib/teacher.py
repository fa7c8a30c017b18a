r"""Teacher-student training: a student regresses the velocity of a teacher field, here the closed form.

The loss ``"closed-form-teacher"`` of :mod:`fmlib.losses` (registered on import) draws the straight
interpolant of :class:`fmlib.losses.InterpolantSampler` and regresses on the optimal field of the
training set instead of the conditional velocity:

.. math::

    \text{target} = u^*(x_t, t) = (x_1 - x_0) + \frac{D(x_t, t) - x_1}{1 - t}, \qquad
    D(x, t) = \sum_i \lambda_i(x, t)\, y_i,

written around :math:`x_1` (the same identity as :func:`fmlib.losses.efm_target`): since
:math:`x_t = (1 - t) x_0 + t x_1`, :math:`(D - x_t)/(1 - t) = (D - x_1)/(1 - t) + (x_1 - x_0)`, and
:math:`D - x_1` is small where the weights have concentrated, so nothing cancels as t -> 1. The
teacher is :class:`fmlib.closed_form.ClosedFormField` on all n training points; its expected
regression target is the same as CFM's (u* is the conditional mean of :math:`x_1 - x_0`), with no
variance. Used for the teacher-student bound of ``notebooks/05_subspace.md`` (Gao & Li,
arXiv 2410.23594, Section 5, describe a teacher-student training; this teacher is our choice).
"""

from __future__ import annotations

import torch
from torch import Tensor

from fmlib.closed_form import ClosedFormField
from fmlib.losses import InterpolantSampler, register_loss

__all__ = ["ClosedFormTeacher"]


class ClosedFormTeacher(InterpolantSampler):
    """Target: the closed form :math:`u^*(x_t, t)` of the training points (module docstring)."""

    name = "closed-form-teacher"

    def __init__(self, data: Tensor) -> None:
        super().__init__(data)
        self.field = ClosedFormField(data)

    def target(self, x0: Tensor, x1: Tensor, x_t: Tensor, t: Tensor, generator: torch.Generator | None) -> Tensor:
        """:math:`(x_1 - x_0) + (D(x_t, t) - x_1) / (1 - t)`, (B, d)."""
        return (x1 - x0) + (self.field.posterior_mean(x_t, t) - x1) / (1.0 - t).unsqueeze(1)


register_loss(ClosedFormTeacher)
