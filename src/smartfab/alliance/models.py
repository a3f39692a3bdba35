"""Pydantic models of the alliance file: people, teams, roles and grants.

The alliance file is the operator's single source of truth for who belongs to which team and what
each team may use. Models here check each field on its own; rules that relate fields to each other
(a member must be a declared person, team ids must be unique, ...) live in
:mod:`smartfab.alliance.checks` so that every problem can be reported with its field path.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from smartfab.host.names import WORKSPACE_PREFIX

#: names become system accounts and groups (``<prefix>team-<id>`` must fit Linux's 32 characters)
NAME_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
PERSON_NAME_MAX = 24
TEAM_ID_MAX = 20
#: suffix of the hub group that holds a team's viewers
VIEWERS_SUFFIX = "-viewers"

PersonName = Annotated[
    str, StringConstraints(pattern=NAME_PATTERN, min_length=2, max_length=PERSON_NAME_MAX)
]
TeamId = Annotated[
    str, StringConstraints(pattern=NAME_PATTERN, min_length=2, max_length=TEAM_ID_MAX)
]
GrantId = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$", min_length=1, max_length=64)
]


class TeamKind(StrEnum):
    """What kind of organisation a team is."""

    firm = "firm"
    university = "university"
    project = "project"


class TeamRole(StrEnum):
    """A person's role inside one team.

    ``lead`` manages the team's membership, ``member`` works in the team workspace, ``viewer``
    only opens the dashboards granted to the team and has no server of their own.
    """

    lead = "lead"
    member = "member"
    viewer = "viewer"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class AllianceInfo(_Strict):
    """Name and description of the alliance, shown on the hub."""

    name: str = Field(min_length=1, max_length=120)
    description: str = ""


class Person(_Strict):
    """One account on the hub.

    ``admin`` is the alliance-wide role ``admin``: hub administrators (operators).
    """

    name: PersonName
    full_name: str = Field(default="", max_length=120)
    email: str = Field(default="", max_length=254, pattern=r"^$|^[^@\s]+@[^@\s]+$")
    admin: bool = False


class Grants(_Strict):
    """What a team may use beyond its own workspace."""

    datasets: list[GrantId] = Field(default_factory=list)
    dashboards: list[GrantId] = Field(default_factory=list)
    programs: list[GrantId] = Field(
        default_factory=list,
        description="Programs of other teams this team may run (on its own data) and whose "
        "reports of its own runs it sees.",
    )


class Team(_Strict):
    """A firm, a university lab or a joint project, with its members and grants."""

    id: TeamId
    kind: TeamKind
    title: str = Field(min_length=1, max_length=120)
    members: dict[PersonName, TeamRole] = Field(default_factory=dict)
    partners: list[TeamId] = Field(
        default_factory=list,
        description="For projects: the firm and university teams that run it together.",
    )
    grants: Grants = Field(default_factory=Grants)

    def names_with(self, *roles: TeamRole) -> list[str]:
        """Names of members holding one of ``roles``, sorted."""
        return sorted(name for name, role in self.members.items() if role in roles)

    @property
    def workers(self) -> list[str]:
        """Leads and members: the people who work in the team workspace."""
        return self.names_with(TeamRole.lead, TeamRole.member)

    @property
    def workspace_user(self) -> str:
        """Hub user name that owns the team workspace server."""
        return f"{WORKSPACE_PREFIX}{self.id}"

    @property
    def viewers_group(self) -> str:
        """Hub group holding the team's viewers."""
        return f"{self.id}{VIEWERS_SUFFIX}"


class Alliance(_Strict):
    """The whole alliance file."""

    alliance: AllianceInfo
    people: list[Person] = Field(min_length=1)
    teams: list[Team] = Field(default_factory=list)

    def person(self, name: str) -> Person | None:
        """The person called ``name``, if declared."""
        return next((p for p in self.people if p.name == name), None)

    def team(self, team_id: str) -> Team | None:
        """The team with id ``team_id``, if declared."""
        return next((t for t in self.teams if t.id == team_id), None)

    @property
    def admins(self) -> list[str]:
        """Names of hub administrators, sorted."""
        return sorted(p.name for p in self.people if p.admin)

    def teams_of(self, name: str) -> list[Team]:
        """Teams in which ``name`` holds any role."""
        return [t for t in self.teams if name in t.members]

    def has_own_server(self, name: str) -> bool:
        """Whether ``name`` gets a server of their own (admins, leads and members do)."""
        person = self.person(name)
        if person is None:
            return False
        return person.admin or any(name in t.workers for t in self.teams)

    @property
    def server_owners(self) -> list[str]:
        """People with a server of their own, sorted."""
        return sorted(p.name for p in self.people if self.has_own_server(p.name))
