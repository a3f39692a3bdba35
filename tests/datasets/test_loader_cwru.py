"""CWRU loader: MATLAB v5 records written in the upstream layout, and the real upstream files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import xarray as xr
from scipy import signal

from smartfab.datasets.conventions import parameters_of
from smartfab.datasets.loaders import cwru, upstream
from smartfab.datasets.registry import Registry
from smartfab.errors import ChecksumError, DatasetError, ParameterError

#: real upstream copies (read only, never copied into the project): <project>/../shared/data/real
REAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
needs_real = pytest.mark.skipif(
    not REAL_DIR.is_dir(), reason=f"real upstream data directory {REAL_DIR} is absent"
)
G = 9.80665


def write_record(
    directory: Path,
    number: int,
    n: int,
    *,
    name: str | None = None,
    channels: tuple[str, ...] = ("DE", "FE", "BA"),
    rpm: int | None = 1797,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Write ``<number>.mat`` as CWRU does: float64 (n, 1) signals in g, uint16 (1, 1) RPM."""
    rng = np.random.default_rng(seed)
    content: dict[str, np.ndarray] = {
        f"X{number:03d}_{ch}_time": rng.standard_normal((n, 1)) for ch in channels
    }
    if rpm is not None:
        content[f"X{number:03d}RPM"] = np.array([[rpm]], dtype=np.uint16)
    scipy.io.savemat(directory / (name or f"{number}.mat"), content)
    return content


@pytest.fixture
def sf_cwru_dir(tmp_path: Path) -> Path:
    """Two records of the 12k drive-end tables that are not in our sha256 registry."""
    write_record(tmp_path, 98, 600, channels=("DE", "FE"), rpm=1772, seed=1)
    write_record(tmp_path, 131, 400, rpm=1771, seed=2)
    return tmp_path


def test_upstream_layout_read_back(sf_cwru_dir: Path) -> None:
    content = scipy.io.loadmat(sf_cwru_dir / "131.mat")
    assert content["X131_DE_time"].shape == (400, 1)
    assert content["X131_DE_time"].dtype == np.float64
    assert content["X131RPM"].dtype == np.uint16 and content["X131RPM"].shape == (1, 1)


def test_reads_records_with_units_and_ground_truth(sf_cwru_dir: Path) -> None:
    raw98 = scipy.io.loadmat(sf_cwru_dir / "98.mat")
    raw131 = scipy.io.loadmat(sf_cwru_dir / "131.mat")
    ds = cwru.LOADER(sf_cwru_dir)
    assert ds.DE.dims == ("record", "time")
    assert ds.sizes == {"record": 2, "time": 600, "defect": 4}
    assert list(ds.record.values) == [98, 131]
    np.testing.assert_allclose(ds.time.values[:3], [0, 1 / 12000, 2 / 12000])
    assert ds.time.attrs["units"] == "s"
    # values converted from g to m s-2, padded with NaN after the shorter record
    np.testing.assert_allclose(ds.DE.sel(record=98).values, raw98["X098_DE_time"].ravel() * G)
    np.testing.assert_allclose(
        ds.FE.sel(record=131).values[:400], raw131["X131_FE_time"].ravel() * G
    )
    assert np.isnan(ds.FE.sel(record=131).values[400:]).all()
    assert np.isnan(ds.BA.sel(record=98).values).all()  # 98 has no BA channel
    assert "98" in ds.BA.attrs["comment"]
    assert list(ds.length.values) == [600, 400]
    for name in ("DE", "FE", "BA"):
        assert ds[name].attrs["units"] == "m s-2"
        assert "9.80665" in ds[name].attrs["comment"]
    # ground truth from the tables: 98 = Normal_1, 131 = OR007@6_1
    assert list(ds.fault.values) == [cwru.FAULT_CODES["none"], cwru.FAULT_CODES["outer"]]
    assert list(ds.fault.attrs["flag_values"]) == [-1, 0, 1, 2, 3]
    assert ds.fault.attrs["flag_meanings"].split()[1:] == [
        "none",
        "outer_race",
        "inner_race",
        "rolling_element",
    ]
    np.testing.assert_allclose(ds.fault_diameter.values, [0.0, 0.007 * 25.4])
    assert ds.fault_diameter.attrs["units"] == "mm"
    assert list(ds.fault_position.values) == [0, 6]
    assert list(ds.motor_load.values) == [1.0, 1.0]
    assert list(ds.rpm.values) == [1772.0, 1771.0]
    assert ds.rpm.attrs["units"] == "min-1"
    assert list(ds.label.values) == ["Normal_1", "OR007@6_1"]
    np.testing.assert_allclose(
        ds.defect_frequency.sel(record=131, defect="BPFO"), 3.5848 * 1771 / 60
    )
    assert ds.attrs["sampling_rate_hz"] == 12000.0
    assert ds.attrs["bearing_n_balls"] == 9
    assert ds.attrs["BPFI_per_shaft_frequency"] == 5.4152
    for name, var in {**ds.coords, **ds.data_vars}.items():
        assert {"units", "long_name"} <= set(var.attrs), name
    params = parameters_of(ds)
    assert params["files"] == {
        "98.mat": hashlib.sha256((sf_cwru_dir / "98.mat").read_bytes()).hexdigest(),
        "131.mat": hashlib.sha256((sf_cwru_dir / "131.mat").read_bytes()).hexdigest(),
    }
    assert params["channels"] == ["DE", "FE", "BA"]
    assert ds.attrs["Conventions"] == "CF-1.11, ACDD-1.3"


def test_truncate_channels_and_selection(sf_cwru_dir: Path) -> None:
    ds = cwru.LOADER(sf_cwru_dir, records=[131, "98.mat"], channels=["DE"], align="truncate")
    assert list(ds.record.values) == [131, 98]
    assert ds.sizes["time"] == 400
    assert "FE" not in ds and "BA" not in ds
    assert not np.isnan(ds.DE.values).any()


def test_single_file_renamed_copy_and_missing_rpm(tmp_path: Path) -> None:
    raw = write_record(tmp_path, 106, 300, name="12k_Drive_End_IR007_1_106.mat", rpm=None)
    ds = cwru.LOADER(tmp_path / "12k_Drive_End_IR007_1_106.mat")
    assert list(ds.record.values) == [106]
    assert ds.rpm.item() == 1772.0  # nominal speed at 1 hp: the file has no RPM variable
    assert ds.label.item() == "IR007_1"
    assert ds.fault.item() == cwru.FAULT_CODES["inner"]
    np.testing.assert_allclose(ds.DE.values[0], raw["X106_DE_time"].ravel() * G)
    # a record number finds the renamed file in a directory too
    assert list(cwru.LOADER(tmp_path, records=[106]).record.values) == [106]


def test_unknown_record_is_accepted_with_its_sha256(tmp_path: Path) -> None:
    write_record(tmp_path, 999, 50, rpm=1500)
    ds = cwru.LOADER(tmp_path)
    assert ds.fault.item() == -1
    assert np.isnan(ds.fault_diameter.item()) and np.isnan(ds.motor_load.item())
    assert ds.rpm.item() == 1500.0
    sha = hashlib.sha256((tmp_path / "999.mat").read_bytes()).hexdigest()
    assert parameters_of(ds)["files"] == {"999.mat": sha}


def test_record_table() -> None:
    assert cwru.record_info(97) == cwru.RecordInfo(97, "none", 0.0, 0, 0)
    labels = {105: "IR007_0", 118: "B007_0", 130: "OR007@6_0", 237: "OR021@6_3", 158: "OR007@12_1"}
    for number, label in labels.items():
        info = cwru.record_info(number)
        assert info is not None and info.label == label
    assert cwru.record_info(3008) == cwru.RecordInfo(3008, "ball", 0.028, 0, 3)
    assert cwru.record_info(157) is None
    numbers = [n for *_, row in cwru.RECORD_TABLE for n in row]
    assert len(numbers) == len(set(numbers)) == 64


def test_known_name_with_other_content_raises_checksum_error(tmp_path: Path) -> None:
    write_record(tmp_path, 105, 100)
    actual = hashlib.sha256((tmp_path / "105.mat").read_bytes()).hexdigest()
    with pytest.raises(ChecksumError) as info:
        cwru.LOADER(tmp_path)
    err = info.value
    assert err.path == str(tmp_path / "105.mat")
    assert err.expected == upstream.KNOWN["cwru/105.mat"].sha256
    assert err.actual == actual
    assert "105.mat" in str(err) and err.expected in str(err) and actual in str(err)
    ds = cwru.LOADER(tmp_path, verify=False)
    assert parameters_of(ds)["files"] == {"105.mat": actual}


def test_missing_record(sf_cwru_dir: Path) -> None:
    with pytest.raises(DatasetError, match=r"record 107 is missing.*107\.mat"):
        cwru.LOADER(sf_cwru_dir, records=[107])
    with pytest.raises(DatasetError, match=r"nothing\.mat"):
        cwru.LOADER(sf_cwru_dir, records=["nothing.mat"])
    with pytest.raises(DatasetError, match="does not exist"):
        cwru.LOADER(sf_cwru_dir / "absent")


def test_files_without_the_expected_variables(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "200.mat", {"img": np.zeros((3, 4))})
    with pytest.raises(DatasetError, match=r"200\.mat has no Xnnn_DE_time.*found: img"):
        cwru.LOADER(tmp_path)


def test_signal_of_wrong_shape(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "200.mat", {"X200_DE_time": np.zeros((10, 3))})
    with pytest.raises(DatasetError, match=r"X200_DE_time .*shape \(10, 3\)"):
        cwru.LOADER(tmp_path)


def test_not_a_mat_file(tmp_path: Path) -> None:
    (tmp_path / "200.mat").write_text("not matlab\n")
    with pytest.raises(DatasetError, match=r"200\.mat is not a readable MATLAB v5 file"):
        cwru.LOADER(tmp_path)


def test_empty_directory_and_absent_channel(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no \.mat files"):
        cwru.LOADER(tmp_path)
    write_record(tmp_path, 98, 20, channels=("DE", "FE"))
    with pytest.raises(DatasetError, match="no record has the BA channel"):
        cwru.LOADER(tmp_path, channels=["BA"])


def test_record_read_twice(tmp_path: Path) -> None:
    write_record(tmp_path, 98, 20)
    write_record(tmp_path, 98, 20, name="normal_1_98.mat")
    with pytest.raises(DatasetError, match="record 98 is read twice"):
        cwru.LOADER(tmp_path)


def test_parameters_are_checked(sf_cwru_dir: Path) -> None:
    with pytest.raises(ParameterError, match="rate"):
        cwru.LOADER(sf_cwru_dir, rate=12000)
    with pytest.raises(ParameterError, match="channels"):
        cwru.LOADER(sf_cwru_dir, channels=["XX"])
    with pytest.raises(ParameterError, match="repeated"):
        cwru.LOADER(sf_cwru_dir, channels=["DE", "DE"])
    with pytest.raises(ParameterError, match="records"):
        cwru.LOADER(sf_cwru_dir, records=[])
    with pytest.raises(DatasetError, match="single file"):
        cwru.LOADER(sf_cwru_dir / "98.mat", records=[98])


def test_entry_point() -> None:
    assert Registry().loader("cwru") is cwru.LOADER
    assert cwru.LOADER.files == ("*.mat",)


# --- real upstream files ----------------------------------------------------------------------


def _envelope_peak(x: np.ndarray, fs: float, low: float, high: float) -> float:
    """Frequency of the largest line of the Hilbert envelope spectrum after a 2-5 kHz band-pass."""
    sos = signal.butter(4, [2000, 5000], btype="bandpass", fs=fs, output="sos")
    envelope = np.abs(signal.hilbert(signal.sosfiltfilt(sos, x)))
    envelope -= envelope.mean()
    spectrum = np.abs(np.fft.rfft(envelope * np.hanning(envelope.size)))
    freqs = np.fft.rfftfreq(envelope.size, 1 / fs)
    band = (freqs > low) & (freqs < high)
    return float(freqs[band][np.argmax(spectrum[band])])


@pytest.fixture(scope="module")
def sf_cwru_real() -> xr.Dataset:
    """The four real records, read once for the module."""
    if not REAL_DIR.is_dir():
        pytest.skip(f"real upstream data directory {REAL_DIR} is absent")
    return cwru.LOADER(REAL_DIR / "cwru")


@needs_real
def test_real_records(sf_cwru_real: xr.Dataset) -> None:
    ds = sf_cwru_real
    assert list(ds.record.values) == [97, 105, 118, 130]
    assert list(ds.length.values) == [243938, 121265, 122571, 121991]
    assert list(ds.rpm.values) == [1796, 1797, 1796, 1796]
    assert list(ds.label.values) == [
        "Normal_0",
        "IR007_0",
        "B007_0",
        "OR007@6_0",
    ]
    assert np.isnan(ds.BA.sel(record=97).values).all()
    assert not np.isnan(ds.BA.sel(record=105).values[:121265]).any()
    raw = scipy.io.loadmat(REAL_DIR / "cwru" / "105.mat")
    np.testing.assert_allclose(
        ds.DE.sel(record=105).values[:121265],
        raw["X105_DE_time"].ravel() * G,
    )
    files = parameters_of(ds)["files"]
    assert files == {
        f"{n}.mat": upstream.KNOWN[f"cwru/{n}.mat"].sha256 for n in (97, 105, 118, 130)
    }


@needs_real
def test_real_envelope_spectra_peak_at_the_defect_frequencies(sf_cwru_real: xr.Dataset) -> None:
    ds = sf_cwru_real
    fs = ds.attrs["sampling_rate_hz"]
    for record, defect in ((130, "BPFO"), (105, "BPFI")):
        n = int(ds.length.sel(record=record))
        x = ds.DE.sel(record=record).values[:n]
        expected = ds.defect_frequency.sel(record=record, defect=defect).item()
        nominal = cwru.DEFECT_RATIOS[defect] * 1797 / 60  # 107.4 and 162.2 Hz
        assert abs(expected - nominal) < 0.2
        peak = _envelope_peak(x, fs, 10.0, 500.0)
        assert abs(peak - nominal) < 2.0, (record, defect, peak, nominal)


@needs_real
def test_real_normal_baseline_is_sampled_at_12khz(sf_cwru_real: xr.Dataset) -> None:
    """Shaft harmonics 1-3x of 97.mat sit where a 12 kHz rate puts them, not a 48 kHz one."""
    ds = sf_cwru_real
    n = int(ds.length.sel(record=97))
    x = ds.DE.sel(record=97).values[:n]
    x = x - x.mean()
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    freqs = np.fft.rfftfreq(x.size, 1 / 12000)
    shaft = ds.rpm.sel(record=97).item() / 60
    median = np.median(spectrum[(freqs > 5) & (freqs < 500)])

    def lines(f0: float) -> float:
        return sum(float(spectrum[np.abs(freqs - h * f0) < 0.5].max()) / median for h in (1, 2, 3))

    # read at 12 kHz, a 48 kHz recording would show its shaft harmonics at a quarter frequency
    assert lines(shaft) > 5 * lines(shaft / 4)
