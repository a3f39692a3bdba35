"""One Voila per team: who runs it, what it serves, what its kernels may read.

A team with dashboards gets its own Voila process, run (in system mode) as the account
``<prefix>dash-<team>``: a member of the team's OS group and of no other team's, so the kernels
of one firm's apps read that firm's curated datasets and nothing of another firm, and never run
as root. Each Voila serves ``<state>/dashboards/voila/<team>/``, which holds copies of the
notebooks of that team's dashboards only (owned by the service, readable by the account).

A viewer's request goes to the Voila of a team that both the viewer belongs to and the
dashboard is granted to (the first such team by id).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
from dataclasses import dataclass, field
from pathlib import Path

from smartfab.atomicfile import write_atomic
from smartfab.dashboards.access import DashboardAccess
from smartfab.dashboards.registry import Dashboard, DashboardCatalog
from smartfab.dashboards.voila import VoilaProcess
from smartfab.errors import DashboardError
from smartfab.host.layout import Layout
from smartfab.host.provision import ensure_dashboard_account
from smartfab.host.runas import RunAs, account_environment, ensure_account_dir, team_account
from smartfab.host.settings import SpawnMode

log = logging.getLogger("smartfab.dashboards")

#: a team's served folder: the service writes, the team's dashboards account reads (setgid:
#: notebooks copied in belong to the account's group)
TEAM_SERVE_MODE = 0o2750

SINGLE_MODE_WARNING = """\
!!! WARNING: single-account mode: ISOLATION IS OFF !!!
Dashboard kernels of every team run as {account}, the hub's own account: one firm's apps can
read every other firm's data. Use this only for development; run the hub as root for
system-account mode, where each team's dashboards run as '<prefix>dash-<team>'."""


def teams_with_dashboards(catalog: DashboardCatalog, access: DashboardAccess) -> list[str]:
    """Teams that may open at least one available dashboard, by id."""
    dashboards = [d for d in catalog.all() if d.available]
    return sorted(
        team.id
        for team in access.alliance.teams
        if any(access.allowed(d, {team.id}) for d in dashboards)
    )


@dataclass
class TeamVoilas:
    """The Voila processes of every team with dashboards, started on demand.

    Parameters
    ----------
    catalog, access:
        Dashboards and the alliance's grants.
    layout:
        Spawn mode, account prefix, homes and team folders of the hub.
    base_url:
        The service's prefix, written by Voila into its pages.
    pool_size:
        Executed kernels each Voila keeps ready per app (the deployment's
        ``dashboard_pool_size``).
    """

    catalog: DashboardCatalog
    access: DashboardAccess
    layout: Layout
    base_url: str
    pool_size: int
    voilas: dict[str, VoilaProcess] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @property
    def root(self) -> Path:
        """``<state>/dashboards/voila``: one served folder per team."""
        return self.catalog.root / "voila"

    def serve_dir(self, team: str) -> Path:
        return self.root / team

    def teams_with_dashboards(self) -> list[str]:
        return teams_with_dashboards(self.catalog, self.access)

    def team_for(self, dashboard: Dashboard, viewer_teams: set[str]) -> str | None:
        """The team whose Voila renders ``dashboard`` for a viewer in ``viewer_teams``."""
        allowed = sorted(t for t in viewer_teams if self.access.allowed(dashboard, {t}))
        return allowed[0] if allowed else None

    def identity(self, team: str) -> RunAs:
        """Ensure the team's account and home (idempotent); who its Voila runs as."""
        home = ensure_dashboard_account(self.layout, team)
        return team_account(self.layout, self.layout.dashboard_user(team), home)

    def sync_team(self, team: str, identity: RunAs) -> None:
        """Copy the notebooks of ``team``'s dashboards into its served folder."""
        folder = self.serve_dir(team)
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)
        folder.mkdir(exist_ok=True)
        os.chown(folder, os.getuid(), identity.gid)
        os.chmod(folder, TEAM_SERVE_MODE)
        for dashboard in self.catalog.all():
            if dashboard.available and self.access.allowed(dashboard, {team}):
                self.served_name(team, dashboard)

    def served_name(self, team: str, dashboard: Dashboard) -> str:
        """The notebook of ``dashboard`` in ``team``'s served folder, copied in when changed."""
        target = self.serve_dir(team) / f"{dashboard.id}.ipynb"
        data = dashboard.notebook.read_bytes()
        if not target.is_file() or target.read_bytes() != data:
            write_atomic(target, data)
        return target.name

    def _start(self, team: str) -> VoilaProcess:
        identity = self.identity(team)
        self.sync_team(team, identity)
        grants = {t.id: t.grants.datasets for t in self.access.alliance.teams}
        # the same view of the datasets as the team's own servers
        env = account_environment(identity, self.layout.dataset_environment([team], grants))
        voila = VoilaProcess(
            serve_dir=self.serve_dir(team),
            base_url=self.base_url,
            pool_size=self.pool_size,
            identity=identity if self.layout.mode is SpawnMode.system else None,
            env=env,
            runtime_dir=Path(env["JUPYTER_RUNTIME_DIR"]),
        )
        ensure_account_dir(Path(env["JUPYTER_RUNTIME_DIR"]), identity)
        voila.start()
        log.info("voila of team %s as %s at %s", team, identity.name, voila.url)
        return voila

    def start_all(self) -> None:
        """Start the Voila of every team with dashboards (at service start)."""
        if self.layout.mode is SpawnMode.single:
            account = pwd.getpwuid(os.getuid()).pw_name
            log.warning(SINGLE_MODE_WARNING.format(account=account))
        for team in self.teams_with_dashboards():
            self.voilas[team] = self._start(team)

    async def voila_for(self, team: str) -> VoilaProcess:
        """The running Voila of ``team``, (re)started if needed (a team's first published app,
        or a Voila that died)."""
        voila = self.voilas.get(team)
        if voila is not None and voila.running:
            return voila
        async with self._lock:
            voila = self.voilas.get(team)
            if voila is None or not voila.running:
                if voila is not None:
                    log.error("voila of team %s exited; starting it again", team)
                voila = await asyncio.to_thread(self._start, team)
                self.voilas[team] = voila
        return voila

    def running(self, team: str) -> VoilaProcess | None:
        voila = self.voilas.get(team)
        return voila if voila is not None and voila.running else None

    def any_running(self) -> VoilaProcess:
        """A Voila to serve shared assets (static files are the same in every one)."""
        for voila in self.voilas.values():
            if voila.running:
                return voila
        raise DashboardError("no dashboards backend is running")

    def stop_all(self) -> None:
        for voila in self.voilas.values():
            voila.stop()
