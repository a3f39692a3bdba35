"""Collect what a run reported from its executed notebook: metrics, datasets, the first error.

The output notebook is the record: ``smartfab.record`` leaves display data with
:data:`RECORD_MIMETYPE`, opening a dataset inside a run leaves :data:`DATASET_MIMETYPE`, and
a cell that raised leaves an ``error`` output. Nothing else is trusted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from smartfab.canonicaljson import canonical_json
from smartfab.record import DATASET_MIMETYPE, RECORD_MIMETYPE, decode
from smartfab.runs.models import DatasetUse, RunError

if TYPE_CHECKING:
    from nbformat import NotebookNode

#: terminal escapes in IPython tracebacks: CSI sequences (colours) and OSC ones (hyperlinks)
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
DISPLAY_OUTPUTS = ("display_data", "execute_result")


@dataclass
class Collected:
    """What one executed notebook reported."""

    #: name -> decoded value (arrays as nested lists, images as their dict); the last record wins
    metrics: dict[str, Any] = field(default_factory=dict)
    #: the datasets opened, in the order first opened, each once
    datasets: list[DatasetUse] = field(default_factory=list)
    #: the first cell that raised, or None
    error: RunError | None = None


def collect(nb: NotebookNode) -> Collected:
    """Metrics, dataset uses and the first error of an executed notebook.

    Parameters
    ----------
    nb:
        An executed ``nbformat.NotebookNode`` (or the same structure as plain dicts).

    Outputs that carry a smartfab mimetype but are malformed (written by hand, or by another
    version) are skipped: they are not evidence of anything.

    See Also
    --------
    smartfab.record.record, smartfab.record.note_dataset_use
    """
    found = Collected()
    seen: set[str] = set()
    for cell_index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs", []):
            kind = output.get("output_type")
            if kind == "error":
                if found.error is None:
                    found.error = _error(cell_index, output)
                continue
            if kind not in DISPLAY_OUTPUTS:
                continue
            data = output.get("data", {})
            if RECORD_MIMETYPE in data:
                metric = _metric(data[RECORD_MIMETYPE])
                if metric is not None:
                    name, value = metric
                    found.metrics.pop(name, None)  # keep the order of the records that won
                    found.metrics[name] = value
            if DATASET_MIMETYPE in data:
                use = _dataset(data[DATASET_MIMETYPE])
                if use is not None:
                    key = canonical_json(use.model_dump())
                    if key not in seen:
                        seen.add(key)
                        found.datasets.append(use)
    return found


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour and hyperlink escapes."""
    return ANSI.sub("", text)


def _payload(raw: Any) -> dict[str, Any] | None:
    """A JSON mimetype's value: a dict in memory, possibly a string in older files."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    return raw if isinstance(raw, dict) else None


def _metric(raw: Any) -> tuple[str, Any] | None:
    payload = _payload(raw)
    if payload is None:
        return None
    name, encoded = payload.get("name"), payload.get("value")
    if not isinstance(name, str) or not isinstance(encoded, dict):
        return None
    try:
        return name, decode(encoded)
    except (KeyError, TypeError, ValueError):
        return None


def _dataset(raw: Any) -> DatasetUse | None:
    payload = _payload(raw)
    if payload is None:
        return None
    try:
        return DatasetUse.model_validate(payload)
    except ValueError:  # pydantic.ValidationError is a ValueError
        return None


def _error(cell_index: int, output: Any) -> RunError:
    traceback = output.get("traceback", [])
    return RunError(
        kind="exception",
        cell_index=cell_index,
        ename=strip_ansi(str(output.get("ename", ""))),
        evalue=strip_ansi(str(output.get("evalue", ""))),
        traceback=[strip_ansi(str(line)) for line in traceback],
    )
