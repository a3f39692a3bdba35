"""Checking a submission before anything is queued: program, version, batch spec, team,
parameters, datasets. Every problem is a :class:`~smartfab.errors.SubmissionError` with its HTTP
status and the problems field by field, as the command line prints them.

A submission is the version's batch spec with the person's ``set`` values applied, checked
against the version's notebook exactly as ``smartfab runs start`` checks a spec file.
"""

from __future__ import annotations

import copy
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from smartfab.datasets.access import AccessPolicy
from smartfab.datasets.cards import DatasetCard
from smartfab.errors import Problem, ProgramError, RunSpecError, SubmissionError
from smartfab.programs.models import Program, ProgramVersion
from smartfab.programs.registry import NOTEBOOK_FILE, ProgramRegistry
from smartfab.runs.spec import LoadedSpec, load_spec
from smartfab.testbench.access import BenchAccess, Person
from smartfab.testbench.models import Priority, QueuedBatch, SubmitRequest

#: the spec and notebook of a submission, as the batch process reads them
SPEC_FILE = "spec.yaml"


@dataclass(frozen=True)
class Prepared:
    """A checked submission: the queue's record and the files its batch runs from."""

    batch: QueuedBatch
    spec_text: str
    notebook: Path
    wanted_workers: int | None


def new_batch_id() -> str:
    return f"tb-{secrets.token_hex(6)}"


def _refuse(status: int, message: str, path: str = "", detail: str = "") -> SubmissionError:
    return SubmissionError(status, message, [Problem(path, detail or message)])


def resolve_program(registry: ProgramRegistry, request: SubmitRequest) -> Program:
    try:
        return registry.get(request.program)
    except ProgramError as err:
        raise _refuse(404, f"unknown program {request.program!r}", "program", str(err)) from None


def resolve_version(program: Program, ref: str | None) -> ProgramVersion:
    version = program.version(ref)
    if version is None:
        known = ", ".join(f"{v.number} ({v.digest})" for v in program.versions)
        raise _refuse(
            404,
            f"program {program.id} has no version {ref!r}",
            "version",
            f"unknown version {ref!r} of {program.id}; versions: {known}",
        )
    return version


def resolve_spec(version: ProgramVersion, name: str | None, program: Program) -> str:
    names = sorted(version.specs)
    if name is None:
        if len(names) == 1:
            return names[0]
        raise _refuse(
            422,
            f"program {program.id} v{version.number} has several batch specs",
            "batch",
            f"give the batch spec to run: one of {', '.join(names)}",
        )
    if name not in version.specs:
        raise _refuse(
            404,
            f"program {program.id} v{version.number} has no batch spec {name!r}",
            "batch",
            f"unknown batch spec {name!r}; specs: {', '.join(names)}",
        )
    return name


def resolve_team(access: BenchAccess, person: Person, program: Program, team: str | None) -> str:
    allowed = access.submit_teams(person, program)
    if team is None:
        if len(allowed) == 1:
            return allowed[0]
        if not allowed:
            raise _refuse(
                403,
                f"none of your teams may run program {program.id}",
                "team",
                f"{program.id} belongs to team {program.team} and is granted to "
                f"{', '.join(sorted(access.runners(program) - {program.team})) or 'no team'}",
            )
        raise _refuse(422, "give the team that runs it", "team", f"one of {', '.join(allowed)}")
    if team not in person.works_in:
        raise _refuse(403, f"you are not a lead or member of team {team!r}", "team")
    if team not in allowed:
        raise _refuse(403, f"team {team!r} may not run program {program.id}", "team")
    return team


def apply_settings(spec: dict[str, Any], settings: dict[str, Any]) -> list[Problem]:
    """Put ``settings`` into the spec: a list becomes (or replaces) a grid axis, a single value
    a parameter fixed for every run. Returns the problems (a paired ``zip`` axis)."""
    problems = []
    grid = spec.setdefault("grid", {})
    parameters = spec.setdefault("parameters", {})
    paired = spec.get("zip") or {}
    for name, value in settings.items():
        if name in paired:
            problems.append(
                Problem(
                    f"set.{name}",
                    f"{name} is paired with {', '.join(paired)} in the spec's "
                    "zip: it cannot be set alone",
                )
            )
            continue
        if isinstance(value, list):
            parameters.pop(name, None)
            grid[name] = value
        else:
            grid.pop(name, None)
            parameters[name] = value
    if not grid:
        spec.pop("grid")
    if not parameters:
        spec.pop("parameters")
    return problems


def _spec_problems(err: RunSpecError, settings: dict[str, Any]) -> list[Problem]:
    """The spec's problems, named by the ``set`` value that caused them where one did."""
    problems = []
    for problem in err.problems:
        parts = problem.path.replace("[", ".").split(".")
        name = parts[1] if len(parts) > 1 and parts[0] in ("grid", "parameters") else None
        path = f"set.{name}" if name in settings else problem.path
        problems.append(Problem(path, problem.message))
    return problems


def check_datasets(
    loaded: LoadedSpec, team_grants: frozenset[str], team: str, cards: dict[str, DatasetCard]
) -> list[Problem]:
    """Parameters named ``dataset`` or ``*_dataset`` must name datasets the team may open."""
    policy = AccessPolicy(teams=frozenset({team}), grants=team_grants)
    problems = []
    seen: set[tuple[str, str]] = set()
    for run in loaded.runs():
        for name, value in run.items():
            if not (name == "dataset" or name.endswith("_dataset")) or (name, str(value)) in seen:
                continue
            seen.add((name, str(value)))
            card = cards.get(str(value))
            if card is None:
                problems.append(Problem(name, f"unknown dataset {value!r}"))
            elif not policy.allows(card):
                problems.append(Problem(name, f"team {team} may not open dataset {value!r}"))
    return problems


def prepare(
    registry: ProgramRegistry,
    access: BenchAccess,
    person: Person,
    request: SubmitRequest,
    cards: Callable[[str], dict[str, DatasetCard]],
    workdir: Path,
) -> Prepared:
    """Check ``request`` from ``person``; the spec and notebook are written into ``workdir``;
    ``cards`` gives the dataset cards a team sees (curated, and its own imported recordings).

    Raises SubmissionError: 404 unknown program, version or spec; 403 a team the person is not
    in or that may not run the program, a dataset the team may not open; 422 a spec that does
    not validate with the values set (unknown parameter, wrong type, empty grid, ...).
    """
    program = resolve_program(registry, request)
    if not access.may_see_program(person, program):
        raise _refuse(404, f"unknown program {request.program!r}", "program")
    version = resolve_version(program, request.version)
    spec_name = resolve_spec(version, request.batch, program)
    team = resolve_team(access, person, program, request.team)
    folder = registry.version_folder(program.id, version)
    original = yaml.safe_load((folder / "specs" / f"{spec_name}.yaml").read_text("utf-8"))
    spec = copy.deepcopy(original)
    problems = apply_settings(spec, request.set)
    if problems:
        raise SubmissionError(422, "the values set do not fit the batch spec", problems)
    spec["program"] = NOTEBOOK_FILE
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / NOTEBOOK_FILE, workdir / NOTEBOOK_FILE)
    spec_text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
    (workdir / SPEC_FILE).write_text(spec_text, encoding="utf-8")
    try:
        loaded = load_spec(workdir / SPEC_FILE)
    except RunSpecError as err:
        raise SubmissionError(
            422, "the batch spec does not validate", _spec_problems(err, request.set)
        ) from None
    grants = access.alliance.team(team)
    denied = check_datasets(
        loaded, frozenset(grants.grants.datasets if grants else ()), team, cards(team)
    )
    if denied:
        raise SubmissionError(403, "a dataset of the batch is not open to the team", denied)
    batch = QueuedBatch(
        id=workdir.name,
        program=program.id,
        version=version.number,
        digest=version.digest,
        spec=spec_name,
        team=team,
        submitted_by=person.name,
        submitted_at=time.time(),
        priority=Priority.named(request.priority),
        runs=len(loaded.runs()),
        batch_id=loaded.batch_id,
        parameters=request.set,
    )
    return Prepared(batch, spec_text, workdir / NOTEBOOK_FILE, loaded.spec.workers)
