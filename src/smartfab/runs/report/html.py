"""The HTML page of a batch report: one self-contained file, readable offline, without scripts.

Every user-provided text (names, parameter values, metric strings, exception text) goes through
:func:`html.escape`; images are only embedded as ``data:`` URIs of an allowed image type.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from smartfab.runs.models import BatchRecord, RuleResult, RunRecord
from smartfab.runs.report.data import (
    BatchSummary,
    ReportLayout,
    parameters_text,
    rules_by_metric,
    run_label,
)
from smartfab.runs.report.plots import MAX_PLOTS, RULE_COLOUR, STATUS_COLOURS, Plot
from smartfab.runs.report.style import CSS
from smartfab.runs.report.values import (
    finite_number,
    format_array,
    format_duration,
    format_value,
    is_array,
    is_image,
    is_number,
    strip_ansi,
)

#: image types a browser shows from an ``<img>`` without running anything
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/svg+xml"})


def render_html(
    batch: BatchRecord,
    runs: Sequence[RunRecord],
    *,
    acceptance: Mapping[str, str],
    summary: BatchSummary,
    layout: ReportLayout,
    plots: Sequence[Plot],
    links: Sequence[str | None],
) -> str:
    """The report page; ``links[i]`` is the relative link to the output notebook of ``runs[i]``."""
    body = "\n".join(
        [
            _header(batch, runs, summary),
            _summary(summary),
            _rules(runs, acceptance),
            _runs_table(runs, acceptance, layout, links),
            _errors(runs, layout, links),
            _plots(layout, plots),
            _gallery(runs, layout),
        ]
    )
    title = escape(f"{batch.name}: program test runs")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n"
        '<footer class="muted"><p>smartfab program test runs report</p></footer>\n'
        "</body>\n</html>\n"
    )


def _header(batch: BatchRecord, runs: Sequence[RunRecord], summary: BatchSummary) -> str:
    if summary.all_passed:
        verdict = f'<p class="verdict ok">All {summary.runs} runs passed</p>'
    else:
        problems = []
        if summary.failed:
            problems.append(f"{summary.failed} failed")
        if summary.error:
            problems.append(f"{summary.error} error{'s' if summary.error != 1 else ''}")
        if summary.runs < summary.expected:
            problems.append(f"{summary.expected - summary.runs} of {summary.expected} not recorded")
        text = f"{summary.passed} of {summary.runs} runs passed"
        if problems:
            text += ": " + ", ".join(problems)
        verdict = f'<p class="verdict bad">{escape(text)}</p>'
    notebooks = {f"{r.notebook} (sha256 {r.notebook_sha256[:12]})" for r in runs}
    datasets = {
        f"{d.id} (content {d.fingerprint[:12]}, file sha256 {d.sha256[:12]})"
        if d.fingerprint
        else f"{d.id} (file sha256 {d.sha256[:12]})"
        for r in runs
        for d in r.datasets
    }
    rows = [
        ("batch id", batch.batch_id),
        ("created", batch.created.isoformat(timespec="seconds")),
        ("spec", batch.spec_path),
        ("program", "; ".join(sorted(notebooks))),
        ("kernel", ", ".join(sorted({r.kernel for r in runs}))),
        ("python", ", ".join(sorted({r.environment.python for r in runs}))),
        ("datasets", "; ".join(sorted(datasets))),
    ]
    meta = "".join(f"<dt>{name}</dt><dd>{escape(value)}</dd>" for name, value in rows if value)
    nav = "".join(
        f'<a href="#{anchor}">{name}</a>'
        for anchor, name in [
            ("summary", "Summary"),
            ("rules", "Rules"),
            ("runs", "Runs"),
            ("errors", "Errors"),
            ("plots", "Plots"),
            ("images", "Images"),
        ]
    )
    return (
        f'<header>\n<div class="kicker">Program test runs</div>\n<h1>{escape(batch.name)}</h1>\n'
        f'{verdict}\n<dl class="meta">{meta}</dl>\n<nav>{nav}</nav>\n</header>'
    )


def _summary(summary: BatchSummary) -> str:
    of_expected = f" of {summary.expected}" if summary.runs < summary.expected else ""
    cards = [
        ("", f"{summary.runs}", f"runs{of_expected}"),
        ("passed", f"{summary.passed}", "passed"),
        ("failed", f"{summary.failed}", "failed"),
        ("error", f"{summary.error}", "error"),
        ("", format_duration(summary.duration_s), "total run time"),
    ]
    if summary.wall_clock_s is not None:
        cards.append(("", format_duration(summary.wall_clock_s), "wall clock"))
    html = "".join(
        f'<div class="card {cls}"><b>{escape(value)}</b><span>{escape(label)}</span></div>'
        for cls, value, label in cards
    )
    return _section("summary", "Summary", f'<div class="cards">{html}</div>')


def _rules(runs: Sequence[RunRecord], acceptance: Mapping[str, str]) -> str:
    pairs = dict.fromkeys(
        [*acceptance.items(), *((r.metric, r.rule) for run in runs for r in run.rules)]
    )
    if not pairs:
        return _section("rules", "Acceptance rules", '<p class="none">No acceptance rules.</p>')
    rows = []
    for metric, rule in pairs:
        results = [r for run in runs for r in run.rules if r.metric == metric and r.rule == rule]
        holds = sum(r.ok for r in results)
        missing = sum(not r.ok and r.value is None for r in results)
        breaks = len(results) - holds - missing
        values = [
            number for run in runs if (number := finite_number(run.metrics.get(metric))) is not None
        ]
        span = f"{format_value(min(values))} \u2026 {format_value(max(values))}" if values else ""
        rows.append(
            f"<tr><td><code>{escape(metric)}</code></td><td><code>{escape(rule)}</code></td>"
            f'<td class="num">{holds}</td><td class="num{" bad" if breaks else ""}">{breaks}</td>'
            f'<td class="num{" bad" if missing else ""}">{missing}</td>'
            f'<td class="num">{len(runs) - len(results)}</td>'
            f'<td class="num">{escape(span)}</td></tr>'
        )
    head = "".join(
        f"<th>{name}</th>"
        for name in ("metric", "rule", "holds", "breaks", "missing", "not evaluated", "range")
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return _section("rules", "Acceptance rules", table)


def _runs_table(
    runs: Sequence[RunRecord],
    acceptance: Mapping[str, str],
    layout: ReportLayout,
    links: Sequence[str | None],
) -> str:
    head = ["<th>#</th>", "<th>status</th>"]
    head += [f'<th class="param">{escape(p)}</th>' for p in layout.parameters]
    for metric in layout.metrics:
        rule = acceptance.get(metric)
        ruled = f'<span class="rule">{escape(rule)}</span>' if rule else ""
        head.append(f"<th>{escape(metric)}{ruled}</th>")
    head += ["<th>duration</th>", "<th>run</th>", "<th>notebook</th>"]
    rows = []
    for run, link in zip(runs, links, strict=True):
        status = f'<span class="st st-{run.status.value}">{run.status.value}</span>'
        if run.error is not None:
            status = f'<a href="#error-{run.index}">{status}</a>'
        cells = [f'<td class="num">{run.index}</td>', f"<td>{status}</td>"]
        cells += [_param_cell(run, p) for p in layout.parameters]
        rules = rules_by_metric(run)
        cells += [_metric_cell(run, m, rules.get(m, [])) for m in layout.metrics]
        cells.append(f'<td class="num">{escape(format_duration(run.duration_s))}</td>')
        cells.append(
            f'<td><code title="{escape(run.run_id)}">{escape(run.run_id[:12])}</code></td>'
        )
        notebook = (
            f'<a href="{escape(link)}" title="{escape(run.output_notebook)}">notebook</a>'
            if link
            else ""
        )
        cells.append(f"<td>{notebook}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return _section(
        "runs",
        "Runs",
        '<p class="muted">Parameters on blue; metric cells that break an acceptance rule are '
        "highlighted, ruled cells that hold are green (hover a cell for its rule).</p>\n"
        f'<div class="scroll"><table class="runs"><thead><tr>{"".join(head)}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>",
    )


def _param_cell(run: RunRecord, name: str) -> str:
    if name not in run.parameters:
        return '<td class="param absent">\u2014</td>'
    value = run.parameters[name]
    cls = "param num" if is_number(value) else "param"
    return f'<td class="{cls}">{escape(format_value(value))}</td>'


def _metric_cell(run: RunRecord, name: str, rules: Sequence[RuleResult]) -> str:
    classes: list[str] = []
    notes: list[str] = []
    if name not in run.metrics:
        text, classes = "\u2014", ["absent"]
    else:
        value = run.metrics[name]
        if is_image(value):
            text = "image"
        elif is_array(value):
            text = format_array(value)
        else:
            text = format_value(value)
            if is_number(value):
                classes.append("num")
                if text != repr(value):
                    notes.append(f"value {value!r}")
            elif isinstance(value, str):
                classes.append("text")
    broken = [r.rule for r in rules if not r.ok]
    if broken:
        classes.append("bad")
        rule = f"{name} {' and '.join(broken)}"
        notes.append(f"breaks rule {rule}" if name in run.metrics else f"missing: rule {rule}")
    elif rules:
        classes.append("held")
        notes.append(f"holds {name} {' and '.join(r.rule for r in rules)}")
    cls = f' class="{" ".join(classes)}"' if classes else ""
    title = f' title="{escape("; ".join(notes))}"' if notes else ""
    return f"<td{cls}{title}>{escape(text)}</td>"


def _errors(runs: Sequence[RunRecord], layout: ReportLayout, links: Sequence[str | None]) -> str:
    articles = []
    for run, link in zip(runs, links, strict=True):
        error = run.error
        if error is None:
            continue
        where = f" in cell index {error.cell_index}" if error.cell_index is not None else ""
        message = ": ".join(part for part in (error.ename, error.evalue) if part) or error.kind
        traceback = strip_ansi("\n".join(error.traceback))
        details = (
            f"<details><summary>Traceback</summary><pre>{escape(traceback)}</pre></details>"
            if traceback
            else ""
        )
        notebook = f' <a href="{escape(link)}">output notebook</a>' if link else ""
        articles.append(
            f'<article class="error" id="error-{run.index}">'
            f"<h3>Run #{run.index} "
            f'<span class="muted">{escape(error.kind)}{escape(where)}</span></h3>'
            f"<p>{escape(parameters_text(run, layout.parameters))}{notebook}</p>"
            f'<pre class="evalue">{escape(strip_ansi(message))}</pre>{details}</article>'
        )
    body = "\n".join(articles) or '<p class="none">No run ended in an error.</p>'
    return _section("errors", "Errors", body)


def _plots(layout: ReportLayout, plots: Sequence[Plot]) -> str:
    if not plots:
        reason = (
            "No parameter varies in this batch."
            if not layout.varying
            else "No metric holds numbers."
        )
        return _section("plots", "Metrics against parameters", f'<p class="none">{reason}</p>')
    legend = "".join(
        f'<span><i class="swatch" style="background:{colour}"></i>{status.value}</span>'
        for status, colour in STATUS_COLOURS.items()
    )
    legend += '<span><i class="swatch line" style="background:#444"></i>mean per value</span>'
    legend += (
        f'<span><i class="swatch dashed" style="border-color:{RULE_COLOUR}"></i>'
        "acceptance rule</span>"
    )
    groups: dict[str, list[Plot]] = {}
    for plot in plots:
        groups.setdefault(plot.metric, []).append(plot)
    parts = []
    for metric, group in groups.items():
        figures = "".join(
            f'<figure><img src="{plot.uri}" alt="{escape(f"{metric} against {plot.parameter}")}"'
            f' title="{escape(f"{metric} against {plot.parameter}")}"></figure>'
            for plot in group
        )
        parts.append(f'<h3><code>{escape(metric)}</code></h3>\n<div class="plots">{figures}</div>')
    total = len(layout.numeric_metrics) * len(layout.varying)
    note = (
        f'<p class="muted">Showing the first {MAX_PLOTS} of {total} plots.</p>'
        if total > len(plots)
        else ""
    )
    body = f'<div class="legend">{legend}</div>{note}\n' + "\n".join(parts)
    return _section("plots", "Metrics against parameters", body)


def _gallery(runs: Sequence[RunRecord], layout: ReportLayout) -> str:
    parts = []
    for run in runs:
        images = {name: value for name, value in run.metrics.items() if is_image(value)}
        if not images:
            continue
        figures = "".join(
            f"<figure>{_image(value, name)}<figcaption>{escape(name)}</figcaption></figure>"
            for name, value in images.items()
        )
        label = (
            f"{run_label(run, layout.varying)} \u00b7 {run.status.value} \u00b7 {len(images)} image"
        )
        label += "s" if len(images) != 1 else ""
        parts.append(
            f'<details class="run"><summary>{escape(label)}</summary>'
            f'<div class="gallery">{figures}</div></details>'
        )
    body = "\n".join(parts) or '<p class="none">No run recorded an image.</p>'
    return _section("images", "Recorded images", body)


def _image(value: Mapping[str, Any], name: str) -> str:
    mimetype = value.get("mimetype")
    data = value.get("data")
    if mimetype not in IMAGE_TYPES or not isinstance(data, str):
        return f'<p class="none">{escape(str(mimetype))}: not shown</p>'
    data = "".join(data.split())  # notebooks may wrap base64 in lines
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return '<p class="none">damaged image data: not shown</p>'
    return f'<img src="data:{mimetype};base64,{data}" alt="{escape(name)}" loading="lazy">'


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}">\n<h2>{title}</h2>\n{body}\n</section>'
