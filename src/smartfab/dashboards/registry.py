"""Where dashboards come from: the curated registry and the apps published into the state dir.

The curated registry (id -> notebook, title, description) is ``apps/dashboards.yaml`` of the
alliance library installed with smartfab (:func:`smartfab.resources.library_dir`; in a source
checkout, ``notebooks/apps/dashboards.yaml``): the same wherever the alliance file lives. Teams
get curated apps through ``teams[].grants.dashboards`` in the alliance file. Published apps live
in ``<state>/dashboards/``: each notebook is copied into ``serve/`` and ``published.json``
(written atomically, last) names the teams it is published for. The Voila of each team serves
copies of its own dashboards only (see :mod:`smartfab.dashboards.backends`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from smartfab.atomicfile import write_atomic
from smartfab.errors import ConfigFileError, DashboardError
from smartfab.resources import library_dir
from smartfab.yamlfile import load_yaml_document, validate_document

#: ids become URL path segments under ``/services/dashboards/``; these are taken by the service
RESERVED_IDS = frozenset({"api", "voila", "oauth_callback", "static", "logout"})
DASHBOARD_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
DashboardId = Annotated[
    str, StringConstraints(pattern=DASHBOARD_ID_PATTERN, min_length=1, max_length=64)
]
#: the registry of curated apps, relative to the alliance library
REGISTRY_RELPATH = Path("apps") / "dashboards.yaml"
PUBLISHED_INDEX = "published.json"


class RegistryEntry(BaseModel):
    """One curated app in ``dashboards.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    notebook: str = Field(min_length=1, description="Notebook path, relative to the registry.")
    title: str = Field(min_length=1, max_length=120)
    description: str = ""


class RegistryFile(BaseModel):
    """The whole ``dashboards.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dashboards: dict[DashboardId, RegistryEntry] = Field(default_factory=dict)


class PublishedEntry(BaseModel):
    """One app published with ``smartfab dashboards publish``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str
    description: str = ""
    teams: list[str]
    source: str = Field(description="The notebook it was published from.")
    published_at: str


class PublishedIndex(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dashboards: dict[DashboardId, PublishedEntry] = Field(default_factory=dict)


@dataclass(frozen=True)
class Dashboard:
    """A dashboard the service can render.

    Attributes
    ----------
    id:
        URL segment: ``/services/dashboards/<id>/``.
    notebook:
        The notebook file it is rendered from.
    teams:
        Teams it was published for (curated apps are granted in the alliance file instead).
    """

    id: str
    title: str
    description: str
    notebook: Path
    origin: str  # "curated" or "published"
    teams: tuple[str, ...] = ()

    @property
    def available(self) -> bool:
        return self.notebook.is_file()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "notebook": str(self.notebook),
            "origin": self.origin,
            "teams": list(self.teams),
            "available": self.available,
        }


def curated_registry() -> Path:
    """The registry of the curated apps installed with smartfab: ``apps/dashboards.yaml`` of the
    alliance library (:func:`smartfab.resources.library_dir`), wherever the alliance file is."""
    return library_dir() / REGISTRY_RELPATH


def load_registry(path: Path) -> list[Dashboard]:
    """Curated dashboards of the registry at ``path``.

    Raises
    ------
    ConfigFileError
        Naming file, line and field of every problem.
    """
    doc = load_yaml_document(path)
    registry = validate_document(doc, RegistryFile, ConfigFileError)
    reserved = [key for key in registry.dashboards if key in RESERVED_IDS]
    if reserved:
        raise DashboardError(f"{path}: dashboard id {reserved[0]!r} is reserved by the service")
    return [
        Dashboard(
            id=key,
            title=entry.title,
            description=entry.description,
            notebook=(path.parent / entry.notebook).resolve(),
            origin="curated",
        )
        for key, entry in registry.dashboards.items()
    ]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class DashboardCatalog:
    """Curated and published dashboards of one hub.

    The published index is re-read when its modification time changes, so the service picks up
    a newly published app without a restart.
    """

    #: the registry of curated apps (None: no curated apps)
    registry: Path | None
    state_root: Path
    _curated: list[Dashboard] | None = field(default=None, repr=False)
    _published: tuple[float, list[Dashboard]] | None = field(default=None, repr=False)

    @classmethod
    def for_hub(cls, state_root: Path) -> DashboardCatalog:
        """The curated apps installed with smartfab and the apps published in ``state_root``."""
        return cls(registry=curated_registry(), state_root=state_root)

    @property
    def root(self) -> Path:
        """``<state>/dashboards``."""
        return self.state_root / "dashboards"

    @property
    def serve_dir(self) -> Path:
        """Published notebooks: one ``<id>.ipynb`` per published dashboard."""
        return self.root / "serve"

    @property
    def index_path(self) -> Path:
        return self.root / PUBLISHED_INDEX

    def ensure(self) -> None:
        """Create the folders (idempotent). Published notebooks are the service's alone; the
        root may only be passed through, to each team's served folder."""
        self.serve_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)
        os.chmod(self.serve_dir, 0o700)

    def curated(self) -> list[Dashboard]:
        if self._curated is None:
            self._curated = load_registry(self.registry) if self.registry else []
        return self._curated

    def _read_index(self) -> PublishedIndex:
        try:
            raw = self.index_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return PublishedIndex()
        try:
            return PublishedIndex.model_validate(json.loads(raw))
        except (json.JSONDecodeError, ValidationError) as err:
            raise DashboardError(
                f"{self.index_path}: damaged index of published apps: {err}"
            ) from err

    def published(self) -> list[Dashboard]:
        try:
            mtime = self.index_path.stat().st_mtime
        except FileNotFoundError:
            return []
        if self._published is None or self._published[0] != mtime:
            index = self._read_index()
            items = [
                Dashboard(
                    id=key,
                    title=entry.title,
                    description=entry.description,
                    notebook=self.serve_dir / f"{key}.ipynb",
                    origin="published",
                    teams=tuple(entry.teams),
                )
                for key, entry in index.dashboards.items()
            ]
            self._published = (mtime, items)
        return self._published[1]

    def all(self) -> list[Dashboard]:
        return [*self.curated(), *self.published()]

    def get(self, dashboard_id: str) -> Dashboard | None:
        return next((d for d in self.all() if d.id == dashboard_id), None)

    def ids(self) -> set[str]:
        return {d.id for d in self.all()}

    def publish(
        self,
        notebook: Path,
        teams: list[str],
        dashboard_id: str,
        title: str,
        description: str = "",
    ) -> Dashboard:
        """Copy ``notebook`` in and record it for ``teams``; nothing is half-written on error.

        Raises
        ------
        DashboardError
            Missing or invalid notebook, bad or clashing id.
        """
        import re

        if not re.match(DASHBOARD_ID_PATTERN, dashboard_id) or len(dashboard_id) > 64:
            raise DashboardError(
                f"bad dashboard id {dashboard_id!r}: use lowercase letters, digits, '.', '_', '-'"
            )
        if dashboard_id in RESERVED_IDS:
            raise DashboardError(f"dashboard id {dashboard_id!r} is reserved by the service")
        if not notebook.is_file():
            raise DashboardError(f"notebook {str(notebook)!r} not found")
        data = notebook.read_bytes()
        try:
            json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DashboardError(f"{notebook}: not a notebook (invalid JSON: {err})") from err
        clash = self.get(dashboard_id)
        if clash is not None:
            raise DashboardError(
                f"dashboard id {dashboard_id!r} is already taken by the {clash.origin} app "
                f"{clash.title!r}; choose another with --id"
            )
        self.ensure()
        index = self._read_index()
        entry = PublishedEntry(
            title=title,
            description=description,
            teams=sorted(set(teams)),
            source=str(notebook.resolve()),
            published_at=_now(),
        )
        target = self.serve_dir / f"{dashboard_id}.ipynb"
        write_atomic(target, data)
        updated = PublishedIndex(dashboards={**index.dashboards, dashboard_id: entry})
        try:
            write_atomic(self.index_path, updated.model_dump_json(indent=2).encode())
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        self._published = None
        result = self.get(dashboard_id)
        assert result is not None
        return result
