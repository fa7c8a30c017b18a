"""Benchmark of the per-sample gradient variance :func:`fmlib.gradients.gradient_variance`.

A small MLP velocity field v(x, t) = MLP([x, t]) (d = 2, two hidden layers of ``--width`` units,
SiLU), the flow matching loss on ``--samples`` noisy-interpolant samples of the 180-degree pairing;
the trace of the per-sample gradient covariance computed (a) with ``torch.func`` (``vmap`` over
``grad`` over ``functional_call``, in chunks) and (b) with a Python loop of ``torch.autograd.grad``
calls, one per sample. Prints both times, their ratio, and the relative difference of the traces.
With ``--loop-samples m < samples`` the loop is timed on the first m samples and its time is scaled
by samples / m (printed as extrapolated).

Usage::

    python benchmarks/gradient_variance.py [--samples 10000] [--loop-samples 10000] [--width 64]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch import Tensor, nn

from fmlib.couplings import noisy_interpolant, rotation_shift_map
from fmlib.gradients import flow_matching_loss, gradient_variance


class SmallMLP(nn.Module):
    """v(x, t) = MLP([x, t]): d + 1 -> width -> width -> d, SiLU."""

    def __init__(self, d: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d + 1, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                                 nn.Linear(width, d))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.net(torch.cat([x, t[:, None]], dim=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--loop-samples", type=int, default=None, help="samples the loop is timed on (default: all)")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--chunk-size", type=int, default=2048)
    args = parser.parse_args()
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = SmallMLP(2, args.width)
    x0 = torch.randn(args.samples, 2, generator=g)
    x1 = rotation_shift_map(2, dtype=torch.float32)(x0)
    t = torch.rand(args.samples, generator=g)
    s = noisy_interpolant(x0, x1, t, sigma=0.05, generator=g)
    batch = (s.x_t, s.t, s.target)
    loop_n = min(args.loop_samples or args.samples, args.samples)
    params = sum(p.numel() for p in model.parameters())
    print(f"threads={torch.get_num_threads()} OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')} "
          f"load average={os.getloadavg()[0]:.1f}; MLP with {params} parameters, {args.samples} samples")

    gradient_variance(model, flow_matching_loss, *(b[:64] for b in batch))  # warm-up
    start = time.perf_counter()
    fast = gradient_variance(model, flow_matching_loss, *batch, chunk_size=args.chunk_size)
    t_vmap = time.perf_counter() - start

    start = time.perf_counter()
    slow = gradient_variance(model, flow_matching_loss, *(b[:loop_n] for b in batch), chunk_size=args.chunk_size,
                             vectorised=False)
    t_loop = (time.perf_counter() - start) * args.samples / loop_n
    note = "" if loop_n == args.samples else f" (extrapolated from {loop_n} samples)"
    print(f"vmap: {t_vmap:.2f} s   loop: {t_loop:.2f} s{note}   ratio loop / vmap: {t_loop / t_vmap:.1f}x")
    if loop_n == args.samples:
        print(f"traces: vmap {fast.trace:.6g}, loop {slow.trace:.6g}, "
              f"relative difference {abs(fast.trace - slow.trace) / slow.trace:.2e}")


if __name__ == "__main__":
    main()
