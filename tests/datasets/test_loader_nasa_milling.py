"""NASA milling loader, on small mill.mat files written in the upstream layout.

No real copy of mill.mat is available (see shared/data/real/README.md), so every test writes a
1xN MATLAB struct array ``mill`` with the upstream field names: 1x1 doubles for the scalars
(VB NaN where not measured) and nx1 doubles for the six signals (9000 upstream; fewer here).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io

from smartfab.datasets.conventions import parameters_of
from smartfab.datasets.loaders import nasa_milling, upstream
from smartfab.datasets.registry import Registry
from smartfab.errors import ChecksumError, DatasetError, ParameterError

FIELDS = (
    "case",
    "run",
    "VB",
    "time",
    "DOC",
    "feed",
    "material",
    "smcAC",
    "smcDC",
    "vib_table",
    "vib_spindle",
    "AE_table",
    "AE_spindle",
)
SIGNALS = FIELDS[7:]
#: (case, run, VB, time, DOC, feed, material, samples) of the runs written by default
RUNS: tuple[tuple[float, float, float, float, float, float, float, int], ...] = (
    (1, 1, 0.0, 2, 1.5, 0.5, 1, 120),
    (1, 2, np.nan, 4, 1.5, 0.5, 1, 120),
    (1, 3, 0.14, 6, 1.5, 0.5, 1, 100),
    (5, 1, 0.05, 3, 1.5, 0.5, 2, 120),
)


def struct_array(runs: tuple[tuple[Any, ...], ...] = RUNS, seed: int = 0) -> np.ndarray:
    """A 1xN struct array as in mill.mat (savemat writes a record array as a struct array)."""
    rng = np.random.default_rng(seed)
    mill = np.zeros((1, len(runs)), dtype=[(name, object) for name in FIELDS])
    for k, (*scalars, n) in enumerate(runs):
        for name, value in zip(FIELDS[:7], scalars, strict=True):
            mill[0, k][name] = np.array([[value]], dtype=np.float64)
        for name in SIGNALS:
            mill[0, k][name] = np.abs(rng.standard_normal((n, 1)))
    return mill


def write_mill(path: Path, mill: np.ndarray | None = None, name: str = "mill") -> Path:
    scipy.io.savemat(path, {name: struct_array() if mill is None else mill})
    return path


@pytest.fixture
def sf_mill_dir(tmp_path: Path) -> Path:
    write_mill(tmp_path / "mill.mat")
    return tmp_path


def test_written_file_has_the_upstream_layout(sf_mill_dir: Path) -> None:
    raw = scipy.io.loadmat(sf_mill_dir / "mill.mat")
    mill = raw["mill"]
    assert mill.shape == (1, 4)
    assert mill.dtype.names == FIELDS
    assert mill[0, 0]["VB"].shape == (1, 1) and mill[0, 0]["VB"].dtype == np.float64
    assert mill[0, 0]["smcAC"].shape == (120, 1)


def test_reads_runs_signals_and_wear(sf_mill_dir: Path) -> None:
    raw = scipy.io.loadmat(sf_mill_dir / "mill.mat")["mill"]
    ds = nasa_milling.LOADER(sf_mill_dir)
    assert ds.smcAC.dims == ("run", "time")
    assert ds.sizes == {"run": 4, "time": 120}
    assert list(ds.run.values) == [1, 2, 3, 4]
    np.testing.assert_allclose(ds.time.values[:3], [0, 0.004, 0.008])
    assert ds.time.attrs["units"] == "s"
    for name in SIGNALS:
        np.testing.assert_array_equal(ds[name].values[2, :100], raw[0, 2][name].ravel())
        assert np.isnan(ds[name].values[2, 100:]).all()
        assert ds[name].attrs["units"] == "V"
    assert list(ds.length.values) == [120, 120, 100, 120]
    np.testing.assert_array_equal(ds.VB.values, [0.0, np.nan, 0.14, 0.05])
    assert ds.VB.attrs["units"] == "mm"
    assert list(ds.case.values) == [1, 1, 1, 5]
    assert list(ds.case_run.values) == [1, 2, 3, 1]
    assert list(ds.machining_time.values) == [2, 4, 6, 3]
    assert ds.DOC.attrs["units"] == "mm" and list(ds.DOC.values) == [1.5] * 4
    assert list(ds.feed.values) == [0.5] * 4
    assert list(ds.material.values) == [1, 1, 1, 2]
    assert list(ds.material.attrs["flag_values"]) == [1, 2]
    assert ds.material.attrs["flag_meanings"] == "cast_iron steel"
    assert ds.attrs["sampling_rate_hz"] == 250.0
    for name, var in {**ds.coords, **ds.data_vars}.items():
        assert {"units", "long_name"} <= set(var.attrs), name
    sha = hashlib.sha256((sf_mill_dir / "mill.mat").read_bytes()).hexdigest()
    assert parameters_of(ds)["files"] == {"mill.mat": sha}


def test_file_path_cases_and_empty_vb(tmp_path: Path) -> None:
    mill = struct_array()
    mill[0, 3]["VB"] = np.zeros((0, 0))  # "no entry was made"
    file = write_mill(tmp_path / "my_copy.mat", mill)
    ds = nasa_milling.LOADER(file, cases=[5])
    assert list(ds.run.values) == [4]
    assert np.isnan(ds.VB.item())
    assert ds.material.item() == 2


def test_single_run(tmp_path: Path) -> None:
    file = write_mill(tmp_path / "mill.mat", struct_array(RUNS[:1]))
    ds = nasa_milling.LOADER(file)
    assert ds.sizes == {"run": 1, "time": 120}


def test_missing_file_and_variable(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"mill\.mat is missing"):
        nasa_milling.LOADER(tmp_path)
    scipy.io.savemat(tmp_path / "mill.mat", {"img": np.zeros((375, 250))})
    with pytest.raises(DatasetError, match=r"no variable 'mill' \(found: img\)"):
        nasa_milling.LOADER(tmp_path)
    scipy.io.savemat(tmp_path / "mill.mat", {"mill": np.zeros((3, 3))})
    with pytest.raises(DatasetError, match="not a struct array"):
        nasa_milling.LOADER(tmp_path)


def test_missing_fields(tmp_path: Path) -> None:
    mill = struct_array()
    fewer = np.zeros((1, 4), dtype=[(name, object) for name in FIELDS if name != "AE_spindle"])
    for name in fewer.dtype.names or ():
        for k in range(4):
            fewer[0, k][name] = mill[0, k][name]
    write_mill(tmp_path / "mill.mat", fewer)
    with pytest.raises(DatasetError, match=r"mill\(1\) lacks the fields AE_spindle"):
        nasa_milling.LOADER(tmp_path)


def test_wrong_shapes_and_values(tmp_path: Path) -> None:
    mill = struct_array()
    mill[0, 1]["vib_table"] = np.zeros((10, 3))
    write_mill(tmp_path / "mill.mat", mill)
    with pytest.raises(DatasetError, match=r"mill\(2\)\.vib_table .*shape \(10, 3\)"):
        nasa_milling.LOADER(tmp_path)
    mill = struct_array()
    mill[0, 0]["DOC"] = np.array([[1.5, 0.75]])
    write_mill(tmp_path / "mill.mat", mill)
    with pytest.raises(DatasetError, match=r"mill\(1\)\.DOC .*expected one number"):
        nasa_milling.LOADER(tmp_path)
    mill = struct_array()
    mill[0, 2]["material"] = np.array([[3.0]])
    write_mill(tmp_path / "mill.mat", mill)
    with pytest.raises(DatasetError, match=r"material is not 1 .* in runs \[3\]"):
        nasa_milling.LOADER(tmp_path)


def test_known_name_with_other_content_raises_checksum_error(
    sf_mill_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = "0" * 64
    entry = upstream.UpstreamFile("nasa-milling", "mill.mat", expected, 1, "https://x", "test")
    monkeypatch.setitem(upstream.KNOWN, entry.key, entry)
    actual = hashlib.sha256((sf_mill_dir / "mill.mat").read_bytes()).hexdigest()
    with pytest.raises(ChecksumError) as info:
        nasa_milling.LOADER(sf_mill_dir)
    assert (info.value.path, info.value.expected, info.value.actual) == (
        str(sf_mill_dir / "mill.mat"),
        expected,
        actual,
    )
    assert nasa_milling.LOADER(sf_mill_dir, verify=False).sizes["run"] == 4


def test_parameters_are_checked(sf_mill_dir: Path) -> None:
    with pytest.raises(ParameterError, match="speed"):
        nasa_milling.LOADER(sf_mill_dir, speed=1)
    with pytest.raises(ParameterError, match="1 to 16"):
        nasa_milling.LOADER(sf_mill_dir, cases=[17])
    with pytest.raises(DatasetError, match=r"no run of cases \[2\]"):
        nasa_milling.LOADER(sf_mill_dir, cases=[2])


def test_entry_point() -> None:
    assert Registry().loader("nasa-milling") is nasa_milling.LOADER
    assert nasa_milling.LOADER.files == ("mill.mat",)
