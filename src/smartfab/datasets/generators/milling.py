"""CNC end milling of steel: flank wear of a series of tools, cutting forces, power and AE.

Physics
-------
Tool life follows Taylor's law V T^n = C (V cutting speed in m/min, T life in min to the ISO 3685
criterion of an average flank wear VB = 0.3 mm). Presets for a steel workpiece, typical textbook
values (not a particular grade):

==================  ======  ============  ===================================================
material            n       C (m/min)     source
==================  ======  ============  ===================================================
``hss``             0.125   70            Groover, Fundamentals of Modern Manufacturing,
                                          table of Taylor parameters (HSS on steel)
``carbide``         0.25    350           n: Groover (cemented carbide 0.25); C: mid-range of
                                          handbook values for uncoated carbide on plain
                                          carbon steel (300-500 m/min)
``coated-carbide``  0.33    480           within the carbide range n = 0.2-0.5 given by
                                          Kalpakjian and Schmid, Manufacturing Engineering
                                          and Technology; C typical of TiN/TiCN-coated grades
==================  ======  ============  ===================================================

Each tool's life scatters lognormally around the Taylor life (median = Taylor life).

Flank wear follows the classic three stages, in normalised cutting time tau = t / T::

    f(tau) = A (1 - exp(-tau / a)) + B tau + Cw tau^m,   VB(t) = 0.3 mm f(tau) / f(1)

rapid break-in wear (A, a), a steady linear region (B) and accelerating wear (Cw, m = 8); the
coefficients vary from tool to tool and VB is exactly 0.3 mm at the tool's life.

Cutting forces are mechanistic (Altintas, Manufacturing Automation, ch. 2): tooth j at immersion
angle phi_j cuts a chip of thickness h = (f_z + runout_j) sin phi_j and width a_p; the tangential
force is Kienzle's F_t = k_c1.1 h^(1 - m_c) a_p (specific cutting force k_c = k_c1.1 h^-m_c, AISI
1045: k_c1.1 = 1700 N mm-2, m_c = 0.25), the radial force 0.4 F_t and the axial force 0.25 F_t. The
worn flank adds a rubbing force on the wear land (Waldorf et al. 1998): normal sigma VB a_p and
tangential mu sigma VB a_p with sigma = 1000 N mm-2 and mu = 0.5, so the forces rise with wear.
Forces are resolved to the dynamometer axes (x feed, y cross-feed, z axial) and repeat at the
tooth-passing frequency N n / 60. Spindle power is P = v sum(F_t); the spindle current follows
from the electrical power P / eta + P_idle at the supply voltage (power factor 0.85); the acoustic
emission RMS grows as the square root of the plastic and friction power (Dornfeld), with flank
rubbing weighted three times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import xarray as xr
from numpy.typing import NDArray
from pydantic import Field, model_validator

from smartfab.datasets import conventions
from smartfab.datasets.registry import Generator, Params
from smartfab.errors import ParameterError

NAME = "milling-tool-wear"
VERSION = "1.0"

#: ISO 3685 end-of-life criterion: average flank wear land width, mm
VB_LIMIT = 0.3
#: Kienzle exponent, radial and axial force ratios, flank contact stress (N mm-2) and friction
KIENZLE_MC = 0.25
RADIAL_RATIO = 0.4
AXIAL_RATIO = 0.25
FLANK_STRESS = 1000.0
FLANK_FRICTION = 0.5
POWER_FACTOR = 0.85
#: AE sensitivity, V W-1/2, and the weight of flank rubbing in the AE source power
AE_GAIN = 0.01
AE_FLANK_WEIGHT = 3.0
#: nominal wear-curve coefficients (mm) and shape constants of f(tau)
WEAR_A, WEAR_B, WEAR_C = 0.08, 0.15, 0.07
WEAR_TAU0, WEAR_M = 0.05, 8.0
STAGE_MEANINGS = "break_in steady accelerated"


@dataclass(frozen=True)
class ToolMaterial:
    """Taylor parameters of a tool material on steel, and a typical cutting speed (m/min)."""

    n: float
    c: float
    typical_speed: float


TOOL_MATERIALS: dict[str, ToolMaterial] = {
    "hss": ToolMaterial(n=0.125, c=70.0, typical_speed=45.0),
    "carbide": ToolMaterial(n=0.25, c=350.0, typical_speed=200.0),
    "coated-carbide": ToolMaterial(n=0.33, c=480.0, typical_speed=250.0),
}


def taylor_life(material: str, cutting_speed: float) -> float:
    """Tool life from Taylor's law, T = (C / V)^(1/n).

    Parameters
    ----------
    material:
        A key of :data:`TOOL_MATERIALS`.
    cutting_speed:
        Cutting speed V, m/min.

    Returns
    -------
    float
        Tool life, min.

    Raises
    ------
    ParameterError
        For an unknown material or a speed that is not positive.
    """
    if material not in TOOL_MATERIALS:
        raise ParameterError(
            f"{NAME}: unknown tool material {material!r}; known: {', '.join(TOOL_MATERIALS)}"
        )
    if not cutting_speed > 0:
        raise ParameterError(f"{NAME}: cutting_speed must be positive (got {cutting_speed!r})")
    tool = TOOL_MATERIALS[material]
    return float((tool.c / cutting_speed) ** (1.0 / tool.n))


class MillingParams(Params):
    """Parameters of the milling tool-wear generator."""

    tool_material: Literal["hss", "carbide", "coated-carbide"] = Field(
        "carbide", description="tool material preset (Taylor n and C on steel)"
    )
    cutting_speed: float | None = Field(
        None, gt=0, description="cutting speed, m min-1 (default: the material's typical speed)"
    )
    feed_per_tooth: float = Field(0.08, gt=0, le=1, description="feed per tooth, mm")
    axial_depth: float = Field(2.0, gt=0, le=50, description="axial depth of cut a_p, mm")
    radial_depth: float = Field(3.0, gt=0, description="radial depth of cut a_e, mm")
    n_teeth: int = Field(4, ge=1, le=16, description="number of teeth, 1")
    tool_diameter: float = Field(10.0, gt=0, le=200, description="tool diameter, mm")
    milling_mode: Literal["down", "up"] = Field("down", description="down (climb) or up milling")
    specific_cutting_force: float = Field(
        1700.0, gt=0, description="Kienzle k_c1.1 of the workpiece, N mm-2"
    )
    n_tools: int = Field(4, ge=1, le=1000, description="number of tools run to end of life, 1")
    cuts_per_tool: int = Field(15, ge=3, le=1000, description="cuts (runs) per tool, 1")
    force_sampling_rate: float = Field(
        10000.0, gt=0, le=200000, description="sampling rate of the force record, Hz"
    )
    record_duration: float = Field(0.1, gt=0, le=10, description="force record per cut, s")
    life_scatter: float = Field(
        0.08, ge=0, le=1, description="lognormal sigma of tool life around Taylor's law, 1"
    )
    runout: float = Field(0.002, ge=0, le=0.1, description="tooth radial runout (std), mm")
    force_noise: float = Field(5.0, ge=0, description="dynamometer noise (std), N")
    supply_voltage: float = Field(400.0, gt=0, description="spindle drive line voltage, V")
    motor_efficiency: float = Field(0.85, gt=0, le=1, description="spindle drive efficiency, 1")
    idle_power: float = Field(200.0, ge=0, description="spindle electrical power idling, W")

    @property
    def speed(self) -> float:
        """Cutting speed in m/min (the material's typical speed when not given)."""
        if self.cutting_speed is None:
            return TOOL_MATERIALS[self.tool_material].typical_speed
        return self.cutting_speed

    @property
    def spindle_speed(self) -> float:
        """Spindle speed, min-1."""
        return 1000.0 * self.speed / (np.pi * self.tool_diameter)

    @property
    def tooth_passing_frequency(self) -> float:
        """Tooth-passing frequency, Hz."""
        return self.spindle_speed * self.n_teeth / 60.0

    @property
    def record_samples(self) -> int:
        """Samples in one force record."""
        return max(round(self.record_duration * self.force_sampling_rate), 8)

    @model_validator(mode="after")
    def _consistent(self) -> MillingParams:
        if self.radial_depth > self.tool_diameter:
            raise ValueError(
                f"radial_depth {self.radial_depth} mm exceeds tool_diameter {self.tool_diameter} mm"
            )
        if self.tooth_passing_frequency >= self.force_sampling_rate / 2:
            raise ValueError(
                f"tooth-passing frequency {self.tooth_passing_frequency:.1f} Hz is not below half "
                f"the force_sampling_rate ({self.force_sampling_rate / 2} Hz)"
            )
        return self


def _wear(
    tau: NDArray[np.float64], factors: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.int8]]:
    """Flank wear (mm) and wear stage at normalised times ``tau`` (tool, cut).

    ``factors`` (tool, 3) scale the nominal break-in, steady and accelerating coefficients.
    """
    a = WEAR_A * factors[:, :1]
    b = WEAR_B * factors[:, 1:2]
    c = WEAR_C * factors[:, 2:]

    def shape(x: NDArray[np.float64]) -> NDArray[np.float64]:
        curve: NDArray[np.float64] = a * -np.expm1(-x / WEAR_TAU0) + b * x + c * x**WEAR_M
        return curve

    vb = VB_LIMIT * shape(tau) / shape(np.ones_like(tau))
    end_break_in = WEAR_TAU0 * np.log(np.maximum(a / (WEAR_TAU0 * b), 1.0))
    start_acceleration = (b / (WEAR_M * c)) ** (1.0 / (WEAR_M - 1.0))
    stage = (tau > end_break_in).astype(np.int8) + (tau > start_acceleration).astype(np.int8)
    return vb, stage


def _forces(
    params: MillingParams,
    vb: NDArray[np.float64],
    runout: NDArray[np.float64],
    rng: np.random.Generator,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Force records (3, cut, time) in N, cutting power and flank power (cut,) in W, one tool."""
    fs, teeth = params.force_sampling_rate, params.n_teeth
    n = params.record_samples
    t = np.arange(n) / fs
    start = rng.uniform(0, 2 * np.pi, vb.size)
    pitch = 2 * np.pi * np.arange(teeth) / teeth
    phi = np.mod(
        2 * np.pi * params.spindle_speed / 60.0 * t[None, :, None]
        + start[:, None, None]
        + pitch[None, None, :],
        2 * np.pi,
    )
    sweep = np.arccos(1 - 2 * params.radial_depth / params.tool_diameter)
    entry, leave = (np.pi - sweep, np.pi) if params.milling_mode == "down" else (0.0, sweep)
    engaged = (phi >= entry) & (phi <= leave)
    feed = np.clip(params.feed_per_tooth + runout - np.roll(runout, 1), 0.0, None)
    h = np.where(engaged, feed[None, None, :] * np.sin(phi), 0.0)
    ap = params.axial_depth
    chip = params.specific_cutting_force * np.clip(h, 0.0, None) ** (1 - KIENZLE_MC) * ap
    normal = np.where(engaged, FLANK_STRESS * ap * vb[:, None, None], 0.0)
    ft = chip + FLANK_FRICTION * normal
    fr = RADIAL_RATIO * chip + normal
    cos, sin = np.cos(phi), np.sin(phi)
    forces = np.stack(
        [
            np.sum(-ft * cos - fr * sin, axis=-1),
            np.sum(ft * sin - fr * cos, axis=-1),
            np.sum(AXIAL_RATIO * ft, axis=-1),
        ]
    )
    forces += params.force_noise * rng.standard_normal(forces.shape)
    v = params.speed / 60.0
    chip_power = v * chip.sum(axis=-1).mean(axis=-1)
    flank_power = v * FLANK_FRICTION * normal.sum(axis=-1).mean(axis=-1)
    return forces, chip_power, flank_power


def build(params: MillingParams, seed: int) -> xr.Dataset:
    """Simulate a series of milling tools cut from new to the VB = 0.3 mm criterion.

    Parameters
    ----------
    params:
        Validated parameters.
    seed:
        Seed of every random draw (same params and seed give the same dataset).

    Returns
    -------
    xarray.Dataset
        Force records ``force_x/y/z`` on (``tool``, ``cut``, ``time``); per cut ``flank_wear``,
        ``wear_stage``, ``cutting_time``, ``rul``, ``spindle_power``, ``spindle_current`` and
        ``acoustic_emission_rms``; per tool ``tool_life``.
    """
    material = TOOL_MATERIALS[params.tool_material]
    nominal = taylor_life(params.tool_material, params.speed)
    life_rng, shape_rng, sensor_rng, *tool_rngs = np.random.default_rng(seed).spawn(
        3 + params.n_tools
    )
    sigma = params.life_scatter
    life = nominal * np.exp(sigma * life_rng.standard_normal(params.n_tools))
    cuts = np.arange(1, params.cuts_per_tool + 1)
    tau = np.broadcast_to(cuts / params.cuts_per_tool, (params.n_tools, cuts.size))
    vb, stage = _wear(tau, np.exp(0.1 * shape_rng.standard_normal((params.n_tools, 3))))
    n_time = params.record_samples
    forces = np.empty((3, params.n_tools, cuts.size, n_time), dtype=np.float32)
    chip_power = np.empty((params.n_tools, cuts.size))
    flank_power = np.empty_like(chip_power)
    for i, rng in enumerate(tool_rngs):
        runout = params.runout * rng.standard_normal(params.n_teeth)
        forces[:, i], chip_power[i], flank_power[i] = _forces(params, vb[i], runout, rng)
    power = chip_power + flank_power
    electrical = power / params.motor_efficiency + params.idle_power
    current = electrical / (np.sqrt(3) * params.supply_voltage * POWER_FACTOR)
    current *= 1 + 0.01 * sensor_rng.standard_normal(current.shape)
    ae = AE_GAIN * np.sqrt(chip_power + AE_FLANK_WEIGHT * flank_power)
    ae *= np.exp(0.05 * sensor_rng.standard_normal(ae.shape))
    cutting_time = life[:, None] * tau
    per_cut = ("tool", "cut")
    signal_dims = ("tool", "cut", "time")
    ds = xr.Dataset(
        {
            **{
                f"force_{axis}": (
                    signal_dims,
                    forces[k],
                    {"units": "N", "long_name": f"cutting force, {label}"},
                )
                for k, (axis, label) in enumerate(
                    [("x", "feed direction"), ("y", "cross-feed direction"), ("z", "axial")]
                )
            },
            "flank_wear": (per_cut, vb, {"units": "mm", "long_name": "flank wear VB after cut"}),
            "wear_stage": (
                per_cut,
                stage,
                {
                    "units": "1",
                    "long_name": "wear stage",
                    "flag_values": np.array([0, 1, 2], dtype=np.int8),
                    "flag_meanings": STAGE_MEANINGS,
                },
            ),
            "cutting_time": (
                per_cut,
                cutting_time,
                {"units": "min", "long_name": "cumulative cutting time at end of cut"},
            ),
            "rul": (
                per_cut,
                life[:, None] - cutting_time,
                {"units": "min", "long_name": "remaining useful life of the tool"},
            ),
            "spindle_power": (per_cut, power, {"units": "W", "long_name": "mean cutting power"}),
            "spindle_current": (
                per_cut,
                current,
                {"units": "A", "long_name": "mean spindle drive line current"},
            ),
            "acoustic_emission_rms": (
                per_cut,
                ae,
                {"units": "V", "long_name": "acoustic emission RMS"},
            ),
            "tool_life": (
                ("tool",),
                life,
                {"units": "min", "long_name": "tool life to VB = 0.3 mm"},
            ),
            "taylor_life": ((), nominal, {"units": "min", "long_name": "Taylor tool life"}),
            "cutting_speed": ((), params.speed, {"units": "m min-1", "long_name": "cutting speed"}),
            "spindle_speed": (
                (),
                params.spindle_speed,
                {"units": "min-1", "long_name": "spindle speed"},
            ),
            "tooth_passing_frequency": (
                (),
                params.tooth_passing_frequency,
                {"units": "Hz", "long_name": "tooth-passing frequency"},
            ),
        },
        coords={
            "tool": ("tool", np.arange(params.n_tools), {"units": "1", "long_name": "tool number"}),
            "cut": ("cut", cuts, {"units": "1", "long_name": "cut number"}),
            "time": (
                "time",
                np.arange(n_time) / params.force_sampling_rate,
                {"units": "s", "long_name": "time since start of force record"},
            ),
        },
        attrs={"taylor_n": material.n, "taylor_c_m_per_min": material.c, "vb_limit_mm": VB_LIMIT},
    )
    return conventions.finish(
        ds,
        title=f"Milling tool wear ({params.tool_material}, {params.speed:g} m/min)",
        summary=(
            "Simulated end milling of steel with a series of tools from new to the ISO 3685 "
            "flank-wear criterion: Taylor tool lives with tool-to-tool scatter, three-stage flank "
            "wear, mechanistic cutting forces at tooth-passing frequency, spindle power and "
            "current, and acoustic emission, all rising with wear."
        ),
        source=f"smartfab generator {NAME} {VERSION}",
        parameters={**params.model_dump(), "seed": seed},
        license="CC-BY-4.0",
        references=(
            "Taylor F.W. (1907) On the art of cutting metals; ISO 3685:1993 Tool-life testing "
            "with single-point turning tools; Altintas Y. (2012) Manufacturing Automation, 2nd "
            "ed.; Kienzle O. (1952) VDI-Z 94:299-305; Waldorf D.J. et al. (1998) J. Manuf. Sci. "
            "Eng. 120:523-530; Groover M.P. Fundamentals of Modern Manufacturing; Kalpakjian S., "
            "Schmid S.R. Manufacturing Engineering and Technology"
        ),
        keywords="milling, tool wear, flank wear, Taylor tool life, cutting force, prognostics",
        ground_truth=(
            "flank_wear: VB after each cut (0.3 mm at the last cut, the tool's life); wear_stage: "
            "break-in, steady or accelerated wear; tool_life: each tool's life; rul: minutes of "
            "cutting left"
        ),
    )


GENERATOR = Generator(
    name=NAME,
    params=MillingParams,
    build=build,
    description="milling tools worn to VB = 0.3 mm: Taylor life, forces, power, current and AE",
)
