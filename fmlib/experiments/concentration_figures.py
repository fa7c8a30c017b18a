r"""The figures of chapter 2 (``notebooks/02_concentration.md``), drawn from what
:mod:`fmlib.experiments.concentration` measures and summarises.

:func:`figure_law` draws histograms of the standardised log-ratio of two weights against
:math:`N(0, 1)`; :func:`figure_vs_t` the probability that some point outweighs :math:`y_k` against t on
simplices (bound, exact value, Monte-Carlo frequency); :func:`figure_dims` the same simplex in every
dimension and the differences in standard errors; :func:`figure_slack` the ratio bound / probability;
:func:`figure_heat` the measured probability over the plane :math:`(t, \delta)` with the level sets;
:func:`figure_gauss` Gaussian data across dimensions; :func:`figure_digits` the scikit-learn digits.
The Monte Carlo, the checks, the verdict rule and the summaries the figures take are in
:mod:`fmlib.experiments.concentration`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatter
from scipy import stats

from fmlib.experiments.concentration import (
    ConcentrationGrid,
    GaussSummary,
    LawChecks,
    PlaneSummary,
    normal_regime,
    uneven_sets,
)
from fmlib.plots import legend_below
from fmlib.stats import binomial_limits, standard_error
from fmlib.theory import (
    concentration_bound,
    concentration_time,
    gaussian_tail_bound,
    not_concentrated_bound,
    simplex_outweigh_probability,
)

__all__ = [
    "PlainLogFormatter",
    "figure_digits",
    "figure_dims",
    "figure_gauss",
    "figure_heat",
    "figure_law",
    "figure_slack",
    "figure_vs_t",
    "spaced_labels",
]


def _figure(ncols: int, width: float, height: float, **options: Any) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(1, ncols, figsize=(width, height), layout="constrained", squeeze=False, **options)
    return fig, axes[0]


def figure_law(measured: ConcentrationGrid) -> Figure:
    """Histograms of the standardised log-ratio w at the first positive time against N(0, 1), for three data sets."""
    samples = measured.w_samples
    fig, axes = _figure(len(samples), 3.6 * len(samples), 3.4, sharey=True)
    grid_w = np.linspace(-4.5, 4.5, 200)
    titles = {"plane": "simplex", "gauss": "Gaussian data", "digits": "digits"}
    for ax, ((block, n, d), (w, ks)) in zip(axes, samples.items(), strict=False):
        ax.hist(w, bins=40, density=True, color="tab:blue", alpha=0.6, label="Monte Carlo")
        ax.plot(grid_w, stats.norm.pdf(grid_w), "k-", label="$N(0, 1)$")
        ax.set(title=f"{titles[block]}, N = {n}, d = {d}\nKS p-value {ks:.2f}", xlabel="standardised log-ratio $w$")
    axes[0].set_ylabel("density")
    legend_below(axes[0])
    return fig


def figure_vs_t(measured: ConcentrationGrid, plane: PlaneSummary) -> Figure:
    """P[some vertex outweighs y_k] against t on simplices: bound, exact value and frequency, linear and log scale."""
    spec, fine = measured.spec, measured.spec.fine_t
    part_of = measured.block("plane")
    fig, axes = _figure(2, 11, 4.6)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, log_scale in zip(axes, (False, True), strict=False):
        for color, delta in zip(colors, plane.shown, strict=False):
            part = part_of[np.isclose(part_of["delta"], delta)]
            ax.plot(fine, concentration_bound(fine, delta, spec.n_simplex), color=color, lw=1.8,
                    label=f"$\\delta$ = {delta:.3g}")
            ax.plot(fine, simplex_outweigh_probability(fine, delta, spec.n_simplex), color=color, ls="--", lw=1)
            keep = part["count"] > 0 if log_scale else part["count"] >= 0
            ax.errorbar(part["t"][keep], part["p"][keep], yerr=part["se"][keep], fmt="o", ms=3.5, color=color,
                        capsize=2)
        ax.set(xlabel="t", ylabel="P[some point outweighs $y_k$]")
    axes[0].set_title(f"simplex of N = {spec.n_simplex} points")
    axes[1].set(yscale="log", ylim=(0.3 / spec.n_draws, 1.5), title="log scale (frequencies 0 not shown)")
    handles = [Line2D([], [], color="k", lw=1.8, label="bound $B_1$"), Line2D([], [], color="k", ls="--", lw=1,
               label="exact"), Line2D([], [], color="k", marker="o", ls="", ms=3.5, label="Monte Carlo")]
    legend_below(axes[0], ncol=4)
    legend_below(axes[1], ncol=2, handles=handles)
    return fig


def figure_dims(measured: ConcentrationGrid, law: LawChecks) -> Figure:
    """The fixed simplex in every d against the exact value, and the differences in standard errors."""
    spec, sweep, fine = measured.spec, measured.block("d"), measured.spec.fine_t
    fig, axes = _figure(2, 11, 4.4)
    palette = plt.cm.viridis(np.linspace(0, 0.9, len(spec.dims)))
    for color, d in zip(palette, sorted(sweep["d"].unique()), strict=False):
        part = sweep[sweep["d"] == d]
        axes[0].errorbar(part["t"], part["p"], yerr=part["se"], fmt="o-", ms=3, lw=0.8, color=color, capsize=2,
                         label=f"d = {d}")
        z = (part["p"] - part["exact"]) / standard_error(part["exact"], spec.n_draws)
        axes[1].plot(part["t"], z.where(normal_regime(part["exact"], spec.n_draws)), "o-", ms=3, lw=0.8, color=color)
    axes[0].plot(fine, simplex_outweigh_probability(fine, spec.delta_sweep, spec.n_dims_points), "k--", lw=1,
                 label="exact")
    axes[0].plot(fine, concentration_bound(fine, spec.delta_sweep, spec.n_dims_points), "k-", lw=1.5, label="bound")
    axes[0].set(xlabel="t", ylabel="P[some point outweighs $y_k$]",
                title=f"simplex, N = {spec.n_dims_points}, $\\delta$ = {spec.delta_sweep:g}")
    legend_below(axes[0], ncol=4)
    for sign in (-1, 1):
        axes[1].axhline(sign * law.z_limit, color="gray", ls=":")
    axes[1].axhline(0, color="k", lw=0.5)
    axes[1].set(xlabel="t", ylabel="(Monte Carlo − exact) / s.e.", title="differences in standard errors")
    return fig


def figure_slack(measured: ConcentrationGrid) -> Figure:
    """The ratio bound / probability: on simplices (exact and measured), and on data whose distances vary."""
    spec, sweep, fine = measured.spec, measured.block("N"), measured.spec.fine_t[1:]
    fig, axes = _figure(2, 11, 4.8)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for color, n in zip(colors, sorted(sweep["N"].unique()), strict=False):
        part = sweep[sweep["N"] == n]
        bound_fine = concentration_bound(fine, spec.delta_sweep, n)
        exact_fine = simplex_outweigh_probability(fine, spec.delta_sweep, n)
        ok = exact_fine > 1e-300
        axes[0].plot(fine[ok], bound_fine[ok] / exact_fine[ok], color=color, label=f"N = {n}")
        axes[0].plot(fine[ok], gaussian_tail_bound(fine[ok], spec.delta_sweep, n) / exact_fine[ok], color=color,
                     ls=":", lw=1)
        seen = part[(part["count"] >= 5) & (part["t"] > 0)]
        low, high = binomial_limits(seen["count"].to_numpy(), spec.n_draws, 0.025)
        ratio = seen["bound"] / seen["p"]
        axes[0].errorbar(seen["t"], ratio, yerr=[ratio - seen["bound"] / high, seen["bound"] / low - ratio], fmt="o",
                         ms=3, color=color, capsize=2)
    axes[0].set(yscale="log", xlabel="t", ylabel="bound / probability",
                title=f"simplices, $\\delta$ = {spec.delta_sweep:g}")
    for ax in axes:
        ax.axhline(1, color="k", lw=0.5)
    legend_below(axes[0], ncol=2)
    for color, (label, part) in zip(["tab:purple", "tab:brown", "tab:olive"], uneven_sets(measured), strict=False):
        seen = part[(part["count"] >= 5) & (part["t"] > 0)]
        axes[1].plot(seen["t"], seen["bound"] / seen["p"], "o-", color=color, ms=3, label=label)
        axes[1].plot(seen["t"], seen["union"] / seen["p"], "s--", color=color, ms=3, mfc="none")
    axes[1].set(yscale="log", xlabel="t", ylabel="bound / measured frequency", title="distances that vary")
    handles, _ = axes[1].get_legend_handles_labels()
    handles += [Line2D([], [], color="k", marker="o", ms=3, label="bound with $\\delta$"),
                Line2D([], [], color="k", marker="s", ms=3, mfc="none", ls="--", label="union, own distances")]
    legend_below(axes[1], ncol=2, handles=handles)
    return fig


def figure_heat(measured: ConcentrationGrid, plane: PlaneSummary) -> Figure:
    """The measured probability over the plane (t, delta), with the level sets of the bound, the exact value and
    the frequency."""
    spec, separations = measured.spec, measured.spec.separations
    heat = measured.block("plane").pivot(index="delta", columns="t", values="p").drop(columns=0.0)
    t_cols = heat.columns.to_numpy()
    fig, axes = _figure(1, 8.5, 5.2)
    ax = axes[0]
    t_edges = np.concatenate([[t_cols[0] ** 1.2], np.sqrt(t_cols[1:] * t_cols[:-1]), [1 - (1 - t_cols[-1]) ** 1.2]])
    if len(separations) > 1:
        d_edges = np.sqrt(separations[1:] * separations[:-1])
        d_edges = np.concatenate([[separations[0] ** 2 / d_edges[0]], d_edges, [separations[-1] ** 2 / d_edges[-1]]])
    else:
        d_edges = separations[0] * np.array([0.8, 1.25])
    floor = 0.5 / spec.n_draws
    mesh = ax.pcolormesh(t_edges, d_edges, np.log10(np.maximum(heat.to_numpy(), floor)), shading="flat",
                         cmap="magma", vmin=math.log10(floor), vmax=0)
    fig.colorbar(mesh, ax=ax, label="log10 measured probability")
    delta_line = np.geomspace(d_edges[0], d_edges[-1], 200)
    ax.plot(concentration_time(delta_line, spec.n_simplex, level=spec.level), delta_line, color="tab:cyan", lw=2,
            label=f"bound = {spec.level:g}")
    ax.plot(plane.exact_t, separations, color="white", ls="--", lw=1.2, label=f"exact = {spec.level:g}")
    ax.plot(plane.measured_t, separations, "o", color="tab:green", ms=5, label=f"measured = {spec.level:g}")
    ax.set(xscale="logit", yscale="log", xlabel="t", ylabel="separation $\\delta$",
           title=f"P[some point outweighs $y_k$], simplex of N = {spec.n_simplex}")
    ax.set_xlim(t_edges[0], t_edges[-1])
    ax.yaxis.set_major_formatter(PlainLogFormatter())  # plain numbers (6, not 6 x 10^0)
    ax.yaxis.set_minor_formatter(PlainLogFormatter(minor_thresholds=(2, 0.5)))
    legend = legend_below(ax, ncol=3)
    legend.get_frame().set_facecolor("0.85")
    legend.set_frame_on(True)
    return fig


class PlainLogFormatter(LogFormatter):
    """Labels the ticks of a log axis that :class:`~matplotlib.ticker.LogFormatter` labels, in plain numbers."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def spaced_labels(ticks: Sequence[float], min_ratio: float = 3.0) -> list[str]:
    """Labels of the ticks of a log axis, every tick labelled: a label within ``min_ratio`` of the last one on
    its line goes one line lower (2048 and 4096 side by side would otherwise print as one number)."""
    labels, last = [], [-math.inf, -math.inf]  # the last labelled tick on the first and on the second line
    for tick in ticks:
        line = 0 if math.log(tick) - last[0] >= math.log(min_ratio) else 1
        labels.append("\n" * line + f"{tick:g}")
        last[line] = math.log(tick)
    return labels


def figure_gauss(measured: ConcentrationGrid, gauss: GaussSummary) -> Figure:
    """Gaussian data: separations against d, concentration times against d, and the probability against s delta."""
    spec, fresh, embedded = measured.spec, gauss.fresh, gauss.embedded
    d0 = min(spec.gauss_dims)
    fig = plt.figure(figsize=(11, 8.4), layout="constrained")
    top, bottom = fig.subfigures(2, 1)
    axes = top.subplots(1, 2)
    axes[0].loglog(fresh["d"], fresh["delta_min"], "o-", label="fresh: $\\delta$ (minimum)")
    axes[0].loglog(fresh["d"], fresh["delta_median"], "s-", label="fresh: median")
    axes[0].loglog(fresh["d"], np.sqrt(2 * fresh["d"]), "k:", label="$\\sqrt{2d}$")
    axes[0].loglog(embedded["d"], embedded["delta_min"], "o--", color="gray",
                   label=f"embedded from d = {d0}: $\\delta$")
    axes[0].set(xlabel="d", ylabel="distance", title=f"separation of N = {spec.n_gauss} points")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    shown = np.isfinite(fresh["t measured"])
    axes[1].semilogx(fresh["d"][shown], fresh["t measured"][shown], "o-", label="fresh: measured")
    axes[1].semilogx(fresh["d"], fresh["t bound"], "o:", color=colors[0], label="fresh: bound")
    shown = np.isfinite(embedded["t measured"])
    axes[1].semilogx(embedded["d"][shown], embedded["t measured"][shown], "s-", color="gray",
                     label="embedded: measured")
    axes[1].semilogx(embedded["d"], embedded["t bound"], "s:", color="gray", label="embedded: bound")
    simplex_t = gauss.simplex_t[np.isfinite(gauss.simplex_t)]
    axes[1].semilogx(simplex_t.index, simplex_t.to_numpy(), "^-", color=colors[2],
                     label=f"simplex, N = {spec.n_dims_points}: measured")
    axes[1].set(xlabel="d", ylabel=f"concentration time (level {spec.level:g})", ylim=(0, 1.02),
                title="from when P[not largest] < level")
    for ax, ticks in zip(axes, (spec.gauss_dims, sorted({*spec.gauss_dims, *spec.dims})), strict=True):
        ax.set_xticks(ticks, spaced_labels(ticks))
        ax.minorticks_off()
        legend_below(ax, ncol=2, fontsize=9)
    ax = bottom.subplots()
    palette = plt.cm.viridis(np.linspace(0, 0.9, len(spec.gauss_dims)))
    u_line = np.geomspace(0.05, 60, 300)
    gauss_rows = measured.block("gauss")
    for color, d in zip(palette, spec.gauss_dims, strict=False):
        part = gauss_rows[(gauss_rows["d"] == d) & (gauss_rows["t"] > 0)]
        ax.semilogx(part["s"] * part["delta_median"], part["p"], "o-", ms=3, lw=0.8, color=color, label=f"d = {d}")
    ax.semilogx(u_line, simplex_outweigh_probability(u_line / (1 + u_line), 1.0, spec.n_gauss), "k--", lw=1,
                label=f"exact, simplex of N = {spec.n_gauss}")
    ax.set(xlabel="$s \\times$ median distance (simplex: $s\\,\\delta$)", ylabel="P[some point outweighs $y_k$]",
           title="fresh Gaussian data against $s$ times their median distance")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return fig


def figure_digits(measured: ConcentrationGrid) -> Figure:
    """The digits: frequencies of the two events, the bounds with the separation, the union with each pair's
    distance."""
    spec, digits = measured.spec, measured.block("digits")
    fine = spec.fine_t[1:]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = _figure(1, 8.5, 5.0)
    ax = axes[0]
    positive = digits["t"] > 0
    for column, color, marker, label in (("", colors[0], "o", "measured: some point outweighs $y_k$"),
                                         ("_eta", colors[1], "s", f"measured: $\\lambda_k < 1 - \\eta$, "
                                                                  f"$\\eta$ = {spec.eta:g}")):
        seen = positive & (digits[f"count{column}"] > 0)
        ax.errorbar(digits["t"][seen], digits[f"p{column}"][seen], yerr=digits[f"se{column}"][seen], fmt=marker,
                    ms=3.5, capsize=2, color=color, label=label)
    delta = float(digits["delta_min"].iloc[0])
    ax.plot(fine, concentration_bound(fine, delta, spec.n_digits), color=colors[0], label="bound $B_1$ with $\\delta$")
    ax.plot(fine, not_concentrated_bound(fine, delta, spec.n_digits, eta=spec.eta), color=colors[1],
            label="bound for $\\lambda_k < 1 - \\eta$")
    ax.plot(digits["t"][positive], digits["union"][positive], "--", color=colors[0],
            label="union with each pair's distance")
    ax.set(yscale="log", ylim=(0.3 / spec.n_draws, 1.5), xlabel="t", ylabel="probability",
           title=f"scikit-learn digits, N = {spec.n_digits}, d = 64")
    legend_below(ax, ncol=2)
    return fig
