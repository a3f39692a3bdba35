"""Machining-cell energy meter: power over a sequence of operations and energy per part.

Model
-----
Each part goes through the same programme of operations (load/unload idle, air cutting, cutting,
tool change). The electrical power drawn by the cell is the sum of (Gutowski et al. 2006: a large
constant share plus a part proportional to the material removal rate)

* the base power of the cell (controls, hydraulics, lighting, fans), always drawn;
* spindle power ``a + b n + c n^2`` whenever the spindle turns at ``n`` min-1 (no-load losses);
* auxiliary power (coolant pump, axis drives) during air cutting and cutting;
* tool-changer power during tool changes;
* cutting power ``u x MRR``, with ``u`` the specific cutting energy of the material (J mm-3) and
  ``MRR`` the material removal rate (cm3 min-1 = 1000/60 mm3 s-1) during cutting.

The MRR of each cutting operation varies from part to part (lognormal, ``removal_rate_cv``). The
meter reports the mean power over each sampling period with white noise; energy is the integral
(sum of power x period) of the reported power, cumulative and per part.

Specific cutting energy presets (J mm-3, at the drive motor, within the ranges tabulated by
Kalpakjian & Schmid and used by Gutowski et al. 2006): aluminium alloys 0.4-1 (0.7), cast iron
1.1-5.4 (2.0), carbon steel 2-9 (2.5), stainless steel 2-5 (3.5), titanium alloys 2-5 (4.5).

References
----------
T. Gutowski, J. Dahmus, A. Thiriez, Electrical energy requirements for manufacturing processes,
13th CIRP International Conference on Life Cycle Engineering, Leuven, 2006.
S. Kalpakjian, S. R. Schmid, Manufacturing Engineering and Technology, Pearson (table of
approximate specific energies in cutting).
N. Diaz, E. Redelsheimer, D. Dornfeld, Energy consumption characterization and reduction
strategies for milling machine tool use, Glocalized Solutions for Sustainability in
Manufacturing, Springer, 2011, 263-267.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr
from pydantic import Field, model_validator

from smartfab.datasets import conventions
from smartfab.datasets.registry import Generator, Params

NAME = "cell-energy"
VERSION = "1.0"

#: specific cutting energy presets, J mm-3
SPECIFIC_ENERGY = {
    "aluminium": 0.7,
    "cast_iron": 2.0,
    "steel": 2.5,
    "stainless_steel": 3.5,
    "titanium": 4.5,
}
KINDS = ("idle", "air_cut", "cut", "tool_change")
#: cm3 min-1 to mm3 s-1
CM3_PER_MIN = 1000.0 / 60.0


class Operation(Params):
    """One step of the part programme: kind, duration, spindle speed, removal rate."""

    kind: Literal["idle", "air_cut", "cut", "tool_change"] = Field(
        description="idle (load/unload), air_cut (spindle on, no material), cut, tool_change"
    )
    duration: float = Field(gt=0, description="duration, s (rounded to whole sample periods)")
    spindle_speed: float = Field(0.0, ge=0, le=100_000, description="spindle speed, min-1")
    removal_rate: float = Field(0.0, ge=0, description="material removal rate, cm3 min-1")

    @model_validator(mode="after")
    def _check_kind(self) -> Operation:
        spinning = self.kind in ("air_cut", "cut")
        if spinning != (self.spindle_speed > 0):
            raise ValueError(
                f"{self.kind}: spindle_speed must be {'> 0' if spinning else '0'} min-1 "
                f"(got {self.spindle_speed})"
            )
        if (self.kind == "cut") != (self.removal_rate > 0):
            raise ValueError(
                f"{self.kind}: removal_rate must be {'> 0' if self.kind == 'cut' else '0'} "
                f"cm3 min-1 (got {self.removal_rate})"
            )
        return self


DEFAULT_OPERATIONS = (
    Operation(kind="idle", duration=20.0),
    Operation(kind="air_cut", duration=8.0, spindle_speed=9000.0),
    Operation(kind="cut", duration=45.0, spindle_speed=9000.0, removal_rate=60.0),
    Operation(kind="air_cut", duration=4.0, spindle_speed=9000.0),
    Operation(kind="tool_change", duration=6.0),
    Operation(kind="air_cut", duration=5.0, spindle_speed=12000.0),
    Operation(kind="cut", duration=30.0, spindle_speed=12000.0, removal_rate=6.0),
    Operation(kind="air_cut", duration=4.0, spindle_speed=12000.0),
    Operation(kind="tool_change", duration=6.0),
)


class EnergyParams(Params):
    """Parameters of the machining-cell energy simulator (units in each description)."""

    material: Literal["aluminium", "cast_iron", "steel", "stainless_steel", "titanium"] = Field(
        "aluminium", description="workpiece material selecting the specific cutting energy"
    )
    specific_energy: float | None = Field(
        None, gt=0, description="specific cutting energy overriding the preset, J mm-3"
    )
    n_parts: int = Field(4, ge=1, le=1_000_000, description="number of parts machined, 1")
    operations: tuple[Operation, ...] = Field(
        DEFAULT_OPERATIONS, description="operations of the part programme, in order"
    )
    sample_period: float = Field(1.0, gt=0, description="sampling period of the meter, s")
    base_power: float = Field(1800.0, ge=0, description="base power of the cell, W")
    spindle_power_constant: float = Field(
        150.0, ge=0, description="spindle no-load power a (spindle turning), W"
    )
    spindle_power_linear: float = Field(
        0.06, ge=0, description="spindle no-load power b per speed, W min"
    )
    spindle_power_quadratic: float = Field(
        4e-6, ge=0, description="spindle no-load power c per speed squared, W min2"
    )
    auxiliary_power: float = Field(
        400.0, ge=0, description="coolant pump and axis drives while machining, W"
    )
    tool_change_power: float = Field(600.0, ge=0, description="tool changer power, W")
    removal_rate_cv: float = Field(
        0.05, ge=0, le=1, description="part-to-part coefficient of variation of the MRR, 1"
    )
    power_noise: float = Field(
        20.0, ge=0, description="standard deviation of the meter's power noise, W"
    )

    @model_validator(mode="after")
    def _check(self) -> EnergyParams:
        if not self.operations:
            raise ValueError("operations: the part programme needs at least one operation")
        short = [o.duration for o in self.operations if o.duration < 0.5 * self.sample_period]
        if short:
            raise ValueError(
                f"operation durations {short} s are shorter than half a sample period "
                f"({self.sample_period} s)"
            )
        if self.n_parts * sum(self.samples()) > 50_000_000:
            raise ValueError("the programme gives more than 5e7 samples")
        return self

    def samples(self) -> list[int]:
        """Duration of each operation in whole sample periods."""
        return [max(1, round(o.duration / self.sample_period)) for o in self.operations]

    def cutting_energy(self) -> float:
        """Specific cutting energy in use, J mm-3."""
        if self.specific_energy is not None:
            return self.specific_energy
        return SPECIFIC_ENERGY[self.material]

    def spindle_power(self, speed: np.ndarray) -> np.ndarray:
        """No-load spindle power at ``speed`` (min-1), W; zero where the spindle stands."""
        power = (
            self.spindle_power_constant
            + self.spindle_power_linear * speed
            + self.spindle_power_quadratic * speed**2
        )
        return np.where(speed > 0, power, 0.0)


def build(params: EnergyParams, seed: int) -> xr.Dataset:
    """Simulate a cell's power meter over a batch of parts, with energy per part.

    Parameters
    ----------
    params:
        Validated parameters (see :class:`EnergyParams`).
    seed:
        Seed of :func:`numpy.random.default_rng`; the same inputs give the same dataset.

    Returns
    -------
    xarray.Dataset
        Along ``time`` (s): power (W), operation, part index, spindle speed, removal rate and
        cumulative energy (kJ); along ``part``: start, end, removed volume and energy (kJ).
    """
    p = params
    rng = np.random.default_rng(seed)
    dt = p.sample_period
    per_op = np.array(p.samples())
    n_ops = per_op.size
    kind = np.array([KINDS.index(o.kind) for o in p.operations], dtype=np.int8)
    speed_op = np.array([o.spindle_speed for o in p.operations])
    rate_op = np.array([o.removal_rate for o in p.operations])

    sigma = np.sqrt(np.log1p(p.removal_rate_cv**2))
    factor = np.exp(sigma * rng.standard_normal((p.n_parts, n_ops)) - sigma**2 / 2)
    rate_part_op = (rate_op * factor).ravel()  # (part, operation) flattened
    op_index = np.tile(np.arange(n_ops), p.n_parts)
    repeats = np.tile(per_op, p.n_parts)
    sample_op = np.repeat(op_index, repeats)
    part_index = np.repeat(np.arange(p.n_parts, dtype=np.int32), per_op.sum())
    rate = np.repeat(rate_part_op, repeats)
    speed = speed_op[sample_op]
    operation = kind[sample_op]
    n = sample_op.size

    machining = (operation == KINDS.index("air_cut")) | (operation == KINDS.index("cut"))
    power_true = (
        p.base_power
        + p.spindle_power(speed)
        + p.auxiliary_power * machining
        + p.tool_change_power * (operation == KINDS.index("tool_change"))
        + p.cutting_energy() * rate * CM3_PER_MIN
    )
    power = power_true + p.power_noise * rng.standard_normal(n)
    energy = np.cumsum(power) * dt / 1000.0
    part_energy = np.bincount(part_index, weights=power, minlength=p.n_parts) * dt / 1000.0
    part_volume = np.bincount(part_index, weights=rate, minlength=p.n_parts) * dt / 60.0
    per_part = int(per_op.sum())
    time = np.arange(n) * dt
    part_start = np.arange(p.n_parts) * per_part * dt

    ds = xr.Dataset(
        coords={
            "time": (
                "time",
                time,
                {"units": "s", "long_name": "start of the metering interval", "axis": "T"},
            ),
            "part": ("part", np.arange(p.n_parts, dtype=np.int32), _attrs("1", "part index")),
        }
    )
    ds["power"] = (
        "time",
        power,
        {
            **_attrs("W", "electrical power of the cell, mean over the metering interval"),
            "specific_cutting_energy": p.cutting_energy(),
            "specific_cutting_energy_units": "J mm-3",
            "base_power": p.base_power,
            "spindle_power_coefficients": np.array(
                [p.spindle_power_constant, p.spindle_power_linear, p.spindle_power_quadratic]
            ),
            "spindle_power_coefficients_units": "W, W min, W min2",
            "auxiliary_power": p.auxiliary_power,
            "tool_change_power": p.tool_change_power,
            "power_units": "W",
        },
    )
    ds["power_true"] = ("time", power_true, _attrs("W", "noise-free power of the cell"))
    ds["operation"] = (
        "time",
        operation,
        {
            **_attrs("1", "operation of the part programme"),
            "flag_values": np.arange(len(KINDS), dtype=np.int8),
            "flag_meanings": " ".join(KINDS),
        },
    )
    ds["operation_step"] = (
        "time",
        sample_op.astype(np.int32),
        _attrs("1", "index of the operation in the part programme"),
    )
    ds["part_index"] = ("time", part_index, _attrs("1", "index of the part being machined"))
    ds["spindle_speed"] = ("time", speed, _attrs("min-1", "spindle speed"))
    ds["material_removal_rate"] = ("time", rate, _attrs("cm3 min-1", "material removal rate"))
    ds["energy"] = (
        "time",
        energy,
        _attrs("kJ", "cumulative electrical energy at the end of the metering interval"),
    )
    ds["part_start"] = ("part", part_start, _attrs("s", "start of the part's machining"))
    ds["part_end"] = ("part", part_start + per_part * dt, _attrs("s", "end of the part"))
    ds["part_volume"] = ("part", part_volume, _attrs("cm3", "material removed from the part"))
    ds["part_energy"] = ("part", part_energy, _attrs("kJ", "electrical energy for the part"))
    return conventions.finish(
        ds,
        title="Machining-cell energy meter over a batch of parts (simulated)",
        summary=(
            "Electrical power of a machining cell sampled over a sequence of operations (idle, "
            "air cutting, cutting, tool change) for a batch of parts: base power, spindle "
            "no-load power quadratic in speed, auxiliary power, and specific cutting energy "
            "times material removal rate, with cumulative energy and energy per part."
        ),
        source=f"smartfab generator {NAME} {VERSION}",
        parameters={**p.model_dump(), "seed": seed},
        license="CC-BY-4.0",
        references=(
            "Gutowski, Dahmus, Thiriez, Electrical energy requirements for manufacturing "
            "processes, CIRP LCE 2006; Kalpakjian & Schmid, Manufacturing Engineering and "
            "Technology (specific energies in cutting)"
        ),
        keywords="energy, power, machining, specific cutting energy, material removal rate",
        ground_truth=(
            "power_true = base_power + spindle a + b n + c n^2 (n > 0) + auxiliary_power "
            "(air_cut, cut) + tool_change_power (tool_change) + specific_cutting_energy x MRR; "
            "power adds meter noise; energy and part_energy integrate power over the metering "
            "intervals (cumulatively and per part)."
        ),
    )


def _attrs(units: str, long_name: str) -> dict[str, str]:
    return {"units": units, "long_name": long_name}


GENERATOR = Generator(
    name=NAME,
    params=EnergyParams,
    build=build,
    description="machining-cell power and energy per part from specific cutting energy",
)
