"""The results store: one directory per run of a chapter, keyed by a hash of its parameters.

Layout::

    data/results/NAME/<hash>/   params.json  results.json  run.json  NAME.ipynb  figures/  tables/

``results.json`` holds the scalar results the chapter recorded with :mod:`fmlib.book.report`;
``run.json`` the source hash (notebook and fmlib code), the duration and the time of the run.
A run is written aside (``data/results/.staging/``) and renamed into place, so a killed run
leaves the store as it was. The root is ``data/results`` under the repository, or ``$FMLIB_RESULTS``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from fmlib.book.chapters import NOTEBOOK_DIR, REPO_ROOT, find_chapter
from fmlib.book.params import ParameterError

__all__ = [
    "collect",
    "params_hash",
    "results_root",
    "run_dir",
    "source_hash",
    "stored_run",
]

def results_root() -> Path:
    """The store's root: ``$FMLIB_RESULTS`` if set, else ``data/results`` in the repository."""
    return Path(os.environ.get("FMLIB_RESULTS", REPO_ROOT / "data" / "results"))


def params_hash(params: dict[str, Any]) -> str:
    """A short stable hash of a full parameter set (sorted JSON)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def source_hash(notebook_path: Path) -> str:
    """Hash of the notebook's text and of every fmlib source file: a run is stale when it changes."""
    digest = hashlib.sha256(notebook_path.read_bytes())
    for path in sorted((REPO_ROOT / "fmlib").rglob("*.py")):
        digest.update(str(path.relative_to(REPO_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def run_dir(name: str, params: dict[str, Any]) -> Path:
    """Where the run of chapter ``name`` with these parameters is (or would be) stored."""
    return results_root() / name / params_hash(params)


def stored_run(name: str, params: dict[str, Any], notebook_path: Path | None = None) -> Path | None:
    """The stored run for these parameters, or None; with ``notebook_path``, None also when stale."""
    path = run_dir(name, params)
    if not (path / "run.json").exists():
        return None
    if notebook_path is not None:
        recorded = json.loads((path / "run.json").read_text())
        if recorded.get("source_hash") != source_hash(notebook_path):
            return None
    return path


def publish(staging: Path, final: Path) -> None:
    """Move a finished run from its staging directory into place, replacing an older run.

    The rename is tried first; only when a run is already there (another writer finished the same
    point) is that one moved aside under a unique name and the rename retried, so a concurrent
    reader sees the old run or the new one.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staging, final)
        return
    except OSError:
        if not final.exists():
            raise
    old = final.with_name(f".{final.name}.old.{uuid.uuid4().hex}")
    os.rename(final, old)
    os.rename(staging, final)
    shutil.rmtree(old, ignore_errors=True)


def _store_name(name: str) -> str:
    """The store's directory name for ``name``: the notebook's stem when the notebook exists, else ``name``."""
    if (results_root() / name).exists():
        return name
    try:
        return find_chapter(name).stem
    except ParameterError:
        return name


def collect(name: str, *, include_lists: bool = False) -> pd.DataFrame:
    """Every stored run of notebook ``name`` as a DataFrame: one row per run.

    ``name`` is the notebook's name with or without its ``NN_`` prefix (``closed_form`` or
    ``01_closed_form``). Columns: the parameters (list values kept as lists), the scalar results
    (with ``include_lists``, the list-valued results too, e.g. bootstrap replicates), and
    ``seconds`` (the run's duration), ``finished`` (when it ended), ``stale`` (True when the
    notebook or fmlib changed since, so ``run``/``sweep`` would execute it again) and ``run_dir``.
    Rows are in the order of the runs' directories; an empty store gives an empty DataFrame.
    """
    stem = _store_name(name)
    root = results_root() / stem
    notebook = NOTEBOOK_DIR / f"{stem}.md"
    current = source_hash(notebook) if notebook.exists() else None
    rows = []
    runs = [p for p in root.glob("*/run.json") if not p.parent.name.startswith(".")] if root.exists() else []
    for path in sorted(runs):
        run = path.parent
        row: dict[str, Any] = json.loads((run / "params.json").read_text())
        results = json.loads((run / "results.json").read_text()) if (run / "results.json").exists() else {}
        for key, value in results.items():
            if isinstance(value, dict) or (isinstance(value, list) and not include_lists):
                continue
            row.setdefault(key, value)
        info = json.loads(path.read_text())
        row["seconds"] = info.get("seconds")
        row["finished"] = info.get("finished")
        row["stale"] = current is None or info.get("source_hash") != current
        row["run_dir"] = str(run)
        rows.append(row)
    return pd.DataFrame(rows)
