"""What a batch report shows, computed once from the records: summary counts and table layout."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from smartfab.runs.models import RuleResult, RunRecord, RunStatus
from smartfab.runs.report.values import (
    canonical,
    finite_number,
    is_number,
    is_scalar,
    ordered_keys,
)


@dataclass(frozen=True)
class BatchSummary:
    """Counts and times of the runs of one batch.

    Attributes
    ----------
    runs:
        Runs recorded.
    expected:
        Size of the batch's grid (``BatchRecord.runs``): more than ``runs`` while it is incomplete.
    passed, failed, error:
        Runs per status.
    duration_s:
        Sum of the run durations (compute time).
    wall_clock_s:
        From the first start to the last end (``None`` without runs).
    """

    runs: int
    expected: int
    passed: int
    failed: int
    error: int
    duration_s: float
    wall_clock_s: float | None

    @property
    def all_passed(self) -> bool:
        """Every run of the grid was recorded and passed."""
        return self.runs > 0 and self.passed == self.runs and self.runs >= self.expected

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data."""
        return asdict(self)


def summarize(runs: Sequence[RunRecord], expected: int) -> BatchSummary:
    """Count the runs per status and add up their durations."""
    count = {status: 0 for status in RunStatus}
    for run in runs:
        count[run.status] += 1
    wall = None
    if runs:
        wall = max(0.0, (max(r.ended for r in runs) - min(r.started for r in runs)).total_seconds())
    return BatchSummary(
        runs=len(runs),
        expected=expected,
        passed=count[RunStatus.passed],
        failed=count[RunStatus.failed],
        error=count[RunStatus.error],
        duration_s=math.fsum(r.duration_s for r in runs),
        wall_clock_s=wall,
    )


@dataclass(frozen=True)
class ReportLayout:
    """Which parameters and metrics the report shows, in which order.

    Attributes
    ----------
    parameters:
        Every parameter of any run, in order of first appearance.
    varying:
        The parameters that take more than one value in the batch.
    numeric_parameters:
        The varying parameters whose values are all finite numbers (the others are categories).
    metrics:
        Scalar metrics (one table column each), then ruled metrics no run recorded.
    numeric_metrics:
        Metrics whose recorded values are all numbers, at least one of them finite.
    """

    parameters: list[str]
    varying: list[str]
    numeric_parameters: list[str]
    metrics: list[str]
    numeric_metrics: list[str]


def layout_of(runs: Sequence[RunRecord], acceptance: Mapping[str, str]) -> ReportLayout:
    """The columns of the runs table and the axes of the plots."""
    parameters = ordered_keys(r.parameters for r in runs)
    varying = [
        name
        for name in parameters
        if len({(name in r.parameters, canonical(r.parameters.get(name))) for r in runs}) > 1
    ]
    numeric_parameters = [
        name
        for name in varying
        if all(finite_number(r.parameters.get(name)) is not None for r in runs)
    ]
    recorded = ordered_keys(r.metrics for r in runs)
    scalar = [m for m in recorded if any(is_scalar(r.metrics.get(m, [])) for r in runs)]
    ruled = ordered_keys([acceptance, *({rule.metric: None} for r in runs for rule in r.rules)])
    metrics = scalar + [m for m in ruled if m not in scalar]
    numeric_metrics = [m for m in metrics if _numeric_metric(m, runs)]
    return ReportLayout(parameters, varying, numeric_parameters, metrics, numeric_metrics)


def _numeric_metric(name: str, runs: Sequence[RunRecord]) -> bool:
    values = [r.metrics[name] for r in runs if r.metrics.get(name) is not None]
    return (
        bool(values)
        and all(is_number(v) for v in values)
        and any(finite_number(v) is not None for v in values)
    )


def rules_by_metric(run: RunRecord) -> dict[str, list[RuleResult]]:
    """The rule results of one run, per metric."""
    by_metric: dict[str, list[RuleResult]] = {}
    for rule in run.rules:
        by_metric.setdefault(rule.metric, []).append(rule)
    return by_metric


def parameters_text(run: RunRecord, parameters: Sequence[str]) -> str:
    """``feed=0.2, tool=carbide``: the given parameters of a run."""
    return ", ".join(
        f"{name}={_short(run.parameters[name])}" for name in parameters if name in run.parameters
    )


def run_label(run: RunRecord, parameters: Sequence[str]) -> str:
    """``#3 feed=0.2, tool=carbide``: a run named by its index and the given parameters."""
    return f"#{run.index} {parameters_text(run, parameters)}".rstrip()


def _short(value: Any) -> str:
    return value if isinstance(value, str) else canonical(value)
