"""One style for every figure of the book, and the few plot helpers chapters share."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib as mpl
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.cm import ScalarMappable
from matplotlib.colorbar import Colorbar
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from matplotlib.transforms import offset_copy

__all__ = ["PALETTE", "colorbar", "legend_below", "legend_outside", "plain_log_axis", "use_style"]

PALETTE = "colorblind"


def use_style() -> None:
    """Apply the book's figure style: seaborn's ticks theme, colour-blind palette, readable sizes."""
    sns.set_theme(style="ticks", palette=PALETTE, context="notebook")
    mpl.rcParams.update({
        "figure.dpi": 100,
        "savefig.dpi": 110,
        "figure.autolayout": False,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "image.cmap": "magma",
    })


def legend_outside(ax: Axes, *, loc: str = "right", **kwargs: Any) -> Legend:
    """A legend beside the axes (``loc="right"``) or below them (``"lower"``), where it cannot cover data."""
    if loc == "right":
        return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)
    if loc == "lower":
        return legend_below(ax, ncol=3, **kwargs)
    raise ValueError(f"loc must be 'right' or 'lower', got {loc!r}")


def colorbar(mappable: ScalarMappable, ax: Axes | Sequence[Axes], label: str) -> Colorbar:
    """A labelled colour bar for ``mappable`` (an image, mesh or quiver), beside ``ax`` (one axes or several)."""
    bar = _figure_of(ax).colorbar(mappable, ax=ax)
    bar.set_label(label)
    return bar


def _figure_of(ax: Axes | Sequence[Axes]) -> Figure:
    """The figure of an axes, or of the first of several."""
    return (ax if isinstance(ax, Axes) else ax[0]).get_figure()


def legend_below(ax: Axes, *, ncol: int = 2, offset: float = 46.0, **options: object) -> Legend:
    """A legend under the axes, below their tick labels and x label, so that it never covers data.

    ``offset`` is the distance in points from the bottom of the axes to the top of the legend (room
    for one line of tick labels and the x label). Meant for figures made with
    ``layout="constrained"`` (or saved with ``bbox_inches="tight"``), which make room for it.
    ``options`` go to :meth:`matplotlib.axes.Axes.legend`.
    """
    anchor = offset_copy(ax.transAxes, fig=ax.figure, y=-offset, units="points")
    options = {"frameon": False, **options}
    return ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=anchor, ncol=ncol, **options)


def plain_log_axis(axis: Axis) -> None:
    """Label a log axis that spans too few decades to show two powers of ten (the one log-tick helper).

    Below one decade the ticks are 1, 1.5, 2, 3, 5 and 7 times the powers of ten, below two decades 1, 2 and 5 times,
    all labelled in plain numbers; minor tick labels are hidden (on a short log axis they overlap).
    """
    low, high = axis.get_view_interval()
    decades = math.log10(high / low) if 0 < low < high else math.inf
    if decades < 2:
        subs = (1, 1.5, 2, 3, 5, 7) if decades < 1 else (1, 2, 5)
        axis.set_major_locator(LogLocator(base=10, subs=subs))
        axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())
