"""The report of one batch: ``report.html`` for people, ``runs.csv`` and ``runs.json`` for tools.

The page is one self-contained file (styles inline, plots and images as ``data:`` URIs, no
script) so it can be mailed, archived next to the run store or opened offline. Every file is
written to a temporary name in the output folder and moved into place with :func:`os.replace`:
a crash never leaves a half-written report under its final name.

See Also
--------
smartfab.runs.report.compare.compare_batches : what changed between two batches of the same program.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartfab.atomicfile import write_atomic
from smartfab.errors import RunsError
from smartfab.runs.models import BatchRecord, RunRecord
from smartfab.runs.report.data import BatchSummary, ReportLayout, layout_of, summarize
from smartfab.runs.report.html import render_html
from smartfab.runs.report.plots import metric_plots
from smartfab.runs.report.values import canonical, is_image, strip_ansi

REPORT_HTML = "report.html"
RUNS_CSV = "runs.csv"
RUNS_JSON = "runs.json"


@dataclass(frozen=True)
class ReportFiles:
    """The three files of a batch report."""

    html: Path
    csv: Path
    json: Path


def write_report(
    batch: BatchRecord,
    runs: list[RunRecord],
    out_dir: Path,
    *,
    acceptance: dict[str, str],
    store_root: Path,
) -> ReportFiles:
    """Write the report of ``batch`` into ``out_dir`` (created if needed).

    Parameters
    ----------
    batch:
        The batch the runs belong to.
    runs:
        Its recorded runs, in any order (the report lists them by grid index).
    out_dir:
        Folder of ``report.html``, ``runs.csv`` and ``runs.json``; existing files are replaced.
    acceptance:
        The acceptance rules of the batch spec, metric name to rule (``{"rmse_um": "< 80"}``).
    store_root:
        Root of the run store: ``RunRecord.output_notebook`` is relative to it. The page links
        to the output notebooks relative to ``out_dir``.

    Returns
    -------
    ReportFiles
        The paths of the three files.

    Raises
    ------
    RunsError
        When ``out_dir`` cannot be created or written.
    """
    ordered = sorted(runs, key=lambda run: run.index)
    summary = summarize(ordered, batch.runs)
    layout = layout_of(ordered, acceptance)
    links = [notebook_link(run, store_root, out_dir) for run in ordered]
    page = render_html(
        batch,
        ordered,
        acceptance=acceptance,
        summary=summary,
        layout=layout,
        plots=metric_plots(ordered, layout, acceptance),
        links=links,
    )
    files = ReportFiles(out_dir / REPORT_HTML, out_dir / RUNS_CSV, out_dir / RUNS_JSON)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(files.json, runs_json(batch, ordered, summary, acceptance).encode())
        write_atomic(files.csv, runs_csv(ordered, layout).encode())
        write_atomic(files.html, page.encode())
    except OSError as err:
        raise RunsError(
            f"cannot write the report of batch {batch.batch_id} into {out_dir}: {err}"
        ) from err
    return files


def notebook_link(run: RunRecord, store_root: Path, out_dir: Path) -> str | None:
    """The URL of the run's output notebook relative to ``out_dir`` (``None`` without one)."""
    if not run.output_notebook:
        return None
    target = os.path.abspath(store_root / run.output_notebook)
    relative = os.path.relpath(target, os.path.abspath(out_dir))
    return urllib.parse.quote(Path(relative).as_posix())


def runs_csv(runs: Sequence[RunRecord], layout: ReportLayout) -> str:
    """One row per run: index, run_id, status, duration_s, ``param.*``, ``metric.*``, error."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        ["index", "run_id", "status", "duration_s"]
        + [f"param.{name}" for name in layout.parameters]
        + [f"metric.{name}" for name in layout.metrics]
        + ["error_kind", "error"]
    )
    for run in runs:
        error = run.error
        message = ": ".join(p for p in (error.ename, error.evalue) if p) if error else ""
        writer.writerow(
            [run.index, run.run_id, run.status.value, repr(run.duration_s)]
            + [_csv_value(run.parameters.get(name)) for name in layout.parameters]
            + [_csv_value(run.metrics.get(name)) for name in layout.metrics]
            + [error.kind if error else "", strip_ansi(message)]
        )
    return buffer.getvalue()


def _csv_value(value: Any) -> str:
    if value is None or is_image(value):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back to the same float
    if isinstance(value, int | str):
        return str(value)
    return canonical(value)


def runs_json(
    batch: BatchRecord,
    runs: Sequence[RunRecord],
    summary: BatchSummary,
    acceptance: Mapping[str, str],
) -> str:
    """``{"batch", "summary", "acceptance", "runs"}``; each run as ``RunRecord.model_dump``.

    Image metrics keep their kind and mimetype, with the ``sha256`` and size of the image instead
    of its data (the images are in the page and in the output notebooks). NaN and infinities are
    written as ``null``, as pydantic does.
    """
    document = {
        "batch": batch.model_dump(mode="json"),
        "summary": summary.to_dict(),
        "acceptance": dict(acceptance),
        "runs": [_without_image_data(run.model_dump(mode="json")) for run in runs],
    }
    return json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def _without_image_data(run: dict[str, Any]) -> dict[str, Any]:
    metrics = run["metrics"]
    for name, value in metrics.items():
        if is_image(value) and isinstance(value.get("data"), str):
            rest = {key: item for key, item in value.items() if key != "data"}
            metrics[name] = {**rest, **_image_digest(value["data"])}
    return run


def _image_digest(data: str) -> dict[str, Any]:
    try:
        raw = base64.b64decode(data)
    except ValueError:  # binascii.Error: the digest of the text still tells images apart
        raw = data.encode("utf-8", "replace")
    return {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)}
