"""Sweeps: one validated run per point of a parameter grid, resumable, in parallel.

``python -m fmlib sweep NAME -p d 64,256,1024 -p n 100,1000`` runs the product grid through
:func:`fmlib.run.run_chapter`. Every point is validated before any runs; points already in the
store are skipped, so a killed sweep resumes where it stopped. Points run in local processes
(``jobs``) or, with ``scheduler``, on an existing Dask distributed cluster.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from fmlib.params import LIST_TYPES, ParameterError, read_parameters, validate_overrides
from fmlib.results import stored_run
from fmlib.run import find_chapter, run_chapter

__all__ = ["SweepResult", "parse_grid", "run_sweep"]


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did: how many grid points ran now and how many were found in the store."""

    executed: int
    skipped: int


def parse_grid(name: str, grid: dict[str, str | list[Any]]) -> list[dict[str, Any]]:
    """Expand ``{param: "v1,v2,..."}`` into the validated full parameter sets of the product grid.

    A scalar parameter takes comma-separated values; a list-typed parameter takes its grid values
    separated by ``;`` (``-p ts "0.1,0.5;0.2,0.6"``).

    Raises:
        ParameterError: naming the parameter and the position of the bad value in its list.
    """
    specs = read_parameters(find_chapter(name))
    axes: dict[str, list[Any]] = {}
    for key, raw in grid.items():
        if key not in specs:
            validate_overrides(specs, {key: raw})  # raises the unknown-name error with suggestions
        separator = ";" if specs[key].type_name in LIST_TYPES else ","
        values = raw.split(separator) if isinstance(raw, str) else list(raw)
        if not values or any(str(v).strip() == "" for v in values):
            raise ParameterError(f"parameter {key}: empty value in the grid {raw!r}")
        axes[key] = []
        for position, value in enumerate(values, start=1):
            try:
                validate_overrides(specs, {key: value})
            except ParameterError as err:
                raise ParameterError(f"grid value {position} of {key} ({value!r}): {err}") from None
            axes[key].append(value)
    points = [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]
    return [validate_overrides(specs, point) for point in points]


def _run_point(name: str, params: dict[str, Any]) -> str:
    return str(run_chapter(name, params, progress=False).path)


def run_sweep(
    name: str, grid: dict[str, str | list[Any]], *, jobs: int = 1, scheduler: str | None = None
) -> SweepResult:
    """Run every point of the grid not yet stored; returns how many ran and how many were skipped."""
    if jobs < 1:
        raise ParameterError(f"--jobs must be >= 1, got {jobs}")
    notebook = find_chapter(name)
    points = parse_grid(name, grid)
    todo = [p for p in points if stored_run(notebook.stem, p, notebook) is None]
    bar = tqdm(total=len(points), initial=len(points) - len(todo), desc=f"sweep {notebook.stem}", unit="run")
    if scheduler is not None:
        from distributed import Client
        from distributed import as_completed as dask_completed

        with Client(scheduler) as client:
            futures = [client.submit(_run_point, notebook.stem, p, pure=False) for p in todo]
            for future in dask_completed(futures):
                future.result()
                bar.update()
    elif jobs == 1:
        for point in todo:
            _run_point(notebook.stem, point)
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for future in as_completed([pool.submit(_run_point, notebook.stem, p) for p in todo]):
                future.result()
                bar.update()
    bar.close()
    return SweepResult(executed=len(todo), skipped=len(points) - len(todo))
