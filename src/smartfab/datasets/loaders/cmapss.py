"""NASA C-MAPSS turbofan engine degradation simulation (Saxena et al. 2008).

Upstream format
---------------
``CMAPSSData.zip`` holds, per subset ``FD001``-``FD004``, three ASCII files without header:

``train_FD00x.txt``, ``test_FD00x.txt``
    One row per operational cycle, 26 space-separated numbers (rows end with trailing spaces):
    unit number, cycle, 3 operational settings, 21 sensor measurements. Training engines run to
    failure; test engines stop some time before it.
``RUL_FD00x.txt``
    One integer per test unit (in unit order): the true remaining useful life after its last
    cycle.

Output
------
Dimensions ``unit`` and ``cycle`` (1 to the longest unit's last cycle), padded with NaN after a
unit's last cycle (and at any missing cycle); ``observed`` marks the rows present upstream.
Sensors keep their upstream values and units (degR, psia written ``psi``, rpm written ``min-1``,
lbm/s written ``lb s-1``) and are named by the mnemonics of Saxena et al. (2008), Table 2. The
three operational settings are unnamed and unitless upstream.

Ground truth ``rul``: for training units, last cycle minus cycle (0 at failure); for test
units, the value of ``RUL_FD00x.txt`` plus the cycles remaining to the unit's last cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr
from numpy.typing import NDArray
from pydantic import Field

from smartfab.datasets import conventions
from smartfab.datasets.loaders import upstream
from smartfab.datasets.registry import Loader, Params
from smartfab.errors import DatasetError

NAME = "cmapss"
N_COLUMNS = 26
N_SETTINGS = 3
#: (mnemonic, description, units, upstream units) per sensor, Saxena et al. (2008) Table 2
SENSORS: tuple[tuple[str, str, str, str], ...] = (
    ("T2", "total temperature at fan inlet", "degR", "°R"),
    ("T24", "total temperature at LPC outlet", "degR", "°R"),
    ("T30", "total temperature at HPC outlet", "degR", "°R"),
    ("T50", "total temperature at LPT outlet", "degR", "°R"),
    ("P2", "pressure at fan inlet", "psi", "psia"),
    ("P15", "total pressure in bypass-duct", "psi", "psia"),
    ("P30", "total pressure at HPC outlet", "psi", "psia"),
    ("Nf", "physical fan speed", "min-1", "rpm"),
    ("Nc", "physical core speed", "min-1", "rpm"),
    ("epr", "engine pressure ratio (P50/P2)", "1", "--"),
    ("Ps30", "static pressure at HPC outlet", "psi", "psia"),
    ("phi", "ratio of fuel flow to Ps30", "lb s-1 psi-1", "pps/psi"),
    ("NRf", "corrected fan speed", "min-1", "rpm"),
    ("NRc", "corrected core speed", "min-1", "rpm"),
    ("BPR", "bypass ratio", "1", "--"),
    ("farB", "burner fuel-air ratio", "1", "--"),
    ("htBleed", "bleed enthalpy", "1", "--"),
    ("Nf_dmd", "demanded fan speed", "min-1", "rpm"),
    ("PCNfR_dmd", "demanded corrected fan speed", "min-1", "rpm"),
    ("W31", "HPT coolant bleed", "lb s-1", "lbm/s"),
    ("W32", "LPT coolant bleed", "lb s-1", "lbm/s"),
)
#: per subset: operating conditions and fault modes (upstream readme)
SUBSETS: dict[str, tuple[str, str]] = {
    "FD001": ("one (sea level)", "HPC degradation"),
    "FD002": ("six", "HPC degradation"),
    "FD003": ("one (sea level)", "HPC degradation, fan degradation"),
    "FD004": ("six", "HPC degradation, fan degradation"),
}


class CmapssParams(Params):
    """Parameters of the C-MAPSS loader."""

    subset: Literal["FD001", "FD002", "FD003", "FD004"] = Field(
        "FD001", description="simulation subset"
    )
    split: Literal["train", "test"] = Field(
        "train", description="training (run to failure) or test (truncated) trajectories"
    )
    verify: bool = Field(True, description="check the sha256 of known upstream files")


def _directory(path: Path, params: CmapssParams) -> Path:
    if path.is_dir():
        return path
    expected = f"{params.split}_{params.subset}.txt"
    if path.name != expected:
        raise DatasetError(
            f"{NAME}: {path} is not {expected}, the file of split={params.split!r} and "
            f"subset={params.subset!r}; give the directory, or matching parameters"
        )
    return path.parent


def _lines(file: Path) -> list[tuple[int, list[str]]]:
    """Non-empty lines of an ASCII file, with their 1-based numbers, split on whitespace."""
    try:
        text = file.read_bytes().decode("ascii")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{NAME}: {file} is not ASCII text (byte {err.start})") from None
    return [(n, line.split()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _numbers(file: Path, rows: list[tuple[int, list[str]]], width: int) -> NDArray[np.float64]:
    for n, tokens in rows:
        if len(tokens) != width:
            raise DatasetError(
                f"{NAME}: {file}: line {n} has {len(tokens)} columns, expected {width}"
                + (" (unit, cycle, 3 operational settings, 21 sensors)" if width > 1 else "")
            )
    try:
        return np.array([tokens for _, tokens in rows], dtype=np.float64).reshape(-1, width)
    except ValueError:
        for n, tokens in rows:
            for token in tokens:
                try:
                    float(token)
                except ValueError:
                    raise DatasetError(
                        f"{NAME}: {file}: line {n}: {token!r} is not a number"
                    ) from None
        raise


def _table(file: Path) -> NDArray[np.float64]:
    rows = _lines(file)
    values = _numbers(file, rows, N_COLUMNS)
    if values.shape[0] == 0:
        raise DatasetError(f"{NAME}: {file} has no data rows")
    ids = values[:, :2]
    valid = np.all(np.isfinite(ids) & (ids >= 1) & (ids == np.round(ids)), axis=1)
    if not valid.all():
        row = int(np.argmin(valid))
        raise DatasetError(
            f"{NAME}: {file}: line {rows[row][0]}: unit and cycle must be positive whole "
            f"numbers (got {ids[row, 0]:g}, {ids[row, 1]:g})"
        )
    pairs = ids.astype(np.int64)
    _, first, counts = np.unique(pairs, axis=0, return_index=True, return_counts=True)
    if np.any(counts > 1):
        row = int(first[np.argmax(counts > 1)])
        raise DatasetError(
            f"{NAME}: {file}: unit {pairs[row, 0]} has cycle {pairs[row, 1]} more than once "
            f"(first at line {rows[row][0]})"
        )
    return values


def _true_rul(file: Path, units: NDArray[np.int64]) -> NDArray[np.int64]:
    values = _numbers(file, _lines(file), 1).ravel()
    if values.size != units.size:
        raise DatasetError(
            f"{NAME}: {file} has {values.size} values, expected one per test unit ({units.size})"
        )
    if not np.all(np.isfinite(values) & (values >= 0) & (values == np.round(values))):
        raise DatasetError(f"{NAME}: {file}: remaining useful lives must be whole numbers >= 0")
    if not np.array_equal(units, np.arange(1, units.size + 1)):
        raise DatasetError(
            f"{NAME}: {file} gives one value per unit in order, but the test units are not "
            f"numbered 1 to {units.size}"
        )
    return values.astype(np.int64)


def read(path: Path, params: CmapssParams) -> xr.Dataset:
    """Read one C-MAPSS subset and split into (unit, cycle) arrays.

    Parameters
    ----------
    path:
        The directory holding the upstream text files, or the selected ``train_``/``test_`` file
        (its ``RUL_`` file is then looked up next to it).
    params:
        Validated parameters (subset, split, verify).

    Returns
    -------
    xarray.Dataset
        Settings ``setting_1``-``setting_3`` and the 21 sensors on (``unit``, ``cycle``); ground
        truth ``rul`` on the same dimensions; per unit ``last_cycle`` (and ``rul_at_end`` for the
        test split); ``observed`` marks the rows present upstream.

    Raises
    ------
    DatasetError
        For a missing file, a row without 26 numbers, duplicate cycles, or an RUL file that
        does not match the test units.
    ChecksumError
        When a known upstream file has other content (and ``verify`` is true).
    """
    directory = _directory(path, params)
    data_file = upstream.require_file(
        NAME, directory / f"{params.split}_{params.subset}.txt", f"C-MAPSS {params.split} file"
    )
    files = {data_file.name: upstream.check_file(NAME, data_file, verify=params.verify)}
    table = _table(data_file)
    unit_ids = table[:, 0].astype(np.int64)
    cycle_ids = table[:, 1].astype(np.int64)
    units = np.unique(unit_ids)
    n_cycles = int(cycle_ids.max())
    u_index = np.searchsorted(units, unit_ids)
    c_index = cycle_ids - 1
    last = np.zeros(units.size, dtype=np.int64)
    np.maximum.at(last, u_index, cycle_ids)

    def grid(column: NDArray[np.float64]) -> NDArray[np.float64]:
        out = np.full((units.size, n_cycles), np.nan)
        out[u_index, c_index] = column
        return out

    observed = np.zeros((units.size, n_cycles), dtype=np.int8)
    observed[u_index, c_index] = 1
    cycles = np.arange(1, n_cycles + 1)
    remaining = (last[:, None] - cycles[None, :]).astype(np.float64)
    rul_at_end: NDArray[np.int64] | None = None
    if params.split == "test":
        rul_file = upstream.require_file(
            NAME, directory / f"RUL_{params.subset}.txt", "C-MAPSS true RUL file"
        )
        files[rul_file.name] = upstream.check_file(NAME, rul_file, verify=params.verify)
        rul_at_end = _true_rul(rul_file, units)
        remaining += rul_at_end[:, None]
    rul = np.where(observed == 1, remaining, np.nan)

    dims = ("unit", "cycle")
    data_vars: dict[str, Any] = {}
    for k in range(N_SETTINGS):
        data_vars[f"setting_{k + 1}"] = (
            dims,
            grid(table[:, 2 + k]),
            {
                "units": "1",
                "long_name": f"operational setting {k + 1}",
                "upstream_column": 3 + k,
                "comment": "unnamed and without unit upstream",
            },
        )
    for k, (mnemonic, description, units_, upstream_units) in enumerate(SENSORS):
        data_vars[mnemonic] = (
            dims,
            grid(table[:, 2 + N_SETTINGS + k]),
            {
                "units": units_,
                "long_name": description,
                "sensor_number": k + 1,
                "upstream_column": 6 + k,
                "upstream_units": upstream_units,
            },
        )
    data_vars["observed"] = (
        dims,
        observed,
        {
            "units": "1",
            "long_name": "row present upstream",
            "flag_values": np.array([0, 1], dtype=np.int8),
            "flag_meanings": "absent present",
        },
    )
    data_vars["rul"] = (
        dims,
        rul,
        {
            "units": "1",
            "long_name": "remaining useful life, operational cycles",
            "comment": (
                "last cycle minus cycle (0 at failure)"
                if rul_at_end is None
                else "true RUL after the last cycle (RUL file) plus the cycles to the last cycle"
            ),
        },
    )
    data_vars["last_cycle"] = (
        ("unit",),
        last,
        {"units": "1", "long_name": "last operational cycle recorded for the unit"},
    )
    if rul_at_end is not None:
        data_vars["rul_at_end"] = (
            ("unit",),
            rul_at_end,
            {
                "units": "1",
                "long_name": "true remaining useful life after the last cycle, cycles",
                "upstream_file": f"RUL_{params.subset}.txt",
            },
        )
    ds = xr.Dataset(
        data_vars,
        coords={
            "unit": ("unit", units, {"units": "1", "long_name": "engine unit number"}),
            "cycle": ("cycle", cycles, {"units": "1", "long_name": "time, operational cycles"}),
        },
        attrs={
            "subset": params.subset,
            "split": params.split,
            "operating_conditions": SUBSETS[params.subset][0],
            "fault_modes": SUBSETS[params.subset][1],
        },
    )
    trajectories = "run-to-failure" if params.split == "train" else "truncated (test)"
    return conventions.finish(
        ds,
        title=f"NASA C-MAPSS turbofan engine degradation, {params.subset} {params.split}",
        summary=(
            f"{units.size} simulated turbofan engines, {trajectories} trajectories of 3 "
            f"operational settings and 21 sensors per cycle; operating conditions: "
            f"{SUBSETS[params.subset][0]}; fault modes: {SUBSETS[params.subset][1]}"
        ),
        source=(
            "NASA Ames Prognostics Center of Excellence, Prognostics Data Repository, 'Turbofan "
            "Engine Degradation Simulation Data Set' (CMAPSSData.zip); A. Saxena and K. Goebel "
            "(2008); read by smartfab loader cmapss"
        ),
        parameters={**params.model_dump(mode="json"), "files": files},
        license=(
            "no licence text in the data files; NASA PCoE asks to cite A. Saxena and K. Goebel "
            "(2008), Turbofan Engine Degradation Simulation Data Set, NASA Ames Prognostics Data "
            "Repository (believed to be a U.S. Government work)"
        ),
        references=(
            "Saxena A., Goebel K., Simon D., Eklund N. (2008) Damage propagation modeling for "
            "aircraft engine run-to-failure simulation, Proc. 1st Int. Conf. on Prognostics and "
            "Health Management (PHM08), Denver CO"
        ),
        keywords="turbofan, C-MAPSS, prognostics, remaining useful life, degradation",
        ground_truth=(
            "rul: remaining useful life in cycles at each observed cycle; train: last cycle "
            "minus cycle; test: RUL_FD00x.txt value plus the cycles to the unit's last cycle"
        ),
    )


LOADER = Loader(
    name=NAME,
    params=CmapssParams,
    read=read,
    description="NASA C-MAPSS turbofan degradation text files (train/test/RUL, FD001-FD004)",
    files=("train_FD00[1-4].txt", "test_FD00[1-4].txt", "RUL_FD00[1-4].txt"),
)
