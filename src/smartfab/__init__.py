"""smartfab: the collaborative notebook workbench of a smart-manufacturing alliance."""

from __future__ import annotations

# the function, bound over the submodule of the same name (``smartfab.record(name, value)``);
# the module's other names are imported with ``from smartfab.record import ...`` (``import
# smartfab.record as m`` would give the function)
from smartfab.record import record

__version__ = "0.1.0"
__all__ = ["__version__", "record"]
