"""smartfab: the collaborative notebook workbench of a smart-manufacturing alliance."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "record"]


def record(name: str, value: Any) -> None:
    """Record a result of a program test run (see :func:`smartfab.runs.record.record`)."""
    from smartfab.runs.record import record as _record

    _record(name, value)
