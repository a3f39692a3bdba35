"""Batch specs: the parameters cell of a program, acceptance rules, and specs checked against
their notebook (every malformed case names the file, the line, the field path and the value)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import numpy
import pytest

from smartfab.errors import RunSpecError
from smartfab.runs.notebook_params import (
    NotebookParameter,
    accepts,
    parse_parameters_cell,
    read_parameters,
)
from smartfab.runs.rules import Rule, parse_rule
from smartfab.runs.spec import DEFAULT_TOLERANCE, LoadedSpec, load_spec

#: the line a malformed case expects in the error carries this comment
MARK = "# <-"

#: the parameters cell of the program most specs here run
PARAMETERS_CELL = """\
dataset = "milling-tool-wear"
model = "linear"
seed = 1
train_fraction: float = 0.5
min_samples = 10  # per class
threshold = None
options = {"depth": 2}
transform = str.lower
"""

HEAD = """\
name: tool-wear
program: prog.ipynb
metrics: [rmse_um, r2]
"""

EXAMPLE = """\
name: tool-wear-regression          # a comment
program: prog.ipynb
kernel: python3
parameters:
  dataset: milling-tool-wear
grid:
  model: [linear, quadratic]
  seed: [1, 2, 3]
zip:
  train_fraction: [0.5, 0.7]
  min_samples: [10, 20]
metrics: [rmse_um, r2]
acceptance:
  rmse_um: "<80"
  r2: ">= 0.8"
tolerance:
  rmse_um: 0.01
timeout: 120
retries: 1
executor: local
workers: 2
"""


def write_notebook(path: Path, *cells: Any) -> Path:
    """Write a notebook holding ``cells`` (nbformat cell nodes) to ``path``."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells.extend(cells)
    nbformat.write(notebook, path)
    return path


def parameters_cell(source: str) -> Any:
    """A code cell tagged ``parameters``."""
    return nbformat.v4.new_code_cell(source, metadata={"tags": ["parameters"]})


def _marked_line(text: str) -> int:
    """1-based number of the only line carrying MARK."""
    hits = [n for n, line in enumerate(text.splitlines(), 1) if MARK in line]
    assert len(hits) == 1, "a case must mark exactly one line"
    return hits[0]


@pytest.fixture
def sf_program(tmp_path: Path) -> Path:
    """The standard program: a title cell, the parameters cell, and a cell using them."""
    return write_notebook(
        tmp_path / "prog.ipynb",
        nbformat.v4.new_markdown_cell("# Tool wear regression"),
        parameters_cell(PARAMETERS_CELL),
        nbformat.v4.new_code_cell("print(dataset, model, seed)"),
    )


@pytest.fixture
def sf_write(tmp_path: Path, sf_program: Path) -> Callable[[str], Path]:
    """Write YAML text (dedented) to spec.yaml next to the standard program."""

    def write(text: str) -> Path:
        path = tmp_path / "spec.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


def _error(path: Path) -> str:
    with pytest.raises(RunSpecError) as info:
        load_spec(path)
    assert info.value.source == str(path)
    assert info.value.exit_code == 2
    return str(info.value)


def _problem_line(message: str, prefix: str) -> str:
    """The one rendered problem of ``message`` that starts with ``prefix``."""
    hits = [line.strip() for line in message.splitlines() if line.strip().startswith(prefix)]
    assert len(hits) == 1, f"expected one problem starting with {prefix!r} in:\n{message}"
    return hits[0]


# ------------------------------------------------------------------------ the parameters cell

#: cell source -> (name, type_name, default, annotation, line)
CELL_CASES: dict[str, tuple[str, tuple[str, str, Any, str | None, int]]] = {
    "int": ("x = 1", ("x", "int", 1, None, 1)),
    "annotation-wins": ("x: float = 1", ("x", "float", 1, "float", 1)),
    "str-with-comment": ('x: str = "a"  # comment', ("x", "str", "a", "str", 1)),
    "tuple": ("x = (1, 2)", ("x", "list", (1, 2), None, 1)),
    "list": ('x = [1, "a"]', ("x", "list", [1, "a"], None, 1)),
    "dict": ('x = {"a": 1}', ("x", "dict", {"a": 1}, None, 1)),
    "none": ("x = None", ("x", "NoneType", None, None, 1)),
    "bool": ("x = True", ("x", "bool", True, None, 1)),
    "negative-float": ("x = -2.5e-3", ("x", "float", -2.5e-3, None, 1)),
    "non-literal": ("x = len", ("x", "any", None, None, 1)),
    "non-literal-annotated": ("x: int = compute()", ("x", "int", None, "int", 1)),
    "optional": ("x: Optional[float] = None", ("x", "any", None, "Optional[float]", 1)),
    "union": ("x: float | None = 0.5", ("x", "any", 0.5, "float | None", 1)),
    "generic-list": ("x: list[int] = [1]", ("x", "list", [1], "list[int]", 1)),
    "typing-dict": ("x: typing.Dict[str, int] = {}", ("x", "dict", {}, "typing.Dict[str, int]", 1)),
    "string-annotation": ('x: "float" = 1', ("x", "float", 1, "'float'", 1)),
    "unknown-annotation": ('x: Path = "a"', ("x", "any", "a", "Path", 1)),
    "bare-annotation": ("x: int", ("x", "int", None, "int", 1)),
    "later-line": ("# defaults\n\ny = 2\nx = 'b'\n", ("x", "str", "b", None, 4)),
    "magic-kept-lines": ("%matplotlib inline\n!ls\nx = 3.0", ("x", "float", 3.0, None, 3)),
    "reassigned": ("x = 1\nx = 'b'", ("x", "str", "b", None, 2)),
    "tuple-unpacking": ("a, x = 1, 'b'", ("x", "str", "b", None, 1)),
    "chained": ("x = y = 2", ("x", "int", 2, None, 1)),
    "multi-line-dict": ('x = {\n  "a": [1, 2],\n}', ("x", "dict", {"a": [1, 2]}, None, 1)),
}


@pytest.mark.parametrize("case", sorted(CELL_CASES))
def test_parameters_cell(case: str) -> None:
    """Each assignment gives a name, a type (annotation first), a literal default and a line."""
    source, (name, type_name, default, annotation, line) = CELL_CASES[case]
    found = parse_parameters_cell(source)
    assert found[name] == NotebookParameter(name, type_name, default, annotation, line)


def test_parameters_cell_ignores_other_statements() -> None:
    """Imports, calls and indented assignments are not parameters; order is kept."""
    source = "import math\nb = 2\nprint(b)\nif b:\n    hidden = 1\na = 1\nb += 1\n"
    assert list(parse_parameters_cell(source)) == ["b", "a"]


def test_read_parameters_uses_first_tagged_code_cell(tmp_path: Path) -> None:
    """A tagged markdown cell and a second tagged code cell are not the parameters cell."""
    path = write_notebook(
        tmp_path / "nb.ipynb",
        nbformat.v4.new_markdown_cell("x = 'markdown'", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("untagged = 1"),
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["setup", "parameters"]}),
        parameters_cell("second = 2"),
    )
    assert read_parameters(path) == {"x": NotebookParameter("x", "int", 1, None, 1)}


def _no_file(path: Path) -> None:
    """Leave ``path`` absent."""


def _script(path: Path) -> None:
    path.write_text("print('a script')\n")


def _json_not_notebook(path: Path) -> None:
    path.write_text('{"cells": []}')


def _schema_invalid(path: Path) -> None:
    path.write_text(
        '{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": 3}]}'
    )


def _untagged(path: Path) -> None:
    write_notebook(path, nbformat.v4.new_code_cell("x = 1"))


def _syntax_error(path: Path) -> None:
    write_notebook(path, nbformat.v4.new_markdown_cell("hi"), parameters_cell("x = 1\ny = = 2\n"))


NOTEBOOK_ERRORS: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    "missing": (_no_file, ["notebook not found"]),
    "not-json": (_script, ["not a valid notebook", "not JSON"]),
    "json-not-notebook": (_json_not_notebook, ["not a valid notebook", "'nbformat'"]),
    "schema-invalid": (_schema_invalid, ["not a valid notebook"]),
    "no-parameters-cell": (_untagged, ["no code cell is tagged 'parameters'"]),
    "syntax-error": (
        _syntax_error,
        ["cells[1]", "line 2 of the parameters cell", "'y = = 2'"],
    ),
}


@pytest.mark.parametrize("case", sorted(NOTEBOOK_ERRORS))
def test_read_parameters_errors(case: str, tmp_path: Path) -> None:
    """A notebook that cannot give parameters is a RunSpecError naming the notebook."""
    make, fragments = NOTEBOOK_ERRORS[case]
    path = tmp_path / "nb.ipynb"
    make(path)
    with pytest.raises(RunSpecError) as info:
        read_parameters(path)
    message = str(info.value)
    assert info.value.source == str(path)
    assert f"\n  {path}: " in message, message
    for fragment in fragments:
        assert fragment in message, message


ACCEPTS_CASES: list[tuple[str, Any, bool]] = [
    ("int", 3, True),
    ("int", True, False),
    ("int", 3.0, False),
    ("int", None, False),
    ("float", 3, True),
    ("float", 2.5, True),
    ("float", False, False),
    ("float", "1e-3", False),
    ("str", "a", True),
    ("str", 1, False),
    ("bool", True, True),
    ("bool", 1, False),
    ("list", [1], True),
    ("list", "ab", False),
    ("dict", {"a": 1}, True),
    ("dict", [], False),
    ("any", None, True),
    ("any", object(), True),
    ("NoneType", None, True),
    ("NoneType", 5, True),
]


@pytest.mark.parametrize(("type_name", "value", "expected"), ACCEPTS_CASES)
def test_accepts(type_name: str, value: Any, expected: bool) -> None:
    """An int suits a float, a bool suits no number, None suits only any and NoneType."""
    parameter = NotebookParameter("p", type_name, None, None, 1)
    assert accepts(parameter, value) is expected


# --------------------------------------------------------------------------------------- rules

#: text -> (op, operands, normalized text)
RULE_CASES: list[tuple[str, str, tuple[Any, ...], str]] = [
    ("< 80", "<", (80,), "< 80"),
    ("<80", "<", (80,), "< 80"),
    ("<= 0.5", "<=", (0.5,), "<= 0.5"),
    ("> 3", ">", (3,), "> 3"),
    (">= 0.9", ">=", (0.9,), ">= 0.9"),
    (">= -1e-3", ">=", (-1e-3,), ">= -0.001"),
    ("== 'ok'", "==", ("ok",), "== 'ok'"),
    ('== "ok"', "==", ("ok",), "== 'ok'"),
    ("== ok", "==", ("ok",), "== 'ok'"),
    ("== true", "==", (True,), "== true"),
    ("== 'true'", "==", ("true",), "== 'true'"),
    ("!= 0", "!=", (0,), "!= 0"),
    ("  between 1 and 2 ", "between", (1, 2), "between 1 and 2"),
    ("Between 0.5 AND 2", "between", (0.5, 2), "between 0.5 and 2"),
    ("in [a, b, 3]", "in", ("a", "b", 3), "in ['a', 'b', 3]"),
    ("in ['x, y', \"it's\"]", "in", ("x, y", "it's"), "in ['x, y', 'it\\'s']"),
    ("in[1]", "in", (1,), "in [1]"),
]


@pytest.mark.parametrize(("text", "op", "operands", "normalized"), RULE_CASES)
def test_parse_rule(text: str, op: str, operands: tuple[Any, ...], normalized: str) -> None:
    """Every accepted form parses to its operator and operands, and prints normalized."""
    rule = parse_rule(text)
    assert rule == Rule(op, operands)
    assert [type(value) for value in rule.operands] == [type(value) for value in operands]
    assert str(rule) == normalized
    assert parse_rule(str(rule)) == rule


#: rule, value, whether the value satisfies the rule
CHECK_CASES: list[tuple[str, Any, bool]] = [
    ("< 80", 79.9, True),
    ("< 80", 80, False),
    ("< 80", None, False),
    ("< 80", "12", False),
    ("< 80", True, False),
    ("< 80", float("nan"), False),
    ("<= 0.5", 0.5, True),
    ("<= 0.5", 0.51, False),
    ("> 3", 4, True),
    ("> 3", 3, False),
    (">= 0.9", 0.9, True),
    (">= 0.9", 0.89, False),
    ("== 'ok'", "ok", True),
    ("== ok", "OK", False),
    ("== ok", None, False),
    ("== 1", 1.0, True),
    ("== 1", True, False),
    ("== 1", "1", False),
    ("== true", True, True),
    ("== true", 1, False),
    ("!= 0", 0, False),
    ("!= 0", 0.0, False),
    ("!= 0", 2, True),
    ("!= 0", "0", True),
    ("!= 0", None, False),
    ("between 1 and 2", 1, True),
    ("between 1 and 2", 2, True),
    ("between 1 and 2", 1.5, True),
    ("between 1 and 2", 2.01, False),
    ("between 1 and 2", 0.99, False),
    ("between 1 and 2", "1.5", False),
    ("between 1 and 2", None, False),
    ("in [a, b, 3]", "a", True),
    ("in [a, b, 3]", 3, True),
    ("in [a, b, 3]", 3.0, True),
    ("in [a, b, 3]", "3", False),
    ("in [a, b, 3]", "c", False),
    ("in [a, b, 3]", None, False),
]


@pytest.mark.parametrize(("text", "value", "expected"), CHECK_CASES)
def test_rule_check(text: str, value: Any, expected: bool) -> None:
    """Rules hold or not; a missing value or a non-number for an ordering rule never holds."""
    assert parse_rule(text).check(value) is expected


def test_rule_check_accepts_numpy_scalars() -> None:
    """Metrics may be numpy scalars."""
    assert parse_rule("< 80").check(numpy.float64(12.5)) is True
    assert parse_rule("between 1 and 2").check(numpy.int64(3)) is False


#: invalid rule -> what the message says is wrong
INVALID_RULES: list[tuple[str, str]] = [
    ("", "the rule is empty"),
    ("80", "unknown comparison"),
    ("= 3", "unknown comparison '='"),
    (">> 3", "unknown comparison '>>'"),
    ("< ", "a value is missing"),
    ("< ok", "compares with a number"),
    ("<= true", "compares with a number"),
    ("== two words", "quote strings that hold spaces"),
    ("between 1 and x", "'between' takes two numbers"),
    ("between 2 and 1", "the lower bound 2 is above 1"),
    ("between 1", "incomplete rule"),
    ("in []", "the list is empty"),
    ("in [a, , b]", "a value is missing"),
    ("in [a, b,]", "missing after the last comma"),
    ("in ['a' 'b']", "expected a comma"),
    ("in a, b", "incomplete rule"),
    ("< 1e999", "too large"),
]


@pytest.mark.parametrize(("text", "reason"), INVALID_RULES)
def test_invalid_rule(text: str, reason: str) -> None:
    """An invalid rule is a ValueError saying what is wrong and listing the accepted forms."""
    with pytest.raises(ValueError) as info:
        parse_rule(text)
    message = str(info.value)
    assert f"invalid rule {text!r}" in message
    assert reason in message
    assert "accepted forms: '< 80'" in message and "'between 1 and 2' (inclusive)" in message


# -------------------------------------------------------------------------- loading a spec


def test_example_spec(sf_write: Callable[[str], Path], sf_program: Path) -> None:
    """The documented example loads with its values, the notebook and its parameters."""
    loaded = load_spec(sf_write(EXAMPLE))
    spec = loaded.spec
    assert spec.name == "tool-wear-regression"
    assert spec.grid == {"model": ["linear", "quadratic"], "seed": [1, 2, 3]}
    assert spec.paired == {"train_fraction": [0.5, 0.7], "min_samples": [10, 20]}
    assert spec.acceptance == {"rmse_um": "< 80", "r2": ">= 0.8"}
    assert spec.rules()["r2"] == Rule(">=", (0.8,))
    assert (spec.timeout, spec.retries, spec.workers, spec.executor) == (120, 1, 2, "local")
    assert spec.tolerance_for("rmse_um") == 0.01
    assert spec.tolerance_for("r2") == DEFAULT_TOLERANCE
    assert spec.content()["zip"] == {"train_fraction": [0.5, 0.7], "min_samples": [10, 20]}
    assert loaded.notebook == sf_program.resolve()
    assert loaded.notebook.is_absolute()
    assert loaded.notebook_sha256 == hashlib.sha256(sf_program.read_bytes()).hexdigest()
    assert list(loaded.notebook_parameters)[:3] == ["dataset", "model", "seed"]
    assert loaded.notebook_parameters["train_fraction"].type_name == "float"
    assert loaded.line_of(("grid", "seed")) == 8
    assert re.fullmatch(r"tool-wear-regression-[0-9a-f]{12}", loaded.batch_id)


def test_defaults(sf_write: Callable[[str], Path]) -> None:
    """Kernel python3, 600 s, no retries, local executor, one worker per core."""
    spec = load_spec(sf_write(HEAD)).spec
    assert spec.kernel == "python3"
    assert spec.timeout == 600
    assert spec.retries == 0
    assert spec.executor == "local"
    assert spec.scheduler is None
    assert spec.workers is None
    assert spec.worker_count() == (os.cpu_count() or 1)
    assert spec.parameters == spec.grid == spec.paired == spec.acceptance == {}


def test_runs_order_and_count(sf_write: Callable[[str], Path]) -> None:
    """Fixed parameters, then the grid (last key fastest), then zip tuples innermost."""
    loaded = load_spec(sf_write(EXAMPLE))
    runs = loaded.runs()
    assert len(runs) == 2 * 3 * 2
    expected = [
        {
            "dataset": "milling-tool-wear",
            "model": model,
            "seed": seed,
            "train_fraction": fraction,
            "min_samples": samples,
        }
        for model in ("linear", "quadratic")
        for seed in (1, 2, 3)
        for fraction, samples in ((0.5, 10), (0.7, 20))
    ]
    assert runs == expected
    assert list(runs[0]) == ["dataset", "model", "seed", "train_fraction", "min_samples"]
    assert loaded.runs() == runs


def test_grid_order_as_written(sf_write: Callable[[str], Path]) -> None:
    """The key written last varies fastest, whatever the alphabet says."""
    text = HEAD + "grid:\n  seed: [1, 2]\n  model: [b, a]\n"
    runs = load_spec(sf_write(text)).runs()
    assert [(run["seed"], run["model"]) for run in runs] == [(1, "b"), (1, "a"), (2, "b"), (2, "a")]


def test_single_run_without_grid_or_zip(sf_write: Callable[[str], Path]) -> None:
    """No grid and no zip: one run with the fixed parameters (none at all is one empty run)."""
    assert load_spec(sf_write(HEAD)).runs() == [{}]
    text = HEAD + "parameters:\n  seed: 7\n  model: quadratic\n"
    assert load_spec(sf_write(text)).runs() == [{"seed": 7, "model": "quadratic"}]


def test_zip_only(sf_write: Callable[[str], Path]) -> None:
    """zip alone pairs its lists: as many runs as each list has values."""
    text = HEAD + "zip:\n  seed: [1, 2, 3]\n  model: [a, b, c]\n"
    runs = load_spec(sf_write(text)).runs()
    assert runs == [{"seed": 1, "model": "a"}, {"seed": 2, "model": "b"}, {"seed": 3, "model": "c"}]


def test_runs_do_not_share_values(sf_write: Callable[[str], Path]) -> None:
    """Each run gets its own copy of list and dict values."""
    text = HEAD + "parameters:\n  options: {depth: 2}\ngrid:\n  seed: [1, 2]\n"
    loaded = load_spec(sf_write(text))
    runs = loaded.runs()
    runs[0]["options"]["depth"] = 99
    assert runs[1]["options"] == {"depth": 2}
    assert loaded.spec.parameters["options"] == {"depth": 2}


def test_accepted_types(sf_write: Callable[[str], Path]) -> None:
    """An int for a float, None or anything for a None default, anything for a non-literal."""
    text = (
        HEAD
        + "parameters:\n  train_fraction: 1\n  threshold: 0.25\n  transform: null\n"
        + "grid:\n  options: [{depth: 3}, {}]\n"
    )
    runs = load_spec(sf_write(text)).runs()
    assert runs[0] == {
        "train_fraction": 1,
        "threshold": 0.25,
        "transform": None,
        "options": {"depth": 3},
    }


# ----------------------------------------------------------------------------------- batch id


def test_batch_id_is_stable(sf_write: Callable[[str], Path], tmp_path: Path) -> None:
    """The same spec and notebook give the same id, also reformatted or in another folder."""
    first = load_spec(sf_write(EXAMPLE)).batch_id
    assert load_spec(sf_write(EXAMPLE)).batch_id == first
    reformatted = EXAMPLE.replace("seed: [1, 2, 3]", "seed:\n    - 1\n    - 2\n    - 3")
    reformatted = reformatted.replace("# a comment", "")
    assert load_spec(sf_write(reformatted)).batch_id == first
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(tmp_path / "prog.ipynb", elsewhere / "prog.ipynb")
    (elsewhere / "spec.yaml").write_text(EXAMPLE, encoding="utf-8")
    assert load_spec(elsewhere / "spec.yaml").batch_id == first


def test_batch_id_changes_with_notebook(sf_write: Callable[[str], Path], sf_program: Path) -> None:
    """Any change to the program gives a new batch."""
    path = sf_write(EXAMPLE)
    before = load_spec(path)
    write_notebook(
        sf_program, parameters_cell(PARAMETERS_CELL), nbformat.v4.new_code_cell("print(seed)")
    )
    after = load_spec(path)
    assert after.notebook_sha256 != before.notebook_sha256
    assert after.batch_id != before.batch_id
    assert after.batch_id.startswith("tool-wear-regression-")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("seed: [1, 2, 3]", "seed: [1, 2, 4]"),
        ('r2: ">= 0.8"', 'r2: ">= 0.9"'),
        ("timeout: 120", "timeout: 121"),
        (
            "  model: [linear, quadratic]\n  seed: [1, 2, 3]\n",
            "  seed: [1, 2, 3]\n  model: [linear, quadratic]\n",
        ),
    ],
    ids=["grid-value", "rule", "timeout", "grid-order"],
)
def test_batch_id_changes_with_spec(sf_write: Callable[[str], Path], old: str, new: str) -> None:
    """A change of content, or of the grid order (which orders the runs), gives a new batch."""
    before = load_spec(sf_write(EXAMPLE)).batch_id
    assert old in EXAMPLE
    assert load_spec(sf_write(EXAMPLE.replace(old, new))).batch_id != before


# --------------------------------------------------------------------------- dask scheduler


def test_scheduler_address(sf_write: Callable[[str], Path]) -> None:
    """Local needs none; dask takes the command line's address first, then the spec's."""
    local = load_spec(sf_write(HEAD))
    assert local.scheduler_address("tcp://10.0.0.1:8786") is None
    with_address = load_spec(sf_write(HEAD + "executor: dask\nscheduler: tcp://127.0.0.1:8786\n"))
    assert with_address.scheduler_address() == "tcp://127.0.0.1:8786"
    assert with_address.scheduler_address("tcp://10.0.0.1:8786") == "tcp://10.0.0.1:8786"


def test_dask_without_scheduler(sf_write: Callable[[str], Path]) -> None:
    """A dask spec loads without an address; asking for it then names file, line and field."""
    text = HEAD + f"executor: dask  {MARK}\n"
    path = sf_write(text)
    loaded = load_spec(path)
    assert loaded.scheduler_address("tcp://10.0.0.1:8786") == "tcp://10.0.0.1:8786"
    with pytest.raises(RunSpecError) as info:
        loaded.scheduler_address()
    message = str(info.value)
    assert f"{path.resolve()}:{_marked_line(text)}: scheduler: executor 'dask'" in message


# ---------------------------------------------------------------------------- malformed specs

#: case -> (YAML text with MARK on the line of the problem, field path, fragments of the problem)
MALFORMED: dict[str, tuple[str, str, list[str]]] = {
    "unknown-parameter-grid": (
        HEAD + f"grid:\n  sead: [1, 2]  {MARK}\n",
        "grid.sead",
        ["does not define 'sead'", "did you mean 'seed'?", "dataset, model, seed"],
    ),
    "unknown-parameter-fixed": (
        HEAD + f"parameters:\n  datset: x  {MARK}\n",
        "parameters.datset",
        ["does not define 'datset'", "train_fraction, min_samples"],
    ),
    "unknown-parameter-zip": (
        HEAD + f"zip:\n  seed: [1]\n  learning_rate: [0.1]  {MARK}\n",
        "zip.learning_rate",
        ["does not define 'learning_rate'", "it defines: dataset"],
    ),
    "wrong-type-grid-item": (
        HEAD + f"grid:\n  seed: [1, 2, three]  {MARK}\n",
        "grid.seed[2]",
        ["'three' (str)", "parameter 'seed'", "takes an int", "line 3 of the parameters cell"],
    ),
    "bool-is-not-int": (
        HEAD + f"grid:\n  seed:\n    - 1\n    - true  {MARK}\n",
        "grid.seed[1]",
        ["True (bool)", "takes an int"],
    ),
    "bool-is-not-float": (
        HEAD + f"parameters:\n  train_fraction: yes  {MARK}\n",
        "parameters.train_fraction",
        ["True (bool)", "takes a float", "float annotation"],
    ),
    "null-for-int": (
        HEAD + f"parameters:\n  min_samples: ~  {MARK}\n",
        "parameters.min_samples",
        ["null", "takes an int"],
    ),
    "float-for-int": (
        HEAD + f"zip:\n  min_samples: [10, 12.5]  {MARK}\n",
        "zip.min_samples[1]",
        ["12.5 (float)", "takes an int"],
    ),
    "yaml-exponent-is-text": (
        HEAD + f"grid:\n  train_fraction: [0.5, 1e-3]  {MARK}\n",
        "grid.train_fraction[1]",
        ["'1e-3' (str)", "takes a float", "write 1.0e-3"],
    ),
    "number-for-str": (
        HEAD + f"grid:\n  model: [linear, 2]  {MARK}\n",
        "grid.model[1]",
        ["2 (int)", "takes a str", "quote the value"],
    ),
    "list-for-dict": (
        HEAD + f"parameters:\n  options: [1, 2]  {MARK}\n",
        "parameters.options",
        ["[1, 2] (list)", "takes a dict"],
    ),
    "empty-grid": (
        HEAD + f"grid: {{}}  {MARK}\n",
        "grid",
        ["grid is empty (got {})"],
    ),
    "empty-grid-list": (
        HEAD + f"grid:\n  model: [a]\n  seed: []  {MARK}\n",
        "grid.seed",
        ["no values for 'seed' (got [])"],
    ),
    "empty-zip": (
        HEAD + f"zip: {{}}  {MARK}\n",
        "zip",
        ["zip is empty (got {})"],
    ),
    "empty-zip-list": (
        HEAD + f"zip:\n  seed: []  {MARK}\n",
        "zip.seed",
        ["no values for 'seed' (got [])"],
    ),
    "grid-value-not-list": (
        HEAD + f"grid:\n  seed: 3  {MARK}\n",
        "grid.seed",
        ["must be a list", "(got 3)"],
    ),
    "zip-lengths-differ": (
        HEAD + f"zip:\n  seed: [1, 2]\n  model: [a, b, c]  {MARK}\n",
        "zip.model",
        ["has 3 values but zip.seed has 2", "same length"],
    ),
    "name-in-parameters-and-grid": (
        HEAD + f"parameters:\n  seed: 1\ngrid:\n  seed: [1, 2]  {MARK}\n",
        "grid.seed",
        ["'seed' is also set in parameters.seed (line 5)"],
    ),
    "name-in-grid-and-zip": (
        HEAD + f"grid:\n  model: [a]\nzip:\n  model: [b]  {MARK}\n",
        "zip.model",
        ["'model' is also set in grid.model (line 5)"],
    ),
    "acceptance-unknown-metric": (
        HEAD + f'acceptance:\n  rmse_mm: "< 80"  {MARK}\n',
        "acceptance.rmse_mm",
        ["metric 'rmse_mm' is not listed in metrics (rmse_um, r2)"],
    ),
    "acceptance-invalid-rule": (
        HEAD + f'acceptance:\n  r2: "=> 0.8"  {MARK}\n',
        "acceptance.r2",
        ["invalid rule '=> 0.8'", "unknown comparison '=>'", "accepted forms"],
    ),
    "acceptance-not-text": (
        HEAD + f"acceptance:\n  r2: 0.8  {MARK}\n",
        "acceptance.r2",
        ["(got 0.8)", "accepted forms"],
    ),
    "tolerance-unknown-metric": (
        HEAD + f"tolerance:\n  rmse: 0.01  {MARK}\n",
        "tolerance.rmse",
        ["metric 'rmse' is not listed in metrics"],
    ),
    "tolerance-negative": (
        HEAD + f"tolerance:\n  r2: -0.1  {MARK}\n",
        "tolerance.r2",
        ["greater than or equal to 0", "(got -0.1)"],
    ),
    "metric-listed-twice": (
        f"name: tool-wear\nprogram: prog.ipynb\nmetrics:\n  - r2\n  - r2  {MARK}\n",
        "metrics[1]",
        ["'r2' is listed twice"],
    ),
    "metrics-empty": (
        f"name: tool-wear\nprogram: prog.ipynb\nmetrics: []  {MARK}\n",
        "metrics",
        ["list at least one metric", "(got [])"],
    ),
    "metrics-missing": (
        f"name: tool-wear  {MARK}\nprogram: prog.ipynb\n",
        "metrics",
        ["required field is missing"],
    ),
    "bad-metric-name": (
        f"name: tool-wear\nprogram: prog.ipynb\nmetrics: [r2, rmse um]  {MARK}\n",
        "metrics[1]",
        ["bad metric name 'rmse um'"],
    ),
    "bad-executor": (
        HEAD + f"executor: spark  {MARK}\n",
        "executor",
        ["unknown executor 'spark'", "local or dask"],
    ),
    "timeout-zero": (
        HEAD + f"timeout: 0  {MARK}\n",
        "timeout",
        ["more than 0 seconds (got 0)"],
    ),
    "timeout-negative": (
        HEAD + f"timeout: -5.5  {MARK}\n",
        "timeout",
        ["more than 0 seconds (got -5.5)"],
    ),
    "timeout-text": (
        HEAD + f"timeout: 2min  {MARK}\n",
        "timeout",
        ["valid number", "(got '2min')"],
    ),
    "retries-negative": (
        HEAD + f"retries: -1  {MARK}\n",
        "retries",
        ["retries must be 0 or more (got -1)"],
    ),
    "workers-zero": (
        HEAD + f"workers: 0  {MARK}\n",
        "workers",
        ["workers must be 1 or more (got 0)"],
    ),
    "bad-name": (
        f"name: Tool_Wear  {MARK}\nprogram: prog.ipynb\nmetrics: [r2]\n",
        "name",
        ["bad batch name 'Tool_Wear'", "lowercase letters"],
    ),
    "name-too-long": (
        f"name: {'a' * 65}  {MARK}\nprogram: prog.ipynb\nmetrics: [r2]\n",
        "name",
        [f"bad batch name '{'a' * 65}'", "at most 64"],
    ),
    "unknown-top-level-key": (
        HEAD + f"parameter:  {MARK}\n  seed: 1\n",
        "parameter",
        ["unknown field 'parameter'", "a spec has: name, program"],
    ),
    "paired-is-not-a-key": (
        HEAD + f"paired:  {MARK}\n  seed: [1]\n",
        "paired",
        ["unknown field 'paired'", "zip"],
    ),
    "program-missing": (
        f"name: tool-wear\nprogram: missing.ipynb  {MARK}\nmetrics: [r2]\n",
        "program",
        ["notebook 'missing.ipynb' not found", "missing.ipynb;", "relative to the spec file"],
    ),
    "program-not-notebook": (
        f"name: tool-wear\nprogram: spec.yaml  {MARK}\nmetrics: [r2]\n",
        "program",
        ["spec.yaml: not a valid notebook", "not JSON"],
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_spec(case: str, sf_write: Callable[[str], Path]) -> None:
    """Each malformed case names the file, the line, the field path and the offending value."""
    text, field, fragments = MALFORMED[case]
    path = sf_write(text)
    message = _error(path)
    problem = _problem_line(message, f"{path}:{_marked_line(text)}: {field}: ")
    for fragment in fragments:
        assert fragment in problem, message


@pytest.mark.parametrize(
    ("case", "cells", "fragments"),
    [
        (
            "no-parameters-cell",
            [nbformat.v4.new_code_cell("seed = 1")],
            ["no code cell is tagged 'parameters'"],
        ),
        (
            "syntax-error",
            [parameters_cell("seed = 1\nmodel = 'a\n")],
            ["cells[0]: line 2 of the parameters cell is not valid Python", '"model = \'a"'],
        ),
    ],
)
def test_program_problems(
    case: str, cells: list[Any], fragments: list[str], sf_write: Callable[[str], Path]
) -> None:
    """A program that cannot give parameters is a problem at ``program`` naming the notebook."""
    text = f"name: tool-wear\nprogram: bad.ipynb  {MARK}\nmetrics: [r2]\n"
    path = sf_write(text)
    notebook = write_notebook(path.parent / "bad.ipynb", *cells)
    message = _error(path)
    problem = _problem_line(message, f"{path}:{_marked_line(text)}: program: ")
    assert f"program: {notebook.resolve()}: " in problem
    for fragment in fragments:
        assert fragment in problem, message


def test_yaml_duplicate_key(sf_write: Callable[[str], Path]) -> None:
    """A key written twice is refused (YAML would keep the last silently)."""
    text = HEAD + f"timeout: 10\ntimeout: 20  {MARK}\n"
    path = sf_write(text)
    message = _error(path)
    assert f"{path}:{_marked_line(text)}: timeout: duplicate key 'timeout'" in message


def test_not_a_mapping(sf_write: Callable[[str], Path]) -> None:
    """A spec whose top level is a list is refused."""
    path = sf_write("- name: tool-wear\n")
    assert f"{path}:1: a spec is a mapping, not a list" in _error(path)


def test_missing_spec_file(tmp_path: Path) -> None:
    """A missing spec is a RunSpecError naming the file."""
    path = tmp_path / "absent.yaml"
    assert f"{path}: file not found" in _error(path)


def test_every_problem_in_one_error(sf_write: Callable[[str], Path]) -> None:
    """Model, section, metric and notebook problems are all reported together, by line."""
    text = (
        "name: Bad_Name\n"
        "program: prog.ipynb\n"
        "grid:\n"
        "  sead: [1]\n"
        "  seed: [1, x]\n"
        "zip:\n"
        "  model: [a, b]\n"
        "  dataset: [c]\n"
        "metrics: [r2]\n"
        "acceptance:\n"
        '  rmse: "< 1"\n'
        "timeout: 0\n"
    )
    path = sf_write(text)
    message = _error(path)
    assert message.startswith(f"{path}: 6 problems found"), message
    rendered = [line.strip() for line in message.splitlines()[1:]]
    expected = [
        f"{path}:1: name: bad batch name",
        f"{path}:4: grid.sead: the notebook's parameters cell does not define",
        f"{path}:5: grid.seed[1]: 'x' (str)",
        f"{path}:8: zip.dataset: has 1 values",
        f"{path}:11: acceptance.rmse: metric 'rmse'",
        f"{path}:12: timeout: timeout must be",
    ]
    assert len(rendered) == len(expected), message
    for line, prefix in zip(rendered, expected, strict=True):
        assert line.startswith(prefix), message


def test_problems_with_model_error_still_check_notebook(sf_write: Callable[[str], Path]) -> None:
    """A field error elsewhere does not hide a parameter the notebook does not define."""
    text = HEAD + "executor: spark\ngrid:\n  sead: [1]\n"
    message = _error(sf_write(text))
    assert "unknown executor 'spark'" in message
    assert "does not define 'sead'" in message


def test_loaded_spec_is_frozen(sf_write: Callable[[str], Path]) -> None:
    """A loaded spec cannot be changed after its batch id is known."""
    loaded = load_spec(sf_write(HEAD))
    assert isinstance(loaded, LoadedSpec)
    with pytest.raises(AttributeError):
        loaded.notebook_sha256 = "0" * 64  # type: ignore[misc]
    with pytest.raises(ValueError):
        loaded.spec.name = "other"  # type: ignore[misc]


def test_make_executor_names_the_executors_it_knows() -> None:
    """The executors are the two built in; any other name is refused with the known ones."""
    from smartfab.errors import RunsError
    from smartfab.runs.executors import make_executor

    with pytest.raises(RunsError, match="unknown executor 'spark'; known: dask, local"):
        make_executor("spark")
