"""The runner: every rejection with its message, --help, the store, atomic writes, a real execution."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from fmlib.__main__ import main
from fmlib.book.chapters import REPO_ROOT, find_chapter, quick_parameters
from fmlib.book.params import ParameterError, ParameterSpec, parse_value, read_parameters, validate_overrides
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
        ({"n_train": "five"}, r"parameter n_train: 'five' is not a int .*write it like -p n_train 8"),
        ({"n_train": "2.5"}, r"parameter n_train: '2.5' is not a int"),
        ({"t_check": "abc"}, r"parameter t_check: 'abc' is not a float"),
        ({"cfm_steps": "0.5,x"}, r"parameter cfm_steps: '0.5,x' is not a list\[float\].*-p cfm_steps 0.5,0.5"),
        ({"n_train": "0"}, r"parameter n_train: 0 is impossible; it must lie in \[1, inf\)"),
        ({"t_check": "1.0"}, r"parameter t_check: 1.0 is impossible; it must lie in \(0, 1\)"),
        ({"t_check": "-0.5"}, r"parameter t_check: -0.5 is impossible"),
        ({"cfm_steps": "0,50"}, r"parameter cfm_steps: 50.0 is impossible; it must lie in \[-10, 10\]"),
        ({"dataset": "gausian_mixture"}, r"unknown data set 'gausian_mixture'; known: .*Did you mean 'gaussian_mix"),
        ({"device": "tpu"}, r"parameter device: 'tpu' is not one of auto, cpu, cuda"),
    ],
)
def test_rejections_name_the_parameter_and_the_fix(overrides, message):
    with pytest.raises(ParameterError, match=message):
        validate_overrides(specs(), overrides)


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
    with pytest.raises(ParameterError, match="is not a bool"):
        parse_value(ParameterSpec("flag", "bool", False, "", ""), "maybe")


def test_unknown_chapter_suggests_the_closest():
    with pytest.raises(ParameterError, match=r"unknown chapter 'closed_from'. Did you mean 'closed_form'\?"):
        find_chapter("closed_from")


def test_cli_rejects_before_anything_is_written(results_store, capsys):
    assert main(["run", CHAPTER, "-p", "n_trian", "5"]) == 2
    assert "Did you mean 'n_train'" in capsys.readouterr().err
    assert not results_store.exists()


def test_cli_help_lists_parameters(capsys):
    assert main(["run", CHAPTER, "--help"]) == 0
    out = capsys.readouterr().out
    assert "n_train: int = 8  number of training points {in [1, inf)}" in out
    assert "python -m fmlib run 01_closed_form -p NAME VALUE" in out


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
