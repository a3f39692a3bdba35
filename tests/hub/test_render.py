"""Set-only rendering of the alliance and the hub into a bare traitlets Config."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from traitlets.config import Config

from smartfab.alliance import Alliance, TeamRole, load_alliance
from smartfab.alliance.render import (
    BASE_USER_SCOPES,
    SERVER_ROLE,
    WORKSPACE_OWNER_ROLE,
    render_alliance,
    set_accounts,
    set_admins,
    set_groups,
    set_roles,
    set_team_ids,
)
from smartfab.host.settings import SETTINGS_ENV, HubSettings, SpawnMode
from smartfab.host.state import StateDir
from smartfab.hub import config as hub_config
from smartfab.hub import services as hub_services
from tests.support.hubtools import DEMO_ALLIANCE


@pytest.fixture(scope="module")
def sf_alliance() -> Alliance:
    """The demo alliance."""
    return load_alliance(DEMO_ALLIANCE)


@pytest.fixture
def sf_settings(tmp_path: Path) -> HubSettings:
    """Hub settings whose state lives in tmp_path (non-default ports to see them taken)."""
    return HubSettings(
        alliance_file=DEMO_ALLIANCE,
        state_dir=tmp_path / "state",
        proxy_command=["chp"],
        port=8123,
        hub_port=8124,
        proxy_api_port=8125,
        spawn_mode=SpawnMode.single,
        idle_timeout=900,
        dashboard_pool_size=3,
        allowed_failed_logins=7,
        seconds_before_next_try=42,
        python_bin=Path("/opt/py/bin"),
    )


def _roles(c: Config) -> dict[str, dict[str, Any]]:
    roles: list[dict[str, Any]] = c.JupyterHub.load_roles
    by_name = {role["name"]: role for role in roles}
    assert len(by_name) == len(roles), "role names must be unique"
    return by_name


# ------------------------------------------------------------------------------------- groups


def test_groups_per_team(sf_alliance: Alliance) -> None:
    """One group per team holds exactly its leads and members, one '-viewers' its viewers."""
    c = Config()
    set_groups(c, sf_alliance)
    groups = c.JupyterHub.load_groups
    assert set(groups) == {t.id for t in sf_alliance.teams} | {
        f"{t.id}-viewers" for t in sf_alliance.teams
    }
    assert groups["acme-machining"]["users"] == ["anna", "ben"]
    assert groups["acme-machining-viewers"]["users"] == ["carl"]
    assert groups["voltronic"]["users"] == ["vera"]
    assert groups["voltronic-viewers"]["users"] == ["wim"]
    assert groups["spindle-health"]["users"] == ["ben", "lena", "sam"]
    assert groups["spindle-health-viewers"]["users"] == []
    for team in sf_alliance.teams:
        assert groups[team.id]["users"] == team.names_with(TeamRole.lead, TeamRole.member)


def test_group_properties(sf_alliance: Alliance) -> None:
    """Group properties carry the team's kind, title, partners and grants."""
    c = Config()
    set_groups(c, sf_alliance)
    props = c.JupyterHub.load_groups["spindle-health"]["properties"]
    assert props == {
        "kind": "project",
        "title": "Joint project on spindle health (ACME Machining + Tool Wear Lab)",
        "partners": ["acme-machining", "tu-wear-lab"],
        "datasets": ["bearing-run-to-failure", "spindle-thermal"],
        "dashboards": ["machine-health"],
        "programs": [],
    }
    voltronic = c.JupyterHub.load_groups["voltronic"]["properties"]
    assert voltronic["programs"] == ["bearing-fault-detector"]
    viewers = c.JupyterHub.load_groups["acme-machining-viewers"]["properties"]
    assert viewers["viewers_of"] == "acme-machining"
    assert viewers["kind"] == "firm"
    assert viewers["dashboards"] == ["machine-health", "tool-life"]


# -------------------------------------------------------------------------------------- roles


def test_user_role_is_reduced(sf_alliance: Alliance) -> None:
    """The default 'user' role only reads oneself: no 'self', no servers, no tokens."""
    c = Config()
    set_roles(c, sf_alliance)
    scopes = _roles(c)["user"]["scopes"]
    assert scopes == BASE_USER_SCOPES
    assert "self" not in scopes
    assert not any("servers" in s or "tokens" in s for s in scopes)


def test_server_role_goes_to_workers_and_admins(sf_alliance: Alliance) -> None:
    """'smartfab-server' (self) goes to every team group and the admins, never to viewers."""
    c = Config()
    set_groups(c, sf_alliance)
    set_roles(c, sf_alliance)
    role = _roles(c)[SERVER_ROLE]
    assert role["scopes"] == ["self"]
    assert sorted(role["groups"]) == sorted(t.id for t in sf_alliance.teams)
    assert role["users"] == ["olga"]
    groups = c.JupyterHub.load_groups
    with_server = set(role["users"]).union(*(groups[g]["users"] for g in role["groups"]))
    assert with_server == set(sf_alliance.server_owners)
    assert "carl" not in with_server
    assert "wim" not in with_server


def test_workspace_and_lead_roles(sf_alliance: Alliance) -> None:
    """Per team: 'workspace-<id>' for the group <id>, 'lead-<id>' for exactly the leads."""
    c = Config()
    set_roles(c, sf_alliance)
    roles = _roles(c)
    for team in sf_alliance.teams:
        workspace = roles[f"workspace-{team.id}"]
        assert f"access:servers!user=team-{team.id}" in workspace["scopes"]
        assert f"servers!user=team-{team.id}" in workspace["scopes"]
        assert workspace["groups"] == [team.id]
        assert "users" not in workspace
        lead = roles[f"lead-{team.id}"]
        assert f"groups!group={team.id}" in lead["scopes"]
        assert f"groups!group={team.id}-viewers" in lead["scopes"]
        assert lead["users"] == team.names_with(TeamRole.lead)
        assert "groups" not in lead
    assert roles["lead-spindle-health"]["users"] == ["lena"]
    assert roles["lead-acme-machining"]["users"] == ["anna"]


def test_workspace_owner_role(sf_alliance: Alliance) -> None:
    """Workspace owner users hold a role with no scopes at all."""
    c = Config()
    set_roles(c, sf_alliance)
    role = _roles(c)[WORKSPACE_OWNER_ROLE]
    assert role["scopes"] == []
    assert role["users"] == [f"team-{t.id}" for t in sf_alliance.teams]


def test_service_roles_appended(sf_alliance: Alliance) -> None:
    """Service roles passed in come after the alliance's roles."""
    c = Config()
    extra = [{"name": "svc", "scopes": ["list:users"], "services": ["svc"]}]
    set_roles(c, sf_alliance, extra)
    roles = c.JupyterHub.load_roles
    assert roles[-1] == extra[0]
    assert len(roles) == 3 + 2 * len(sf_alliance.teams) + 1


# ----------------------------------------------------------------------- admins and accounts


def test_admins_accounts_team_ids(sf_alliance: Alliance) -> None:
    """Admins, provisioned accounts and team ids come from the alliance."""
    c = Config()
    set_admins(c, sf_alliance)
    set_accounts(c, sf_alliance)
    set_team_ids(c, sf_alliance)
    assert c.Authenticator.admin_users == {"olga"}
    assert c.SmartfabAuthenticator.provisioned_users == {p.name for p in sf_alliance.people}
    assert len(c.SmartfabAuthenticator.provisioned_users) == 9
    assert c.SmartfabSpawner.team_ids == [
        "acme-machining",
        "voltronic",
        "tu-wear-lab",
        "iot-lab",
        "spindle-health",
    ]


def test_render_alliance_sets_everything(sf_alliance: Alliance) -> None:
    """render_alliance sets groups, roles (with service roles), admins, accounts, team ids."""
    c = Config()
    render_alliance(c, sf_alliance, [{"name": "svc", "scopes": []}])
    assert set(c.JupyterHub) == {"load_groups", "load_roles", "tornado_settings"}
    assert len(c.JupyterHub.load_groups) == 10
    assert c.JupyterHub.load_roles[-1]["name"] == "svc"
    assert c.Authenticator.admin_users == {"olga"}
    assert "anna" in c.SmartfabAuthenticator.provisioned_users
    assert len(c.SmartfabSpawner.team_ids) == 5


# -------------------------------------------------------------------------------- hub config


def test_set_network(sf_settings: HubSettings) -> None:
    """Public bind URL from the settings; hub API and proxy API on loopback."""
    c = Config()
    hub_config.set_network(c, sf_settings)
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8123/"
    assert c.JupyterHub.hub_bind_url == "http://127.0.0.1:8124"
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8125"


def test_set_state_sqlite_default(sf_settings: HubSettings, tmp_path: Path) -> None:
    """Without a db_url the database is SQLite in the state directory."""
    c = Config()
    hub_config.set_state(c, sf_settings)
    state = tmp_path / "state"
    assert c.JupyterHub.db_url == f"sqlite:///{state / 'jupyterhub.sqlite'}"
    assert c.JupyterHub.cookie_secret_file == str(state / "jupyterhub_cookie_secret")
    assert c.JupyterHub.pid_file == str(state / "jupyterhub.pid")
    assert c.ConfigurableHTTPProxy.pid_file == str(state / "proxy.pid")


def test_set_state_postgres(sf_settings: HubSettings) -> None:
    """A PostgreSQL db_url passes through unchanged."""
    url = "postgresql://hub:pw@db.example:5432/jupyterhub"
    c = Config()
    hub_config.set_state(c, sf_settings.model_copy(update={"db_url": url}))
    assert c.JupyterHub.db_url == url


def test_set_proxy(sf_settings: HubSettings) -> None:
    """The hub uses configurable-http-proxy with the token; the launcher runs it (so that it
    outlives a restart of the hub), and the hub leaves servers and proxy running when it stops."""
    c = Config()
    hub_config.set_proxy(c, sf_settings, "tok123")
    hub_config.set_restartable(c)
    assert c.JupyterHub.proxy_class == "configurable-http-proxy"
    assert c.ConfigurableHTTPProxy.should_start is False
    assert c.JupyterHub.cleanup_servers is False
    assert c.JupyterHub.cleanup_proxy is False
    assert c.ConfigurableHTTPProxy.command == ["chp"]
    assert c.ConfigurableHTTPProxy.auth_token == "tok123"


def test_set_authenticator(sf_settings: HubSettings, tmp_path: Path) -> None:
    """Password accounts: sign-up needs approval, throttling values from the settings."""
    c = Config()
    hub_config.set_authenticator(c, sf_settings)
    auth = c.SmartfabAuthenticator
    assert c.JupyterHub.authenticator_class == "smartfab.hub.authenticator.SmartfabAuthenticator"
    assert auth.enable_signup is True
    assert auth.open_signup is False
    assert auth.allowed_failed_logins == 7
    assert auth.seconds_before_next_try == 42
    assert auth.password_dir == str(tmp_path / "state" / "initial-passwords")
    assert auth.minimum_password_length >= 10


def test_set_spawner(sf_settings: HubSettings, tmp_path: Path) -> None:
    """SmartfabSpawner in the settings' mode, jupyterhub-singleuser from python_bin, /lab."""
    c = Config()
    hub_config.set_spawner(c, sf_settings)
    assert c.JupyterHub.spawner_class == "smartfab.hub.spawner.SmartfabSpawner"
    assert c.SmartfabSpawner.spawn_mode == "single"
    assert c.SmartfabSpawner.account_prefix == "sf-"
    assert c.SmartfabSpawner.state_dir == str(tmp_path / "state")
    assert c.Spawner.cmd == ["/opt/py/bin/jupyterhub-singleuser"]
    assert c.Spawner.default_url == "/lab"
    # a server's token may use the test bench, whose address its environment gives
    assert "access:services!service=testbench" in c.Spawner.server_token_scopes
    assert "access:servers!server" in c.Spawner.server_token_scopes
    assert c.Spawner.environment == {
        "SMARTFAB_TESTBENCH_URL": f"{sf_settings.url}services/testbench/"
    }


def test_services(sf_settings: HubSettings, sf_alliance: Alliance) -> None:
    """The idle culler gets the configured timeout and only the scopes it needs; the dashboards
    and test bench services are pointed at the settings file (never handed settings as
    options)."""
    services = {s["name"]: s for s in hub_services.service_definitions(sf_settings, "st0k")}
    culler = services[hub_services.IDLE_CULLER]
    assert culler["command"][0] == sys.executable
    assert "--timeout=900" in culler["command"]
    assert services[hub_services.STATUS_SERVICE]["api_token"] == "st0k"
    roles = {r["name"]: r for r in hub_services.service_roles(sf_alliance)}
    culler_role = roles[hub_services.IDLE_CULLER]
    assert sorted(culler_role["scopes"]) == sorted(
        ["list:users", "read:users:activity", "read:servers", "delete:servers"]
    )
    assert culler_role["services"] == [hub_services.IDLE_CULLER]
    status_role = roles[hub_services.STATUS_SERVICE]
    assert status_role["services"] == [hub_services.STATUS_SERVICE]
    assert not any(s.startswith(("admin", "delete", "servers")) for s in status_role["scopes"])
    assert "access:services!service=dashboards" in roles["dashboards-viewer"]["scopes"]
    dashboards = services["dashboards"]
    assert dashboards["command"] == [sys.executable, "-m", "smartfab.dashboards.service"]
    settings_file = sf_settings.state_dir / "hub-settings.json"
    assert dashboards["environment"][SETTINGS_ENV] == str(settings_file)
    # the test bench likewise: its own module, the settings file, no options, no consent page
    testbench = services["testbench"]
    assert testbench["command"] == [sys.executable, "-m", "smartfab.testbench.service"]
    assert testbench["environment"][SETTINGS_ENV] == str(settings_file)
    assert "access:services!service=testbench" in roles["testbench-user"]["scopes"]
    assert roles["testbench-user"]["groups"] == roles["dashboards-viewer"]["groups"]
    assert hub_services.no_confirm_clients() == ["service-dashboards", "service-testbench"]


def test_apply_hub_config(sf_settings: HubSettings, sf_alliance: Alliance) -> None:
    """apply_hub_config reads the tokens from an ensured state dir and sets every concern."""
    state = StateDir(sf_settings.state_dir)
    state.ensure()
    c = Config()
    hub_config.apply_hub_config(c, sf_settings, sf_alliance)
    assert c.ConfigurableHTTPProxy.auth_token == state.proxy_token.read_text().strip()
    status = [s for s in c.JupyterHub.services if s["name"] == hub_services.STATUS_SERVICE]
    assert status[0]["api_token"] == state.status_token.read_text().strip()
    assert c.JupyterHub.default_url is hub_config.landing_url
    assert c.JupyterHub.template_vars["announcement_login"] == sf_alliance.alliance.name
    roles = _roles(c)
    assert {hub_services.IDLE_CULLER, hub_services.STATUS_SERVICE, SERVER_ROLE} <= set(roles)
    assert c.JupyterHub.bind_url == "http://127.0.0.1:8123/"
    assert c.Authenticator.admin_users == {"olga"}
    assert len(c.JupyterHub.load_groups) == 10


# ------------------------------------------------------------------------------- landing URL


def _handler(user: Any) -> Any:
    return SimpleNamespace(current_user=user, hub=SimpleNamespace(base_url="/hub/"))


def _user(name: str, admin: bool = False) -> Any:
    return SimpleNamespace(name=name, admin=admin, orm_user=name)


@pytest.fixture
def sf_roles_of(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Role names per (fake) orm user, served by a patched jupyterhub.roles.get_roles_for."""
    import jupyterhub.roles

    table: dict[str, list[str]] = {}

    def get_roles_for(orm_user: str) -> list[Any]:
        return [SimpleNamespace(name=name) for name in table.get(orm_user, [])]

    monkeypatch.setattr(jupyterhub.roles, "get_roles_for", get_roles_for)
    return table


def test_landing_url(sf_roles_of: dict[str, list[str]]) -> None:
    """Admins and holders of the server role land on their server, others on /hub/home."""
    sf_roles_of.update(
        {"olga": ["user"], "ben": ["user", SERVER_ROLE], "carl": ["user", "workspace-acme"]}
    )
    assert hub_config.landing_url(_handler(_user("olga", admin=True))) == ""
    assert hub_config.landing_url(_handler(_user("ben"))) == ""
    assert hub_config.landing_url(_handler(_user("carl"))) == "/hub/home"
    assert hub_config.landing_url(_handler(_user("nobody"))) == "/hub/home"
    assert hub_config.landing_url(_handler(None)) == ""


def test_team_workspaces_skip_the_consent_page(sf_alliance: Alliance) -> None:
    """Only the team workspaces' OAuth clients skip JupyterHub's authorize page."""
    from smartfab.alliance.render import set_workspace_consent

    c = Config()
    set_workspace_consent(c, sf_alliance)
    assert c.JupyterHub.tornado_settings["oauth_no_confirm_list"] == {
        f"jupyterhub-user-team-{t.id}" for t in sf_alliance.teams
    }


def test_set_pages(sf_alliance: Alliance) -> None:
    """Our templates come first; the home page gets the team titles by group."""
    c = Config()
    hub_config.set_pages(c, sf_alliance)
    assert Path(c.JupyterHub.template_paths[0], "home.html").is_file()
    variables = c.JupyterHub.template_vars
    assert variables["smartfab_team_titles"]["voltronic"].startswith("Voltronic")
    assert variables["smartfab_viewer_groups"]["voltronic-viewers"].startswith("Voltronic")
    assert c.JupyterHub.default_url is hub_config.landing_url
