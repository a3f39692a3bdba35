"""The batch report (HTML, CSV, JSON) and the comparison of two batches, on records built here."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import math
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from smartfab.errors import RunsError
from smartfab.runs.models import (
    BatchRecord,
    DatasetUse,
    Environment,
    RuleResult,
    RunError,
    RunRecord,
    RunStatus,
)
from smartfab.runs.report import files as report_module
from smartfab.runs.report.compare import compare_batches
from smartfab.runs.report.files import ReportFiles, write_report
from smartfab.runs.report.plots import parse_between, parse_threshold

#: a real 1x1 PNG
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwAD"
    "hgGAWjR9awAAAABJRU5ErkJggg=="
)
IMAGE = {"kind": "image", "mimetype": "image/png", "data": PNG}
SCRIPT = "<script>alert(1)</script>"
HOSTILE_TOOL = 'hss "M2" <img src=x onerror=alert(2)>'
ACCEPTANCE = {"rmse_um": "< 80", "r2": ">= 0.9"}
CHECKS: dict[str, Callable[[float], bool]] = {
    "< 80": lambda v: v < 80,
    ">= 0.9": lambda v: v >= 0.9,
}
START = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)
ENVIRONMENT = Environment(python="3.11.2", platform="linux-x86_64", packages={"numpy": "2.4.6"})
TRACEBACK = [
    "\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
    "\x1b[0;31mZeroDivisionError\x1b[0m  Traceback (most recent call last)",
    "Cell \x1b[0;32mIn[6], line 2\x1b[0m\n  1 wear = model.fit(<module>)\n----> 2 1 / 0",
]


def make_run(
    index: int,
    parameters: dict[str, Any],
    metrics: dict[str, Any],
    *,
    acceptance: dict[str, str] | None = None,
    error: RunError | None = None,
    status: RunStatus | None = None,
    batch_id: str = "toolwear-a1b2",
    output_notebook: str | None = None,
) -> RunRecord:
    """A stored run; its rules and status follow from ``acceptance`` unless given."""
    rules = []
    for metric, rule in (ACCEPTANCE if acceptance is None else acceptance).items():
        value = metrics.get(metric)
        ok = value is not None and CHECKS[rule](value)
        rules.append(RuleResult(metric=metric, rule=rule, value=value, ok=ok))
    if status is None:
        status = (
            RunStatus.error
            if error
            else RunStatus.passed
            if all(r.ok for r in rules)
            else RunStatus.failed
        )
    run_id = hashlib.sha256(f"{batch_id}/{index}/{parameters}".encode()).hexdigest()
    return RunRecord(
        run_id=run_id,
        input_key=run_id[::-1],
        batch_id=batch_id,
        index=index,
        parameters=parameters,
        notebook="/srv/programs/tool-wear.ipynb",
        notebook_sha256="ab" * 32,
        kernel="python3",
        environment=ENVIRONMENT,
        datasets=[DatasetUse(id="nasa-milling", sha256="cd" * 32)],
        metrics=metrics,
        rules=rules,
        status=status,
        error=error,
        started=START + timedelta(seconds=10 * index),
        ended=START + timedelta(seconds=10 * index + 2.5),
        duration_s=2.5,
        attempts=1,
        host="node-1",
        output_notebook=output_notebook or f"runs/{run_id[:2]}/{run_id}.ipynb",
    )


def params(feed: float, tool: str) -> dict[str, Any]:
    return {"feed": feed, "tool": tool, "seed": 7}


@pytest.fixture
def sf_batch() -> BatchRecord:
    """A batch of six runs, of which a name needs escaping."""
    return BatchRecord(
        batch_id="toolwear-a1b2",
        name="Tool wear <v2> & more",
        spec_path="programs/tool-wear/batch.yaml",
        spec={"acceptance": ACCEPTANCE},
        created=START,
        runs=6,
    )


@pytest.fixture
def sf_runs() -> list[RunRecord]:
    """Three passed, two failed (one per rule), one error; one metric string is a script."""
    error = RunError(
        kind="exception",
        cell_index=5,
        ename="ZeroDivisionError",
        evalue="division by zero <&>",
        traceback=TRACEBACK,
    )
    runs = [
        make_run(0, params(0.1, "carbide"), _metrics(50.0, 0.95)),
        make_run(1, params(0.2, "carbide"), _metrics(70.0, 0.93)),
        make_run(2, params(0.3, "carbide"), _metrics(95.5, 0.91)),
        make_run(3, params(0.1, HOSTILE_TOOL), _metrics(60.0, 0.85, note=SCRIPT)),
        make_run(4, params(0.2, HOSTILE_TOOL), {}, error=error),
        make_run(5, params(0.3, HOSTILE_TOOL), _metrics(75.0, 0.97)),
    ]
    return runs[::-1]  # the report orders by index


def _metrics(rmse: float, r2: float, note: str = "fit ok") -> dict[str, Any]:
    return {
        "rmse_um": rmse,
        "r2": r2,
        "converged": True,
        "note": note,
        "residuals": [[0.1, -0.2], [0.05, 0.0]],
        "fit_plot": IMAGE,
    }


@pytest.fixture
def sf_report(
    tmp_path: Path, sf_batch: BatchRecord, sf_runs: list[RunRecord]
) -> tuple[ReportFiles, Path]:
    """The report of the batch, written inside the run store; returns the files and the store."""
    store = tmp_path / "store"
    out = store / "batches" / sf_batch.batch_id / "report"
    files = write_report(sf_batch, sf_runs, out, acceptance=ACCEPTANCE, store_root=store)
    return files, store


class Page(HTMLParser):
    """The tags of a page, and the cells of its runs table."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.rows: list[list[tuple[dict[str, str], str]]] = []
        self.ids: set[str] = set()
        self._table = 0
        self._in_runs = False
        self._cell: dict[str, str] | None = None
        self._text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.tags.append((tag, attributes))
        if "id" in attributes:
            self.ids.add(attributes["id"])
        if tag == "table" and "runs" in attributes.get("class", "").split():
            self._in_runs = True
        if self._in_runs and tag == "tr":
            self.rows.append([])
        if self._in_runs and tag in ("td", "th"):
            self._cell, self._text = attributes, []

    def handle_endtag(self, tag: str) -> None:
        if self._in_runs and tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append((self._cell, "".join(self._text).strip()))
            self._cell = None
        if tag == "table":
            self._in_runs = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._text.append(data)

    def cells(self, index: int) -> dict[str, tuple[dict[str, str], str]]:
        """The cells of the run with grid index ``index``, by column header."""
        header = [text.split("\n")[0] for _, text in self.rows[0]]
        row = next(r for r in self.rows[1:] if r[0][1] == str(index))
        return dict(zip(header, row, strict=True))


def _column_names(page: Page) -> list[str]:
    return [text for _, text in page.rows[0]]


# --- the page ---------------------------------------------------------------------------------


def test_report_files_are_the_three_files(sf_report: tuple[ReportFiles, Path]) -> None:
    files, store = sf_report
    out = store / "batches" / "toolwear-a1b2" / "report"
    assert files == ReportFiles(out / "report.html", out / "runs.csv", out / "runs.json")
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "runs.csv", "runs.json"]


def test_page_shows_the_batch_summary_and_rules(sf_report: tuple[ReportFiles, Path]) -> None:
    html = sf_report[0].html.read_text()
    assert "Tool wear &lt;v2&gt; &amp; more" in html
    for text in ("toolwear-a1b2", "programs/tool-wear/batch.yaml", "2025-03-04T09:30:00+00:00"):
        assert text in html
    assert "3 of 6 runs passed: 2 failed, 1 error" in html
    assert "<b>15 s</b><span>total run time</span>" in html  # 6 runs of 2.5 s
    page = Page(html)
    assert {"summary", "rules", "runs", "errors", "plots", "images"} <= page.ids
    assert "&lt; 80" in html and "&gt;= 0.9" in html


def test_page_lists_every_run_with_parameters_and_scalar_metrics(
    sf_report: tuple[ReportFiles, Path], sf_runs: list[RunRecord]
) -> None:
    page = Page(sf_report[0].html.read_text())
    columns = _column_names(page)
    assert columns[:5] == ["#", "status", "feed", "tool", "seed"]
    # ruled metrics show their rule under the name; arrays and images have no column
    assert [c.split("\n")[0] for c in columns[5:9]] == [
        "rmse_um< 80",
        "r2>= 0.9",
        "converged",
        "note",
    ]
    assert columns[9:] == ["duration", "run", "notebook"]
    assert [row[0][1] for row in page.rows[1:]] == ["0", "1", "2", "3", "4", "5"]
    for run in sf_runs:
        cells = page.cells(run.index)
        assert cells["status"][1] == run.status.value
        assert cells["run"][1] == run.run_id[:12]
        assert cells["feed"][1] == str(run.parameters["feed"])
        assert cells["tool"][1] == run.parameters["tool"]
    assert page.cells(2)["rmse_um< 80"][1] == "95.5"
    assert page.cells(4)["rmse_um< 80"][1] == "\u2014"


def test_page_highlights_metrics_that_break_a_rule(sf_report: tuple[ReportFiles, Path]) -> None:
    page = Page(sf_report[0].html.read_text())
    bad = {
        (row[0][1], i)
        for row in page.rows[1:]
        for i, (attrs, _) in enumerate(row)
        if "bad" in attrs.get("class", "").split()
    }
    rmse, r2 = 5, 6
    assert bad == {("2", rmse), ("3", r2), ("4", rmse), ("4", r2)}
    attrs, text = page.cells(2)["rmse_um< 80"]
    assert text == "95.5" and "breaks rule rmse_um < 80" in attrs["title"]
    assert "missing" in page.cells(4)["r2>= 0.9"][0]["title"]
    held = page.cells(0)["rmse_um< 80"][0]
    assert "held" in held["class"] and "holds rmse_um < 80" in held["title"]


def test_page_has_an_error_section_with_a_collapsible_traceback(
    sf_report: tuple[ReportFiles, Path],
) -> None:
    html = sf_report[0].html.read_text()
    section = html[html.index('<section id="errors">') : html.index('<section id="plots">')]
    assert 'id="error-4"' in section
    assert "exception in cell index 5" in section
    assert "ZeroDivisionError: division by zero &lt;&amp;&gt;" in section
    assert "feed=0.2" in section and "hss &quot;M2&quot; &lt;img" in section
    assert "<details><summary>Traceback</summary><pre>" in section
    assert "wear = model.fit(&lt;module&gt;)" in section
    assert "\x1b" not in html  # colour codes of the traceback are gone
    assert 'href="#error-4"' in html  # the status of the run links to its error
    assert section.count("<article") == 1


def test_page_embeds_a_plot_per_numeric_metric_and_varying_parameter(
    sf_report: tuple[ReportFiles, Path],
) -> None:
    page = Page(sf_report[0].html.read_text())
    plots = [a for tag, a in page.tags if tag == "img" and a["src"].startswith("data:image/svg")]
    # numeric metrics rmse_um, r2 x varying parameters feed (numeric), tool (categories)
    assert sorted(a["alt"] for a in plots) == sorted(
        f"{m} against {p}" for m in ("rmse_um", "r2") for p in ("feed", "tool")
    )
    svg = base64.b64decode(plots[0]["src"].split(",", 1)[1]).decode()
    assert "<svg" in svg and "rmse_um vs feed" in svg
    assert "rule &lt; 80" in svg  # the threshold of the rule is drawn and labelled


def test_page_shows_recorded_images_in_a_gallery(sf_report: tuple[ReportFiles, Path]) -> None:
    html = sf_report[0].html.read_text()
    gallery = html[html.index('<section id="images">') :]
    assert gallery.count('<details class="run">') == 5  # the errored run recorded nothing
    assert gallery.count(f'src="data:image/png;base64,{PNG}"') == 5


def test_page_needs_no_external_resource(sf_report: tuple[ReportFiles, Path]) -> None:
    html = sf_report[0].html.read_text()
    for pattern in (
        r'src="https?:',
        r'href="https?:',
        r"<link\b",
        r"<script\b",
        r"url\(",
        r"@import",
    ):
        assert not re.search(pattern, html, re.IGNORECASE), pattern
    page = Page(html)
    for tag, attributes in page.tags:
        assert "src" not in attributes or attributes["src"].startswith("data:image/"), tag
        href = attributes.get("href", "")
        assert "://" not in href and not href.startswith("//"), href


def test_page_escapes_every_user_provided_text(sf_report: tuple[ReportFiles, Path]) -> None:
    html = sf_report[0].html.read_text()
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<v2>" not in html and "onerror=alert(2)>" not in html
    page = Page(html)
    assert not [a for tag, a in page.tags if tag == "script" or "onerror" in a]
    assert page.cells(3)["note"][1] == SCRIPT  # shown as text
    assert page.cells(3)["tool"][1] == HOSTILE_TOOL


def test_page_links_output_notebooks_relative_to_the_report(
    tmp_path: Path, sf_batch: BatchRecord
) -> None:
    store = tmp_path / "store"
    run = make_run(0, params(0.1, "carbide"), _metrics(1, 1), output_notebook="runs/a b/0.ipynb")
    for out, expected in [
        (store / "batches" / "x" / "report", "../../../runs/a%20b/0.ipynb"),
        (tmp_path / "elsewhere", "../store/runs/a%20b/0.ipynb"),
    ]:
        files = write_report(sf_batch, [run], out, acceptance=ACCEPTANCE, store_root=store)
        page = Page(files.html.read_text())
        assert page.cells(0)["notebook"][0] == {}
        links = [a["href"] for tag, a in page.tags if tag == "a" and a.get("href", "")[:1] != "#"]
        assert links == [expected]
        target = (out / expected.replace("%20", " ")).resolve()
        assert target == (store / "runs" / "a b" / "0.ipynb").resolve()


def test_report_of_a_batch_without_runs_or_varying_parameters(
    tmp_path: Path, sf_batch: BatchRecord
) -> None:
    empty = write_report(sf_batch, [], tmp_path / "empty", acceptance={}, store_root=tmp_path)
    html = empty.html.read_text()
    assert "0 of 0 runs passed" in html and "No parameter varies" in html
    assert json.loads(empty.json.read_text())["runs"] == []
    one = make_run(0, params(0.1, "carbide"), _metrics(50, 0.95))
    files = write_report(
        sf_batch, [one], tmp_path / "one", acceptance=ACCEPTANCE, store_root=tmp_path
    )
    assert "data:image/svg" not in files.html.read_text()


# --- CSV and JSON -----------------------------------------------------------------------------


def test_csv_has_one_row_per_run_with_parameter_and_metric_columns(
    sf_report: tuple[ReportFiles, Path], sf_runs: list[RunRecord]
) -> None:
    with sf_report[0].csv.open(newline="") as file:
        reader = csv.DictReader(file)
        rows = list(reader)
        assert reader.fieldnames == [
            "index", "run_id", "status", "duration_s",
            "param.feed", "param.tool", "param.seed",
            "metric.rmse_um", "metric.r2", "metric.converged", "metric.note",
            "error_kind", "error",
        ]  # fmt: skip
    by_id = {run.run_id: run for run in sf_runs}
    assert [row["index"] for row in rows] == ["0", "1", "2", "3", "4", "5"]
    for row in rows:
        run = by_id[row["run_id"]]
        assert row["status"] == run.status.value and float(row["duration_s"]) == 2.5
        assert float(row["param.feed"]) == run.parameters["feed"]
        assert row["param.tool"] == run.parameters["tool"]
    assert rows[2]["metric.rmse_um"] == "95.5" and rows[2]["status"] == "failed"
    assert rows[3]["metric.note"] == SCRIPT and rows[3]["metric.converged"] == "true"
    assert rows[4]["metric.rmse_um"] == "" and rows[4]["error_kind"] == "exception"
    assert rows[4]["error"] == "ZeroDivisionError: division by zero <&>"
    assert rows[0]["error_kind"] == rows[0]["error"] == ""


def test_json_is_loadable_and_consistent_with_the_runs(
    sf_report: tuple[ReportFiles, Path], sf_batch: BatchRecord, sf_runs: list[RunRecord]
) -> None:
    document = json.loads(sf_report[0].json.read_text())
    assert BatchRecord.model_validate(document["batch"]) == sf_batch
    assert document["summary"] == {
        "runs": 6, "expected": 6, "passed": 3, "failed": 2, "error": 1,
        "duration_s": 15.0, "wall_clock_s": 52.5,
    }  # fmt: skip
    assert document["acceptance"] == ACCEPTANCE
    stored = [RunRecord.model_validate(run) for run in document["runs"]]
    assert [run.index for run in stored] == [0, 1, 2, 3, 4, 5]
    originals = {run.run_id: run for run in sf_runs}
    digest = hashlib.sha256(base64.b64decode(PNG)).hexdigest()
    for run in stored:
        original = originals[run.run_id]
        if "fit_plot" in original.metrics:
            assert run.metrics["fit_plot"] == {
                "kind": "image", "mimetype": "image/png", "sha256": digest, "bytes": 70,
            }  # fmt: skip
        metrics = {k: v for k, v in original.metrics.items() if k != "fit_plot"}
        assert run.model_copy(update={"metrics": metrics}) == original.model_copy(
            update={"metrics": metrics}
        )


# --- atomic writes ----------------------------------------------------------------------------


def test_rewriting_a_report_leaves_no_temporary_file(
    tmp_path: Path, sf_batch: BatchRecord, sf_runs: list[RunRecord]
) -> None:
    out = tmp_path / "report"
    for _ in range(2):
        write_report(sf_batch, sf_runs, out, acceptance=ACCEPTANCE, store_root=tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "runs.csv", "runs.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "report.html").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_crash_while_writing_keeps_the_previous_file(
    tmp_path: Path,
    sf_batch: BatchRecord,
    sf_runs: list[RunRecord],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.html").write_text("previous report")
    real_replace = os.replace

    def crash_on_html(src: Any, dst: Any) -> None:
        if Path(dst).name == "report.html":
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(report_module.os, "replace", crash_on_html)
    with pytest.raises(RunsError, match="No space left on device"):
        write_report(sf_batch, sf_runs, out, acceptance=ACCEPTANCE, store_root=tmp_path)
    assert (out / "report.html").read_text() == "previous report"
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "runs.csv", "runs.json"]


def test_an_interrupted_write_removes_its_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(report_module.os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        report_module.write_atomic(tmp_path / "runs.json", b"{}")
    assert list(tmp_path.iterdir()) == []


# --- rules drawn in the plots -----------------------------------------------------------------


def test_simple_rules_give_a_threshold_and_between_a_band() -> None:
    assert parse_threshold("< 80") == ("<", 80.0)
    assert parse_threshold(" >= -1.5e-3 ") == (">=", -0.0015)
    assert parse_threshold("between 1 and 2") is None
    assert parse_threshold("abs < 3") is None
    assert parse_between("between 2 and 1") == (1.0, 2.0)
    assert parse_between("< 2") is None


# --- comparison -------------------------------------------------------------------------------


def pair(
    metrics_a: dict[str, Any],
    metrics_b: dict[str, Any],
    *,
    status_b: RunStatus | None = None,
) -> tuple[list[RunRecord], list[RunRecord]]:
    """One run in A and its partner in B (same parameters), without rules."""
    a = make_run(0, params(0.1, "carbide"), metrics_a, acceptance={}, batch_id="a")
    b = make_run(0, params(0.1, "carbide"), metrics_b, acceptance={}, batch_id="b", status=status_b)
    return [a], [b]


def test_numbers_within_tolerance_are_unchanged() -> None:
    comparison = compare_batches(*pair({"rmse_um": 50.0}, {"rmse_um": 50.0 + 1e-12}))
    assert comparison.changed == [] and comparison.unchanged == 1 and comparison.identical
    loose = compare_batches(*pair({"rmse_um": 50.0}, {"rmse_um": 50.1}), atol=0.2)
    assert loose.unchanged == 1


def test_numbers_beyond_tolerance_are_listed_with_their_differences() -> None:
    comparison = compare_batches(*pair({"rmse_um": 50.0, "r2": 0.9}, {"rmse_um": 51.0, "r2": 0.9}))
    assert comparison.unchanged == 0
    (change,) = comparison.changed
    (diff,) = change.metrics
    assert (diff.name, diff.a, diff.b, diff.kind) == ("rmse_um", 50.0, 51.0, "value")
    assert diff.abs_diff == pytest.approx(1.0) and diff.rel_diff == pytest.approx(0.02)
    assert change.parameters == params(0.1, "carbide") and not change.status_changed


def test_a_per_metric_rtol_falls_back_to_the_default_for_other_metrics() -> None:
    a, b = pair({"rmse_um": 50.0, "r2": 0.95}, {"rmse_um": 50.4, "r2": 0.9500001})
    comparison = compare_batches(a, b, rtol={"rmse_um": 0.01})
    assert [d.name for d in comparison.changed[0].metrics] == ["r2"]
    strict = compare_batches(a, b, rtol={"rmse_um": 0.001})
    assert [d.name for d in strict.changed[0].metrics] == ["rmse_um", "r2"]
    assert compare_batches(a, b, rtol=0.01).identical
    tiny = compare_batches(*pair({"r2": 0.95}, {"r2": 0.95 + 1e-12}), rtol={"rmse_um": 0.0})
    assert tiny.identical  # r2 falls back to rtol 1e-9, not to 0


def test_a_status_change_is_a_change_even_with_equal_metrics() -> None:
    comparison = compare_batches(
        *pair({"rmse_um": 50.0}, {"rmse_um": 50.0}, status_b=RunStatus.failed)
    )
    (change,) = comparison.changed
    assert (change.status_a, change.status_b) == (RunStatus.passed, RunStatus.failed)
    assert change.status_changed and change.metrics == []


def test_another_exception_is_a_change_between_two_errors() -> None:
    def errored(batch_id: str, ename: str) -> list[RunRecord]:
        error = RunError(kind="exception", cell_index=3, ename=ename, evalue="at 0x7f")
        return [
            make_run(0, params(0.1, "carbide"), {}, acceptance={}, error=error, batch_id=batch_id)
        ]

    assert compare_batches(errored("a", "KeyError"), errored("b", "KeyError")).identical
    comparison = compare_batches(errored("a", "KeyError"), errored("b", "MemoryError"))
    (change,) = comparison.changed
    assert not change.status_changed and change.metrics == []
    assert change.error_b == "exception: MemoryError: at 0x7f"
    assert (
        "error: exception: KeyError: at 0x7f -> exception: MemoryError" in comparison.render_text()
    )


def test_runs_pair_by_parameters_and_the_rest_is_only_in_a_or_b() -> None:
    a = [
        make_run(i, params(f, "carbide"), {"rmse_um": 1.0}, batch_id="a")
        for i, f in enumerate((0.1, 0.2, 0.3))
    ]
    b = [
        make_run(0, params(0.3, "carbide"), {"rmse_um": 1.0}, batch_id="b"),
        make_run(1, params(0.1, "carbide"), {"rmse_um": 2.0}, batch_id="b"),
        make_run(2, params(0.4, "carbide"), {"rmse_um": 1.0}, batch_id="b"),
    ]
    comparison = compare_batches(a, b)
    assert comparison.unchanged == 1  # feed 0.3
    (change,) = comparison.changed
    assert change.parameters["feed"] == 0.1 and (change.index_a, change.index_b) == (0, 1)
    assert [ref.parameters["feed"] for ref in comparison.only_a] == [0.2]
    assert [ref.parameters["feed"] for ref in comparison.only_b] == [0.4]
    assert (comparison.runs_a, comparison.runs_b) == (3, 3)


def test_runs_with_the_same_parameters_pair_in_grid_order() -> None:
    a = [make_run(i, params(0.1, "carbide"), {"x": float(i)}, batch_id="a") for i in range(2)]
    b = [make_run(i, params(0.1, "carbide"), {"x": float(i)}, batch_id="b") for i in range(3)]
    comparison = compare_batches(a, b[::-1])
    assert comparison.unchanged == 2 and [ref.index for ref in comparison.only_b] == [2]


def test_metrics_present_in_only_one_batch() -> None:
    comparison = compare_batches(*pair({"rmse_um": 1.0, "old": 2.0}, {"rmse_um": 1.0, "new": "x"}))
    diffs = {d.name: d for d in comparison.changed[0].metrics}
    assert (diffs["old"].kind, diffs["old"].a, diffs["old"].b) == ("only_a", 2.0, None)
    assert (diffs["new"].kind, diffs["new"].b) == ("only_b", "x")


def test_arrays_compare_element_wise_and_by_shape() -> None:
    base = [[1.0, 2.0], [3.0, math.nan]]
    assert compare_batches(
        *pair({"r": base}, {"r": [[1.0, 2.0 + 1e-12], [3.0, math.nan]]})
    ).identical
    (diff,) = (
        compare_batches(*pair({"r": base}, {"r": [[1.0, 2.5], [3.0, math.nan]]})).changed[0].metrics
    )
    assert diff.changed_elements == 1 and diff.abs_diff == pytest.approx(0.5)
    assert diff.rel_diff == pytest.approx(0.25)
    within = compare_batches(
        *pair({"r": base}, {"r": [[1.0, 2.5], [3.0, math.nan]]}), rtol={"r": 0.3}
    )
    assert within.identical
    (shape,) = compare_batches(*pair({"r": [1.0, 2.0]}, {"r": [1.0, 2.0, 3.0]})).changed[0].metrics
    assert shape.kind == "shape"


def test_strings_and_booleans_compare_by_equality_and_images_are_ignored() -> None:
    other_image = {**IMAGE, "data": base64.b64encode(b"other").decode()}
    a = {"note": "ok", "converged": True, "fit_plot": IMAGE, "empty": None, "lost": math.nan}
    assert compare_batches(*pair(a, {**a, "fit_plot": other_image, "lost": None})).identical
    comparison = compare_batches(*pair(a, {**a, "note": "ok ", "converged": False}))
    assert [(d.name, d.a, d.b) for d in comparison.changed[0].metrics] == [
        ("note", "ok", "ok "),
        ("converged", True, False),
    ]
    (typed,) = compare_batches(*pair({"converged": True}, {"converged": 1})).changed[0].metrics
    assert typed.kind == "type"


def test_comparison_json_and_text(sf_runs: list[RunRecord]) -> None:
    by_index = {run.index: run for run in sf_runs}
    del by_index[5]
    by_index[1] = by_index[1].model_copy(
        update={"metrics": {**by_index[1].metrics, "rmse_um": 85.0}, "status": RunStatus.failed}
    )
    by_index[3] = by_index[3].model_copy(
        update={"metrics": {**by_index[3].metrics, "r2": math.inf}}
    )
    runs_b = list(by_index.values())
    comparison = compare_batches(sf_runs, runs_b)
    document = json.loads(comparison.to_json())
    assert document["unchanged"] == 3 and [c["index_a"] for c in document["changed"]] == [1, 3]
    assert document["changed"][1]["metrics"][0]["b"] == "Infinity"
    assert [r["parameters"]["feed"] for r in document["only_a"]] == [0.3]
    text = comparison.render_text()
    assert "changed: 2" in text and "only in A: 1" in text
    assert (
        "#1  feed=0.1" not in text
        and "#1  feed=0.2, tool=carbide, seed=7  [passed -> failed]" in text
    )
    assert "rmse_um  70 -> 85  (+15, +21.43%)" in text
    assert "#3  feed=0.1" in text and "r2  0.85 -> inf" in text
    assert "#5  feed=0.3" in text
    assert "No run changed" in compare_batches(sf_runs, sf_runs).render_text()
