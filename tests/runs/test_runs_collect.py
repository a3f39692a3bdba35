"""Collecting records, dataset uses and errors from notebooks executed by a real kernel; the
provenance hashes."""

from __future__ import annotations

import base64
import hashlib
import importlib
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pydantic
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

import smartfab
from smartfab.canonicaljson import canonical_json
from smartfab.datasets.catalog import Catalog
from smartfab.record import DATASET_MIMETYPE, RECORD_MIMETYPE, encode, note_dataset_use
from smartfab.runs.collect import collect, strip_ansi
from smartfab.runs.models import DatasetUse, RunError
from smartfab.runs.provenance import environment, host, input_key, run_id, sha256_file

BEARING = "bearing-run-to-failure"


def make_notebook(*cells: str) -> Any:
    """A notebook of code cells; a source starting with '# ' makes a markdown cell."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(src[2:])
        if src.startswith("# ")
        else nbformat.v4.new_code_cell(src)
        for src in cells
    ]
    return nb


def execute(nb: Any, allow_errors: bool = False) -> Any:
    """Execute ``nb`` in a real python3 kernel; return it executed (as far as it got)."""
    client = NotebookClient(nb, kernel_name="python3", timeout=120, allow_errors=allow_errors)
    client.execute()
    return nb


@pytest.fixture(scope="module")
def sf_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data directory for the module's kernels: the bearing dataset is built once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def sf_run_env(sf_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Kernels started now see a program test run and the module's data directory."""
    monkeypatch.setenv("SMARTFAB_RUN", "1")
    monkeypatch.setenv("SMARTFAB_DATA_DIR", str(sf_data_dir))
    monkeypatch.delenv("SMARTFAB_SHARED_DATA", raising=False)
    yield sf_data_dir


PROGRAM = (
    "# A tiny program",
    "import numpy as np\nimport smartfab\nimport smartfab.datasets as sd\n"
    "from matplotlib.figure import Figure",
    "smartfab.record('rmse_um', 1.5)\nsmartfab.record('label', 'ok-1')\n"
    "smartfab.record('curve', np.arange(6.0).reshape(2, 3))\n"
    "smartfab.record('rmse_um', np.float64(0.25))  # the later record wins",
    "fig = Figure(figsize=(2, 2))\nfig.add_subplot().plot([0, 1], [1, 0])\n"
    "smartfab.record('residuals', fig)",
    f"ds = sd.open({BEARING!r})\nagain = sd.open({BEARING!r})\n"
    f"small = sd.open({BEARING!r}, n_snapshots=4)\nds.sizes",
    "# the failing step",
    "raise ValueError('bad input 2')",
    "smartfab.record('never', 1)",
)


def test_collect_from_a_notebook_executed_in_a_run(sf_run_env: Path) -> None:
    nb = make_notebook(*PROGRAM)
    with pytest.raises(CellExecutionError):
        execute(nb)
    collected = collect(nb)

    metrics = collected.metrics
    assert set(metrics) == {"rmse_um", "label", "curve", "residuals"}
    assert metrics["rmse_um"] == 0.25 and metrics["label"] == "ok-1"
    assert metrics["curve"] == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    plot = metrics["residuals"]
    assert plot["kind"] == "image" and plot["mimetype"] == "image/png"
    assert base64.b64decode(plot["data"]).startswith(b"\x89PNG\r\n\x1a\n")

    catalog = Catalog(data_dir=sf_run_env)
    with catalog.open(BEARING) as default:
        pinned = default.attrs["smartfab_sha256"], default.attrs["smartfab_fingerprint"]
    assert pinned[1] == catalog.info(BEARING).fingerprint.digest()  # type: ignore[union-attr]
    with catalog.open(BEARING, n_snapshots=4) as small:
        variant = small.attrs["smartfab_sha256"], small.attrs["smartfab_fingerprint"]
    assert variant[0] != pinned[0] and variant[1] != pinned[1]
    assert collected.datasets == [  # opened twice, listed once
        DatasetUse(id=BEARING, parameters={}, sha256=pinned[0], fingerprint=pinned[1]),
        DatasetUse(
            id=BEARING, parameters={"n_snapshots": 4}, sha256=variant[0], fingerprint=variant[1]
        ),
    ]
    dataset_outputs = [o for o in nb.cells[4].outputs if DATASET_MIMETYPE in o.get("data", {})]
    assert len(dataset_outputs) == 3 and all(
        set(o.data) == {DATASET_MIMETYPE} for o in dataset_outputs
    )

    error = collected.error
    assert error is not None
    assert (error.kind, error.cell_index, error.ename) == ("exception", 6, "ValueError")
    assert error.evalue == "bad input 2"
    raw = nb.cells[6].outputs[0].traceback
    assert any("\x1b[" in line for line in raw)  # the kernel colours its tracebacks
    assert error.traceback == [strip_ansi(line) for line in raw]
    assert not any("\x1b" in line for line in error.traceback)
    assert any("bad input 2" in line for line in error.traceback)

    # the output notebook as stored: written and read back, it tells the same
    again = collect(nbformat.reads(nbformat.writes(nb), as_version=4))
    assert again == collected


def test_outside_a_run_nothing_is_noted_and_the_first_error_counts(
    sf_run_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMARTFAB_RUN")
    nb = make_notebook(
        "import smartfab, smartfab.datasets as sd",
        f"ds = sd.open({BEARING!r})",
        "smartfab.record('before', 1)",
        "1 / 0",
        "smartfab.record('after', [1, 2])\nsmartfab.record('before', 2)",
        "raise KeyError('second')",
    )
    execute(nb, allow_errors=True)
    collected = collect(nb)
    assert collected.datasets == []
    assert not [o for c in nb.cells for o in c.outputs if DATASET_MIMETYPE in o.get("data", {})]
    assert collected.metrics == {"before": 2, "after": [1, 2]}
    assert collected.error is not None
    assert (collected.error.cell_index, collected.error.ename) == (3, "ZeroDivisionError")


def output(data: dict[str, Any], kind: str = "display_data") -> Any:
    extra = {"execution_count": 1} if kind == "execute_result" else {}
    return nbformat.v4.new_output(kind, data=data, **extra)


def test_collect_skips_malformed_outputs_and_reads_json_strings() -> None:
    nb = make_notebook("a", "b", "c")
    use = {"id": "d", "parameters": {"n": 2}, "sha256": "a" * 64}
    nb.cells[0].outputs = [
        output({RECORD_MIMETYPE: {"name": "x", "value": encode("x", 3)}}, "execute_result"),
        output({RECORD_MIMETYPE: {"value": encode("y", 1)}}),  # no name
        output({RECORD_MIMETYPE: "not json"}),
        output({RECORD_MIMETYPE: {"name": "z", "value": {"kind": "array", "data": [1]}}}),
        output({DATASET_MIMETYPE: {"id": "d"}}),  # no sha256
        output({"text/plain": "x = 3"}),
    ]
    nb.cells[1].outputs = [
        output({DATASET_MIMETYPE: canonical_json(use)}),  # as a string, from older writers
        output({DATASET_MIMETYPE: dict(use)}),
        nbformat.v4.new_output(
            "error",
            ename="\x1b[31mOSError\x1b[0m",
            evalue="disk",
            traceback=["\x1b[0;31mline\x1b[0m"],
        ),
    ]
    nb.cells[2].outputs = [nbformat.v4.new_output("error", ename="Later", evalue="", traceback=[])]
    collected = collect(nb)
    assert collected.metrics == {"x": 3}
    assert collected.datasets == [DatasetUse(id="d", parameters={"n": 2}, sha256="a" * 64)]
    assert collected.error == RunError(
        kind="exception", cell_index=1, ename="OSError", evalue="disk", traceback=["line"]
    )
    assert collect(make_notebook("# only text")).error is None


def test_strip_ansi_removes_colours_and_hyperlinks() -> None:
    linked = "\x1b]8;;file:///x.py\x1b\\x.py\x1b]8;;\x1b\\:3 in \x1b[1;32m<module>\x1b[0m"
    assert strip_ansi(linked) == "x.py:3 in <module>"


def test_dataset_use_is_silent_outside_a_kernel(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMARTFAB_RUN", "1")
    note_dataset_use("d", {"n": np.int64(2)}, "a" * 64, "c" * 64)  # no IPython shell: silent
    monkeypatch.delenv("SMARTFAB_RUN")
    note_dataset_use("d", {}, "a" * 64, "c" * 64)
    assert capsys.readouterr() == ("", "")


def test_smartfab_record_stays_the_function_beside_its_module() -> None:
    """``smartfab.record`` is the function, bound over the submodule of the same name, however
    often that module is imported again."""
    module = importlib.import_module("smartfab.record")
    importlib.import_module("smartfab")
    assert smartfab.record is module.record and module.RECORD_MIMETYPE == RECORD_MIMETYPE
    code = "import smartfab.record, smartfab; print(callable(smartfab.record))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "True", done.stderr


# -- provenance ------------------------------------------------------------------------------------


def test_canonical_json_sorts_keys_and_converts_numpy() -> None:
    value = {"b": np.float64(0.5), "a": [np.int64(3), np.bool_(True)], "c": np.arange(2)}
    assert canonical_json(value) == '{"a":[3,true],"b":0.5,"c":[0,1]}'
    assert canonical_json({"x": np.float32(0.5), "t": (1, 2)}) == '{"t":[1,2],"x":0.5}'
    with pytest.raises(TypeError, match="object"):
        canonical_json({"x": object()})


def test_input_key_depends_on_every_input_and_not_on_order() -> None:
    base = ("a" * 64, {"x": 1, "y": "fast"}, "python3", "e" * 64)
    key = input_key(*base)
    assert len(key) == 64 and int(key, 16) >= 0
    assert input_key("a" * 64, {"y": "fast", "x": np.int64(1)}, "python3", "e" * 64) == key
    changed = [
        ("b" * 64, base[1], base[2], base[3]),
        (base[0], {"x": 2, "y": "fast"}, base[2], base[3]),
        (base[0], {"x": 1.0, "y": "fast"}, base[2], base[3]),  # papermill injects 1.0, not 1
        (base[0], base[1], "ir", base[3]),
        (base[0], base[1], base[2], "f" * 64),
    ]
    assert len({key, *(input_key(*args) for args in changed)}) == 1 + len(changed)


def test_run_id_adds_the_datasets_in_any_order() -> None:
    key = "k" * 64
    first = DatasetUse(id="a", parameters={"n": 4}, sha256="1" * 64)
    second = DatasetUse(id="b", sha256="2" * 64)
    rid = run_id(key, [first, second])
    assert rid == run_id(key, [second, first, second])
    assert rid != run_id(key, [first]) != run_id(key, [])
    assert rid != run_id(key, [first.model_copy(update={"sha256": "3" * 64}), second])
    assert rid != run_id(key, [first.model_copy(update={"parameters": {"n": 5}}), second])
    assert rid != run_id("j" * 64, [first, second])


def test_run_id_names_datasets_by_content_not_by_bytes() -> None:
    """The same data in a file written elsewhere (other bytes, same content fingerprint) gives
    the same run id; other content gives another."""
    key = "k" * 64
    here = DatasetUse(id="a", sha256="1" * 64, fingerprint="c" * 64)
    elsewhere = here.model_copy(update={"sha256": "2" * 64})
    other_content = here.model_copy(update={"fingerprint": "d" * 64})
    assert run_id(key, [here]) == run_id(key, [elsewhere])
    assert run_id(key, [here]) != run_id(key, [other_content])
    # records made before content fingerprints are named by their bytes
    assert here.model_copy(update={"fingerprint": ""}).identity == "1" * 64


def test_environment_is_computed_once_with_every_distribution() -> None:
    env = environment()
    assert environment() is env
    assert env.python == platform.python_version() and env.platform
    assert env.packages["smartfab"] == smartfab.__version__
    assert env.packages["pydantic"] == pydantic.VERSION
    assert env.packages["jupyter-client"]  # names as pip compares them
    assert env.key() == environment().key()


def test_sha256_file_and_host(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    data = np.random.default_rng(1).bytes(3 * 2**20 + 17)  # several read blocks
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest() == sha256_file(str(path))
    assert host() and isinstance(host(), str)
