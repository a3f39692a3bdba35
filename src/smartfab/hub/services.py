"""The services the hub starts and manages beside itself: the one module that names them.

* ``idle-culler``: jupyterhub-idle-culler, stopping idle servers;
* ``smartfab-status``: an API token only, for ``smartfab hub status``;
* ``dashboards``: the teams' Voila apps (:mod:`smartfab.dashboards`, read through
  :mod:`smartfab.dashboards.hubservice`);
* ``testbench``: programs under test, batches run as each team's run account, their reports
  (:mod:`smartfab.testbench`, read through :mod:`smartfab.testbench.hubservice`).

For each: its JupyterHub definition, its roles, the ids the alliance file's grants may name
(:func:`grant_references`), and what must exist before the hub starts
(:func:`prepare_services`). This is the only module of the hub that imports a service package,
and no service package imports the hub: a service reads the deployment's settings file
(:mod:`smartfab.host.settings`) like the hub does.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from smartfab.alliance import Alliance, load_alliance
from smartfab.alliance.checks import GrantReferences
from smartfab.dashboards import hubservice as dashboards
from smartfab.host.settings import HubSettings
from smartfab.testbench import hubservice as testbench

IDLE_CULLER = "idle-culler"
STATUS_SERVICE = "smartfab-status"


def service_definitions(settings: HubSettings, status_token: str) -> list[dict[str, Any]]:
    """JupyterHub's ``services``: the managed idle culler, the API-only status service used by
    ``smartfab hub status``, the dashboards and the test bench."""
    return [
        {
            "name": IDLE_CULLER,
            "command": [
                sys.executable,
                "-m",
                "jupyterhub_idle_culler",
                f"--timeout={settings.idle_timeout}",
            ],
        },
        {"name": STATUS_SERVICE, "api_token": status_token},
        dashboards.dashboards_service(settings),
        testbench.testbench_service(settings),
    ]


def service_roles(alliance: Alliance) -> list[dict[str, Any]]:
    """Least privileges for the managed services, and the roles that let the alliance's teams
    and viewers open the dashboards and the test bench."""
    return [
        {
            "name": IDLE_CULLER,
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": [IDLE_CULLER],
        },
        {
            "name": STATUS_SERVICE,
            "scopes": ["list:users", "read:users", "read:servers", "list:groups", "read:groups"],
            "services": [STATUS_SERVICE],
        },
        dashboards.access_role(alliance),
        testbench.access_role(alliance),
    ]


#: what JupyterHub gives a server's API token by default (its role ``server``)
DEFAULT_SERVER_SCOPES = ["users:activity!user", "access:servers!server"]


def server_token_scopes() -> list[str]:
    """The scopes of each single-user server's ``$JUPYTERHUB_API_TOKEN``: the default ones,
    and using the test bench (``smartfab programs submit`` from a member's terminal); the hub
    grants only those its owner holds."""
    return [*DEFAULT_SERVER_SCOPES, *testbench.server_scopes()]


def server_environment(settings: HubSettings) -> dict[str, str]:
    """Environment of every single-user server: where the services are."""
    return testbench.server_environment(settings)


def no_confirm_clients() -> list[str]:
    """OAuth clients of services that people use without an "authorize access" page."""
    return [dashboards.oauth_client(), testbench.oauth_client()]


def grant_references(state_dir: Path | None = None) -> list[GrantReferences]:
    """What the alliance file's grants may name: the curated datasets, the dashboards
    (curated, or published in ``state_dir``) and the programs (of the library, or registered in
    ``state_dir``)."""
    from smartfab.datasets.cards import load_cards
    from smartfab.datasets.catalog import default_cards_dir
    from smartfab.host.state import StateDir
    from smartfab.programs.library import curated_programs
    from smartfab.programs.registry import ProgramRegistry

    datasets = frozenset(load_cards(default_cards_dir()))
    programs = set(curated_programs())
    if state_dir is not None:
        programs |= set(ProgramRegistry(StateDir(state_dir).programs).ids())
    return [
        GrantReferences(kind="datasets", noun="dataset", known=datasets),
        dashboards.dashboard_references(state_dir),
        GrantReferences(kind="programs", noun="program", known=frozenset(programs)),
    ]


def load_checked_alliance(alliance_file: Path, state_dir: Path | None = None) -> Alliance:
    """The alliance file, with every problem reported at once: its fields, the rules between
    them, and grants of datasets or dashboards that do not exist. Raises AllianceError."""
    return load_alliance(alliance_file, grant_references(state_dir))


def prepare_services(settings: HubSettings, alliance: Alliance) -> None:
    """Before the hub starts: the system accounts the services run their children as."""
    dashboards.ensure_dashboard_accounts(settings, alliance)
    testbench.ensure_run_accounts(settings, alliance)
