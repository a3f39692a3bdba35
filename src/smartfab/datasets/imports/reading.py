"""Reading a machine recording (CSV or netCDF) as its import card describes it, checked."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from smartfab.datasets.cards import TIME_UNITS, ImportCard
from smartfab.datasets.conventions import finish
from smartfab.errors import DatasetError

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

#: file suffixes and the format each is read as
FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".txt": "csv",
    ".nc": "netcdf",
    ".nc4": "netcdf",
    ".netcdf": "netcdf",
    ".h5": "netcdf",
}
#: how far the median step of a time column may be from 1 / sampling_rate_hz (relative)
RATE_TOLERANCE = 0.01


def recording_format(source: Path) -> str:
    """``"csv"`` or ``"netcdf"``, from the file's suffix; DatasetError for a missing file or an
    unknown suffix."""
    if not source.is_file():
        raise DatasetError(f"{source}: no such file")
    kind = FORMATS.get(source.suffix.lower())
    if kind is None:
        accepted = ", ".join(FORMATS)
        raise DatasetError(
            f"{source}: unknown recording format {source.suffix or '(no suffix)'!r}; "
            f"accepted: {accepted} (CSV or netCDF)"
        )
    return kind


def read_recording(source: Path, spec: ImportCard, card: Path, kind: str) -> xr.Dataset:
    """The dataset ``spec`` describes, read from ``source`` (``kind``: ``csv`` or ``netcdf``),
    with CF/ACDD metadata and a ``time`` coordinate in seconds."""
    reader = _read_csv if kind == "csv" else _read_netcdf
    values, time, origin = reader(source, spec, card)
    if time is None:
        count = len(next(iter(values.values())))
        time = np.arange(count, dtype=np.float64) / spec.sampling_rate_hz
    else:
        _check_time(time, spec, source, card)
    return _dataset(spec, values, time, origin, source)


def _read_csv(source: Path, spec: ImportCard, card: Path) -> tuple[dict[str, Any], Any, str | None]:
    """The card's columns of a CSV export, checked: numbers, by variable name; the time column
    in seconds (or None) and its origin when it holds date-times."""
    import pandas as pd

    fmt = spec.csv
    options: dict[str, Any] = {"sep": fmt.separator, "skiprows": fmt.skip_rows}
    try:
        header = list(pd.read_csv(source, nrows=0, **options).columns)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise DatasetError(f"{source}: not a readable CSV file: {err}") from None
    wanted = {name: var.source_name(name) for name, var in spec.variables.items()}
    columns = list(wanted.values()) + ([spec.time.column] if spec.time else [])
    missing = [c for c in columns if c not in header]
    if missing:
        fields = [_field_of(spec, c) for c in missing]
        raise DatasetError(
            f"{source}: no column {', '.join(map(repr, missing))} (named by "
            f"{', '.join(fields)} in {card}); its columns: {', '.join(map(repr, header))}"
        )
    try:
        frame = pd.read_csv(source, usecols=columns, decimal=fmt.decimal, **options)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise DatasetError(f"{source}: not a readable CSV file: {err}") from None
    if frame.empty:
        raise DatasetError(f"{source}: no rows below the header")
    first_line = fmt.skip_rows + 2  # 1-based line of the first data row
    values = {
        name: _numeric_column(frame[column], source, first_line, _field_of(spec, column), card)
        for name, column in wanted.items()
    }
    if spec.time is None:
        return values, None, None
    time, origin = _seconds(frame[spec.time.column], spec, source, card)
    return values, time, origin


def _numeric_column(
    series: pd.Series[Any], source: Path, first_line: int, field: str, card: Path
) -> Any:
    """The values of a CSV column as a numeric array; DatasetError naming the first line that
    holds something else."""
    import pandas as pd

    if series.dtype.kind in "iuf":
        return series.to_numpy()
    coerced = pd.to_numeric(series, errors="coerce")
    bad = series.notna() & coerced.isna()
    if series.dtype.kind == "b" or not bad.any():
        bad = series.notna()  # booleans: true/false is not a measurement
    position = int(np.flatnonzero(bad.to_numpy())[0])
    raise DatasetError(
        f"{source}:{first_line + position}: column {series.name!r} ({field} in {card}) is not "
        f"numeric: {series.iloc[position]!r}"
    )


def _read_netcdf(
    source: Path, spec: ImportCard, card: Path
) -> tuple[dict[str, Any], Any, str | None]:
    """The card's variables of a netCDF file, checked: one-dimensional, numeric, of one length,
    in the card's units when the file states them."""
    import xarray as xr

    try:
        ds = xr.open_dataset(source, chunks=None, cache=False)
    except (OSError, ValueError) as err:
        raise DatasetError(f"{source}: not a readable netCDF file: {err}") from None
    with ds:
        names = [str(n) for n in ds.variables]
        wanted = {name: var.source_name(name) for name, var in spec.variables.items()}
        needed = list(wanted.values()) + ([spec.time.column] if spec.time else [])
        missing = [v for v in needed if v not in ds.variables]
        if missing:
            fields = [_field_of(spec, v) for v in missing]
            raise DatasetError(
                f"{source}: no variable {', '.join(map(repr, missing))} (named by "
                f"{', '.join(fields)} in {card}); its variables: {', '.join(map(repr, names))}"
            )
        values: dict[str, Any] = {}
        for name, variable in wanted.items():
            array = ds[variable]
            field = _field_of(spec, variable)
            _check_netcdf_variable(array, source, field, card)
            _check_units(array.attrs.get("units"), spec.variables[name].units, source, field, card)
            values[name] = array.to_numpy()
        lengths = {name: len(v) for name, v in values.items()}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{n}: {count}" for n, count in lengths.items())
            raise DatasetError(f"{source}: the card's variables differ in length ({shown})")
        if spec.time is None:
            return values, None, None
        stamps = ds[spec.time.column]
        if stamps.ndim != 1 or len(stamps) != next(iter(lengths.values())):
            raise DatasetError(
                f"{source}: time variable {spec.time.column!r} (time.column in {card}) is not "
                "one value per sample of the variables"
            )
        time, origin = _seconds(stamps.to_series(), spec, source, card)
        return values, time, origin


def _check_netcdf_variable(array: xr.DataArray, source: Path, field: str, card: Path) -> None:
    """One dimension, numbers."""
    if array.ndim != 1:
        raise DatasetError(
            f"{source}: variable {array.name!r} ({field} in {card}) has dimensions "
            f"{array.dims}; import one-dimensional series along time"
        )
    if array.dtype.kind not in "iuf":
        raise DatasetError(
            f"{source}: variable {array.name!r} ({field} in {card}) is not numeric "
            f"(dtype {array.dtype})"
        )


def _check_units(found: Any, stated: str, source: Path, field: str, card: Path) -> None:
    """The file's own units, when it states them, must be the card's (as UDUNITS compares)."""
    if found is None:
        return
    from cf_units import Unit  # type: ignore[import-untyped]

    try:
        same = Unit(str(found)) == Unit(stated)
    except ValueError:
        same = False
    if not same:
        raise DatasetError(
            f"{source}: variable of {field} is in {found!r} in the file, but the card {card} "
            f"says {stated!r}"
        )


def _seconds(
    stamps: pd.Series[Any], spec: ImportCard, source: Path, card: Path
) -> tuple[Any, str | None]:
    """Time stamps in seconds: numbers in the card's time units, or date-times (then seconds
    since the first, which is returned as the origin)."""
    import pandas as pd

    assert spec.time is not None
    column = spec.time.column
    kind = stamps.dtype.kind
    if kind in "iuf":
        return stamps.to_numpy(dtype=np.float64) * TIME_UNITS[spec.time.units], None
    if kind == "m":
        return stamps.to_numpy() / np.timedelta64(1, "s"), None
    if kind != "M":
        try:
            stamps = pd.to_datetime(stamps, format="ISO8601")
        except (ValueError, TypeError) as err:
            raise DatasetError(
                f"{source}: time column {column!r} (time.column in {card}) holds neither numbers "
                f"nor ISO 8601 date-times: {err}"
            ) from None
    origin = stamps.iloc[0]
    seconds = ((stamps - origin) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)
    return seconds, pd.Timestamp(origin).isoformat()


def _check_time(time: Any, spec: ImportCard, source: Path, card: Path) -> None:
    """Time stamps are finite, strictly increasing, and step at the card's sampling rate."""
    assert spec.time is not None
    column = spec.time.column
    if not np.all(np.isfinite(time)):
        bad = int(np.flatnonzero(~np.isfinite(time))[0])
        raise DatasetError(
            f"{source}: time column {column!r} (time.column in {card}) has no time at sample "
            f"{bad} (counting from 0)"
        )
    steps = np.diff(time)
    if np.any(steps <= 0):
        bad = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise DatasetError(
            f"{source}: time column {column!r} (time.column in {card}) is not strictly "
            f"increasing at sample {bad} (counting from 0): {float(time[bad - 1])!r} then "
            f"{float(time[bad])!r} s"
        )
    if len(steps) == 0:
        return
    step = float(np.median(steps))
    rate = spec.sampling_rate_hz
    if abs(1.0 / step - rate) > RATE_TOLERANCE * rate:
        raise DatasetError(
            f"{card}: sampling_rate_hz: {rate:g} Hz, but the time column {column!r} of {source} "
            f"steps by {step:g} s ({1.0 / step:g} Hz)"
        )


def _field_of(spec: ImportCard, column: str) -> str:
    """The card field that names ``column``."""
    if spec.time is not None and spec.time.column == column:
        return "time.column"
    for name, var in spec.variables.items():
        if var.source_name(name) == column:
            return f"variables.{name}" + (".column" if var.column else "")
    return column


def _dataset(
    spec: ImportCard, values: dict[str, Any], time: Any, origin: str | None, source: Path
) -> xr.Dataset:
    """The dataset as stored: one variable per card variable along ``time`` (seconds)."""
    import xarray as xr

    long_name = f"time since {origin}" if origin else "time since the start of the recording"
    ds = xr.Dataset(
        {
            name: ("time", values[name], _variable_attrs(var.units, var.long_name, var.description))
            for name, var in spec.variables.items()
        },
        coords={"time": ("time", np.asarray(time, dtype=np.float64), {"units": "s"})},
    )
    ds["time"].attrs["long_name"] = long_name
    info = spec.recording
    return finish(
        ds,
        title=spec.title,
        summary=spec.description,
        source=f"{info.machine}: {info.method}",
        parameters={
            "source_file": source.name,
            "sampling_rate_hz": spec.sampling_rate_hz,
            "time_column": spec.time.column if spec.time else None,
        },
        license=spec.license,
        references=spec.citation or "",
        ground_truth=spec.ground_truth,
    )


def _variable_attrs(units: str, long_name: str, description: str) -> dict[str, str]:
    attrs = {"units": units, "long_name": long_name}
    if description:
        attrs["comment"] = description
    return attrs
