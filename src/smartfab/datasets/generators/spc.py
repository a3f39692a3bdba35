"""Process-quality measurement stream for statistical process control, with injected shifts.

Model
-----
At each sampling instant ``i`` (every ``sample_interval``) a subgroup of ``subgroup_size`` parts
is measured (``subgroup_size = 1``: individual values), e.g. a turned diameter in mm::

    x_ij = mu + sigma (o_i + s_i z_ij),     z_ij ~ N(0, 1) independent

with the in-control mean ``mu`` and standard deviation ``sigma``. Disturbances ("shifts") act
from a known onset for a known number of samples (or to the end) and add up:

* ``mean``: a step of ``magnitude`` sigma in the mean, ``o_i += magnitude``;
* ``variance``: the standard deviation is multiplied by ``magnitude``, ``s_i *= magnitude``;
* ``drift``: a trend of ``magnitude`` sigma per sample, ``o_i += magnitude (i - onset + 1)``.

A sample is in control when no disturbance is active. Optionally values are rounded to the gauge
``resolution``. With the known in-control parameters, the Shewhart rule-1 chart of the subgroup
means has limits ``mu +/- 3 sigma / sqrt(n)``; its in-control average run length is
``1 / 0.0027 = 370.4`` and, for individuals, 6.3 after a 2-sigma mean shift (Montgomery).

References
----------
D. C. Montgomery, Introduction to Statistical Quality Control, 8th ed., Wiley, 2019.
ISO 7870-2:2023, Control charts -- Part 2: Shewhart control charts.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr
from pydantic import Field, model_validator

from smartfab.datasets import conventions
from smartfab.datasets.registry import Generator, Params

NAME = "process-quality"
VERSION = "1.0"

KINDS = ("mean", "variance", "drift")
#: per-sample bit of each disturbance kind in ``disturbance``
MASKS = {"mean": 1, "variance": 2, "drift": 4}


class Shift(Params):
    """One injected disturbance (``kind``, ``onset`` sample, ``duration`` samples, magnitude)."""

    kind: Literal["mean", "variance", "drift"] = Field(
        description="mean: step of the mean; variance: sigma multiplied; drift: linear trend"
    )
    onset: int = Field(ge=0, description="index of the first affected sample, 1")
    duration: int | None = Field(
        None, ge=1, description="affected samples, 1 (None: to the end of the stream)"
    )
    magnitude: float = Field(
        description=(
            "mean: shift in in-control sigmas, 1; variance: ratio of the new to the in-control "
            "sigma, 1; drift: trend in in-control sigmas per sample, 1"
        )
    )

    @model_validator(mode="after")
    def _check_magnitude(self) -> Shift:
        if self.kind == "variance" and self.magnitude <= 0:
            raise ValueError(f"a variance shift needs magnitude > 0 (got {self.magnitude})")
        return self


DEFAULT_SHIFTS = (
    Shift(kind="mean", onset=150, duration=60, magnitude=2.0),
    Shift(kind="variance", onset=280, duration=60, magnitude=2.0),
    Shift(kind="drift", onset=420, duration=None, magnitude=0.03),
)


class SpcParams(Params):
    """Parameters of the process-quality stream simulator (units in each description)."""

    n_samples: int = Field(
        500, ge=1, le=50_000_000, description="number of sampling instants (subgroups), 1"
    )
    subgroup_size: int = Field(1, ge=1, le=100, description="parts measured per subgroup, 1")
    sample_interval: float = Field(60.0, gt=0, description="time between subgroups, s")
    mean: float = Field(25.0, description="in-control process mean, mm")
    sigma: float = Field(0.004, gt=0, description="in-control process standard deviation, mm")
    lower_spec_limit: float = Field(24.985, description="lower specification limit, mm")
    upper_spec_limit: float = Field(25.015, description="upper specification limit, mm")
    resolution: float = Field(
        0.0, ge=0, description="gauge resolution the values are rounded to, mm (0: none)"
    )
    shifts: tuple[Shift, ...] = Field(DEFAULT_SHIFTS, description="injected disturbances")

    @model_validator(mode="after")
    def _check(self) -> SpcParams:
        if self.lower_spec_limit >= self.upper_spec_limit:
            raise ValueError(
                f"lower_spec_limit ({self.lower_spec_limit} mm) must be below "
                f"upper_spec_limit ({self.upper_spec_limit} mm)"
            )
        late = [s.onset for s in self.shifts if s.onset >= self.n_samples]
        if late:
            raise ValueError(f"shift onsets {late} are not before n_samples ({self.n_samples})")
        if self.n_samples * self.subgroup_size > 50_000_000:
            raise ValueError("n_samples x subgroup_size must not exceed 5e7 measurements")
        return self


def build(params: SpcParams, seed: int) -> xr.Dataset:
    """Simulate a measurement stream with in-control periods and injected disturbances.

    Parameters
    ----------
    params:
        Validated parameters (see :class:`SpcParams`).
    seed:
        Seed of :func:`numpy.random.default_rng`; the same inputs give the same dataset.

    Returns
    -------
    xarray.Dataset
        Along ``time`` (s) and ``measurement``: the measured values (mm); along ``time``: the
        subgroup mean, the true mean and sigma, in-control flag and disturbance mask; along
        ``shift``: kind, onset (index and time), end and magnitude of each disturbance.
    """
    p = params
    rng = np.random.default_rng(seed)
    n = p.n_samples
    offset = np.zeros(n)
    scale = np.ones(n)
    mask = np.zeros(n, dtype=np.int8)
    ends = np.array(
        [n if s.duration is None else min(n, s.onset + s.duration) for s in p.shifts],
        dtype=np.int64,
    )
    for shift, end in zip(p.shifts, ends, strict=True):
        window = slice(shift.onset, int(end))
        if shift.kind == "mean":
            offset[window] += shift.magnitude
        elif shift.kind == "variance":
            scale[window] *= shift.magnitude
        else:
            offset[window] += shift.magnitude * np.arange(1, end - shift.onset + 1)
        mask[window] |= MASKS[shift.kind]

    values = p.mean + p.sigma * (
        offset[:, None] + scale[:, None] * rng.standard_normal((n, p.subgroup_size))
    )
    if p.resolution > 0:
        values = np.round(values / p.resolution) * p.resolution
    limit = 3.0 * p.sigma / np.sqrt(p.subgroup_size)
    time = np.arange(n) * p.sample_interval
    onsets = np.array([s.onset for s in p.shifts], dtype=np.int64)

    ds = xr.Dataset(
        coords={
            "time": (
                "time",
                time,
                {"units": "s", "long_name": "time of the subgroup since the start", "axis": "T"},
            ),
            "measurement": (
                "measurement",
                np.arange(p.subgroup_size, dtype=np.int32),
                {"units": "1", "long_name": "index of the part within the subgroup"},
            ),
        }
    )
    ds["diameter"] = (
        ("time", "measurement"),
        values,
        {
            "units": "mm",
            "long_name": "measured diameter",
            "lower_spec_limit": p.lower_spec_limit,
            "upper_spec_limit": p.upper_spec_limit,
        },
    )
    ds["subgroup_mean"] = (
        "time",
        values.mean(axis=1),
        {
            "units": "mm",
            "long_name": "mean of the subgroup's measured diameters",
            "center_line": p.mean,
            "lower_control_limit": p.mean - limit,
            "upper_control_limit": p.mean + limit,
            "comment": "control limits from the known in-control mean and sigma (rule 1: 3 sigma)",
        },
    )
    ds["true_mean"] = ("time", p.mean + p.sigma * offset, _attrs("mm", "true process mean"))
    ds["true_sigma"] = (
        "time",
        p.sigma * scale,
        _attrs("mm", "true process standard deviation"),
    )
    ds["in_control"] = (
        "time",
        (mask == 0).astype(np.int8),
        {
            **_attrs("1", "process in statistical control (ground truth)"),
            "flag_values": np.array([0, 1], dtype=np.int8),
            "flag_meanings": "out_of_control in_control",
        },
    )
    ds["disturbance"] = (
        "time",
        mask,
        {
            **_attrs("1", "disturbances active at the sample (ground truth)"),
            "flag_masks": np.array(list(MASKS.values()), dtype=np.int8),
            "flag_meanings": "mean_shift variance_increase drift",
        },
    )
    ds["shift_kind"] = (
        "shift",
        np.array([KINDS.index(s.kind) for s in p.shifts], dtype=np.int8),
        {
            **_attrs("1", "kind of the injected disturbance"),
            "flag_values": np.arange(len(KINDS), dtype=np.int8),
            "flag_meanings": "mean_shift variance_increase drift",
        },
    )
    ds["shift_onset"] = ("shift", onsets, _attrs("1", "index of the first affected sample"))
    ds["shift_onset_time"] = (
        "shift",
        onsets * p.sample_interval,
        _attrs("s", "time of the first affected sample"),
    )
    ds["shift_end"] = ("shift", ends, _attrs("1", "index after the last affected sample"))
    ds["shift_magnitude"] = (
        "shift",
        np.array([s.magnitude for s in p.shifts], dtype=np.float64),
        _attrs("1", "magnitude: sigmas (mean), sigma ratio (variance), sigmas per sample (drift)"),
    )
    return conventions.finish(
        ds,
        title="Process-quality measurement stream with injected shifts (simulated)",
        summary=(
            "Measured diameters of machined parts in subgroups at regular intervals, normally "
            "distributed around an in-control mean, with mean shifts, variance increases and "
            "drifts injected at known onsets, for statistical process control and change "
            "detection."
        ),
        source=f"smartfab generator {NAME} {VERSION}",
        parameters={**p.model_dump(), "seed": seed},
        license="CC-BY-4.0",
        references=(
            "Montgomery, Introduction to Statistical Quality Control, 8th ed., Wiley, 2019; "
            "ISO 7870-2:2023"
        ),
        keywords="statistical process control, control chart, SPC, change detection, ARL",
        ground_truth=(
            "in_control is 1 where no disturbance is active; disturbance is a bit mask of the "
            "active kinds; along shift: kind, onset index and time, end index (exclusive) and "
            "magnitude of each injected disturbance; true_mean and true_sigma per sample. "
            "In-control mean and sigma are the parameters mean and sigma."
        ),
    )


def _attrs(units: str, long_name: str) -> dict[str, str]:
    return {"units": units, "long_name": long_name}


GENERATOR = Generator(
    name=NAME,
    params=SpcParams,
    build=build,
    description="SPC measurement stream with mean, variance and drift shifts at known onsets",
)
