"""Process generators: spindle thermal drift, line OEE, process quality (SPC), cell energy.

Each section checks the physics or statistics the generator claims, then the shared contract
(determinism, parameter errors, CF/ACDD metadata, entry points) is checked for all four.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import xarray as xr
from scipy import optimize, stats

from smartfab.datasets.conventions import parameters_of
from smartfab.datasets.generators import energy, oee, spc, thermal
from smartfab.datasets.registry import GENERATOR_GROUP, Generator
from smartfab.errors import ParameterError

FloatArray = npt.NDArray[np.float64]
SENSORS = ("front_bearing", "rear_bearing", "motor")
GENERATORS: dict[str, Generator[Any]] = {
    "spindle-thermal": thermal.GENERATOR,
    "line-oee": oee.GENERATOR,
    "process-quality": spc.GENERATOR,
    "cell-energy": energy.GENERATOR,
}


# --------------------------------------------------------------------------- spindle-thermal


def _rises(ds: xr.Dataset) -> FloatArray:
    """Measured machine temperatures minus measured ambient, one row per sensor."""
    ambient = ds["temperature_ambient"].values
    return np.stack([ds[f"temperature_{name}"].values - ambient for name in SENSORS])


def test_thermal_rise_reaches_63_percent_at_tau() -> None:
    p = thermal.ThermalParams(speeds=(12000.0,), dwells=(6 * 2400.0,))
    quiet = {"temperature_noise": 0.0, "ambient_amplitude": 0.0, "ambient_drift": 0.0}
    exact = _rises(thermal.GENERATOR(seed=1, speeds=p.speeds, dwells=p.dwells, **quiet))
    noisy_ds = thermal.GENERATOR(seed=1, speeds=p.speeds, dwells=p.dwells)
    noisy = _rises(noisy_ds)
    t = noisy_ds["time"].values
    for row, rise, tau in zip(range(3), p.rises(), p.taus(), strict=True):
        at_tau = int(np.searchsorted(t, tau))
        assert t[at_tau] == tau
        assert exact[row, at_tau] / rise == pytest.approx(1 - np.exp(-1), rel=1e-12)
        at_5_tau = int(np.searchsorted(t, 5 * tau))
        assert exact[row, at_5_tau] / rise == pytest.approx(1 - np.exp(-5), rel=1e-12)
        assert noisy[row, at_tau] / rise == pytest.approx(0.632, abs=0.02)
        # a first-order fit to the noisy record finds the stated time constant and rise
        (rise_fit, tau_fit), _ = optimize.curve_fit(
            lambda x, r, k: r * (1 - np.exp(-x / k)), t, noisy[row], p0=(rise / 2, tau / 3)
        )
        assert tau_fit == pytest.approx(tau, rel=0.02)
        assert rise_fit == pytest.approx(rise, rel=0.01)


def test_thermal_response_is_exact_for_steps_between_samples() -> None:
    speeds, dwells = (6000.0, 12000.0, 3000.0, 0.0), (1234.5, 987.6, 2000.3, 1500.0)
    ds = thermal.GENERATOR(
        seed=0,
        speeds=speeds,
        dwells=dwells,
        temperature_noise=0.0,
        ambient_amplitude=0.0,
        ambient_drift=0.0,
    )
    p = thermal.ThermalParams(speeds=speeds, dwells=dwells)
    t = ds["time"].values
    starts = np.concatenate([[0.0], np.cumsum(dwells)[:-1]])
    relative = (np.asarray(speeds) / p.reference_speed) ** p.speed_exponent
    for row, rise, tau in zip(range(3), p.rises(), p.taus(), strict=True):
        jumps = np.diff(np.concatenate([[0.0], rise * relative]))
        lag = np.clip(t[None, :] - starts[:, None], 0.0, None)
        expected = (jumps[:, None] * (1 - np.exp(-lag / tau))).sum(axis=0)
        np.testing.assert_allclose(_rises(ds)[row], expected, rtol=0, atol=1e-9)
    assert ds["spindle_speed"].values[int(1300 / 10)] == 12000.0
    assert ds["programme_step"].values.max() == 3


def test_thermal_displacement_regression_recovers_coefficients() -> None:
    # six warm-up cycles (18 h): standard errors of the coefficients 0.01-0.04 um K-1
    ds = thermal.GENERATOR(seed=2, cycles=6, nonlinearity=0.0)
    p = thermal.ThermalParams(cycles=6, nonlinearity=0.0)
    ambient = ds["temperature_ambient"].values
    x = np.column_stack([np.ones(ambient.size), *_rises(ds), ambient])
    y = ds["displacement_z"].values
    fit, residual, *_ = np.linalg.lstsq(x, y, rcond=None)
    covariance = residual[0] / (y.size - x.shape[1]) * np.linalg.inv(x.T @ x)
    error = np.sqrt(np.diag(covariance))[1:]
    truth = np.array([*p.coefficients(), p.coefficient_ambient])
    assert np.all(np.abs(fit[1:] - truth) < np.maximum(5 * error, 0.02))
    assert np.all(np.abs(fit[1:] - truth) < 0.1)
    # compensating with the fit leaves about the measurement noise
    assert np.std(y - x @ fit) == pytest.approx(p.displacement_noise, rel=0.1)
    attrs = ds["displacement_z_true"].attrs
    assert [attrs[f"coefficient_{name}"] for name in (*SENSORS, "ambient")] == list(truth)


def test_thermal_displacement_follows_temperatures() -> None:
    ds = thermal.GENERATOR(seed=3)
    rises = _rises(ds)
    displacement = ds["displacement_z"].values
    assert np.corrcoef(displacement, rises[0])[0, 1] > 0.9
    assert np.corrcoef(displacement, rises[2])[0, 1] > 0.8
    truth = ds["displacement_z_true"].values
    assert truth[0] == 0.0
    assert np.std(displacement - truth) == pytest.approx(0.5, rel=0.15)
    assert truth.max() > 20.0  # tens of um after a warm-up


# --------------------------------------------------------------------------- line-oee


@pytest.fixture(scope="module")
def sf_long_oee_log() -> xr.Dataset:
    """900 shifts (300 days): ~1,600 failures and ~430,000 parts for distribution fits."""
    return oee.GENERATOR(seed=11, n_shifts=900)


def _runs(state: npt.NDArray[np.int8], code: int) -> npt.NDArray[np.bool_]:
    """Events where a run of ``code`` begins, ignoring planned breaks that split it."""
    previous = np.concatenate([[-1], state[:-1]])
    starts: npt.NDArray[np.bool_] = (state == code) & (previous != code)
    return starts


def test_oee_summary_recomputed_from_event_log() -> None:
    p = oee.OeeParams(n_shifts=4)
    ds = oee.GENERATOR(seed=5, n_shifts=4)
    start, duration = ds["time"].values, ds["duration"].values
    state, shift = ds["state"].values, ds["event_shift"].values
    good, scrap = ds["parts_good"].values, ds["parts_scrap"].values
    np.testing.assert_allclose(start[1:], start[:-1] + duration[:-1], rtol=1e-12)
    assert start[0] == 0.0
    assert start[-1] + duration[-1] == pytest.approx(4 * p.shift_duration, rel=1e-12)
    assert np.all(duration > 0)
    assert np.all(start // p.shift_duration == shift)
    for s in range(4):
        own = shift == s
        planned = duration[own & (state != oee.READY)].sum()
        run = duration[own & np.isin(state, [oee.ACTIVE, oee.FEED_HOLD])].sum()
        total = good[own].sum() + scrap[own].sum()
        availability = run / planned
        performance = p.ideal_cycle_time * total / run
        quality = good[own].sum() / total
        assert planned == pytest.approx(p.shift_duration - p.break_duration, rel=1e-12)
        row = ds.isel(shift=s)
        for name, value in {
            "planned_time": planned,
            "run_time": run,
            "total_count": total,
            "good_count": good[own].sum(),
            "availability": availability,
            "performance": performance,
            "quality": quality,
            "oee": availability * performance * quality,
        }.items():
            assert float(row[name]) == pytest.approx(value, rel=1e-9), name
    np.testing.assert_allclose(
        ds["oee"], ds["availability"] * ds["performance"] * ds["quality"], rtol=1e-12
    )
    assert 0.3 < float(ds["oee"].mean()) < 1.0
    # parts only in ACTIVE events, and the part list agrees with the log
    assert np.all((good + scrap)[state != oee.ACTIVE] == 0)
    assert ds.sizes["part"] == good.sum() + scrap.sum()
    assert ds["part_scrap"].values.sum() == scrap.sum()
    assert np.all(np.diff(ds["part_time"].values) > 0)


def test_oee_failures_are_weibull_in_operating_time(sf_long_oee_log: xr.Dataset) -> None:
    ds = sf_long_oee_log
    p = oee.OeeParams(n_shifts=900)
    working = ds["state"].values != oee.READY  # breaks pause every clock
    state = ds["state"].values[working]
    duration = ds["duration"].values[working]
    operating = np.cumsum(np.where(state == oee.ACTIVE, duration, 0.0))
    failures = _runs(state, oee.STOPPED)
    between = np.diff(np.concatenate([[0.0], operating[failures]]))
    assert between.size > 1500
    shape, _, scale = stats.weibull_min.fit(between, floc=0)
    # MLE standard errors: shape 0.78 k / sqrt(n) = 0.035, scale 1.05 / (k sqrt(n)) = 1.5 %
    assert shape == pytest.approx(p.failure_shape, abs=0.15)
    assert scale == pytest.approx(p.failure_scale, rel=0.06)
    # repairs (merged across breaks) are lognormal with the stated median and spread
    group = np.cumsum(failures)[state == oee.STOPPED]
    repairs = np.bincount(group, weights=duration[state == oee.STOPPED])[1:]
    assert np.median(repairs) == pytest.approx(p.repair_median, rel=0.1)
    assert np.std(np.log(repairs)) == pytest.approx(p.repair_sigma, abs=0.05)
    # minor stops: Poisson with the stated rate per operating hour
    rate = _runs(state, oee.FEED_HOLD).sum() / (operating[-1] / 3600.0)
    assert rate == pytest.approx(p.microstop_rate, rel=0.05)
    # one tool change per tool_life parts
    changes = _runs(state, oee.INTERRUPTED).sum()
    assert changes == ds.sizes["part"] // p.tool_life


def test_oee_scrap_rises_with_tool_wear(sf_long_oee_log: xr.Dataset) -> None:
    p = oee.OeeParams()
    wear = sf_long_oee_log["part_tool_wear"].values
    scrap = sf_long_oee_log["part_scrap"].values
    probability = sf_long_oee_log["part_scrap_probability"].values
    np.testing.assert_allclose(
        probability, p.scrap_min + (p.scrap_max - p.scrap_min) * wear**p.scrap_exponent
    )
    quartile = np.minimum((wear * 4).astype(int), 3)
    rates = np.array([scrap[quartile == q].mean() for q in range(4)])
    expected = np.array([probability[quartile == q].mean() for q in range(4)])
    counts = np.bincount(quartile)
    assert np.all(np.diff(rates) > 0)
    assert np.all(np.abs(rates - expected) < 4 * np.sqrt(expected / counts))
    assert wear.min() == 0.0
    assert wear.max() == (p.tool_life - 1) / p.tool_life


# --------------------------------------------------------------------------- process-quality


def test_spc_in_control_false_alarm_arl_is_370() -> None:
    lengths = []
    for seed in range(4):
        ds = spc.GENERATOR(seed=seed, n_samples=1_000_000, shifts=())
        mean = ds["subgroup_mean"]
        alarm = (mean > mean.attrs["upper_control_limit"]) | (
            mean < mean.attrs["lower_control_limit"]
        )
        assert ds["in_control"].values.all()
        lengths.append(np.diff(np.concatenate([[-1], np.flatnonzero(alarm.values)])))
    run_lengths = np.concatenate(lengths)
    arl = run_lengths.mean()
    # run lengths are geometric (sd ~ ARL), ~10,800 of them: standard error ~3.6
    error = run_lengths.std() / np.sqrt(run_lengths.size)
    theory = 1 / (2 * stats.norm.sf(3.0))
    assert theory == pytest.approx(370.4, abs=0.1)
    assert abs(arl - theory) < 4 * error
    assert 350 < arl < 390


def test_spc_two_sigma_shift_detected_with_arl_6_3() -> None:
    period, episodes = 150, 200
    shifts = [
        {"kind": "mean", "onset": 50 + period * k, "duration": 100, "magnitude": 2.0}
        for k in range(episodes)
    ]
    ds = spc.GENERATOR(seed=8, n_samples=period * episodes, shifts=shifts)
    p = spc.SpcParams(n_samples=period * episodes, shifts=tuple(spc.Shift(**s) for s in shifts))
    x = ds["subgroup_mean"].values
    alarm = np.abs(x - p.mean) > 3 * p.sigma
    onsets = ds["shift_onset"].values
    delays = np.array([np.flatnonzero(alarm[o : o + 100])[0] + 1 for o in onsets])
    theory = 1 / (stats.norm.sf(1.0) + stats.norm.cdf(-5.0))
    assert theory == pytest.approx(6.30, abs=0.01)
    assert abs(delays.mean() - theory) < 4 * delays.std() / np.sqrt(episodes)
    assert 4.5 < delays.mean() < 8.5
    # ground truth marks exactly the shifted samples
    shifted = np.zeros(period * episodes, dtype=bool)
    for o in onsets:
        shifted[o : o + 100] = True
    np.testing.assert_array_equal(ds["in_control"].values, (~shifted).astype(np.int8))
    np.testing.assert_allclose(ds["true_mean"].values[shifted], p.mean + 2 * p.sigma)
    np.testing.assert_array_equal(ds["shift_onset_time"].values, onsets * p.sample_interval)


def test_spc_variance_drift_subgroups_and_resolution() -> None:
    shifts = [
        {"kind": "variance", "onset": 1000, "duration": 2000, "magnitude": 2.0},
        {"kind": "drift", "onset": 4000, "magnitude": 0.01},
    ]
    ds = spc.GENERATOR(seed=4, n_samples=5000, subgroup_size=5, shifts=shifts)
    p = spc.SpcParams()
    values = ds["diameter"].values
    assert values.shape == (5000, 5)
    np.testing.assert_allclose(ds["subgroup_mean"].values, values.mean(axis=1))
    limit = ds["subgroup_mean"].attrs["upper_control_limit"] - p.mean
    assert limit == pytest.approx(3 * p.sigma / np.sqrt(5))
    assert values[:1000].std() == pytest.approx(p.sigma, rel=0.05)
    assert values[1000:3000].std() == pytest.approx(2 * p.sigma, rel=0.05)
    np.testing.assert_allclose(
        ds["true_mean"].values[4000:], p.mean + 0.01 * p.sigma * np.arange(1, 1001)
    )
    assert list(ds["disturbance"].values[[0, 1000, 3500, 4000]]) == [0, 2, 0, 4]
    assert list(ds["shift_end"].values) == [3000, 5000]
    rounded = spc.GENERATOR(seed=4, n_samples=100, shifts=(), resolution=0.001)["diameter"]
    np.testing.assert_allclose(rounded / 0.001, np.round(rounded / 0.001), atol=1e-6)


# --------------------------------------------------------------------------- cell-energy


@pytest.mark.parametrize("material", ["aluminium", "steel", "titanium"])
def test_energy_recovers_specific_cutting_energy(material: str) -> None:
    ds = energy.GENERATOR(seed=6, material=material, n_parts=10)
    p = energy.EnergyParams(material=material)
    power, speed = ds["power"].values, ds["spindle_speed"].values
    operation = ds["operation"].values
    rate = ds["material_removal_rate"].values * 1000 / 60  # mm3 s-1
    cut = (operation == energy.KINDS.index("cut")) & (speed == 9000)
    air = (operation == energy.KINDS.index("air_cut")) & (speed == 9000)
    # mean cutting power minus the spindle/idle power measured in air cutting, over MRR
    estimate = (power[cut].mean() - power[air].mean()) / rate[cut].mean()
    assert estimate == pytest.approx(energy.SPECIFIC_ENERGY[material], rel=0.03)
    # the same from the model's non-cutting power, over every cutting sample
    cutting = operation == energy.KINDS.index("cut")
    idle = p.base_power + p.auxiliary_power + p.spindle_power(speed[cutting])
    slope = np.sum((power[cutting] - idle) * rate[cutting]) / np.sum(rate[cutting] ** 2)
    assert slope == pytest.approx(energy.SPECIFIC_ENERGY[material], rel=0.01)
    assert ds["power"].attrs["specific_cutting_energy"] == energy.SPECIFIC_ENERGY[material]


def test_energy_per_part_is_the_integral_of_power() -> None:
    ds = energy.GENERATOR(seed=7, n_parts=6, sample_period=2.0, specific_energy=1.25)
    dt = 2.0
    power, part = ds["power"].values, ds["part_index"].values
    time = ds["time"].values
    cumulative = np.concatenate([[0.0], ds["energy"].values])
    for j in range(6):
        own = part == j
        assert time[own][0] == ds["part_start"].values[j]
        assert time[own][-1] + dt == ds["part_end"].values[j]
        integral = np.sum(power[own]) * dt / 1000.0  # power is the mean over each interval
        assert ds["part_energy"].values[j] == pytest.approx(integral, rel=1e-12)
        first, last = np.flatnonzero(own)[[0, -1]]
        difference = cumulative[last + 1] - cumulative[first]
        assert ds["part_energy"].values[j] == pytest.approx(difference, rel=1e-9)
        volume = np.sum(ds["material_removal_rate"].values[own]) * dt / 60.0
        assert ds["part_volume"].values[j] == pytest.approx(volume, rel=1e-12)
    assert ds["part_energy"].sum() == pytest.approx(ds["energy"].values[-1], rel=1e-9)
    assert ds["power"].attrs["specific_cutting_energy"] == 1.25
    # idle and tool change draw the fixed powers; the spindle stands still there
    p = energy.EnergyParams()
    truth, operation = ds["power_true"].values, ds["operation"].values
    np.testing.assert_allclose(truth[operation == 0], p.base_power)
    np.testing.assert_allclose(truth[operation == 3], p.base_power + p.tool_change_power)
    assert np.all(ds["spindle_speed"].values[np.isin(operation, [0, 3])] == 0)


# --------------------------------------------------------------------------- all generators


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generator_is_deterministic_for_a_seed(name: str) -> None:
    generator = GENERATORS[name]
    first = generator(seed=42)
    xr.testing.assert_identical(first, generator(seed=42))
    assert not first.equals(generator(seed=43))


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generator_metadata_follows_cf_and_acdd(name: str) -> None:
    ds = GENERATORS[name](seed=1)
    assert ds.attrs["Conventions"] == "CF-1.11, ACDD-1.3"
    assert ds.attrs["source"].startswith(f"smartfab generator {name} ")
    assert ds.attrs["license"] == "CC-BY-4.0"
    for attr in ("title", "summary", "references", "keywords", "ground_truth"):
        assert ds.attrs[attr], attr
    assert parameters_of(ds) == {
        **GENERATORS[name].params().model_dump(mode="json"),
        "seed": 1,
    }
    assert ds["time"].attrs["units"] == "s"
    for key, var in {**ds.coords, **ds.data_vars}.items():
        assert var.attrs["units"] and var.attrs["long_name"], key
        if "flag_values" in var.attrs:
            values = var.attrs["flag_values"]
            assert values.dtype == var.dtype, key
            assert len(var.attrs["flag_meanings"].split()) == len(values), key
            assert set(np.unique(var.values)) <= set(values.tolist()), key
    assert ds.nbytes < 1_000_000  # the defaults build a small dataset


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generator_is_registered_as_entry_point(name: str) -> None:
    (point,) = entry_points(group=GENERATOR_GROUP, name=name)
    assert point.load() is GENERATORS[name]
    assert GENERATORS[name].name == name


@pytest.mark.parametrize(
    ("name", "values", "mentions"),
    [
        ("spindle-thermal", {"bogus": 1}, "bogus"),
        ("spindle-thermal", {"speeds": (1000.0, 2000.0)}, "same length"),
        ("spindle-thermal", {"speeds": (-1.0,) * 5}, "speeds"),
        ("spindle-thermal", {"tau_motor": 0.0}, "tau_motor"),
        ("spindle-thermal", {"sample_period": -1.0}, "sample_period"),
        ("line-oee", {"n_shifts": 0}, "n_shifts"),
        ("line-oee", {"break_duration": 28800.0}, "break_duration"),
        ("line-oee", {"break_start": 28000.0}, "break"),
        ("line-oee", {"scrap_min": 0.5, "scrap_max": 0.1}, "scrap_min"),
        ("line-oee", {"failure_shape": -1.0}, "failure_shape"),
        ("process-quality", {"sigma": 0.0}, "sigma"),
        ("process-quality", {"shifts": [{"kind": "mean", "onset": 900, "magnitude": 1}]}, "900"),
        ("process-quality", {"shifts": [{"kind": "jump", "onset": 1, "magnitude": 1}]}, "kind"),
        ("process-quality", {"shifts": [{"kind": "variance", "onset": 1, "magnitude": 0}]}, "> 0"),
        ("process-quality", {"lower_spec_limit": 26.0}, "lower_spec_limit"),
        ("cell-energy", {"material": "unobtainium"}, "material"),
        ("cell-energy", {"n_parts": 0}, "n_parts"),
        (
            "cell-energy",
            {"operations": [{"kind": "cut", "duration": 5, "spindle_speed": 1}]},
            "removal_rate",
        ),
        (
            "cell-energy",
            {"operations": [{"kind": "idle", "duration": 5, "spindle_speed": 10}]},
            "spindle_speed",
        ),
        ("cell-energy", {"operations": [{"kind": "idle", "duration": 0.1}]}, "shorter"),
    ],
)
def test_generator_refuses_invalid_parameters(
    name: str, values: dict[str, Any], mentions: str
) -> None:
    with pytest.raises(ParameterError, match=name) as caught:
        GENERATORS[name](seed=0, **values)
    assert mentions in str(caught.value)
