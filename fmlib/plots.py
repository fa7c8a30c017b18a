"""One style for every figure of the book, and the few plot helpers chapters share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib as mpl
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colorbar import Colorbar
from matplotlib.figure import Figure
from matplotlib.legend import Legend

__all__ = ["PALETTE", "colorbar", "legend_outside", "use_style"]

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
        return ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=3, borderaxespad=0.0, **kwargs)
    raise ValueError(f"loc must be 'right' or 'lower', got {loc!r}")


def colorbar(mappable: ScalarMappable, ax: Axes | Sequence[Axes], label: str) -> Colorbar:
    """A labelled colour bar for ``mappable`` (an image, mesh or quiver), beside ``ax`` (one axes or several)."""
    bar = _figure_of(ax).colorbar(mappable, ax=ax)
    bar.set_label(label)
    return bar


def _figure_of(ax: Axes | Sequence[Axes]) -> Figure:
    """The figure of an axes, or of the first of several."""
    return (ax if isinstance(ax, Axes) else ax[0]).get_figure()
