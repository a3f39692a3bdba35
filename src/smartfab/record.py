"""``smartfab.record(name, value)``: what a program reports to its test run.

Values travel as display data with smartfab's own mimetype inside the output notebook, so the
notebook itself is the record (as scrapbook did, which is no longer maintained), and the runner
collects them from it. Outside a run, the text/plain part shows ``name = value`` in the notebook.

Accepted values: numbers (Python or numpy scalars), booleans, strings, ``None``, small arrays
(numpy arrays, lists or tuples of numbers, xarray DataArrays: at most ``MAX_ARRAY`` elements),
and plots (a matplotlib Figure, stored as PNG).

Core: programs import this in their kernels, and :func:`smartfab.datasets.open` calls
:func:`note_dataset_use`, so it imports nothing of smartfab but the core; the runs read what it
writes (:mod:`smartfab.runs.collect`).
"""

from __future__ import annotations

import base64
import io
import math
import os
import re
import sys
from typing import Any

from smartfab.canonicaljson import jsonable

#: mimetype of the display data that ``smartfab.record`` emits inside an output notebook
RECORD_MIMETYPE = "application/vnd.smartfab.record.v1+json"
#: mimetype of the display data that opening a dataset inside a run emits (see
#: :func:`note_dataset_use`; collected as :class:`smartfab.runs.models.DatasetUse`)
DATASET_MIMETYPE = "application/vnd.smartfab.dataset.v1+json"
#: set (non-empty: the run's input key) in the kernel of every program test run by
#: :mod:`smartfab.runs.task`; datasets opened there are recorded in the output notebook
RUN_ENV = "SMARTFAB_RUN"

#: largest array (elements) a record may hold: records are results, not datasets
MAX_ARRAY = 10_000
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")


def encode(name: str, value: Any) -> dict[str, Any]:
    """The JSON form of a recorded value: ``{"kind": ..., ...}``; TypeError/ValueError naming
    ``name`` when the value cannot be recorded."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ValueError(
            f"record name {name!r}: use letters, digits, '_', '.', '-' (at most 100), "
            "starting with a letter or '_'"
        )
    if value is None or isinstance(value, bool | str):
        return {"kind": "scalar", "value": value}
    if isinstance(value, int | float):
        return {"kind": "scalar", "value": _number(name, value)}
    kind = type(value).__module__.split(".")[0]
    if kind == "numpy" and getattr(value, "ndim", None) == 0:
        return {"kind": "scalar", "value": _number(name, value.item())}
    if kind == "matplotlib" and hasattr(value, "savefig"):
        buffer = io.BytesIO()
        value.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        return {"kind": "image", "mimetype": "image/png", "data": data}
    if kind in ("numpy", "xarray") or isinstance(value, list | tuple):
        return _array(name, value)
    raise TypeError(
        f"record {name!r}: cannot record a {type(value).__module__}.{type(value).__qualname__}; "
        "record numbers, strings, booleans, small arrays or a matplotlib Figure"
    )


def _number(name: str, value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}[repr(value)]
    if isinstance(value, int | float):
        return value
    raise TypeError(f"record {name!r}: {value!r} is not a number")


def _array(name: str, value: Any) -> dict[str, Any]:
    import numpy as np

    array = np.asarray(getattr(value, "values", value))
    if array.dtype.kind not in "biuf":
        raise TypeError(f"record {name!r}: arrays must hold numbers, not {array.dtype}")
    if array.size > MAX_ARRAY:
        raise ValueError(
            f"record {name!r}: {array.size} elements, more than {MAX_ARRAY}; "
            "record a summary (or write a file) instead"
        )
    data = [_number(name, v) for v in array.ravel().tolist()]
    return {"kind": "array", "dtype": str(array.dtype), "shape": list(array.shape), "data": data}


def decode(encoded: dict[str, Any]) -> Any:
    """The Python value of an encoded record (arrays as nested lists, images as the dict)."""
    kind = encoded.get("kind")
    if kind == "scalar":
        value = encoded.get("value")
        if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
            return float(value.replace("Infinity", "inf"))
        return value
    if kind == "array":
        import numpy as np

        data = [
            float(v.replace("Infinity", "inf")) if isinstance(v, str) else v
            for v in encoded["data"]
        ]
        return np.asarray(data, dtype=encoded["dtype"]).reshape(encoded["shape"]).tolist()
    return encoded


def record(name: str, value: Any) -> None:
    """Record ``value`` under ``name`` for the program test run executing this notebook.

    Example::

        import smartfab
        smartfab.record("rmse_um", rmse)
        smartfab.record("residuals", fig)   # a matplotlib Figure
    """
    from IPython.display import display

    encoded = encode(name, value)
    text = f"{name} = <plot>" if encoded["kind"] == "image" else f"{name} = {value!r}"
    payload = {"name": name, "value": encoded}
    display({RECORD_MIMETYPE: payload, "text/plain": text}, raw=True)  # type: ignore[no-untyped-call]


def note_dataset_use(
    dataset_id: str, parameters: dict[str, Any], sha256: str, fingerprint: str
) -> None:
    """Tell the program test run executing this notebook that it opened a dataset.

    Emits display data with only :data:`DATASET_MIMETYPE` (no text: nothing shows in the
    notebook), and only inside a run (``$SMARTFAB_RUN`` set) in an IPython kernel; elsewhere it
    does nothing. :func:`smartfab.datasets.open` calls it for every dataset it opens.
    """
    if not os.environ.get(RUN_ENV) or "IPython" not in sys.modules:
        return
    from IPython.core.interactiveshell import InteractiveShell

    if not InteractiveShell.initialized():
        return  # IPython imported, but no shell to display into (a plain script)
    from IPython.display import display

    payload = {
        "id": dataset_id,
        "parameters": jsonable(parameters),
        "sha256": sha256,
        "fingerprint": fingerprint,
    }
    display({DATASET_MIMETYPE: payload}, raw=True)  # type: ignore[no-untyped-call]
