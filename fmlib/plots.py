"""One style for every figure of the book, and the few plot helpers chapters share."""

from __future__ import annotations

import matplotlib as mpl
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.legend import Legend

__all__ = ["PALETTE", "legend_below", "use_style"]

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


def legend_below(ax: Axes, *, ncol: int = 2, **options: object) -> Legend:
    """A legend under the axes, outside the data, so that it never covers a curve or a point.

    Meant for figures made with ``layout="constrained"`` (or saved with ``bbox_inches="tight"``),
    which make room for it. ``options`` go to :meth:`matplotlib.axes.Axes.legend`.
    """
    return ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=ncol, frameon=False, **options)
