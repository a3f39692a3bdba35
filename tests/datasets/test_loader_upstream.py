"""Our sha256 registry of upstream files, checksum checks and the optional fetch (no network)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from smartfab.datasets.loaders import upstream
from smartfab.errors import ChecksumError, DatasetError

REAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
needs_real = pytest.mark.skipif(
    not REAL_DIR.is_dir(), reason=f"real upstream data directory {REAL_DIR} is absent"
)


@pytest.fixture
def sf_known_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A mirror file and a registry entry ``demo/sample.txt`` for its exact bytes."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    source = mirror / "sample.txt"
    source.write_bytes(b"1 2 3\n")
    sha = hashlib.sha256(b"1 2 3\n").hexdigest()
    entry = upstream.UpstreamFile(
        "demo", "sample.txt", sha, 6, "https://example.invalid/sample.txt", "test", ("s.txt",)
    )
    monkeypatch.setitem(upstream.KNOWN, entry.key, entry)
    return source, sha


def test_registry_entries_are_well_formed() -> None:
    assert len(upstream.KNOWN) == 9
    for key, entry in upstream.KNOWN.items():
        assert key == entry.key == f"{entry.dataset}/{entry.name}"
        assert len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0
        assert entry.url.startswith("https://") and entry.size > 0


def test_sha256_of_and_known(sf_known_file: tuple[Path, str]) -> None:
    source, sha = sf_known_file
    assert upstream.sha256_of(source) == sha
    assert upstream.known("demo", "sample.txt") is upstream.KNOWN["demo/sample.txt"]
    assert upstream.known("demo", "s.txt") is upstream.KNOWN["demo/sample.txt"]
    assert upstream.known("other", "sample.txt") is None
    assert (
        upstream.known("cwru", "12k_Drive_End_OR007@6_0_130.mat") is upstream.KNOWN["cwru/130.mat"]
    )


def test_check_file(sf_known_file: tuple[Path, str], tmp_path: Path) -> None:
    source, sha = sf_known_file
    assert upstream.check_file("demo", source) == sha
    changed = tmp_path / "sample.txt"
    changed.write_bytes(b"1 2 4\n")
    actual = hashlib.sha256(b"1 2 4\n").hexdigest()
    with pytest.raises(ChecksumError) as info:
        upstream.check_file("demo", changed)
    assert (info.value.path, info.value.expected, info.value.actual) == (str(changed), sha, actual)
    assert upstream.check_file("demo", changed, verify=False) == actual
    unknown = tmp_path / "unknown.txt"
    unknown.write_bytes(b"x")
    assert upstream.check_file("demo", unknown) == hashlib.sha256(b"x").hexdigest()
    with pytest.raises(DatasetError, match="cannot read"):
        upstream.check_file("demo", tmp_path / "absent.txt")


def test_entry_for() -> None:
    assert upstream.entry_for("cwru/97.mat").name == "97.mat"
    assert upstream.entry_for("RUL_FD001.txt").dataset == "cmapss"
    assert upstream.entry_for("normal_0_97.mat").key == "cwru/97.mat"
    with pytest.raises(DatasetError, match=r"unknown upstream file 'mill\.mat'"):
        upstream.entry_for("mill.mat")


def test_fetch_from_a_local_mirror(sf_known_file: tuple[Path, str], tmp_path: Path) -> None:
    source, sha = sf_known_file
    dest = tmp_path / "data"
    local = upstream.fetch("demo/sample.txt", dest, url=source.as_uri())
    assert local == dest / "sample.txt"
    assert upstream.sha256_of(local) == sha
    # present with the right content: returned without downloading (the mirror may vanish)
    source.unlink()
    assert upstream.fetch("sample.txt", dest, url=source.as_uri()) == local


def test_fetch_refuses_other_content(sf_known_file: tuple[Path, str], tmp_path: Path) -> None:
    source, sha = sf_known_file
    source.write_bytes(b"tampered\n")
    dest = tmp_path / "data"
    with pytest.raises(DatasetError, match=rf"demo/sample\.txt.*{sha}"):
        upstream.fetch("demo/sample.txt", dest, url=source.as_uri())
    assert not (dest / "sample.txt").exists()
    with pytest.raises(DatasetError, match="no such file"):
        upstream.fetch("demo/sample.txt", dest, url=(tmp_path / "nothing").as_uri())


def test_fetch_uses_the_registry_url_and_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pooch

    calls: list[dict[str, Any]] = []

    def fake_retrieve(**kwargs: Any) -> str:
        calls.append(kwargs)
        return str(Path(kwargs["path"]) / kwargs["fname"])

    monkeypatch.setattr(pooch, "retrieve", fake_retrieve)
    local = upstream.fetch("cwru/130.mat", tmp_path)
    entry = upstream.KNOWN["cwru/130.mat"]
    assert local == tmp_path / "130.mat"
    (call,) = calls
    assert call["url"] == entry.url and "%40" in call["url"]
    assert call["known_hash"] == f"sha256:{entry.sha256}"
    assert call["fname"] == "130.mat" and Path(call["path"]) == tmp_path
    assert call["downloader"] is None

    def failing_retrieve(**kwargs: Any) -> str:
        raise ConnectionError("network unreachable")

    monkeypatch.setattr(pooch, "retrieve", failing_retrieve)
    with pytest.raises(DatasetError, match=r"cwru/130\.mat: download from .* failed"):
        upstream.fetch("cwru/130.mat", tmp_path)


@needs_real
def test_registry_matches_the_real_copies() -> None:
    for entry in upstream.KNOWN.values():
        file = REAL_DIR / entry.dataset / entry.name
        assert file.is_file(), file
        assert file.stat().st_size == entry.size, file
        assert upstream.sha256_of(file) == entry.sha256, file
