"""What changed between two batches of the same program: runs paired by their parameters.

Typical use: batch A ran program v1, batch B ran v2 (or the same program on a new environment);
which grid points now give other metrics, and which runs now fail?

Runs pair when the canonical JSON of their parameters (sorted keys) is equal; when a batch holds
several runs with the same parameters, they pair in grid order. A metric changed when

* numbers: ``|a - b| > atol + rtol * |a|`` (NaN and ``None`` both mean "no value" and are equal:
  the store writes NaN as ``null``);
* booleans and strings: ``a != b``;
* arrays: any element beyond the same tolerance, or another shape;
* values of another kind (a number became a string);
* images: never compared.

A :class:`Comparison` reads as JSON (:meth:`Comparison.to_json`) or as a compact table for the
terminal (:func:`render_comparison`).

See Also
--------
smartfab.runs.report.files.write_report : the report of one batch.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from smartfab.runs.models import RunRecord, RunStatus
from smartfab.runs.report.values import (
    canonical,
    format_array,
    format_value,
    is_array,
    is_image,
    is_number,
    ordered_keys,
    strip_ansi,
)

#: relative tolerance of the metrics a per-metric ``rtol`` mapping does not name
DEFAULT_RTOL = 1e-9


@dataclass(frozen=True)
class MetricDiff:
    """One metric that differs between the two runs of a pair.

    Attributes
    ----------
    name:
        The metric.
    a, b:
        Its values in batch A and B (``None`` when it is only in the other batch).
    abs_diff, rel_diff:
        ``|a - b|`` and ``|a - b| / |a|`` for numbers; the largest element-wise ones for arrays;
        ``None`` when they do not apply (strings, shapes, a zero or infinite ``a``).
    kind:
        ``"value"``, ``"shape"`` (arrays), ``"type"`` (another kind of value), ``"only_a"`` or
        ``"only_b"``.
    changed_elements:
        For arrays of the same shape: how many elements are beyond tolerance.
    """

    name: str
    a: Any
    b: Any
    abs_diff: float | None = None
    rel_diff: float | None = None
    kind: str = "value"
    changed_elements: int | None = None


@dataclass(frozen=True)
class RunRef:
    """A run that has no partner in the other batch."""

    index: int
    run_id: str
    status: RunStatus
    parameters: dict[str, Any]


@dataclass(frozen=True)
class RunChange:
    """A pair of runs (same parameters) whose status, error or metrics differ."""

    parameters: dict[str, Any]
    index_a: int
    index_b: int
    run_id_a: str
    run_id_b: str
    status_a: RunStatus
    status_b: RunStatus
    metrics: list[MetricDiff] = field(default_factory=list)
    error_a: str | None = None  # "kind: ename: evalue", when the run ended in an error
    error_b: str | None = None

    @property
    def status_changed(self) -> bool:
        """The status differs (e.g. passed -> failed)."""
        return self.status_a != self.status_b


@dataclass(frozen=True)
class Comparison:
    """The comparison of batch A (reference) with batch B.

    Attributes
    ----------
    changed:
        Pairs with another status, another kind of error or a metric beyond tolerance.
    unchanged:
        Number of pairs without any of these.
    only_a, only_b:
        Runs whose parameters have no partner in the other batch.
    """

    changed: list[RunChange]
    unchanged: int
    only_a: list[RunRef]
    only_b: list[RunRef]
    runs_a: int = 0
    runs_b: int = 0
    rtol: dict[str, float] | float = DEFAULT_RTOL
    atol: float = 0.0

    @property
    def identical(self) -> bool:
        """Every run has a partner and no pair changed."""
        return not (self.changed or self.only_a or self.only_b)

    def to_dict(self) -> dict[str, Any]:
        """The comparison as JSON-ready data (non-finite numbers as ``"NaN"``/``"Infinity"``)."""
        data = {
            "runs_a": self.runs_a,
            "runs_b": self.runs_b,
            "unchanged": self.unchanged,
            "tolerance": {"rtol": self.rtol, "atol": self.atol},
            "changed": [_change_dict(change) for change in self.changed],
            "only_a": [_ref_dict(ref) for ref in self.only_a],
            "only_b": [_ref_dict(ref) for ref in self.only_b],
        }
        jsonable: dict[str, Any] = _jsonable(data)
        return jsonable

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as strict JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    def render_text(self) -> str:
        """A compact table for the terminal: counts, then each changed pair and unpaired run."""
        return render_comparison(self)


def compare_batches(
    a: list[RunRecord],
    b: list[RunRecord],
    *,
    rtol: dict[str, float] | float = DEFAULT_RTOL,
    atol: float = 0.0,
) -> Comparison:
    """Pair the runs of ``a`` and ``b`` by parameters and list what changed beyond tolerance.

    Parameters
    ----------
    a, b:
        The runs of the reference batch and of the batch compared with it.
    rtol:
        Relative tolerance, for every metric or per metric name (metrics the mapping does not
        name use :data:`DEFAULT_RTOL`). Relative to the value in ``a``.
    atol:
        Absolute tolerance, for every metric.

    Returns
    -------
    Comparison
        Changed pairs, the number of unchanged ones, and the runs without a partner.
    """
    waiting: dict[str, deque[RunRecord]] = {}
    for run in sorted(b, key=lambda r: r.index):
        waiting.setdefault(canonical(run.parameters), deque()).append(run)
    changed: list[RunChange] = []
    only_a: list[RunRef] = []
    unchanged = 0
    for run_a in sorted(a, key=lambda r: r.index):
        partners = waiting.get(canonical(run_a.parameters))
        if not partners:
            only_a.append(_ref(run_a))
            continue
        change = _compare_pair(run_a, partners.popleft(), rtol, atol)
        if change is None:
            unchanged += 1
        else:
            changed.append(change)
    only_b = sorted((_ref(run) for queue in waiting.values() for run in queue), key=_ref_index)
    rtol_copy = dict(rtol) if isinstance(rtol, Mapping) else rtol
    return Comparison(changed, unchanged, only_a, only_b, len(a), len(b), rtol_copy, atol)


def _compare_pair(
    a: RunRecord, b: RunRecord, rtol: Mapping[str, float] | float, atol: float
) -> RunChange | None:
    diffs = []
    for name in ordered_keys([a.metrics, b.metrics]):
        value_a, value_b = a.metrics.get(name), b.metrics.get(name)
        if is_image(value_a) or is_image(value_b):
            continue
        if name not in b.metrics:
            diffs.append(MetricDiff(name, value_a, None, kind="only_a"))
        elif name not in a.metrics:
            diffs.append(MetricDiff(name, None, value_b, kind="only_b"))
        else:
            tolerance = rtol.get(name, DEFAULT_RTOL) if isinstance(rtol, Mapping) else rtol
            diff = diff_values(name, value_a, value_b, rtol=tolerance, atol=atol)
            if diff is not None:
                diffs.append(diff)
    error_a, error_b = _error_text(a), _error_text(b)
    other_error = _error_key(a) != _error_key(b)
    if not diffs and a.status == b.status and not other_error:
        return None
    return RunChange(
        parameters=dict(a.parameters),
        index_a=a.index,
        index_b=b.index,
        run_id_a=a.run_id,
        run_id_b=b.run_id,
        status_a=a.status,
        status_b=b.status,
        metrics=diffs,
        error_a=error_a,
        error_b=error_b,
    )


def diff_values(name: str, a: Any, b: Any, *, rtol: float, atol: float = 0.0) -> MetricDiff | None:
    """How metric ``name`` differs from ``a`` to ``b``; ``None`` when within tolerance."""
    kind_a, kind_b = _kind(a), _kind(b)
    if kind_a == kind_b == "missing":
        return None
    if kind_a != kind_b:
        kind = "value" if "missing" in (kind_a, kind_b) else "type"
        return MetricDiff(name, a, b, kind=kind)
    if kind_a == "number":
        return _number_diff(name, a, b, rtol, atol)
    if kind_a == "array":
        return _array_diff(name, a, b, rtol, atol)
    if kind_a in ("bool", "string"):
        return None if a == b else MetricDiff(name, a, b)
    return None if canonical(a) == canonical(b) else MetricDiff(name, a, b)


def _kind(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    if isinstance(value, bool):
        return "bool"
    if is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if is_array(value):
        return "array"
    return "other"


def _number_diff(name: str, a: float, b: float, rtol: float, atol: float) -> MetricDiff | None:
    if not (math.isfinite(a) and math.isfinite(b)):
        return None if a == b else MetricDiff(name, a, b)
    difference = abs(a - b)
    if difference <= atol + rtol * abs(a):
        return None
    relative = difference / abs(a) if a != 0 else None
    return MetricDiff(name, a, b, abs_diff=difference, rel_diff=relative)


def _array_diff(
    name: str, a: list[Any], b: list[Any], rtol: float, atol: float
) -> MetricDiff | None:
    import numpy as np

    try:
        array_a = np.asarray(a, dtype=float)
        array_b = np.asarray(b, dtype=float)
    except (TypeError, ValueError):  # ragged or not numbers: only equality means anything
        return None if canonical(a) == canonical(b) else MetricDiff(name, a, b)
    if array_a.shape != array_b.shape:
        return MetricDiff(name, a, b, kind="shape")
    # isclose(x, y) tests |x - y| <= atol + rtol * |y|: y is A, the reference
    close = np.isclose(array_b, array_a, rtol=rtol, atol=atol, equal_nan=True)
    if bool(close.all()):
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        difference = np.abs(array_a - array_b)
        relative = difference / np.abs(array_a)
    finite = np.isfinite(difference) & ~close
    abs_diff = float(difference[finite].max()) if finite.any() else None
    usable = finite & np.isfinite(relative)
    rel_diff = float(relative[usable].max()) if usable.any() else None
    changed = int((~close).sum())
    return MetricDiff(name, a, b, abs_diff, rel_diff, "value", changed)


def _error_key(run: RunRecord) -> tuple[str, str] | None:
    return (run.error.kind, run.error.ename) if run.error is not None else None


def _error_text(run: RunRecord) -> str | None:
    if run.error is None:
        return None
    parts = (run.error.kind, run.error.ename, strip_ansi(run.error.evalue))
    return ": ".join(part for part in parts if part)


def _ref(run: RunRecord) -> RunRef:
    return RunRef(run.index, run.run_id, run.status, dict(run.parameters))


def _ref_index(ref: RunRef) -> int:
    return ref.index


def _ref_dict(ref: RunRef) -> dict[str, Any]:
    return {
        "index": ref.index,
        "run_id": ref.run_id,
        "status": ref.status.value,
        "parameters": ref.parameters,
    }


def _change_dict(change: RunChange) -> dict[str, Any]:
    return {
        "parameters": change.parameters,
        "index_a": change.index_a,
        "index_b": change.index_b,
        "run_id_a": change.run_id_a,
        "run_id_b": change.run_id_b,
        "status_a": change.status_a.value,
        "status_b": change.status_b.value,
        "error_a": change.error_a,
        "error_b": change.error_b,
        "metrics": [
            {
                "name": d.name,
                "kind": d.kind,
                "a": d.a,
                "b": d.b,
                "abs_diff": d.abs_diff,
                "rel_diff": d.rel_diff,
                "changed_elements": d.changed_elements,
            }
            for d in change.metrics
        ],
    }


def _jsonable(value: Any) -> Any:
    """``value`` with non-finite floats spelled as record.py spells them, tuples as lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


# -- the comparison as a compact table for the terminal --------------------------------------------


def render_comparison(comparison: Comparison) -> str:
    """Counts and tolerances, then each changed pair (metric by metric) and each unpaired run."""
    c = comparison
    lines = [
        f"A: {c.runs_a} runs  B: {c.runs_b} runs  unchanged: {c.unchanged}  "
        f"changed: {len(c.changed)}  only in A: {len(c.only_a)}  only in B: {len(c.only_b)}",
        f"tolerance: {_tolerance_text(c.rtol, DEFAULT_RTOL)}, atol {c.atol:g}",
    ]
    if c.identical:
        return "\n".join([*lines, "No run changed beyond tolerance."])
    if c.changed:
        lines += ["", "changed:"]
    for change in c.changed:
        lines += _change_lines(change)
    for title, refs in (("only in A", c.only_a), ("only in B", c.only_b)):
        if refs:
            lines += ["", f"{title}:"]
            lines += [f"  #{r.index}  {_params(r.parameters)}  [{r.status.value}]" for r in refs]
    return "\n".join(lines)


def _change_lines(change: RunChange) -> list[str]:
    same = change.index_a == change.index_b
    index = f"#{change.index_a}" if same else f"#{change.index_a} -> #{change.index_b}"
    status = change.status_a.value
    if change.status_changed:
        status = f"{status} -> {change.status_b.value}"
    lines = [f"  {index}  {_params(change.parameters)}  [{status}]"]
    width = max((len(diff.name) for diff in change.metrics), default=0)
    lines += [f"      {diff.name:<{width}}  {_diff_text(diff)}" for diff in change.metrics]
    if change.error_a != change.error_b:
        lines.append(f"      error: {change.error_a or '-'} -> {change.error_b or '-'}")
    return lines


def _diff_text(diff: MetricDiff) -> str:
    if diff.kind == "only_a":
        return f"{describe(diff.a)} -> (absent)"
    if diff.kind == "only_b":
        return f"(absent) -> {describe(diff.b)}"
    text = f"{describe(diff.a)} -> {describe(diff.b)}"
    if diff.kind == "shape":
        return f"{text} (shape changed)"
    if diff.changed_elements is not None:
        largest = f", max |diff| {diff.abs_diff:.3g}" if diff.abs_diff is not None else ""
        return f"{describe(diff.a)}: {diff.changed_elements} element(s) differ{largest}"
    if diff.abs_diff is not None and is_number(diff.a) and is_number(diff.b):
        delta = f"{diff.b - diff.a:+.3g}"
        if diff.rel_diff is not None:
            delta += f", {(diff.b - diff.a) / abs(diff.a):+.2%}"
        return f"{text}  ({delta})"
    return text


def _params(parameters: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{name}={value if isinstance(value, str) else canonical(value)}"
        for name, value in parameters.items()
    )


def _tolerance_text(rtol: Mapping[str, float] | float, default: float) -> str:
    if not isinstance(rtol, Mapping):
        return f"rtol {rtol:g}"
    named = ", ".join(f"{name} {value:g}" for name, value in rtol.items())
    return f"rtol {named + ', ' if named else ''}others {default:g}"


def describe(value: Any) -> str:
    """A value as the comparison text shows it: strings quoted, arrays by their shape."""
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:59] + "\u2026")
    if is_array(value):
        return format_array(value)
    return format_value(value) if value is not None else "None"
