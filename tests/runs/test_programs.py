"""The programs in notebooks/programs: their batch specs agree with their parameters cells, and
each program, executed by papermill on the first point of its grid, records every metric of its
spec with a physically plausible value."""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import papermill
import pytest
import yaml

from smartfab.record import RECORD_MIMETYPE

PROGRAMS = Path(__file__).resolve().parents[2] / "notebooks" / "programs"
SPECS = sorted(PROGRAMS.glob("*.yaml"))
SPEC_KEYS = {
    "name", "program", "kernel", "parameters", "grid", "zip", "metrics", "acceptance",
    "tolerance", "timeout", "retries", "executor",
}  # fmt: skip
RULE = re.compile(r"^(?:(?:<|<=|>|>=|==|!=) \S+|between \S+ and \S+|in \[[^\]]*\])$")
ANNOTATIONS: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (float, int),
    "str": (str,),
    "bool": (bool,),
}


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _within(low: float, high: float) -> Callable[[Any, dict[str, Any]], bool]:
    return lambda value, _: _finite(value) and low <= value <= high


#: plausible values of every metric a spec may list, given all the recorded metrics
PLAUSIBLE: dict[str, Callable[[Any, dict[str, Any]], bool]] = {
    # flank wear runs from 0 to 300 um (VB = 0.3 mm is the end of life)
    "rmse_um": lambda v, m: _finite(v) and 0 < v < 300,
    "mae_um": lambda v, m: _finite(v) and 0 < v <= m["rmse_um"],
    "max_error_um": lambda v, m: _finite(v) and m["rmse_um"] <= v < 600,
    "r2": _within(0.0, 1.0),
    "rul_rmse_min": lambda v, m: _finite(v) and v >= 0,
    "rul_rmse_pct": _within(0.0, 100.0),
    "accuracy": _within(0.0, 1.0),
    "f1": _within(0.0, 1.0),
    # the fault starts at half of a 100 h life: an alarm lies within +-100 h of it
    "detection_delay_h": _within(-100.0, 100.0),
    "false_alarms": lambda v, m: isinstance(v, int) and 0 <= v <= 100,
    "type_accuracy": _within(0.0, 1.0),
    "diagnosis": lambda v, m: v in ("none", "outer", "inner", "ball"),
    "diagnosis_correct": lambda v, m: isinstance(v, bool),
}
#: figures each program must record
FIGURES = {
    "tool-wear-regression": {"pred_vs_true", "residuals", "rul"},
    "bearing-fault-detector": {"envelope_spectrum", "fault_scores"},
}


def _load_spec(path: Path) -> dict[str, Any]:
    spec = yaml.safe_load(path.read_text())
    assert isinstance(spec, dict), f"{path.name}: not a mapping"
    return spec


def _parameters_cell(notebook: Path) -> dict[str, tuple[str, Any]]:
    """Name -> (annotation, default) of the annotated assignments of the cell tagged
    ``parameters``."""
    nb = json.loads(notebook.read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{notebook.name}: expected one cell tagged 'parameters'"
    tree = ast.parse("".join(cells[0]["source"]))
    found: dict[str, tuple[str, Any]] = {}
    for node in tree.body:
        assert isinstance(node, ast.AnnAssign), f"{notebook.name}: only `name: type = value`"
        assert isinstance(node.target, ast.Name) and isinstance(node.annotation, ast.Name)
        assert node.value is not None, f"{notebook.name}: {node.target.id} has no default"
        found[node.target.id] = (node.annotation.id, ast.literal_eval(node.value))
    return found


def _first_point(spec: dict[str, Any]) -> dict[str, Any]:
    """Parameters of the first run of the spec's grid (zip lists taken at their first element)."""
    point = dict(spec.get("parameters") or {})
    point.update({name: values[0] for name, values in (spec.get("grid") or {}).items()})
    point.update({name: values[0] for name, values in (spec.get("zip") or {}).items()})
    return point


def _records(notebook: Path) -> dict[str, dict[str, Any]]:
    """name -> encoded value of every ``smartfab.record`` in an executed notebook."""
    nb = json.loads(notebook.read_text())
    found: dict[str, dict[str, Any]] = {}
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            payload = output.get("data", {}).get(RECORD_MIMETYPE)
            if payload is not None:
                found[payload["name"]] = payload["value"]
    return found


def test_there_are_programs() -> None:
    assert {p.stem for p in SPECS} >= {"tool_wear_regression", "bearing_fault_detector"}


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda p: p.stem)
def test_spec_matches_parameters_cell(spec_path: Path) -> None:
    """Keys, rules and sizes of the spec; every parameter it sets exists in the notebook's
    parameters cell with a value of the annotated type."""
    spec = _load_spec(spec_path)
    assert set(spec) <= SPEC_KEYS, f"unknown keys {set(spec) - SPEC_KEYS}"
    assert re.fullmatch(r"[a-z0-9-]+", spec["name"])
    notebook = spec_path.parent / spec["program"]
    assert notebook.is_file()
    declared = _parameters_cell(notebook)
    for name, (annotation, default) in declared.items():
        assert isinstance(default, ANNOTATIONS[annotation]), f"default of {name}"

    grid = spec.get("grid") or {}
    zipped = spec.get("zip") or {}
    assert "zip" not in spec or zipped, "omit an empty zip"
    assert len({len(values) for values in zipped.values()}) <= 1, "zip lists differ in length"
    assert all(isinstance(v, list) and v for v in [*grid.values(), *zipped.values()])
    sets = [spec.get("parameters") or {}, grid, zipped]
    names = [name for part in sets for name in part]
    assert len(names) == len(set(names)), "a parameter is set twice"
    values: list[tuple[str, Any]] = [(k, v) for k, v in sets[0].items()]
    values += [(k, v) for part in sets[1:] for k, vs in part.items() for v in vs]
    for name, value in values:
        assert name in declared, f"{name} is not in the parameters cell"
        annotation = declared[name][0]
        ok = isinstance(value, ANNOTATIONS[annotation])
        assert ok and not (annotation != "bool" and isinstance(value, bool)), (
            f"{name}={value!r} is not a {annotation}"
        )
    runs = math.prod(len(v) for v in grid.values()) * (
        len(next(iter(zipped.values()))) if zipped else 1
    )
    assert 8 <= runs <= 16, f"{runs} runs"

    metrics = spec["metrics"]
    assert set(spec.get("acceptance") or {}) <= set(metrics)
    assert set(spec.get("tolerance") or {}) <= set(metrics)
    for metric, rule in (spec.get("acceptance") or {}).items():
        assert RULE.match(str(rule)), f"{metric}: rule {rule!r}"
    assert all(name in PLAUSIBLE for name in metrics), "give new metrics a plausible range"


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda p: p.stem)
def test_program_records_its_metrics(
    spec_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Execute the program on the first grid point; every spec metric and figure is recorded
    and plausible."""
    monkeypatch.setenv("SMARTFAB_DATA_DIR", str(tmp_path / "data"))
    spec = _load_spec(spec_path)
    output = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(spec_path.parent / spec["program"]),
        str(output),
        parameters=_first_point(spec),
        kernel_name=spec.get("kernel", "python3"),
        cwd=str(spec_path.parent),
        progress_bar=False,
        execution_timeout=spec.get("timeout", 120),
    )
    records = _records(output)
    scalars = {n: v["value"] for n, v in records.items() if v["kind"] == "scalar"}
    for name in spec["metrics"]:
        assert name in scalars, f"{name} not recorded"
    for name in spec["metrics"]:
        assert PLAUSIBLE[name](scalars[name], scalars), f"{name} = {scalars[name]!r}"
    for figure in FIGURES.get(spec["name"], set()):
        assert records.get(figure, {}).get("kind") == "image", f"figure {figure} not recorded"
