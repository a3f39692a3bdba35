"""The library API: ``smartfab.datasets.list()``, ``.info(id)``, ``.open(id, **params)``."""

from __future__ import annotations

import os
from typing import Any

import xarray as xr

from smartfab.datasets.cards import DatasetCard
from smartfab.datasets.catalog import Catalog
from smartfab.record import RUN_ENV, note_dataset_use

_default: Catalog | None = None


def default_catalog() -> Catalog:
    """The catalog of this process: cards and data directory from the environment.

    Created on first use (``$SMARTFAB_CARDS_DIR``, ``$SMARTFAB_DATA_DIR``, and inside the hub
    the user's teams), then reused.
    """
    global _default
    if _default is None:
        _default = Catalog()
    return _default


def list_datasets() -> list[DatasetCard]:
    """Cards of every dataset you may use.

    Examples
    --------
    >>> [card.id for card in smartfab.datasets.list()]  # doctest: +SKIP
    """
    return default_catalog().available()


def info(dataset_id: str) -> DatasetCard:
    """The card of one dataset: provenance, variables and units, ground truth, tasks, files."""
    return default_catalog().info(dataset_id)


def open_dataset(dataset_id: str, **parameters: Any) -> xr.Dataset:
    """Open a dataset as a lazy ``xarray.Dataset``: its content is the one curated, and every
    byte read is checked against the sha256 recorded for its file.

    Parameters
    ----------
    dataset_id:
        An id from :func:`list_datasets`.
    **parameters:
        Generator parameters that differ from the card's (synthetic datasets only); the
        variant is built once and cached.

    See Also
    --------
    smartfab.datasets.catalog.Catalog.open
    """
    ds = default_catalog().open(dataset_id, **parameters)
    if os.environ.get(RUN_ENV):
        # inside a program test run: the run's provenance names this dataset by its content
        # fingerprint and the sha256 of its file
        attrs = ds.attrs
        note_dataset_use(
            dataset_id, parameters, attrs["smartfab_sha256"], attrs["smartfab_fingerprint"]
        )
    return ds
