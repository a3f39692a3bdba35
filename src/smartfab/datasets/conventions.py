"""Metadata conventions every smartfab dataset follows: CF-1.11 and ACDD-1.3.

Generators and loaders build an ``xarray.Dataset`` with a ``units`` and ``long_name`` on every
variable, then call :func:`finish`, which adds the global attributes and refuses a dataset that
breaks the conventions (so a careless generator fails its tests, not a user's analysis).
"""

from __future__ import annotations

import json
from typing import Any

import xarray as xr

from smartfab import __version__
from smartfab.errors import DatasetError

CONVENTIONS = "CF-1.11, ACDD-1.3"
#: global attribute holding the generator's or loader's parameters as JSON
PARAMETERS_ATTR = "smartfab_parameters"


def finish(
    ds: xr.Dataset,
    *,
    title: str,
    summary: str,
    source: str,
    parameters: dict[str, Any],
    license: str,
    references: str = "",
    keywords: str = "",
    ground_truth: str = "",
) -> xr.Dataset:
    """Add CF/ACDD global attributes and the parameters; check every variable's metadata.

    Parameters
    ----------
    ds:
        The dataset; every data variable and coordinate must have ``units`` and ``long_name``
        (``units`` may be ``"1"`` for dimensionless values; text and category variables use
        ``units="1"`` too, with ``flag_values``/``flag_meanings`` where they encode classes).
    title, summary, source, license, references, keywords:
        ACDD-1.3 attributes (``source`` names the generator or the upstream data).
    parameters:
        Everything needed to rebuild the dataset (seed included), stored as JSON.
    ground_truth:
        What the labels mean, in words.

    Raises
    ------
    DatasetError
        When a variable lacks ``units`` or ``long_name``.
    """
    missing = [
        f"{name} ({', '.join(k for k in ('units', 'long_name') if k not in var.attrs)})"
        for name, var in {**ds.coords, **ds.data_vars}.items()
        if not {"units", "long_name"} <= set(var.attrs)
    ]
    if missing:
        raise DatasetError(f"{title}: variables without CF metadata: {'; '.join(missing)}")
    ds.attrs.update(
        {
            "Conventions": CONVENTIONS,
            "title": title,
            "summary": summary,
            "source": source,
            "license": license,
            "references": references,
            "keywords": keywords,
            "ground_truth": ground_truth,
            "product_version": __version__,
            "creator_name": "smartfab",
            PARAMETERS_ATTR: json.dumps(parameters, sort_keys=True),
        }
    )
    return ds


def parameters_of(ds: xr.Dataset) -> dict[str, Any]:
    """The parameters a dataset was built with (see :func:`finish`)."""
    value: dict[str, Any] = json.loads(ds.attrs[PARAMETERS_ATTR])
    return value
