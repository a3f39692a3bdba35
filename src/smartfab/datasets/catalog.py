"""The catalog: cards, builds cached in a data directory, content and integrity, access.

Identity and integrity are kept apart. A card pins what a build *is*: its content fingerprint
(:mod:`smartfab.datasets.fingerprint`), checked when the build is made, on any machine. Where a
file is built or received, the sha256 of its bytes (whole, and segment by segment) is recorded
beside it, and ``Catalog.open(id)`` checks every byte it reads against that record (the whole
file before opening, or each segment as it is read, see :mod:`smartfab.datasets.checked_open`);
shipped samples are files, and their card pins their bytes. A mismatch is an error that names
the file and both hashes, or the variable, the statistic and both values; nothing is ever
silently rebuilt over it.

A team's own recordings (``smartfab datasets import``, :mod:`smartfab.datasets.imports`) join
the catalog from the ``cards/`` folder of each shared folder the process may read (inside the
hub, the ``.datasets`` folder of each of the user's teams); their builds are the files beside
those cards, checked like any other.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import xarray as xr

from smartfab.atomicfile import atomic_path
from smartfab.datasets.access import AccessPolicy
from smartfab.datasets.cards import DatasetCard, FileEntry, Kind, load_cards
from smartfab.datasets.checked_open import open_checked
from smartfab.datasets.checksums import VerifiedFiles, sha256_of
from smartfab.datasets.content import (
    check_content,
    fingerprint_file,
    read_content_digest,
    read_fingerprint_record,
    read_sha256_record,
    write_fingerprint_record,
    write_sha256_record,
)
from smartfab.datasets.fingerprint import Fingerprint
from smartfab.datasets.manifest import (
    build_manifest,
    check_segments,
    load_manifest,
    manifest_path,
    save_manifest,
)
from smartfab.datasets.registry import Registry
from smartfab.errors import ChecksumError, DatasetError, ParameterError, UnknownDatasetError
from smartfab.host.names import SHARED_DATA_ENV

#: samples per chunk along ``time`` (about 0.5 MB of float64): big enough for fast reads
TIME_CHUNK = 65536
#: files from this size on open as dask arrays chunked along time; smaller ones stay lazy
#: through xarray's own indexing, which reads a small variable in microseconds instead of
#: paying for a dask graph (70 ms on the first computation of a new process)
DASK_MIN_BYTES = 32 << 20
NETCDF_ENGINE: Final = "h5netcdf"
#: folder of the cards of imported recordings inside a shared folder (see datasets.imports)
IMPORTED_CARDS_DIR: Final = "cards"


VERIFY_ENV = "SMARTFAB_VERIFY"


def default_verify_policy() -> Literal["always", "changed"]:
    """``$SMARTFAB_VERIFY`` (``always`` or ``changed``), else ``always``."""
    value = os.environ.get(VERIFY_ENV, "always")
    if value not in ("always", "changed"):
        raise DatasetError(f"{VERIFY_ENV}={value!r}: use 'always' or 'changed'")
    return "changed" if value == "changed" else "always"


def default_data_dir() -> Path:
    """``$SMARTFAB_DATA_DIR``, else ``~/.cache/smartfab/datasets``."""
    env = os.environ.get("SMARTFAB_DATA_DIR")
    return Path(env) if env else Path.home() / ".cache" / "smartfab" / "datasets"


def default_shared_dirs() -> list[Path]:
    """Read-only folders of curated builds (``$SMARTFAB_SHARED_DATA``, ``:``-separated).

    Inside the hub: the alliance's public dataset folder and the ``.datasets`` folder of each of
    the user's teams (guarded by the team's OS group).
    """
    value = os.environ.get(SHARED_DATA_ENV, "")
    return [Path(part) for part in value.split(os.pathsep) if part]


def default_cards_dir() -> Path:
    """``$SMARTFAB_CARDS_DIR``, else the cards installed with the package, else the checkout's
    ``datasets/`` folder (see :func:`smartfab.resources.cards_dir`)."""
    from smartfab.resources import cards_dir

    return cards_dir()


def variant_key(parameters: dict[str, Any]) -> str:
    """Short stable key of non-default build parameters."""
    text = json.dumps(parameters, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def time_chunk(ds: xr.Dataset) -> int:
    """Samples per chunk along ``time``: whole seconds of signal when the time axis has an
    integer sampling rate (so per-second windows never straddle chunks), else TIME_CHUNK."""
    if "time" not in ds.coords or ds.sizes.get("time", 0) < 2:
        return TIME_CHUNK
    step = float(ds["time"].values[1] - ds["time"].values[0])
    rate = round(1.0 / step) if step > 0 else 0
    if rate < 1 or abs(rate * step - 1.0) > 1e-6:
        return TIME_CHUNK
    return max(rate, TIME_CHUNK // rate * rate)


def write_netcdf(ds: xr.Dataset, path: Path) -> None:
    """Write ``ds`` atomically, chunked along ``time`` for fast windowed reads."""
    encoding: dict[str, dict[str, Any]] = {}
    chunk = time_chunk(ds)
    for name, var in ds.variables.items():
        if "time" in var.dims and var.ndim >= 1:
            chunks = tuple(
                min(chunk, size) if dim == "time" else size
                for dim, size in zip(var.dims, var.shape, strict=True)
            )
            encoding[str(name)] = {"chunksizes": chunks}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, mode=0o644) as temp:
        ds.to_netcdf(temp, engine=NETCDF_ENGINE, encoding=encoding)


@dataclass(frozen=True)
class DatasetIdentity:
    """A dataset as a run used it: the bytes of its file and the digest of its content."""

    sha256: str
    #: :meth:`Fingerprint.digest` (None: not recorded, e.g. a build older than content records)
    fingerprint: str | None


@dataclass(frozen=True)
class Verified:
    """Outcome of checking one file."""

    dataset: str
    path: str
    expected: str | None
    actual: str | None
    status: str  # "ok", "mismatch", "missing", "unpinned"


@dataclass
class Catalog:
    """Cards in ``cards_dir``, builds in ``data_dir``, checked against ``access``."""

    cards_dir: Path = field(default_factory=default_cards_dir)
    data_dir: Path = field(default_factory=default_data_dir)
    access: AccessPolicy = field(default_factory=AccessPolicy.from_environment)
    registry: Registry = field(default_factory=Registry)
    shared_dirs: list[Path] = field(default_factory=default_shared_dirs)
    #: "always": hash the whole file on every open; "changed": only when its stat signature
    #: changed since this process last hashed it (see :class:`VerifiedFiles`)
    verify_policy: Literal["always", "changed"] = field(default_factory=default_verify_policy)
    #: files of at least this many bytes open dask-chunked along time (see DASK_MIN_BYTES)
    dask_min_bytes: int = DASK_MIN_BYTES
    _cards: dict[str, DatasetCard] | None = field(default=None, init=False, repr=False)
    #: imported datasets: the shared folder whose ``cards/`` holds each card, by id
    _imported: dict[str, Path] = field(default_factory=dict, init=False, repr=False)
    _verified: VerifiedFiles = field(default_factory=VerifiedFiles, init=False, repr=False)

    def __post_init__(self) -> None:
        # accept str paths from callers
        self.cards_dir = Path(self.cards_dir)
        self.data_dir = Path(self.data_dir)
        self.shared_dirs = [Path(p) for p in self.shared_dirs]

    # -- cards ----------------------------------------------------------------------------------

    @property
    def cards(self) -> dict[str, DatasetCard]:
        """Every card, validated (read once): the curated ones, then the imported recordings
        in the ``cards/`` folder of each shared folder."""
        if self._cards is None:
            cards = load_cards(self.cards_dir)
            self._imported = {}
            for shared in self.shared_dirs:
                for card in self._imported_cards(shared):
                    if card.id in cards:
                        known = self._imported.get(card.id, self.cards_dir)
                        warnings.warn(
                            f"{shared / IMPORTED_CARDS_DIR}: {card.id} is ignored: the id is "
                            f"taken by the card in {known}",
                            stacklevel=2,
                        )
                        continue
                    cards[card.id] = card
                    self._imported[card.id] = shared
            self._cards = cards
        return self._cards

    @staticmethod
    def _imported_cards(shared: Path) -> list[DatasetCard]:
        """The imported recordings' cards in the shared folder ``shared`` (none where the folder
        is absent or the OS says no); a card that is not an import is refused."""
        folder = shared / IMPORTED_CARDS_DIR
        try:
            if not folder.is_dir():
                return []
            found = load_cards(folder)
        except PermissionError:
            return []  # a team folder of another team
        for card in found.values():
            if card.kind is not Kind.imported:
                raise DatasetError(
                    f"{folder / card.id}.yaml: kind: {card.kind.value!r}; only imported "
                    "recordings (kind: imported) join the catalog from a shared folder"
                )
        return sorted(found.values(), key=lambda c: c.id)

    def card(self, dataset_id: str) -> DatasetCard:
        try:
            return self.cards[dataset_id]
        except KeyError:
            raise UnknownDatasetError(dataset_id, list(self.cards)) from None

    def available(self) -> list[DatasetCard]:
        """Cards of the datasets the current user may use, sorted by id."""
        return [c for _, c in sorted(self.cards.items()) if self.access.allows(c)]

    def info(self, dataset_id: str) -> DatasetCard:
        """The card of ``dataset_id`` (refused for restricted datasets of other teams)."""
        card = self.card(dataset_id)
        self.access.check(card)
        return card

    # -- where files live -----------------------------------------------------------------------

    def build_path(
        self,
        card: DatasetCard,
        parameters: dict[str, Any] | None = None,
        data_dir: Path | None = None,
    ) -> Path:
        """Where the build of ``card`` with ``parameters`` (None: the card's own) lives."""
        folder = (data_dir or self.data_dir) / card.id / card.version
        if not parameters:
            return folder / f"{card.id}.nc"
        return folder / f"{card.id}-{variant_key(parameters)}.nc"

    def find_build(self, card: DatasetCard, parameters: dict[str, Any] | None = None) -> Path:
        """The curated build in a shared folder if there is one, else the own data dir's; an
        imported recording's file is the one beside its card."""
        if card.kind is Kind.imported:
            if parameters:
                raise ParameterError(
                    f"{card.id} is an imported recording: it takes no parameters "
                    f"(got {', '.join(sorted(parameters))})"
                )
            origin = self._imported.get(card.id)
            if origin is not None:
                return self.build_path(card, None, origin)
        for shared in self.shared_dirs:
            path = self.build_path(card, parameters, shared)
            try:
                if path.is_file():
                    return path
            except PermissionError:
                continue  # a team folder of another team: the OS says no
        return self.build_path(card, parameters)

    def sample_path(self, entry: FileEntry) -> Path:
        return self.cards_dir / "samples" / entry.name

    @staticmethod
    def pinned_fingerprint(card: DatasetCard, parameters: dict[str, Any]) -> Fingerprint | None:
        """The fingerprint a build must match: the card's, for the card's own parameters."""
        return None if parameters else card.fingerprint

    def current_identity(
        self, dataset_id: str, parameters: dict[str, Any]
    ) -> DatasetIdentity | None:
        """What opening ``dataset_id`` with ``parameters`` gives now, without reading the data
        (None when it has no build yet): how program test runs tell whether a dataset changed."""
        card = self.info(dataset_id)
        if card.kind is Kind.sample:
            entry = card.files[0]
            digest = card.fingerprint.digest() if card.fingerprint else None
            return DatasetIdentity(entry.sha256, digest)
        path = self.find_build(card, parameters)
        sha256 = read_sha256_record(path) if path.exists() else None
        if sha256 is None:
            return None
        digest = read_content_digest(path, sha256)
        if digest is None:
            return DatasetIdentity(sha256, None)
        pinned = self.pinned_fingerprint(card, parameters)  # checked when the record was made
        return DatasetIdentity(sha256, pinned.digest() if pinned else digest)

    # -- build ----------------------------------------------------------------------------------

    def build(
        self,
        dataset_id: str,
        source: Path | None = None,
        force: bool = False,
        progress: bool = False,
        **parameters: Any,
    ) -> Path:
        """Build ``dataset_id`` into the data directory (synthetic: generate; external: convert
        the local upstream copy at ``source``); return the file.

        A build of the card's own parameters must hold the content the card's fingerprint pins:
        otherwise the new file is discarded and a ContentMismatchError names each difference.
        The sha256 of the new file's bytes (whole and per segment) and its fingerprint are
        recorded beside it.
        """
        card = self.info(dataset_id)
        if card.kind is Kind.sample:
            return self.sample_path(card.files[0])
        if card.kind is Kind.imported:
            path = self.find_build(card, parameters)
            if not path.exists():
                raise _missing_import(card, path)
            return path
        path = self.build_path(card, parameters)
        if path.exists() and not force:
            return path
        pinned = self.pinned_fingerprint(card, parameters)
        with BuildProgress(progress, card.id) as stage:
            stage("generate" if card.kind is Kind.synthetic else "convert")
            ds = self._make(card, source, parameters)
            stage("write")
            write_netcdf(ds, path)
            stage("check")
            manifest = build_manifest(path)
            try:
                content = fingerprint_file(path, NETCDF_ENGINE, like=pinned)
                if pinned is not None:
                    outcome = "the new build was discarded"
                    check_content(card.id, path, pinned, content, outcome)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
        # the sha256 record comes last: its presence says the build and its records are whole
        save_manifest(manifest, path)
        write_fingerprint_record(path, manifest.sha256, content)
        write_sha256_record(path, manifest.sha256)
        return path

    def _make(self, card: DatasetCard, source: Path | None, parameters: dict[str, Any]) -> Any:
        origin = card.provenance
        values = {**origin.parameters, **parameters}
        if card.kind is Kind.synthetic:
            generator = self.registry.generator(origin.generator or "")
            seed = int(values.pop("seed", origin.seed or 0))
            return generator(seed=seed, **values)
        if source is None:
            upstream = origin.upstream.source if origin.upstream else "its upstream data"
            raise DatasetError(
                f"{card.id} is read from a local copy of {upstream}: "
                f"smartfab datasets build {card.id} --source PATH"
            )
        return self.registry.loader(origin.loader or "")(source, **values)

    # -- open and verify ------------------------------------------------------------------------

    def open(self, dataset_id: str, **parameters: Any) -> xr.Dataset:
        """The dataset as a lazy ``xarray.Dataset``, dask-chunked along ``time`` when the file
        has at least ``dask_min_bytes``.

        Synthetic datasets are built on first use (and for new ``parameters``); external ones
        must have been built from a local copy. Raises ChecksumError when a byte read is not
        what was recorded for the file, ContentMismatchError when the build's content is not
        the card's.
        """
        card = self.info(dataset_id)
        if card.kind is Kind.sample:
            entry = card.files[0]
            path = self.sample_path(entry)
            expected: str | None = entry.sha256
        else:
            path = self.find_build(card, parameters)
            if not path.exists():
                if card.kind is Kind.imported:
                    raise _missing_import(card, path)
                if card.kind is Kind.external:
                    raise DatasetError(
                        f"{card.id} has not been built here: "
                        f"smartfab datasets build {card.id} --source PATH"
                    )
                self.build(dataset_id, **parameters)
            expected = read_sha256_record(path)
        if expected is None:
            raise DatasetError(f"{path}: no recorded sha256; rebuild it with --force")
        large = path.stat().st_size >= self.dask_min_bytes
        ds: xr.Dataset | None = None
        if large and card.kind is not Kind.sample and self.verify_policy == "always":
            # the hashes recorded with the build: checked segment by segment as they are read
            manifest = load_manifest(path, expected)
            if manifest is not None:
                ds = open_checked(path, manifest, NETCDF_ENGINE)
        if ds is None:
            changed_only = self.verify_policy == "changed"
            actual = self._verified.sha256(path) if changed_only else sha256_of(path)
            if actual != expected:
                raise ChecksumError(path, expected, actual)
            # chunks={}: dask follows the file's own chunks, written along time by write_netcdf
            ds = xr.open_dataset(path, engine=NETCDF_ENGINE, chunks={} if large else None)
        ds.attrs["smartfab_sha256"] = expected
        pinned = self.pinned_fingerprint(card, parameters)
        ds.attrs["smartfab_fingerprint"] = self.content_digest(card, path, expected, pinned)
        return ds

    def content_digest(
        self, card: DatasetCard, path: Path, sha256: str, pinned: Fingerprint | None
    ) -> str:
        """The digest of the content of the file ``path`` whose bytes are ``sha256``.

        Read from the record beside a build (after checking it against the card's fingerprint),
        from the card for shipped samples, or else computed from the file, checked against the
        card, and recorded where the folder is writable (builds made before records existed,
        or records of other bytes). Raises ContentMismatchError when the content is not what
        the card pins (``pinned``: the card's fingerprint for its own parameters, else None);
        the file is left as it is.
        """
        if card.kind is Kind.sample and pinned is not None:
            return pinned.digest()
        digest = None if card.kind is Kind.sample else read_content_digest(path, sha256)
        if digest is not None and (pinned is None or digest == pinned.digest()):
            return digest  # recorded for these bytes (and checked against the card at build)
        recorded = None if digest is None else read_fingerprint_record(path, sha256)
        content = recorded or fingerprint_file(path, NETCDF_ENGINE, like=pinned)
        if pinned is not None:
            outcome = f"it was not used; rebuild it: smartfab datasets build {card.id} --force"
            check_content(card.id, path, pinned, content, outcome)
        if recorded is None and card.kind is not Kind.sample:
            with contextlib.suppress(OSError):  # a curated build in a folder we may only read
                write_fingerprint_record(path, sha256, content)
        # the card's content, when it pins one: the same name on every machine
        return (pinned or content).digest()

    def verify(self, dataset_ids: Iterable[str] | None = None) -> list[Verified]:
        """Check every built or shipped file of the given (default: all visible) datasets."""
        ids = list(dataset_ids) if dataset_ids is not None else [c.id for c in self.available()]
        results: list[Verified] = []
        for dataset_id in ids:
            card = self.info(dataset_id)
            candidates: list[tuple[Path, str | None]]
            if card.kind is Kind.sample:
                candidates = [(self.sample_path(e), e.sha256) for e in card.files]
            else:
                default = self.find_build(card) if card.kind is Kind.imported else None
                default = default or self.build_path(card)
                folder = default.parent
                builds = sorted(folder.glob("*.nc")) if folder.is_dir() else []
                if default not in builds:
                    builds.insert(0, default)
                candidates = [(p, read_sha256_record(p)) for p in builds]
            for path, expected in candidates:
                checked = _verify_file(card.id, path, expected)
                if checked.status == "ok" and card.kind is not Kind.sample and expected:
                    checked = self._verify_content(card, path, expected, path == default)
                results.append(checked)
        return results

    def _verify_content(
        self, card: DatasetCard, path: Path, sha256: str, default: bool
    ) -> Verified:
        """A build whose bytes are intact: is its content what the card pins?"""
        try:
            self.content_digest(card, path, sha256, card.fingerprint if default else None)
        except DatasetError as exc:  # ContentMismatchError, or a damaged record
            return Verified(card.id, str(path), sha256, str(exc), "mismatch")
        return Verified(card.id, str(path), sha256, sha256, "ok")


def _missing_import(card: DatasetCard, path: Path) -> DatasetError:
    """The file of an imported recording is gone: only a new import brings it back."""
    return DatasetError(
        f"{card.id}: the imported recording {path} is missing; import it again: "
        f"smartfab datasets import FILE --card CARD --team TEAM --replace"
    )


def _verify_file(dataset_id: str, path: Path, expected: str | None) -> Verified:
    """The whole file against ``expected``; then its segment manifest, if it has one."""
    if not path.exists():
        return Verified(dataset_id, str(path), expected, None, "missing")
    actual = sha256_of(path)
    if expected is None:
        return Verified(dataset_id, str(path), None, actual, "unpinned")
    if actual != expected:
        return Verified(dataset_id, str(path), expected, actual, "mismatch")
    if manifest_path(path).exists():
        try:
            manifest = load_manifest(path, expected)
            if manifest is None:
                raise DatasetError(f"{manifest_path(path)}: made for other content")
            check_segments(path, manifest.segments)
        except DatasetError as exc:
            return Verified(dataset_id, str(manifest_path(path)), expected, str(exc), "mismatch")
    return Verified(dataset_id, str(path), expected, actual, "ok")


class BuildProgress:
    """A progress bar over the stages of a build, shown only when it lasts over a second."""

    STAGES = 3

    def __init__(self, enabled: bool, name: str) -> None:
        self.enabled = enabled
        self.name = name
        self.bar: Any = None

    def __enter__(self) -> Any:
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=self.STAGES, desc=f"build {self.name}", delay=1.0, unit="step")
        return self._stage

    def _stage(self, label: str) -> None:
        """Mark the previous stage done and show ``label`` as running."""
        if self.bar is not None:
            if self.bar.postfix:
                self.bar.update(1)
            self.bar.set_postfix_str(label, refresh=False)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            if exc[0] is None:
                self.bar.update(self.bar.total - self.bar.n)
            self.bar.close()
