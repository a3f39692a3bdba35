"""SECOM loader: small files in the upstream format, and the real secom_labels.data.

The real ``secom.data`` is not available (see shared/data/real/README.md): the feature path is
tested on files written here (590 space-separated numbers per row, ``NaN`` for missing values),
small ones and one with as many rows as the real labels file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from smartfab.datasets.conventions import parameters_of
from smartfab.datasets.loaders import secom, upstream
from smartfab.datasets.registry import Registry
from smartfab.errors import ChecksumError, DatasetError, ParameterError

REAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
needs_real = pytest.mark.skipif(
    not REAL_DIR.is_dir(), reason=f"real upstream data directory {REAL_DIR} is absent"
)
LABELS = [
    (-1, "19/07/2008 11:55:00"),
    (-1, "19/07/2008 12:32:00"),
    (1, "19/07/2008 13:17:00"),
    (-1, "01/08/2008 00:05:09"),
]


def feature_matrix(rows: int, seed: int = 0) -> np.ndarray:
    """Values with the upstream mix: integers, decimals, negatives, zeros and NaN."""
    rng = np.random.default_rng(seed)
    values = np.round(rng.normal(100.0, 300.0, (rows, 590)), 4)
    values[:, 5] = 100.0
    values[:, 13] = 0.0
    values[rng.random((rows, 590)) < 0.05] = np.nan
    # the values exactly as a reader parses their text
    return np.array([[float(t) for t in format_row(row).split()] for row in values])


def format_row(values: np.ndarray) -> str:
    """Upstream style: shortest decimals (``100``, ``0.1242``, ``-5419``) and ``NaN``."""
    return " ".join("NaN" if np.isnan(v) else f"{v:.4f}".rstrip("0").rstrip(".") for v in values)


def write_secom(
    directory: Path,
    values: np.ndarray,
    labels: list[tuple[int, str]] = LABELS,
    newline: str = "\n",
) -> None:
    """secom.data as space-separated rows; secom_labels.data with CRLF, as upstream."""
    text = "".join(format_row(v) + newline for v in values)
    (directory / "secom.data").write_text(text, encoding="ascii", newline="")
    labels_text = "".join(f'{label} "{stamp}"\r\n' for label, stamp in labels)
    (directory / "secom_labels.data").write_text(labels_text, encoding="ascii", newline="")


@pytest.fixture
def sf_secom_dir(tmp_path: Path) -> tuple[Path, np.ndarray]:
    values = feature_matrix(len(LABELS))
    write_secom(tmp_path, values)
    return tmp_path, values


def test_features_labels_and_timestamps(sf_secom_dir: tuple[Path, np.ndarray]) -> None:
    directory, values = sf_secom_dir
    # secom_labels.data is a known upstream name: these bytes differ, so verification is off
    ds = secom.LOADER(directory, verify=False)
    assert ds.features.dims == ("entity", "feature")
    assert ds.sizes == {"entity": 4, "feature": 590}
    assert list(ds.entity.values) == [1, 2, 3, 4]
    assert ds.feature.values[0] == 1 and ds.feature.values[-1] == 590
    np.testing.assert_array_equal(ds.features.values, values)  # NaN where upstream says NaN
    assert np.isnan(ds.features.values).any()
    assert list(ds.label.values) == [-1, -1, 1, -1]
    assert ds.label.dtype == np.int8
    assert list(ds.label.attrs["flag_values"]) == [-1, 1]
    assert ds.label.attrs["flag_meanings"] == "pass fail"
    assert ds.timestamp.attrs["units"] == "seconds since 1970-01-01 00:00:00"
    decoded = xr.decode_cf(ds).timestamp.values
    assert decoded[0] == np.datetime64("2008-07-19T11:55:00")
    assert decoded[3] == np.datetime64("2008-08-01T00:05:09")
    for name, var in {**ds.coords, **ds.data_vars}.items():
        assert {"units", "long_name"} <= set(var.attrs), name
    files = parameters_of(ds)["files"]
    assert files == {
        name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
        for name in ("secom.data", "secom_labels.data")
    }


def test_crlf_rows_trailing_space_and_a_file_path(tmp_path: Path) -> None:
    values = feature_matrix(len(LABELS), seed=3)
    write_secom(tmp_path, values, newline=" \r\n")
    ds = secom.LOADER(tmp_path / "secom.data", verify=False)
    np.testing.assert_array_equal(ds.features.values, values)


def test_labels_only(sf_secom_dir: tuple[Path, np.ndarray]) -> None:
    directory, _ = sf_secom_dir
    (directory / "secom.data").unlink()
    with pytest.raises(DatasetError, match=r"secom\.data is missing.*labels_only=True"):
        secom.LOADER(directory, verify=False)
    ds = secom.LOADER(directory / "secom_labels.data", labels_only=True, verify=False)
    assert set(ds.data_vars) == {"label", "timestamp"}
    assert ds.sizes == {"entity": 4}
    assert list(parameters_of(ds)["files"]) == ["secom_labels.data"]


def test_row_counts_must_match(tmp_path: Path) -> None:
    write_secom(tmp_path, feature_matrix(3))
    with pytest.raises(DatasetError, match=r"secom\.data has 3 rows but .*has 4"):
        secom.LOADER(tmp_path, verify=False)


def test_wrong_column_count(tmp_path: Path) -> None:
    values = feature_matrix(4)
    write_secom(tmp_path, values)
    lines = (tmp_path / "secom.data").read_text().splitlines()
    lines[2] = " ".join(lines[2].split()[:589])
    (tmp_path / "secom.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"secom\.data: line 3 has 589 columns, expected 590"):
        secom.LOADER(tmp_path, verify=False)


def test_malformed_values_and_labels(tmp_path: Path) -> None:
    write_secom(tmp_path, feature_matrix(4))
    text = (tmp_path / "secom.data").read_text().replace("NaN", "n/a", 1)
    (tmp_path / "secom.data").write_text(text)
    with pytest.raises(DatasetError, match=r"'n/a' is not a number"):
        secom.LOADER(tmp_path, verify=False)
    write_secom(tmp_path, feature_matrix(4), labels=[*LABELS[:3], (0, "19/07/2008 11:55:00")])
    with pytest.raises(DatasetError, match=r"secom_labels\.data: line 4 is '0 "):
        secom.LOADER(tmp_path, verify=False)
    write_secom(tmp_path, feature_matrix(4), labels=[*LABELS[:3], (1, "31/02/2008 11:55:00")])
    with pytest.raises(DatasetError, match="line 4: invalid date"):
        secom.LOADER(tmp_path, verify=False)


def test_missing_labels_and_wrong_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"secom_labels\.data is missing"):
        secom.LOADER(tmp_path)
    (tmp_path / "other.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"neither secom\.data nor secom_labels\.data"):
        secom.LOADER(tmp_path / "other.txt")


def test_known_name_with_other_content_raises_checksum_error(
    sf_secom_dir: tuple[Path, np.ndarray],
) -> None:
    directory, _ = sf_secom_dir
    labels = directory / "secom_labels.data"
    actual = hashlib.sha256(labels.read_bytes()).hexdigest()
    with pytest.raises(ChecksumError) as info:
        secom.LOADER(directory)
    assert info.value.path == str(labels)
    assert info.value.expected == upstream.KNOWN["secom/secom_labels.data"].sha256
    assert info.value.actual == actual
    assert "secom_labels.data" in str(info.value)


def test_parameters_are_checked(sf_secom_dir: tuple[Path, np.ndarray]) -> None:
    directory, _ = sf_secom_dir
    with pytest.raises(ParameterError, match="features"):
        secom.LOADER(directory, features=10)
    with pytest.raises(ParameterError, match="labels_only"):
        secom.LOADER(directory, labels_only="perhaps")


def test_entry_point() -> None:
    assert Registry().loader("secom") is secom.LOADER


@needs_real
def test_real_labels() -> None:
    ds = secom.LOADER(REAL_DIR / "secom", labels_only=True)
    assert ds.sizes == {"entity": 1567}
    assert int((ds.label == 1).sum()) == 104
    assert int((ds.label == -1).sum()) == 1463
    stamps = xr.decode_cf(ds).timestamp.values
    assert stamps[0] == np.datetime64("2008-07-19T11:55:00")
    assert stamps.min() >= np.datetime64("2008-07-19") and stamps.min() < np.datetime64(
        "2008-07-20"
    )
    assert stamps.max() >= np.datetime64("2008-10-17") and stamps.max() < np.datetime64(
        "2008-10-18"
    )
    assert parameters_of(ds)["files"] == {
        "secom_labels.data": upstream.KNOWN["secom/secom_labels.data"].sha256
    }


@needs_real
def test_real_labels_with_written_features(tmp_path: Path) -> None:
    """The feature path at full size: a written 1567 x 590 secom.data beside the real labels."""
    (tmp_path / "secom_labels.data").symlink_to(REAL_DIR / "secom" / "secom_labels.data")
    values = feature_matrix(1567, seed=7)
    text = "".join(format_row(v) + "\n" for v in values)
    (tmp_path / "secom.data").write_text(text, encoding="ascii", newline="")
    ds = secom.LOADER(tmp_path)
    assert ds.sizes == {"entity": 1567, "feature": 590}
    np.testing.assert_array_equal(ds.features.values, values)
    assert int((ds.label == 1).sum()) == 104
    with pytest.raises(DatasetError, match=r"secom\.data is missing"):
        (tmp_path / "secom.data").unlink()
        secom.LOADER(tmp_path)
