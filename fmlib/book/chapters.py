"""Where the book's pieces are: the repository root, the chapters, and atomic writes into them.

A chapter is a jupytext MyST notebook ``notebooks/NN_name.md``; it is named with or without its
``NN_`` prefix (``closed_form`` or ``01_closed_form``). Its front matter may declare tiny parameters
for tests and quick builds under ``fmlib: test:`` (:func:`quick_parameters`). Every generated file
of the book (results, pages, notebooks) is written through :func:`write_text_atomic`, so a reader
never sees half a file and a killed run leaves the old one in place.
"""

from __future__ import annotations

import difflib
import json
import os
import uuid
from pathlib import Path
from typing import Any

from fmlib.book.params import ParameterError

__all__ = [
    "NOTEBOOK_DIR",
    "REPO_ROOT",
    "chapter_names",
    "find_chapter",
    "markdown_cell",
    "quick_parameters",
    "runnable_names",
    "write_json_atomic",
    "write_text_atomic",
    "write_text_if_changed",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"


def chapter_names() -> list[str]:
    """Names of the chapters (``notebooks/NN_*.md`` that are jupytext notebooks), in order.

    Helper notebooks that a sweep runs point by point (no ``NN_`` prefix, e.g. ``cosine_point``)
    are runnable by name (:func:`find_chapter`) but are not chapters.
    """
    return sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.md") if "jupytext" in p.read_text()[:500])


def runnable_names() -> list[str]:
    """Every notebook the runner can execute: the chapters and the helper notebooks of sweeps."""
    return sorted(p.stem for p in NOTEBOOK_DIR.glob("*.md") if "jupytext" in p.read_text()[:500])


def find_chapter(name: str) -> Path:
    """The notebook for ``name`` (``01_closed_form`` or ``closed_form``); a clear error if unknown."""
    names = runnable_names()
    matches = [n for n in names if n == name or n.split("_", 1)[-1] == name]
    if len(matches) == 1:
        return NOTEBOOK_DIR / f"{matches[0]}.md"
    short = [n.split("_", 1)[-1] for n in chapter_names()]
    close = difflib.get_close_matches(name, short + names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ParameterError(f"unknown chapter {name!r}.{hint} Chapters: {', '.join(short)}")


def quick_parameters(notebook_path: Path) -> dict[str, Any]:
    """The tiny parameters a chapter declares for tests and quick builds (front matter ``fmlib.test``)."""
    import jupytext

    return dict(jupytext.read(notebook_path).metadata.get("fmlib", {}).get("test", {}))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it and a rename (readers never see half)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_text_if_changed(path: Path, text: str) -> bool:
    """:func:`write_text_atomic` unless ``path`` holds ``text`` already (a build keeps its cache); True if written."""
    if path.is_file() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
    return True


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to ``path`` atomically (:func:`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, default=float))


def markdown_cell(text: object) -> str:
    """``text`` as one cell of a Markdown table of a generated page: pipes escaped, on one line."""
    return str(text).replace("|", "\\|").replace("\n", " ")
