"""Who a single-user server lets in, beyond JupyterHub's scopes: its owner and, for a team
workspace, the team; an alliance admin only through an open break-glass entry.

JupyterHub's admin role holds ``access:servers`` for every server and cannot be narrowed, so a
hub admin would open any firm's workspace. Each server therefore checks the person itself: the
owner (``$JUPYTERHUB_USER``), a member of the workspace's team (hub group ``<team>``), a service;
anyone else only while the break-glass log of one of the server's teams holds an open entry of
theirs (:mod:`smartfab.host.breakglass`), which that team's people can read.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from jupyterhub.singleuser.extension import JupyterHubIdentityProvider
from tornado.web import HTTPError

from smartfab.host.breakglass import admitted
from smartfab.host.names import TEAM_FOLDERS_ENV, TEAMS_ENV, WORKSPACE_PREFIX

log = logging.getLogger("smartfab.guard")


def team_folders(value: str) -> dict[str, Path]:
    """``team=path`` pairs, ``:``-separated (``$SMARTFAB_TEAM_FOLDERS``)."""
    pairs = (part.partition("=") for part in value.split(os.pathsep) if "=" in part)
    return {team: Path(path) for team, _, path in pairs}


def admission(hub_user: dict[str, Any], owner: str, env: dict[str, str]) -> str | None:
    """Why ``hub_user`` may use the server of ``owner`` (None: they may not)."""
    name = str(hub_user.get("name", ""))
    if hub_user.get("kind") == "service":
        return "a service of the hub"
    if name == owner:
        return "its owner"
    groups = set(hub_user.get("groups") or [])
    workspace_team = (
        owner.removeprefix(WORKSPACE_PREFIX) if owner.startswith(WORKSPACE_PREFIX) else None
    )
    if workspace_team is not None and workspace_team in groups:
        return f"a member of team {workspace_team}"
    teams = [t for t in env.get(TEAMS_ENV, "").split(",") if t]
    folders = {t: p for t, p in team_folders(env.get(TEAM_FOLDERS_ENV, "")).items() if t in teams}
    entered = admitted(name, folders)
    if entered:
        return f"break-glass into {', '.join(entered)}"
    return None


class TeamGuardIdentityProvider(JupyterHubIdentityProvider):  # type: ignore[misc]
    """JupyterHub's identity provider, refusing people the server is not for (403)."""

    async def get_user(self, handler: Any) -> Any:
        user = await super().get_user(handler)
        if user is None:
            return None
        owner = os.environ.get("JUPYTERHUB_USER", "")
        why = admission(user.hub_user, owner, dict(os.environ))
        if why is None:
            log.warning("refused %s on the server of %s (no break-glass)", user.username, owner)
            message = (
                f"{user.username} may not use the server of {owner}: an admin enters a team's "
                "servers only through break-glass, which the team sees"
            )

            # as JupyterHub refuses a user without the scopes: no identity, and the login
            # redirect of an authenticated page becomes this 403 (rendered as a page)
            def refuse(*args: Any, **kwargs: Any) -> None:
                raise HTTPError(403, message)

            handler.redirect = refuse
            handler._jupyterhub_user = None
            return None
        if why.startswith("break-glass"):
            log.warning("%s uses the server of %s by %s", user.username, owner, why)
        return user
