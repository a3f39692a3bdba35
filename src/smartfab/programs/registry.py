"""The program registry: programs and their immutable versions, in a folder of the hub's state.

Layout under the registry's root (``<state>/programs`` on a hub)::

    <id>/program.json                          the Program: title, team, versions (atomic)
    <id>/versions/<digest>/notebook.ipynb      the notebook, read-only
    <id>/versions/<digest>/specs/<name>.yaml   each batch spec, byte for byte, read-only

A version's folder is written under a temporary name and renamed into place, then recorded in
``program.json``; registering the same notebook and specs again finds the version and records
nothing new. Writers take an exclusive lock on the registry (``.lock``); readers need none.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from smartfab.atomicfile import fsync_folder, write_atomic
from smartfab.canonicaljson import canonical_json
from smartfab.errors import ProgramError
from smartfab.programs.models import PROGRAM_ID_PATTERN, Program, ProgramVersion
from smartfab.runs.spec import LoadedSpec, load_spec

PROGRAM_FILE = "program.json"
NOTEBOOK_FILE = "notebook.ipynb"


@dataclass(frozen=True)
class Registered:
    """What :meth:`ProgramRegistry.register` did: the program, the version, and whether the
    version is new (False: the same notebook and specs were registered before)."""

    program: Program
    version: ProgramVersion
    created: bool


def program_id_of(notebook: Path) -> str:
    """The default id of a program: its notebook's name in lowercase words joined by hyphens
    (``bearing_fault_detector.ipynb`` -> ``bearing-fault-detector``)."""
    words = re.findall(r"[a-z0-9]+", notebook.stem.lower())
    return "-".join(words)


def describe_notebook(notebook: Path) -> tuple[str, str]:
    """Title and description from the notebook's first Markdown cell: its first heading, and
    the paragraph after it (empty strings when there is none)."""
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return "", ""
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        lines = text.splitlines()
        heading = next((i for i, line in enumerate(lines) if line.startswith("#")), None)
        if heading is None:
            return "", ""
        title = lines[heading].lstrip("#").strip()
        paragraph: list[str] = []
        for line in lines[heading + 1 :]:
            if line.strip():
                if line.startswith("#"):
                    break
                paragraph.append(line.strip())
            elif paragraph:
                break
        return title, " ".join(paragraph)
    return "", ""


def version_digest(notebook_sha256: str, specs: dict[str, str]) -> str:
    """12 hex digits of the sha256 of the notebook's and the specs' hashes."""
    payload = canonical_json({"notebook": notebook_sha256, "specs": specs})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class ProgramRegistry:
    """The programs registered under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- reading

    def ids(self) -> list[str]:
        """Ids of the registered programs, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if re.match(PROGRAM_ID_PATTERN, entry.name) and (entry / PROGRAM_FILE).is_file()
        )

    def programs(self) -> list[Program]:
        """Every registered program, by id."""
        return [self.get(program_id) for program_id in self.ids()]

    def get(self, program_id: str) -> Program:
        """The program ``program_id``; ProgramError naming the known ids when there is none."""
        path = self.root / program_id / PROGRAM_FILE
        if not re.match(PROGRAM_ID_PATTERN, program_id) or not path.is_file():
            known = ", ".join(self.ids()) or "none is registered"
            raise ProgramError(f"unknown program {program_id!r}; known: {known}")
        try:
            return Program.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as err:
            raise ProgramError(f"{path}: unreadable program record: {err}") from err

    def version_folder(self, program_id: str, version: ProgramVersion) -> Path:
        """Where the version's notebook and specs are."""
        return self.root / program_id / "versions" / version.digest

    # -- writing

    def register(
        self,
        specs: Sequence[Path],
        team: str,
        registered_by: str,
        program_id: str | None = None,
        title: str | None = None,
        description: str | None = None,
    ) -> Registered:
        """Register the notebook of ``specs`` with the specs as a version of a program of
        ``team`` (a new program, or a new version of the team's program ``program_id``).

        Raises
        ------
        RunSpecError
            When a spec does not validate (every problem, with file and line).
        ProgramError
            When the specs name different notebooks or repeat a batch name, the id is not
            valid, or the program belongs to another team.
        """
        if not specs:
            raise ProgramError("give at least one batch spec")
        loaded = [load_spec(path) for path in specs]
        notebook = _one_notebook(loaded)
        names = [item.spec.name for item in loaded]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ProgramError(f"batch name {repeated[0]!r} is used by more than one spec")
        program_id = program_id or program_id_of(notebook.notebook)
        if not re.match(PROGRAM_ID_PATTERN, program_id) or not 2 <= len(program_id) <= 64:
            raise ProgramError(
                f"bad program id {program_id!r}: use lowercase letters, digits and single "
                "hyphens, starting with a letter (2 to 64 characters)"
            )
        spec_hashes = {item.spec.name: _sha256(item.source) for item in loaded}
        digest = version_digest(notebook.notebook_sha256, spec_hashes)
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked():
            existing = self._find(program_id)
            if existing is not None and existing.team != team:
                raise ProgramError(
                    f"program {program_id!r} belongs to team {existing.team!r}, not {team!r}"
                )
            if existing is not None:
                same = next((v for v in existing.versions if v.digest == digest), None)
                if same is not None:
                    return Registered(existing, same, created=False)
            self._write_version(program_id, digest, notebook, loaded)
            number = len(existing.versions) + 1 if existing is not None else 1
            version = ProgramVersion(
                number=number,
                digest=digest,
                notebook_sha256=notebook.notebook_sha256,
                specs=spec_hashes,
                registered_at=datetime.now(UTC),
                registered_by=registered_by,
            )
            found_title, found_description = describe_notebook(notebook.notebook)
            program = Program(
                id=program_id,
                title=title or (existing.title if existing else "") or found_title or program_id,
                description=description
                if description is not None
                else (existing.description if existing else found_description),
                team=team,
                versions=[*(existing.versions if existing else []), version],
            )
            record = json.dumps(program.model_dump(mode="json"), indent=1).encode("utf-8")
            write_atomic(self.root / program_id / PROGRAM_FILE, record + b"\n", mode=0o644)
            return Registered(program, version, created=True)

    def _find(self, program_id: str) -> Program | None:
        if not (self.root / program_id / PROGRAM_FILE).is_file():
            return None
        return self.get(program_id)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _write_version(
        self, program_id: str, digest: str, notebook: LoadedSpec, loaded: list[LoadedSpec]
    ) -> None:
        """The version's folder, complete and read-only, or nothing (a crash leaves only a
        temporary folder, which the next registration of it removes)."""
        versions = self.root / program_id / "versions"
        versions.mkdir(parents=True, exist_ok=True)
        for stale in versions.glob(f".{digest}-*"):  # left by a crash while writing
            _remove_tree(stale)
        final = versions / digest
        if final.is_dir():  # written before a crash, but not recorded: check it and keep it
            if _sha256(final / NOTEBOOK_FILE) == notebook.notebook_sha256 and all(
                _sha256(final / "specs" / f"{item.spec.name}.yaml") == _sha256(item.source)
                for item in loaded
            ):
                return
            _remove_tree(final)
        temp = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=versions))
        try:
            (temp / "specs").mkdir()
            shutil.copyfile(notebook.notebook, temp / NOTEBOOK_FILE)
            for item in loaded:
                shutil.copyfile(item.source, temp / "specs" / f"{item.spec.name}.yaml")
            if _sha256(temp / NOTEBOOK_FILE) != notebook.notebook_sha256:
                raise ProgramError(f"{notebook.notebook} changed while it was being registered")
            for path in [temp / NOTEBOOK_FILE, *(temp / "specs").iterdir()]:
                path.chmod(0o444)
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
            (temp / "specs").chmod(0o555)
            temp.chmod(0o555)
            os.rename(temp, final)
            fsync_folder(versions)
        except BaseException:
            _remove_tree(temp)
            raise


def _one_notebook(loaded: list[LoadedSpec]) -> LoadedSpec:
    """The spec whose notebook all the others share; ProgramError naming the first that
    differs."""
    first = loaded[0]
    for item in loaded[1:]:
        if item.notebook_sha256 != first.notebook_sha256:
            raise ProgramError(
                f"{item.source}: program: {item.notebook.name} is not the notebook of "
                f"{first.source.name} ({first.notebook.name}); a program has one notebook"
            )
    return first


def _remove_tree(path: Path) -> None:
    """Remove a folder even where it was made read-only."""
    if not path.exists():
        return
    for folder, _, _ in os.walk(path):
        with contextlib.suppress(OSError):
            os.chmod(folder, 0o755)
    shutil.rmtree(path, ignore_errors=True)
