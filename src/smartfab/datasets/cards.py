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
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

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


class Provenance(CardModel):
    """How the dataset is made: exactly one of generator, loader or shipped files."""

    generator: str | None = None
    loader: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = Field(default=None, ge=0)
    upstream: Upstream | None = None

    @model_validator(mode="after")
    def _one_origin(self) -> Provenance:
        if self.generator and self.loader:
            raise ValueError("give either a generator or a loader, not both")
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


CARD_SUFFIX = ".yaml"


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
