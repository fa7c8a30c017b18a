"""The figures of chapter 3 (fmlib/experiments/stochastic_target_figures.py): what they draw is what they say."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from fmlib.experiments import stochastic_target as st
from fmlib.experiments import stochastic_target_figures as figs
from fmlib.plots import plain_log_axis

ONE_PLUS = float(np.nextafter(np.float32(1.0), np.float32(2.0)))  # a float32 cosine that rounded above 1


def _point(cosines: np.ndarray) -> st.PointMeasurement:
    """A measurement whose cosines are given, (T, B), at T times from 0.1."""
    ts = np.linspace(0.1, 0.9, cosines.shape[0])
    critical = st.CriticalTime(0.5, 0.4, 0.6, np.zeros(3), 0.95, 0.1, 0.5)
    return st.PointMeasurement("gaussian", 4, 10, st.CosineCurves(ts=ts, cosines=cosines), critical, 1.0, 0.0, 0.0)


def _bar_sums(fig) -> list[float]:
    """The sum of the drawn bar heights of every histogram panel."""
    return [sum(p.get_height() for p in ax.patches) for ax in fig.axes if ax.patches]


def _aligned_panels() -> dict[str, st.PointMeasurement]:
    spread = np.array([[-0.3, 0.2, 0.95, 1.0], [0.5, 1.0, 1.0, 1.0]])  # cosines exactly at 1 are in the last bin
    rounded = np.array([[0.99, 1.0, ONE_PLUS, ONE_PLUS], [ONE_PLUS, ONE_PLUS, ONE_PLUS, 1.0]])
    return {"spread": _point(spread), "rounded above 1": _point(rounded)}


def test_histogram_bars_add_up_to_one_for_cosines_at_and_just_above_one():
    fig = figs.histogram_figure(_aligned_panels(), [0.1, 0.9])
    sums = _bar_sums(fig)
    plt.close(fig)
    assert len(sums) == 4
    assert sums == pytest.approx([1.0] * 4)


def test_mutation_the_unclipped_cosines_lose_the_pairs_above_one():
    # what the figure drew before the fix: the raw cosines in the same bins; the pairs above 1 fall outside every bin
    raw = _aligned_panels()["rounded above 1"].curves.cosines
    sums = [np.histogram(c, figs.HISTOGRAM_BINS, weights=np.full(c.size, 1 / c.size))[0].sum() for c in raw]
    assert sums == pytest.approx([0.5, 0.25])


def _labels_in_view(axis) -> list[str]:
    low, high = axis.get_view_interval()
    return [label.get_text() for tick, label in zip(axis.get_majorticklocs(), axis.get_majorticklabels(), strict=True)
            if low <= tick <= high and label.get_text()]


@pytest.mark.parametrize("limits", [(0.22, 0.9), (0.03, 0.15), (0.8, 7.0), (1.0, 60.0)])
def test_a_short_log_axis_of_the_laws_figure_shows_several_labels(limits):
    fig, ax = plt.subplots()
    ax.plot(limits, limits)
    ax.set(xscale="log", xlim=limits)
    fig.canvas.draw()
    before = _labels_in_view(ax.xaxis)  # matplotlib's default, what Fig 3.3 showed for the digits and two moons
    plain_log_axis(ax.xaxis)
    fig.canvas.draw()
    after = _labels_in_view(ax.xaxis)
    plt.close(fig)
    assert len(after) >= 3, after
    if limits[1] / limits[0] < 10:  # the default labels one power of ten at most: the figure could not be read
        assert len(before) <= 1, before


PAGE_INCHES = 7.5
"""The book's text column (about 720 pixels at 96 per inch): a wider figure is shrunk on the page."""


def shown_legend_points(fig) -> float:
    """The smallest legend font size as the reader sees it: points times the shrinking to the page's width."""
    fig.canvas.draw()
    width = fig.get_tightbbox(fig.canvas.get_renderer()).width  # inches, as saved with bbox_inches="tight"
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    sizes = [text.get_fontsize() for legend in legends for text in legend.get_texts()]
    assert sizes, "the figure has no legend"
    return min(sizes) * min(1.0, PAGE_INCHES / width)


def _tiny_grid(families=("image_patches", "gaussian"), dims=(12, 48, 192, 768, 3072)) -> st.Grid:
    ts = np.linspace(0.01, 0.99, 9)
    rows = [{"family": f, "d": d, "n": 100, "ts": ts, "fraction": ts ** (d / 1000), "t_star": 0.5}
            for f in families for d in dims]
    return st.Grid(pd.DataFrame(rows))


def _tiny_losses(families=("gaussian", "image_patches", "digits"), dims=(3, 12, 48, 192, 768)) -> st.LossRatios:
    ts = np.linspace(0.01, 0.99, 9)
    return st.LossRatios(tuple(st.LossRatio(f, d, 100, ts, 1 - ts, np.full(9, 0.01), 0.3, 0.01, 1.0)
                               for f in families for d in dims))


def test_legends_of_figs_3_2_and_3_4_read_at_10_points_or_more_on_the_page():
    fraction = figs.fraction_figure(_tiny_grid(), ["image_patches", "gaussian"], 100)
    losses = figs.losses_figure(_tiny_losses())
    assert shown_legend_points(fraction) >= 10
    assert shown_legend_points(losses) >= 10
    plt.close("all")


def test_mutation_the_old_side_by_side_layout_shrinks_the_legends_below_10_points():
    """Before the fix Fig 3.2 was two panels of 6.4 inches side by side with 8-point legends (about 4 on the page)."""
    fig, axes = plt.subplots(1, 2, figsize=(12.8, 4.2), layout="constrained")
    for ax in axes:
        ax.plot([0, 1], [0, 1], label="d = 3072")
        ax.legend(fontsize=8)
    assert shown_legend_points(fig) < 10
    plt.close(fig)
