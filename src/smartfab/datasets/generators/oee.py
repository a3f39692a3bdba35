"""Production-line event log with MTConnect-style execution states, and OEE per shift.

Model
-----
One machine runs shifts of ``shift_duration`` with a planned break. Everything that wears or
fails counts *operating time* (time in ACTIVE), so the processes are drawn on that clock,
vectorised with cumulative sums, then laid out on the wall clock:

* parts: cycle time = ideal cycle time + exponential speed loss (mean ``speed_loss`` x ideal);
* breakdowns: a renewal process with Weibull times between failures (shape > 1: wear-out),
  lognormal repair times, repair as good as new;
* minor stops: a Poisson process of short stops (``microstop_rate`` per operating hour) with
  exponential durations;
* tool changes after every ``tool_life`` parts; the scrap probability of a part rises with the
  wear of its tool, ``p = p_min + (p_max - p_min) w^q`` with ``w`` = parts cut by that tool
  before it / ``tool_life``, and resets at each change.

Planned breaks stop the clock of every process (a repair resumes after the break). Events are
split at shift boundaries, so each event belongs to one shift.

Execution states (MTConnect ``Execution``) and their OEE loss:

====  ===========  ========================================================================
code  state        meaning and OEE category
====  ===========  ========================================================================
0     ACTIVE       producing: run time
1     FEED_HOLD    minor stop: performance loss (inside run time)
2     INTERRUPTED  tool change: availability loss (set-up and adjustment)
3     STOPPED      breakdown and repair: availability loss
4     READY        planned break: outside the planned production time
====  ===========  ========================================================================

Per shift (standard definitions, Nakajima 1988; ISO 22400-2:2014 KPIs): availability = run time /
planned production time; performance = ideal cycle time x total count / run time; quality = good
count / total count; OEE = availability x performance x quality. A part counts in the event (and
shift) in which its cycle completes.

References
----------
S. Nakajima, Introduction to TPM: Total Productive Maintenance, Productivity Press, 1988.
ISO 22400-2:2014, Automation systems and integration -- Key performance indicators (KPIs) for
manufacturing operations management -- Part 2: Definitions and descriptions.
MTConnect Standard, Part 2 Devices Information Model, ``Execution`` data item.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import xarray as xr
from pydantic import Field, model_validator

from smartfab.datasets import conventions
from smartfab.datasets.registry import Generator, Params

NAME = "line-oee"
VERSION = "1.0"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

ACTIVE, FEED_HOLD, INTERRUPTED, STOPPED, READY = range(5)
STATES = ("ACTIVE", "FEED_HOLD", "INTERRUPTED", "STOPPED", "READY")


class OeeParams(Params):
    """Parameters of the production-line event-log simulator (units in each description)."""

    n_shifts: int = Field(3, ge=1, le=20_000, description="number of shifts simulated, 1")
    shift_duration: float = Field(28800.0, gt=0, description="length of a shift, s")
    break_start: float = Field(
        14400.0, ge=0, description="start of the planned break after the shift start, s"
    )
    break_duration: float = Field(
        1800.0, ge=0, description="planned break per shift (not planned production time), s"
    )
    ideal_cycle_time: float = Field(45.0, gt=0, description="ideal cycle time of a part, s")
    speed_loss: float = Field(
        0.05, ge=0, le=5, description="mean excess of the actual cycle time over the ideal, 1"
    )
    failure_shape: float = Field(
        1.8, gt=0, le=20, description="Weibull shape of operating time between failures, 1"
    )
    failure_scale: float = Field(
        14400.0, gt=0, description="Weibull scale of operating time between failures, s"
    )
    repair_median: float = Field(1200.0, gt=0, description="median repair time, s")
    repair_sigma: float = Field(
        0.6, ge=0, le=3, description="log-standard deviation of the lognormal repair time, 1"
    )
    microstop_rate: float = Field(
        4.0, ge=0, le=3600, description="rate of minor stops per operating hour, h-1"
    )
    microstop_mean: float = Field(40.0, gt=0, description="mean duration of a minor stop, s")
    tool_life: int = Field(200, ge=1, description="parts cut before the tool is changed, 1")
    tool_change_time: float = Field(300.0, gt=0, description="duration of a tool change, s")
    scrap_min: float = Field(0.005, ge=0, le=1, description="scrap probability with a new tool, 1")
    scrap_max: float = Field(
        0.08, ge=0, le=1, description="scrap probability at the end of tool life, 1"
    )
    scrap_exponent: float = Field(
        3.0, gt=0, description="exponent q of the scrap-probability rise with tool wear, 1"
    )

    @model_validator(mode="after")
    def _check_schedule(self) -> OeeParams:
        if self.break_duration >= self.shift_duration:
            raise ValueError(
                f"break_duration ({self.break_duration} s) must be shorter than shift_duration "
                f"({self.shift_duration} s)"
            )
        if self.break_start + self.break_duration > self.shift_duration:
            raise ValueError(
                f"the break ({self.break_start} s + {self.break_duration} s) must end within "
                f"the shift ({self.shift_duration} s)"
            )
        if self.scrap_min > self.scrap_max:
            raise ValueError(
                f"scrap_min ({self.scrap_min}) must not exceed scrap_max ({self.scrap_max})"
            )
        parts = self.n_shifts * self.shift_duration / self.ideal_cycle_time
        if parts > 20_000_000:
            raise ValueError(f"about {parts:.0f} parts would be simulated; at most 2e7 allowed")
        return self


def _arrivals(
    rng: np.random.Generator,
    draw: Callable[[np.random.Generator, int], FloatArray],
    mean_gap: float,
    limit: float,
) -> FloatArray:
    """Arrival times ``<= limit`` of a renewal process, drawn in vectorised batches."""
    batch = int(limit / mean_gap * 1.05) + 32
    gaps: list[FloatArray] = []
    total = 0.0
    while total <= limit:
        gaps.append(draw(rng, batch))
        total += float(gaps[-1].sum())
    times = np.cumsum(np.concatenate(gaps))
    return times[: int(np.searchsorted(times, limit, side="right"))]


def build(params: OeeParams, seed: int) -> xr.Dataset:
    """Simulate a machine's execution-state event log and its per-shift OEE.

    Parameters
    ----------
    params:
        Validated parameters (see :class:`OeeParams`).
    seed:
        Seed of :func:`numpy.random.default_rng`; the same inputs give the same dataset.

    Returns
    -------
    xarray.Dataset
        Along ``event``: start ``time``, duration, state, good and scrap parts, shift; along
        ``part``: completion time, tool wear, scrap probability and outcome; along ``shift``:
        planned production time, run time, counts, availability, performance, quality, OEE.
    """
    p = params
    rng = np.random.default_rng(seed)
    planned = p.shift_duration - p.break_duration
    horizon = p.n_shifts * planned  # machine time: wall time without the breaks
    shift_m = np.arange(p.n_shifts) * planned
    break_m = shift_m + p.break_start if p.break_duration > 0 else np.empty(0)

    def weibull(g: np.random.Generator, k: int) -> FloatArray:
        return p.failure_scale * g.weibull(p.failure_shape, k)

    def poisson(g: np.random.Generator, k: int) -> FloatArray:
        return g.exponential(3600.0 / p.microstop_rate, k)

    def cycle(g: np.random.Generator, k: int) -> FloatArray:
        return p.ideal_cycle_time + g.exponential(p.ideal_cycle_time * p.speed_loss, k)

    mean_tbf = p.failure_scale * math.gamma(1.0 + 1.0 / p.failure_shape)
    fail_tau = _arrivals(rng, weibull, mean_tbf, horizon)
    repair = p.repair_median * np.exp(p.repair_sigma * rng.standard_normal(fail_tau.size))
    if p.microstop_rate > 0:
        micro_tau = _arrivals(rng, poisson, 3600.0 / p.microstop_rate, horizon)
    else:
        micro_tau = np.empty(0)
    micro_dur = rng.exponential(p.microstop_mean, micro_tau.size)
    part_tau = _arrivals(rng, cycle, p.ideal_cycle_time * (1.0 + p.speed_loss), horizon)
    index = np.arange(part_tau.size)
    wear = (index % p.tool_life) / p.tool_life
    scrap_p = p.scrap_min + (p.scrap_max - p.scrap_min) * wear**p.scrap_exponent
    scrap = rng.random(part_tau.size) < scrap_p
    tool_tau = part_tau[p.tool_life - 1 :: p.tool_life]

    # stops on the operating clock, then on the machine clock (operating time + earlier stops)
    stop_tau = np.concatenate([fail_tau, micro_tau, tool_tau])
    stop_dur = np.concatenate([repair, micro_dur, np.full(tool_tau.size, p.tool_change_time)])
    stop_kind = np.concatenate(
        [
            np.full(fail_tau.size, STOPPED),
            np.full(micro_tau.size, FEED_HOLD),
            np.full(tool_tau.size, INTERRUPTED),
        ]
    )
    order = np.argsort(stop_tau, kind="stable")
    stop_tau, stop_dur, stop_kind = stop_tau[order], stop_dur[order], stop_kind[order]
    stop_m = stop_tau + np.cumsum(stop_dur) - stop_dur
    n_stops = stop_tau.size
    bounds = np.empty(2 * n_stops + 2)
    taus = np.empty_like(bounds)
    states = np.full(2 * n_stops + 1, ACTIVE)
    bounds[0], taus[0] = 0.0, 0.0
    bounds[1:-1:2], bounds[2:-1:2] = stop_m, stop_m + stop_dur
    taus[1:-1:2], taus[2:-1:2] = stop_tau, stop_tau
    states[1::2] = stop_kind
    bounds[-1] = max(horizon, bounds[-2]) + 1.0
    taus[-1] = taus[-2] + bounds[-1] - bounds[-2]
    keep = bounds[1:] > bounds[:-1]  # drop empty ACTIVE pieces between coincident stops
    bounds = np.append(bounds[:-1][keep], bounds[-1])
    taus = np.append(taus[:-1][keep], taus[-1])
    states = states[keep]

    # split at shift starts and breaks, truncate at the horizon
    cuts = np.concatenate([bounds[bounds < horizon], shift_m, break_m[break_m < horizon]])
    edges = np.unique(np.append(cuts, horizon))
    start_m, end_m = edges[:-1], edges[1:]
    state = states[np.searchsorted(bounds, start_m, side="right") - 1]
    edge_tau = np.interp(edges, bounds, taus)  # exact at the original bounds
    done = np.searchsorted(part_tau, edge_tau, side="right")
    scrap_sum = np.concatenate([[0], np.cumsum(scrap)])
    total = np.diff(done)
    bad = np.diff(scrap_sum[done])
    breaks_before = np.searchsorted(break_m, start_m, side="right")
    start_wall = start_m + p.break_duration * breaks_before
    shift = np.searchsorted(shift_m, start_m, side="right") - 1

    n_made = int(done[-1])
    piece = np.searchsorted(edge_tau, part_tau[:n_made], side="left") - 1
    part_time = start_wall[piece] + (part_tau[:n_made] - edge_tau[piece])

    n_breaks = break_m.size
    all_start = np.concatenate([start_wall, np.arange(n_breaks) * p.shift_duration + p.break_start])
    order = np.argsort(all_start, kind="stable")
    time = all_start[order]
    duration = np.concatenate([end_m - start_m, np.full(n_breaks, p.break_duration)])[order]
    state = np.concatenate([state, np.full(n_breaks, READY)])[order].astype(np.int8)
    shift = np.concatenate([shift, np.arange(n_breaks)])[order].astype(np.int32)
    good = np.concatenate([total - bad, np.zeros(n_breaks, np.intp)])[order].astype(np.int32)
    bad = np.concatenate([bad, np.zeros(n_breaks, np.intp)])[order].astype(np.int32)

    summary = shift_summary(duration, state, good, bad, shift, p.n_shifts, p.ideal_cycle_time)

    ds = xr.Dataset(
        coords={
            "time": (
                "event",
                time,
                {"units": "s", "long_name": "start of the event since the first shift started"},
            ),
            "shift": ("shift", np.arange(p.n_shifts, dtype=np.int32), _attrs("1", "shift index")),
        }
    )
    ds["duration"] = ("event", duration, _attrs("s", "duration of the event"))
    ds["state"] = (
        "event",
        state,
        {
            **_attrs("1", "MTConnect execution state"),
            "flag_values": np.arange(len(STATES), dtype=np.int8),
            "flag_meanings": " ".join(STATES),
            "oee_loss": (
                "ACTIVE: run time; FEED_HOLD: minor stop, performance loss; INTERRUPTED: tool "
                "change, availability loss; STOPPED: breakdown, availability loss; READY: "
                "planned break, not planned production time"
            ),
        },
    )
    ds["parts_good"] = ("event", good, _attrs("1", "good parts completed in the event"))
    ds["parts_scrap"] = ("event", bad, _attrs("1", "scrap parts completed in the event"))
    ds["event_shift"] = ("event", shift, _attrs("1", "index of the shift of the event"))
    ds["part_time"] = ("part", part_time, _attrs("s", "completion time of the part"))
    ds["part_tool_wear"] = (
        "part",
        wear[:n_made],
        _attrs("1", "tool wear: parts cut by the tool before this one / tool life"),
    )
    ds["part_scrap_probability"] = (
        "part",
        scrap_p[:n_made],
        _attrs("1", "probability that the part is scrap (ground truth)"),
    )
    ds["part_scrap"] = (
        "part",
        scrap[:n_made].astype(np.int8),
        {
            **_attrs("1", "quality outcome of the part"),
            "flag_values": np.array([0, 1], dtype=np.int8),
            "flag_meanings": "good scrap",
        },
    )
    ds["shift_start"] = (
        "shift",
        np.arange(p.n_shifts) * p.shift_duration,
        _attrs("s", "shift start"),
    )
    for key, (units, label) in SUMMARY_LABELS.items():
        ds[key] = ("shift", summary[key], _attrs(units, label))
    return conventions.finish(
        ds,
        title="Production-line event log with OEE per shift (simulated)",
        summary=(
            "Event log of a machine in MTConnect execution states over a shift schedule: "
            "Weibull breakdowns with lognormal repairs, Poisson minor stops, speed losses, tool "
            "changes and wear-dependent scrap, with availability, performance, quality and OEE "
            "per shift."
        ),
        source=f"smartfab generator {NAME} {VERSION}",
        parameters={**p.model_dump(), "seed": seed},
        license="CC-BY-4.0",
        references=(
            "Nakajima, Introduction to TPM, 1988; ISO 22400-2:2014; MTConnect Standard "
            "(Execution data item)"
        ),
        keywords="OEE, availability, performance, quality, MTConnect, event log, reliability",
        ground_truth=(
            "Per shift: availability = run time (ACTIVE + FEED_HOLD) / planned time (all but "
            "READY); performance = ideal_cycle_time x (good + scrap) / run time; quality = good "
            "/ (good + scrap); oee = availability x performance x quality. Operating (ACTIVE) "
            "time between breakdowns is Weibull(failure_shape, failure_scale); each part's "
            "scrap probability and tool wear are given."
        ),
    )


SUMMARY_LABELS = {
    "planned_time": ("s", "planned production time of the shift"),
    "run_time": ("s", "run time of the shift (ACTIVE and FEED_HOLD)"),
    "total_count": ("1", "parts completed in the shift"),
    "good_count": ("1", "good parts completed in the shift"),
    "availability": ("1", "availability: run time / planned production time"),
    "performance": ("1", "performance: ideal cycle time x total count / run time"),
    "quality": ("1", "quality: good count / total count"),
    "oee": ("1", "overall equipment effectiveness: availability x performance x quality"),
}


def shift_summary(
    duration: FloatArray,
    state: npt.NDArray[np.integer[Any]],
    good: npt.NDArray[np.integer[Any]],
    scrap: npt.NDArray[np.integer[Any]],
    shift: npt.NDArray[np.integer[Any]],
    n_shifts: int,
    ideal_cycle_time: float,
) -> dict[str, npt.NDArray[Any]]:
    """OEE and its factors per shift from an event log (NaN where a ratio is undefined).

    Parameters
    ----------
    duration, state, good, scrap, shift:
        The event log: duration (s), execution-state code, good and scrap parts, shift index.
    n_shifts:
        Number of shifts.
    ideal_cycle_time:
        Ideal cycle time, s.

    Returns
    -------
    dict
        ``planned_time``, ``run_time``, ``total_count``, ``good_count``, ``availability``,
        ``performance``, ``quality`` and ``oee``, one value per shift.
    """
    running = (state == ACTIVE) | (state == FEED_HOLD)
    planned = np.bincount(shift, weights=duration * (state != READY), minlength=n_shifts)
    run = np.bincount(shift, weights=duration * running, minlength=n_shifts)
    total = np.bincount(shift, weights=good + scrap, minlength=n_shifts).round().astype(np.int64)
    good_count = np.bincount(shift, weights=good, minlength=n_shifts).round().astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        availability = run / planned
        performance = np.where(run > 0, ideal_cycle_time * total / run, np.nan)
        quality = np.where(total > 0, good_count / total, np.nan)
    return {
        "planned_time": planned,
        "run_time": run,
        "total_count": total,
        "good_count": good_count,
        "availability": availability,
        "performance": performance,
        "quality": quality,
        "oee": availability * performance * quality,
    }


def _attrs(units: str, long_name: str) -> dict[str, str]:
    return {"units": units, "long_name": long_name}


GENERATOR = Generator(
    name=NAME,
    params=OeeParams,
    build=build,
    description="machine event log in MTConnect execution states with OEE per shift",
)
