"""NASA Ames / UC Berkeley milling data (Agogino and Goebel 2007): ``mill.mat``.

Upstream format
---------------
``mill.mat`` holds one variable, ``mill``: a 1x167 MATLAB struct array, one element per run,
with the fields (Goebel and Agogino, "Documentation for Mill Data Set")::

    case         case number, 1-16 (depth of cut, feed and material are fixed per case)
    run          counter of the runs within a case
    VB           flank wear after the run, mm; NaN (or empty) when it was not measured
    time         duration of the experiment, restarting for each case
    DOC          depth of cut, mm (1.5 or 0.75)
    feed         feed, mm per revolution (0.5 or 0.25)
    material     1 cast iron, 2 stainless steel J45
    smcAC        AC spindle motor current      \
    smcDC        DC spindle motor current       |
    vib_table    table vibration                | 9000x1 double each, sampled at 250 Hz
    vib_spindle  spindle vibration              |
    AE_table     acoustic emission at table     |
    AE_spindle   acoustic emission at spindle  /

The scalar fields are 1x1 doubles. The vibration and acoustic-emission signals went through
amplifiers, filters and an RMS meter (time constant 8 ms) before the data-acquisition board; the
documentation gives no unit or calibration for any signal, so they are kept as recorded (volts,
the board's input, is assumed). Cutting speed was 200 m/min (826 rev/min) with a 70 mm face mill
(6 KC710 inserts) on a Matsuura MC-510V machining center.

Output
------
Dimensions ``run`` (position in the struct array, 1-based as in MATLAB ``mill(k)``) and
``time`` (250 Hz). The loader does not assume 9000 samples: shorter runs are padded with NaN and
``length`` gives each run's samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from numpy.typing import NDArray
from pydantic import Field, field_validator

from smartfab.datasets import conventions
from smartfab.datasets.loaders import upstream
from smartfab.datasets.registry import Loader, Params
from smartfab.errors import DatasetError

NAME = "nasa-milling"
FILE = "mill.mat"
VARIABLE = "mill"
SAMPLING_RATE = 250.0
SCALAR_FIELDS = ("case", "run", "VB", "time", "DOC", "feed", "material")
#: signal fields and their long names
SIGNAL_FIELDS: dict[str, str] = {
    "smcAC": "AC spindle motor current sensor output",
    "smcDC": "DC spindle motor current sensor output",
    "vib_table": "table vibration, RMS after amplifier and band-pass filter",
    "vib_spindle": "spindle vibration, RMS after amplifier and band-pass filter",
    "AE_table": "acoustic emission at the table, RMS after amplifier and filter",
    "AE_spindle": "acoustic emission at the spindle, RMS after amplifier and filter",
}
MATERIALS = {1: "cast_iron", 2: "steel"}


class MillingParams(Params):
    """Parameters of the NASA milling loader."""

    cases: tuple[int, ...] | None = Field(
        None, description="cases to keep (1-16); default: all runs"
    )
    verify: bool = Field(True, description="check the sha256 of known upstream files")

    @field_validator("cases")
    @classmethod
    def _cases_valid(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None:
            if not value:
                raise ValueError("give at least one case, or leave cases unset for all")
            bad = [case for case in value if not 1 <= case <= 16]
            if bad:
                raise ValueError(f"cases are numbered 1 to 16 (got {bad})")
        return value


def _file(path: Path) -> Path:
    if path.is_dir():
        return upstream.require_file(NAME, path / FILE, "NASA milling data file")
    return path


def _elements(file: Path) -> list[Any]:
    content = upstream.load_mat(NAME, file, squeeze_me=True, struct_as_record=False)
    if VARIABLE not in content:
        names = ", ".join(sorted(k for k in content if not k.startswith("__"))) or "none"
        raise DatasetError(f"{NAME}: {file} has no variable {VARIABLE!r} (found: {names})")
    elements = list(np.atleast_1d(np.asarray(content[VARIABLE], dtype=object)).ravel())
    if not elements:
        raise DatasetError(f"{NAME}: {file}: {VARIABLE!r} is empty")
    for k, element in enumerate(elements, start=1):
        fields = getattr(element, "_fieldnames", None)
        if fields is None:
            raise DatasetError(
                f"{NAME}: {file}: {VARIABLE!r} is not a struct array "
                f"(element {k} is {type(element).__name__})"
            )
        missing = [f for f in (*SCALAR_FIELDS, *SIGNAL_FIELDS) if f not in fields]
        if missing:
            raise DatasetError(
                f"{NAME}: {file}: {VARIABLE}({k}) lacks the fields {', '.join(missing)} "
                f"(has: {', '.join(fields)})"
            )
    return elements


def _scalar(file: Path, k: int, field: str, value: Any) -> float:
    array = np.asarray(value)
    if array.size == 0:
        return float("nan")
    if array.size != 1 or not np.issubdtype(array.dtype, np.number):
        raise DatasetError(
            f"{NAME}: {file}: {VARIABLE}({k}).{field} is {array.dtype} of shape {array.shape}, "
            "expected one number"
        )
    return float(array.ravel()[0])


def _signal(file: Path, k: int, field: str, value: Any) -> NDArray[np.float64]:
    array = np.asarray(value)
    if array.size and (
        not np.issubdtype(array.dtype, np.number) or sum(n > 1 for n in array.shape) > 1
    ):
        raise DatasetError(
            f"{NAME}: {file}: {VARIABLE}({k}).{field} is {array.dtype} of shape {array.shape}, "
            "expected a numeric vector (n x 1)"
        )
    return array.astype(np.float64).ravel()


def _integral(file: Path, field: str, values: NDArray[np.float64], runs: list[int]) -> None:
    bad = [run for run, v in zip(runs, values, strict=True) if not float(v).is_integer()]
    if bad:
        raise DatasetError(
            f"{NAME}: {file}: field {field} is not a whole number in runs {bad[:10]}"
        )


def read(path: Path, params: MillingParams) -> xr.Dataset:
    """Read the milling runs of ``mill.mat``.

    Parameters
    ----------
    path:
        The directory holding ``mill.mat``, or the file itself.
    params:
        Validated parameters (cases to keep, verify).

    Returns
    -------
    xarray.Dataset
        The six signals on (``run``, ``time``); per run ``VB`` (flank wear, mm, NaN where not
        measured), ``case``, ``case_run``, ``machining_time``, ``DOC``, ``feed``, ``material``
        and ``length``.

    Raises
    ------
    DatasetError
        For a missing or unreadable file, no ``mill`` struct array, missing fields, fields of
        the wrong shape, invalid case or material numbers, or no run of the selected cases.
    ChecksumError
        When a known upstream file has other content (and ``verify`` is true).
    """
    file = _file(path)
    sha = upstream.check_file(NAME, file, verify=params.verify)
    elements = _elements(file)
    scalars = np.array(
        [
            [_scalar(file, k, f, getattr(e, f)) for f in SCALAR_FIELDS]
            for k, e in enumerate(elements, start=1)
        ],
        dtype=np.float64,
    ).reshape(len(elements), len(SCALAR_FIELDS))
    column = {f: scalars[:, i] for i, f in enumerate(SCALAR_FIELDS)}
    runs = list(range(1, len(elements) + 1))
    for field in ("case", "material"):
        _integral(file, field, column[field], runs)
    bad_case = [r for r, c in zip(runs, column["case"], strict=True) if not 1 <= c <= 16]
    if bad_case:
        raise DatasetError(f"{NAME}: {file}: case is not in 1-16 in runs {bad_case[:10]}")
    bad_material = [
        r for r, m in zip(runs, column["material"], strict=True) if int(m) not in MATERIALS
    ]
    if bad_material:
        raise DatasetError(
            f"{NAME}: {file}: material is not 1 (cast iron) or 2 (steel) in runs "
            f"{bad_material[:10]}"
        )
    keep = np.ones(len(elements), dtype=bool)
    if params.cases is not None:
        keep = np.isin(column["case"].astype(np.int64), params.cases)
        if not keep.any():
            found = sorted({int(c) for c in column["case"]})
            raise DatasetError(f"{NAME}: {file} has no run of cases {list(params.cases)} ({found})")
    index = np.flatnonzero(keep)
    signals = {
        f: [_signal(file, int(k) + 1, f, getattr(elements[k], f)) for k in index]
        for f in SIGNAL_FIELDS
    }
    lengths = np.array(
        [max(len(signals[f][i]) for f in SIGNAL_FIELDS) for i in range(index.size)],
        dtype=np.int64,
    )
    n_time = int(lengths.max())
    data_vars: dict[str, Any] = {}
    for f, long_name in SIGNAL_FIELDS.items():
        values = np.full((index.size, n_time), np.nan)
        for i, signal in enumerate(signals[f]):
            values[i, : signal.size] = signal
        data_vars[f] = (
            ("run", "time"),
            values,
            {
                "units": "V",
                "long_name": long_name,
                "upstream_field": f,
                "comment": (
                    "as recorded; the documentation gives no unit (volts at the data-acquisition "
                    "board assumed); NaN after the run's length"
                ),
            },
        )
    per_run = ("run",)
    case = column["case"][index].astype(np.int16)
    data_vars.update(
        {
            "VB": (
                per_run,
                column["VB"][index],
                {
                    "units": "mm",
                    "long_name": "flank wear of the inserts after the run",
                    "comment": "measured with a microscope at irregular intervals; NaN: not "
                    "measured after this run",
                },
            ),
            "case": (
                per_run,
                case,
                {
                    "units": "1",
                    "long_name": "case number (fixed depth of cut, feed and material; 1-16)",
                },
            ),
            "case_run": (
                per_run,
                column["run"][index],
                {"units": "1", "long_name": "counter of the run within its case (field run)"},
            ),
            "machining_time": (
                per_run,
                column["time"][index],
                {
                    "units": "min",
                    "long_name": "duration of the experiment, restarting for each case",
                    "upstream_field": "time",
                    "comment": "the documentation gives no unit; minutes are the usual reading",
                },
            ),
            "DOC": (
                per_run,
                column["DOC"][index],
                {"units": "mm", "long_name": "depth of cut"},
            ),
            "feed": (
                per_run,
                column["feed"][index],
                {
                    "units": "mm",
                    "long_name": "feed per spindle revolution",
                    "comment": "0.5 and 0.25 mm/rev, i.e. 413 and 206.5 mm/min at 826 rev/min",
                },
            ),
            "material": (
                per_run,
                column["material"][index].astype(np.int8),
                {
                    "units": "1",
                    "long_name": "workpiece material",
                    "flag_values": np.array(list(MATERIALS), dtype=np.int8),
                    "flag_meanings": " ".join(MATERIALS.values()),
                    "comment": "2 is stainless steel J45",
                },
            ),
            "length": (
                per_run,
                lengths,
                {"units": "1", "long_name": "number of samples recorded"},
            ),
        }
    )
    ds = xr.Dataset(
        data_vars,
        coords={
            "run": (
                "run",
                index.astype(np.int64) + 1,
                {"units": "1", "long_name": "position of the run in the mill struct array"},
            ),
            "time": (
                "time",
                np.arange(n_time) / SAMPLING_RATE,
                {"units": "s", "long_name": "time since start of run"},
            ),
        },
        attrs={
            "sampling_rate_hz": SAMPLING_RATE,
            "cutting_speed_m_per_min": 200.0,
            "spindle_speed_rev_per_min": 826.0,
            "machine": "Matsuura MC-510V machining center, 70 mm face mill, 6 KC710 inserts",
        },
    )
    return conventions.finish(
        ds,
        title="NASA milling data (UC Berkeley), tool wear",
        summary=(
            f"{index.size} milling runs of 16 cases (2 depths of cut, 2 feeds, cast iron and "
            "steel): spindle motor current, vibration and acoustic emission at 250 Hz, with the "
            "flank wear VB measured between runs"
        ),
        source=(
            "NASA Ames Prognostics Data Repository, 'Milling Data Set' (mill.mat); A. Agogino and "
            "K. Goebel (2007), BEST lab, UC Berkeley; read by smartfab loader nasa-milling"
        ),
        parameters={**params.model_dump(mode="json"), "files": {file.name: sha}},
        license=(
            "NASA Prognostics Data Repository data, a U.S. Government work (no copyright in the "
            "United States); cite A. Agogino and K. Goebel (2007), Milling Data Set"
        ),
        references=(
            "Agogino A., Goebel K. (2007) Milling Data Set, BEST lab, UC Berkeley, NASA Ames "
            "Prognostics Data Repository; Goebel K. (1996) PhD thesis, UC Berkeley"
        ),
        keywords="milling, tool wear, flank wear, acoustic emission, vibration, motor current",
        ground_truth=(
            "VB: flank wear in mm measured after some runs (NaN where not measured); case, "
            "DOC, feed and material: cutting conditions per run"
        ),
    )


LOADER = Loader(
    name=NAME,
    params=MillingParams,
    read=read,
    description="NASA/UC Berkeley milling runs (mill.mat): motor current, vibration, AE, VB",
    files=(FILE,),
)
