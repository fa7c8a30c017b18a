"""Does the span basis cost no more than one pass of the closed form? The ratio of the two times, interleaved.

``fmlib.osdnet.span_basis(data, k)`` (the certified sketch where the data lie on a low-dimensional
subspace, the exact decomposition otherwise, with its rank check) against one call of
``ClosedFormField(data).velocity(x, t)`` on B = n query points (one pass over the data for as many
queries as points), in the same dtype, each warmed up once, then timed alternately round by round
and summarised by medians; the printed ratio (basis / closed-form pass) is the result (absolute
times vary with the load). The ``path`` column says which way the basis was computed; the last
cases are full-rank Gaussian data, where no sketch can be certified and the exact fallback runs.
Run: ``python benchmarks/span_basis.py [--rounds R] [--markdown OUT.md]``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from closed_form import machine_line  # the benchmarks share one machine description

from fmlib.closed_form import ClosedFormField
from fmlib.data import make_dataset
from fmlib.osdnet import span_basis, span_svd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--markdown", default="", help="also write the table to this markdown file")
    args = parser.parse_args()
    lines = [f"{machine_line(torch.device('cpu'))}; {args.rounds} rounds, medians", "",
             "| data | dtype | n | d | k | path | basis / closed-form pass |", "|---|---|---|---|---|---|---|"]
    print("\n".join(lines))
    cases = [("subspace", 512, 256, 8), ("subspace", 4096, 256, 8), ("subspace", 2048, 1024, 32),
             ("digits", 1797, 64, 0), ("gaussian", 512, 256, 8), ("gaussian", 2048, 1024, 0)]
    for (name, n, d, k), dtype in itertools.product(cases, (torch.float32, torch.float64)):
        options = {"subspace": {"d": d, "k": k}, "gaussian": {"d": d}}.get(name, {})
        data = make_dataset(name, n, generator=torch.Generator().manual_seed(0), device="cpu", dtype=dtype, **options)
        field, x = ClosedFormField(data), torch.randn(n, data.shape[1], dtype=dtype)
        path = "sketch" if span_svd(data, k or None).sketched else "exact"
        span_basis(data, k or None), field.velocity(x, 0.5)  # warm-up
        svd_times, pass_times = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            span_basis(data, k or None)
            svd_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            field.velocity(x, 0.5)
            pass_times.append(time.perf_counter() - start)
        ratio = statistics.median(svd_times) / statistics.median(pass_times)
        lines.append(f"| {name} | {str(dtype)[6:]} | {n} | {data.shape[1]} | {k or 'rank'} | {path} | {ratio:.2f} |")
        print(lines[-1])
    lines += ["", f"1-minute load average {os.getloadavg()[0]:.1f} (other jobs may share this machine)."]
    print(lines[-1])
    if args.markdown:
        Path(args.markdown).write_text("# Span basis against one closed-form pass\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
