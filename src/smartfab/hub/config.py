"""JupyterHub configuration of the alliance hub, as small set-only functions.

``hub/jupyterhub_config.py`` calls :func:`configure_hub`; every other function sets one concern
on a bare traitlets ``Config`` and is unit-tested that way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from traitlets.config import Config

from smartfab.alliance import Alliance, load_alliance
from smartfab.alliance.render import SERVER_ROLE, render_alliance
from smartfab.host.settings import HubSettings, load_settings
from smartfab.host.state import StateDir
from smartfab.hub.services import (
    no_confirm_clients,
    server_environment,
    server_token_scopes,
    service_definitions,
    service_roles,
)


def set_network(c: Config, settings: HubSettings) -> None:
    """Public proxy address, the hub's internal API, and the proxy's REST API (loopback)."""
    c.JupyterHub.bind_url = f"http://{settings.ip}:{settings.port}/"
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{settings.hub_port}"
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.proxy_api_port}"


def set_state(c: Config, settings: HubSettings) -> None:
    """Database, cookie secret and pid files live in the state directory."""
    state = StateDir(settings.state_dir)
    c.JupyterHub.db_url = settings.database_url
    c.JupyterHub.cookie_secret_file = str(state.cookie_secret)
    c.ConfigurableHTTPProxy.pid_file = str(state.proxy_pid)
    c.JupyterHub.pid_file = str(settings.state_dir / "jupyterhub.pid")


def set_proxy(c: Config, settings: HubSettings, proxy_token: str) -> None:
    """The locally installed configurable-http-proxy, run by ``smartfab hub up`` (not by the
    hub, so that it outlives a restart of the hub: :mod:`smartfab.hub.proxy`)."""
    c.JupyterHub.proxy_class = "configurable-http-proxy"
    c.ConfigurableHTTPProxy.should_start = False
    c.ConfigurableHTTPProxy.command = list(settings.proxy_command)
    c.ConfigurableHTTPProxy.auth_token = proxy_token


def set_restartable(c: Config) -> None:
    """Stopping the hub leaves the proxy and the single-user servers running: the next
    ``smartfab hub up`` finds them again, ``smartfab hub down`` stops them."""
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.cleanup_proxy = False


def set_authenticator(c: Config, settings: HubSettings) -> None:
    """Hashed per-user passwords; sign-up needs admin approval; failed logins are throttled."""
    c.JupyterHub.authenticator_class = "smartfab.hub.authenticator.SmartfabAuthenticator"
    c.SmartfabAuthenticator.password_dir = str(StateDir(settings.state_dir).passwords)
    c.SmartfabAuthenticator.enable_signup = True
    c.SmartfabAuthenticator.open_signup = False
    c.SmartfabAuthenticator.minimum_password_length = 10
    c.SmartfabAuthenticator.check_common_password = True
    c.SmartfabAuthenticator.allowed_failed_logins = settings.allowed_failed_logins
    c.SmartfabAuthenticator.seconds_before_next_try = settings.seconds_before_next_try
    # only accounts NativeAuthenticator knows (provisioned or approved) can authenticate at all
    c.Authenticator.allow_all = True


def set_spawner(c: Config, settings: HubSettings) -> None:
    """JupyterLab (with real-time collaboration) as each user's own system account."""
    c.JupyterHub.spawner_class = "smartfab.hub.spawner.SmartfabSpawner"
    c.SmartfabSpawner.spawn_mode = settings.spawn_mode.value
    c.SmartfabSpawner.account_prefix = settings.account_prefix
    c.SmartfabSpawner.home_root = str(settings.home_root)
    c.SmartfabSpawner.state_dir = str(settings.state_dir)
    c.SmartfabSpawner.use_fork_server = settings.fork_server
    c.Spawner.cmd = [str(settings.python_bin / "jupyterhub-singleuser")]
    c.Spawner.default_url = "/lab"
    c.Spawner.server_token_scopes = server_token_scopes()
    c.Spawner.environment = server_environment(settings)
    c.Spawner.start_timeout = 120
    c.Spawner.http_timeout = 90


def landing_url(handler: Any) -> str:
    """After login: people with a server go to it, everyone else to the hub home page."""
    from jupyterhub.roles import get_roles_for

    user = handler.current_user
    if user is None:
        return ""
    # scopes of a user who is just logging in are not expanded yet: look at their roles
    if user.admin or any(role.name == SERVER_ROLE for role in get_roles_for(user.orm_user)):
        return ""
    return str(handler.hub.base_url) + "home"


TEMPLATES = Path(__file__).with_name("templates")


def set_pages(c: Config, alliance: Alliance) -> None:
    """Landing page per user, the alliance's name, and a home page that fits viewers."""
    c.JupyterHub.default_url = landing_url
    c.JupyterHub.template_paths = [str(TEMPLATES)]
    c.JupyterHub.template_vars = {
        "announcement_login": alliance.alliance.name,
        "smartfab_alliance": alliance.alliance.name,
        "smartfab_team_titles": {team.id: team.title for team in alliance.teams},
        "smartfab_viewer_groups": {team.viewers_group: team.title for team in alliance.teams},
    }


def set_services(c: Config, settings: HubSettings, status_token: str) -> None:
    """The managed services (see :mod:`smartfab.hub.services`)."""
    c.JupyterHub.services = service_definitions(settings, status_token)


def apply_hub_config(c: Config, settings: HubSettings, alliance: Alliance) -> None:
    """Set every smartfab concern on ``c`` from ``settings`` and the ``alliance``."""
    state = StateDir(settings.state_dir)
    set_network(c, settings)
    set_state(c, settings)
    set_proxy(c, settings, state.proxy_token.read_text().strip())
    set_restartable(c)
    set_authenticator(c, settings)
    set_spawner(c, settings)
    set_pages(c, alliance)
    set_services(c, settings, state.status_token.read_text().strip())
    render_alliance(c, alliance, service_roles(alliance), no_confirm_services=no_confirm_clients())


def configure_hub(c: Config) -> None:
    """Entry point for ``jupyterhub_config.py``: settings from ``$SMARTFAB_HUB_SETTINGS``."""
    settings = load_settings()
    apply_hub_config(c, settings, load_alliance(settings.alliance_file))
