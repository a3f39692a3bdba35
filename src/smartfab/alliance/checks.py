"""Rules that relate fields of the alliance file to each other, and grants to what exists.

The rules read the parsed YAML itself, not the validated model, so that they run even when
some fields are invalid: ``smartfab hub check`` then lists a file's field problems, its
cross-field problems and its unknown grants in one go. A rule looks only at values of the
right type (a team id that is not a string is a field problem, reported by the schema).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from smartfab.alliance.models import VIEWERS_SUFFIX, TeamKind
from smartfab.host.names import DASHBOARD_USER_PREFIX, RUN_USER_PREFIX, WORKSPACE_PREFIX

#: (field path, message)
Finding = tuple[tuple[str | int, ...], str]


@dataclass(frozen=True)
class GrantReferences:
    """What the grants of one kind may name: ``teams[].grants.<kind>`` ids must be ``known``."""

    kind: str  # the field under grants: datasets, dashboards, programs
    noun: str  # what one id names, for messages: dataset, dashboard, program
    known: frozenset[str]


def check_alliance(data: Any, references: Sequence[GrantReferences] = ()) -> list[Finding]:
    """Every cross-field problem of the parsed alliance file ``data``, and every grant that names
    an id unknown to ``references`` (empty when all is consistent)."""
    if not isinstance(data, dict):
        return []
    people = _entries(data, "people")
    teams = _entries(data, "teams")
    return [
        *_unique(people, "people", "name", "person name"),
        *_unique(teams, "teams", "id", "team id"),
        *_reserved_names(people, teams),
        *_known_members(people, teams),
        *_partners(teams),
        *_grants(teams, references),
    ]


def _entries(data: dict[str, Any], key: str) -> list[tuple[int, dict[str, Any]]]:
    """The mappings of the list ``data[key]`` with their positions."""
    items = data.get(key)
    if not isinstance(items, list):
        return []
    return [(index, item) for index, item in enumerate(items) if isinstance(item, dict)]


def _text(item: dict[str, Any], key: str) -> str | None:
    value = item.get(key)
    return value.strip() if isinstance(value, str) else None


def _texts(value: Any) -> Iterator[tuple[int, str]]:
    """The strings of a list, with their positions."""
    if isinstance(value, list):
        for pos, item in enumerate(value):
            if isinstance(item, str):
                yield pos, item.strip()


def _unique(
    entries: list[tuple[int, dict[str, Any]]], section: str, key: str, noun: str
) -> Iterator[Finding]:
    seen: dict[str, int] = {}
    for index, item in entries:
        value = _text(item, key)
        if value is None:
            continue
        if value in seen:
            yield (
                (section, index, key),
                f"duplicate {noun} {value!r} (first at {section}[{seen[value]}])",
            )
        else:
            seen[value] = index


def _reserved_names(
    people: list[tuple[int, dict[str, Any]]], teams: list[tuple[int, dict[str, Any]]]
) -> Iterator[Finding]:
    reserved = (
        (WORKSPACE_PREFIX, "team workspaces"),
        (DASHBOARD_USER_PREFIX, "the accounts that run each team's dashboards"),
        (RUN_USER_PREFIX, "the accounts that run each team's test-bench batches"),
    )
    for index, person in people:
        name = _text(person, "name")
        for prefix, purpose in reserved:
            if name is not None and name.startswith(prefix):
                yield (
                    ("people", index, "name"),
                    f"person name {name!r} starts with {prefix!r}, which is reserved for {purpose}",
                )
    for index, team in teams:
        team_id = _text(team, "id")
        if team_id is not None and team_id.endswith(VIEWERS_SUFFIX):
            yield (
                ("teams", index, "id"),
                f"team id {team_id!r} ends with {VIEWERS_SUFFIX!r}, "
                "which is reserved for the viewers group of a team",
            )


def _known_members(
    people: list[tuple[int, dict[str, Any]]], teams: list[tuple[int, dict[str, Any]]]
) -> Iterator[Finding]:
    declared = {name for _, person in people if (name := _text(person, "name")) is not None}
    for index, team in teams:
        members = team.get("members")
        if not isinstance(members, dict):
            continue
        for name in members:
            if isinstance(name, str) and name.strip() not in declared:
                yield (
                    ("teams", index, "members", name),
                    f"unknown user {name.strip()!r} in team {_text(team, 'id')!r}: "
                    "declare them under 'people'",
                )


def _kind(team: dict[str, Any]) -> TeamKind | None:
    value = _text(team, "kind")
    return TeamKind(value) if value in set(TeamKind) else None


def _partners(teams: list[tuple[int, dict[str, Any]]]) -> Iterator[Finding]:
    kinds = {team_id: _kind(team) for _, team in teams if (team_id := _text(team, "id"))}
    for index, team in teams:
        kind = _kind(team)
        partners = list(_texts(team.get("partners")))
        if partners and kind is not None and kind is not TeamKind.project:
            yield (
                ("teams", index, "partners"),
                f"only project teams have partners; {_text(team, 'id')!r} is a {kind.value}",
            )
        for pos, partner in partners:
            if partner not in kinds:
                yield (("teams", index, "partners", pos), f"unknown partner team {partner!r}")
            elif kinds[partner] is TeamKind.project:
                yield (
                    ("teams", index, "partners", pos),
                    f"partner {partner!r} is itself a project; partners are firms or universities",
                )


def _grants(
    teams: list[tuple[int, dict[str, Any]]], references: Sequence[GrantReferences]
) -> Iterator[Finding]:
    for reference in references:
        known = reference.known
        hint = f"; known: {', '.join(sorted(known))}" if known else "; none is registered"
        for index, team in teams:
            grants = team.get("grants")
            if not isinstance(grants, dict):
                continue
            for pos, granted in _texts(grants.get(reference.kind)):
                if granted not in known:
                    yield (
                        ("teams", index, "grants", reference.kind, pos),
                        f"unknown {reference.noun} {granted!r}{hint}",
                    )
