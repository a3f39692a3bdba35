"""CWRU bearing data: drive-end fault and normal-baseline records in their MATLAB v5 files.

Upstream format
---------------
The Case Western Reserve University Bearing Data Center offers one MATLAB v5 file per record,
named by the record number (``97.mat``, ``105.mat``, ...). A file holds, for record ``nnn``
(zero-padded to three digits), float64 column vectors of shape ``(n, 1)``::

    XnnnRPM        uint16 (1, 1)  shaft speed during the test, min-1 (missing in a few files)
    Xnnn_DE_time   drive-end accelerometer, g
    Xnnn_FE_time   fan-end accelerometer, g
    Xnnn_BA_time   base accelerometer, g (missing in the normal-baseline files, e.g. 97.mat)

Copies renamed by third parties (``12k_Drive_End_IR007_0_105.mat``) are accepted: the record
number is the trailing number of the file name, or else the number in the variable names.

The test rig is a 2 hp motor whose drive-end bearing (SKF 6205-2RS JEM) had single-point EDM
faults of 0.007, 0.014, 0.021 and 0.028 in diameter on the inner race, a ball or the outer race
(at 3, 6 or 12 o'clock relative to the load zone), at motor loads of 0 to 3 hp. The drive-end
fault records and the normal baseline were sampled at 12 kHz. (The normal-baseline records are
sometimes said to be sampled at 48 kHz; in 97.mat the shaft-speed harmonics fall at 29.9, 59.9
and 89.8 Hz only when read at 12 kHz, which a real-data test checks.)

Output
------
Dimensions ``record`` and ``time`` (12 kHz). Records have different lengths: by default they are
padded with NaN at the end (``length`` gives each record's samples); ``align="truncate"`` cuts
all to the shortest. A channel absent from a file (BA in 97.mat) is NaN for that record.
Accelerations are converted from g (the upstream unit) to m s-2 with 1 g = 9.80665 m s-2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import xarray as xr
from numpy.typing import NDArray
from pydantic import Field, field_validator

from smartfab.datasets import conventions
from smartfab.datasets.loaders import upstream
from smartfab.datasets.registry import Loader, Params
from smartfab.errors import DatasetError

NAME = "cwru"
#: standard gravity, m s-2 per g
STANDARD_GRAVITY = 9.80665
INCH_MM = 25.4
CHANNELS: dict[str, str] = {
    "DE": "drive-end accelerometer (motor housing, 12 o'clock)",
    "FE": "fan-end accelerometer",
    "BA": "base (support plate) accelerometer",
}
Channel = Literal["DE", "FE", "BA"]

#: fault codes shared with the bearing generator (plus -1 for a record not in the table)
FAULT_CODES: dict[str, int] = {"unknown": -1, "none": 0, "outer": 1, "inner": 2, "ball": 3}
FAULT_MEANINGS = "unknown none outer_race inner_race rolling_element"
#: outer-race fault position, o'clock (0: not an outer-race fault, -1: unknown record)
POSITION_VALUES = (-1, 0, 3, 6, 12)
POSITION_MEANINGS = "unknown not_outer_race at_3_oclock at_6_oclock at_12_oclock"

#: SKF 6205-2RS JEM drive-end bearing, inches, and its defect frequencies per shaft frequency
BEARING_6205 = {
    "n_balls": 9,
    "ball_diameter_in": 0.3126,
    "pitch_diameter_in": 1.537,
    "inner_diameter_in": 0.9843,
    "outer_diameter_in": 2.0472,
}
DEFECT_RATIOS: dict[str, float] = {"BPFO": 3.5848, "BPFI": 5.4152, "BSF": 2.357, "FTF": 0.3983}

#: nominal shaft speed per motor load (CWRU tables), min-1
NOMINAL_RPM: dict[int, int] = {0: 1797, 1: 1772, 2: 1750, 3: 1730}

#: 12 kHz drive-end records: (fault, diameter in, o'clock, records at 0, 1, 2 and 3 hp)
RECORD_TABLE: tuple[tuple[str, float, int, tuple[int, int, int, int]], ...] = (
    ("none", 0.0, 0, (97, 98, 99, 100)),
    ("inner", 0.007, 0, (105, 106, 107, 108)),
    ("ball", 0.007, 0, (118, 119, 120, 121)),
    ("outer", 0.007, 6, (130, 131, 132, 133)),
    ("outer", 0.007, 3, (144, 145, 146, 147)),
    ("outer", 0.007, 12, (156, 158, 159, 160)),
    ("inner", 0.014, 0, (169, 170, 171, 172)),
    ("ball", 0.014, 0, (185, 186, 187, 188)),
    ("outer", 0.014, 6, (197, 198, 199, 200)),
    ("inner", 0.021, 0, (209, 210, 211, 212)),
    ("ball", 0.021, 0, (222, 223, 224, 225)),
    ("outer", 0.021, 6, (234, 235, 236, 237)),
    ("outer", 0.021, 3, (246, 247, 248, 249)),
    ("outer", 0.021, 12, (258, 259, 260, 261)),
    ("inner", 0.028, 0, (3001, 3002, 3003, 3004)),
    ("ball", 0.028, 0, (3005, 3006, 3007, 3008)),
)

_SIGNAL = re.compile(r"^X(\d+)_(DE|FE|BA)_time$")
_RPM = re.compile(r"^X(\d+)RPM$")
_TRAILING_NUMBER = re.compile(r"(\d+)$")


@dataclass(frozen=True)
class RecordInfo:
    """What the CWRU tables say about one record.

    Attributes
    ----------
    number:
        Record number.
    fault:
        ``none``, ``inner``, ``ball`` or ``outer``.
    diameter_in:
        Fault diameter, inches (0 for the normal baseline).
    position:
        Outer-race fault position in o'clock (3, 6 or 12), 0 otherwise.
    load_hp:
        Motor load, hp.
    """

    number: int
    fault: str
    diameter_in: float
    position: int
    load_hp: int

    @property
    def label(self) -> str:
        """The CWRU label, e.g. ``Normal_0``, ``IR007_0``, ``OR007@6_0``."""
        if self.fault == "none":
            return f"Normal_{self.load_hp}"
        code = {"inner": "IR", "ball": "B", "outer": "OR"}[self.fault]
        size = f"{round(self.diameter_in * 1000):03d}"
        where = f"@{self.position}" if self.fault == "outer" else ""
        return f"{code}{size}{where}_{self.load_hp}"

    @property
    def nominal_rpm(self) -> int:
        """Nominal shaft speed at this record's load, min-1."""
        return NOMINAL_RPM[self.load_hp]


def record_info(number: int) -> RecordInfo | None:
    """Look up a 12 kHz drive-end or normal-baseline record in the CWRU tables.

    Parameters
    ----------
    number:
        Record number, e.g. 105.

    Returns
    -------
    RecordInfo or None
        ``None`` for a record not in :data:`RECORD_TABLE`.
    """
    for fault, diameter, position, numbers in RECORD_TABLE:
        if number in numbers:
            return RecordInfo(number, fault, diameter, position, numbers.index(number))
    return None


class CwruParams(Params):
    """Parameters of the CWRU loader."""

    records: tuple[int | str, ...] | None = Field(
        None,
        description=(
            "record numbers (97) or file names ('97.mat') inside the directory; "
            "default: every .mat file in it"
        ),
    )
    channels: tuple[Channel, ...] = Field(
        ("DE", "FE", "BA"), description="accelerometers to read: DE, FE, BA"
    )
    align: Literal["pad", "truncate"] = Field(
        "pad", description="pad shorter records with NaN, or truncate all to the shortest"
    )
    sampling_rate: Literal[12000, 48000] = Field(
        12000, description="sampling rate of the records, Hz (48000 for the 48k drive-end set)"
    )
    verify: bool = Field(True, description="check the sha256 of known upstream files")

    @field_validator("records")
    @classmethod
    def _records_valid(cls, value: tuple[int | str, ...] | None) -> tuple[int | str, ...] | None:
        if value is not None and not value:
            raise ValueError("give at least one record, or leave records unset for all")
        for item in value or ():
            if isinstance(item, int) and item <= 0:
                raise ValueError(f"record numbers are positive (got {item})")
            if isinstance(item, str) and (not item or "/" in item or "\\" in item):
                raise ValueError(f"give a file name inside the directory (got {item!r})")
        return value

    @field_validator("channels")
    @classmethod
    def _channels_valid(cls, value: tuple[Channel, ...]) -> tuple[Channel, ...]:
        if not value:
            raise ValueError("give at least one channel")
        if len(set(value)) != len(value):
            raise ValueError(f"channels are repeated: {list(value)}")
        return value


@dataclass
class _Record:
    number: int
    file: Path
    sha256: str
    signals: dict[str, NDArray[np.float64]]
    rpm: float | None


def _number_in_name(file: Path) -> int | None:
    match = _TRAILING_NUMBER.search(file.stem)
    return int(match.group(1)) if match else None


def _find_record(directory: Path, number: int) -> Path:
    exact = directory / f"{number}.mat"
    if exact.is_file():
        return exact
    found = sorted(f for f in directory.glob("*.mat") if _number_in_name(f) == number)
    if len(found) == 1:
        return found[0]
    if found:
        names = ", ".join(f.name for f in found)
        raise DatasetError(f"{NAME}: record {number} is in several files in {directory}: {names}")
    raise DatasetError(
        f"{NAME}: record {number} is missing: no {exact.name} (nor a file whose name ends in "
        f"_{number}.mat) in {directory}"
    )


def _files(path: Path, params: CwruParams) -> list[tuple[Path, int | None]]:
    """The files to read, each with the record number asked for (if any)."""
    if path.is_file():
        if params.records is not None:
            raise DatasetError(
                f"{NAME}: {path} is a single file; records={list(params.records)} needs the "
                "directory holding the records"
            )
        return [(path, None)]
    if params.records is None:
        files = sorted(path.glob("*.mat"), key=lambda f: (_number_in_name(f) or 0, f.name))
        if not files:
            raise DatasetError(f"{NAME}: no .mat files in {path} (expected e.g. 97.mat)")
        return [(f, None) for f in files]
    chosen: list[tuple[Path, int | None]] = []
    for item in params.records:
        if isinstance(item, int) or item.isdigit():
            number = int(item)
            chosen.append((_find_record(path, number), number))
        else:
            file = upstream.require_file(NAME, path / item, "CWRU record file")
            chosen.append((file, None))
    return chosen


def _read_file(file: Path, wanted: int | None, params: CwruParams) -> _Record:
    sha = upstream.check_file(NAME, file, verify=params.verify)
    content = upstream.load_mat(NAME, file)
    names = sorted(k for k in content if not k.startswith("__"))
    in_file = {int(m.group(1)) for k in names if (m := _SIGNAL.match(k))}
    if not in_file:
        raise DatasetError(
            f"{NAME}: {file} has no Xnnn_DE_time, Xnnn_FE_time or Xnnn_BA_time variable "
            f"(found: {', '.join(names) or 'none'})"
        )
    hint = wanted if wanted is not None else _number_in_name(file)
    if hint in in_file:
        number = hint
    elif len(in_file) == 1:
        (number,) = in_file
    else:
        raise DatasetError(
            f"{NAME}: {file} holds records {sorted(in_file)}; name the file after one of them"
        )
    signals: dict[str, NDArray[np.float64]] = {}
    rpm: float | None = None
    for key in names:
        if (m := _SIGNAL.match(key)) and int(m.group(1)) == number:
            value = np.asarray(content[key])
            if value.ndim != 2 or 1 not in value.shape or not np.issubdtype(value.dtype, np.number):
                raise DatasetError(
                    f"{NAME}: {file}: {key} is {value.dtype} of shape {value.shape}, expected a "
                    "numeric column vector (n, 1)"
                )
            signals[m.group(2)] = value.astype(np.float64).ravel() * STANDARD_GRAVITY
        elif (m := _RPM.match(key)) and int(m.group(1)) == number:
            value = np.asarray(content[key])
            if value.size != 1 or not np.issubdtype(value.dtype, np.number):
                raise DatasetError(
                    f"{NAME}: {file}: {key} is {value.dtype} of shape {value.shape}, expected "
                    "one number (1, 1)"
                )
            rpm = float(value.ravel()[0])
    return _Record(number, file, sha, signals, rpm)


def _per_record(records: list[_Record]) -> dict[str, NDArray[np.generic]]:
    """Ground truth and metadata per record, from the CWRU tables."""
    info = [record_info(r.number) for r in records]
    rpm = [
        r.rpm if r.rpm is not None else (i.nominal_rpm if i is not None else np.nan)
        for r, i in zip(records, info, strict=True)
    ]
    return {
        "fault": np.array([FAULT_CODES[i.fault] if i else -1 for i in info], dtype=np.int8),
        "diameter": np.array([i.diameter_in * INCH_MM if i else np.nan for i in info]),
        "position": np.array([i.position if i else -1 for i in info], dtype=np.int8),
        "load": np.array([float(i.load_hp) if i else np.nan for i in info]),
        "rpm": np.array(rpm, dtype=np.float64),
        "label": np.array([i.label if i else "unknown" for i in info], dtype=object),
    }


def read(path: Path, params: CwruParams) -> xr.Dataset:
    """Read CWRU records from a directory of ``<record>.mat`` files, or from one such file.

    Parameters
    ----------
    path:
        A directory holding the upstream ``.mat`` files, or a single file.
    params:
        Validated parameters (records, channels, alignment, sampling rate, verify).

    Returns
    -------
    xarray.Dataset
        Accelerations ``DE``, ``FE``, ``BA`` (m s-2) on (``record``, ``time``); per record
        ``length``, ``rpm``, ``fault``, ``fault_diameter``, ``fault_position``, ``load``,
        ``label``, ``file`` and ``defect_frequency`` (on ``defect``).

    Raises
    ------
    DatasetError
        For a missing file, a file without the expected variables, a record read twice, or a
        requested channel that no record has.
    ChecksumError
        When a known upstream file has other content (and ``verify`` is true).
    """
    records: list[_Record] = []
    for file, wanted in _files(path, params):
        record = _read_file(file, wanted, params)
        for earlier in records:
            if earlier.number == record.number:
                raise DatasetError(
                    f"{NAME}: record {record.number} is read twice ({earlier.file.name} and "
                    f"{record.file.name})"
                )
        records.append(record)
    for channel in params.channels:
        if not any(channel in r.signals for r in records):
            raise DatasetError(
                f"{NAME}: no record has the {channel} channel (X<nnn>_{channel}_time); "
                f"files: {', '.join(r.file.name for r in records)}"
            )
    lengths = np.array([max(len(s) for s in r.signals.values()) for r in records], dtype=np.int64)
    n_time = int(lengths.max() if params.align == "pad" else lengths.min())
    fs = float(params.sampling_rate)
    data_vars: dict[str, tuple[tuple[str, ...], NDArray[np.generic], dict[str, object]]] = {}
    for channel in params.channels:
        values = np.full((len(records), n_time), np.nan)
        missing = []
        for k, r in enumerate(records):
            signal = r.signals.get(channel)
            if signal is None:
                missing.append(r.number)
                continue
            values[k, : min(n_time, signal.size)] = signal[:n_time]
        attrs: dict[str, object] = {
            "units": "m s-2",
            "long_name": f"acceleration, {CHANNELS[channel]}",
            "upstream_variable": f"X<record>_{channel}_time",
            "comment": (
                "converted from g, the upstream unit, with 1 g = 9.80665 m s-2"
                + ("; NaN after each record's length" if params.align == "pad" else "")
                + (f"; not recorded in records {missing} (NaN)" if missing else "")
            ),
        }
        data_vars[channel] = (("record", "time"), values, attrs)
    truth = _per_record(records)
    measured = [r.number for r in records if r.rpm is not None]
    shaft_hz = truth["rpm"].astype(np.float64) / 60.0
    defects = np.stack([shaft_hz * ratio for ratio in DEFECT_RATIOS.values()], axis=1)
    per_record = ("record",)
    data_vars.update(
        {
            "length": (
                per_record,
                lengths,
                {"units": "1", "long_name": "number of samples recorded"},
            ),
            "rpm": (
                per_record,
                truth["rpm"],
                {
                    "units": "min-1",
                    "long_name": "motor shaft speed",
                    "comment": (
                        "from the X<record>RPM variable of the file; the nominal speed of the "
                        "record's load where a file has none" + f" (measured in records {measured})"
                    ),
                },
            ),
            "fault": (
                per_record,
                truth["fault"],
                {
                    "units": "1",
                    "long_name": "drive-end bearing fault location",
                    "flag_values": np.array(list(FAULT_CODES.values()), dtype=np.int8),
                    "flag_meanings": FAULT_MEANINGS,
                },
            ),
            "fault_diameter": (
                per_record,
                truth["diameter"],
                {
                    "units": "mm",
                    "long_name": "diameter of the EDM fault (0 for the normal baseline)",
                    "comment": "CWRU table value in inches times 25.4; NaN for unknown records",
                },
            ),
            "fault_position": (
                per_record,
                truth["position"],
                {
                    "units": "1",
                    "long_name": "outer-race fault position relative to the load zone, o'clock",
                    "flag_values": np.array(POSITION_VALUES, dtype=np.int8),
                    "flag_meanings": POSITION_MEANINGS,
                },
            ),
            "motor_load": (
                per_record,
                truth["load"],
                {
                    "units": "hp",
                    "long_name": "motor load",
                    "comment": "horsepower as in the CWRU tables (1 hp = 745.7 W)",
                },
            ),
            "label": (
                per_record,
                truth["label"],
                {"units": "1", "long_name": "CWRU record label (fault, size in mils, load)"},
            ),
            "file": (
                per_record,
                np.array([r.file.name for r in records], dtype=object),
                {"units": "1", "long_name": "upstream file name"},
            ),
            "defect_frequency": (
                ("record", "defect"),
                defects,
                {
                    "units": "Hz",
                    "long_name": "characteristic defect frequency of the drive-end bearing",
                    "comment": "ratio times the shaft frequency rpm / 60 (SKF 6205-2RS JEM)",
                },
            ),
        }
    )
    ds = xr.Dataset(
        data_vars,
        coords={
            "record": (
                "record",
                np.array([r.number for r in records], dtype=np.int64),
                {"units": "1", "long_name": "CWRU record number"},
            ),
            "time": (
                "time",
                np.arange(n_time) / fs,
                {"units": "s", "long_name": "time since start of record"},
            ),
            "defect": (
                "defect",
                np.array(list(DEFECT_RATIOS), dtype=object),
                {
                    "units": "1",
                    "long_name": (
                        "defect frequency: ball pass outer race, ball pass inner race, ball "
                        "spin, fundamental train (cage)"
                    ),
                },
            ),
        },
        attrs={
            "sampling_rate_hz": fs,
            "bearing_drive_end": "SKF 6205-2RS JEM deep-groove ball bearing",
            "bearing_fan_end": "SKF 6203-2RS JEM deep-groove ball bearing",
            **{f"bearing_{key}": value for key, value in BEARING_6205.items()},
            **{f"{key}_per_shaft_frequency": value for key, value in DEFECT_RATIOS.items()},
        },
    )
    files = {r.file.name: r.sha256 for r in records}
    return conventions.finish(
        ds,
        title="CWRU bearing data, 12k drive end and normal baseline",
        summary=(
            f"Vibration of a 2 hp motor test rig with single-point EDM faults on the drive-end "
            f"bearing, {len(records)} record(s), accelerations at the drive end, fan end and "
            "base, converted from g to m s-2"
        ),
        source=(
            "Case Western Reserve University Bearing Data Center, "
            "https://engineering.case.edu/bearingdatacenter (Normal Baseline Data, 12k Drive End "
            "Bearing Fault Data), MATLAB files read by smartfab loader cwru"
        ),
        parameters={**params.model_dump(mode="json"), "files": files},
        license=(
            "no explicit licence upstream: free download from the CWRU Bearing Data Center; "
            "acknowledge the Case Western Reserve University Bearing Data Center"
        ),
        references=(
            "Case Western Reserve University Bearing Data Center, "
            "https://engineering.case.edu/bearingdatacenter; Smith W.A., Randall R.B. (2015) "
            "Rolling element bearing diagnostics using the Case Western Reserve University data: "
            "a benchmark study, Mech. Syst. Signal Process. 64-65:100-131"
        ),
        keywords="bearing, vibration, fault diagnosis, envelope analysis, CWRU",
        ground_truth=(
            "fault: fault location per record (none, inner race, rolling element, outer race); "
            "fault_diameter: EDM fault diameter; fault_position: outer-race fault position; "
            "motor_load: motor load; rpm: shaft speed; defect_frequency: expected impact rates; "
            "all from the CWRU tables and files, -1 or NaN for records not in the table"
        ),
    )


LOADER = Loader(
    name=NAME,
    params=CwruParams,
    read=read,
    description="CWRU bearing data center, 12 kHz drive-end and normal-baseline .mat records",
    files=("*.mat",),
)
