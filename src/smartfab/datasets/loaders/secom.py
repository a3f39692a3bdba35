"""UCI SECOM: semiconductor manufacturing process data (McCann and Johnston 2008).

Upstream format
---------------
``secom.data``
    One row per production entity (1567 upstream), 590 space-separated numbers, ``NaN`` for a
    missing value. The features are anonymised: neither names nor units are given.
``secom_labels.data``
    One row per entity, in the same order, with CRLF line endings, e.g.
    ``-1 "19/07/2008 11:55:00"``: the in-house line test result (-1 pass, 1 fail) and the date
    and time of that test (dd/mm/yyyy HH:MM:SS, local time; no time zone is given).

Output
------
Dimensions ``entity`` (row number in the upstream files, from 1) and ``feature`` (column number
in ``secom.data``, from 1): ``features`` on both, ``label`` and ``timestamp`` per entity. With
``labels_only=True`` only ``secom_labels.data`` is read (``features`` is then absent).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray
from pydantic import Field

from smartfab.datasets import conventions
from smartfab.datasets.loaders import upstream
from smartfab.datasets.registry import Loader, Params
from smartfab.errors import DatasetError

NAME = "secom"
DATA_FILE = "secom.data"
LABELS_FILE = "secom_labels.data"
N_FEATURES = 590
EPOCH = datetime(1970, 1, 1)
TIME_UNITS = "seconds since 1970-01-01 00:00:00"
_LABEL_LINE = re.compile(
    r'^\s*(-1|1|\+1)\s+"(\d{1,2})/(\d{1,2})/(\d{4}) (\d{1,2}):(\d{2}):(\d{2})"\s*$'
)


class SecomParams(Params):
    """Parameters of the SECOM loader."""

    labels_only: bool = Field(
        False, description="read only secom_labels.data (secom.data may then be absent)"
    )
    verify: bool = Field(True, description="check the sha256 of known upstream files")


def _directory(path: Path) -> Path:
    if path.is_dir():
        return path
    if path.name not in (DATA_FILE, LABELS_FILE):
        raise DatasetError(
            f"{NAME}: {path} is neither {DATA_FILE} nor {LABELS_FILE}; give the directory "
            "holding them"
        )
    return path.parent


def _text_lines(file: Path) -> list[tuple[int, str]]:
    try:
        text = file.read_bytes().decode("ascii")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{NAME}: {file} is not ASCII text (byte {err.start})") from None
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _labels(file: Path) -> tuple[NDArray[np.int8], NDArray[np.int64]]:
    labels: list[int] = []
    seconds: list[int] = []
    for n, line in _text_lines(file):
        match = _LABEL_LINE.match(line)
        if match is None:
            raise DatasetError(
                f"{NAME}: {file}: line {n} is {line[:60]!r}, expected a label -1 or 1 and a "
                'quoted date, e.g. -1 "19/07/2008 11:55:00"'
            )
        day, month, year, hour, minute, second = (int(g) for g in match.groups()[1:])
        try:
            stamp = datetime(year, month, day, hour, minute, second)
        except ValueError as err:
            raise DatasetError(f"{NAME}: {file}: line {n}: invalid date: {err}") from None
        labels.append(int(match.group(1)))
        seconds.append(int((stamp - EPOCH).total_seconds()))
    if not labels:
        raise DatasetError(f"{NAME}: {file} has no labels")
    return np.array(labels, dtype=np.int8), np.array(seconds, dtype=np.int64)


def _features(file: Path) -> NDArray[np.float64]:
    lines = _text_lines(file)
    out = np.empty((len(lines), N_FEATURES))
    for row, (n, line) in enumerate(lines):
        tokens = line.split()
        if len(tokens) != N_FEATURES:
            raise DatasetError(
                f"{NAME}: {file}: line {n} has {len(tokens)} columns, expected {N_FEATURES}"
            )
        try:
            out[row] = np.array(tokens, dtype=np.float64)
        except ValueError:
            bad = next(t for t in tokens if not _is_number(t))
            raise DatasetError(
                f"{NAME}: {file}: line {n}: {bad!r} is not a number (or NaN)"
            ) from None
    if not lines:
        raise DatasetError(f"{NAME}: {file} has no rows")
    return out


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def read(path: Path, params: SecomParams) -> xr.Dataset:
    """Read SECOM features and labels.

    Parameters
    ----------
    path:
        The directory holding ``secom.data`` and ``secom_labels.data``, or either file (the
        other is looked up next to it).
    params:
        Validated parameters (labels_only, verify).

    Returns
    -------
    xarray.Dataset
        ``features`` on (``entity``, ``feature``) unless ``labels_only``; ``label`` (-1 pass,
        1 fail) and ``timestamp`` on ``entity``.

    Raises
    ------
    DatasetError
        For a missing file (``secom.data`` is required unless ``labels_only``), a row with
        other than 590 values, a malformed label line, or files with different row counts.
    ChecksumError
        When a known upstream file has other content (and ``verify`` is true).
    """
    directory = _directory(path)
    labels_file = upstream.require_file(NAME, directory / LABELS_FILE, "SECOM labels file")
    files: dict[str, str] = {}
    data_file = directory / DATA_FILE
    if not params.labels_only:
        if not data_file.is_file():
            raise DatasetError(
                f"{NAME}: {data_file} is missing (the 1567 x 590 feature matrix); "
                "pass labels_only=True to read only the labels"
            )
        files[DATA_FILE] = upstream.check_file(NAME, data_file, verify=params.verify)
    files[LABELS_FILE] = upstream.check_file(NAME, labels_file, verify=params.verify)
    labels, seconds = _labels(labels_file)
    data_vars: dict[str, Any] = {}
    if not params.labels_only:
        features = _features(data_file)
        if features.shape[0] != labels.size:
            raise DatasetError(
                f"{NAME}: {data_file} has {features.shape[0]} rows but {labels_file} has "
                f"{labels.size}; they must describe the same entities"
            )
        data_vars["features"] = (
            ("entity", "feature"),
            features,
            {
                "units": "1",
                "long_name": "anonymised process measurement",
                "comment": "names and units are not given upstream; NaN: missing value",
            },
        )
    data_vars["label"] = (
        ("entity",),
        labels,
        {
            "units": "1",
            "long_name": "in-house line test result (yield)",
            "flag_values": np.array([-1, 1], dtype=np.int8),
            "flag_meanings": "pass fail",
        },
    )
    data_vars["timestamp"] = (
        ("entity",),
        seconds,
        {
            "units": TIME_UNITS,
            "calendar": "standard",
            "long_name": "date and time of the line test",
            "comment": "local time of the fab; no time zone is given upstream",
        },
    )
    coords: dict[str, Any] = {
        "entity": (
            "entity",
            np.arange(1, labels.size + 1, dtype=np.int64),
            {"units": "1", "long_name": "production entity (row in the upstream files)"},
        )
    }
    if not params.labels_only:
        coords["feature"] = (
            "feature",
            np.arange(1, N_FEATURES + 1, dtype=np.int64),
            {"units": "1", "long_name": "feature number (column in secom.data)"},
        )
    ds = xr.Dataset(data_vars, coords=coords)
    fails = int((labels == 1).sum())
    what = "labels" if params.labels_only else f"{N_FEATURES} anonymised features and labels"
    return conventions.finish(
        ds,
        title="UCI SECOM semiconductor manufacturing data" + (" (labels)" * params.labels_only),
        summary=(
            f"{labels.size} production entities of a semiconductor process ({fails} fails): "
            f"{what}, with the date and time of the in-house line test"
        ),
        source=(
            "UCI Machine Learning Repository, SECOM data set, "
            "https://archive.ics.uci.edu/ml/datasets/SECOM; M. McCann and A. Johnston (2008); "
            "read by smartfab loader secom"
        ),
        parameters={**params.model_dump(mode="json"), "files": files},
        license="CC-BY-4.0",
        references=(
            "McCann M., Johnston A. (2008) SECOM, UCI Machine Learning Repository; "
            "Dua D., Graff C. UCI Machine Learning Repository, University of California, Irvine"
        ),
        keywords="semiconductor, yield, process monitoring, feature selection, SECOM",
        ground_truth=(
            "label: in-house line test per entity, -1 pass, 1 fail; timestamp: when it was tested"
        ),
    )


LOADER = Loader(
    name=NAME,
    params=SecomParams,
    read=read,
    description="UCI SECOM semiconductor process features (590) with pass/fail labels",
    files=(DATA_FILE, LABELS_FILE),
)
