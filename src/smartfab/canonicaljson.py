"""The one JSON text of a value that hashes agree on, and the plain values it is made of.

Core: the run keys of :mod:`smartfab.runs.provenance`, the run store and what a program records
(:mod:`smartfab.record`) all turn values into JSON this way, so the same value gives the same
text in every process and on every machine.
"""

from __future__ import annotations

import json
from typing import Any


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars and arrays turned into Python numbers and lists.

    Containers are walked; anything else JSON cannot hold raises TypeError.
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if type(obj).__module__ == "numpy" and hasattr(obj, "tolist"):
        return jsonable(obj.tolist())  # a numpy scalar (a number) or array (nested lists)
    raise TypeError(f"cannot hash a {type(obj).__module__}.{type(obj).__qualname__}: {obj!r}")


def canonical_json(obj: Any) -> str:
    """The one JSON text of ``obj`` that hashes agree on: sorted keys, no spaces, numpy scalars
    as Python numbers.

    Examples
    --------
    >>> canonical_json({"b": 1, "a": [1.5, "x"]})
    '{"a":[1.5,"x"],"b":1}'
    """
    return json.dumps(jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
