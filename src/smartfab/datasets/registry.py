"""Generators and loaders: named, parameter-checked builders of datasets.

A *generator* simulates a machine from physics, deterministically for a seed; a *loader* reads a
public dataset from a local copy in its upstream format. Both are registered through Python entry
points (groups ``smartfab.generators`` and ``smartfab.loaders``), so other packages can add their
own; the registry is read when first asked, never at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar

import xarray as xr
from pydantic import BaseModel, ConfigDict, ValidationError

from smartfab.errors import DatasetError, ParameterError

GENERATOR_GROUP = "smartfab.generators"
LOADER_GROUP = "smartfab.loaders"


class Params(BaseModel):
    """Base of every generator's and loader's parameters: unknown names are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=Params)


@dataclass(frozen=True)
class Generator(Generic[P]):
    """A simulator: ``build(params, seed)`` returns the same Dataset for the same inputs."""

    name: str
    params: type[P]
    build: Callable[[P, int], xr.Dataset]
    description: str = ""

    def __call__(self, seed: int = 0, **values: Any) -> xr.Dataset:
        """Validate ``values`` and build (``seed`` makes every random draw reproducible)."""
        return self.build(check_params(self.name, self.params, values), seed)


@dataclass(frozen=True)
class Loader(Generic[P]):
    """A reader of a public dataset: ``read(path, params)`` converts a local upstream copy."""

    name: str
    params: type[P]
    read: Callable[[Path, P], xr.Dataset]
    description: str = ""
    #: upstream file names (or patterns) the loader reads inside ``path``
    files: tuple[str, ...] = ()

    def __call__(self, path: Path | str, **values: Any) -> xr.Dataset:
        path = Path(path)
        if not path.exists():
            raise DatasetError(f"{self.name}: {path} does not exist (point at a local copy)")
        return self.read(path, check_params(self.name, self.params, values))


def check_params(owner: str, model: type[P], values: dict[str, Any]) -> P:
    """Validate parameters; errors name the builder, the parameter and the value."""
    try:
        return model(**values)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(all)'}: {e['msg']} (got {e.get('input')!r})"
            for e in err.errors()
        )
        raise ParameterError(f"{owner}: invalid parameters: {problems}") from None


@dataclass
class Registry:
    """Generators and loaders found through entry points, loaded on first use."""

    _generators: dict[str, Generator[Any]] | None = field(default=None, init=False)
    _loaders: dict[str, Loader[Any]] | None = field(default=None, init=False)
    _broken: dict[str, str] = field(default_factory=dict, init=False)

    @classmethod
    def of(
        cls,
        generators: Sequence[Generator[Any]] = (),
        loaders: Sequence[Loader[Any]] = (),
    ) -> Registry:
        """A registry of exactly these builders (no entry points), e.g. for tests."""
        registry = cls()
        registry._generators = {g.name: g for g in generators}
        registry._loaders = {loader.name: loader for loader in loaders}
        return registry

    def _load(self, group: str, kind: type) -> dict[str, Any]:
        """Builders of ``group``; one that fails to import is remembered, not fatal for all."""
        found: dict[str, Any] = {}
        for point in entry_points(group=group):
            try:
                obj = point.load()
            except Exception as err:  # a broken plugin must not hide the others
                self._broken[point.name] = f"{point.value}: {type(err).__name__}: {err}"
                continue
            if not isinstance(obj, kind):
                self._broken[point.name] = f"{point.value} is not a {kind.__name__}"
                continue
            builder: Any = obj
            found[builder.name] = builder
        return found

    def _unknown(self, kind: str, name: str, known: dict[str, Any]) -> DatasetError:
        if name in self._broken:
            return DatasetError(f"{kind} {name!r} could not be loaded: {self._broken[name]}")
        return DatasetError(f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}")

    @property
    def generators(self) -> dict[str, Generator[Any]]:
        if self._generators is None:
            self._generators = self._load(GENERATOR_GROUP, Generator)
        return self._generators

    @property
    def loaders(self) -> dict[str, Loader[Any]]:
        if self._loaders is None:
            self._loaders = self._load(LOADER_GROUP, Loader)
        return self._loaders

    def generator(self, name: str) -> Generator[Any]:
        try:
            return self.generators[name]
        except KeyError:
            raise self._unknown("generator", name, self.generators) from None

    def loader(self, name: str) -> Loader[Any]:
        try:
            return self.loaders[name]
        except KeyError:
            raise self._unknown("loader", name, self.loaders) from None

    def __iter__(self) -> Iterator[str]:
        yield from sorted(self.generators)
        yield from sorted(self.loaders)
