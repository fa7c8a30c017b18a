"""Sweeps: one validated run per point of a parameter grid, resumable, in parallel.

``python -m fmlib sweep NAME -p d 64,256,1024 -p n 100,1000`` runs the product grid through
:func:`fmlib.book.run.run_chapter`, the same runner as ``python -m fmlib run``:

- every value of the grid is validated before anything runs (a bad value names the parameter
  and its position in the list);
- points already in the store (same parameters, notebook and fmlib code) are skipped, so a killed
  sweep resumes where it stopped; a point is published atomically when it finishes, so nothing
  finished is lost and nothing half-done is kept;
- points run in parallel local processes (``jobs``, default: one per CPU core, each point's
  numerical libraries limited to ``cores // jobs`` threads) or, with ``scheduler``, as tasks of an
  existing Dask distributed cluster (its workers must see the repository and the results store on
  a shared filesystem); no scheduler of our own;
- a point that fails does not stop the others: the failures are reported together at the end.

Concurrent points each run in their own Python process (``python -m fmlib.book.sweep``), because the
runner passes the output directory to the notebook's kernel through the process environment.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from fmlib.book.chapters import REPO_ROOT, find_chapter
from fmlib.book.params import LIST_TYPES, ParameterError, read_parameters, shell_value, validate_overrides
from fmlib.book.rules import rules_for
from fmlib.book.run import ChapterError, run_chapter
from fmlib.book.store import params_hash, results_root, stored_run

__all__ = ["SweepResult", "parse_grid", "run_sweep"]

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""Environment variables that cap the threads of a point's numerical libraries (torch, numpy)."""

DASK_CONNECT_TIMEOUT = "20s"
"""How long to try reaching a Dask scheduler before giving up."""


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did: how many grid points ran now and how many were found in the store."""

    executed: int
    skipped: int


def _split(key: str, raw: str | list[Any], separator: str) -> list[Any]:
    """The values of one axis: a string split on ``separator`` (each stripped), or a list as given."""
    if isinstance(raw, str):
        values: list[Any] = [v.strip() for v in raw.split(separator)]
    elif isinstance(raw, (list, tuple)):
        values = list(raw)
    else:
        values = [raw]
    if not values:
        raise ParameterError(f"parameter {key}: the grid has no value")
    for position, value in enumerate(values, start=1):
        if isinstance(value, str) and value == "":
            raise ParameterError(
                f"parameter {key}: grid value {position} of {raw!r} is empty; "
                f"separate the values with '{separator}' and no empty entry"
            )
    return values


def parse_grid(name: str, grid: dict[str, str | list[Any]]) -> list[dict[str, Any]]:
    """Expand ``{param: "v1,v2,..."}`` into the validated full parameter sets of the product grid.

    A scalar parameter takes comma-separated values (``-p d 64,256``); a list-typed parameter takes
    its grid values separated by ``;`` (``-p ts "0.1,0.5;0.2,0.6"`` is two points). In Python a
    value may also be a list of values. Parameters not in the grid keep their defaults. Points
    that are equal after parsing (``-p d 64,64.0``) are run once.

    Returns:
        The full parameter sets, in the order of the product (the last parameter varies fastest).

    Raises:
        ParameterError: an unknown parameter (with the closest name), an empty grid value, or a value
            that does not parse or that the parameter's constraint forbids; the message names the
            parameter and the position of the bad value in its list.
    """
    specs = read_parameters(find_chapter(name))
    axes: dict[str, list[Any]] = {}
    for key, raw in grid.items():
        if key not in specs:
            validate_overrides(specs, {key: raw})  # raises the unknown-name error with suggestions
        separator = ";" if specs[key].type_name in LIST_TYPES else ","
        values = _split(key, raw, separator)
        axes[key] = []
        for position, value in enumerate(values, start=1):
            try:
                axes[key].append(validate_overrides(specs, {key: value})[key])
            except ParameterError as err:
                raise ParameterError(f"grid value {position} of {key} ({value!r}): {err}") from None
    points, seen = [], set()
    for combo in itertools.product(*axes.values()):
        try:
            point = validate_overrides(specs, dict(zip(axes, combo, strict=True)), rules_for(find_chapter(name).stem))
        except ParameterError as err:
            shown = " ".join(f"-p {k} {shell_value(v)}" for k, v in zip(axes, combo, strict=True))
            raise ParameterError(f"grid point {shown}: {err}") from None
        key = params_hash(point)
        if key not in seen:
            seen.add(key)
            points.append(point)
    return points


def _point_environment(results: str, threads: int | None) -> dict[str, str]:
    """The environment of a point's process: the sweep's results store and, if given, the thread cap."""
    env = {**os.environ, "FMLIB_RESULTS": results}
    if threads is not None:
        env.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    return env


def run_point_process(name: str, params: dict[str, Any], results: str, threads: int | None = None) -> str:
    """Run one point in a fresh Python process (``python -m fmlib.book.sweep``); returns its stored path.

    Raises:
        ChapterError: the point failed (with the end of its error output).
    """
    done = subprocess.run(
        [sys.executable, "-m", "fmlib.book.sweep", name, json.dumps(params)],
        cwd=REPO_ROOT, env=_point_environment(results, threads), capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
        errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
        raise ChapterError(errors[-1] if errors else f"exit {done.returncode}: " + " | ".join(lines[-3:]))
    return done.stdout.strip().splitlines()[-1]


def _dask_point(name: str, params: dict[str, Any], results: str) -> str:
    """A Dask task: one point in its own process, its threads capped at the worker's share of the cores."""
    threads = None
    try:
        from distributed import get_worker

        threads = max(1, (os.cpu_count() or 1) // get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        pass
    return run_point_process(name, params, results, threads)


def _describe(params: dict[str, Any], grid_keys: list[str]) -> str:
    return ", ".join(f"{k}={params[k]!r}" for k in grid_keys) or "defaults"


def _drain(futures: dict[Any, dict[str, Any]], completed: Callable[[list[Any]], Any], bar: tqdm,
           failures: list[str], grid_keys: list[str]) -> None:
    """Wait for every future, updating the bar; record failures instead of stopping."""
    for future in completed(list(futures)):
        try:
            future.result()
        except Exception as err:  # a failed point (or a lost worker) must not stop the others
            kind = "" if isinstance(err, (ChapterError, ParameterError)) else f"{type(err).__name__}: "
            failures.append(f"{_describe(futures[future], grid_keys)}: {kind}{err}")
            bar.set_postfix(failed=len(failures))
        bar.update()


def run_sweep(
    name: str, grid: dict[str, str | list[Any]], *, jobs: int | None = None, scheduler: str | None = None
) -> SweepResult:
    """Run every point of the grid not yet stored; returns how many ran and how many were skipped.

    Args:
        name: the notebook (``notebooks/NAME.md``, with or without its ``NN_`` prefix).
        grid: ``{parameter: values}`` as for :func:`parse_grid`.
        jobs: local processes running points at once (default: the number of CPU cores); each
            point's numerical libraries get ``cores // jobs`` threads. ``jobs=1`` runs the points
            one after the other in this process.
        scheduler: address of an existing Dask distributed scheduler (``tcp://host:8786``); the
            points then run as its tasks, ``jobs`` is ignored, and the workers write into this
            process's results store (``$FMLIB_RESULTS``), which they must share.

    Raises:
        ParameterError: a bad grid (nothing runs), a bad ``jobs``, or an unreachable scheduler.
        ChapterError: after every point was tried, if some failed (listed with their errors); the
            points that finished are stored.
    """
    cores = os.cpu_count() or 1
    jobs = cores if jobs is None else jobs
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ParameterError(f"--jobs must be an integer >= 1, got {jobs!r}")
    notebook = find_chapter(name)
    stem = notebook.stem
    points = parse_grid(name, grid)
    todo = [p for p in points if stored_run(stem, p, notebook) is None]
    varying = [k for k in grid if len({json.dumps(p[k]) for p in points}) > 1]
    grid_keys = varying or list(grid)
    results = str(results_root())
    failures: list[str] = []
    bar = tqdm(total=len(points), initial=len(points) - len(todo), desc=f"sweep {stem}", unit="run")
    try:
        if not todo:
            pass
        elif scheduler is not None:
            try:
                from distributed import Client
                from distributed import as_completed as dask_completed
            except ImportError:
                raise ParameterError("--scheduler needs Dask: pip install 'dask[distributed]'") from None

            try:
                client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as err:
                raise ParameterError(f"cannot reach the Dask scheduler at {scheduler!r}: {err}") from None
            with client:
                futures = {
                    client.submit(_dask_point, stem, p, results, key=f"{stem}-{params_hash(p)}", pure=False): p
                    for p in todo
                }
                _drain(futures, dask_completed, bar, failures, grid_keys)
        elif jobs == 1:
            for point in todo:
                try:
                    run_chapter(stem, point, progress=False)
                except ChapterError as err:
                    failures.append(f"{_describe(point, grid_keys)}: {err}")
                    bar.set_postfix(failed=len(failures))
                bar.update()
        else:
            threads = max(1, cores // jobs)
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                futures: dict[Future[str], dict[str, Any]] = {
                    pool.submit(run_point_process, stem, p, results, threads): p for p in todo
                }
                _drain(futures, as_completed, bar, failures, grid_keys)
    finally:
        bar.close()
    if failures:
        raise ChapterError(
            f"sweep {stem}: {len(failures)} of {len(todo)} point(s) failed (the others are stored; "
            "re-running the sweep retries only the missing ones):\n  " + "\n  ".join(failures)
        )
    return SweepResult(executed=len(todo), skipped=len(points) - len(todo))


def _main(argv: list[str]) -> int:
    """``python -m fmlib.book.sweep NAME PARAMS_JSON``: run one point (what a sweep's worker process does)."""
    if len(argv) != 2:
        print("usage: python -m fmlib.book.sweep NAME PARAMS_JSON", file=sys.stderr)
        return 2
    try:
        run = run_chapter(argv[0], json.loads(argv[1]), progress=False)
    except (ChapterError, ParameterError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(run.path)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
