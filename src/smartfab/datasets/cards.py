"""Dataset cards: one YAML file per curated dataset, in the spirit of datasheets for datasets.

A card says what a dataset is, where it comes from (a generator and its parameters, or an
upstream source and its hashes), what its variables mean and in which units, what the ground
truth means, which tasks and metrics it serves, its caveats, who may use it (``public`` or a
list of teams), and its identity: the content fingerprint of a build (see
:mod:`smartfab.datasets.fingerprint`), or the size and sha256 of shipped sample files.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from smartfab.datasets.fingerprint import Fingerprint
from smartfab.errors import ConfigFileError, Problem
from smartfab.yamlfile import load_yaml_document, validate_document

DatasetId = Annotated[
    str, StringConstraints(pattern=r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$", min_length=2, max_length=64)
]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
#: SPDX identifiers (or a LicenseRef- for upstream terms without one)
Spdx = Annotated[str, StringConstraints(pattern=r"^(LicenseRef-[A-Za-z0-9.-]+|[A-Za-z0-9.+-]+)$")]
#: a unit string UDUNITS can parse: symbols, powers and products (e.g. "m s-2", "degC", "1"),
#: or a CF time unit ("seconds since 1970-01-01 00:00:00")
UNITS_PATTERN = (
    r"^(1|[A-Za-z%]+(-?\d+)?( [A-Za-z%]+(-?\d+)?)*"
    r"|[a-z]+ since \d{4}-\d\d-\d\d( \d\d:\d\d(:\d\d)?)?)$"
)
Units = Annotated[str, StringConstraints(pattern=UNITS_PATTERN)]
SEMVER = re.compile(r"^\d+\.\d+\.\d+$")


class Kind(StrEnum):
    """How a dataset comes to be on the platform."""

    #: built by one of our generators, deterministic for its parameters and seed
    synthetic = "synthetic"
    #: small files shipped in the repository
    sample = "sample"
    #: a public dataset read by one of our loaders from a local copy
    external = "external"
    #: a team's own machine recording, brought in with ``smartfab datasets import``
    imported = "imported"


class CardModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Variable(CardModel):
    """One variable of the dataset as users see it."""

    units: Units
    long_name: str = Field(min_length=1)
    description: str = ""


class FileEntry(CardModel):
    """A shipped or upstream file, pinned by size and sha256 (files, not builds)."""

    name: str = Field(pattern=r"^[A-Za-z0-9@._-]+(/[A-Za-z0-9@._-]+)*$")
    size: int = Field(ge=0, description="bytes")
    sha256: Sha256


class Upstream(CardModel):
    """Where an external dataset comes from."""

    source: str = Field(min_length=1, description="organisation and dataset name")
    url: str = ""
    files: list[FileEntry] = Field(default_factory=list, description="upstream files we know")


class RecordingInfo(CardModel):
    """Who recorded a machine recording, on which machine, when and how (import cards)."""

    machine: str = Field(min_length=1, description="the machine or controller recorded")
    recorded_by: str = Field(min_length=1, description="person or firm who recorded it")
    recorded_at: datetime | date
    method: str = Field(min_length=1, description="sensors, acquisition system, export")


class Recording(RecordingInfo):
    """An imported recording as received: the firm's account of it and the file's bytes."""

    file: FileEntry
    imported_by: str = Field(min_length=1)
    imported_at: datetime


class Provenance(CardModel):
    """How the dataset is made: exactly one of generator, loader, shipped files or an imported
    recording."""

    generator: str | None = None
    loader: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = Field(default=None, ge=0)
    upstream: Upstream | None = None
    recording: Recording | None = None

    @model_validator(mode="after")
    def _one_origin(self) -> Provenance:
        if self.generator and self.loader:
            raise ValueError("give either a generator or a loader, not both")
        if self.recording and (self.generator or self.loader):
            raise ValueError("an imported recording has neither a generator nor a loader")
        if self.generator and self.seed is None:
            raise ValueError("a generated dataset needs a seed")
        if self.loader and self.upstream is None:
            raise ValueError("an external dataset needs its upstream source")
        return self


class Sampling(CardModel):
    """A sampling rate, for the variables it applies to."""

    variables: list[str] = Field(min_length=1)
    rate_hz: float = Field(gt=0)


class Task(CardModel):
    """A standard task the dataset serves, with the metrics to report."""

    name: str = Field(min_length=1)
    metrics: list[str] = Field(min_length=1)


class DatasetCard(CardModel):
    """The whole card (see the module docstring)."""

    id: DatasetId
    version: str = Field(pattern=SEMVER.pattern)
    title: str = Field(min_length=1, max_length=160)
    summary: str = Field(min_length=1)
    kind: Kind
    license: Spdx
    citation: str = Field(min_length=1)
    provenance: Provenance
    variables: dict[str, Variable] = Field(min_length=1)
    sampling: list[Sampling] = Field(default_factory=list)
    ground_truth: str = Field(min_length=1)
    tasks: list[Task] = Field(min_length=1)
    caveats: list[str] = Field(default_factory=list)
    #: shipped samples: the files and their bytes
    files: list[FileEntry] = Field(default_factory=list)
    #: what the data is (synthetic builds; samples and external conversions may pin one too);
    #: written by ``smartfab datasets pin``
    fingerprint: Fingerprint | None = None
    access: Literal["public"] | list[Annotated[str, StringConstraints(min_length=2)]] = "public"

    @model_validator(mode="after")
    def _kind_matches_provenance(self) -> DatasetCard:
        origin = self.provenance
        if self.kind is Kind.synthetic and not origin.generator:
            raise ValueError("a synthetic dataset names its generator under provenance")
        if self.kind is Kind.external and not origin.loader:
            raise ValueError("an external dataset names its loader under provenance")
        if self.kind is Kind.sample and not self.files:
            raise ValueError("a sample dataset lists its shipped files")
        if (self.kind is Kind.imported) != (origin.recording is not None):
            raise ValueError("an imported dataset, and only one, has provenance.recording")
        if self.kind is not Kind.sample and self.files:
            raise ValueError(
                f"files: only shipped samples pin bytes; a {self.kind.value} build is pinned by "
                f"its content: smartfab datasets pin {self.id} --write"
            )
        for rate in self.sampling:
            unknown = sorted(set(rate.variables) - set(self.variables))
            if unknown:
                raise ValueError(f"sampling names unknown variables: {', '.join(unknown)}")
        return self

    @property
    def restricted(self) -> bool:
        """Whether only some teams may use the dataset."""
        return self.access != "public"

    @property
    def teams(self) -> list[str]:
        """Teams allowed when restricted (empty for public datasets)."""
        return [] if self.access == "public" else list(self.access)


#: names of imported variables: plain identifiers (``time`` is the time coordinate's)
VariableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]
#: units a time column may be given in, and their length in seconds
TIME_UNITS: dict[str, float] = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "min": 60.0, "h": 3600.0}


class ImportedVariable(CardModel):
    """One variable of a recording to import."""

    units: Units
    long_name: str = Field(min_length=1)
    description: str = ""
    column: str | None = Field(
        default=None,
        min_length=1,
        description="CSV column, or netCDF variable, it is read from (default: its name)",
    )

    @field_validator("units")
    @classmethod
    def _udunits_knows(cls, units: str) -> str:
        """Units UDUNITS can parse (``cf_units``), not only well-formed ones."""
        from cf_units import Unit  # type: ignore[import-untyped]

        try:
            Unit(units)
        except ValueError:
            raise ValueError("units UDUNITS does not know") from None
        return units

    def source_name(self, name: str) -> str:
        """The column or file variable this variable is read from."""
        return self.column or name


class TimeColumn(CardModel):
    """The recording's own time stamps: numbers in ``units``, or date-times."""

    column: str = Field(min_length=1, description="CSV column, or netCDF variable")
    units: Literal["s", "ms", "us", "min", "h"] = "s"


class CsvFormat(CardModel):
    """How a CSV export is written (controllers differ)."""

    separator: str = Field(default=",", min_length=1, max_length=1)
    decimal: Literal[".", ","] = "."
    skip_rows: int = Field(default=0, ge=0, description="lines before the header line")

    @model_validator(mode="after")
    def _distinct(self) -> CsvFormat:
        if self.separator == self.decimal:
            raise ValueError("separator and decimal must differ")
        return self


def _default_tasks() -> list[Task]:
    return [Task(name="analysis of the team's own recording", metrics=["as the team defines"])]


class ImportCard(CardModel):
    """What a team says about a recording it imports (``smartfab datasets import --card``).

    The import turns it into a full :class:`DatasetCard` (kind ``imported``, ``access`` the
    team, the content fingerprint of the imported data, the file's sha256).
    """

    id: DatasetId
    version: str = Field(default="1.0.0", pattern=SEMVER.pattern)
    title: str = Field(min_length=1, max_length=160)
    description: str = Field(min_length=1)
    recording: RecordingInfo
    sampling_rate_hz: float = Field(gt=0)
    time: TimeColumn | None = None
    variables: dict[VariableName, ImportedVariable] = Field(min_length=1)
    csv: CsvFormat = Field(default_factory=CsvFormat)
    license: Spdx = "LicenseRef-proprietary"
    citation: str | None = Field(default=None, min_length=1)
    ground_truth: str = Field(default="none: an unlabelled machine recording", min_length=1)
    tasks: list[Task] = Field(default_factory=_default_tasks, min_length=1)
    caveats: list[str] = Field(default_factory=list)

    @field_validator("variables")
    @classmethod
    def _not_time(cls, variables: dict[str, ImportedVariable]) -> dict[str, ImportedVariable]:
        if "time" in variables:
            raise ValueError("'time' is the name of the time coordinate; name the variable else")
        return variables

    @model_validator(mode="after")
    def _time_apart(self) -> ImportCard:
        if self.time is not None:
            sources = {v.source_name(n) for n, v in self.variables.items()}
            if self.time.column in sources:
                raise ValueError(f"time.column {self.time.column!r} is also a variable")
        return self


CARD_SUFFIX = ".yaml"


def load_import_card(path: Path) -> ImportCard:
    """Read and validate an import card (see :class:`ImportCard`).

    Raises
    ------
    ConfigFileError
        Naming the card, the field path and line, and the problem (every problem at once).
    """
    return validate_document(load_yaml_document(path), ImportCard)


def load_card(path: Path) -> DatasetCard:
    """Read and validate one card; the file name must be ``<id>.yaml``.

    Raises
    ------
    ConfigFileError
        Naming the card, the field path and line, and the problem.
    """
    card = validate_document(load_yaml_document(path), DatasetCard)
    if path.name != f"{card.id}{CARD_SUFFIX}":
        raise ConfigFileError(
            path, [Problem("id", f"card for {card.id!r} must be named {card.id}{CARD_SUFFIX}", 1)]
        )
    return card


#: parsed folders of cards, keyed by what they held: (path, name, size, mtime) of each card
_PARSED: dict[tuple[tuple[str, str, int, int], ...], dict[str, DatasetCard]] = {}


def load_cards(folder: Path) -> dict[str, DatasetCard]:
    """Every card in ``folder``, by id; all invalid cards are reported together.

    Cards (frozen models) are parsed once per process for the same files, unchanged: a warm
    kernel, forked from a process that read them, opens its first dataset without parsing.
    """
    paths = sorted(folder.glob(f"*{CARD_SUFFIX}"))
    stats = [(path, path.stat()) for path in paths]
    key = tuple((str(p), p.name, s.st_size, s.st_mtime_ns) for p, s in stats)
    if key and key in _PARSED:
        return dict(_PARSED[key])
    cards = _parse_cards(folder, paths)
    if key:
        _PARSED[key] = cards
    return dict(cards)


def _parse_cards(folder: Path, paths: list[Path]) -> dict[str, DatasetCard]:
    cards: dict[str, DatasetCard] = {}
    errors: list[ConfigFileError] = []
    for path in paths:
        try:
            card = load_card(path)
        except ConfigFileError as err:
            errors.append(err)
            continue
        cards[card.id] = card
    if len(errors) == 1:
        raise errors[0]
    if errors:
        problems = [replace(p, source=err.source) for err in errors for p in err.problems]
        raise ConfigFileError(folder, problems)
    return cards
