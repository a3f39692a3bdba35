"""Where each hub user, team workspace and team's dashboards live on this machine, and which
system names they use."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from smartfab.host.names import (
    DASHBOARD_USER_PREFIX,
    GRANTS_ENV,
    RUN_USER_PREFIX,
    SHARED_DATA_ENV,
    TEAM_FOLDERS_ENV,
    TEAMS_ENV,
    WORKSPACE_PREFIX,
)
from smartfab.host.settings import HubSettings, SpawnMode
from smartfab.host.state import StateDir

#: folder in every home that holds one link per team the user belongs to
TEAM_LINKS_DIR = "teams"
#: folder inside each team folder for restricted dataset builds of that team
TEAM_DATASETS_DIR = ".datasets"
#: folder inside each team folder: the team's run store, written by its test-bench batches
TEAM_RUNS_DIR = "runs"


@dataclass(frozen=True)
class Layout:
    """Names and paths derived from the hub settings.

    Hub user ``ana`` runs as system account ``<prefix>ana``; the workspace of team ``acme`` is the
    hub user ``team-acme`` running as ``<prefix>team-acme``, whose primary group
    ``<prefix>team-acme`` is the team group; the Voila of the team's dashboards runs as
    ``<prefix>dash-acme``.
    """

    prefix: str
    mode: SpawnMode
    home_root: Path
    state: StateDir

    @classmethod
    def from_settings(cls, settings: HubSettings) -> Layout:
        return cls(
            prefix=settings.account_prefix,
            mode=settings.spawn_mode,
            home_root=settings.home_root,
            state=StateDir(settings.state_dir),
        )

    def system_user(self, hub_user: str) -> str:
        """System account that runs ``hub_user``'s server."""
        return f"{self.prefix}{hub_user}"

    def team_group(self, team_id: str) -> str:
        """System group whose members may use the team folder."""
        return f"{self.prefix}{WORKSPACE_PREFIX}{team_id}"

    def workspace_user(self, team_id: str) -> str:
        """Hub user owning the team workspace server."""
        return f"{WORKSPACE_PREFIX}{team_id}"

    def dashboard_user(self, team_id: str) -> str:
        """Hub-style name whose system account (``<prefix>dash-<team>``) runs the team's Voila."""
        return f"{DASHBOARD_USER_PREFIX}{team_id}"

    def run_user(self, team_id: str) -> str:
        """Hub-style name whose system account (``<prefix>run-<team>``) runs the team's
        test-bench batches."""
        return f"{RUN_USER_PREFIX}{team_id}"

    def team_runs(self, team_id: str) -> Path:
        """The team's run store, in the team folder (guarded by the team's group)."""
        return self.team_folder(team_id) / TEAM_RUNS_DIR

    def home(self, hub_user: str) -> Path:
        """Home folder of ``hub_user``'s server."""
        if self.mode is SpawnMode.single:
            return self.state.homes / hub_user
        return self.home_root / self.system_user(hub_user)

    def team_folder(self, team_id: str) -> Path:
        return self.state.team_folder(team_id)

    def team_datasets(self, team_id: str) -> Path:
        """Curated builds only this team may read (inside the team folder)."""
        return self.team_folder(team_id) / TEAM_DATASETS_DIR

    def dataset_environment(
        self, teams: Sequence[str], grants: Mapping[str, Iterable[str]]
    ) -> dict[str, str]:
        """What the dataset catalog of a server or dashboard kernel working for ``teams`` needs:
        the teams, the datasets granted to them (``grants``: team id -> dataset ids) and the
        folders of curated builds it may read (the public ones, then each team's own), and the
        teams' folders (whose break-glass logs the server reads: :mod:`smartfab.hub.guard`)."""
        granted = sorted({d for team in teams for d in grants.get(team, ())})
        shared = [self.state.datasets, *(self.team_datasets(team) for team in teams)]
        return {
            TEAMS_ENV: ",".join(teams),
            GRANTS_ENV: ",".join(granted),
            SHARED_DATA_ENV: os.pathsep.join(str(p) for p in shared),
            TEAM_FOLDERS_ENV: os.pathsep.join(f"{t}={self.team_folder(t)}" for t in teams),
        }
