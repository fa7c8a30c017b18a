"""The sweep engine: grid parsing and its errors, resume after a killed sweep, local and Dask execution, collect."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fmlib.__main__ import main
from fmlib.book.chapters import REPO_ROOT, find_chapter, quick_parameters
from fmlib.book.params import ParameterError, read_parameters
from fmlib.book.run import ChapterError, run_chapter
from fmlib.book.store import collect
from fmlib.book.sweep import parse_grid, run_sweep

POINT = "cosine_point"


def tiny_grid(**axes: str) -> dict[str, str]:
    """The point-notebook's tiny test parameters as one-valued axes, with ``axes`` on top."""
    base = {key: str(value) for key, value in quick_parameters(find_chapter(POINT)).items()}
    return {**base, **axes}


# --- grid parsing ------------------------------------------------------------------------------


def test_grid_is_the_product_with_typed_values_and_defaults():
    points = parse_grid(POINT, {"d": "8, 16", "n": "10,100,1000"})
    assert [(p["d"], p["n"]) for p in points] == [(8, 10), (8, 100), (8, 1000), (16, 10), (16, 100), (16, 1000)]
    assert all(p["family"] == "gaussian" and p["threshold"] == 0.9 for p in points)
    assert isinstance(points[0]["d"], int)


def test_grid_accepts_python_lists_and_runs_equal_points_once():
    points = parse_grid(POINT, {"d": [8, 8], "threshold": "0.9,0.90,0.8"})
    assert [(p["d"], p["threshold"]) for p in points] == [(8, 0.9), (8, 0.8)]


def test_list_typed_parameters_take_their_grid_values_separated_by_semicolons():
    points = parse_grid("closed_form", {"cfm_steps": "-1,0;0,1"})
    assert [p["cfm_steps"] for p in points] == [[-1.0, 0.0], [0.0, 1.0]]


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"n": "100,abc,1000"}, r"grid value 2 of n \('abc'\): parameter n: 'abc' is not an integer"),
        ({"n": "100,1"}, r"grid value 2 of n \('1'\): parameter n: 1 is impossible; it must be at least 2"),
        ({"d": "8", "n": "10,20,2.5"}, r"grid value 3 of n \('2.5'\)"),
        ({"n": "100,,1000"}, r"parameter n: grid value 2 of '100,,1000' is empty"),
        ({"n": ""}, r"parameter n: grid value 1 of '' is empty"),
        ({"family": "gaussian,gausian"}, r"grid value 2 of family \('gausian'\): .*Did you mean 'gaussian'\?"),
        ({"device": "cpu,tpu"}, r"grid value 2 of device \('tpu'\): parameter device: 'tpu' is not one of"),
        ({"famly": "gaussian"}, r"unknown parameter 'famly'. Did you mean 'family'\?"),
        ({"threshold": [0.5, 2.0]}, r"grid value 2 of threshold \(2.0\): .* it must be at least -1 and below 1"),
    ],
)
def test_bad_grid_values_name_the_parameter_and_the_position(grid, message):
    with pytest.raises(ParameterError, match=message):
        parse_grid(POINT, grid)


def test_a_grid_point_that_breaks_a_rule_is_named_before_anything_runs(results_store):
    with pytest.raises(ParameterError, match=r"grid point -p family two_moons -p d 8: parameters family and d: "
                                             r"d=8 is not available for 'two_moons'"):
        parse_grid(POINT, {"family": "gaussian,two_moons", "d": "2,8"})
    assert len(parse_grid(POINT, {"family": "gaussian,two_moons", "d": "2"})) == 2
    assert main(["sweep", POINT, "-p", "family", "digits", "-p", "n", "100,5000"]) == 2
    assert not results_store.exists()


def test_unknown_notebook_is_rejected_with_a_suggestion():
    with pytest.raises(ParameterError, match=r"unknown chapter 'cosine_pont'. Did you mean 'cosine_point'\?"):
        parse_grid("cosine_pont", {"n": "10"})


def test_cli_rejects_a_bad_grid_before_anything_runs(results_store, capsys):
    assert main(["sweep", POINT, "-p", "n", "10,x"]) == 2
    assert "grid value 2 of n ('x')" in capsys.readouterr().err
    assert main(["sweep", POINT, "-p", "n", "10", "-p", "n", "20"]) == 2
    assert "parameter n is given twice" in capsys.readouterr().err
    assert main(["sweep", POINT, "-p", "n", "10", "--jobs", "0"]) == 2
    assert "--jobs must be an integer >= 1" in capsys.readouterr().err
    assert not results_store.exists()


def test_collect_of_an_empty_store_is_an_empty_frame(results_store):
    assert collect(POINT).empty


# --- execution -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_sweep_runs_each_point_once_and_collect_gathers_them(results_store):
    grid = tiny_grid(n="20,30")
    done = run_sweep(POINT, grid, jobs=1)
    assert (done.executed, done.skipped) == (2, 0)
    again = run_sweep(POINT, grid, jobs=2)
    assert (again.executed, again.skipped) == (0, 2)

    frame = collect(POINT).sort_values("n").reset_index(drop=True)
    assert list(frame["n"]) == [20, 30] and set(frame["family"]) == {"gaussian"}
    assert {"t_star", "t_star_low", "t_star_high", "seconds", "stale", "run_dir"} <= set(frame.columns)
    assert "fraction" not in frame.columns and not frame["stale"].any()
    for _, row in frame.iterrows():
        assert row["t_star"] == json.loads((Path(row["run_dir"]) / "results.json").read_text())["t_star"]
    with_lists = collect(POINT, include_lists=True)
    assert all(len(f) == len(ts) for f, ts in zip(with_lists["fraction"], with_lists["ts"], strict=True))

    # a point the sweep stored is the run ``python -m fmlib run`` finds: same store, same key
    params = {k: v for k, v in frame.iloc[0].items() if k in read_parameters(find_chapter(POINT))}
    assert not run_chapter(POINT, params, progress=False).executed


@pytest.mark.slow
def test_a_point_that_breaks_a_rule_stops_the_sweep_before_anything_runs(results_store):
    grid = tiny_grid(family="gaussian,digits", d="8")  # digits has d = 64: the rule rejects that point
    with pytest.raises(ParameterError, match=r"family digits -p d 8 .* d=8 is not available for 'digits'"):
        run_sweep(POINT, grid, jobs=2)
    assert collect(POINT).empty, "nothing may run when one point of the grid is invalid"


@pytest.mark.slow
def test_parallel_local_processes_and_failures_do_not_stop_the_others(results_store, tmp_path):
    empty = tmp_path / "no-cifar-files"  # exists, so it passes the checks; the loader fails inside the run
    empty.mkdir()
    grid = tiny_grid(family="gaussian,cifar10", d="3072", cifar10_dir=str(empty))
    with pytest.raises(ChapterError, match=r"(?s)1 of 2 point\(s\) failed.*family='cifar10'"):
        run_sweep(POINT, grid, jobs=2)
    frame = collect(POINT)
    assert list(frame["family"]) == ["gaussian"]
    done = run_sweep(POINT, tiny_grid(family="gaussian", d="3072,12", cifar10_dir=str(empty)), jobs=2)
    assert (done.executed, done.skipped) == (1, 1)
    assert not (results_store / ".staging").exists() or not any((results_store / ".staging").iterdir())


@pytest.mark.slow
def test_dask_path_on_a_local_cluster(results_store, tmp_path):
    distributed = pytest.importorskip("distributed")
    run_sweep(POINT, tiny_grid(n="20"), jobs=1)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None, local_directory=str(tmp_path)) as cluster:
        done = run_sweep(POINT, tiny_grid(n="20,30,40"), scheduler=cluster.scheduler_address)
    assert (done.executed, done.skipped) == (2, 1)
    frame = collect(POINT)
    assert sorted(frame["n"]) == [20, 30, 40]
    assert all(str(results_store) in path for path in frame["run_dir"])


def test_unreachable_scheduler_is_a_clear_error(results_store, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr("fmlib.book.sweep.DASK_CONNECT_TIMEOUT", "1s")
    with pytest.raises(ParameterError, match=r"cannot reach the Dask scheduler at 'tcp://127\.0\.0\.1:9'"):
        run_sweep(POINT, tiny_grid(), scheduler="tcp://127.0.0.1:9")


@pytest.mark.slow
def test_a_killed_sweep_resumes_and_loses_nothing_finished(results_store):
    grid = tiny_grid(n="20,30,40")
    command = [sys.executable, "-m", "fmlib", "sweep", POINT, "--jobs", "1"]
    for key, value in grid.items():
        command += ["-p", key, value]
    env = {**os.environ, "FMLIB_RESULTS": str(results_store)}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = results_store / "cosine_point"
    deadline = time.time() + 180
    try:
        while time.time() < deadline and not any(store.glob("*/run.json")):
            assert process.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finished = {p.parent.name: p.read_text() for p in store.glob("*/run.json")}
    assert 1 <= len(finished) < 3, finished
    assert all((store / name / "results.json").exists() for name in finished), "a stored point must be complete"
    assert {p.name for p in store.iterdir() if not p.name.startswith(".")} == set(finished), "no half-written point"

    done = run_sweep(POINT, grid, jobs=1)
    assert done.skipped == len(finished) and done.executed == 3 - len(finished)
    frame = collect(POINT)
    assert sorted(frame["n"]) == [20, 30, 40]
    for name, run_info in finished.items():
        assert (store / name / "run.json").read_text() == run_info, "a finished point was run again"
