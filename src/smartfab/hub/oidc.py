"""Single sign-on for firms through a generic OpenID Connect identity provider.

Used by ``hub/oidc_config.py``: it replaces the password accounts with OAuthenticator's
``GenericOAuthenticator``; the alliance file still decides who may log in and who is an admin.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from traitlets.config import Config

from smartfab.alliance import Alliance
from smartfab.errors import HubError

OIDC_ENV_PREFIX = "SMARTFAB_OIDC_"


class OIDCSettings(BaseModel):
    """Endpoints and client credentials registered with the identity provider."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1)
    authorize_url: str = Field(pattern=r"^https?://")
    token_url: str = Field(pattern=r"^https?://")
    userinfo_url: str = Field(pattern=r"^https?://")
    callback_url: str = Field(pattern=r"^https?://.*/hub/oauth_callback$")
    username_claim: str = "preferred_username"
    scope: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> OIDCSettings:
        """Read ``SMARTFAB_OIDC_CLIENT_ID`` and friends; name every missing or bad variable."""
        env = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = env.get(OIDC_ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = raw.split() if name == "scope" else raw
        try:
            return cls(**values)
        except ValidationError as err:
            problems = "; ".join(
                f"{OIDC_ENV_PREFIX}{str(e['loc'][0]).upper()}: {e['msg']}" for e in err.errors()
            )
            raise HubError(f"invalid OIDC settings: {problems}") from None


def set_oidc(c: Config, oidc: OIDCSettings, alliance: Alliance) -> None:
    """Log in through the identity provider; only people of the alliance file are allowed."""
    c.JupyterHub.authenticator_class = "smartfab.hub.oidc_authenticator.SmartfabOIDCAuthenticator"
    section = c.SmartfabOIDCAuthenticator
    section.client_id = oidc.client_id
    section.client_secret = oidc.client_secret
    section.authorize_url = oidc.authorize_url
    section.token_url = oidc.token_url
    section.userdata_url = oidc.userinfo_url
    section.oauth_callback_url = oidc.callback_url
    section.username_claim = oidc.username_claim
    section.scope = list(oidc.scope)
    section.allowed_users = {p.name for p in alliance.people}
    section.admin_users = set(alliance.admins)
    # the password authenticator lets everyone it knows in; an identity provider knows too many
    c.Authenticator.allow_all = False
    section.allow_all = False
