"""The generated tables of the course guide, and the re-run commands the chapters' exercises give."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from fmlib.book.build import toc_chapters
from fmlib.book.chapters import chapter_names, find_chapter, quick_parameters
from fmlib.book.course import RunTime, chapter_title, rerun_exercises, run_time, run_time_table, write_course_tables
from fmlib.book.params import read_parameters, validate_overrides
from fmlib.book.rules import rules_for
from fmlib.book.store import run_dir, source_hash

CHAPTER = """---
jupytext:
  text_representation:
    extension: .md
---

(toy)=
# A toy chapter

```{code-cell} ipython3
# not a title
```

## Exercises

```{exercise} Predict, then re-run
:label: ex-toy-rerun

Predict, then run `python -m fmlib run toy -p n 4` and `python -m fmlib run toy -p n 8 -p seed 1`.
```

```{solution} ex-toy-rerun
:class: dropdown

Run `python -m fmlib run toy -p n 99`: solutions do not count.
```

````{exercise} A proof
:label: ex-toy-proof

```{math}
x = 1
```
````
"""


def test_rerun_exercises_are_read_from_the_exercise_blocks(tmp_path):
    notebook = tmp_path / "99_toy.md"
    notebook.write_text(CHAPTER)
    found = rerun_exercises(notebook)
    assert [(e.label, e.title) for e in found] == [("ex-toy-rerun", "Predict, then re-run")]
    assert found[0].commands == ("python -m fmlib run toy -p n 4", "python -m fmlib run toy -p n 8 -p seed 1")
    assert chapter_title(notebook) == "A toy chapter"


@pytest.mark.parametrize("name", chapter_names())
def test_every_rerun_command_of_a_chapter_is_valid(name):
    """A command an exercise asks readers to run must pass the runner's checks (a renamed parameter breaks it)."""
    notebook = find_chapter(name)
    specs = read_parameters(notebook)
    for exercise in rerun_exercises(notebook):
        for command in exercise.commands:
            words = shlex.split(command)
            assert words[:4] == ["python", "-m", "fmlib", "run"], command
            assert find_chapter(words[4]) == notebook, f"{exercise.label}: {command} runs another chapter"
            pairs = words[5:]
            assert len(pairs) % 3 == 0 and all(flag == "-p" for flag in pairs[::3]), command
            validate_overrides(specs, dict(zip(pairs[1::3], pairs[2::3], strict=True)), rules_for(notebook.stem))


def test_every_chapter_has_a_predict_then_rerun_exercise():
    for name in toc_chapters():
        assert rerun_exercises(find_chapter(name)), f"{name}: at least one exercise must ask for a re-run"


def test_run_times_are_read_from_the_store(results_store):
    name = chapter_names()[0]
    notebook = find_chapter(name)
    assert run_time(name).seconds is None

    params = validate_overrides(read_parameters(notebook), quick_parameters(notebook))
    path = run_dir(notebook.stem, params)
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"source_hash": source_hash(notebook), "seconds": 12.5,
                                               "machine": "test CPU, 2 cores", "load_at_start": 3.1, "cores": 2}))
    measured = run_time(name, quick=True)
    assert (measured.seconds, measured.machine) == (12.5, "test CPU, 2 cores")
    assert measured.conditions() == "test CPU, 2 cores; busy with other work at the start (load average 3.1 on 2 cores)"
    assert run_time(name).seconds is None, "the default run is another run"
    table = "\n".join(run_time_table([name]))
    assert "| tiny test run | measured on |" in table and "| default run |" not in table
    assert "12 s | test CPU, 2 cores; busy with other work" in table
    assert "no stored default runs, so their times are not shown" in table
    assert RunTime(5.0, "m", 0.1, 2).conditions() == "m; idle at the start (load average 0.1 on 2 cores)"
    # a run the chapter's page still shows after fmlib or the notebook changed: its time, marked stale
    (path / "run.json").write_text(json.dumps({"source_hash": "older", "seconds": 12.5, "machine": "test CPU"}))
    assert run_time(name, quick=True).stale
    assert "12 s | test CPU; load not recorded; stale: the notebook or fmlib changed since" in "\n".join(
        run_time_table([name]))


def test_course_tables_are_written(results_store, tmp_path):
    names = chapter_names()
    written = write_course_tables(names, tmp_path / "generated")
    assert [p.name for p in written] == ["run_times.md", "homework.md"]
    times = Path(written[0]).read_text()
    assert times.count("no stored run") == len(names) and "not stored yet" not in times
    homework = Path(written[1]).read_text()
    for name in names:
        assert chapter_title(find_chapter(name)) in homework
    assert sorted(p.name for p in (tmp_path / "generated").iterdir()) == ["homework.md", "run_times.md"]


def test_the_rerun_box_says_allowed_values_and_combinations_in_words():
    """The box under each chapter: intervals and data-set constraints in words, and the chapter's cross rules."""
    from fmlib.book.report import rerun_box

    text = rerun_box("01_closed_form", {}).data
    assert "(allowed: at least 1)" in text and "{in [" not in text and "(allowed: dataset)" not in text
    assert "(allowed: a data set: " in text
    assert "Combinations checked before a run: the data set `dataset` must take the dimension 2" in text
    assert "Combinations" not in rerun_box("04_learned_fields", {}).data  # a chapter without rules says none
