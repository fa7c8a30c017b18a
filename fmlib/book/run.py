"""Execute a chapter with papermill after checking its parameters, and store the run atomically.

``python -m fmlib run NAME -p name value ...`` comes here. The steps: find ``notebooks/NAME.md``
(``NAME`` with or without its ``NN_`` prefix), read its parameters cell, check every override
(:mod:`fmlib.book.params`; nothing is written for a rejected run), convert to .ipynb with jupytext,
execute with papermill into ``data/results/.staging/``, then rename into
``data/results/NAME/<hash>/`` (:mod:`fmlib.book.store`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmlib.book.chapters import REPO_ROOT, find_chapter, write_json_atomic
from fmlib.book.rules import check_parameters
from fmlib.book.store import params_hash, publish, results_root, run_dir, source_hash, stored_run

__all__ = ["ChapterError", "RunResult", "machine_description", "machine_load", "run_chapter"]

class ChapterError(RuntimeError):
    """A chapter's execution failed: names the chapter, the cell and where the executed notebook is."""


@dataclass(frozen=True)
class RunResult:
    """A stored run: where it is, its parameters, and whether it was executed now or found stored."""

    name: str
    path: Path
    params: dict[str, Any]
    executed: bool

    @property
    def results(self) -> dict[str, Any]:
        """The run's ``results.json``."""
        return json.loads((self.path / "results.json").read_text())

    @property
    def notebook(self) -> Path:
        """The executed notebook."""
        return self.path / f"{self.name}.ipynb"


def _ipc_kernel_manager(socket_dir: str) -> type:
    """A jupyter_client KernelManager that talks to the kernel over local IPC sockets, not TCP.

    The kernel and the runner are on one machine; over TCP ipykernel 7 warns at every start that the
    traffic is unencrypted ("Kernel is running over TCP without encryption"), which a reader takes
    for an error. Each kernel gets its own ``socket_dir`` (short, under the system's temporary
    directory: a socket path has at most 107 characters): jupyter_client numbers IPC sockets from 1
    in their directory, so kernels started at once in one directory (a sweep's processes, test
    workers) would take the same sockets and read each other's messages ("Invalid Signature").
    """
    from jupyter_client.manager import KernelManager

    class IpcKernelManager(KernelManager):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(transport="ipc", ip=os.path.join(socket_dir, "kernel"), **kwargs)

    return IpcKernelManager


def _execute(notebook_path: Path, params: dict[str, Any], staging: Path, *, progress: bool) -> None:
    import jupytext
    import papermill
    from papermill.exceptions import PapermillExecutionError

    notebook = jupytext.read(notebook_path)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source = staging / "input.ipynb"
    jupytext.write(notebook, source)
    output = staging / f"{notebook_path.stem}.ipynb"
    previous = os.environ.get("FMLIB_OUTPUT_DIR")
    os.environ["FMLIB_OUTPUT_DIR"] = str(staging)
    socket_dir = tempfile.mkdtemp(prefix="fmlib-kernel-")
    try:
        papermill.execute_notebook(
            source, output, parameters=params, kernel_name="python3", cwd=str(REPO_ROOT),
            progress_bar=progress, report_mode=False, kernel_manager_class=_ipc_kernel_manager(socket_dir),
        )
    except PapermillExecutionError as err:
        failed = results_root() / "_failed" / f"{notebook_path.stem}-{params_hash(params)}.ipynb"
        failed.parent.mkdir(parents=True, exist_ok=True)
        if output.exists():
            shutil.copy(output, failed)
        raise ChapterError(
            f"chapter {notebook_path.stem} failed in cell {err.exec_count} ({err.ename}: {err.evalue}); "
            f"the executed notebook is at {failed}"
        ) from None
    finally:
        if previous is None:
            os.environ.pop("FMLIB_OUTPUT_DIR", None)
        else:
            os.environ["FMLIB_OUTPUT_DIR"] = previous
        source.unlink(missing_ok=True)
        shutil.rmtree(socket_dir, ignore_errors=True)


def machine_description() -> str:
    """One line naming the machine a run executes on: CPU model, cores, and the GPU if CUDA is present."""
    import platform

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("model name")]
        cpu = models[0] if models else cpu
    text = f"{cpu}, {os.cpu_count()} cores, {platform.system()}"
    try:
        import torch

        if torch.cuda.is_available():
            text += f", GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return text


def machine_load() -> float | None:
    """The machine's 1-minute load average (runnable processes, all users), or None where unknown.

    Stored with each run (``run.json``: ``load_at_start``, ``load_at_end``, ``cores``), so that a
    time measured on a busy machine says so (:mod:`fmlib.book.course`).
    """
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def run_chapter(
    name: str, overrides: dict[str, Any] | None = None, *, force: bool = False, progress: bool = True
) -> RunResult:
    """Run chapter ``name`` with ``overrides`` (strings from the shell or Python values).

    Overrides are checked before anything runs. A run whose parameters, notebook and fmlib code are
    unchanged is found in the store and not executed again, unless ``force``.

    Raises:
        ParameterError: a rejected override (nothing is written).
        ChapterError: a cell failed (the store is left as it was).
    """
    notebook_path = find_chapter(name)
    params = check_parameters(notebook_path, overrides or {})
    stem = notebook_path.stem
    existing = None if force else stored_run(stem, params, notebook_path)
    if existing is not None:
        return RunResult(stem, existing, params, executed=False)
    staging = results_root() / ".staging" / f"{stem}-{os.getpid()}-{time.time_ns()}"
    staging.mkdir(parents=True)
    try:
        start, load = time.time(), machine_load()
        source = source_hash(notebook_path)  # before running: an edit during the run makes the run stale
        _execute(notebook_path, params, staging, progress=progress)
        write_json_atomic(staging / "params.json", params)
        if not (staging / "results.json").exists():
            write_json_atomic(staging / "results.json", {})
        write_json_atomic(
            staging / "run.json",
            {"source_hash": source, "seconds": round(time.time() - start, 1),
             "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine_description(),
             "load_at_start": load, "load_at_end": machine_load(), "cores": os.cpu_count()},
        )
        final = run_dir(stem, params)
        publish(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return RunResult(stem, final, params, executed=True)
