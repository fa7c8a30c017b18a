"""Chapter 6's numbers for the prose and its figure of the 180-degree example (no training: tiny stand-ins)."""

from __future__ import annotations

import dataclasses

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from fmlib.experiments import pairings as ex

matplotlib.use("Agg")


def _variance(ot: list[float], rotated: list[float]) -> ex.GaussianVariance:
    rows = []
    for d, (a, b) in zip([2, 3, 10, 50], zip(ot, rotated, strict=True), strict=True):
        for pairs, loss in (("OT", a), ("rotated", b)):
            rows.append({"d": d, "pairs": pairs, "field": pairs, "sigma": 0.05, "loss": loss, "trace": 1.0,
                         "least_loss": loss, "matched": True})
            rows.append({"d": d, "pairs": pairs, "field": pairs, "sigma": 0.0, "loss": 0.0, "trace": 0.0,
                         "least_loss": 0.0, "matched": True})
            other = "rotated" if pairs == "OT" else "OT"
            rows.append({"d": d, "pairs": pairs, "field": other, "sigma": 0.05, "loss": 1e3, "trace": 5.0,
                         "least_loss": loss, "matched": False})
    return ex.GaussianVariance(table=pd.DataFrame(rows), samples=10, schedule="constant", angle=1.57)


def test_noise_cost_is_the_median_of_the_per_d_ratios_not_a_ratio_of_medians() -> None:
    variance = _variance([1.0, 1.0, 10.0, 10.0], [32.0, 30.0, 620.0, 740.0])
    ratios = ex.noise_cost_ratios(variance)
    assert ratios.to_dict() == pytest.approx({2: 32.0, 3: 30.0, 10: 62.0, 50: 74.0})
    sentence = ex.noise_cost_sentence(ratios)
    assert "median over the 4 dimensions of the ratio of their losses 47.0, from 30.0 to 74.0" in sentence
    # the former computation, median of the rotated losses over median of the OT losses, gave 59.3
    table = variance.table
    noisy = table[table["matched"] & (table["sigma"] > 0)].groupby("pairs")["loss"].median()
    assert f"{noisy['rotated'] / noisy['OT']:.1f}" == "59.3"
    assert "59.3" not in sentence
    assert "pays more" in sentence


def test_noise_cost_direction_and_missing_noise() -> None:
    cheaper = ex.noise_cost_sentence(ex.noise_cost_ratios(_variance([2.0] * 4, [1.0] * 4)))
    assert "pays less" in cheaper and "0.5" in cheaper
    clean = _variance([1.0] * 4, [2.0] * 4)
    clean = dataclasses.replace(clean, table=clean.table[clean.table["sigma"] == 0])
    assert ex.noise_cost_ratios(clean).empty
    assert "No run with noise" in ex.noise_cost_sentence(ex.noise_cost_ratios(clean))


def _rotation(names: list[str], *, far: float = 0.0) -> ex.RotationResult:
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(12, 2, generator=generator, dtype=torch.float64)
    ts = torch.linspace(0.0, 1.0, 21)
    paths = {name: ((1 - ts)[:, None, None] * x0[None] + ts[:, None, None] * (x0 + 5.0)[None]).float()
             for name in names}
    rows = [{"t": t, "radial": -3.0 * (1 - 2 * t), "rotation": 0.0, "run": name}
            for name in names for t in np.linspace(0.3, 0.7, 9)]
    rows += [{"t": t, "radial": far, "rotation": 0.0, "run": names[0]} for t in (0.0, 1.0)]
    return ex.RotationResult(x0=x0, paired=5.0 - x0, ot_image=x0 + 5.0, exact={}, learned={}, sigmas={}, ts=ts,
                             trajectories=paths, winding={}, jacobian=pd.DataFrame(rows), models={})


def test_figure_draws_every_networks_trajectories_with_labelled_axes() -> None:
    names = ["sigma=0", "sigma=0.05 constant", "sigma=0.05 bridge"]
    fig = ex.figure_rotation(_rotation(names), 0.05, shown=5)
    top, rates = fig.axes[:3], fig.axes[3]
    assert len(fig.axes) == 4
    assert [ax.get_title() for ax in top] == [f"network, {name}" for name in names]
    for ax in top:  # the bridge network's trajectories are drawn too, 5 per panel
        assert len(ax.lines) == 5
        assert ax.get_xlabel()
    assert top[0].get_ylabel() and rates.get_xlabel() == "t" and rates.get_ylabel()
    assert len(rates.lines) == len(names) + 2
    # every stand-in path ends at its OT image: all drawn green, and the legend says what the colours mean
    green = matplotlib.colors.to_hex("C2")
    assert {matplotlib.colors.to_hex(line.get_color()) for ax in top for line in ax.lines} == {green}
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "trajectory ends >= 2x nearer its pair" in labels and "trajectory ends >= 2x nearer its OT image" in labels


def test_trajectories_are_coloured_by_where_they_end() -> None:
    """Mutation: a colour that ignored the endpoint could not tell the three kinds apart."""
    result = _rotation(["sigma=0"])
    ts = result.ts[:, None, None].float()
    x0 = result.x0.float()
    ends = [5.0 - x0[:4], x0[4:8] + 5.0, x0[8:] + 0.0 * ts[-1]]  # to the pair, to the OT image, never moved
    paths = torch.cat([(1 - ts) * x0[:4] + ts * ends[0], (1 - ts) * x0[4:8] + ts * ends[1],
                       x0[8:].expand(len(result.ts), -1, -1)], dim=1)
    result = dataclasses.replace(result, trajectories={"sigma=0": paths})
    sides = ex.endpoint_sides(paths[-1], result.paired, result.ot_image)
    assert sides.tolist() == [1] * 4 + [-1] * 4 + [0] * 4
    fig = ex.figure_rotation(result, 0.05, shown=12)
    colours = [matplotlib.colors.to_hex(line.get_color()) for line in fig.axes[0].lines]
    red, green, grey = (matplotlib.colors.to_hex(c) for c in ("C3", "C2", "0.6"))
    assert colours == [red] * 4 + [green] * 4 + [grey] * 4


def test_largest_radial_rate_reads_only_the_window_around_one_half() -> None:
    result = _rotation(["sigma=0"], far=100.0)  # a large rate at t = 0 and 1 must not count
    assert ex.largest_radial_rate(result) == pytest.approx(1.2)
    assert ex.largest_radial_rate(result, 0.0, 1.0) == pytest.approx(100.0)
