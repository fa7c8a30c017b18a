"""Benchmark of the streaming closed form :class:`fmlib.closed_form.ClosedFormField`.

Everything runs at B = 256 query points on the path at t = 0.9 (``x = t y_j + (1 - t) z``, so
almost every posterior weight is tiny, the hard case for ``exp`` and for GEMM on subnormals), on
standard normal data, in one process with one thread setting, and reports times as RATIOS to the
two bare matrix products that any exact method does: ``x @ data.T`` (B x n) and ``W @ data`` with
``W`` a (B, n) softmax output (normal positive numbers).

1. Ratio table: ``ClosedFormField.velocity`` (field built once, outside the timing) against the two
   bare products, float32, n = 20,000, d = 3072, 784, 64, with the issue's targets.
2. Sweeps over n and d, float32 and float64: the streaming version, a ``torch.cdist`` version and
   a naive broadcast version ((B, 1, d) - (1, n, d) differences, then softmax); a method whose
   memory would exceed ``--memory-limit-gb`` is skipped. Peak extra memory of the streaming
   version (and, for scale, of the bare products) per configuration.
3. The largest size the sweeps use (n = 50,000, d = 16,384; with ``--quick`` n = 50,000,
   d = 3072), streaming only: time and peak extra memory.

Timings interleave the methods (the order rotates every round) after a warm-up call; times are
medians and ratios are medians of per-round ratios, so that a burst of load from other processes
slows both sides of a ratio alike. Peak extra memory is the high-water mark during one call above
the memory held before it, after one warm-up call (one-time library allocations are not counted):
on CUDA from ``torch.cuda.max_memory_allocated``; on CPU in a separate Python process, from the
resident set's high-water mark (``VmHWM``, reset before each call through ``/proc/self/clear_refs``)
with glibc told to return every block of 128 KiB or more to the system on free, so that reused
freed memory cannot hide a peak.

Usage::

    python benchmarks/closed_form.py [--device auto|cpu|cuda] [--quick] [--markdown OUT.md]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

from fmlib._checks import resolve_device
from fmlib.closed_form import ClosedFormField

BATCH = 256
"""Query points per call."""

TIME = 0.9
"""Time of the queries (0 = noise, 1 = data)."""

SEED = 0

TARGETS = {3072: 1.3, 784: 1.3, 64: 2.0}
"""Issue's targets, set for a CPU: velocity time / time of the two bare products, float32, n = 20,000."""

MEMORY_REQUIREMENT = (50_000, 3072, 700.0)
"""(n, d, MB): the streaming version's peak extra memory must stay under MB there."""

DTYPES = {"float32": torch.float32, "float64": torch.float64}

Method = Callable[[], object]


@dataclass(frozen=True)
class Grid:
    """What one run measures."""

    ratio_n: int
    ratio_dims: tuple[int, ...]
    ratio_dtypes: tuple[str, ...]
    ratio_rounds: tuple[int, int]
    ratio_seconds: float
    sweep_ns: tuple[int, ...]
    sweep_dims: tuple[int, ...]
    sweep_dtypes: tuple[str, ...]
    sweep_rounds: tuple[int, int]
    sweep_seconds: float
    largest: tuple[int, int]

    def sweep_configs(self) -> list[tuple[str, int, int]]:
        """(dtype, n, d) of the sweep; the largest size is measured apart (streaming only)."""
        return [
            (dtype, n, d)
            for dtype in self.sweep_dtypes
            for n in self.sweep_ns
            for d in self.sweep_dims
            if (n, d) != self.largest
        ]


FULL = Grid(
    ratio_n=20_000,
    ratio_dims=(3072, 784, 64),
    ratio_dtypes=("float32", "float64"),
    ratio_rounds=(11, 200),
    ratio_seconds=5.0,
    sweep_ns=(1_000, 10_000, 50_000),
    sweep_dims=(2, 64, 784, 3072, 16_384),
    sweep_dtypes=("float32", "float64"),
    sweep_rounds=(3, 50),
    sweep_seconds=1.5,
    largest=(50_000, 16_384),
)

QUICK = Grid(
    ratio_n=20_000,
    ratio_dims=(3072, 784, 64),
    ratio_dtypes=("float32",),
    ratio_rounds=(3, 100),
    ratio_seconds=1.5,
    sweep_ns=(1_000, 10_000),
    sweep_dims=(2, 64, 784),
    sweep_dtypes=("float32", "float64"),
    sweep_rounds=(3, 20),
    sweep_seconds=0.4,
    largest=(50_000, 3072),
)


# ----------------------------------------------------------------------------------------------
# Problems and methods


@dataclass
class Problem:
    """Data, on-path queries, a softmax weight matrix and the field, all of one dtype and device."""

    data: Tensor
    x: Tensor
    weights: Tensor
    field: ClosedFormField


def make_problem(n: int, d: int, dtype: torch.dtype, device: torch.device) -> Problem:
    """Standard normal data (n, d); queries x = t y_j + (1 - t) z on the path at t = TIME."""
    gen = torch.Generator(device=device).manual_seed(SEED)
    data = torch.randn(n, d, dtype=dtype, device=device, generator=gen)
    index = torch.randint(0, n, (BATCH,), device=device, generator=gen)
    noise = torch.randn(BATCH, d, dtype=dtype, device=device, generator=gen)
    x = TIME * data[index] + (1.0 - TIME) * noise
    weights = torch.softmax(torch.randn(BATCH, n, dtype=dtype, device=device, generator=gen), dim=1)
    return Problem(data=data, x=x, weights=weights, field=ClosedFormField(data))


def naive_velocity(x: Tensor, t: float, data: Tensor) -> Tensor:
    """The textbook formula: explicit (B, n, d) differences, softmax over n, then a product."""
    diff = x[:, None, :] - t * data[None, :, :]
    logits = -(diff * diff).sum(dim=-1) / (2.0 * (1.0 - t) ** 2)
    return (torch.softmax(logits, dim=1) @ data - x) / (1.0 - t)


def cdist_velocity(x: Tensor, t: float, data: Tensor) -> Tensor:
    """Distances from ``torch.cdist`` (which copies the scaled data), softmax over n, then a product."""
    sq_dist = torch.cdist(x, t * data).square_()
    return (torch.softmax(sq_dist.mul_(-0.5 / (1.0 - t) ** 2), dim=1) @ data - x) / (1.0 - t)


def methods_for(problem: Problem) -> dict[str, Method]:
    """Zero-argument callables for every method, on one problem."""
    p = problem
    return {
        "x @ data.T": lambda: p.x @ p.data.T,
        "W @ data": lambda: p.weights @ p.data,
        "bare": lambda: (p.x @ p.data.T, p.weights @ p.data),
        "streaming": lambda: p.field.velocity(p.x, TIME),
        "cdist": lambda: cdist_velocity(p.x, TIME, p.data),
        "naive": lambda: naive_velocity(p.x, TIME, p.data),
    }


def needed_bytes(method: str, n: int, d: int, itemsize: int) -> int:
    """Rough peak extra memory of a method (the skip rule); streaming and bare never skip."""
    if method == "naive":  # t * data, the differences, their squares, logits and weights
        return itemsize * (2 * BATCH * n * d + n * d + 3 * BATCH * n)
    if method == "cdist":  # t * data, cdist's padded copies of both inputs, distances, weights
        return itemsize * (2 * n * (d + 2) + 4 * BATCH * n)
    return 0


# ----------------------------------------------------------------------------------------------
# Timing


def synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits for the device's queued work (a no-op on CPU)."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def timed(fn: Method, sync: Callable[[], None]) -> float:
    """Seconds of one call, the device synchronised on both sides."""
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def time_interleaved(
    fns: dict[str, Method],
    sync: Callable[[], None],
    *,
    min_rounds: int,
    max_rounds: int,
    seconds_per_method: float,
    slow: Collection[str] = (),
    paired: bool = False,
) -> dict[str, list[float]]:
    """Seconds per call of each method, rounds interleaved with a rotating order, after one warm-up each.

    Each method gets as many rounds as fit in ``seconds_per_method`` (judged from its warm-up call),
    clipped to [min_rounds, max_rounds]; a method in ``slow`` may go down to a single round; with
    ``paired`` every method gets the rounds of the slowest. Returns the samples in round order, so
    that methods can be compared round by round (:func:`paired_ratio`).
    """
    warm = {name: max(timed(fn, sync), 1e-9) for name, fn in fns.items()}
    if paired:
        warm = dict.fromkeys(warm, max(warm.values()))
    rounds = {
        name: max(1 if name in slow else min_rounds, min(max_rounds, int(seconds_per_method / seconds)))
        for name, seconds in warm.items()
    }
    names = list(fns)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(max(rounds.values())):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            if len(samples[name]) < rounds[name]:
                samples[name].append(timed(fns[name], sync))
    return samples


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """Median over rounds of numerator / denominator (rounds both have), paired round by round."""
    pairs = list(zip(numerator, denominator, strict=False))
    return statistics.median(a / b for a, b in pairs)


# ----------------------------------------------------------------------------------------------
# Memory


def _proc_status_kb(key: str) -> int:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _reset_rss_peak() -> bool:
    """Reset the resident set's high-water mark to the current size (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


def cpu_peak_extra_bytes(fn: Method) -> int:
    """Resident memory high-water mark during ``fn()`` above the resident memory before it."""
    gc.collect()
    if _reset_rss_peak():
        before = _proc_status_kb("VmRSS")
        result = fn()
        peak = _proc_status_kb("VmHWM")
        scale = 1024
    else:  # lower bound: only what rises above the process's earlier peak is seen
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = fn()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in bytes on macOS, else kB
    del result
    return scale * max(0, peak - before)


def cuda_peak_extra_bytes(fn: Method, device: torch.device) -> int:
    """``torch.cuda.max_memory_allocated`` during ``fn()`` above the memory allocated before it."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    result = fn()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    del result
    return max(0, peak - before)


def peak_extra_memory(problem: Problem, names: Sequence[str], device: torch.device) -> dict[str, int]:
    """Peak extra bytes of each named method, each after one warm-up call."""
    fns = methods_for(problem)
    out = {}
    for name in names:
        fns[name]()
        if device.type == "cuda":
            out[name] = cuda_peak_extra_bytes(fns[name], device)
        else:
            out[name] = cpu_peak_extra_bytes(fns[name])
    return out


def probe_cpu_memory(specs: Sequence[dict], bar: tqdm) -> list[dict[str, int]]:
    """Peak extra CPU bytes for each spec ``{n, d, dtype, names}``, measured in fresh processes.

    One process measures every spec when the kernel can reset the peak (``/proc/self/clear_refs``);
    otherwise each spec gets its own process, where the peak only rises from what it builds.
    """
    batches = [list(specs)] if _reset_rss_peak() else [[spec] for spec in specs]
    return [result for batch in batches for result in _run_probe_process(batch, bar)]


def _run_probe_process(specs: Sequence[dict], bar: tqdm) -> list[dict[str, int]]:
    """Run this script with ``--probe``: it prints one JSON line per spec; advance ``bar`` per line."""
    payload = json.dumps({"threads": torch.get_num_threads(), "specs": list(specs)})
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    command = [sys.executable, str(Path(__file__).resolve()), "--probe", payload]
    results = []
    with tempfile.TemporaryFile("w+") as errors:
        with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=errors, text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                results.append(json.loads(line))
                bar.update()
        errors.seek(0)
        if proc.returncode != 0 or len(results) != len(specs):
            raise RuntimeError(f"memory probe failed (exit {proc.returncode}):\n{errors.read()[-2000:]}")
    return results


def run_probe(payload: str) -> None:
    """Entry point of the memory subprocess: one JSON line of peak extra bytes per spec."""
    request = json.loads(payload)
    torch.set_num_threads(request["threads"])
    cpu = torch.device("cpu")
    for spec in request["specs"]:
        problem = make_problem(spec["n"], spec["d"], DTYPES[spec["dtype"]], cpu)
        print(json.dumps(peak_extra_memory(problem, spec["names"], cpu)), flush=True)
        del problem
        gc.collect()


def measure_memory(specs: Sequence[dict], device: torch.device, bar: tqdm) -> list[dict[str, int]]:
    """Peak extra bytes per method for each spec: in this process on CUDA, in subprocesses on CPU."""
    if device.type != "cuda":
        return probe_cpu_memory(specs, bar)
    results = []
    for spec in specs:
        problem = make_problem(spec["n"], spec["d"], DTYPES[spec["dtype"]], device)
        results.append(peak_extra_memory(problem, spec["names"], device))
        del problem
        release(device)
        bar.update()
    return results


def release(device: torch.device) -> None:
    """Free what the last problem held before the next one is built."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------
# Measurements


def median_of(samples: dict[str, list[float]], name: str) -> float | None:
    """Median seconds of a method, None if it was skipped."""
    values = samples.get(name)
    return statistics.median(values) if values else None


@dataclass
class RatioRow:
    """One row of the ratio table: per-round seconds of the two products and of the velocity."""

    dtype: str
    d: int
    samples: dict[str, list[float]]

    def median(self, name: str) -> float:
        """Median seconds of ``name``."""
        return statistics.median(self.samples[name])

    @property
    def bare_samples(self) -> list[float]:
        """Per-round seconds of the two bare products together."""
        return [a + b for a, b in zip(self.samples["x @ data.T"], self.samples["W @ data"], strict=True)]

    @property
    def ratio(self) -> float:
        """Velocity time over the two bare products' time, median of the per-round ratios."""
        return paired_ratio(self.samples["streaming"], self.bare_samples)


@dataclass
class SweepRow:
    """One configuration of the sweep: per-round seconds (absent if skipped) and peak extra memory."""

    dtype: str
    n: int
    d: int
    samples: dict[str, list[float]]
    needs: dict[str, int]
    memory: dict[str, int]

    def median(self, name: str) -> float | None:
        """Median seconds of ``name``, None if skipped."""
        return median_of(self.samples, name)

    def ratio(self, name: str) -> float | None:
        """Time of ``name`` over the bare products', median of the per-round ratios."""
        if name not in self.samples or "bare" not in self.samples:
            return None
        return paired_ratio(self.samples[name], self.samples["bare"])


def measure_ratio(grid: Grid, dtype: str, d: int, device: torch.device) -> RatioRow:
    """Velocity against the two bare products at (grid.ratio_n, d)."""
    problem = make_problem(grid.ratio_n, d, DTYPES[dtype], device)
    fns = {k: v for k, v in methods_for(problem).items() if k in ("x @ data.T", "W @ data", "streaming")}
    samples = time_interleaved(
        fns,
        synchronizer(device),
        min_rounds=grid.ratio_rounds[0],
        max_rounds=grid.ratio_rounds[1],
        seconds_per_method=grid.ratio_seconds,
        paired=True,
    )
    del problem, fns
    release(device)
    return RatioRow(dtype=dtype, d=d, samples=samples)


def measure_sweep(
    grid: Grid, dtype: str, n: int, d: int, device: torch.device, limit_bytes: float, names: Sequence[str]
) -> SweepRow:
    """Time ``names`` at one configuration, skipping what would need more than ``limit_bytes``."""
    itemsize = torch.empty((), dtype=DTYPES[dtype]).element_size()
    needs = {name: needed_bytes(name, n, d, itemsize) for name in names}
    problem = make_problem(n, d, DTYPES[dtype], device)
    fns = {name: fn for name, fn in methods_for(problem).items() if name in names and needs[name] <= limit_bytes}
    samples = time_interleaved(
        fns,
        synchronizer(device),
        min_rounds=grid.sweep_rounds[0],
        max_rounds=grid.sweep_rounds[1],
        seconds_per_method=grid.sweep_seconds,
        slow=("naive",),
    )
    del problem, fns
    release(device)
    return SweepRow(dtype, n, d, samples, needs, memory={})


def memory_spec(row: SweepRow) -> dict:
    """What the memory probe measures for a row: the streaming version and, if timed, the bare products."""
    names = [name for name in ("streaming", "bare") if name in row.samples]
    return {"n": row.n, "d": row.d, "dtype": row.dtype, "names": names}


# ----------------------------------------------------------------------------------------------
# Report


def machine_line(device: torch.device) -> str:
    """CPU model, threads, torch version and (on CUDA) the GPU's name."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    threads = torch.get_num_threads()
    line = f"CPU {model} ({os.cpu_count()} logical cores), {threads} torch threads, torch {torch.__version__}"
    if device.type == "cuda":
        line += f", GPU {torch.cuda.get_device_name(device)}"
    return line + f", device {device.type}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_time(seconds: float) -> str:
    """Milliseconds with three significant figures."""
    ms = 1e3 * seconds
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def fmt_mb(n_bytes: int) -> str:
    """Megabytes (10^6 bytes)."""
    return f"{n_bytes / 1e6:.1f}"


def ratio_section(rows: Sequence[RatioRow], n: int, device: torch.device) -> str:
    """Table 1: velocity over the two bare products, with the targets (on a CPU; they were set for one)."""
    body = []
    for row in rows:
        target = TARGETS.get(row.d) if row.dtype == "float32" and device.type == "cpu" else None
        verdict = "-" if target is None else ("met" if row.ratio <= target else "NOT met")
        per_round = [v / b for v, b in zip(row.samples["streaming"], row.bare_samples, strict=True)]
        body.append(
            [
                row.dtype,
                str(row.d),
                fmt_time(row.median("x @ data.T")),
                fmt_time(row.median("W @ data")),
                fmt_time(statistics.median(row.bare_samples)),
                fmt_time(row.median("streaming")),
                f"**{row.ratio:.2f}x**",
                f"{min(per_round):.2f}-{max(per_round):.2f} ({len(per_round)})",
                "-" if target is None else f"<= {target:g}x",
                verdict,
            ]
        )
    header = [
        "dtype",
        "d",
        "x @ data.T (ms)",
        "W @ data (ms)",
        "both (ms)",
        "velocity (ms)",
        "ratio",
        "per-round range (rounds)",
        "target",
        "",
    ]
    title = f"## 1. `ClosedFormField.velocity` over the two bare products (B = {BATCH}, n = {n:,}, t = {TIME})"
    note = (
        "Milliseconds are medians; the ratio is the median over rounds of velocity / (x @ data.T + W @ data), "
        "each round running the three back to back in a rotating order."
    )
    return title + "\n\n" + note + "\n\n" + table(header, body)


def method_cell(row: SweepRow, name: str) -> str:
    """'12.3 (1.05x)' or 'skipped (needs X GB)'."""
    seconds = row.median(name)
    if seconds is None:
        return f"skipped (needs {row.needs[name] / 1e9:.1f} GB)"
    ratio = row.ratio(name)
    return fmt_time(seconds) if ratio is None else f"{fmt_time(seconds)} ({ratio:.2f}x)"


def sweep_section(rows: Sequence[SweepRow], limit_bytes: float) -> str:
    """Table 2: every method's time and ratio to the bare products, per dtype."""
    parts = [
        "## 2. Sweep: milliseconds (ratio to the two bare products)",
        f"B = {BATCH}, t = {TIME}. Skipped: methods whose estimated memory exceeds {limit_bytes / 1e9:g} GB. "
        "Memory columns: peak extra MB during one call (after a warm-up call), above what the inputs hold; "
        "'bare' is the two products x @ data.T and W @ data.",
    ]
    header = ["n", "d", "bare (ms)", "streaming", "cdist", "naive", "streaming MB", "bare MB"]
    for dtype in dict.fromkeys(row.dtype for row in rows):
        body = [
            [
                f"{row.n:,}",
                str(row.d),
                fmt_time(row.median("bare") or 0.0),
                method_cell(row, "streaming"),
                method_cell(row, "cdist"),
                method_cell(row, "naive"),
                fmt_mb(row.memory["streaming"]),
                fmt_mb(row.memory["bare"]),
            ]
            for row in rows
            if row.dtype == dtype
        ]
        parts.append(f"### {dtype}\n\n" + table(header, body))
    return "\n\n".join(parts)


def largest_section(row: SweepRow) -> str:
    """Table 3: the largest size, streaming only."""
    seconds = row.median("streaming") or 0.0
    body = [[row.dtype, f"{row.n:,}", f"{row.d:,}", fmt_time(seconds), fmt_mb(row.memory["streaming"])]]
    header = ["dtype", "n", "d", "velocity (ms)", "peak extra MB"]
    return f"## 3. One large size, streaming only (B = {BATCH}, t = {TIME})\n\n" + table(header, body)


def memory_requirement_line(rows: Sequence[SweepRow]) -> str:
    """Whether the streaming version's extra memory stays under the requirement."""
    n, d, limit = MEMORY_REQUIREMENT
    lines = []
    for row in rows:
        if (row.n, row.d) == (n, d):
            mb = row.memory["streaming"] / 1e6
            verdict = "met" if mb < limit else "NOT met"
            lines.append(f"- {row.dtype}: {mb:.1f} MB (requirement < {limit:g} MB: {verdict})")
    if not lines:
        return ""
    return f"## Memory requirement at n = {n:,}, d = {d}\n\n" + "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Driver


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:k]")
    parser.add_argument("--quick", action="store_true", help="smaller grid, under about a minute")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this markdown file")
    parser.add_argument("--memory-limit-gb", type=float, default=8.0, help="skip methods needing more")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_all(grid: Grid, device: torch.device, limit_bytes: float) -> str:
    """Every measurement of ``grid`` (times first, then memory), as markdown."""
    sweep = grid.sweep_configs()
    ratio_jobs = [(dtype, d) for dtype in grid.ratio_dtypes for d in grid.ratio_dims]
    names = ("bare", "streaming", "cdist", "naive")
    n_largest, d_largest = grid.largest
    total = len(ratio_jobs) + 2 * (len(sweep) + 1)
    with tqdm(total=total, desc="configurations", file=sys.stderr) as bar:
        ratios = []
        for dtype, d in ratio_jobs:
            bar.set_postfix_str(f"ratio {dtype} n={grid.ratio_n} d={d}")
            ratios.append(measure_ratio(grid, dtype, d, device))
            bar.update()
        rows = []
        for dtype, n, d in sweep:
            bar.set_postfix_str(f"time {dtype} n={n} d={d}")
            rows.append(measure_sweep(grid, dtype, n, d, device, limit_bytes, names))
            bar.update()
        bar.set_postfix_str(f"time float32 n={n_largest} d={d_largest}")
        largest = measure_sweep(grid, "float32", n_largest, d_largest, device, limit_bytes, ("streaming",))
        bar.update()
        bar.set_postfix_str("peak memory")
        measured = [*rows, largest]
        memories = measure_memory([memory_spec(row) for row in measured], device, bar)
        for row, memory in zip(measured, memories, strict=True):
            row.memory = memory
    sections = [
        ratio_section(ratios, grid.ratio_n, device),
        sweep_section(rows, limit_bytes),
        largest_section(largest),
        memory_requirement_line([*rows, largest]),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark, print the tables, optionally write them as markdown."""
    args = parse_args(argv)
    if args.probe is not None:
        run_probe(args.probe)
        return
    device = resolve_device(args.device)
    load_start = os.getloadavg()[0]
    grid = QUICK if args.quick else FULL
    header = f"# Closed-form velocity benchmark{' (quick)' if args.quick else ''}\n\n{machine_line(device)}\n"
    print(header, flush=True)
    started = time.perf_counter()
    body = run_all(grid, device, args.memory_limit_gb * 1e9)
    footer = (
        f"\nTotal run time {time.perf_counter() - started:.0f} s; 1-minute load average "
        f"{load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end (other processes share the cores).\n"
    )
    print(body + footer, flush=True)
    if args.markdown is not None:
        write_atomic(args.markdown, header + "\n" + body + footer)


if __name__ == "__main__":
    main()
