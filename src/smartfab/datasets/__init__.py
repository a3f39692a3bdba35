"""Curated machine datasets: cards, generators, loaders, checksums and team access.

>>> import smartfab.datasets as sd
>>> ds = sd.open("bearing-run-to-failure")  # doctest: +SKIP
"""

from __future__ import annotations

from smartfab.datasets.api import catalog, info
from smartfab.datasets.api import list_datasets as list
from smartfab.datasets.api import open_dataset as open

__all__ = ["catalog", "info", "list", "open"]
