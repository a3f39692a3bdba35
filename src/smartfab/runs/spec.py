"""Batch specs: a YAML file that runs one program notebook over a grid of parameters.

A spec names the program, the parameters fixed for every run, a ``grid`` (cartesian product,
in the order written) and a ``zip`` (lists paired element by element, crossed with the grid),
the metrics the runner collects, their acceptance rules and tolerances, and how to execute.

papermill only warns when a parameter is not in the notebook's parameters cell; a spec is
checked against that cell and refused with every problem at once, each naming the file, the
line, the field path and the value. Example::

    name: tool-wear-regression
    program: tool_wear_regression.ipynb
    grid:
      model: [linear, quadratic]
      seed: [1, 2, 3]
    metrics: [rmse_um, r2]
    acceptance:
      rmse_um: "< 80"
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from smartfab.errors import ConfigFileError, Problem, RunSpecError
from smartfab.record import NAME as METRIC_NAME
from smartfab.runs.notebook_params import NotebookParameter, accepts, parameters_from_bytes
from smartfab.runs.rules import ACCEPTED_FORMS, Rule, parse_rule
from smartfab.yamlfile import (
    YamlDocument,
    format_path,
    load_yaml_document,
    problem_at,
    validate_document,
)

#: relative tolerance of a metric the spec gives none for
DEFAULT_TOLERANCE = 1e-9
NAME_MAX = 64
#: the sections that set notebook parameters, as written in the file
SECTIONS = ("parameters", "grid", "zip")

BatchName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=NAME_MAX)]
MetricName = Annotated[str, StringConstraints(pattern=METRIC_NAME.pattern)]
#: the values a grid or zip entry takes, at least one
Values = Annotated[list[Any], Field(min_length=1)]


def _normalized_rule(text: str) -> str:
    return str(parse_rule(text))


#: an acceptance rule, kept in its normalized text (``"<80"`` becomes ``"< 80"``)
RuleText = Annotated[str, AfterValidator(_normalized_rule)]


class BatchSpec(BaseModel):
    """The content of a batch spec file (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: BatchName = Field(description="batch name: lowercase letters, digits, hyphens")
    program: str = Field(min_length=1, description="notebook path, relative to the spec file")
    kernel: str = Field(default="python3", pattern=r"^[A-Za-z0-9._-]+$")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="parameters fixed for every run"
    )
    grid: dict[str, Values] = Field(
        default_factory=dict, min_length=1, description="cartesian product, in the order written"
    )
    paired: dict[str, Values] = Field(
        default_factory=dict,
        min_length=1,
        alias="zip",
        description="lists of equal length paired element-wise, crossed with the grid",
    )
    metrics: list[MetricName] = Field(min_length=1, description="metrics the runner collects")
    acceptance: dict[str, RuleText] = Field(default_factory=dict, description="rule per metric")
    tolerance: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=dict, description="relative tolerance per metric for compare and verify"
    )
    timeout: float = Field(default=600, gt=0, allow_inf_nan=False, description="seconds per run")
    retries: int = Field(default=0, ge=0, description="extra attempts for runs ending in error")
    executor: Literal["local", "dask"] = "local"
    scheduler: str | None = Field(default=None, pattern=r"^\S+$", description="dask scheduler")
    workers: int | None = Field(
        default=None, ge=1, description="local runs in parallel; None: the number of cores"
    )

    def content(self) -> dict[str, Any]:
        """The spec as JSON-ready data with the keys of the file (``zip``, not ``paired``)."""
        return self.model_dump(mode="json", by_alias=True)

    def rules(self) -> dict[str, Rule]:
        """The acceptance rules, parsed, by metric."""
        return {metric: parse_rule(text) for metric, text in self.acceptance.items()}

    def tolerance_for(self, metric: str) -> float:
        """Relative tolerance of ``metric`` for compare and verify."""
        return self.tolerance.get(metric, DEFAULT_TOLERANCE)

    def worker_count(self) -> int:
        """Runs executed in parallel by the local executor: ``workers`` or the core count."""
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec with the program it runs.

    Attributes
    ----------
    spec:
        The validated content of the file.
    source:
        Absolute path of the spec file.
    notebook:
        Absolute path of the program notebook.
    notebook_sha256:
        sha256 of the notebook bytes the parameters were read from.
    notebook_parameters:
        The parameters the notebook's parameters cell declares, by name.
    """

    spec: BatchSpec
    source: Path
    notebook: Path
    notebook_sha256: str
    notebook_parameters: dict[str, NotebookParameter]
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict, repr=False, compare=False)

    def runs(self) -> list[dict[str, Any]]:
        """The parameters of every run, in a deterministic order.

        Each run is ``{**parameters, **grid point, **zip point}``. Grid points follow the order
        the grid is written in, the last key varying fastest; zip points vary innermost. A spec
        with neither grid nor zip is a single run with the fixed parameters.
        """
        grid = self.spec.grid
        paired = self.spec.paired
        grid_points = list(itertools.product(*grid.values()))
        zip_points = list(zip(*paired.values(), strict=True)) if paired else [()]
        runs = []
        for grid_point in grid_points:
            for zip_point in zip_points:
                run = {
                    **self.spec.parameters,
                    **dict(zip(grid, grid_point, strict=True)),
                    **dict(zip(paired, zip_point, strict=True)),
                }
                # values may be lists or dicts: no run may share them with another
                runs.append(copy.deepcopy(run))
        return runs

    @property
    def batch_id(self) -> str:
        """``NAME-HEX``: 12 hex digits of the sha256 of the spec's content and the notebook.

        The content is the canonical JSON of the validated spec (sorted keys) plus the order of
        the grid and zip keys, which sets the order of the runs. Where the runs execute
        (executor, scheduler, workers) does not change what they compute, so it is left out.
        The same spec and notebook give the same id, so a batch can be resumed (on any
        executor); any other change gives a new batch.
        """
        content = {
            key: value
            for key, value in self.spec.content().items()
            if key not in ("executor", "scheduler", "workers")
        }
        payload = {
            "spec": content,
            "order": {"grid": list(self.spec.grid), "zip": list(self.spec.paired)},
            "notebook_sha256": self.notebook_sha256,
        }
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        return f"{self.spec.name}-{digest[:12]}"

    def line_of(self, loc: tuple[str | int, ...]) -> int | None:
        """Line of field path ``loc`` (or its nearest parent) in the spec file."""
        return YamlDocument(str(self.source), None, self.lines).line_of(loc)

    def scheduler_address(self, override: str | None = None) -> str | None:
        """The dask scheduler to connect to: ``override`` (command line) or the spec's.

        None when the executor is local.

        Raises
        ------
        RunSpecError
            When the executor is dask and neither gives an address.
        """
        if self.spec.executor != "dask":
            return None
        address = override or self.spec.scheduler
        if not address:
            message = (
                "executor 'dask' needs a scheduler address: set 'scheduler: tcp://HOST:PORT' "
                "in the spec or give it on the command line"
            )
            problem = Problem("scheduler", message, self.line_of(("executor",)))
            raise RunSpecError(self.source, [problem])
        return address


def load_spec(path: Path) -> LoadedSpec:
    """Read a batch spec, its program notebook, and check one against the other.

    Raises
    ------
    RunSpecError
        Listing every problem as ``FILE:LINE: FIELD.PATH: what is wrong``: YAML errors,
        invalid fields, an unreadable notebook or one without a parameters cell (at
        ``program``), and parameters the notebook does not define or of the wrong type.
    """
    try:
        doc = load_yaml_document(path)
    except ConfigFileError as err:
        raise RunSpecError(err.source, err.problems) from None
    data = doc.data
    if not isinstance(data, dict):
        found = type(data).__name__
        raise RunSpecError(doc.source, [Problem("", f"a spec is a mapping, not a {found}", 1)])
    problems: list[Problem] = []
    spec: BatchSpec | None = None
    try:
        spec = validate_document(doc, BatchSpec, RunSpecError, _describe)
    except RunSpecError as err:
        problems.extend(err.problems)
    sections = {name: data[name] for name in SECTIONS if isinstance(data.get(name), dict)}
    problems.extend(_check_sections(doc, sections))
    problems.extend(_check_metric_names(doc, data))
    program = _read_program(doc, path, data.get("program"))
    if isinstance(program, list):
        problems.extend(program)
    else:
        problems.extend(_check_parameters(doc, sections, program[2]))
    if problems or spec is None or isinstance(program, list):
        raise RunSpecError(doc.source, sorted(problems, key=lambda p: p.line or 0))
    notebook, sha256, parameters = program
    return LoadedSpec(spec, path.resolve(), notebook, sha256, parameters, dict(doc.lines))


_Program = tuple[Path, str, dict[str, NotebookParameter]]


def _read_program(doc: YamlDocument, path: Path, program: Any) -> _Program | list[Problem]:
    """The notebook's absolute path, sha256 and parameters, or the problems at ``program``."""
    if not isinstance(program, str) or not program:
        return []  # the model reports a missing or malformed program
    notebook = (path.parent / program).resolve()
    try:
        data = notebook.read_bytes()
    except FileNotFoundError:
        message = (
            f"notebook {program!r} not found (looked for {notebook}; the program path is "
            "relative to the spec file)"
        )
        return [problem_at(doc, ("program",), message)]
    except OSError as err:
        return [problem_at(doc, ("program",), f"cannot read notebook {notebook}: {err}")]
    try:
        parameters = parameters_from_bytes(data, notebook)
    except RunSpecError as err:
        return [problem_at(doc, ("program",), p.render(err.source)) for p in err.problems]
    return notebook, hashlib.sha256(data).hexdigest(), parameters


def _check_sections(doc: YamlDocument, sections: dict[str, dict[Any, Any]]) -> list[Problem]:
    """A name set in two sections; zip lists of different lengths."""
    problems = []
    first: dict[str, tuple[str, str]] = {}
    for section, values in sections.items():
        for key in values:
            name = str(key)
            if name in first:
                where = first[name]
                message = (
                    f"{name!r} is also set in {format_path(where)} (line {doc.line_of(where)}): "
                    "set each parameter in one of parameters, grid and zip"
                )
                problems.append(problem_at(doc, (section, name), message))
            else:
                first[name] = (section, name)
    lists = [(str(k), v) for k, v in sections.get("zip", {}).items() if isinstance(v, list) and v]
    for name, items in lists[1:]:
        head, expected = lists[0]
        if len(items) != len(expected):
            message = (
                f"has {len(items)} values but zip.{head} has {len(expected)}: zip pairs its "
                "lists element by element, so they must all have the same length"
            )
            problems.append(problem_at(doc, ("zip", name), message))
    return problems


def _check_metric_names(doc: YamlDocument, data: dict[str, Any]) -> list[Problem]:
    """Metrics listed twice; acceptance and tolerance for metrics not listed in ``metrics``."""
    metrics = data.get("metrics")
    if not isinstance(metrics, list):
        return []  # the model reports it
    problems = []
    listed: list[str] = []
    for index, metric in enumerate(metrics):
        if metric in listed:
            problems.append(problem_at(doc, ("metrics", index), f"{metric!r} is listed twice"))
        elif isinstance(metric, str):
            listed.append(metric)
    for section in ("acceptance", "tolerance"):
        entries = data.get(section)
        for key in entries if isinstance(entries, dict) else {}:
            if key not in listed:
                message = (
                    f"metric {key!r} is not listed in metrics ({', '.join(listed) or 'none'}); "
                    f"{section} applies only to the metrics the runner collects"
                )
                problems.append(problem_at(doc, (section, str(key)), message))
    return problems


def _check_parameters(
    doc: YamlDocument,
    sections: dict[str, dict[Any, Any]],
    declared: dict[str, NotebookParameter],
) -> list[Problem]:
    """Names the parameters cell does not define; values of the wrong type."""
    known = ", ".join(declared) or "none"
    problems = []
    for section, values in sections.items():
        for key, value in values.items():
            name = str(key)
            loc: tuple[str | int, ...] = (section, name)
            parameter = declared.get(name)
            if parameter is None:
                close = difflib.get_close_matches(name, list(declared), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                message = (
                    f"the notebook's parameters cell does not define {name!r}{hint}; "
                    f"it defines: {known}"
                )
                problems.append(problem_at(doc, loc, message))
                continue
            if section == "parameters":
                items = [(loc, value)]
            elif isinstance(value, list):
                items = [((*loc, index), item) for index, item in enumerate(value)]
            else:
                items = []  # the model reports a grid or zip entry that is not a list
            for where, item in items:
                if not accepts(parameter, item):
                    problems.append(problem_at(doc, where, _type_message(parameter, item)))
    return problems


_EXPECTED = {
    "int": "an int",
    "float": "a float (an int will do)",
    "str": "a str",
    "bool": "a bool",
    "list": "a list",
    "dict": "a dict",
}


def _type_message(parameter: NotebookParameter, value: Any) -> str:
    """Why ``value`` does not suit ``parameter``, with a hint for YAML's usual surprises."""
    shown = "null" if value is None else f"{value!r} ({type(value).__name__})"
    declared = f"{parameter.annotation} annotation" if parameter.annotation else "default"
    hint = ""
    if isinstance(value, str) and parameter.type_name in ("int", "float"):
        try:
            float(value)
        except ValueError:
            pass
        else:
            hint = "; YAML reads a number like 1e-3 as text: write 1.0e-3"
    elif parameter.type_name == "str" and value is not None:
        hint = "; quote the value to make it text"
    return (
        f"{shown} does not suit notebook parameter {parameter.name!r}, which takes "
        f"{_EXPECTED[parameter.type_name]} (its {declared}, line {parameter.line} of the "
        f"parameters cell){hint}"
    )


_FIELDS = ", ".join(info.alias or name for name, info in BatchSpec.model_fields.items())


def _describe(error: dict[str, Any], loc: tuple[str | int, ...]) -> str | None:
    """Spec-specific wording for a pydantic error; None for the generic sentence."""
    kind = error["type"]
    value = error.get("input")
    top = loc[0] if loc else ""
    if kind == "extra_forbidden" and len(loc) == 1:
        return f"unknown field {top!r}; a spec has: {_FIELDS}"
    if top == "name" and kind in ("string_pattern_mismatch", "string_too_long"):
        return (
            f"bad batch name {value!r}: use lowercase letters, digits and hyphens, starting "
            f"with a letter or digit (at most {NAME_MAX} characters)"
        )
    if top == "executor" and kind == "literal_error":
        return f"unknown executor {value!r}: use local or dask"
    if top in ("grid", "zip") and kind == "too_short":
        if len(loc) == 1:
            return (
                f"{top} is empty (got {{}}): give each parameter a list of values, or leave "
                f"{top} out"
            )
        return f"no values for {loc[1]!r} (got []): give at least one value"
    if top in ("grid", "zip") and len(loc) == 2 and kind == "list_type":
        return f"the values of {loc[1]!r} must be a list such as [1, 2] (got {value!r})"
    if top == "acceptance" and kind == "value_error":
        return str(error["ctx"]["error"])
    if top == "acceptance" and kind == "string_type":
        return (
            f'a rule is quoted text such as "< 80" (got {value!r}); '
            f"accepted forms: {ACCEPTED_FORMS}"
        )
    if top == "metrics" and kind == "too_short":
        return "list at least one metric the runner collects (got [])"
    if top == "metrics" and kind == "string_pattern_mismatch":
        return (
            f"bad metric name {value!r}: use letters, digits, '_', '.', '-', starting with a "
            "letter or '_'"
        )
    if top in ("timeout", "retries", "workers") and kind.startswith("greater_than"):
        limit = {"timeout": "more than 0 seconds", "retries": "0 or more", "workers": "1 or more"}
        return f"{top} must be {limit[str(top)]} (got {value!r})"
    return None
