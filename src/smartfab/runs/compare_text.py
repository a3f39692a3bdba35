"""The comparison of two batches as a compact table for the terminal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from smartfab.runs.report_values import canonical, format_array, format_value, is_array, is_number

if TYPE_CHECKING:
    from smartfab.runs.compare import Comparison, MetricDiff, RunChange


def render_comparison(comparison: Comparison) -> str:
    """Counts and tolerances, then each changed pair (metric by metric) and each unpaired run."""
    from smartfab.runs.compare import DEFAULT_RTOL

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
