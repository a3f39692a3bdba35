"""The ``testbench`` service as the hub starts it: its definition, the role of its users, and
the run accounts it needs before the hub starts.

The hub names its services in :mod:`smartfab.hub.services`, which reads them here.
"""

from __future__ import annotations

from typing import Any

from smartfab.alliance import Alliance
from smartfab.host.layout import Layout
from smartfab.host.managed import managed_service
from smartfab.host.provision import ensure_run_account
from smartfab.host.settings import HubSettings
from smartfab.testbench.access import SERVICE_NAME, access_role
from smartfab.testbench.client import URL_ENV

__all__ = [
    "SERVICE_NAME",
    "access_role",
    "ensure_run_accounts",
    "oauth_client",
    "server_environment",
    "server_scopes",
    "testbench_service",
]


def oauth_client() -> str:
    """The OAuth client of the service, which people use without an "authorize" page."""
    return f"service-{SERVICE_NAME}"


def testbench_service(settings: HubSettings) -> dict[str, Any]:
    """Managed service ``testbench`` (see :func:`smartfab.host.managed.managed_service`)."""
    return managed_service(SERVICE_NAME, "smartfab.testbench.service", settings)


def server_environment(settings: HubSettings) -> dict[str, str]:
    """What each single-user server needs to reach the test bench from a terminal (with its
    own API token, see :func:`server_scopes`)."""
    return {URL_ENV: f"{settings.url}services/{SERVICE_NAME}/"}


def server_scopes() -> list[str]:
    """What a server's API token may do on the test bench: use it as its owner."""
    return [f"access:services!service={SERVICE_NAME}"]


def ensure_run_accounts(settings: HubSettings, alliance: Alliance) -> None:
    """At hub start: the run account of every team (idempotent)."""
    layout = Layout.from_settings(settings)
    for team in alliance.teams:
        ensure_run_account(layout, team.id)
