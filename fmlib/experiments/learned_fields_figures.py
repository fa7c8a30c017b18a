r"""The figures of chapter 4 (``notebooks/04_learned_fields.md``), drawn from what
:mod:`fmlib.experiments.learned_fields` measures.

:func:`figure_efm_variance` the variance of the EFM target relative to CFM's against t, one curve
per pool size M; :func:`figure_capacity` copying and distance ratio against n, and the error to
:math:`u^*` against t; :func:`figure_hybrid` hybrid sampling against the switch time tau, with the
largest posterior weight along :math:`u^*`. Legends sit beside the axes, where they cover no data.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from fmlib.experiments.learned_fields import PAPER_TAU, Capacity, HybridCurve, VarianceCurve
from fmlib.plots import legend_below, legend_outside, plain_log_axis

__all__ = ["figure_capacity", "figure_efm_variance", "figure_hybrid"]


def figure_efm_variance(curve: VarianceCurve) -> Figure:
    """Variance ratio EFM / CFM against t (log scale), with standard errors, one curve per M."""
    fig, ax = plt.subplots(figsize=(5.4, 3.4))
    for i, m in enumerate(curve.pool_sizes):
        ax.errorbar(curve.ts, curve.ratio[i], yerr=curve.se[i], marker="o", ms=3, capsize=2, label=f"M = {m}")
    ax.set(xlabel="t", ylabel="variance of EFM / of CFM", yscale="log")
    legend_outside(ax, title="pool size", fontsize=11, title_fontsize=11)
    return fig


def figure_capacity(capacity: Capacity) -> Figure:
    """Left: copy fraction and distance ratio against n (log), held-out level 1. Right: error to u* against t."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"wspace": 0.35})
    ax.plot(capacity.sizes, [o.copy_fraction for o in capacity.outcomes], "o-", label="copy fraction")
    ax.plot(capacity.sizes, [o.distance_ratio for o in capacity.outcomes], "s-", label="distance ratio")
    ax.axhline(1.0, color="gray", lw=0.8, ls=":", label="held-out level of the ratio")
    ax.axhline(0.5, color="gray", lw=0.8, ls="--", label="copy fraction 1/2")
    width = capacity.net_options.get("width", "-")
    ax.set(xscale="log", xlabel="training points n", ylabel="copy fraction; distance ratio",
           title=f"{capacity.steps} steps, width {width}")
    legend_below(ax, ncol=2)
    for i, n in enumerate(capacity.sizes):
        bx.plot(capacity.ts, capacity.error[i], "o-", ms=3, label=f"n = {n}")
    bx.set(yscale="log", xlabel="t", ylabel=r"$E\|u_\theta - u^*\|^2$")
    plain_log_axis(bx.yaxis)  # plain labels, no crowded minor ones
    legend_outside(bx)
    return fig


def figure_hybrid(curves: Sequence[HybridCurve]) -> Figure:
    """Left: copy fraction against tau and the largest weight along u* against t (dotted). Right: distance ratio."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"wspace": 0.3})
    handles = []
    for c in curves:
        (line,) = axes[0].plot(c.taus, c.copy_fraction, "o-", ms=3)
        axes[1].plot(c.taus, c.distance_ratio, "o-", ms=3, color=line.get_color())
        axes[0].plot(c.ts, c.max_weight, ":", color=line.get_color())
        if np.isfinite(c.weight_crossing):
            axes[0].axvline(c.weight_crossing, color=line.get_color(), lw=0.8, ls="--")
        handles.append(Line2D([], [], color=line.get_color(), marker="o", ms=3, label=f"{c.name} (d = {c.d})"))
    for a in axes:
        a.axvline(PAPER_TAU, color="gray", lw=0.8)
    axes[1].axhline(1.0, color="gray", lw=0.8, ls=":")
    handles += [
        Line2D([], [], color="k", marker="o", ms=3, label=r"hybrid samples, against $\tau$"),
        Line2D([], [], color="k", ls=":", label=r"largest weight along $u^*$, against $t$"),
        Line2D([], [], color="k", ls="--", lw=0.8, label="where it reaches 1/2"),
        Line2D([], [], color="gray", lw=0.8, label=rf"$\tau$ = {PAPER_TAU} (paper)"),
        Line2D([], [], color="gray", lw=0.8, ls=":", label="held-out level of the ratio"),
    ]
    axes[0].set(xlabel=r"switch time $\tau$ (or $t$)", ylabel="copy fraction; largest weight")
    axes[1].set(xlabel=r"switch time $\tau$", ylabel="distance ratio")
    legend_outside(axes[1], handles=handles)
    return fig
