"""Who may see, submit and read what on the test bench.

A person's teams come from their hub groups (``<team>``: leads and members, who work; and
``<team>-viewers``). A program may be run by its owning team and by the teams the alliance file
grants it to (``grants.programs``). A batch belongs to the team that ran it: its members and
viewers see it and its report, nobody else (not the program's authors, not an admin).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from smartfab.alliance.models import VIEWERS_SUFFIX, Alliance
from smartfab.alliance.render import service_access_role
from smartfab.programs.models import Program
from smartfab.testbench.models import QueuedBatch

SERVICE_NAME = "testbench"
ACCESS_ROLE = "testbench-user"


def access_role(alliance: Alliance) -> dict[str, object]:
    """Role for every team group and viewers group of the alliance."""
    return service_access_role(
        alliance,
        SERVICE_NAME,
        ACCESS_ROLE,
        "Use the test bench for one's teams (service 'testbench').",
    )


@dataclass(frozen=True)
class Person:
    """Someone signed in through the hub, with the teams their hub groups put them in."""

    name: str
    works_in: frozenset[str]
    views: frozenset[str]
    #: an alliance admin (an operator: manages the platform, is in no team by that)
    operator: bool = False
    #: teams whose results an operator entered through an unexpired break-glass
    entered: frozenset[str] = frozenset()

    @classmethod
    def from_hub(
        cls, user: Mapping[str, Any], alliance: Alliance, entered: frozenset[str] = frozenset()
    ) -> Person:
        """From the hub's user model (``name``, ``groups``) and the alliance (its team ids and
        admins); ``entered``: the teams of the operator's open break-glass entries."""
        teams = {t.id for t in alliance.teams}
        groups = set(user.get("groups") or [])
        operator = str(user["name"]) in alliance.admins
        return cls(
            name=str(user["name"]),
            operator=operator,
            entered=entered if operator else frozenset(),
            works_in=frozenset(groups & teams),
            views=frozenset(
                g.removesuffix(VIEWERS_SUFFIX)
                for g in groups
                if g.endswith(VIEWERS_SUFFIX) and g.removesuffix(VIEWERS_SUFFIX) in teams
            ),
        )

    @property
    def teams(self) -> frozenset[str]:
        return self.works_in | self.views


@dataclass(frozen=True)
class BenchAccess:
    """The alliance's grants applied to programs and batches."""

    alliance: Alliance

    def runners(self, program: Program) -> set[str]:
        """Teams that may run ``program``: its owner and the teams granted it."""
        granted = {t.id for t in self.alliance.teams if program.id in t.grants.programs}
        return {program.team} | granted

    def may_see_program(self, person: Person, program: Program) -> bool:
        return bool(person.teams & self.runners(program))

    def visible_programs(self, person: Person, programs: Iterable[Program]) -> list[Program]:
        return [p for p in programs if self.may_see_program(person, p)]

    def submit_teams(self, person: Person, program: Program) -> list[str]:
        """The teams ``person`` may run ``program`` for: teams they work in that may run it."""
        return sorted(person.works_in & self.runners(program))

    def may_see_batch(self, person: Person, batch: QueuedBatch) -> bool:
        """The team's members and viewers; an operator only through an open break-glass."""
        return batch.team in person.teams or batch.team in person.entered

    def may_cancel(self, person: Person, batch: QueuedBatch) -> bool:
        return batch.team in person.works_in
