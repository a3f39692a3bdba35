"""smartfab: the collaborative notebook workbench of a smart-manufacturing alliance."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
