"""The ``dashboards`` service as JupyterHub sees it: its definition, started by the hub."""

from __future__ import annotations

import sys
from typing import Any

from smartfab.alliance import Alliance
from smartfab.dashboards.access import SERVICE_NAME, DashboardAccess
from smartfab.dashboards.backends import teams_with_dashboards
from smartfab.dashboards.registry import DashboardCatalog, curated_registry
from smartfab.dashboards.voila import free_loopback_port
from smartfab.hub.layout import Layout
from smartfab.hub.provision import ensure_dashboard_account
from smartfab.hub.settings import HubSettings


def dashboards_service(settings: HubSettings) -> dict[str, Any]:
    """Managed service ``dashboards`` on a free loopback port, behind the hub's OAuth.

    Viewers skip the "authorize access" page: the service is the alliance's own, and access to
    it comes from roles rendered from the alliance file.
    """
    state = settings.state_dir
    private = state / "dashboards"
    command = [
        sys.executable, "-m", "smartfab.dashboards.service",
        "--alliance", str(settings.alliance_file),
        "--state-dir", str(state),
        "--pool-size", str(settings.dashboard_pool_size),
        "--spawn-mode", settings.spawn_mode.value,
        "--account-prefix", settings.account_prefix,
        "--home-root", str(settings.home_root),
        # the curated apps installed with smartfab, wherever the alliance file is
        "--registry", str(curated_registry()),
    ]  # fmt: skip
    return {
        "name": SERVICE_NAME,
        "url": f"http://127.0.0.1:{free_loopback_port()}",
        "command": command,
        "oauth_no_confirm": True,
        "display": True,
        "environment": {
            # Voila and its kernels keep their Jupyter files apart from any person's
            "JUPYTER_CONFIG_DIR": str(private / "jupyter-config"),
            "JUPYTER_RUNTIME_DIR": str(private / "jupyter-runtime"),
            "IPYTHONDIR": str(private / "ipython"),
            "HOME": str(private),
        },
    }


def ensure_dashboard_accounts(settings: HubSettings, alliance: Alliance) -> list[str]:
    """At hub start: the account of every team with dashboards (idempotent); returns the teams.

    The service also ensures the account of a team whose first app is published later.
    """
    catalog = DashboardCatalog.for_hub(settings.state_dir)
    teams = teams_with_dashboards(catalog, DashboardAccess(alliance))
    layout = Layout.from_settings(settings)
    for team in teams:
        ensure_dashboard_account(layout, team)
    return teams
