"""Milling tool-wear generator: Taylor's law, three-stage flank wear, forces, power, metadata."""

from __future__ import annotations

from importlib.metadata import entry_points

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from smartfab.datasets import conventions
from smartfab.datasets.generators.milling import (
    GENERATOR,
    TOOL_MATERIALS,
    MillingParams,
    build,
    taylor_life,
)
from smartfab.errors import ParameterError

#: small runs where only the tool lives matter
SF_LIVES_ONLY = {"cuts_per_tool": 3, "record_duration": 0.01}


@pytest.mark.parametrize("material", sorted(TOOL_MATERIALS))
def test_tool_lives_follow_taylor_law(material: str) -> None:
    """Fit log T = log(C)/n - (1/n) log V over tools at five speeds: n and C within 10 %."""
    preset = TOOL_MATERIALS[material]
    speeds = preset.typical_speed * np.array([0.8, 0.9, 1.0, 1.1, 1.25])
    log_v: list[float] = []
    log_t: list[float] = []
    for k, speed in enumerate(speeds):
        ds = GENERATOR(
            seed=100 + k, tool_material=material, cutting_speed=speed, n_tools=40, **SF_LIVES_ONLY
        )
        lives = ds.tool_life.values
        assert float(ds.taylor_life) == pytest.approx((preset.c / speed) ** (1 / preset.n))
        # geometric mean of 40 lives within 3 standard errors of the Taylor life (sigma 0.08)
        assert abs(np.mean(np.log(lives)) - np.log(float(ds.taylor_life))) < 3 * 0.08 / 40**0.5
        log_v += [np.log(speed)] * lives.size
        log_t += list(np.log(lives))
    slope, intercept = np.polyfit(log_v, log_t, 1)
    n = -1.0 / slope
    c = np.exp(intercept * n)
    assert n == pytest.approx(preset.n, rel=0.1)
    assert c == pytest.approx(preset.c, rel=0.1)


def test_taylor_life_function() -> None:
    assert taylor_life("hss", 35.0) == pytest.approx(2.0**8)
    assert taylor_life("carbide", 175.0) == pytest.approx(16.0)
    with pytest.raises(ParameterError, match="diamond"):
        taylor_life("diamond", 100.0)
    with pytest.raises(ParameterError, match="cutting_speed"):
        taylor_life("hss", -1.0)


@pytest.mark.parametrize("material", sorted(TOOL_MATERIALS))
def test_flank_wear_has_three_stages_and_ends_at_limit(material: str) -> None:
    ds = GENERATOR(seed=4, tool_material=material, cuts_per_tool=60, record_duration=0.02)
    vb = ds.flank_wear.values
    t = ds.cutting_time.values
    life = ds.tool_life.values
    np.testing.assert_allclose(vb[:, -1], 0.3, rtol=0, atol=1e-12)
    np.testing.assert_allclose(t[:, -1], life, rtol=1e-12)
    assert np.all(vb[:, :-1] < 0.3)
    assert np.all(np.diff(vb, axis=1) > 0)
    slope = np.diff(np.concatenate([np.zeros((vb.shape[0], 1)), vb], axis=1), axis=1) / np.diff(
        np.concatenate([np.zeros((t.shape[0], 1)), t], axis=1), axis=1
    )
    initial = slope[:, 0]
    steady = np.median(slope[:, 20:40], axis=1)
    final = slope[:, -1]
    assert np.all(initial > 2 * steady)
    assert np.all(final > 2 * steady)
    stage = ds.wear_stage.values
    assert np.all(np.diff(stage, axis=1) >= 0)
    assert np.all(stage[:, 0] == 0)
    assert np.all(stage[:, 30] == 1)
    assert np.all(stage[:, -1] == 2)
    assert ds.wear_stage.attrs["flag_meanings"].split() == ["break_in", "steady", "accelerated"]
    rul = ds.rul.values
    assert np.all(rul[:, -1] == 0)
    assert np.all(np.diff(rul, axis=1) < 0)


@pytest.mark.parametrize("material", sorted(TOOL_MATERIALS))
@pytest.mark.parametrize(("mode", "radial_depth"), [("down", 3.0), ("up", 1.0), ("down", 10.0)])
def test_tooth_passing_frequency_dominates_force_spectrum(
    material: str, mode: str, radial_depth: float
) -> None:
    ds = GENERATOR(
        seed=9, tool_material=material, milling_mode=mode, radial_depth=radial_depth, n_tools=2
    )
    tooth = float(ds.tooth_passing_frequency)
    spindle = float(ds.spindle_speed) / 60
    assert tooth == pytest.approx(4 * spindle)
    fs = 1.0 / float(ds.time[1] - ds.time[0])
    freq = np.fft.rfftfreq(ds.time.size, 1.0 / fs)
    for axis in "xyz":
        force = ds[f"force_{axis}"].values.astype(np.float64)
        spectrum = np.abs(np.fft.rfft(force - force.mean(axis=-1, keepdims=True), axis=-1))
        peaks = freq[np.argmax(spectrum, axis=-1)]
        assert np.all(np.abs(peaks - tooth) <= freq[1]), (axis, peaks.min(), peaks.max())


def test_power_current_and_emission_rise_with_wear() -> None:
    ds = GENERATOR(seed=12, cuts_per_tool=20)
    vb = ds.flank_wear.values
    power = ds.spindle_power.values
    current = ds.spindle_current.values
    emission = ds.acoustic_emission_rms.values
    for tool in range(vb.shape[0]):
        assert stats.spearmanr(vb[tool], power[tool]).statistic > 0.95
        assert stats.spearmanr(vb[tool], current[tool]).statistic > 0.8
        # acoustic emission scatters by 5 % from cut to cut: a clear but noisier trend
        assert stats.spearmanr(vb[tool], emission[tool]).statistic > 0.6
    assert np.all(power[:, -1] > 1.2 * power[:, 0])
    assert np.all(emission[:, -5:].mean(axis=1) > 1.15 * emission[:, :5].mean(axis=1))
    # the cutting power is the mean tangential force times the cutting speed: of order kW here
    assert 300 < power.min() < power.max() < 5000
    # mean force magnitude rises with wear as well
    resultant = np.hypot(ds.force_x.mean("time"), ds.force_y.mean("time")).values
    assert np.all(resultant[:, -1] > resultant[:, 0])


def test_deterministic_for_a_seed() -> None:
    xr.testing.assert_identical(GENERATOR(seed=5), GENERATOR(seed=5))
    xr.testing.assert_identical(
        build(MillingParams(tool_material="hss"), 5), GENERATOR(seed=5, tool_material="hss")
    )
    one, other = GENERATOR(seed=5), GENERATOR(seed=6)
    assert not one.tool_life.equals(other.tool_life)
    assert not one.force_x.equals(other.force_x)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"cutting_sped": 100.0}, "cutting_sped"),
        ({"cutting_speed": -100.0}, "cutting_speed"),
        ({"feed_per_tooth": 0.0}, "feed_per_tooth"),
        ({"tool_material": "diamond"}, "tool_material"),
        ({"n_teeth": 0}, "n_teeth"),
        ({"radial_depth": 12.0}, "radial_depth"),
        ({"force_sampling_rate": 500.0}, "force_sampling_rate"),
        ({"milling_mode": "sideways"}, "milling_mode"),
    ],
)
def test_invalid_parameters_are_named(values: dict[str, object], named: str) -> None:
    with pytest.raises(ParameterError, match=named) as caught:
        GENERATOR(seed=0, **values)
    assert "milling-tool-wear" in str(caught.value)


def test_cf_metadata_and_registration() -> None:
    ds = GENERATOR(seed=1)
    assert ds.attrs["Conventions"] == conventions.CONVENTIONS
    assert ds.attrs["source"].startswith("smartfab generator milling-tool-wear")
    for name, var in {**ds.coords, **ds.data_vars}.items():
        assert {"units", "long_name"} <= set(var.attrs), name
    assert ds.force_x.dims == ("tool", "cut", "time")
    assert ds.time.attrs["units"] == "s"
    assert ds.cutting_speed.attrs["units"] == "m min-1"
    assert ds.spindle_speed.attrs["units"] == "min-1"
    assert ds.attrs["taylor_n"] == TOOL_MATERIALS["carbide"].n
    assert conventions.parameters_of(ds) == {**MillingParams().model_dump(), "seed": 1}
    assert ds.nbytes < 10e6
    (point,) = entry_points(group="smartfab.generators", name="milling-tool-wear")
    assert point.load() is GENERATOR
