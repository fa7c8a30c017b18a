"""One style for every figure of the book, and the few plot helpers chapters share."""

from __future__ import annotations

import matplotlib as mpl
import seaborn as sns

__all__ = ["PALETTE", "use_style"]

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
