r"""The figures of chapter 3 (``notebooks/03_stochastic_target.md``), drawn from what
:mod:`fmlib.experiments.stochastic_target` computes.

:func:`histogram_figure` draws the histograms of the cosines between :math:`u^*(x_t, t)` and
:math:`x_1 - x_0` (rows: data sets, columns: times); :func:`fraction_figure` the fraction of pairs above
the threshold against t on a logit axis (even steps in log-SNR), one curve per d, with :math:`t^*`
marked; :func:`laws_figure` :math:`s^* = t^*/(1 - t^*)` against :math:`\log(n)/d` with the fitted laws
and their residuals; :func:`losses_figure` the loss ratio R(t) per dimension and R against d.
The measurements, definitions and verdict rules are in :mod:`fmlib.experiments.stochastic_target`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from fmlib.experiments.stochastic_target import (
    LAWS,
    LOSS_RATIO_SMALL,
    Grid,
    LawFits,
    LossRatios,
    PointMeasurement,
    feature_of_rate,
)
from fmlib.path import time_to_snr
from fmlib.plots import legend_below, legend_outside, plain_log_axis

__all__ = ["fraction_figure", "histogram_figure", "laws_figure", "losses_figure"]


def _logit_time_axis(ax: object, ticks: Sequence[float] = (0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999)) -> None:
    """A logit x axis (even steps in log-SNR) with plain tick labels."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("logit")
    ax.set_xticks(list(ticks), labels=[f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())


PAGE_WIDTH = 7.2
"""Width in inches of the figures drawn at the page's width (the book's text column), not shrunk on the page."""

LEGEND_SIZE = 11
"""Legend font size in points of the figures drawn at :data:`PAGE_WIDTH`."""

HISTOGRAM_BINS = np.linspace(-1.0, 1.0, 41)
"""Bin edges of :func:`histogram_figure`: 40 bins of width 0.05 over [-1, 1]."""


def histogram_figure(panels: dict[str, PointMeasurement], times: Sequence[float], threshold: float = 0.9) -> Figure:
    """Histograms of the cosines (rows: data sets, columns: times), as fractions of the pairs.

    The cosines are clipped to [-1, 1] first: computed in float32, an aligned pair's cosine can round to
    just above 1 and would fall outside the last bin, so that a panel's bars would no longer add up to 1.
    """
    import matplotlib.pyplot as plt

    rows, cols = len(panels), len(times)
    fig, axes = plt.subplots(rows, cols, figsize=(2.5 * cols + 1.2, 2.4 * rows + 0.6), sharex=True, sharey="row",
                             squeeze=False, layout="constrained")
    for row, (label, point) in enumerate(panels.items()):
        for col, t in enumerate(times):
            k = int(np.argmin(np.abs(point.curves.ts - t)))
            cos = np.clip(point.curves.cosines[k], -1.0, 1.0)
            ax = axes[row, col]
            ax.hist(cos, bins=HISTOGRAM_BINS, weights=np.full(cos.size, 1.0 / cos.size), color=f"C{row}")
            ax.axvline(threshold, color="gray", ls="--", lw=1)
            ax.set_xticks([-1, 0, 1])
            if row == 0:
                ax.set_title(f"t = {t:g}", fontsize=12)
        axes[row, 0].set_ylabel(f"{label}\nfraction of pairs", fontsize=11)
    for ax in axes[-1]:
        ax.set_xlabel("cosine", fontsize=11)
    fig.suptitle(r"Cosine between $u^*(x_t, t)$ and $x_1 - x_0$ over the pairs", fontsize=13)
    return fig


def fraction_figure(grid: Grid, families: Sequence[str], n: int, *, level: float = 0.5, threshold: float = 0.9
                    ) -> Figure:
    """F against t (logit axis, i.e. log-SNR spacing), one panel per family (one above the other, so that the
    figure keeps the page's width and its legends their size) and one curve per d, at n points."""
    import matplotlib.pyplot as plt

    rows = max(len(families), 1)
    fig, axes = plt.subplots(rows, 1, figsize=(PAGE_WIDTH, 3.4 * rows), squeeze=False, layout="constrained")
    for ax, family in zip(axes[:, 0], families, strict=False):
        sub = grid.of(family, n=n)
        colours = plt.cm.viridis(np.linspace(0, 0.9, max(len(sub), 1)))
        for colour, (_, r) in zip(colours, sub.iterrows(), strict=False):
            ax.plot(r["ts"], r["fraction"], "-", color=colour, lw=1.6, label=f"d = {r['d']}")
            if np.isfinite(r["t_star"]):
                ax.plot([r["t_star"]], [level], "o", color=colour, ms=5)
        ax.axhline(level, color="gray", ls=":", lw=0.8)
        _logit_time_axis(ax)
        ax.set(xlabel="t (logit scale: even steps in log-SNR)", ylabel=f"fraction with cosine > {threshold}",
               ylim=(-0.02, 1.02), title=f"{family.replace('_', ' ')}, n = {n}")
        legend_outside(ax, fontsize=LEGEND_SIZE, frameon=False)
    return fig


def laws_figure(grid: Grid, laws: LawFits) -> Figure:
    """Per family: s* against log(n)/d with intervals and the fitted laws, and below it the residuals."""
    import matplotlib.pyplot as plt

    families = [f for f in laws.families if not grid.of(f).empty]
    cols = 2 if len(families) > 1 else 1
    blocks = math.ceil(len(families) / cols)
    fig = plt.figure(figsize=(6.0 * cols + 1.0, 5.6 * blocks), layout="constrained")
    spec = fig.add_gridspec(2 * blocks, cols, height_ratios=[2.4, 1] * blocks)
    norm = plt.Normalize(vmin=1, vmax=math.log2(max(grid.points["d"].max(), 2)))
    styles = {"power": ("--", "x", "C3"), "capacity": ("-", "o", "C0")}
    for i, family in enumerate(families):
        ax = fig.add_subplot(spec[2 * (i // cols), i % cols])
        rax = fig.add_subplot(spec[2 * (i // cols) + 1, i % cols], sharex=ax)
        sub = grid.of(family)
        sub = sub[np.isfinite(sub["t_star"])]
        ax.set_title(family.replace("_", " "), fontsize=12)
        if sub.empty:
            continue
        x = np.log(sub["n"].to_numpy(np.float64)) / sub["d"].to_numpy(np.float64)
        s_star = time_to_snr(sub["t_star"].to_numpy())
        low, high = time_to_snr(sub["low"].to_numpy()), time_to_snr(sub["high"].to_numpy())
        err = np.clip(np.nan_to_num(np.stack([s_star - low, high - s_star]), posinf=0.0, neginf=0.0), 0, None)
        ax.errorbar(x, s_star, yerr=err, fmt="none", ecolor="gray", lw=0.8, zorder=2)
        ax.scatter(x, s_star, c=np.log2(sub["d"]), cmap="viridis", norm=norm, s=22, zorder=3)
        grid_x = np.geomspace(x.min() / 1.5, x.max() * 1.5, 200)
        for law, (style, marker, colour) in styles.items():
            fit = laws.fits.get((family, law))
            if fit is None:
                continue
            ax.plot(grid_x, fit.c * np.exp(fit.alpha * feature_of_rate(law, grid_x)), style, color="k",
                    lw=1, label=f"{law} law")
            rax.plot(np.log(fit.n) / fit.d, fit.residuals, marker, ms=5, color=colour, ls="none", label=law)
        ax.set(xscale="log", yscale="log", ylabel="s* = t* / (1 - t*)")
        rax.axhline(0, color="gray", lw=0.8)
        rax.set(xlabel="log(n) / d", ylabel="residual in log s*")
        for axis in (ax.xaxis, ax.yaxis):
            plain_log_axis(axis)  # the residual panel shares the x axis
    handles = [plt.Line2D([], [], color="k", ls=styles[law][0], label=f"{law} law (top)") for law in LAWS]
    handles += [plt.Line2D([], [], color=styles[law][2], marker=styles[law][1], ls="none",
                           label=f"{law} residuals (bottom)") for law in LAWS]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, frameon=False)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=fig.axes, label="log2 d", shrink=0.6)
    return fig


def losses_figure(ratios: LossRatios) -> Figure:
    """R(t) against t (logit axis), one panel per family and one curve per d; last panel: R against d."""
    import matplotlib.pyplot as plt

    families = ratios.families()
    rows = math.ceil((len(families) + 1) / 2)  # two panels a row, so that the figure keeps the page's width
    fig, grid_axes = plt.subplots(rows, 2, figsize=(PAGE_WIDTH, 3.9 * rows), squeeze=False, layout="constrained")
    axes = grid_axes.reshape(1, -1)
    for ax in axes[0, len(families) + 1:]:
        ax.set_axis_off()
    for ax, family in zip(axes[0], families, strict=False):
        rs = ratios.of(family)
        colours = plt.cm.viridis(np.linspace(0, 0.9, len(rs)))
        for colour, r in zip(colours, rs, strict=True):
            ax.plot(r.ts, r.per_time, "-", color=colour, lw=1.5, label=f"d = {r.d}")
        _logit_time_axis(ax, (0.01, 0.1, 0.5, 0.9, 0.99))
        ax.set(xlabel="t (logit scale)", ylabel="R(t)", ylim=(-0.02, 1.02),
               title=f"{family.replace('_', ' ')}, n = {rs[0].n}")
        legend_below(ax, ncol=2, fontsize=LEGEND_SIZE)
    ax = axes[0, len(families)]
    for i, family in enumerate(families):
        rs = ratios.of(family)
        ax.errorbar([r.d for r in rs], [r.overall for r in rs], yerr=[2 * r.overall_se for r in rs], fmt="o-",
                    color=f"C{i}", ms=4, label=family.replace("_", " "))
    ax.axhline(LOSS_RATIO_SMALL, color="gray", ls="--", lw=0.8)
    ax.set(xscale="log", xlabel="d", ylabel="R, t ~ U(0, 1)", title="over t, against d")
    legend_below(ax, ncol=1, fontsize=LEGEND_SIZE)
    return fig
