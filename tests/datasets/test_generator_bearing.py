"""Bearing run-to-failure generator: defect frequencies, envelope spectra, degradation, metadata."""

from __future__ import annotations

from importlib.metadata import entry_points

import numpy as np
import pytest
import xarray as xr
from numpy.typing import NDArray
from scipy import signal, stats

from smartfab.datasets import conventions
from smartfab.datasets.generators.bearing import (
    GENERATOR,
    BearingGeometry,
    BearingParams,
    build,
    defect_frequencies,
)
from smartfab.errors import ParameterError

FAULT_KEY = {"outer": "bpfo", "inner": "bpfi"}


def sf_envelope_spectrum(
    x: NDArray[np.float64], fs: float, band: tuple[float, float] = (2000.0, 5000.0)
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Envelope spectrum: band-pass, Hilbert envelope, amplitude FFT (zero-padded 4 times)."""
    sos = signal.butter(4, band, btype="bandpass", fs=fs, output="sos")
    envelope = np.abs(signal.hilbert(signal.sosfiltfilt(sos, x)))
    spectrum = np.abs(np.fft.rfft(envelope - envelope.mean(), n=4 * x.size)) / x.size
    return np.fft.rfftfreq(4 * x.size, 1.0 / fs).astype(np.float64), spectrum


def sf_fault_frequency(ds: xr.Dataset, fault: str) -> float:
    if fault == "ball":
        return 2.0 * float(ds.attrs["bsf_frequency_hz"])
    return float(ds.attrs[f"{FAULT_KEY[fault]}_frequency_hz"])


def test_defect_frequencies_match_cwru_ratios() -> None:
    freqs = defect_frequencies("cwru-6205", 1.0)
    assert freqs["bpfo"] == pytest.approx(3.5848, rel=1e-4)
    assert freqs["bpfi"] == pytest.approx(5.4152, rel=1e-4)
    assert freqs["bsf"] == pytest.approx(2.357, abs=1e-3)
    assert freqs["ftf"] == pytest.approx(0.39828, abs=1e-4)
    scaled = defect_frequencies("cwru-6205", 1797 / 60)
    assert scaled["bpfo"] == pytest.approx(3.5848 * 1797 / 60, rel=1e-4)


def test_defect_frequencies_ims_and_custom_geometry() -> None:
    # Qiu et al. (2006): at 2000 min-1, BPFO 236.4 Hz, BPFI 296.9 Hz, 2 BSF 279.8 Hz, FTF 14.8 Hz
    ims = defect_frequencies("ims-za2115", 2000 / 60)
    assert ims["bpfo"] == pytest.approx(236.4, abs=0.1)
    assert ims["bpfi"] == pytest.approx(296.9, abs=0.1)
    assert 2 * ims["bsf"] == pytest.approx(279.8, abs=0.1)
    assert ims["ftf"] == pytest.approx(14.78, abs=0.01)
    same = defect_frequencies(BearingGeometry(16, 0.331, 2.815, 15.17), 2000 / 60)
    assert same == ims
    # identities: BPFO + BPFI = n fr, BPFO = n FTF
    assert ims["bpfo"] + ims["bpfi"] == pytest.approx(16 * 2000 / 60)
    assert ims["bpfo"] == pytest.approx(16 * ims["ftf"])
    with pytest.raises(ParameterError, match="no-such-bearing"):
        defect_frequencies("no-such-bearing", 30.0)


@pytest.mark.parametrize(
    ("preset", "speed", "fault"),
    [
        ("cwru-6205", 1797.0, "outer"),
        ("cwru-6205", 1797.0, "inner"),
        ("cwru-6205", 1797.0, "ball"),
        ("cwru-6205", 1730.0, "outer"),
        ("ims-za2115", 2000.0, "outer"),
        ("ims-za2115", 2000.0, "inner"),
    ],
)
@pytest.mark.parametrize("seed", [0, 7])
def test_envelope_spectrum_peaks_at_defect_frequency(
    preset: str, speed: float, fault: str, seed: int
) -> None:
    ds = GENERATOR(seed=seed, preset=preset, shaft_speed=speed, fault=fault)
    fs = float(ds.attrs["sampling_rate_hz"])
    shaft = speed / 60
    expected = sf_fault_frequency(ds, fault)
    freq, spectrum = sf_envelope_spectrum(ds.acceleration.isel(snapshot=-1).values, fs)
    resolution = fs / ds.time.size  # one bin of the snapshot's own spectrum
    # sidebands of the load zone (inner: fr, ball: FTF) lie outside this window; an error of a few
    # percent in the fault frequency moves the peak by several bins inside it
    half = 0.5 * (float(ds.attrs["ftf_frequency_hz"]) if fault == "ball" else shaft)
    window = (freq > expected - half) & (freq < expected + half)
    peak = freq[window][np.argmax(spectrum[window])]
    assert abs(peak - expected) <= resolution
    # and it is a real line: far above the spectrum's typical level in 10-500 Hz
    level = np.median(spectrum[(freq > 10) & (freq < 500)])
    assert spectrum[window].max() > 8 * level
    if fault == "outer":
        # no modulation: the defect frequency is the strongest envelope line overall
        wide = (freq > 0.5 * shaft) & (freq < 500)
        assert abs(freq[wide][np.argmax(spectrum[wide])] - expected) <= resolution


def test_no_defect_line_before_onset() -> None:
    ds = GENERATOR(seed=3)
    freq, spectrum = sf_envelope_spectrum(ds.acceleration.isel(snapshot=0).values, 12000.0)
    bpfo = float(ds.attrs["bpfo_frequency_hz"])
    near = np.abs(freq - bpfo) <= 1.0
    level = np.median(spectrum[(freq > 10) & (freq < 500)])
    assert spectrum[near].max() < 4 * level


def test_health_indicator_grows_after_onset() -> None:
    params = {"n_snapshots": 40, "snapshot_duration": 0.05}
    ds = GENERATOR(seed=11, **params)
    hours = ds.snapshot.values
    onset = float(ds.attrs["fault_onset_h"])
    after = hours > onset
    health = ds.health_indicator.values
    assert np.all(health[~after] == 0)
    assert np.all(health[after] > 0)
    assert np.all(np.diff(ds.expected_health.values[after]) > 0)
    assert stats.spearmanr(hours[after], health[after]).statistic > 0.9
    # monotonic in expectation: the mean over seeds increases snapshot by snapshot
    mean = np.mean([GENERATOR(seed=s, **params).health_indicator.values for s in range(30)], 0)
    assert np.all(np.diff(mean[after]) > 0)
    assert mean[-1] == pytest.approx(1.0, rel=0.1)
    # the vibration itself grows with the fault
    rms = np.sqrt((ds.acceleration.astype(np.float64) ** 2).mean("time")).values
    assert stats.spearmanr(hours[after], rms[after]).statistic > 0.9
    assert rms[-1] > 3 * rms[0]


def test_rul_and_fault_labels() -> None:
    ds = GENERATOR(seed=0, fault="inner", life=80.0, onset_fraction=0.3)
    rul = ds.rul.values
    assert np.all(np.diff(rul) < 0)
    assert rul[-1] == 0.0
    np.testing.assert_allclose(rul, 80.0 - ds.snapshot.values)
    active = ds.fault_active.values.astype(bool)
    assert np.array_equal(active, ds.snapshot.values > 0.3 * 80.0)
    assert set(ds.fault.values[~active]) == {0}
    assert set(ds.fault.values[active]) == {2}
    meanings = ds.fault.attrs["flag_meanings"].split()
    assert meanings[2] == "inner_race"
    assert list(ds.fault.attrs["flag_values"]) == [0, 1, 2, 3]


def test_deterministic_for_a_seed() -> None:
    xr.testing.assert_identical(GENERATOR(seed=5), GENERATOR(seed=5))
    xr.testing.assert_identical(
        build(BearingParams(fault="ball"), 5), GENERATOR(seed=5, fault="ball")
    )
    assert not GENERATOR(seed=5).acceleration.equals(GENERATOR(seed=6).acceleration)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"shaft_sped": 1797.0}, "shaft_sped"),
        ({"shaft_speed": -1797.0}, "shaft_speed"),
        ({"shaft_speed": 0}, "shaft_speed"),
        ({"fault": "cage"}, "fault"),
        ({"preset": "6206"}, "preset"),
        ({"jitter": 0.5}, "jitter"),
        ({"n_snapshots": 1}, "n_snapshots"),
        ({"resonance_frequency": 7000.0}, "resonance_frequency"),
    ],
)
def test_invalid_parameters_are_named(values: dict[str, object], named: str) -> None:
    with pytest.raises(ParameterError, match=named) as caught:
        GENERATOR(seed=0, **values)
    assert "bearing-run-to-failure" in str(caught.value)


def test_cf_metadata_and_registration() -> None:
    ds = GENERATOR(seed=2)
    assert ds.attrs["Conventions"] == conventions.CONVENTIONS
    assert ds.attrs["license"] == "CC-BY-4.0"
    assert ds.attrs["source"].startswith("smartfab generator bearing-run-to-failure")
    for name, var in {**ds.coords, **ds.data_vars}.items():
        assert {"units", "long_name"} <= set(var.attrs), name
    assert ds.acceleration.dims == ("snapshot", "time")
    assert ds.time.attrs["units"] == "s"
    assert ds.snapshot.attrs["units"] == "h"
    assert conventions.parameters_of(ds) == {**BearingParams().model_dump(), "seed": 2}
    assert ds.nbytes < 10e6
    (point,) = entry_points(group="smartfab.generators", name="bearing-run-to-failure")
    assert point.load() is GENERATOR
