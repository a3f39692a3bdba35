"""Rolling-element bearing run to failure: vibration snapshots of a bearing that develops a fault.

Physics
-------
A localised defect (spall) on a race or a ball is struck once per passage of a rolling element
over it. Each strike is a short impact that excites a structural resonance of the housing, so the
acceleration is a train of decaying oscillations repeating at a *defect frequency* given by the
bearing geometry (n balls of diameter d on pitch diameter D, contact angle phi, shaft frequency
fr)::

    FTF  = fr / 2 (1 - d/D cos phi)                cage (fundamental train) frequency
    BPFO = n fr / 2 (1 - d/D cos phi)              ball pass frequency, outer race
    BPFI = n fr / 2 (1 + d/D cos phi)              ball pass frequency, inner race
    BSF  = D fr / (2 d) (1 - (d/D cos phi)^2)      ball spin frequency

The rolling elements slip a little, so the intervals between impacts vary randomly by 1-3 %
(Randall and Antoni 2011). An outer-race defect sits still in the load zone: impacts of constant
strength. An inner-race defect rotates with the shaft through the load zone, so its impacts are
modulated at fr by the Stribeck load distribution q = (1 - (1 - cos theta) / (2 eps))^1.5 with
eps = 0.5 (load zone of +-90 degrees). A ball defect strikes the outer and inner race once each per
ball revolution (impacts at 2 BSF, the inner-race strikes weaker) and is carried through the load
zone by the cage, so its impacts are modulated at FTF. Shaft-rate components (imbalance and
misalignment at fr and 2 fr) and Gaussian sensor noise complete the signal.

The impulses are placed on the sample grid (split linearly between the two nearest samples, so the
timing keeps sub-sample resolution) and filtered by the exact discrete impulse response of a
single-degree-of-freedom resonance (impulse invariance: a second-order IIR filter), so generation
is O(samples) and fully vectorised.

Run to failure: a health indicator is 0 before the fault onset and then grows exponentially,
reaching 1 (in expectation) at the end of life, with multiplicative lognormal scatter between
snapshots (Gebraeel et al. 2005); the impact amplitude is proportional to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import xarray as xr
from numpy.typing import NDArray
from pydantic import Field, model_validator
from scipy import signal

from smartfab.datasets import conventions
from smartfab.datasets.registry import Generator, Params
from smartfab.errors import ParameterError

NAME = "bearing-run-to-failure"
VERSION = "1.0"

FaultKind = Literal["outer", "inner", "ball"]
FAULT_CODES: dict[str, int] = {"none": 0, "outer": 1, "inner": 2, "ball": 3}
FAULT_MEANINGS = "none outer_race inner_race rolling_element"
#: Stribeck load distribution factor (0.5: load zone of +-90 degrees) and ball-bearing exponent
LOAD_ZONE_EPSILON = 0.5
LOAD_EXPONENT = 1.5
#: inner-race strikes of a ball defect, relative to its outer-race strikes
BALL_INNER_STRIKE = 0.5


@dataclass(frozen=True)
class BearingGeometry:
    """Geometry of a rolling-element bearing.

    Attributes
    ----------
    n_balls:
        Number of rolling elements.
    ball_diameter, pitch_diameter:
        Rolling-element and pitch diameters, in any one unit (only their ratio matters).
    contact_angle_deg:
        Contact angle, degrees.
    """

    n_balls: int
    ball_diameter: float
    pitch_diameter: float
    contact_angle_deg: float = 0.0


#: SKF 6205-2RS JEM (CWRU drive end) and Rexnord ZA-2115 (IMS run-to-failure rig), inches
PRESETS: dict[str, BearingGeometry] = {
    "cwru-6205": BearingGeometry(9, 0.3126, 1.537, 0.0),
    "ims-za2115": BearingGeometry(16, 0.331, 2.815, 15.17),
}


def defect_frequencies(
    preset_or_geometry: str | BearingGeometry, shaft_hz: float
) -> dict[str, float]:
    """Characteristic defect frequencies of a bearing.

    Parameters
    ----------
    preset_or_geometry:
        A preset name (``"cwru-6205"``, ``"ims-za2115"``) or a :class:`BearingGeometry`.
    shaft_hz:
        Shaft rotation frequency, Hz.

    Returns
    -------
    dict
        ``shaft``, ``ftf``, ``bpfo``, ``bpfi`` and ``bsf``, all in Hz.

    Raises
    ------
    ParameterError
        For an unknown preset name.
    """
    if isinstance(preset_or_geometry, str):
        try:
            geometry = PRESETS[preset_or_geometry]
        except KeyError:
            raise ParameterError(
                f"{NAME}: unknown bearing preset {preset_or_geometry!r}; "
                f"known: {', '.join(sorted(PRESETS))}"
            ) from None
    else:
        geometry = preset_or_geometry
    ratio = geometry.ball_diameter / geometry.pitch_diameter
    ratio *= float(np.cos(np.deg2rad(geometry.contact_angle_deg)))
    n = geometry.n_balls
    return {
        "shaft": shaft_hz,
        "ftf": shaft_hz / 2 * (1 - ratio),
        "bpfo": n * shaft_hz / 2 * (1 - ratio),
        "bpfi": n * shaft_hz / 2 * (1 + ratio),
        "bsf": geometry.pitch_diameter * shaft_hz / (2 * geometry.ball_diameter) * (1 - ratio**2),
    }


class BearingParams(Params):
    """Parameters of the bearing run-to-failure generator."""

    preset: Literal["cwru-6205", "ims-za2115"] = Field(
        "cwru-6205", description="bearing geometry: SKF 6205-2RS JEM or Rexnord ZA-2115"
    )
    fault: FaultKind = Field("outer", description="fault that develops: outer, inner or ball")
    shaft_speed: float = Field(1797.0, gt=0, le=60000, description="shaft speed, min-1")
    sampling_rate: float = Field(12000.0, gt=0, le=200000, description="sampling rate, Hz")
    snapshot_duration: float = Field(1.0, gt=0, le=60, description="length of a snapshot, s")
    n_snapshots: int = Field(20, ge=2, le=10000, description="number of snapshots, 1")
    life: float = Field(100.0, gt=0, description="operating time to end of life, h")
    onset_fraction: float = Field(
        0.5, gt=0, lt=1, description="fault onset as a fraction of the life, 1"
    )
    growth: float = Field(
        4.0, gt=0, le=50, description="exponential growth rate of the health indicator per life, 1"
    )
    health_scatter: float = Field(
        0.1, ge=0, le=1, description="lognormal scatter of the health indicator, 1"
    )
    fault_amplitude: float = Field(
        30.0, ge=0, description="peak acceleration of one impact at end of life, m s-2"
    )
    noise_level: float = Field(0.5, ge=0, description="standard deviation of sensor noise, m s-2")
    shaft_amplitude: float = Field(
        0.3, ge=0, description="amplitude of the shaft-rate component, m s-2"
    )
    resonance_frequency: float = Field(
        3500.0, gt=0, description="structural resonance excited by the impacts, Hz"
    )
    damping_ratio: float = Field(0.05, gt=0, lt=1, description="resonance damping ratio, 1")
    jitter: float = Field(
        0.02, ge=0, le=0.1, description="relative random slip of the impact intervals, 1"
    )

    @model_validator(mode="after")
    def _resonance_below_nyquist(self) -> BearingParams:
        if self.resonance_frequency >= self.sampling_rate / 2:
            raise ValueError(
                f"resonance_frequency {self.resonance_frequency} Hz must be below half the "
                f"sampling_rate ({self.sampling_rate / 2} Hz)"
            )
        return self


def _health(
    params: BearingParams, hours: NDArray[np.float64], rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Expected and observed health indicator at each snapshot (0 before onset)."""
    onset = params.onset_fraction * params.life
    tau = np.clip((hours - onset) / (params.life - onset), 0.0, None)
    expected = np.expm1(params.growth * tau) / np.expm1(params.growth)
    sigma = params.health_scatter
    scatter = np.exp(sigma * rng.standard_normal(hours.size) - sigma**2 / 2)
    return expected, expected * scatter


def _impacts(
    params: BearingParams,
    freqs: dict[str, float],
    n: int,
    amplitude: float,
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """Impulses of one snapshot on the sample grid (before the resonance filter)."""
    fs, fr = params.sampling_rate, freqs["shaft"]
    rate = {"outer": freqs["bpfo"], "inner": freqs["bpfi"], "ball": 2 * freqs["bsf"]}[params.fault]
    period = 1.0 / rate
    duration = n / fs
    count = int(np.ceil(duration * rate * (1 + 5 * params.jitter))) + 4
    intervals = period * (1 + params.jitter * rng.standard_normal(count))
    times = rng.uniform(-period, 0.0) + np.cumsum(np.clip(intervals, 0.2 * period, None))
    times = times[(times >= 0) & (times < duration - 1.0 / fs)]
    weights = amplitude * np.exp(0.1 * rng.standard_normal(times.size) - 0.005)
    if params.fault == "inner":
        weights *= _load_zone(2 * np.pi * fr * times + rng.uniform(0, 2 * np.pi))
    elif params.fault == "ball":
        cage = 2 * np.pi * freqs["ftf"] * times + rng.uniform(0, 2 * np.pi)
        strike = np.where(np.arange(times.size) % 2 == 0, 1.0, BALL_INNER_STRIKE)
        weights *= strike * _load_zone(cage)
    position = times * fs
    index = np.floor(position).astype(np.int64)
    frac = position - index
    out = np.bincount(index, weights * (1 - frac), minlength=n).astype(np.float64, copy=False)
    out[1:] += np.bincount(index, weights * frac, minlength=n - 1)[: n - 1]
    return out


def _load_zone(theta: NDArray[np.float64]) -> NDArray[np.float64]:
    """Stribeck load distribution relative to the maximum, at angle ``theta`` from the load."""
    base = 1 - (1 - np.cos(theta)) / (2 * LOAD_ZONE_EPSILON)
    loads: NDArray[np.float64] = np.clip(base, 0.0, None) ** LOAD_EXPONENT
    return loads


def _resonance(params: BearingParams) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """IIR coefficients of h[k] = exp(-zeta w T k) sin(wd T k) (unit impulse, peak near 1)."""
    w = 2 * np.pi * params.resonance_frequency
    zeta = params.damping_ratio
    r = np.exp(-zeta * w / params.sampling_rate)
    theta = w * np.sqrt(1 - zeta**2) / params.sampling_rate
    b = np.array([0.0, r * np.sin(theta)])
    a = np.array([1.0, -2 * r * np.cos(theta), r**2])
    return b, a


def build(params: BearingParams, seed: int) -> xr.Dataset:
    """Simulate vibration snapshots of a bearing from new to end of life.

    Parameters
    ----------
    params:
        Validated parameters.
    seed:
        Seed of every random draw (same params and seed give the same dataset).

    Returns
    -------
    xarray.Dataset
        ``acceleration`` on (``snapshot``, ``time``), per-snapshot ground truth
        ``health_indicator``, ``expected_health``, ``rul``, ``fault_active`` and ``fault``; the
        defect frequencies as global attributes.
    """
    freqs = defect_frequencies(params.preset, params.shaft_speed / 60.0)
    fs = params.sampling_rate
    n = max(round(params.snapshot_duration * fs), 16)
    hours = params.life * np.arange(1, params.n_snapshots + 1) / params.n_snapshots
    onset = params.onset_fraction * params.life
    health_rng, *snapshot_rngs = np.random.default_rng(seed).spawn(params.n_snapshots + 1)
    expected, health = _health(params, hours, health_rng)
    b, a = _resonance(params)
    t = np.arange(n) / fs
    acceleration = np.empty((params.n_snapshots, n), dtype=np.float32)
    for k, rng in enumerate(snapshot_rngs):
        phases = rng.uniform(0, 2 * np.pi, 2)
        row = params.noise_level * rng.standard_normal(n)
        row += params.shaft_amplitude * np.sin(2 * np.pi * freqs["shaft"] * t + phases[0])
        row += 0.4 * params.shaft_amplitude * np.sin(4 * np.pi * freqs["shaft"] * t + phases[1])
        if health[k] > 0:
            impulses = _impacts(params, freqs, n, params.fault_amplitude * health[k], rng)
            row += signal.lfilter(b, a, impulses)
        acceleration[k] = row
    active = (hours > onset).astype(np.int8)
    fault = np.where(active == 1, FAULT_CODES[params.fault], 0).astype(np.int8)
    per_snapshot = ("snapshot",)
    ds = xr.Dataset(
        {
            "acceleration": (
                ("snapshot", "time"),
                acceleration,
                {"units": "m s-2", "long_name": "housing acceleration, radial"},
            ),
            "health_indicator": (
                per_snapshot,
                health,
                {"units": "1", "long_name": "fault severity (0 healthy, about 1 at end of life)"},
            ),
            "expected_health": (
                per_snapshot,
                expected,
                {"units": "1", "long_name": "expected fault severity without scatter"},
            ),
            "rul": (
                per_snapshot,
                params.life - hours,
                {"units": "h", "long_name": "remaining useful life"},
            ),
            "fault_active": (
                per_snapshot,
                active,
                {
                    "units": "1",
                    "long_name": "fault present",
                    "flag_values": np.array([0, 1], dtype=np.int8),
                    "flag_meanings": "healthy faulty",
                },
            ),
            "fault": (
                per_snapshot,
                fault,
                {
                    "units": "1",
                    "long_name": "fault type",
                    "flag_values": np.array(list(FAULT_CODES.values()), dtype=np.int8),
                    "flag_meanings": FAULT_MEANINGS,
                },
            ),
        },
        coords={
            "snapshot": ("snapshot", hours, {"units": "h", "long_name": "operating time"}),
            "time": ("time", t, {"units": "s", "long_name": "time since start of snapshot"}),
        },
        attrs={
            **{f"{key}_frequency_hz": value for key, value in freqs.items()},
            "fault_onset_h": onset,
            "end_of_life_h": params.life,
            "sampling_rate_hz": fs,
        },
    )
    return conventions.finish(
        ds,
        title=f"Bearing run to failure ({params.preset}, {params.fault} fault)",
        summary=(
            "Simulated vibration snapshots of a rolling-element bearing from new to end of life: "
            "impacts at the defect frequency exciting a housing resonance, with slip jitter, "
            "load-zone modulation, shaft-rate components and noise; the fault grows "
            "exponentially after its onset."
        ),
        source=f"smartfab generator {NAME} {VERSION}",
        parameters={**params.model_dump(), "seed": seed},
        license="CC-BY-4.0",
        references=(
            "Randall R.B., Antoni J. (2011) Rolling element bearing diagnostics - a tutorial, "
            "Mech. Syst. Signal Process. 25:485-520; Gebraeel N. et al. (2005) Residual-life "
            "distributions from component degradation signals, IIE Trans. 37:543-557; "
            "Case Western Reserve University Bearing Data Center; Qiu H. et al. (2006) IMS "
            "bearing data, J. Sound Vib. 289:1066-1090"
        ),
        keywords="bearing, vibration, envelope analysis, run to failure, remaining useful life",
        ground_truth=(
            "fault: fault type per snapshot (none before the onset); fault_active: 1 from the "
            "onset; health_indicator: fault severity driving the impact amplitude; rul: hours to "
            "end of life (0 at the last snapshot); attributes *_frequency_hz: defect frequencies"
        ),
    )


GENERATOR = Generator(
    name=NAME,
    params=BearingParams,
    build=build,
    description="rolling-element bearing vibration from new to failure, with defect frequencies",
)
