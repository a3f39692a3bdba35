"""Warm kernels, the smartfab papermill engine and ``execute_notebook``, with real kernels."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import papermill
import psutil
import pytest

from smartfab.runs.execute import Execution, close_pool, execute_notebook, open_pool
from smartfab.runs.kernels.pool import KernelPool, default_pool_size
from smartfab.runs.kernels.shared import shared_pool
from smartfab.runs.kernels.warm_rules import environment_changes, forkable, is_import_time_variable

MakeNotebook = Callable[..., Path]


@pytest.fixture(scope="module")
def sf_pool() -> Iterator[KernelPool]:
    pool = KernelPool(size=2)
    pool.start()
    yield pool
    pool.close()


@pytest.fixture(scope="module", autouse=True)
def sf_close_shared_pool() -> Iterator[None]:
    """Tests going through papermill use the process-wide pool: close it at the end."""
    yield
    close_pool()


@pytest.fixture
def sf_notebook(tmp_path: Path) -> MakeNotebook:
    """Write a notebook: a ``parameters`` cell, then one code cell per source."""

    def make(*sources: str, parameters: str = "x = 1", name: str = "program.ipynb") -> Path:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        cell = nbformat.v4.new_code_cell(parameters)
        cell.metadata["tags"] = ["parameters"]
        nb.cells = [cell, *(nbformat.v4.new_code_cell(source) for source in sources)]
        path = tmp_path / name
        nbformat.write(nb, path)
        return path

    return make


def _run(pool: KernelPool, notebook: Path, cwd: Path, **kwargs: Any) -> Execution:
    kwargs.setdefault("timeout_s", 60)
    parameters = kwargs.pop("parameters", {})
    return execute_notebook(notebook, parameters, cwd=cwd, pool=pool, **kwargs)


def _stdout(nb: Any, index: int) -> str:
    outputs = nb.cells[index].get("outputs", [])
    return "".join(o["text"] for o in outputs if o["output_type"] == "stream")


def _json_output(nb: Any, index: int) -> Any:
    return json.loads(_stdout(nb, index))


def _wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _gone(pids: set[int]) -> Callable[[], bool]:
    """A condition: none of ``pids`` exists, not even as a zombie (reaping our own children)."""

    def check() -> bool:
        for pid in pids:
            with contextlib.suppress(ChildProcessError):  # not ours (yet): the server's
                os.waitpid(pid, os.WNOHANG)
        return not any(psutil.pid_exists(pid) for pid in pids)

    return check


@pytest.fixture
def sf_runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A runtime directory of its own, for the connection files of one pool."""
    runtime = tmp_path / "runtime"
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    return runtime


def _connection_files(runtime: Path) -> list[str]:
    return sorted(p.name for p in runtime.glob("kernel-*.json"))


# -- parameters, execution count, settings ---------------------------------------------------


def test_parameters_are_injected_as_papermill_does(
    sf_pool: KernelPool, sf_notebook: MakeNotebook, tmp_path: Path
) -> None:
    notebook = sf_notebook("print(x, label)", parameters="x = 1\nlabel = 'default'")
    parameters = {"x": 42, "label": "spindle-7"}
    run = _run(sf_pool, notebook, tmp_path, parameters=parameters)
    assert run.error_kind is None, run.error
    expected = papermill.execute_notebook(
        str(notebook), None, parameters=parameters, prepare_only=True, progress_bar=False
    )
    assert [c.source for c in run.nb.cells] == [c.source for c in expected.cells]
    assert run.nb.cells[1].metadata["tags"] == ["injected-parameters"]
    assert run.nb.metadata["papermill"]["parameters"] == parameters
    assert _stdout(run.nb, 2) == "42 spindle-7\n"
    # the silent setup before the first cell leaves the count alone, as in papermill
    assert [c.execution_count for c in run.nb.cells] == [1, 2, 3]
    assert run.started < run.ended and run.started.tzinfo is not None


def test_working_directory_and_environment_are_the_runs(
    sf_pool: KernelPool, sf_notebook: MakeNotebook, tmp_path: Path
) -> None:
    workdir = tmp_path / "work dir"
    workdir.mkdir()
    (workdir / "input.txt").write_text("from the run directory")
    notebook = sf_notebook(
        "import json, os, sys\n"
        "print(json.dumps({'cwd': os.getcwd(), 'run': os.environ.get('SMARTFAB_RUN'),"
        " 'extra': os.environ.get('SF_EXTRA'), 'dh': [str(d) for d in _dh],"
        " 'text': open('input.txt').read()}))"
    )
    run = _run(sf_pool, notebook, workdir, env={"SMARTFAB_RUN": "key-17", "SF_EXTRA": "a b\n'c'"})
    assert run.error_kind is None, run.error
    seen = _json_output(run.nb, 1)
    assert seen == {
        "cwd": str(workdir),
        "run": "key-17",
        "extra": "a b\n'c'",
        "dh": [str(workdir)],
        "text": "from the run directory",
    }


_PROBE = """\
import json, os, sys
print(json.dumps({
    "names": sorted(name for name in globals() if name != "json"),
    "in": len(In), "out": len(Out),
    "path": sys.path, "argv": [os.path.basename(sys.argv[0])] + [
        "CONNECTION_FILE" if a.endswith(".json") else a for a in sys.argv[1:]],
    "env": {k: v for k, v in os.environ.items() if k != "MPLCONFIGDIR"},
    "cwd": os.getcwd(), "dh": [str(d) for d in _dh],
    "history": get_ipython().history_manager.hist_file,
    "warm": "xarray" in sys.modules,
}))
"""


def test_a_warm_kernel_looks_like_one_started_for_the_run(
    sf_pool: KernelPool, sf_notebook: MakeNotebook, tmp_path: Path
) -> None:
    """Same namespace, history, counts, path, argv and environment as a kernel from scratch."""
    notebook = sf_notebook(_PROBE)
    warm = _run(sf_pool, notebook, tmp_path, env={"SMARTFAB_RUN": "r1"})
    # a variable read when the kernel starts: this run needs a kernel started from scratch
    config = tmp_path / "mplconfig"
    config.mkdir()
    cold = _run(
        sf_pool, notebook, tmp_path, env={"SMARTFAB_RUN": "r1", "MPLCONFIGDIR": str(config)}
    )
    assert warm.error_kind is None and cold.error_kind is None, (warm.error, cold.error)
    seen_warm, seen_cold = _json_output(warm.nb, 1), _json_output(cold.nb, 1)
    assert (seen_warm.pop("warm"), seen_cold.pop("warm")) == (True, False)
    assert seen_warm == seen_cold
    assert seen_warm["in"] == 3 and seen_warm["out"] == 0  # In[0] is '': two cells ran
    assert [c.execution_count for c in warm.nb.cells] == [1, 2]


def test_inline_plots_are_displayed(
    sf_pool: KernelPool, sf_notebook: MakeNotebook, tmp_path: Path
) -> None:
    notebook = sf_notebook("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2]);")
    run = _run(sf_pool, notebook, tmp_path)
    assert run.error_kind is None, run.error
    assert any("image/png" in o.get("data", {}) for o in run.nb.cells[1].outputs)


def test_a_local_module_shadowing_a_preloaded_one_is_imported(
    sf_pool: KernelPool, sf_notebook: MakeNotebook, tmp_path: Path
) -> None:
    """As in a kernel started there, ``import pandas`` finds the run directory's pandas.py."""
    (tmp_path / "pandas.py").write_text("LOCAL = True\n")
    notebook = sf_notebook("import pandas\nprint(getattr(pandas, 'LOCAL', False))")
    run = _run(sf_pool, notebook, tmp_path)
    assert run.error_kind is None, run.error
    assert _stdout(run.nb, 1) == "True\n"


# -- isolation and concurrency ---------------------------------------------------------------


def test_no_state_crosses_runs(
    sf_pool: KernelPool, sf_notebook: MakeNotebook, tmp_path: Path
) -> None:
    leave = sf_notebook(
        "import os, sys, types, numpy\n"
        "LEFT_BEHIND = 1\n"
        "numpy.sf_marker = 'run A'\n"
        "os.environ['SF_LEAK'] = 'run A'\n"
        "os.chdir('/')\n"
        "sys.modules['sf_fake_module'] = types.ModuleType('sf_fake_module')\n"
        "print(os.getpid())",
        name="leave.ipynb",
    )
    look = sf_notebook(
        "import json, os, sys, numpy\n"
        "print(json.dumps({'global': 'LEFT_BEHIND' in globals(),"
        " 'numpy': hasattr(numpy, 'sf_marker'), 'env': os.environ.get('SF_LEAK'),"
        " 'cwd': os.getcwd(), 'module': 'sf_fake_module' in sys.modules, 'pid': os.getpid()}))",
        name="look.ipynb",
    )
    first = _run(sf_pool, leave, tmp_path)
    second = _run(sf_pool, look, tmp_path)
    assert first.error_kind is None and second.error_kind is None, (first.error, second.error)
    seen = _json_output(second.nb, 1)
    assert seen.pop("pid") != int(_stdout(first.nb, 1))
    assert seen == {
        "global": False,
        "numpy": False,
        "env": None,
        "cwd": str(tmp_path),
        "module": False,
    }


def test_each_run_draws_its_own_random_state(
    sf_pool: KernelPool, sf_notebook: MakeNotebook, tmp_path: Path
) -> None:
    """Seeded at import in a new interpreter, so never copied from the fork server."""
    notebook = sf_notebook(
        "import multiprocessing, random, numpy\n"
        "print(numpy.random.randint(1 << 62), random.getrandbits(62),"
        " multiprocessing.current_process().authkey.hex())"
    )
    draws = [_stdout(_run(sf_pool, notebook, tmp_path).nb, 1).split() for _ in range(2)]
    assert all(len(draw) == 3 for draw in draws)
    assert all(a != b for a, b in zip(*draws, strict=True))


def test_two_threads_execute_at_the_same_time(
    sf_pool: KernelPool, sf_notebook: MakeNotebook, tmp_path: Path
) -> None:
    """Each run waits for the other to have started: serialized runs would time out."""
    notebook = sf_notebook(
        "import os, time\n"
        "open(mine, 'w').close()\n"
        "deadline = time.monotonic() + 30\n"
        "while not os.path.exists(theirs):\n"
        "    assert time.monotonic() < deadline, 'the other run never started'\n"
        "    time.sleep(0.01)\n"
        "print(me, os.getpid())",
        parameters="me = ''\nmine = ''\ntheirs = ''",
    )
    flags = {name: str(tmp_path / f"{name}.started") for name in ("a", "b")}
    results: dict[str, Execution] = {}

    def run(me: str, other: str) -> None:
        parameters = {"me": me, "mine": flags[me], "theirs": flags[other]}
        results[me] = _run(sf_pool, notebook, tmp_path, parameters=parameters)

    threads = [threading.Thread(target=run, args=pair) for pair in (("a", "b"), ("b", "a"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert set(results) == {"a", "b"}
    outputs = {me: _stdout(run.nb, 2).split() for me, run in results.items()}
    assert all(run.error_kind is None for run in results.values()), results
    assert outputs["a"][0] == "a" and outputs["b"][0] == "b"
    assert outputs["a"][1] != outputs["b"][1]


# -- failures ----------------------------------------------------------------------------------


def test_a_cell_that_raises_is_an_exception_with_papermills_error_cells(
    sf_pool: KernelPool, sf_notebook: MakeNotebook, tmp_path: Path
) -> None:
    notebook = sf_notebook("print('before')", "1 / 0", "print('never')")
    run = _run(sf_pool, notebook, tmp_path)
    assert run.error_kind == "exception"
    assert run.ename == "ZeroDivisionError" and "division by zero" in run.error
    assert run.cell_index is not None
    failed = run.nb.cells[run.cell_index]
    assert failed.source == "1 / 0"
    assert [o["ename"] for o in failed.outputs if o["output_type"] == "error"] == [
        "ZeroDivisionError"
    ]
    assert "papermill-error-cell-tag" in run.nb.cells[0].metadata["tags"]
    assert "before" in "".join(_stdout(run.nb, i) for i in range(len(run.nb.cells)))
    assert run.nb.cells[-1].execution_count is None


def test_a_kernel_that_dies_is_a_dead_kernel_and_keeps_earlier_outputs(
    sf_pool: KernelPool, sf_notebook: MakeNotebook, tmp_path: Path
) -> None:
    notebook = sf_notebook(
        "print('first cell ran')",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
        "print('never')",
    )
    run = _run(sf_pool, notebook, tmp_path)
    assert run.error_kind == "dead-kernel", run.error
    assert "SIGKILL" in run.error
    assert _stdout(run.nb, 1) == "first cell ran\n"
    assert run.cell_index == 2
    assert run.nb.cells[2].metadata["papermill"]["status"] == "failed"


def test_a_run_past_its_timeout_is_killed(
    sf_pool: KernelPool, sf_notebook: MakeNotebook, tmp_path: Path
) -> None:
    notebook = sf_notebook("import os\nprint(os.getpid())", "import time\ntime.sleep(600)")
    run = _run(sf_pool, notebook, tmp_path, timeout_s=3)
    assert run.error_kind == "timeout", run.error
    assert "3 s" in run.error and run.cell_index == 2
    pid = int(_stdout(run.nb, 1))
    assert not psutil.pid_exists(pid)


def test_no_kernel_of_that_name_is_a_start_error(
    sf_pool: KernelPool, sf_notebook: MakeNotebook, tmp_path: Path
) -> None:
    run = _run(sf_pool, sf_notebook("1"), tmp_path, kernel_name="no-such-kernel")
    assert run.error_kind == "start" and "no-such-kernel" in run.error
    assert run.nb.cells[1].source == "1"


def test_another_interpreter_kernelspec_gets_a_kernel_started_from_it(
    sf_pool: KernelPool, sf_notebook: MakeNotebook, tmp_path: Path
) -> None:
    """Its argv is not a plain ipykernel_launcher: started the usual way, with its env."""
    spec_dir = Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels" / "sf-other"
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, "-X", "utf8", "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "other", "language": "python", "env": {"SF_SPEC": "1"}}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    notebook = sf_notebook(
        "import json, os, sys\n"
        "print(json.dumps([os.environ.get('SF_SPEC'), 'xarray' in sys.modules, os.getcwd()]))"
    )
    run = _run(sf_pool, notebook, tmp_path, kernel_name="sf-other")
    assert run.error_kind is None, run.error
    assert _json_output(run.nb, 1) == ["1", False, str(tmp_path)]
    assert [c.execution_count for c in run.nb.cells] == [1, 2]


# -- lifetime ----------------------------------------------------------------------------------


def test_close_pool_stops_the_fork_server_and_every_kernel(
    sf_notebook: MakeNotebook, tmp_path: Path, sf_runtime_dir: Path
) -> None:
    close_pool()  # a pool of its own, with this test's runtime directory
    pool = open_pool(2)
    run = execute_notebook(sf_notebook("1"), {}, cwd=tmp_path, timeout_s=60)
    assert run.error_kind is None, run.error
    pool.wait_until_ready(timeout=60)
    pids = pool.process_ids()
    assert len(pids) == 3  # the fork server and two kernels ahead of need
    assert len(_connection_files(sf_runtime_dir)) == 2
    close_pool()
    assert not any(psutil.pid_exists(pid) for pid in pids)  # gone, zombies included
    assert _connection_files(sf_runtime_dir) == []
    assert pool.closed and pool.process_ids() == set()


_OWNER = """\
import json, sys
from smartfab.runs.kernels.pool import KernelPool
pool = KernelPool(size=2)
pool.start()
pool.wait_until_ready(timeout=60)
print(json.dumps(sorted(pool.process_ids())), flush=True)
sys.stdin.read()  # until killed
"""


def test_fork_server_and_kernels_die_with_a_killed_owner(
    sf_subreaper: None, sf_runtime_dir: Path
) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert owner.stdout is not None
        pids = set(json.loads(owner.stdout.readline()))
        assert len(pids) == 3 and all(psutil.pid_exists(pid) for pid in pids)
        assert len(_connection_files(sf_runtime_dir)) == 2
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=30)
        _wait_until(_gone(pids), 30, "the fork server and kernels to exit")
        assert _connection_files(sf_runtime_dir) == []
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()


# -- papermill -----------------------------------------------------------------------------------


def test_papermill_cli_with_the_smartfab_engine(sf_notebook: MakeNotebook, tmp_path: Path) -> None:
    notebook = sf_notebook("import os\nprint(x * 2, os.getcwd())")
    out = tmp_path / "out.ipynb"
    workdir = tmp_path / "work"
    workdir.mkdir()
    papermill_cli = Path(sys.executable).with_name("papermill")
    options = ["-p", "x", "21", "--engine", "smartfab", "--cwd", str(workdir)]
    done = subprocess.run(
        [str(papermill_cli), str(notebook), str(out), *options],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    nb = nbformat.read(out, as_version=4)
    assert _stdout(nb, 2) == f"42 {workdir}\n"
    assert [c.execution_count for c in nb.cells] == [1, 2, 3]
    assert nb.metadata["papermill"]["parameters"] == {"x": 21}


@pytest.mark.parametrize("first", ["smartfab.runs.engine", "papermill"])
def test_the_engine_is_registered_whichever_is_imported_first(first: str) -> None:
    """papermill imports the engine while it is imported itself: both orders must work."""
    code = (
        f"import {first}; import smartfab.runs.engine as ours; import papermill.engines as pe; "
        "assert pe.papermill_engines.get_engine('smartfab') is ours.SmartfabEngine"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_papermill_api_with_the_smartfab_engine_raises_for_a_cell_error(
    sf_notebook: MakeNotebook, tmp_path: Path
) -> None:
    notebook = sf_notebook("print('ok')", "raise ValueError('bad feed')")
    out = tmp_path / "out.ipynb"
    with pytest.raises(papermill.PapermillExecutionError, match="bad feed"):
        papermill.execute_notebook(
            str(notebook), str(out), engine_name="smartfab", progress_bar=False, cwd=str(tmp_path)
        )
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert [e["ename"] for e in errors] == ["ValueError"]
    assert shared_pool().process_ids()  # the process-wide pool served it


def test_papermill_execution_timeout_bounds_each_cell(
    sf_notebook: MakeNotebook, tmp_path: Path
) -> None:
    notebook = sf_notebook("import time\ntime.sleep(600)")
    with pytest.raises(TimeoutError):
        papermill.execute_notebook(
            str(notebook), None, engine_name="smartfab", progress_bar=False, execution_timeout=2
        )


# -- the rules deciding when a warm kernel can stand in ----------------------------------------


def test_preload_imports_nothing_that_reads_the_environment_at_import() -> None:
    """The stack (with dask) is preloaded; distributed, fsspec and the inline backend are left
    to each kernel."""
    code = (
        "import json, sys; from smartfab.runs.kernels.preload import preload; names = preload(); "
        "print(json.dumps([names, sorted({m.split('.')[0] for m in sys.modules})]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    shadowable, loaded = map(set, json.loads(done.stdout))
    assert {"ipykernel", "IPython", "numpy", "xarray", "pandas", "scipy", "matplotlib"} <= loaded
    assert "dask" in loaded
    assert not loaded & {"distributed", "fsspec", "matplotlib_inline"}
    # what only the stack imports (a local pandas.py would shadow it), not the kernel or stdlib
    assert {"numpy", "xarray", "pandas"} <= shadowable
    assert not shadowable & {"IPython", "ipykernel", "json", "os"}


def test_variables_read_at_start_are_recognised() -> None:
    assert all(
        is_import_time_variable(name)
        for name in (
            "OMP_NUM_THREADS",
            "MPLBACKEND",
            "PYTHONPATH",
            "HOME",
            "LC_ALL",
            "TZ",
            "DASK_CONFIG",
        )
    )
    assert not any(is_import_time_variable(name) for name in ("SMARTFAB_RUN", "FEED_RATE"))


def test_environment_changes_ignore_what_the_kernel_sets_itself() -> None:
    base = {"A": "1", "B": "2", "PAGER": "less", "TERM": "dumb"}
    target = {"A": "1", "B": "3", "C": "4", "PAGER": "more"}
    assert environment_changes(base, target) == ({"B": "3", "C": "4"}, [])
    assert environment_changes({**base, "D": "5"}, target)[1] == ["D"]


class _Spec:
    def __init__(self, argv: list[str], language: str = "python") -> None:
        self.argv, self.language = argv, language


@pytest.mark.parametrize(
    ("argv", "language", "expected"),
    [
        (["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"], "python", True),
        ([sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "python", True),
        ([sys.executable, "-m", "ipykernel", "-f", "{connection_file}"], "python", True),
        (
            ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "python",
            False,
        ),
        (
            [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}", "--x"],
            "python",
            False,
        ),
        (["R", "--slave", "-e", "IRkernel::main()", "--args", "{connection_file}"], "R", False),
    ],
    ids=["python", "this-interpreter", "ipykernel", "system-python", "extra-args", "r"],
)
def test_only_this_interpreters_plain_ipython_kernel_is_forked(
    argv: list[str], language: str, expected: bool
) -> None:
    assert forkable(_Spec(argv, language)) is expected


def test_a_pool_can_be_resized(sf_notebook: MakeNotebook, tmp_path: Path) -> None:
    with KernelPool(size=1) as pool:
        pool.wait_until_ready(timeout=60)
        assert len(pool.process_ids()) == 2
        pool.resize(3)
        pool.wait_until_ready(timeout=60)
        assert len(pool.process_ids()) == 4
        pool.resize(0)
        assert len(pool.process_ids()) == 1
        assert _run(pool, sf_notebook("print('still runs')"), tmp_path).error_kind is None


def test_pool_size_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTFAB_KERNEL_POOL", "5")
    assert default_pool_size() == 5
    monkeypatch.delenv("SMARTFAB_KERNEL_POOL")
    assert default_pool_size() == len(os.sched_getaffinity(0))
