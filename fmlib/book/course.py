"""The generated part of the course guide: run times, re-run exercises and parameters of each chapter.

``book/course.md`` is prose; it includes ``book/_generated/run_times.md`` and
``book/_generated/homework.md``, which :func:`write_course_tables` writes at every book build from
the results store and the chapters' sources, so nothing in them is typed by hand:

- how long each chapter's default run (and its tiny test run) took, read from the stored runs'
  ``run.json`` (``seconds``, ``machine``);
- the exercises that ask the reader to re-run the chapter, with their ``python -m fmlib run``
  commands, read from the chapter's ``{exercise}`` blocks (:func:`rerun_exercises`);
- each chapter's parameters (:func:`fmlib.book.params.read_parameters`), the menu for homework.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from fmlib.book.chapters import find_chapter, markdown_cell, quick_parameters, write_text_if_changed
from fmlib.book.params import describe_constraint, read_parameters
from fmlib.book.rules import check_parameters
from fmlib.book.store import stored_run

__all__ = [
    "RerunExercise",
    "RunTime",
    "chapter_title",
    "homework_lists",
    "rerun_exercises",
    "run_time",
    "run_time_table",
    "write_course_tables",
]

_EXERCISE = re.compile(r"^(`{3,}|:{3,})\{exercise\}[ \t]*(?P<title>[^\n]*)\n(?P<body>.*?)^\1[ \t]*$", re.M | re.S)
_LABEL = re.compile(r"^:label:\s*(\S+)", re.M)
_COMMAND = re.compile(r"python -m fmlib run [^`\n]+")
# Parameters every chapter has; listing them as homework says nothing.
_ROUTINE = ("seed", "device")


@dataclass(frozen=True)
class RunTime:
    """How long a stored run took (``run.json``), on what machine and how loaded it was; None where not stored."""

    seconds: float | None
    machine: str
    load: float | None = None
    cores: int | None = None
    stale: bool = False

    def conditions(self) -> str:
        """The machine, and whether other work loaded it when the run started (its 1-minute load average)."""
        if self.seconds is None:
            return ""
        note = "; stale: the notebook or fmlib changed since" if self.stale else ""
        if self.load is None or not self.cores:
            return f"{self.machine}; load not recorded{note}"
        state = "idle" if self.load < 0.25 * self.cores else "busy with other work"
        return f"{self.machine}; {state} at the start (load average {self.load:g} on {self.cores} cores){note}"


@dataclass(frozen=True)
class RerunExercise:
    """An exercise of a chapter that asks for a re-run: its label, title and commands."""

    label: str
    title: str
    commands: tuple[str, ...]


def chapter_title(notebook_path: Path) -> str:
    """The chapter's H1 (its first ``# `` line outside the front matter and code cells)."""
    in_code = False
    for line in notebook_path.read_text().split("\n---", 2)[-1].splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("# "):
            return line[2:].strip()
    return notebook_path.stem


def run_time(name: str, *, quick: bool = False) -> RunTime:
    """The stored run of chapter ``name`` with its defaults (or its tiny test parameters), marked when stale.

    A stale run (the notebook or fmlib changed after it) is still the one the chapter's page shows,
    so its time is given, with the mark.
    """
    notebook = find_chapter(name)
    params = check_parameters(notebook, quick_parameters(notebook) if quick else {})
    path = stored_run(notebook.stem, params)
    if path is None:
        return RunTime(None, "")
    recorded = json.loads((path / "run.json").read_text())
    return RunTime(recorded.get("seconds"), recorded.get("machine", "machine not recorded"),
                   recorded.get("load_at_start"), recorded.get("cores"),
                   stale=stored_run(notebook.stem, params, notebook) is None)


def rerun_exercises(notebook_path: Path) -> list[RerunExercise]:
    """The chapter's ``{exercise}`` blocks that contain a ``python -m fmlib run`` command."""
    found = []
    for match in _EXERCISE.finditer(notebook_path.read_text()):
        commands = tuple(c.strip() for c in _COMMAND.findall(match["body"]))
        label = _LABEL.search(match["body"])
        if commands and label:
            found.append(RerunExercise(label.group(1), match["title"].strip(), commands))
    return found


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "not run"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _allowed(constraint: str) -> str:
    """A parameter's constraint, in words."""
    words = describe_constraint(constraint)
    return f" (allowed: {words})" if words else ""


def _write(path: Path, lines: list[str]) -> None:
    write_text_if_changed(path, "\n".join(lines) + "\n")


def _link(notebook: Path) -> str:
    return f"{{doc}}`{chapter_title(notebook)} </book/chapters/{notebook.stem}>`"


def run_time_table(names: list[str]) -> list[str]:
    """Markdown lines: each chapter's default and tiny run times, the machine and its load.

    A column no chapter has a stored run for (the default runs, in a quick build) is left out, and a
    sentence under the table says so.
    """
    times = {name: (run_time(name), run_time(name, quick=True)) for name in names}
    columns = [(label, which) for label, which in (("default run", 0), ("tiny test run", 1))
               if any(pair[which].seconds is not None for pair in times.values())]
    header = ["chapter", *(label for label, _ in columns), "measured on"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, pair in times.items():
        measured = [pair[which] for _, which in columns if pair[which].seconds is not None]
        conditions = "; ".join(dict.fromkeys(t.conditions() for t in measured)) or "no stored run"
        cells = [_link(find_chapter(name)), *(_duration(pair[which].seconds) for _, which in columns)]
        lines.append("| " + " | ".join(cells) + f" | {markdown_cell(conditions)} |")
    missing = [label for label, which in (("default", 0), ("tiny test", 1))
               if not any(pair[which].seconds is not None for pair in times.values())]
    if missing:
        lines += ["", f"This build has no stored {' or '.join(missing)} runs, so their times are not shown."]
    return lines


def homework_lists(names: list[str]) -> list[str]:
    """Markdown lines: per chapter, its re-run exercises and its parameters (all but seed and device)."""
    lines: list[str] = []
    for name in names:
        notebook = find_chapter(name)
        lines += [f"**{_link(notebook)}**", ""]
        exercises = rerun_exercises(notebook)
        for exercise in exercises:
            commands = ", ".join(f"`{c}`" for c in exercise.commands)
            lines.append(f"- {{ref}}`{exercise.label}` (predict, then re-run): {commands}")
        lines += ["", "| parameter | default | meaning |", "|---|---|---|"]
        for spec in read_parameters(notebook).values():
            if spec.name in _ROUTINE:
                continue
            allowed = markdown_cell(spec.help + _allowed(spec.constraint))
            lines.append(f"| `{spec.name}` | `{spec.default!r}` | {allowed} |")
        lines.append("")
    return lines


def write_course_tables(names: list[str], directory: Path) -> list[Path]:
    """Write ``run_times.md`` and ``homework.md`` for chapters ``names`` into ``directory`` (atomically)."""
    pages = {"run_times.md": run_time_table(names), "homework.md": homework_lists(names)}
    for filename, lines in pages.items():
        _write(directory / filename, lines)
    return [directory / filename for filename in pages]
