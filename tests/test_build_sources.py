"""The build's sources, offline assets and generated lists, without building the book (fast).

The end-to-end build (``tests/test_book.py``, slow) renders what these functions prepare; here:
the sources are staged outside ``book/`` and rewritten only when they change, MathJax and the
style sheet come from the checkout and the installed package, the runs page lists stored runs,
and ``show`` says how to store a run it cannot find.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import yaml

from fmlib.__main__ import main
from fmlib.book.build import SOURCE_ITEMS, stage_sources
from fmlib.book.chapters import REPO_ROOT, find_chapter, quick_parameters
from fmlib.book.rules import check_parameters
from fmlib.book.runs import changed_parameters, show_command, write_runs_table
from fmlib.book.show import RunNotStored, run_summary, show_run
from fmlib.book.sphinxext import copy_mathjax
from fmlib.book.store import run_dir, source_hash


def fake_run(name: str, overrides: dict, *, seconds: float = 3.0, **results: object) -> None:
    """A stored run as the runner leaves it (with ``results``), without executing the notebook."""
    notebook = find_chapter(name)
    params = check_parameters(notebook, overrides)
    path = run_dir(notebook.stem, params)
    path.mkdir(parents=True)
    (path / "params.json").write_text(json.dumps(params))
    (path / "results.json").write_text(json.dumps({"claims": {"memorisation": {
        "verdict": "reproduced", "number": "max distance 1e-9", "rule": "below 1e-6"}}, **results}))
    (path / "run.json").write_text(json.dumps({"source_hash": source_hash(notebook), "seconds": seconds,
                                               "finished": "2026-12-03T10:00:00", "machine": "test CPU"}))


def test_sources_are_staged_outside_book_and_rewritten_only_when_changed(tmp_path):
    before = subprocess.run(["git", "status", "--porcelain", "--ignored", "book"], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=True).stdout
    source = stage_sources(tmp_path / "source")
    for item in SOURCE_ITEMS:
        assert (source / item).exists(), item
    assert (source / "book" / "static" / "fmlib.css").is_file()
    assert not list((source / "notebooks").glob("*.ipynb"))
    generated = source / "book" / "chapters" / "page.md"
    generated.parent.mkdir(parents=True)
    generated.write_text("generated")
    stray = source / "book" / "gone.md"
    stray.write_text("removed from the repository")
    times = {p: p.stat().st_mtime_ns for p in source.rglob("*") if p.is_file() and p != stray}
    stage_sources(source)
    assert not stray.exists(), "a page gone from the repository leaves the staged sources"
    assert generated.read_text() == "generated", "generated pages stay"
    assert {p: p.stat().st_mtime_ns for p in source.rglob("*") if p.is_file()} == times, "nothing rewritten"
    after = subprocess.run(["git", "status", "--porcelain", "--ignored", "book"], cwd=REPO_ROOT,
                           capture_output=True, text=True, check=True).stdout
    assert after == before


def test_a_restaged_file_gets_a_fresh_time_so_sphinx_sees_the_change(tmp_path):
    """A file edited while a build ran is older than that build's pages: its staged copy must look new."""
    source = stage_sources(tmp_path / "source")
    staged = source / "book" / "runs.md"
    staged.write_text("the text an earlier build staged")
    os.utime(staged, ns=(0, 0))
    start = time.time_ns()
    stage_sources(source)
    assert staged.read_bytes() == (REPO_ROOT / "book" / "runs.md").read_bytes()
    assert staged.stat().st_mtime_ns >= start - 10**9, "the copy keeps the repository file's old time"


def test_mathjax_is_copied_once_from_the_package(tmp_path):
    target = copy_mathjax(tmp_path / "_static")
    assert (target / "tex-mml-chtml.js").stat().st_size > 500_000
    assert (target / "output" / "chtml" / "fonts" / "woff-v2").is_dir()
    assert (target / "input" / "tex" / "extensions" / "ams.js").is_file()
    assert not (target / "output" / "svg").exists() and not (target / "tex-svg.js").exists()
    (target / "tex-mml-chtml.js").write_text("changed")
    copy_mathjax(tmp_path / "_static")
    assert (target / "tex-mml-chtml.js").read_text() == "changed", "a complete copy is not copied again"
    (target / ".complete").unlink()
    copy_mathjax(tmp_path / "_static")
    assert (target / "tex-mml-chtml.js").stat().st_size > 500_000, "an unfinished copy is redone"


def test_config_loads_nothing_from_the_network():
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert "://" not in config["mathjax_path"]
    assert config["mathjax_path"].startswith("mathjax/es5/")
    for folder in config["html_static_path"]:
        for css in config["html_css_files"]:
            assert (REPO_ROOT / folder / css).is_file()
    assert config["nb_ipywidgets_js"] == {}


def test_runs_page_lists_runs_marks_defaults_and_gives_show_commands(results_store, tmp_path):
    fake_run("closed_form", {})
    fake_run("closed_form", {"n_train": "12", "cfm_steps": "-1,0,1"})
    fake_run("cosine_point", {"d": "8", "n": "20"})
    fake_run("cosine_point", {"d": "16", "n": "20"})
    text = write_runs_table(tmp_path / "runs.md").read_text()
    assert "**defaults**" in text and "{doc}`/book/chapters/01_closed_form`" in text
    assert "`python -m fmlib show closed_form -p n_train 12 -p cfm_steps -1.0,0.0,1.0`" in text
    assert "`n_train` 12, `cfm_steps` -1.0,0.0,1.0" in text
    assert "**Sweep of `cosine_point`**" in text and "2 stored point(s)" in text and "`d`: 8, 16" in text
    assert "cosine_point" not in text.split("**Sweep")[0], "a sweep's points are not listed as chapter runs"


def test_a_run_stored_before_a_parameter_existed_shows_no_nan(results_store, tmp_path):
    """A run whose params.json lacks a parameter the chapter has now: no raw nan, and the page says why."""
    fake_run("closed_form", {})
    fake_run("closed_form", {"n_train": "12"})
    path = next(p for p in (results_store / "01_closed_form").glob("*/params.json")
                if json.loads(p.read_text())["n_train"] == 12)
    params = json.loads(path.read_text())
    del params["t_check"]
    path.write_text(json.dumps(params))
    text = write_runs_table(tmp_path / "runs.md").read_text()
    assert "nan" not in text.lower()
    assert "an earlier version of the chapter, without `t_check`" in text
    assert "`python -m fmlib show closed_form -p n_train 12`" in text


def test_a_sweep_gets_its_figure_one_line_per_value_of_the_other_varied_parameters(results_store, tmp_path):
    import matplotlib.pyplot as plt

    for family, d, t_star in [("gaussian", 8, 0.3), ("gaussian", 16, 0.2), ("gaussian", 32, 0.1),
                              ("two_moons", 2, 0.9), ("gaussian", 64, "inf")]:
        fake_run("cosine_point", {"family": family, "d": str(d), "n": "20"}, t_star=t_star)
    text = write_runs_table(tmp_path / "runs.md").read_text()
    assert "![The stored points of the sweep of cosine_point" in text and "(_generated/sweep-cosine_point.png)" in text
    figure = tmp_path / "sweep-cosine_point.png"
    assert figure.stat().st_size > 5_000
    drawn = {}
    original = plt.Axes.plot

    def spy(ax, x, y, *args, **kwargs):
        drawn[kwargs.get("label")] = (list(x), list(y))
        return original(ax, x, y, *args, **kwargs)

    plt.Axes.plot = spy
    try:
        write_runs_table(tmp_path / "again.md")
    finally:
        plt.Axes.plot = original
    assert drawn == {"family gaussian": ([8, 16, 32], [0.3, 0.2, 0.1]), "family two_moons": ([2], [0.9])}, \
        "one line per family, sorted by d, the non-finite t* left out"


def test_runs_page_without_runs_says_how_to_store_one(results_store, tmp_path):
    assert "No run is stored yet" in write_runs_table(tmp_path / "runs.md").read_text()


def test_show_commands_validate():
    params = check_parameters(find_chapter("cosine_point"), {"family": "digits", "n": "100"})
    assert changed_parameters("cosine_point", params) == {"family": "digits", "n": 100}
    command = show_command("cosine_point", params)
    assert command == "python -m fmlib show cosine_point -p family digits -p n 100"
    words = command.split()[5:]
    check_parameters(find_chapter("cosine_point"), dict(zip(words[1::3], words[2::3], strict=True)))


def test_show_without_a_stored_run_says_how_to_store_it(results_store, capsys):
    with pytest.raises(RunNotStored, match=r"no run of 01_closed_form .* store it with "
                                           r"`python -m fmlib run closed_form -p n_train 3`"):
        show_run("closed_form", {"n_train": "3"})
    assert main(["show", "closed_form", "-p", "n_train", "3"]) == 3
    assert "python -m fmlib run closed_form -p n_train 3" in capsys.readouterr().err
    assert main(["show", "closed_form", "-p", "dataset", "digits"]) == 2, "parameters are checked as for run"
    assert not (results_store / "_pages").exists()


def test_run_summary_lists_parameters_and_findings(tmp_path):
    notebook = find_chapter("closed_form")
    params = check_parameters(notebook, quick_parameters(notebook))
    results = {"claims": {"memorisation": {"verdict": "reproduced", "number": "1e-9", "rule": "below 1e-6"}}}
    text = run_summary(notebook.stem, params, results, tmp_path, stale=True)
    assert f"| `n_train` | **{params['n_train']}** | 8 |" in text and "| `seed` | 0 | 0 |" in text
    assert "| `memorisation` | reproduced | 1e-9 | below 1e-6 |" in text
    assert "**Stale**" in text and "python -m fmlib run closed_form -p n_train" in text
