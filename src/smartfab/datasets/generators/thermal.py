"""Spindle thermal drift under a speed programme: bearing, motor, ambient temperature, Z growth.

Model
-----
The spindle runs a programme of piecewise-constant speeds ``n(t)`` (e.g. the ISO 230-3 style
warm-up: steps of increasing speed, then a cool-down at rest), repeated ``cycles`` times. Each
machine sensor ``i`` (front bearing, rear bearing, motor/housing) reads the ambient temperature
plus a rise ``dT_i`` that follows a first-order lag towards a speed-dependent steady state::

    tau_i d(dT_i)/dt = dT_i,ss(n) - dT_i,     dT_i,ss(n) = R_i (n / n_ref)^a

(friction power of a rolling bearing grows roughly like ``n^1.5``, hence the default ``a``). The
lag is integrated exactly for piecewise-constant input: a zero-order-hold recursion
(:func:`scipy.signal.lfilter`) plus the exact contribution of speed changes that fall between two
samples, so the rise at ``t = tau`` after a step from rest is ``(1 - 1/e) R`` = 63.2 % of ``R``.
The machine starts cold (all rises zero). The ambient is a daily sinusoid of random phase plus an
Ornstein-Uhlenbeck drift; machine sensors follow it instantly (their structure is assumed in
equilibrium with the room on that time scale). Every reading has white Gaussian sensor noise.

The thermal displacement of the tool centre point along Z (positive: the tool moves in +Z) is::

    delta_z = sum_i k_i dT_i + k_a (T_a - T_a(0)) + beta dT_front^2

a linear combination of rises (the coefficients ``k`` are stored as attributes so a
regression-based compensation can be scored against them) with a small quadratic term ``beta``;
the measured displacement (e.g. a touch probe or capacitive sensors on a test mandrel, as in
ISO 230-3) adds white noise.

References
----------
ISO 230-3:2020, Test code for machine tools -- Part 3: Determination of thermal effects.
J. Mayr et al., Thermal issues in machine tools, CIRP Annals 61(2), 771-791, 2012.
J. B. Bryan, International status of thermal error research, CIRP Annals 39(2), 645-656, 1990.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import xarray as xr
from pydantic import Field, model_validator
from scipy.signal import lfilter

from smartfab.datasets import conventions
from smartfab.datasets.registry import Generator, Params

NAME = "spindle-thermal"
VERSION = "1.0"

FloatArray = npt.NDArray[np.float64]

#: machine sensors: (variable suffix, long name)
SENSORS = (
    ("front_bearing", "spindle front bearing"),
    ("rear_bearing", "spindle rear bearing"),
    ("motor", "spindle motor housing"),
)


class ThermalParams(Params):
    """Parameters of the spindle thermal drift simulator (units in each description)."""

    speeds: tuple[float, ...] = Field(
        (3000.0, 6000.0, 9000.0, 12000.0, 0.0),
        description="spindle speed of each programme step, min-1 (0 = spindle at rest)",
    )
    dwells: tuple[float, ...] = Field(
        (1800.0, 1800.0, 1800.0, 1800.0, 3600.0),
        description="dwell time of each programme step, s (same length as speeds)",
    )
    cycles: int = Field(1, ge=1, le=10_000, description="repetitions of the programme, 1")
    sample_period: float = Field(10.0, gt=0, description="sampling period of all sensors, s")
    reference_speed: float = Field(
        12000.0, gt=0, description="speed at which the steady-state rises are given, min-1"
    )
    speed_exponent: float = Field(
        1.5, gt=0, le=4, description="exponent a of the steady-state rise ~ speed^a, 1"
    )
    rise_front_bearing: float = Field(
        16.0, ge=0, description="steady-state front-bearing rise at reference speed, K"
    )
    rise_rear_bearing: float = Field(
        10.0, ge=0, description="steady-state rear-bearing rise at reference speed, K"
    )
    rise_motor: float = Field(
        22.0, ge=0, description="steady-state motor-housing rise at reference speed, K"
    )
    tau_front_bearing: float = Field(600.0, gt=0, description="front-bearing time constant, s")
    tau_rear_bearing: float = Field(1200.0, gt=0, description="rear-bearing time constant, s")
    tau_motor: float = Field(2400.0, gt=0, description="motor-housing time constant, s")
    coefficient_front_bearing: float = Field(
        1.8, description="Z displacement per K of front-bearing rise, um K-1"
    )
    coefficient_rear_bearing: float = Field(
        0.5, description="Z displacement per K of rear-bearing rise, um K-1"
    )
    coefficient_motor: float = Field(
        0.9, description="Z displacement per K of motor-housing rise, um K-1"
    )
    coefficient_ambient: float = Field(
        1.5, description="Z displacement per K of ambient change since the start, um K-1"
    )
    nonlinearity: float = Field(
        0.005, description="quadratic term on the front-bearing rise, um K-2"
    )
    ambient_temperature: float = Field(20.0, description="mean ambient temperature, degC")
    ambient_amplitude: float = Field(
        0.8, ge=0, description="amplitude of the daily ambient sinusoid, K"
    )
    ambient_period: float = Field(86400.0, gt=0, description="period of the ambient cycle, s")
    ambient_drift: float = Field(
        0.3, ge=0, description="standard deviation of the random ambient drift, K"
    )
    ambient_tau: float = Field(
        3600.0, gt=0, description="correlation time of the random ambient drift, s"
    )
    temperature_noise: float = Field(
        0.05, ge=0, description="standard deviation of temperature sensor noise, K"
    )
    displacement_noise: float = Field(
        0.5, ge=0, description="standard deviation of displacement measurement noise, um"
    )

    @model_validator(mode="after")
    def _check_programme(self) -> ThermalParams:
        if not self.speeds:
            raise ValueError("speeds: the programme needs at least one step")
        if len(self.speeds) != len(self.dwells):
            raise ValueError(
                f"speeds ({len(self.speeds)} steps) and dwells ({len(self.dwells)} steps) "
                "must have the same length"
            )
        if any(s < 0 for s in self.speeds):
            raise ValueError(f"speeds must be >= 0 min-1, got {self.speeds}")
        if any(d <= 0 for d in self.dwells):
            raise ValueError(f"dwells must be > 0 s, got {self.dwells}")
        samples = self.cycles * sum(self.dwells) / self.sample_period
        if samples > 50_000_000:
            raise ValueError(f"the programme gives {samples:.0f} samples; at most 5e7 allowed")
        return self

    def rises(self) -> tuple[float, float, float]:
        """Steady-state rises at reference speed (front, rear, motor), K."""
        return (self.rise_front_bearing, self.rise_rear_bearing, self.rise_motor)

    def taus(self) -> tuple[float, float, float]:
        """Time constants (front, rear, motor), s."""
        return (self.tau_front_bearing, self.tau_rear_bearing, self.tau_motor)

    def coefficients(self) -> tuple[float, float, float]:
        """Displacement coefficients (front, rear, motor), um K-1."""
        return (
            self.coefficient_front_bearing,
            self.coefficient_rear_bearing,
            self.coefficient_motor,
        )


def first_order_response(
    targets: FloatArray, step_starts: FloatArray, tau: float, n_samples: int
) -> FloatArray:
    """Exact response of a first-order lag to a piecewise-constant target, sampled on a grid.

    Parameters
    ----------
    targets:
        Steady-state value of each step (the lag starts at 0 at sample 0).
    step_starts:
        Start of each step in units of sample periods (``step_starts[0] == 0``, increasing).
    tau:
        Time constant in units of sample periods.
    n_samples:
        Number of samples ``0 .. n_samples - 1`` to return.

    Returns
    -------
    numpy.ndarray
        The response at each sample, exact for steps that start between samples too.
    """
    k = np.arange(n_samples, dtype=np.float64)
    held = targets[np.searchsorted(step_starts, k, side="right") - 1]
    decay = float(np.exp(-1.0 / tau))
    forcing = (1.0 - decay) * held[:-1]
    # a step inside (k, k + 1) is not in ``held[k]``: add its exact share at sample k + 1
    jumps = np.diff(targets)
    inside = np.floor(step_starts[1:])
    between = (step_starts[1:] > inside) & (inside < n_samples - 1)
    np.add.at(
        forcing,
        inside[between].astype(np.intp),
        jumps[between] * (1.0 - np.exp(-(inside[between] + 1.0 - step_starts[1:][between]) / tau)),
    )
    response = np.zeros(n_samples)
    response[1:] = lfilter([1.0], [1.0, -decay], forcing)
    return response


def build(params: ThermalParams, seed: int) -> xr.Dataset:
    """Simulate spindle temperatures and Z thermal displacement under a speed programme.

    Parameters
    ----------
    params:
        Validated parameters (see :class:`ThermalParams`).
    seed:
        Seed of :func:`numpy.random.default_rng`; the same inputs give the same dataset.

    Returns
    -------
    xarray.Dataset
        Along ``time`` (s): spindle speed, programme step, four measured temperatures (degC),
        measured and true Z displacement (um); the true coefficients as attributes.
    """
    rng = np.random.default_rng(seed)
    dt = params.sample_period
    speeds = np.tile(np.asarray(params.speeds, dtype=np.float64), params.cycles)
    dwells = np.tile(np.asarray(params.dwells, dtype=np.float64), params.cycles)
    starts = np.concatenate([[0.0], np.cumsum(dwells)[:-1]]) / dt
    # snap step starts that are on the sample grid up to rounding error
    starts = np.where(np.abs(starts - np.round(starts)) < 1e-9, np.round(starts), starts)
    n = int(np.floor(dwells.sum() / dt + 1e-9)) + 1
    time = np.arange(n) * dt
    step = np.searchsorted(starts, np.arange(n, dtype=np.float64), side="right") - 1
    relative = (speeds / params.reference_speed) ** params.speed_exponent

    rises = np.stack(
        [
            first_order_response(rise * relative, starts, tau / dt, n)
            for rise, tau in zip(params.rises(), params.taus(), strict=True)
        ]
    )

    phase = rng.uniform(0.0, 2.0 * np.pi)
    decay = float(np.exp(-dt / params.ambient_tau))
    shocks = rng.standard_normal(n) * params.ambient_drift
    shocks[1:] *= np.sqrt(1.0 - decay**2)
    ambient = (
        params.ambient_temperature
        + params.ambient_amplitude * np.sin(2.0 * np.pi * time / params.ambient_period + phase)
        + lfilter([1.0], [1.0, -decay], shocks)
    )
    machine = ambient + rises
    measured = np.vstack([machine, ambient]) + params.temperature_noise * rng.standard_normal(
        (4, n)
    )

    coefficients = np.asarray(params.coefficients())
    displacement = (
        coefficients @ rises
        + params.coefficient_ambient * (ambient - ambient[0])
        + params.nonlinearity * rises[0] ** 2
    )
    measured_displacement = displacement + params.displacement_noise * rng.standard_normal(n)

    ds = xr.Dataset(
        coords={
            "time": (
                "time",
                time,
                {"units": "s", "long_name": "time since the programme started", "axis": "T"},
            )
        }
    )
    ds["spindle_speed"] = ("time", speeds[step], {"units": "min-1", "long_name": "spindle speed"})
    ds["programme_step"] = (
        "time",
        step.astype(np.int32),
        {"units": "1", "long_name": "index of the programme step (cycles concatenated)"},
    )
    for row, ((suffix, label), rise, tau) in enumerate(
        zip(SENSORS, params.rises(), params.taus(), strict=True)
    ):
        ds[f"temperature_{suffix}"] = (
            "time",
            measured[row],
            {
                "units": "degC",
                "long_name": f"{label} temperature (measured)",
                "time_constant": tau,
                "time_constant_units": "s",
                "steady_state_rise_at_reference_speed": rise,
                "steady_state_rise_units": "K",
            },
        )
    ds["temperature_ambient"] = (
        "time",
        measured[3],
        {"units": "degC", "long_name": "ambient air temperature (measured)"},
    )
    ds["displacement_z"] = (
        "time",
        measured_displacement,
        {
            "units": "um",
            "long_name": "thermal displacement of the tool centre point in Z (measured)",
        },
    )
    ds["displacement_z_true"] = (
        "time",
        displacement,
        {
            "units": "um",
            "long_name": "thermal displacement of the tool centre point in Z (ground truth)",
            "coefficient_front_bearing": params.coefficient_front_bearing,
            "coefficient_rear_bearing": params.coefficient_rear_bearing,
            "coefficient_motor": params.coefficient_motor,
            "coefficient_ambient": params.coefficient_ambient,
            "coefficient_units": "um K-1",
            "nonlinearity": params.nonlinearity,
            "nonlinearity_units": "um K-2",
            "reference_ambient_temperature": float(ambient[0]),
            "reference_ambient_temperature_units": "degC",
        },
    )
    return conventions.finish(
        ds,
        title="Spindle thermal drift under a speed programme (simulated)",
        summary=(
            "Front bearing, rear bearing, motor housing and ambient temperatures of a machine-tool "
            "spindle running a programme of constant speeds, each machine temperature a "
            "first-order lag towards a speed^a steady-state rise, with the resulting Z thermal "
            "displacement of the tool centre point as a linear combination of the rises."
        ),
        source=f"smartfab generator {NAME} {VERSION}",
        parameters={**params.model_dump(), "seed": seed},
        license="CC-BY-4.0",
        references=(
            "ISO 230-3:2020; Mayr et al., Thermal issues in machine tools, CIRP Annals 61(2), "
            "2012, doi:10.1016/j.cirp.2012.05.008"
        ),
        keywords="machine tool, spindle, thermal error, thermal drift, compensation, warm-up",
        ground_truth=(
            "displacement_z_true is the noise-free displacement; its attributes hold the true "
            "coefficients: displacement_z_true = sum_i k_i (T_i - T_ambient) + k_ambient "
            "(T_ambient - reference_ambient_temperature) + nonlinearity (T_front - T_ambient)^2, "
            "with noise-free temperatures. Each machine temperature's time_constant and "
            "steady_state_rise_at_reference_speed attributes give its first-order response."
        ),
    )


GENERATOR = Generator(
    name=NAME,
    params=ThermalParams,
    build=build,
    description="spindle temperatures and Z thermal displacement under a speed programme",
)
