"""Who may open which dashboard: the hub groups of a person decide.

Hub group ``<team>`` holds a team's leads and members and ``<team>-viewers`` its viewers; both
see the dashboards granted to the team in the alliance file and those published for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from smartfab.alliance.models import VIEWERS_SUFFIX, Alliance
from smartfab.alliance.render import service_access_role
from smartfab.dashboards.registry import Dashboard

SERVICE_NAME = "dashboards"
ACCESS_ROLE = "dashboards-viewer"


def access_role(alliance: Alliance) -> dict[str, object]:
    """Role for every team group and viewers group of the alliance."""
    return service_access_role(
        alliance,
        SERVICE_NAME,
        ACCESS_ROLE,
        "Open the dashboards granted to one's teams (service 'dashboards').",
    )


def teams_of_groups(groups: Iterable[str], team_ids: Iterable[str]) -> set[str]:
    """Team ids reached through hub ``groups`` (worker or viewers group)."""
    known = set(team_ids)
    teams = set()
    for group in groups:
        team = group.removesuffix(VIEWERS_SUFFIX)
        if team in known:
            teams.add(team)
    return teams


@dataclass(frozen=True)
class DashboardAccess:
    """Grants of the alliance file, applied to curated and published dashboards."""

    alliance: Alliance

    def teams_for(self, groups: Iterable[str]) -> set[str]:
        return teams_of_groups(groups, (t.id for t in self.alliance.teams))

    def allowed(self, dashboard: Dashboard, teams: set[str]) -> bool:
        """Whether a person in ``teams`` may open ``dashboard``."""
        if teams & set(dashboard.teams):
            return True
        return any(
            dashboard.id in team.grants.dashboards
            for team in self.alliance.teams
            if team.id in teams
        )

    def visible(self, dashboards: Iterable[Dashboard], groups: Iterable[str]) -> list[Dashboard]:
        """The available dashboards a person with hub ``groups`` may open, by title."""
        teams = self.teams_for(groups)
        return sorted(
            (d for d in dashboards if d.available and self.allowed(d, teams)),
            key=lambda d: (d.title.lower(), d.id),
        )
