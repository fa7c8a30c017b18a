"""Shared test set-up: tests import the package from the checkout and write results to temporary stores.

Every chapter runs at most once per test session with its tiny front-matter parameters
(:func:`quick_run`), into one store shared by all test workers (``pytest -n``: a file lock per
chapter makes the second asker wait and then find the run stored); the chapter tests and the quick
book build read that run. Nothing is written into ``book/`` or the reader's ``data/results``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from filelock import FileLock

from fmlib.book.chapters import find_chapter, quick_parameters
from fmlib.book.run import RunResult, run_chapter

torch.set_default_dtype(torch.float32)

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `pytest -n 2` on 2 cores: one thread per worker (and per chapter kernel it starts), not two each;
    # oversubscribed threads spin while waiting for each other and make small training steps 5x slower.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture
def results_store(tmp_path, monkeypatch):
    """A private, empty results store for the test (``$FMLIB_RESULTS``)."""
    store = tmp_path / "results"
    monkeypatch.setenv("FMLIB_RESULTS", str(store))
    return store


@contextmanager
def results_at(store: Path) -> Iterator[Path]:
    """``$FMLIB_RESULTS`` set to ``store`` inside the block, restored after."""
    previous = os.environ.get("FMLIB_RESULTS")
    os.environ["FMLIB_RESULTS"] = str(store)
    try:
        yield store
    finally:
        if previous is None:
            os.environ.pop("FMLIB_RESULTS", None)
        else:
            os.environ["FMLIB_RESULTS"] = previous


@pytest.fixture(scope="session")
def quick_store(tmp_path_factory) -> Path:
    """The session's store of quick runs, one for all xdist workers (their common temporary root)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    store = root / "quick-store"
    store.mkdir(exist_ok=True)
    return store


@pytest.fixture(scope="session")
def quick_run(quick_store) -> Callable[..., RunResult]:
    """``quick_run(name, **overrides)``: the chapter run with its tiny parameters (plus overrides), once a session."""

    def run(name: str, **overrides: Any) -> RunResult:
        params = {**quick_parameters(find_chapter(name)), **overrides}
        with FileLock(str(quick_store / f".{name}.lock")), results_at(quick_store):
            return run_chapter(name, params, progress=False)

    return run


def findings(run: RunResult, expected: set[str]) -> dict[str, dict[str, str]]:
    """The claims a run recorded, checked: exactly ``expected``, each with a known verdict and its rule."""
    from fmlib.book.report import VERDICTS

    claims = run.results["claims"]
    assert set(claims) == expected, f"{run.name} records {sorted(claims)}, expected {sorted(expected)}"
    for key, claim in claims.items():
        assert claim["verdict"] in VERDICTS and claim["rule"], f"{run.name}: {key} lacks a verdict or its rule"
    return claims
