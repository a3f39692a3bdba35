"""The ``dashboards`` service as the hub starts it: its definition, the role of its viewers,
the check of the alliance file's grants and the accounts it needs before the hub starts.

The hub names its services in :mod:`smartfab.hub.services`, which reads them here; this package
knows nothing of the hub beyond the deployment (:mod:`smartfab.host`): the service reads the
same settings file as the hub.
"""

from __future__ import annotations

from typing import Any

from smartfab.alliance import Alliance
from smartfab.dashboards.access import SERVICE_NAME, DashboardAccess, access_role
from smartfab.dashboards.backends import teams_with_dashboards
from smartfab.dashboards.checks import dashboard_references
from smartfab.dashboards.registry import DashboardCatalog
from smartfab.host.layout import Layout
from smartfab.host.managed import managed_service
from smartfab.host.provision import ensure_dashboard_account
from smartfab.host.settings import HubSettings

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
    """Managed service ``dashboards`` (see :func:`smartfab.host.managed.managed_service`)."""
    return managed_service(SERVICE_NAME, "smartfab.dashboards.service", settings)


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
