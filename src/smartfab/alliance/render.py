"""Rendering the alliance into JupyterHub configuration: groups, roles, admins, accounts.

Each function only *sets* values on a traitlets ``Config`` (it never reads back what another
function set), so each can be tested against a bare ``Config()``.

The access model:

* hub group ``<team>`` holds the team's leads and members; ``<team>-viewers`` its viewers;
* role ``smartfab-server`` (``self``) goes to the worker groups and to admins, so a viewer has no
  server of their own; the default ``user`` role is reduced to reading oneself;
* role ``workspace-<team>`` lets the team group open and start the team workspace, the server of
  hub user ``team-<team>``;
* role ``lead-<team>`` lets the team's leads manage both of its groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from traitlets.config import Config

from smartfab.alliance.models import Alliance, Team, TeamRole

#: what every logged-in account may do: read itself (nothing about servers or tokens)
BASE_USER_SCOPES = [
    "read:users!user",
    "read:users:name!user",
    "read:users:groups!user",
    "read:users:activity!user",
]
SERVER_ROLE = "smartfab-server"
WORKSPACE_OWNER_ROLE = "smartfab-workspace-owner"


def workspace_role_name(team: Team) -> str:
    return f"workspace-{team.id}"


def lead_role_name(team: Team) -> str:
    return f"lead-{team.id}"


def workspace_scopes(team: Team) -> list[str]:
    """Open (``access``), start and stop (``servers``) the team workspace, and see its state."""
    owner = team.workspace_user
    return [
        f"access:servers!user={owner}",
        f"servers!user={owner}",
        f"read:servers!user={owner}",
        f"read:users:activity!user={owner}",
    ]


def lead_scopes(team: Team) -> list[str]:
    """Add and remove members of the team's two groups, seeing the names of all accounts."""
    return [
        f"groups!group={team.id}",
        f"groups!group={team.viewers_group}",
        "list:users",
        "read:users:name",
    ]


def set_groups(c: Config, alliance: Alliance) -> None:
    """One worker group and one viewer group per team, with the team's facts as properties."""
    groups: dict[str, dict[str, Any]] = {}
    for team in alliance.teams:
        properties = {
            "kind": team.kind.value,
            "title": team.title,
            "partners": list(team.partners),
            "datasets": list(team.grants.datasets),
            "dashboards": list(team.grants.dashboards),
            "programs": list(team.grants.programs),
        }
        groups[team.id] = {"users": team.workers, "properties": properties}
        groups[team.viewers_group] = {
            "users": team.names_with(TeamRole.viewer),
            "properties": {**properties, "viewers_of": team.id},
        }
    c.JupyterHub.load_groups = groups


def set_roles(c: Config, alliance: Alliance, services: list[dict[str, Any]] | None = None) -> None:
    """Roles of people and workspaces; ``services`` adds roles of managed services."""
    roles: list[dict[str, Any]] = [
        {
            "name": "user",
            "description": "Every account: read itself. Servers come from other roles.",
            "scopes": BASE_USER_SCOPES,
        },
        {
            "name": SERVER_ROLE,
            "description": "A server of one's own: admins, leads and members (not viewers).",
            "scopes": ["self"],
            "groups": [team.id for team in alliance.teams],
            "users": alliance.admins,
        },
        {
            "name": WORKSPACE_OWNER_ROLE,
            "description": "Hub users that own team workspaces (they never log in).",
            "scopes": [],
            "users": [team.workspace_user for team in alliance.teams],
        },
    ]
    for team in alliance.teams:
        roles.append(
            {
                "name": workspace_role_name(team),
                "description": f"Open and start the workspace of team {team.id}.",
                "scopes": workspace_scopes(team),
                "groups": [team.id],
            }
        )
        roles.append(
            {
                "name": lead_role_name(team),
                "description": f"Manage the membership of team {team.id}.",
                "scopes": lead_scopes(team),
                "users": team.names_with(TeamRole.lead),
            }
        )
    roles.extend(services or [])
    c.JupyterHub.load_roles = roles


def service_access_role(
    alliance: Alliance, service: str, role: str, description: str
) -> dict[str, Any]:
    """Role for every team group and viewers group of the alliance: open the managed service
    ``service``, whose OAuth identity then carries the person's groups."""
    return {
        "name": role,
        "description": description,
        "scopes": [f"access:services!service={service}", "read:users:groups!user"],
        "groups": [g for team in alliance.teams for g in (team.id, team.viewers_group)],
    }


def set_admins(c: Config, alliance: Alliance) -> None:
    """Hub administrators are the people marked ``admin: true``."""
    c.Authenticator.admin_users = set(alliance.admins)


def set_accounts(c: Config, alliance: Alliance) -> None:
    """Every person in the file gets a password account on hub start."""
    c.SmartfabAuthenticator.provisioned_users = {p.name for p in alliance.people}


def set_team_ids(c: Config, alliance: Alliance) -> None:
    """The spawner needs to know which hub groups are teams with folders, and their grants."""
    c.SmartfabSpawner.team_ids = [team.id for team in alliance.teams]
    c.SmartfabSpawner.team_grants = {team.id: list(team.grants.datasets) for team in alliance.teams}


def workspace_oauth_client(team: Team) -> str:
    """OAuth client id JupyterHub gives the workspace server of ``team``."""
    return f"jupyterhub-user-{team.workspace_user}"


def set_workspace_consent(c: Config, alliance: Alliance, services: Sequence[str] = ()) -> None:
    """Members open their team workspace without JupyterHub's "authorize access" page.

    The page warns before handing one's identity to *someone else's* server; a workspace is
    the team's own, and access to it was granted by the team role in the alliance file.
    ``services`` are OAuth client ids of the alliance's own services (this setting replaces
    the list the hub derives from ``oauth_no_confirm`` of each service).
    """
    c.JupyterHub.tornado_settings = {
        "oauth_no_confirm_list": {workspace_oauth_client(t) for t in alliance.teams} | set(services)
    }


def render_alliance(
    c: Config,
    alliance: Alliance,
    service_roles: list[dict[str, Any]] | None = None,
    no_confirm_services: Sequence[str] = (),
) -> None:
    """Apply every alliance-derived setting to ``c`` (``service_roles`` join the role list;
    ``no_confirm_services`` skip the OAuth consent page)."""
    set_groups(c, alliance)
    set_roles(c, alliance, service_roles)
    set_workspace_consent(c, alliance, no_confirm_services)
    set_admins(c, alliance)
    set_accounts(c, alliance)
    set_team_ids(c, alliance)
