"""The ``dashboards`` service as the hub starts it: its definition, the role of its viewers,
the check of the alliance file's grants and the accounts it needs before the hub starts.

The hub names its services in :mod:`smartfab.hub.services`, which reads them here; this package
knows nothing of the hub beyond the deployment (:mod:`smartfab.host`): the service reads the
same settings file as the hub.
"""

from __future__ import annotations

import sys
from typing import Any

from smartfab.alliance import Alliance
from smartfab.dashboards.access import SERVICE_NAME, DashboardAccess, access_role
from smartfab.dashboards.backends import teams_with_dashboards
from smartfab.dashboards.checks import dashboard_references
from smartfab.dashboards.registry import DashboardCatalog
from smartfab.dashboards.voila import free_loopback_port
from smartfab.host.layout import Layout
from smartfab.host.provision import ensure_dashboard_account
from smartfab.host.settings import SETTINGS_ENV, HubSettings
from smartfab.resources import LIBRARY_ENV, library_dir

__all__ = [
    "SERVICE_NAME",
    "access_role",
    "dashboard_references",
    "dashboards_service",
    "ensure_dashboard_accounts",
    "oauth_client",
]


def oauth_client() -> str:
    """The OAuth client of the service, which viewers use without an "authorize" page."""
    return f"service-{SERVICE_NAME}"


def dashboards_service(settings: HubSettings) -> dict[str, Any]:
    """Managed service ``dashboards`` on a free loopback port, behind the hub's OAuth.

    Viewers skip the "authorize access" page: the service is the alliance's own, and access to
    it comes from roles rendered from the alliance file. The service finds the deployment's
    settings through ``$SMARTFAB_HUB_SETTINGS`` and the alliance library the hub uses through
    ``$SMARTFAB_LIBRARY_DIR`` (JupyterHub gives a service none of the hub's environment).
    """
    private = settings.state_dir / "dashboards"
    return {
        "name": SERVICE_NAME,
        "url": f"http://127.0.0.1:{free_loopback_port()}",
        "command": [sys.executable, "-m", "smartfab.dashboards.service"],
        "oauth_no_confirm": True,
        "display": True,
        "environment": {
            SETTINGS_ENV: str(settings.settings_file),
            # the curated apps installed with smartfab, wherever the alliance file is
            LIBRARY_ENV: str(library_dir()),
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
