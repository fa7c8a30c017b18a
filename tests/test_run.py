"""The runner: every rejection with its message, --help, the store, atomic writes, a real execution."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from fmlib.__main__ import main
from fmlib.book.chapters import REPO_ROOT, chapter_names, find_chapter, quick_parameters, runnable_names
from fmlib.book.params import (
    LIST_TYPES,
    ParameterError,
    ParameterSpec,
    parse_value,
    read_parameters,
    validate_overrides,
)
from fmlib.book.rules import RULES, check_parameters
from fmlib.book.run import run_chapter
from fmlib.book.store import collect

CHAPTER = "closed_form"


def specs():
    return read_parameters(find_chapter(CHAPTER))


def test_parameters_cell_is_read_with_types_defaults_help_and_constraints():
    s = specs()
    assert s["n_train"] == ParameterSpec("n_train", "int", 8, "number of training points", "in [1, inf)")
    assert s["cfm_steps"].type_name == "list[float]"
    assert s["dataset"].constraint == "dataset"
    assert s["device"].constraint == "one of: auto, cpu, cuda"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_trian": "5"}, r"unknown parameter 'n_trian'. Did you mean 'n_train'\? Parameters: n_train, dataset"),
        ({"zzz": "5"}, r"unknown parameter 'zzz'. Parameters: "),
        ({"n_train": "five"}, r"parameter n_train: 'five' is not an integer .*write it like its default: -p n_train 8"),
        ({"n_train": "2.5"}, r"parameter n_train: '2.5' is not an integer"),
        ({"t_check": "abc"}, r"parameter t_check: 'abc' is not a number"),
        ({"cfm_steps": "0.5,x"}, r"'0.5,x' is not a list of numbers .*-p cfm_steps -0.5,-0.25,0.0,0.25,0.5"),
        ({"n_train": "0"}, r"parameter n_train: 0 is impossible; it must be at least 1 \(interval \[1, inf\)\)"),
        ({"t_check": "1.0"}, r"parameter t_check: 1.0 is impossible; it must be above 0 and below 1"),
        ({"t_check": "-0.5"}, r"parameter t_check: -0.5 is impossible"),
        ({"cfm_steps": "0,50"}, r"parameter cfm_steps: 50.0 is impossible; it must be at least -10 and at most 10"),
        ({"dataset": "digits"}, r"parameters dataset and d: d=2 is not available for 'digits'.*Data sets that take "
                                r"d = 2: gaussian, gaussian_mixture, simplex, subspace, two_moons"),
        ({"dataset": "gausian_mixture"}, r"unknown data set 'gausian_mixture'; known: .*Did you mean 'gaussian_mix"),
        ({"device": "tpu"}, r"parameter device: 'tpu' is not one of auto, cpu, cuda"),
    ],
)
def test_rejections_name_the_parameter_and_the_fix(overrides, message):
    with pytest.raises(ParameterError, match=message):
        check_parameters(find_chapter(CHAPTER), overrides)


def test_file_constraint_names_the_missing_file(tmp_path):
    spec = ParameterSpec("data_file", "str", "", "a data file", "file")
    with pytest.raises(ParameterError, match=r"data file '.*missing.bin' does not exist; put the file there"):
        validate_overrides({"data_file": spec}, {"data_file": str(tmp_path / "missing.bin")})
    (tmp_path / "here.bin").write_bytes(b"1")
    assert validate_overrides({"data_file": spec}, {"data_file": str(tmp_path / "here.bin")}) == {
        "data_file": str(tmp_path / "here.bin")
    }


def test_a_hash_in_a_default_value_is_not_a_comment(tmp_path):
    import jupytext
    from nbformat.v4 import new_code_cell, new_notebook

    cell = new_code_cell('color: str = "#ff0000"  # line colour', metadata={"tags": ["parameters"]})
    notebook = tmp_path / "nb.md"
    jupytext.write(new_notebook(cells=[cell]), notebook, fmt="md:myst")
    spec = read_parameters(notebook)["color"]
    assert spec.default == "#ff0000" and spec.help == "line colour"


def test_values_parse_to_their_types():
    s = specs()
    assert parse_value(s["n_train"], "1e3") == 1000
    assert parse_value(s["t_check"], "0.25") == 0.25
    assert parse_value(s["cfm_steps"], "-0.5, 0,0.5") == [-0.5, 0.0, 0.5]
    assert parse_value(ParameterSpec("flag", "bool", False, "", ""), "yes") is True
    with pytest.raises(ParameterError, match="is not true or false"):
        parse_value(ParameterSpec("flag", "bool", False, "", ""), "maybe")


def test_unknown_chapter_suggests_the_closest():
    with pytest.raises(ParameterError, match=r"unknown chapter 'closed_from'. Did you mean 'closed_form'\?"):
        find_chapter("closed_from")


def test_cli_rejects_before_anything_is_written(results_store, capsys):
    assert main(["run", CHAPTER, "-p", "n_trian", "5"]) == 2
    assert "Did you mean 'n_train'" in capsys.readouterr().err
    assert not results_store.exists()


def test_cli_help_lists_parameters_in_words_and_the_rules(capsys):
    assert main(["run", CHAPTER, "--help"]) == 0
    out = capsys.readouterr().out
    assert "n_train (an integer, default 8): number of training points (at least 1)" in out
    assert "t_check (a number, default 0.6): the time at which (a) compares the field with the brute-force " \
           "posterior (above 0 and below 1)" in out
    assert "python -m fmlib run closed_form -p NAME VALUE" in out
    assert "the data set `dataset` must take the dimension 2, fixed by the chapter (gaussian," in out


def test_a_list_value_with_a_leading_minus_is_a_value_not_an_option(results_store, capsys):
    """The hint for cfm_steps writes "-p cfm_steps -0.5,-0.25,...": argparse alone would take -0.5,... for an option."""
    assert main(["run", CHAPTER, "-p", "cfm_steps", "-0.5,0,0.5", "-p", "n_train", "0"]) == 2
    assert "parameter n_train: 0 is impossible" in capsys.readouterr().err, "cfm_steps was read as a value"


def test_cli_without_arguments_prints_help(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "usage: python -m fmlib" in out and "python -m fmlib show NAME" in out


def test_list_shows_chapters_then_helper_notebooks_with_readable_ranges(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in chapter_names():
        assert f"{name}: python -m fmlib run" in out
    chapters, helpers = out.split("Helper notebooks")
    assert "cosine_point: python -m fmlib" not in chapters, "a helper notebook of a sweep is not a chapter"
    assert "cosine_point: python -m fmlib run cosine_point" in helpers, "but a reader who sweeps needs its parameters"
    assert not re.search(r"\{(dataset|file|in [^}]*|one of:[^}]*)\}", out), "raw constraint markers"
    assert " a int" not in out and "(a data set: cifar10, digits, gaussian" in out


def test_every_example_in_a_message_passes_validation():
    """A hint that says "write it like -p NAME VALUE" must itself be a valid override, for every parameter."""
    for name in runnable_names():
        notebook = find_chapter(name)
        for spec in read_parameters(notebook).values():
            bad = {"int": "x", "float": "x", "str": "", "bool": "maybe"}[LIST_TYPES.get(spec.type_name, spec.type_name)]
            messages = []
            for value in (bad, "-1e9"):
                try:
                    check_parameters(notebook, {spec.name: value})
                except ParameterError as err:
                    messages.append(str(err))
            examples = [m for message in messages for m in re.findall(r"-p (\w+) (\S+?)[;,)]?(?=\s|$)", message)]
            for key, value in examples:
                check_parameters(notebook, {key: value.rstrip(";),")})


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("cosine_point", {"family": "digits", "n": "5000"}, r"'digits' has 1797 points, fewer than n = 5000"),
        ("cosine_point", {"family": "two_moons"}, r"its dimension is fixed at d=2.*or keep two_moons with -p d 2"),
        ("cosine_point", {"family": "image_patches", "d": "100"}, r"d must be 3 r\^2.*Data sets that take d = 100"),
        ("cosine_point", {"s_min": "10", "s_max": "1"}, r"s_min = 10.0 must be below s_max = 1.0; swap them"),
        ("concentration", {"t_min": "0.9", "t_max": "0.5"}, r"t_min = 0.9 must be below t_max = 0.5"),
        ("concentration", {"t_min": "0.5", "t_max": "0.5"}, r"t_min = 0.5 must be below t_max = 0.5$"),
    ],
)
def test_rules_between_parameters_are_checked_before_the_run(name, overrides, message):
    with pytest.raises(ParameterError, match=message):
        check_parameters(find_chapter(name), overrides)


@pytest.mark.parametrize(
    ("name", "overrides"),
    [("cosine_point", {"family": "two_moons"}), ("cosine_point", {"family": "digits", "n": "5000"}),
     ("closed_form", {"dataset": "digits"}), ("cosine_point", {"s_min": "10", "s_max": "1"}),
     ("cosine_point", {"family": "image_patches", "d": "100"})],
)
def test_the_fixes_the_rules_suggest_are_valid(name, overrides):
    """Each alternative a message offers (the -p options between two "or"s) is a valid run."""
    notebook = find_chapter(name)
    with pytest.raises(ParameterError) as caught:
        check_parameters(notebook, overrides)
    alternatives = [dict(re.findall(r"-p (\w+) (\w[\w.]*)", part)) for part in re.split(r"\bor\b", str(caught.value))]
    alternatives = [fix for fix in alternatives if fix]
    assert alternatives, str(caught.value)
    for fix in alternatives:
        check_parameters(notebook, {**overrides, **fix})


def test_every_rule_names_parameters_of_its_notebook_and_the_defaults_obey_it():
    for stem, rules in RULES.items():
        notebook = find_chapter(stem)
        specs = read_parameters(notebook)
        for rule in rules:
            assert set(rule.names()) <= set(specs), f"{stem}: {rule} names an unknown parameter"
        check_parameters(notebook, {})
        check_parameters(notebook, quick_parameters(notebook))


def test_a_second_equals_sign_in_a_parameter_line_is_rejected(tmp_path):
    import jupytext
    from nbformat.v4 import new_code_cell, new_notebook

    cell = new_code_cell('spacing: str = "u"  # refined toward t = 1', metadata={"tags": ["parameters"]})
    notebook = tmp_path / "nb.md"
    jupytext.write(new_notebook(cells=[cell]), notebook, fmt="md:myst")
    with pytest.raises(ParameterError, match=r"more than one '='.*write 't near 1'"):
        read_parameters(notebook)


def test_papermill_reads_every_parameters_cell_as_we_do(caplog):
    """papermill's own parser must see every parameter: else it warns "Passed unknown parameter" at each run."""
    import jupytext
    from papermill.translators import PythonTranslator

    for name in runnable_names():
        notebook = find_chapter(name)
        cell = next(c for c in jupytext.read(notebook).cells if "parameters" in c.metadata.get("tags", []))
        with caplog.at_level("WARNING", logger="papermill"):
            seen = [p.name for p in PythonTranslator.inspect(cell)]
        assert seen == list(read_parameters(notebook)), name
    assert not caplog.records, [r.getMessage() for r in caplog.records]


def test_a_run_prints_no_kernel_or_papermill_warning(tmp_path, capfd):
    """The runner's kernel talks over IPC (no "running over TCP without encryption") and papermill parses the cell."""
    import jupytext
    from nbformat.v4 import new_code_cell, new_notebook

    from fmlib.book.run import _execute

    cells = [new_code_cell('n: int = 1  # a count {in [1, inf)}', metadata={"tags": ["parameters"]}),
             new_code_cell("print(n * 2)")]
    notebook = tmp_path / "toy.md"
    jupytext.write(new_notebook(cells=cells), notebook, fmt="md:myst")
    _execute(notebook, {"n": 3}, tmp_path, progress=False)
    captured = capfd.readouterr()
    assert "without encryption" not in captured.err + captured.out
    assert "Unable to parse" not in captured.err and "unknown parameter" not in captured.err
    import nbformat

    assert nbformat.read(tmp_path / "toy.ipynb", 4).cells[-1].outputs[0]["text"] == "6\n"


@pytest.mark.slow
def test_chapter_runs_with_tiny_parameters_and_is_stored(results_store):
    params = quick_parameters(find_chapter(CHAPTER))
    run = run_chapter(CHAPTER, params, progress=False)
    assert run.executed and run.notebook.exists()
    assert json.loads((run.path / "params.json").read_text())["n_train"] == params["n_train"]
    results = run.results
    assert results["worst_landing"] < 1e-6 and results["claims"]["memorisation"]["verdict"] == "reproduced"
    assert (run.path / "figures" / "fig_path_1d.png").exists()
    again = run_chapter(CHAPTER, params, progress=False)
    assert not again.executed and again.path == run.path and again.results == results
    frame = collect("01_closed_form")
    assert len(frame) == 1 and frame.loc[0, "n_train"] == params["n_train"]
    assert frame.loc[0, "worst_landing"] == results["worst_landing"]
    assert not any((results_store / ".staging").iterdir())


@pytest.mark.slow
def test_a_killed_run_leaves_the_store_as_it_was(results_store):
    env = {**os.environ, "FMLIB_RESULTS": str(results_store)}
    command = [sys.executable, "-m", "fmlib", "run", CHAPTER, "-p", "cfm_pairs", "100000000"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staging = results_store / ".staging"
    deadline = time.time() + 120
    while time.time() < deadline and not (staging.exists() and any(p.suffix == ".ipynb" for p in staging.rglob("*"))):
        time.sleep(0.5)
    assert time.time() < deadline, "the run never reached its execution"
    time.sleep(3)
    assert process.poll() is None, "the run ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (results_store / "01_closed_form").exists(), "a killed run must not publish anything"
    assert collect("01_closed_form").empty
