"""GenericOAuthenticator that never logs anyone in as a team workspace."""

from __future__ import annotations

from typing import Any

from oauthenticator.generic import GenericOAuthenticator

from smartfab.hub.authenticator import is_workspace_name


class SmartfabOIDCAuthenticator(GenericOAuthenticator):  # type: ignore[misc]
    """OpenID Connect login; identity-provider accounts named like workspaces are refused."""

    def check_blocked_users(self, username: str, authentication: Any = None) -> bool:
        if is_workspace_name(username):
            return False
        return bool(super().check_blocked_users(username, authentication))
