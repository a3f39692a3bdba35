"""C-MAPSS loader: small text files in the upstream format, and the real FD001 files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from smartfab.datasets.conventions import parameters_of
from smartfab.datasets.loaders import cmapss, upstream
from smartfab.datasets.registry import Registry
from smartfab.errors import ChecksumError, DatasetError, ParameterError

REAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
needs_real = pytest.mark.skipif(
    not REAL_DIR.is_dir(), reason=f"real upstream data directory {REAL_DIR} is absent"
)
#: one upstream row of train_FD001.txt after unit and cycle (fixed-decimal formatting kept)
ROW = (
    "-0.0007 -0.0004 100.0 518.67 641.82 1589.70 1400.60 14.62 21.61 554.36 2388.06 9046.19 "
    "1.30 47.47 521.66 2388.02 8138.62 8.4195 0.03 392 2388 100.00 39.06 23.4190"
)


def row(unit: int, cycle: int, t24: float | None = None) -> str:
    """One line as upstream writes it: 26 numbers, two trailing spaces, LF."""
    values = ROW.split()
    if t24 is not None:
        values[4] = f"{t24:.2f}"
    return " ".join([str(unit), str(cycle), *values]) + "  \n"


def write_split(path: Path, cycles: dict[int, int]) -> None:
    """Units 1..N with cycles 1..n each; T24 = 600 + unit + cycle / 100 to check placement."""
    lines = [
        row(unit, cycle, 600 + unit + cycle / 100)
        for unit, n in cycles.items()
        for cycle in range(1, n + 1)
    ]
    path.write_text("".join(lines), encoding="ascii", newline="")


@pytest.fixture
def sf_cmapss_dir(tmp_path: Path) -> Path:
    """Subset FD002 (not in our sha256 registry): 3 train units, 2 test units."""
    write_split(tmp_path / "train_FD002.txt", {1: 5, 2: 3, 3: 4})
    write_split(tmp_path / "test_FD002.txt", {1: 2, 2: 4})
    (tmp_path / "RUL_FD002.txt").write_text("112 \n98 \n", encoding="ascii", newline="")
    return tmp_path


def test_train_split(sf_cmapss_dir: Path) -> None:
    ds = cmapss.LOADER(sf_cmapss_dir, subset="FD002")
    assert ds.T24.dims == ("unit", "cycle")
    assert ds.sizes == {"unit": 3, "cycle": 5}
    assert list(ds.unit.values) == [1, 2, 3]
    assert list(ds.cycle.values) == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(ds.T24.sel(unit=2, cycle=3), 602.03)
    assert np.isnan(ds.T24.sel(unit=2, cycle=4)) and np.isnan(ds.T24.sel(unit=2, cycle=5))
    np.testing.assert_allclose(ds.T2.sel(unit=1).values, 518.67)
    assert ds.W32.sel(unit=3, cycle=4).item() == 23.4190
    assert ds.setting_3.sel(unit=1, cycle=1).item() == 100.0
    assert list(ds.last_cycle.values) == [5, 3, 4]
    np.testing.assert_array_equal(ds.rul.sel(unit=1).values, [4, 3, 2, 1, 0])
    np.testing.assert_array_equal(ds.rul.sel(unit=2).values, [2, 1, 0, np.nan, np.nan])
    assert int(ds.observed.sum()) == 12
    assert "rul_at_end" not in ds
    names = [name for name, *_ in cmapss.SENSORS]
    assert names == [
        "T2",
        "T24",
        "T30",
        "T50",
        "P2",
        "P15",
        "P30",
        "Nf",
        "Nc",
        "epr",
        "Ps30",
        "phi",
        "NRf",
        "NRc",
        "BPR",
        "farB",
        "htBleed",
        "Nf_dmd",
        "PCNfR_dmd",
        "W31",
        "W32",
    ]
    units = {name: ds[name].attrs["units"] for name in ("T30", "P30", "Nc", "epr", "phi", "W31")}
    assert units == {
        "T30": "degR",
        "P30": "psi",
        "Nc": "min-1",
        "epr": "1",
        "phi": "lb s-1 psi-1",
        "W31": "lb s-1",
    }
    assert ds.P30.attrs["upstream_units"] == "psia"
    assert ds.Nc.attrs["sensor_number"] == 9 and ds.Nc.attrs["upstream_column"] == 14
    for name, var in {**ds.coords, **ds.data_vars}.items():
        assert {"units", "long_name"} <= set(var.attrs), name
    sha = hashlib.sha256((sf_cmapss_dir / "train_FD002.txt").read_bytes()).hexdigest()
    params = parameters_of(ds)
    assert params["files"] == {"train_FD002.txt": sha}
    assert (params["subset"], params["split"]) == ("FD002", "train")


def test_test_split_uses_the_rul_file(sf_cmapss_dir: Path) -> None:
    ds = cmapss.LOADER(sf_cmapss_dir, subset="FD002", split="test")
    assert ds.sizes == {"unit": 2, "cycle": 4}
    assert list(ds.rul_at_end.values) == [112, 98]
    np.testing.assert_array_equal(ds.rul.sel(unit=1).values, [113, 112, np.nan, np.nan])
    np.testing.assert_array_equal(ds.rul.sel(unit=2).values, [101, 100, 99, 98])
    assert set(parameters_of(ds)["files"]) == {"test_FD002.txt", "RUL_FD002.txt"}


def test_a_file_path_and_crlf_lines(tmp_path: Path) -> None:
    text = "".join(row(1, c) for c in (1, 2)).replace("\n", "\r\n")
    (tmp_path / "train_FD003.txt").write_text(text, encoding="ascii", newline="")
    ds = cmapss.LOADER(tmp_path / "train_FD003.txt", subset="FD003")
    assert ds.sizes == {"unit": 1, "cycle": 2}
    with pytest.raises(DatasetError, match=r"is not train_FD001\.txt.*subset='FD001'"):
        cmapss.LOADER(tmp_path / "train_FD003.txt")


def test_gaps_in_cycles_are_nan(tmp_path: Path) -> None:
    text = row(1, 1) + row(1, 3)
    (tmp_path / "train_FD004.txt").write_text(text, encoding="ascii", newline="")
    ds = cmapss.LOADER(tmp_path, subset="FD004")
    assert list(ds.observed.values[0]) == [1, 0, 1]
    np.testing.assert_array_equal(ds.rul.values[0], [2, np.nan, 0])


def test_wrong_column_count(tmp_path: Path) -> None:
    text = row(1, 1) + " ".join(row(1, 2).split()[:-1]) + "  \n"
    (tmp_path / "train_FD002.txt").write_text(text, encoding="ascii", newline="")
    with pytest.raises(DatasetError, match=r"train_FD002\.txt: line 2 has 25 columns, expected 26"):
        cmapss.LOADER(tmp_path, subset="FD002")


def test_header_line_and_duplicates(tmp_path: Path) -> None:
    header = " ".join(["unit", "cycle", *(f"c{k}" for k in range(24))]) + "\n"
    (tmp_path / "train_FD002.txt").write_text(header + row(1, 1), encoding="ascii")
    with pytest.raises(DatasetError, match=r"line 1: 'unit' is not a number"):
        cmapss.LOADER(tmp_path, subset="FD002")
    (tmp_path / "train_FD002.txt").write_text(row(1, 1) + row(1, 1), encoding="ascii")
    with pytest.raises(DatasetError, match="unit 1 has cycle 1 more than once"):
        cmapss.LOADER(tmp_path, subset="FD002")
    (tmp_path / "train_FD002.txt").write_text(row(0, 1), encoding="ascii")
    with pytest.raises(DatasetError, match="line 1: unit and cycle must be positive"):
        cmapss.LOADER(tmp_path, subset="FD002")


def test_missing_files_and_bad_rul(sf_cmapss_dir: Path) -> None:
    with pytest.raises(DatasetError, match=r"train_FD003\.txt is missing"):
        cmapss.LOADER(sf_cmapss_dir, subset="FD003")
    (sf_cmapss_dir / "RUL_FD002.txt").write_text("112 \n", encoding="ascii")
    with pytest.raises(DatasetError, match=r"RUL_FD002\.txt has 1 values, expected one per"):
        cmapss.LOADER(sf_cmapss_dir, subset="FD002", split="test")
    (sf_cmapss_dir / "RUL_FD002.txt").unlink()
    with pytest.raises(DatasetError, match=r"RUL_FD002\.txt is missing"):
        cmapss.LOADER(sf_cmapss_dir, subset="FD002", split="test")


def test_known_name_with_other_content_raises_checksum_error(tmp_path: Path) -> None:
    write_split(tmp_path / "train_FD001.txt", {1: 2})
    actual = hashlib.sha256((tmp_path / "train_FD001.txt").read_bytes()).hexdigest()
    with pytest.raises(ChecksumError) as info:
        cmapss.LOADER(tmp_path)
    assert info.value.path == str(tmp_path / "train_FD001.txt")
    assert info.value.expected == upstream.KNOWN["cmapss/train_FD001.txt"].sha256
    assert info.value.actual == actual
    assert "train_FD001.txt" in str(info.value)
    assert cmapss.LOADER(tmp_path, verify=False).sizes == {"unit": 1, "cycle": 2}


def test_parameters_are_checked(sf_cmapss_dir: Path) -> None:
    with pytest.raises(ParameterError, match="subset"):
        cmapss.LOADER(sf_cmapss_dir, subset="FD005")
    with pytest.raises(ParameterError, match="split"):
        cmapss.LOADER(sf_cmapss_dir, split="validation")
    with pytest.raises(ParameterError, match="clip"):
        cmapss.LOADER(sf_cmapss_dir, clip=125)


def test_entry_point() -> None:
    assert Registry().loader("cmapss") is cmapss.LOADER


@needs_real
def test_real_fd001_train() -> None:
    ds = cmapss.LOADER(REAL_DIR / "cmapss")
    assert ds.sizes == {"unit": 100, "cycle": 362}
    assert int(ds.observed.sum()) == 20631
    assert int(ds.last_cycle.min()) == 128 and int(ds.last_cycle.max()) == 362
    np.testing.assert_allclose(float(ds.last_cycle.mean()), 206.31)
    assert int(ds.observed.sel(unit=1).sum()) == int(ds.last_cycle.sel(unit=1))  # no gaps
    first = [ds[name].sel(unit=1, cycle=1).item() for name in ("T2", "T24", "T30", "W32")]
    assert first == [518.67, 641.82, 1589.70, 23.4190]
    assert ds.setting_3.sel(unit=1, cycle=1).item() == 100.0
    last = ds.rul.values[np.arange(100), ds.last_cycle.values - 1]
    assert (last == 0).all()
    assert parameters_of(ds)["files"] == {
        "train_FD001.txt": upstream.KNOWN["cmapss/train_FD001.txt"].sha256
    }


@needs_real
def test_real_fd001_test() -> None:
    ds = cmapss.LOADER(REAL_DIR / "cmapss" / "test_FD001.txt", split="test")
    assert ds.sizes["unit"] == 100
    assert int(ds.observed.sum()) == 13096
    assert int(ds.last_cycle.min()) == 31 and int(ds.last_cycle.max()) == 303
    assert int(ds.rul_at_end.sum()) == 7552
    assert int(ds.rul_at_end.min()) == 7 and int(ds.rul_at_end.max()) == 145
    rul_file = (REAL_DIR / "cmapss" / "RUL_FD001.txt").read_text().split()
    assert list(ds.rul_at_end.values) == [int(v) for v in rul_file]
    at_last = ds.rul.values[np.arange(100), ds.last_cycle.values - 1]
    np.testing.assert_array_equal(at_last, ds.rul_at_end.values)
    np.testing.assert_array_equal(
        ds.rul.sel(unit=1, cycle=1).item(), ds.rul_at_end.sel(unit=1).item() + 30
    )
    assert set(parameters_of(ds)["files"]) == {"test_FD001.txt", "RUL_FD001.txt"}
