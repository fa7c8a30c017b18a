"""Does the span basis cost no more than one pass of the closed form? The ratio of the two times, interleaved.

``fmlib.osdnet.span_basis(data, k)`` (one thin SVD of the (n, d) data, with its rank check) against
one call of ``ClosedFormField(data).velocity(x, t)`` on B = n query points (one pass over the data
for as many queries as points), in the same dtype (float32: the basis from the float64 Gram matrix;
float64: LAPACK's thin SVD), timed alternately round by round and summarised by medians; the
printed ratio (basis / closed-form pass) is the result (absolute times vary with the load).
Run: ``python benchmarks/span_basis.py [--rounds R]``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch

from fmlib.closed_form import ClosedFormField
from fmlib.data import make_dataset
from fmlib.osdnet import span_basis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print("| data | dtype | n | d | k | SVD / closed-form pass |")
    print("|---|---|---|---|---|---|")
    cases = [("subspace", 512, 256, 8), ("subspace", 4096, 256, 8), ("subspace", 2048, 1024, 32),
             ("digits", 1797, 64, 0)]
    for (name, n, d, k), dtype in itertools.product(cases, (torch.float32, torch.float64)):
        options = {"d": d, "k": k} if name == "subspace" else {}
        data = make_dataset(name, n, generator=torch.Generator().manual_seed(0), device="cpu", dtype=dtype, **options)
        field, x = ClosedFormField(data), torch.randn(n, data.shape[1], dtype=dtype)
        svd_times, pass_times = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            span_basis(data, k or None)
            svd_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            field.velocity(x, 0.5)
            pass_times.append(time.perf_counter() - start)
        ratio = statistics.median(svd_times) / statistics.median(pass_times)
        print(f"| {name} | {str(dtype)[6:]} | {n} | {data.shape[1]} | {k or 'rank'} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
