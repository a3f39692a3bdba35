"""Program test runs end to end: real kernels, the real CLI, a real Dask scheduler and workers.

Every behaviour runs on both executors (``local`` and ``dask``), on a tiny program whose
parameters choose what it does: record metrics, raise, kill its own kernel, sleep past the
timeout, or fail on its first attempt only.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml

from tests.support.hubtools import SMARTFAB, free_ports

PROGRAM = """\
import os, time
from pathlib import Path
import smartfab
if mode == "raise":
    raise ValueError(f"bad input {x}")
if mode == "die":
    os.kill(os.getpid(), 9)
if mode == "flaky" and not Path(f"flaky-{x}").exists():
    Path(f"flaky-{x}").write_text("first attempt failed")
    raise RuntimeError("transient")
time.sleep(pause)
smartfab.record("score", x * 10)
smartfab.record("label", f"{mode}-{x}")
"""


def write_program(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A test program"),
        nbformat.v4.new_code_cell(
            'x: int = 1\nmode: str = "ok"\npause: float = 0.0', metadata={"tags": ["parameters"]}
        ),
        nbformat.v4.new_code_cell('print(f"started with x={x}")'),
        nbformat.v4.new_code_cell(PROGRAM),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = folder / "program.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def sf_program(tmp_path: Path) -> Callable[..., Path]:
    """Write the program and a spec with ``changes``; return the spec path."""
    folder = tmp_path / "program"
    folder.mkdir()
    write_program(folder)

    def spec(**changes: Any) -> Path:
        data: dict[str, Any] = {
            "name": "test-program",
            "program": "program.ipynb",
            "grid": {"x": [1, 2, 3, 4, 5, 6]},
            "metrics": ["score", "label"],
            "acceptance": {"score": "< 50"},
            "tolerance": {"score": 0.01},
            "timeout": 60,
            "retries": 0,
            "workers": 2,
        }
        data.update(changes)
        data = {key: value for key, value in data.items() if value is not None}  # None: omit
        path = folder / f"{data['name']}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return spec


@pytest.fixture(scope="module")
def sf_dask() -> Iterator[str]:
    """A real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1."""
    (port,) = free_ports(1)
    address = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).with_name("dask"))
    env = {**os.environ, "SMARTFAB_KERNEL_POOL": "1"}
    procs = [
        subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    for _ in range(2):
        procs.append(
            subprocess.Popen(
                [
                    dask,
                    "worker",
                    address,
                    "--nthreads",
                    "1",
                    "--host",
                    "127.0.0.1",
                    "--no-dashboard",
                    "--nworkers",
                    "1",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        from distributed import Client

        deadline = time.monotonic() + 60
        with Client(address, timeout="30s") as client:
            while len(client.scheduler_info()["workers"]) < 2:
                assert time.monotonic() < deadline, "dask workers did not register"
                time.sleep(0.2)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(params=["local", "dask"])
def sf_executor(request: pytest.FixtureRequest) -> list[str]:
    """Command-line options selecting the executor under test."""
    if request.param == "local":
        return ["--executor", "local"]
    address = request.getfixturevalue("sf_dask")
    return ["--executor", "dask", "--scheduler", address]


def smartfab(*args: str | Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [SMARTFAB, *map(str, args)], capture_output=True, text=True, timeout=600
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def start(spec: Path, store: Path, executor: list[str], *more: str) -> dict[str, Any]:
    result = smartfab("runs", "start", spec, "--store", store, "--json", *executor, *more)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    summary["exit"] = result.returncode
    return summary


def status(store: Path, batch: str) -> dict[str, Any]:
    result = smartfab("runs", "status", batch, "--store", store, "--json", check=True)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# -- the normal path ------------------------------------------------------------------------------


def test_batch_runs_the_grid_applies_rules_and_resumes(
    sf_program: Callable[..., Path], sf_executor: list[str], tmp_path: Path
) -> None:
    spec, store = sf_program(), tmp_path / "store"
    summary = start(spec, store, sf_executor)
    assert summary["runs"] == 6 and summary["executed"] == 6 and summary["reused"] == 0
    # score = 10 x: x = 5, 6 break "< 50"
    assert (summary["passed"], summary["failed"], summary["error"]) == (4, 2, 0)
    assert summary["exit"] == 1
    runs = status(store, summary["batch"])["runs"]
    assert [r["metrics"]["score"] for r in runs] == [10, 20, 30, 40, 50, 60]
    assert [r["metrics"]["label"] for r in runs] == [f"ok-{x}" for x in range(1, 7)]
    assert [r["status"] for r in runs] == ["passed"] * 4 + ["failed"] * 2
    again = start(spec, store, sf_executor)
    assert again["batch"] == summary["batch"]
    assert again["executed"] == 0 and again["reused"] == 6
    forced = start(spec, store, sf_executor, "--force")
    assert forced["executed"] == 6
    report = Path(summary["report"])
    html = report.read_text()
    assert "test-program" in html and "ok-6" in html


def test_provenance_and_output_notebooks(sf_program: Callable[..., Path], tmp_path: Path) -> None:
    spec, store = sf_program(grid={"x": [1, 2]}), tmp_path / "store"
    summary = start(spec, store, ["--executor", "local"])
    from smartfab.runs.store import RunStore

    run_store = RunStore.open(store, create=False)
    runs = run_store.runs(summary["batch"])
    assert len({r.run_id for r in runs}) == 2
    for run in runs:
        assert run.notebook_sha256 and run.environment.packages["smartfab"]
        assert run.ended >= run.started and run.duration_s >= 0 and run.host
        output = nbformat.read(store / run.output_notebook, as_version=4)
        injected = [c for c in output.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and f"x = {run.parameters['x']}" in injected[0].source


# -- faults ---------------------------------------------------------------------------------------


def test_errors_are_recorded_and_the_batch_goes_on(
    sf_program: Callable[..., Path], sf_executor: list[str], tmp_path: Path
) -> None:
    spec = sf_program(
        grid=None,
        zip={
            "x": [1, 2, 3, 4],
            "mode": ["ok", "raise", "die", "ok"],
            "pause": [0.0, 0.0, 0.0, 30.0],
        },
        timeout=8,
    )
    summary = start(spec, tmp_path / "store", sf_executor)
    assert (summary["passed"], summary["error"]) == (1, 3) and summary["exit"] == 1
    runs = {r["index"]: r for r in status(tmp_path / "store", summary["batch"])["runs"]}
    raised, died, slow = runs[1]["error"], runs[2]["error"], runs[3]["error"]
    assert raised["kind"] == "exception" and raised["ename"] == "ValueError"
    assert "bad input 2" in raised["evalue"]
    assert died["kind"] == "dead-kernel"
    assert slow["kind"] == "timeout"
    from smartfab.runs.store import RunStore

    run_store = RunStore.open(tmp_path / "store", create=False)
    failed = next(r for r in run_store.runs(summary["batch"]) if r.index == 1)
    output = nbformat.read(tmp_path / "store" / failed.output_notebook, as_version=4)
    cell = output.cells[raised["cell_index"]]  # the index is the output notebook's
    assert cell.cell_type == "code" and 'raise ValueError(f"bad input {x}")' in cell.source
    dead = next(r for r in run_store.runs(summary["batch"]) if r.index == 2)
    partial = nbformat.read(tmp_path / "store" / dead.output_notebook, as_version=4)
    printed = [o.get("text", "") for c in partial.cells if c.cell_type == "code" for o in c.outputs]
    assert any("started with x=3" in text for text in printed)  # the partial output is kept


def test_retries_execute_errored_runs_again(
    sf_program: Callable[..., Path], sf_executor: list[str], tmp_path: Path
) -> None:
    flaky = {"grid": {"x": [1, 2]}, "parameters": {"mode": "flaky"}}
    summary = start(sf_program(name="flaky-no-retry", **flaky), tmp_path / "store", sf_executor)
    assert summary["error"] == 2
    for marker in (tmp_path / "program").glob("flaky-*"):
        marker.unlink()
    summary = start(
        sf_program(name="flaky-retry", retries=1, **flaky), tmp_path / "store", sf_executor
    )
    assert summary["passed"] == 2 and summary["error"] == 0
    attempts = [r["index"] for r in status(tmp_path / "store", summary["batch"])["runs"]]
    assert attempts == [0, 1]
    from smartfab.runs.store import RunStore

    runs = RunStore.open(tmp_path / "store", create=False).runs(summary["batch"])
    assert [r.attempts for r in runs] == [2, 2]


def test_runner_killed_mid_batch_resumes_only_what_is_missing(
    sf_program: Callable[..., Path], sf_executor: list[str], tmp_path: Path
) -> None:
    spec = sf_program(grid={"x": list(range(1, 9))}, parameters={"pause": 0.7})
    store = tmp_path / "store"
    proc = subprocess.Popen(
        [SMARTFAB, "runs", "start", str(spec), "--store", str(store), "--json", *sf_executor],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while _stored_runs(store) < 2:
            assert proc.poll() is None, "the batch ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done_before = _stored_runs(store)
    assert 2 <= done_before < 8
    summary = start(spec, store, sf_executor)
    assert summary["reused"] == done_before and summary["executed"] == 8 - done_before
    runs = status(store, summary["batch"])["runs"]
    assert [r["index"] for r in runs] == list(range(8))
    assert len(list((store / "runs").iterdir())) == 8


def _stored_runs(store: Path) -> int:
    index = store / "index.sqlite"
    if not index.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{index}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("select count(*) from runs").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_unwritable_store_is_refused_before_any_run(
    sf_program: Callable[..., Path], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = smartfab("runs", "start", sf_program(), "--store", blocker / "store")
    assert result.returncode == 7
    assert str(blocker / "store") in result.stderr
    assert not list((tmp_path / "program").glob("flaky-*"))


def test_corrupted_index_is_a_clear_error_and_nothing_is_removed(
    sf_program: Callable[..., Path], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    start(sf_program(grid={"x": [1, 2]}), store, ["--executor", "local"])
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file() and p.suffix != ".sqlite"}
    index = store / "index.sqlite"
    index.write_bytes(b"this is not a database" * 100)
    result = smartfab("runs", "status", "--store", store)
    assert result.returncode == 7 and str(index) in result.stderr
    result = smartfab("runs", "start", sf_program(grid={"x": [1, 2]}), "--store", store)
    assert result.returncode == 7
    after = {p: p.read_bytes() for p in store.rglob("*") if p.is_file() and p.suffix != ".sqlite"}
    assert after == before


# -- compare and verify ---------------------------------------------------------------------------


def test_compare_program_versions_and_verify(
    sf_program: Callable[..., Path], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    spec = sf_program(grid={"x": [1, 2, 3]})
    v1 = start(spec, store, ["--executor", "local"])["batch"]
    program = tmp_path / "program" / "program.ipynb"
    nb = nbformat.read(program, as_version=4)
    nb.cells[3].source = nb.cells[3].source.replace(
        'smartfab.record("score", x * 10)', 'smartfab.record("score", x * 10 if x < 3 else 31)'
    )
    nbformat.write(nb, program)
    v2 = start(spec, store, ["--executor", "local"])["batch"]
    assert v2 != v1
    result = smartfab("runs", "compare", v1, v2, "--store", store, "--json")
    assert result.returncode == 1, result.stderr
    changed = json.loads(result.stdout)["changed"]
    assert [c["parameters"] for c in changed] == [{"x": 3}]
    same = smartfab("runs", "compare", v2, v2, "--store", store)
    assert same.returncode == 0, same.stdout + same.stderr
    verified = smartfab("runs", "verify", v2, "--store", store, "--sample", "3", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert all(r["reproduced"] for r in json.loads(verified.stdout))
    stale = smartfab("runs", "verify", v1, "--store", store, "--json")  # program changed since
    assert stale.returncode == 1
    assert "changed since this run" in stale.stdout


def test_report_command_writes_html_csv_json(
    sf_program: Callable[..., Path], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    batch = start(sf_program(grid={"x": [1, 6]}), store, ["--executor", "local"])["batch"]
    result = smartfab("runs", "report", "test-program", "--store", store, "--out", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    files = [Path(line) for line in result.stdout.split()]
    assert [f.name for f in files] == ["report.html", "runs.csv", "runs.json"]
    data = json.loads(files[2].read_text())
    assert len(data["runs"]) == 2 and batch in files[0].read_text()


def test_bad_specs_exit_2_naming_file_field_and_value(
    sf_program: Callable[..., Path], tmp_path: Path
) -> None:
    spec = sf_program(grid={"x": [1, "two"], "sead": [1]})
    result = smartfab("runs", "start", spec, "--store", tmp_path / "store")
    assert result.returncode == 2
    assert "grid.sead" in result.stderr and "'two'" in result.stderr
    assert str(spec) in result.stderr
    assert not (tmp_path / "store").exists()
