"""Rules that relate fields of the alliance file to each other."""

from __future__ import annotations

from collections.abc import Iterator

from smartfab.alliance.models import VIEWERS_SUFFIX, Alliance, TeamKind
from smartfab.host.names import DASHBOARD_USER_PREFIX, WORKSPACE_PREFIX

#: (field path, message)
Finding = tuple[tuple[str | int, ...], str]


def check_alliance(alliance: Alliance) -> list[Finding]:
    """Return every cross-field problem of ``alliance`` (empty when it is consistent)."""
    return [
        *_unique_people(alliance),
        *_unique_teams(alliance),
        *_reserved_names(alliance),
        *_known_members(alliance),
        *_partners(alliance),
    ]


def _unique_people(alliance: Alliance) -> Iterator[Finding]:
    seen: dict[str, int] = {}
    for index, person in enumerate(alliance.people):
        if person.name in seen:
            yield (
                ("people", index, "name"),
                f"duplicate person name {person.name!r} (first at people[{seen[person.name]}])",
            )
        else:
            seen[person.name] = index


def _unique_teams(alliance: Alliance) -> Iterator[Finding]:
    seen: dict[str, int] = {}
    for index, team in enumerate(alliance.teams):
        if team.id in seen:
            yield (
                ("teams", index, "id"),
                f"duplicate team id {team.id!r} (first at teams[{seen[team.id]}])",
            )
        else:
            seen[team.id] = index


def _reserved_names(alliance: Alliance) -> Iterator[Finding]:
    for index, person in enumerate(alliance.people):
        if person.name.startswith(WORKSPACE_PREFIX):
            yield (
                ("people", index, "name"),
                f"person name {person.name!r} starts with {WORKSPACE_PREFIX!r}, "
                "which is reserved for team workspaces",
            )
        if person.name.startswith(DASHBOARD_USER_PREFIX):
            yield (
                ("people", index, "name"),
                f"person name {person.name!r} starts with {DASHBOARD_USER_PREFIX!r}, "
                "which is reserved for the accounts that run each team's dashboards",
            )
    for index, team in enumerate(alliance.teams):
        if team.id.endswith(VIEWERS_SUFFIX):
            yield (
                ("teams", index, "id"),
                f"team id {team.id!r} ends with {VIEWERS_SUFFIX!r}, "
                "which is reserved for the viewers group of a team",
            )


def _known_members(alliance: Alliance) -> Iterator[Finding]:
    declared = {p.name for p in alliance.people}
    for index, team in enumerate(alliance.teams):
        for name in team.members:
            if name not in declared:
                yield (
                    ("teams", index, "members", name),
                    f"unknown user {name!r} in team {team.id!r}: declare them under 'people'",
                )


def _partners(alliance: Alliance) -> Iterator[Finding]:
    kinds = {t.id: t.kind for t in alliance.teams}
    for index, team in enumerate(alliance.teams):
        if team.partners and team.kind is not TeamKind.project:
            yield (
                ("teams", index, "partners"),
                f"only project teams have partners; {team.id!r} is a {team.kind.value}",
            )
        for pos, partner in enumerate(team.partners):
            kind = kinds.get(partner)
            if kind is None:
                yield (("teams", index, "partners", pos), f"unknown partner team {partner!r}")
            elif kind is TeamKind.project:
                yield (
                    ("teams", index, "partners", pos),
                    f"partner {partner!r} is itself a project; partners are firms or universities",
                )
