"""Chapter 1's figures and tables as a reader sees them: arrows that read, subsets and corrections said."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.quiver import Quiver

from fmlib.closed_form import ClosedFormField
from fmlib.experiments import closed_form as cf
from tests.test_closed_form_experiments import make_memorisation

matplotlib.use("Agg")


def _luminance(rgba) -> float:
    r, g, b = rgba[:3]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_field_arrows_have_one_readable_length_and_no_pale_colour():
    data = torch.tensor([[-1.0, 0.0], [1.0, 0.5], [0.0, -1.5]], dtype=torch.float64)
    fig = cf.figure_field_2d(ClosedFormField(data), times=(0.1, 0.95))
    quivers = [c for ax in fig.axes for c in ax.collections if isinstance(c, Quiver)]
    assert len(quivers) == 2
    for q in quivers:
        assert q.scale_units == "xy" and q.scale == pytest.approx(1.0 / cf.FIELD_ARROW_LENGTH)
        unit = np.isclose(np.hypot(q.U, q.V), 1.0)  # unit directions: arrows FIELD_ARROW_LENGTH long
        assert unit.mean() > 0.98  # (but where the field vanishes to round-off)
        assert q.cmap is cf.FIELD_COLOURS
    # mutation: plain viridis ends in pale yellow, unreadable on white where the speed is highest (t = 0.95)
    assert _luminance(matplotlib.colormaps["viridis"](1.0)) > 0.8
    assert max(_luminance(cf.FIELD_COLOURS(x)) for x in np.linspace(0, 1, 11)) < 0.75


def test_trajectory_figure_draws_the_first_shown_samples():
    m = make_memorisation()
    many = cf.Memorisation(**{**m.__dict__, "trajectory": torch.zeros(5, 100, 2)})
    fig = cf.figure_trajectories(many, torch.zeros(2, 2))
    assert len(fig.axes[0].lines) == cf.TRAJECTORIES_SHOWN
    fig = cf.figure_trajectories(many, torch.zeros(2, 2), shown=7)
    assert len(fig.axes[0].lines) == 7


def test_landing_table_says_its_p_values_are_uncorrected():
    m = make_memorisation(pvalue=0.004)
    table = m.table()
    column = "chi-square p (uniform ends, uncorrected)"
    assert list(table[column]) == [0.004, 0.004]
    assert m.law_pvalue_corrected == pytest.approx(0.008)  # what the prose quotes: Bonferroni over the solvers
