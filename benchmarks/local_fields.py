"""Benchmark of the patch field :class:`fmlib.local_fields.PatchField`: patches scored per second, against a GEMM.

For each configuration (image shape, n training images, B queries, patch size P, equivariant or
local) the field's ``posterior_mean`` at t = 0.9 scores every (query patch, training patch) pair:
B H W x n H W pairs (equivariant) or B x n per position, H W positions (local), each an inner
product of C P^2 numbers, followed by the exp, the running maximum and the weighted sums. The
reference is the bare matrix product of the same sizes (the same query blocks against the
training patches, already cut and held in memory, written into a reused buffer): what any exact
method must at least do. Printed: pairs per second of the field and of the bare products, and the
ratio of their times (field / bare; 1 would be GEMM speed). Times are medians over rounds that
interleave the two; the machine is shared, so the ratio is the result, not the absolute times.

Usage::

    python benchmarks/local_fields.py [--device auto|cpu|cuda] [--dtype float32|float64] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

from fmlib._checks import resolve_device
from fmlib.local_fields import QUERY_ROWS, PatchField

TIME = 0.9
SEED = 0

FULL = [  # (C, H, W), n, B, P, equivariant
    ((1, 8, 8), 900, 64, 3, True),
    ((1, 8, 8), 900, 64, 5, True),
    ((1, 8, 8), 900, 64, 7, True),
    ((1, 8, 8), 900, 64, 5, False),
    ((1, 8, 8), 900, 64, 15, False),
    ((3, 32, 32), 20, 16, 5, True),
    ((3, 32, 32), 20, 16, 9, True),
    ((3, 32, 32), 2000, 64, 9, False),
]
QUICK = [
    ((1, 8, 8), 300, 32, 3, True),
    ((1, 8, 8), 300, 32, 5, True),
    ((1, 8, 8), 300, 32, 5, False),
    ((3, 32, 32), 10, 8, 5, True),
]


def bare_products(field: PatchField, x: Tensor) -> Callable[[], None]:
    """The matrix products of the field's size: query blocks (or positions) against all training patches."""
    queries = field._query_patches(x)  # (G, M, k)
    keys = torch.cat([k for k, _, _ in field._chunks(field.n)], dim=1)  # (G, n H W or n, k)
    if field.equivariant:
        rows = min(queries.shape[1], QUERY_ROWS)
        per_chunk = field._images_per_chunk(rows) * field.pixels
        buffer = torch.empty(rows, per_chunk, dtype=x.dtype, device=x.device)

        def run() -> None:
            for s in range(0, queries.shape[1], rows):
                q = queries[0, s : s + rows]
                for c in range(0, keys.shape[1], per_chunk):
                    k = keys[0, c : c + per_chunk]
                    torch.mm(q, k.T, out=buffer[: q.shape[0], : k.shape[0]])

        return run
    per_chunk = field._images_per_chunk(x.shape[0])
    buffer = torch.empty(queries.shape[0], queries.shape[1], per_chunk, dtype=x.dtype, device=x.device)

    def run_local() -> None:
        for c in range(0, keys.shape[1], per_chunk):
            k = keys[:, c : c + per_chunk]
            torch.bmm(queries, k.transpose(1, 2), out=buffer[:, :, : k.shape[1]])

    return run_local


def timed(function: Callable[[], object], sync: Callable[[], None]) -> float:
    sync()
    start = time.perf_counter()
    function()
    sync()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    device, dtype = resolve_device(args.device), getattr(torch, args.dtype)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    torch.set_flush_denormal(True)
    print(f"device {device}, {args.dtype}, threads {torch.get_num_threads()}, t = {TIME}")
    print("| image | n | B | P | kind | pairs | field pairs/s | GEMM pairs/s | field / GEMM |")
    print("|---|---|---|---|---|---|---|---|---|")
    for shape, n, batch, patch, equivariant in QUICK if args.quick else FULL:
        gen = torch.Generator(device=device).manual_seed(SEED)
        d = shape[0] * shape[1] * shape[2]
        data = torch.randn(n, d, generator=gen, dtype=dtype, device=device)
        index = torch.randint(0, n, (batch,), generator=gen, device=device)
        x = TIME * data[index] + (1 - TIME) * torch.randn(batch, d, generator=gen, dtype=dtype, device=device)
        field = PatchField(data, shape, patch, equivariant=equivariant)
        bare = bare_products(field, x)
        pixels = shape[1] * shape[2]
        pairs = batch * pixels * n * (pixels if equivariant else 1)

        def score(field: PatchField = field, x: Tensor = x) -> Tensor:
            return field.posterior_mean(x, TIME)

        score(), bare()  # warm-up
        field_times, bare_times = [], []
        for _ in range(args.rounds):
            field_times.append(timed(score, sync))
            bare_times.append(timed(bare, sync))
        tf, tb = statistics.median(field_times), statistics.median(bare_times)
        kind = "equivariant" if equivariant else "local"
        image = "x".join(map(str, shape))
        print(f"| {image} | {n} | {batch} | {patch} | {kind} | {pairs:.2e} | {pairs / tf:.2e} | {pairs / tb:.2e} "
              f"| {tf / tb:.2f} |", flush=True)


if __name__ == "__main__":
    main()
