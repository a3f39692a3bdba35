"""What kind of value a recorded metric or a parameter holds, and how to show it.

Shared by the batch report and the comparison of two batches. A recorded metric is one of: a
scalar (number, boolean, string, ``None``), an array (nested lists of numbers) or an image
(``{"kind": "image", "mimetype": ..., "data": <base64>}``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard

#: terminal colour codes that Jupyter puts into tracebacks
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def is_number(value: Any) -> TypeGuard[int | float]:
    """True for ints and floats (NaN and infinities included), never for booleans."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite number (not a boolean), else ``None``."""
    if not is_number(value):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond the range of floats
        return None
    return number if math.isfinite(number) else None


def is_scalar(value: Any) -> bool:
    """True for numbers, booleans, strings and ``None``: what fits in one table cell."""
    return value is None or isinstance(value, bool | int | float | str)


def is_image(value: Any) -> TypeGuard[dict[str, Any]]:
    """True for a recorded image (``{"kind": "image", ...}``)."""
    return isinstance(value, dict) and value.get("kind") == "image"


def is_array(value: Any) -> TypeGuard[list[Any]]:
    """True for a recorded array (a possibly nested list)."""
    return isinstance(value, list)


def array_shape(value: list[Any]) -> list[int]:
    """The shape of a recorded array, read along its first elements."""
    shape = []
    level: Any = value
    while isinstance(level, list):
        shape.append(len(level))
        level = level[0] if level else None
    return shape


def format_array(value: list[Any]) -> str:
    """``array[3x2]`` (with a multiplication sign): a recorded array by its shape."""
    return "array[" + "\u00d7".join(str(n) for n in array_shape(value)) + "]"


def canonical(value: Any) -> str:
    """Canonical JSON (sorted keys, no spaces): equal values give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def ordered_keys(mappings: Iterable[Mapping[str, Any]]) -> list[str]:
    """The union of the keys of ``mappings``, in order of first appearance."""
    seen: dict[str, None] = {}
    for mapping in mappings:
        for key in mapping:
            seen.setdefault(key, None)
    return list(seen)


def format_value(value: Any) -> str:
    """A short text for a table cell (plain text: escape it before putting it into HTML)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.6g}"
    if isinstance(value, int | str):
        return str(value)
    return canonical(value)


def format_duration(seconds: float) -> str:
    """``0.42 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour codes."""
    return ANSI_ESCAPE.sub("", text)
