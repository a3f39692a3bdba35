"""Metric-versus-parameter plots of a batch report, as self-contained SVG data URIs.

One plot per numeric metric and varying parameter. Against a numeric parameter: the runs as
points coloured by status, the mean per parameter value connected by a line; against a
categorical parameter: a strip of points per category, with a box once a category has enough
runs. The acceptance rule of the metric is drawn as a dashed line (``< 80``, ``>= 0.9``) or a band
(``between 1 and 2``).

matplotlib is imported when the first plot is drawn, on a figure of its own with the Agg canvas:
pyplot and its global figure registry are never touched.
"""

from __future__ import annotations

import base64
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smartfab.errors import RunsError
from smartfab.runs.models import RunRecord, RunStatus
from smartfab.runs.report.data import ReportLayout
from smartfab.runs.report.values import canonical, finite_number

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: colour of each status, shared with the HTML (colour-blind safe, from the Okabe-Ito palette)
STATUS_COLOURS: dict[RunStatus, str] = {
    RunStatus.passed: "#009E73",
    RunStatus.failed: "#D55E00",
    RunStatus.error: "#CC79A7",
}
MEAN_COLOUR = "#444444"
RULE_COLOUR = "#0072B2"
#: plots beyond this number are left out (the report says so): a report must stay openable
MAX_PLOTS = 120
#: a category gets a box once it has this many runs; below, its points say more than a box
MIN_BOX = 5

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_COMPARISON = re.compile(rf"^\s*(<=|>=|==|<|>)\s*({_NUMBER})\s*$")
_BETWEEN = re.compile(rf"^\s*between\s+({_NUMBER})\s+and\s+({_NUMBER})\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Plot:
    """One embedded plot: what it shows and the ``data:`` URI of its SVG."""

    metric: str
    parameter: str
    uri: str


def parse_threshold(rule: str) -> tuple[str, float] | None:
    """``("<", 80.0)`` for ``"< 80"``; ``None`` unless the rule is a simple comparison."""
    match = _COMPARISON.match(rule)
    return (match.group(1), float(match.group(2))) if match else None


def parse_between(rule: str) -> tuple[float, float] | None:
    """``(1.0, 2.0)`` for ``"between 1 and 2"``; ``None`` for any other rule."""
    match = _BETWEEN.match(rule)
    if not match:
        return None
    low, high = sorted((float(match.group(1)), float(match.group(2))))
    return low, high


def metric_plots(
    runs: Sequence[RunRecord], layout: ReportLayout, acceptance: Mapping[str, str]
) -> list[Plot]:
    """Every metric-versus-parameter plot of the batch, at most :data:`MAX_PLOTS`."""
    pairs = [(m, p) for m in layout.numeric_metrics for p in layout.varying][:MAX_PLOTS]
    if not pairs:
        return []
    matplotlib = _matplotlib()
    style = {
        "svg.fonttype": "none",  # text stays text: smaller files, selectable labels
        "svg.hashsalt": "smartfab-report",  # same input, same file
        "text.parse_math": False,  # a '$' in a parameter name is not TeX
        "font.size": 8,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
    plots = []
    with matplotlib.rc_context(style):
        for metric, parameter in pairs:
            numeric = parameter in layout.numeric_parameters
            figure = _draw(runs, metric, parameter, numeric, acceptance.get(metric))
            plots.append(Plot(metric, parameter, _svg_uri(figure)))
    return plots


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError as err:  # pragma: no cover - a dependency of smartfab
        raise RunsError("the report plots need matplotlib: pip install matplotlib") from err
    return matplotlib


def _draw(
    runs: Sequence[RunRecord], metric: str, parameter: str, numeric: bool, rule: str | None
) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2, 2.9), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    points = [
        (r.parameters[parameter], y, r.status)
        for r in runs
        if parameter in r.parameters and (y := finite_number(r.metrics.get(metric))) is not None
    ]
    if numeric:
        _numeric_axes(axes, points)
    else:
        _category_axes(axes, points)
    if rule is not None:
        _rule_lines(axes, rule)
    axes.set_xlabel(parameter)
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} vs {parameter}", loc="left")
    axes.grid(axis="y", color="#e5e5e5", linewidth=0.6)
    axes.set_axisbelow(True)
    return figure


def _numeric_axes(axes: Axes, points: list[tuple[Any, float, RunStatus]]) -> None:
    for status, colour in STATUS_COLOURS.items():
        xs = [float(x) for x, _, s in points if s == status]
        ys = [y for _, y, s in points if s == status]
        if xs:
            axes.scatter(xs, ys, s=20, color=colour, alpha=0.85, linewidths=0, zorder=3)
    by_x: dict[float, list[float]] = {}
    for x, y, _ in points:
        by_x.setdefault(float(x), []).append(y)
    xs = sorted(by_x)
    axes.plot(xs, [math.fsum(by_x[x]) / len(by_x[x]) for x in xs], color=MEAN_COLOUR, lw=1.2)
    if len(xs) > 2 and xs[0] > 0 and xs[-1] / xs[0] >= 100:
        axes.set_xscale("log")


def _category_axes(axes: Axes, points: list[tuple[Any, float, RunStatus]]) -> None:
    labels: dict[str, str] = {}
    groups: dict[str, list[tuple[float, RunStatus]]] = {}
    for value, y, status in points:
        key = canonical(value)
        labels.setdefault(key, value if isinstance(value, str) else key)
        groups.setdefault(key, []).append((y, status))
    for position, key in enumerate(labels):
        group = groups[key]
        ys = [y for y, _ in group]
        if len(group) >= MIN_BOX:
            axes.boxplot(
                ys,
                positions=[position],
                widths=0.55,
                showfliers=False,
                medianprops={"color": MEAN_COLOUR},
                boxprops={"color": "#999999"},
                whiskerprops={"color": "#999999"},
                capprops={"color": "#999999"},
            )
        spread = (
            [0.0]
            if len(group) == 1
            else [-0.18 + 0.36 * i / (len(group) - 1) for i in range(len(group))]
        )
        for offset, (y, status) in zip(spread, group, strict=True):
            axes.scatter(
                position + offset,
                y,
                s=20,
                color=STATUS_COLOURS[status],
                alpha=0.85,
                linewidths=0,
                zorder=3,
            )
        axes.plot(
            [position - 0.25, position + 0.25],
            [math.fsum(ys) / len(ys)] * 2,
            color=MEAN_COLOUR,
            lw=1.2,
        )
    names = [_truncate(label) for label in labels.values()]
    axes.set_xticks(
        range(len(names)),
        names,
        rotation=30 if len(names) > 4 else 0,
        ha="right" if len(names) > 4 else "center",
    )
    axes.set_xlim(-0.6, len(names) - 0.4)


def _rule_lines(axes: Axes, rule: str) -> None:
    threshold = parse_threshold(rule)
    if threshold is not None:
        axes.axhline(threshold[1], color=RULE_COLOUR, ls="--", lw=1)
        axes.annotate(
            f"rule {rule.strip()}",
            (1, threshold[1]),
            xycoords=("axes fraction", "data"),
            ha="right",
            va="bottom",
            color=RULE_COLOUR,
            fontsize=7,
        )
        return
    between = parse_between(rule)
    if between is not None:
        axes.axhspan(*between, color=RULE_COLOUR, alpha=0.08, lw=0)
        for edge in between:
            axes.axhline(edge, color=RULE_COLOUR, ls="--", lw=0.8)


def _truncate(label: str, width: int = 18) -> str:
    return label if len(label) <= width else label[: width - 1] + "\u2026"


def _svg_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
