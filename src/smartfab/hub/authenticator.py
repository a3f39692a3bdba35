"""Password accounts: hashed by NativeAuthenticator, provisioned from the alliance file."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import bcrypt
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.handlers import LoginHandler as NativeLoginHandler
from nativeauthenticator.orm import UserInfo
from traitlets import Set, Unicode

from smartfab.host.names import WORKSPACE_PREFIX
from smartfab.host.state import write_private_file


def is_workspace_name(username: str) -> bool:
    """Team workspaces are server owners, never people who log in."""
    return username.startswith(WORKSPACE_PREFIX)


def new_password() -> str:
    """A fresh random password (about 96 bits)."""
    return secrets.token_urlsafe(12)


class _NoTimer:
    """Stands in for the statsd timer JupyterHub 6 no longer gives handlers."""

    def start(self) -> _NoTimer:
        return self

    def stop(self, send: bool = True) -> None:
        return None


class _NoStats:
    def timer(self, name: str) -> _NoTimer:
        return _NoTimer()


class SmartfabLoginHandler(NativeLoginHandler):  # type: ignore[misc]
    """NativeAuthenticator 1.3's login form on JupyterHub 6.

    Its ``post`` still times logins with ``self.statsd``, which JupyterHub 6 removed from
    handlers; everything else is unchanged.
    """

    statsd = _NoStats()


class SmartfabAuthenticator(NativeAuthenticator):  # type: ignore[misc]
    """NativeAuthenticator that creates the alliance's accounts on hub start.

    Each provisioned account without a password gets a random one, hashed with bcrypt in the hub
    database and written once, in clear, to ``<password_dir>/<name>`` (mode 0600) for the
    operator to hand over. Self sign-up stays possible but needs an admin's approval, and
    repeated failed logins are throttled by NativeAuthenticator.
    """

    provisioned_users = Set(
        Unicode(), help="Hub user names (from the alliance file) that get a password account."
    ).tag(config=True)
    password_dir = Unicode(
        help="Directory (mode 0700) where initial passwords are written, one 0600 file each."
    ).tag(config=True)

    def get_handlers(self, app: Any) -> list[tuple[str, Any]]:
        handlers: list[tuple[str, Any]] = super().get_handlers(app)
        return [
            (route, SmartfabLoginHandler if handler is NativeLoginHandler else handler)
            for route, handler in handlers
        ]

    def check_blocked_users(self, username: str, authentication: Any = None) -> bool:
        if is_workspace_name(username):
            return False
        return bool(super().check_blocked_users(username, authentication))

    def create_user(self, username: str, password: str, **kwargs: Any) -> Any:
        # sign-up must never claim a workspace name; the hub itself creates those users
        if is_workspace_name(self.normalize_username(username)):
            return None
        return super().create_user(username, password, **kwargs)

    async def authenticate(self, handler: Any, data: dict[str, str]) -> str | None:
        """NativeAuthenticator's check, with the bcrypt comparison off the event loop.

        bcrypt takes about 0.2 s by design; on the hub's event loop twenty people logging in
        at once would freeze every other request for four seconds. Throttling and two-factor
        checks behave exactly as in NativeAuthenticator.
        """
        username = self.normalize_username(data["username"])
        info = self.get_user(username)
        if info is None:
            return None
        if self.allowed_failed_logins and self.is_blocked(username):
            return None
        valid = await asyncio.to_thread(
            bcrypt.checkpw, data.get("password", "").encode(), bytes(info.password)
        )
        checks = [bool(info.is_authorized), valid]
        if info.has_2fa:
            checks.append(bool(info.is_valid_token(data.get("2fa"))))
        if all(checks):
            self.successful_login(username)
            return str(username)
        self.add_login_attempt(username)
        return None

    async def add_user(self, user: Any) -> None:
        await _maybe_await(super().add_user(user))
        if user.name in self.provisioned_users and self.get_user(user.name) is None:
            self.provision_account(user.name)

    def provision_account(self, username: str) -> Path:
        """Give ``username`` a random password; return the file it was written to."""
        password = new_password()
        path = Path(self.password_dir) / username
        # the file first: an account whose password nobody knows would be useless
        write_private_file(path, password + "\n")
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt())
        self.db.add(UserInfo(username=username, password=hashed, is_authorized=True))
        self.db.commit()
        self.log.info("Provisioned account %s; initial password in %s", username, path)
        return path


async def _maybe_await(value: Any) -> Any:
    if hasattr(value, "__await__"):
        return await value
    return value
