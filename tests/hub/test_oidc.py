"""Single sign-on through OpenID Connect: settings, config, authenticator, example file."""

from __future__ import annotations

from pathlib import Path

import pytest
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from smartfab.alliance import Alliance, load_alliance
from smartfab.errors import HubError
from smartfab.host.settings import SETTINGS_ENV, HubSettings
from smartfab.host.state import StateDir
from smartfab.hub.oidc import OIDCSettings, set_oidc
from smartfab.hub.oidc_authenticator import SmartfabOIDCAuthenticator
from tests.support.hubtools import DEMO_ALLIANCE, ROOT

OIDC_AUTHENTICATOR = "smartfab.hub.oidc_authenticator.SmartfabOIDCAuthenticator"

ENV = {
    "SMARTFAB_OIDC_CLIENT_ID": "smartfab",
    "SMARTFAB_OIDC_CLIENT_SECRET": "s3cret",
    "SMARTFAB_OIDC_AUTHORIZE_URL": "https://idp.example/auth",
    "SMARTFAB_OIDC_TOKEN_URL": "https://idp.example/token",
    "SMARTFAB_OIDC_USERINFO_URL": "https://idp.example/userinfo",
    "SMARTFAB_OIDC_CALLBACK_URL": "https://hub.example/hub/oauth_callback",
}
REQUIRED = sorted(ENV)


@pytest.fixture(scope="module")
def sf_alliance() -> Alliance:
    """The demo alliance."""
    return load_alliance(DEMO_ALLIANCE)


@pytest.fixture
def sf_oidc_config(sf_alliance: Alliance) -> Config:
    """A bare Config with only the OIDC settings of the demo alliance applied."""
    c = Config()
    set_oidc(c, OIDCSettings.from_env(ENV), sf_alliance)
    return c


# ---------------------------------------------------------------------------- OIDCSettings


def test_from_env_full() -> None:
    """Every SMARTFAB_OIDC_* variable lands in its field; scope is split on whitespace."""
    env = {
        **ENV,
        "SMARTFAB_OIDC_USERNAME_CLAIM": "email",
        "SMARTFAB_OIDC_SCOPE": "openid  email",
        "UNRELATED": "x",
    }
    oidc = OIDCSettings.from_env(env)
    assert oidc.client_id == "smartfab"
    assert oidc.client_secret == "s3cret"
    assert oidc.authorize_url == "https://idp.example/auth"
    assert oidc.token_url == "https://idp.example/token"
    assert oidc.userinfo_url == "https://idp.example/userinfo"
    assert oidc.callback_url == "https://hub.example/hub/oauth_callback"
    assert oidc.username_claim == "email"
    assert oidc.scope == ["openid", "email"]


def test_from_env_defaults() -> None:
    """Claim and scope have defaults when their variables are unset."""
    oidc = OIDCSettings.from_env(ENV)
    assert oidc.username_claim == "preferred_username"
    assert oidc.scope == ["openid", "profile", "email"]


def test_from_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit mapping the process environment is read."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert OIDCSettings.from_env().client_id == "smartfab"


@pytest.mark.parametrize(
    "missing", [REQUIRED, ["SMARTFAB_OIDC_CLIENT_SECRET"], ["SMARTFAB_OIDC_TOKEN_URL"]]
)
def test_from_env_missing(missing: list[str]) -> None:
    """Each missing variable is named in one HubError; present ones are not."""
    env = {k: v for k, v in ENV.items() if k not in missing}
    with pytest.raises(HubError) as info:
        OIDCSettings.from_env(env)
    message = str(info.value)
    for name in REQUIRED:
        assert (name in message) == (name in missing), message


@pytest.mark.parametrize(
    "url",
    [
        "https://hub.example/oauth_callback",
        "https://hub.example/hub/oauth_callback/",
        "ftp://hub.example/hub/oauth_callback",
    ],
)
def test_callback_url_refused(url: str) -> None:
    """A callback URL not ending in /hub/oauth_callback is refused, naming its variable."""
    with pytest.raises(HubError, match="SMARTFAB_OIDC_CALLBACK_URL"):
        OIDCSettings.from_env({**ENV, "SMARTFAB_OIDC_CALLBACK_URL": url})


# --------------------------------------------------------------------------------- set_oidc


#: what the OIDC settings of the fixture must turn into, on the Config and on the authenticator
EXPECTED_CLIENT = {
    "client_id": "smartfab",
    "client_secret": "s3cret",
    "authorize_url": "https://idp.example/auth",
    "token_url": "https://idp.example/token",
    "userdata_url": "https://idp.example/userinfo",
    "oauth_callback_url": "https://hub.example/hub/oauth_callback",
    "username_claim": "preferred_username",
    "scope": ["openid", "profile", "email"],
}


def test_set_oidc(sf_oidc_config: Config, sf_alliance: Alliance) -> None:
    """set_oidc selects the authenticator, the client, the alliance's people and admins."""
    c = sf_oidc_config
    section = c.SmartfabOIDCAuthenticator
    assert c.JupyterHub.authenticator_class == OIDC_AUTHENTICATOR
    assert {key: section[key] for key in EXPECTED_CLIENT} == EXPECTED_CLIENT
    assert section.allowed_users == {p.name for p in sf_alliance.people}
    assert len(section.allowed_users) == 9
    assert section.admin_users == {"olga"}
    assert section.allow_all is False
    assert c.Authenticator.allow_all is False


def test_authenticator_takes_config(sf_oidc_config: Config) -> None:
    """The OIDC authenticator built from the Config carries the configured values."""
    auth = SmartfabOIDCAuthenticator(config=sf_oidc_config)
    assert {key: getattr(auth, key) for key in EXPECTED_CLIENT} == EXPECTED_CLIENT
    assert "ben" in auth.allowed_users
    assert auth.admin_users == {"olga"}
    assert auth.allow_all is False


def test_authenticator_blocks_workspaces(sf_oidc_config: Config) -> None:
    """Identity-provider accounts named like a workspace are blocked; people are not."""
    auth = SmartfabOIDCAuthenticator(config=sf_oidc_config)
    assert auth.check_blocked_users("team-acme-machining") is False
    assert auth.check_blocked_users("ben") is True


def test_authenticator_keeps_block_list(sf_oidc_config: Config) -> None:
    """The configured block list still applies to people."""
    sf_oidc_config.SmartfabOIDCAuthenticator.blocked_users = {"ben"}
    auth = SmartfabOIDCAuthenticator(config=sf_oidc_config)
    assert auth.check_blocked_users("ben") is False
    assert auth.check_blocked_users("anna") is True


# ---------------------------------------------------------------------- the example file


def test_example_oidc_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """hub/oidc_config.py loads: OIDC authenticator, alliance groups, no allow-all."""
    state = StateDir(tmp_path / "state")
    state.ensure()
    settings = HubSettings(alliance_file=DEMO_ALLIANCE, state_dir=state.root, proxy_command=["chp"])
    monkeypatch.setenv(SETTINGS_ENV, str(settings.save()))
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    c = PyFileConfigLoader("oidc_config.py", path=str(ROOT / "hub")).load_config()
    assert c.JupyterHub.authenticator_class == OIDC_AUTHENTICATOR
    assert c.SmartfabOIDCAuthenticator.client_id == "smartfab"
    assert c.SmartfabOIDCAuthenticator.admin_users == {"olga"}
    assert c.Authenticator.allow_all is False
    groups = c.JupyterHub.load_groups
    assert groups["acme-machining"]["users"] == ["anna", "ben"]
    assert groups["acme-machining-viewers"]["users"] == ["carl"]
    assert len(groups) == 10
    assert c.ConfigurableHTTPProxy.auth_token == state.proxy_token.read_text().strip()


def test_example_oidc_config_needs_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the SMARTFAB_OIDC_* variables the example file fails with a HubError."""
    state = StateDir(tmp_path / "state")
    state.ensure()
    settings = HubSettings(alliance_file=DEMO_ALLIANCE, state_dir=state.root, proxy_command=["chp"])
    monkeypatch.setenv(SETTINGS_ENV, str(settings.save()))
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(HubError, match="SMARTFAB_OIDC_CLIENT_ID"):
        PyFileConfigLoader("oidc_config.py", path=str(ROOT / "hub")).load_config()
