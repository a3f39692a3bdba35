"""Curated machine datasets: cards, generators, loaders, checksums and team access.

>>> import smartfab.datasets as sd
>>> ds = sd.open("bearing-run-to-failure")  # doctest: +SKIP

The public functions are resolved on first use, so that importing a light submodule (the access
rules, say, from the hub) does not import xarray and dask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smartfab.datasets.api import default_catalog, info
    from smartfab.datasets.api import list_datasets as list
    from smartfab.datasets.api import open_dataset as open

__all__ = ["default_catalog", "info", "list", "open"]

_PUBLIC = {
    "default_catalog": "default_catalog",
    "info": "info",
    "list": "list_datasets",
    "open": "open_dataset",
}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        from smartfab.datasets import api

        return getattr(api, _PUBLIC[name])
    raise AttributeError(f"module 'smartfab.datasets' has no attribute {name!r}")
