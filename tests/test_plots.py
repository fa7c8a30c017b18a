"""The shared figure helpers: legends beside the data, labelled colour bars."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fmlib.plots import colorbar, legend_outside


@pytest.mark.parametrize("loc", ["right", "lower"])
def test_legend_outside_does_not_cover_the_axes(loc):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="a line")
    legend = legend_outside(ax, loc=loc)
    fig.canvas.draw()
    box, frame = legend.get_window_extent(), ax.get_window_extent()
    assert not box.overlaps(frame), (box, frame)
    plt.close(fig)


def test_legend_outside_rejects_an_unknown_place():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="loc must be 'right' or 'lower'"):
        legend_outside(ax, loc="inside")
    plt.close(fig)


def test_colorbar_is_labelled_for_one_axes_or_several():
    fig, axes = plt.subplots(1, 2)
    mesh = axes[0].pcolormesh(np.arange(9.0).reshape(3, 3))
    assert colorbar(mesh, axes[0], "density").ax.get_ylabel() == "density"
    assert colorbar(mesh, list(axes), "log speed").ax.get_ylabel() == "log speed"
    plt.close(fig)


def test_a_lower_legend_takes_the_callers_options() -> None:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="a line")
    legend = legend_outside(ax, loc="lower", frameon=True, title="key")
    assert legend.get_frame_on() and legend.get_title().get_text() == "key"
    plt.close(fig)
