"""Benchmark of the training loop of :mod:`fmlib.train`, as ratios measured in one run.

1. An EFM step (pool size M = 256, :class:`fmlib.losses.EFMSampler`) against a CFM step, whole
   training steps of the same network (draw, forward, backward, clipping, Adam, EMA) through
   :func:`fmlib.train.train_or_load`. Target: at most 1.5x.
2. :func:`fmlib.train.train_or_load` (CFM) against a bare torch loop of the same model: the same
   draws, forward, backward and Adam step written inline, (a) with the same gradient clipping and
   EMA update (``torch._foreach_lerp_``), so the ratio is the cost of fmlib's bookkeeping (the
   loss interface, logging every 100 steps, periodic checkpoints every 1000 steps, the
   AveragedModel wrapper), and (b) with neither, for scale. Target for (a): at most 1.1x.

Default network: the issue's digits MLP (d = 64, 3 hidden layers of 256, SiLU, 32 time features,
batch 128) on standard normal data of n = 1000 points. Runs interleave the loops round by round
(the order rotates) and report medians of per-round ratios, so load from other processes on this
shared machine slows both sides of a ratio alike; absolute steps/s are printed for scale only.

Usage::

    python benchmarks/training.py [--device auto|cpu|cuda] [--steps 300] [--rounds 5] [--threads 1] [--d 64]
        [--markdown OUT.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from fmlib._checks import resolve_device
from fmlib.nets import make_net
from fmlib.train import TrainConfig, train_or_load

sys.path.insert(0, str(Path(__file__).resolve().parent))
from closed_form import machine_line  # the benchmarks share one machine description

NET = {"width": 256, "depth": 3, "activation": "silu", "time_features": 32}
BATCH = 128
POOL = 256


def ours(data: torch.Tensor, steps: int, device: torch.device, loss: str, seed: int) -> float:
    """Seconds per step of :func:`train_or_load` (its loop time, stored checkpoints included)."""
    options = {"pool_size": POOL} if loss == "efm" else {}
    config = TrainConfig(net_options=NET, loss=loss, loss_options=options, steps=steps, batch_size=BATCH, seed=seed)
    with tempfile.TemporaryDirectory() as store:
        model = train_or_load(config, data, store=store, device=device, progress=False)
    return model.seconds / steps


def bare(data: torch.Tensor, steps: int, device: torch.device, *, clip_and_ema: bool, seed: int) -> float:
    """Seconds per step of an inline CFM loop on the same network."""
    torch.manual_seed(seed)
    net = make_net("mlp", data.shape[1], **NET).to(device)
    ema = [p.detach().clone() for p in net.parameters()]
    params = list(net.parameters())
    current = [p.detach() for p in params]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    generator = torch.Generator(device).manual_seed(seed + 1)
    rows = data.to(device)
    loss_sum = torch.zeros((), device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        x1 = rows[torch.randint(rows.shape[0], (BATCH,), generator=generator, device=device)]
        x0 = torch.randn(x1.shape, generator=generator, device=device)
        t = torch.rand(BATCH, generator=generator, device=device)
        x_t = torch.lerp(x0, x1, t.unsqueeze(1))
        loss = (net(x_t, t) - (x1 - x0)).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_and_ema:
            torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        optimizer.step()
        if clip_and_ema:
            torch._foreach_lerp_(ema, current, 0.001)
        loss_sum += loss.detach()
    float(loss_sum)
    return (time.perf_counter() - start) / steps


def interleaved(runs: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each run once per round (order rotated), after one warm-up round."""
    names = list(runs)
    for name in names:
        runs[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(runs[name]())
    return times


def ratio(times: dict[str, list[float]], a: str, b: str) -> tuple[float, float, float]:
    """Median, smallest and largest over rounds of time(a) / time(b) (the spread shows what the load did)."""
    per_round = [x / y for x, y in zip(times[a], times[b], strict=True)]
    return statistics.median(per_round), min(per_round), max(per_round)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--markdown", default="", help="also write the tables to this markdown file")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    data = torch.randn(1000, args.d, generator=torch.Generator().manual_seed(0))
    runs = {
        "cfm (train_or_load)": lambda: ours(data, args.steps, device, "cfm", 0),
        f"efm M={POOL} (train_or_load)": lambda: ours(data, args.steps, device, "efm", 0),
        "bare, clip + EMA": lambda: bare(data, args.steps, device, clip_and_ema=True, seed=0),
        "bare, no clip, no EMA": lambda: bare(data, args.steps, device, clip_and_ema=False, seed=0),
    }
    started = time.perf_counter()
    times = interleaved(runs, args.rounds)
    lines = [
        f"{machine_line(device)}; d {args.d}, MLP {NET}, batch {BATCH}, {args.steps} steps x {args.rounds} rounds",
        "",
        "| loop | steps/s (median) |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {1.0 / statistics.median(values):.1f} |" for name, values in times.items()]
    lines += ["", "| ratio (median over rounds) | value | rounds: smallest to largest | target |",
              "|---|---:|---:|---|"]
    efm = ratio(times, f"efm M={POOL} (train_or_load)", "cfm (train_or_load)")
    loop = ratio(times, "cfm (train_or_load)", "bare, clip + EMA")
    plain = ratio(times, "cfm (train_or_load)", "bare, no clip, no EMA")
    for label, (value, low, high), target in [
        (f"EFM step / CFM step at M = {POOL}", efm, 1.5),
        ("train_or_load step / bare loop, clip + EMA", loop, 1.1),
        ("train_or_load step / bare loop without them", plain, None),
    ]:
        verdict = "-" if target is None else f"<= {target}x: {'met' if value <= target else 'MISSED'}"
        lines.append(f"| {label} | **{value:.2f}x** | {low:.2f}x to {high:.2f}x | {verdict} |")
    lines += ["", "The steps/s are medians of each loop's own rounds and the ratios medians of per-round ratios; "
              "under load the two can differ (a round slowed by other jobs slows both loops of that round)."]
    lines += [
        "",
        f"Total run time {time.perf_counter() - started:.0f} s; 1-minute load average "
        f"{os.getloadavg()[0]:.1f} (other jobs share this machine).",
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text("# Training-loop benchmark\n\n" + text + "\n")


if __name__ == "__main__":
    main()
