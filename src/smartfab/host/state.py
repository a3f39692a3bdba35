"""The state directory of a deployment: settings, database, secrets, initial passwords, team
folders, pid and run files."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartfab.atomicfile import write_atomic
from smartfab.errors import HubError

#: the settings file of the deployment (see :mod:`smartfab.host.settings`)
SETTINGS_FILE = "hub-settings.json"


def default_state_dir() -> Path:
    """``/var/lib/smartfab`` for root, else the user's data directory."""
    if os.geteuid() == 0:
        return Path("/var/lib/smartfab")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "smartfab"


def write_private_file(path: Path, text: str, mode: int = 0o600) -> None:
    """Atomically replace ``path`` with ``text`` (UTF-8), creating its folder if needed.

    The file has exactly ``mode`` and never exists with wider permissions, not even while it is
    written (see :mod:`smartfab.atomicfile`).
    """
    data = text.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, mode=mode)


def ensure_secret(path: Path, nbytes: int = 32) -> str:
    """Return the hex secret stored at ``path``, creating it (mode 0600) on first use.

    A secret file readable by others is refused rather than silently reused.
    """
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise HubError(f"{path}: secret file has mode {oct(mode)}; it must be 0600")
        value = path.read_text().strip()
        if value:
            return value
    value = secrets.token_hex(nbytes)
    write_private_file(path, value + "\n")
    return value


@dataclass(frozen=True)
class StateDir:
    """Paths inside a hub state directory.

    The directory itself is ``0711``: system accounts may pass through it to reach their team
    folders, but cannot list it; secrets inside are ``0600``.
    """

    root: Path

    @property
    def settings_file(self) -> Path:
        """The deployment's settings, written by ``smartfab hub up`` (mode 0600)."""
        return self.root / SETTINGS_FILE

    @property
    def teams(self) -> Path:
        return self.root / "teams"

    @property
    def datasets(self) -> Path:
        """Curated public dataset builds, readable by every account."""
        return self.root / "datasets"

    @property
    def programs(self) -> Path:
        """The program registry (see :mod:`smartfab.programs.registry`)."""
        return self.root / "programs"

    @property
    def homes(self) -> Path:
        """Per-user home folders in single-account mode."""
        return self.root / "homes"

    @property
    def passwords(self) -> Path:
        """Initial passwords, one 0600 file per provisioned account."""
        return self.root / "initial-passwords"

    @property
    def cookie_secret(self) -> Path:
        return self.root / "jupyterhub_cookie_secret"

    @property
    def proxy_token(self) -> Path:
        return self.root / "proxy-auth-token"

    @property
    def status_token(self) -> Path:
        """API token of the ``smartfab-status`` service used by ``smartfab hub status``."""
        return self.root / "status-service-token"

    @property
    def proxy_pid(self) -> Path:
        """Written by the proxy itself while it runs (``--pid-file``), removed when it exits."""
        return self.root / "proxy.pid"

    @property
    def proxy_log(self) -> Path:
        """What the proxy prints: it outlives ``smartfab hub up`` and the terminal it ran in."""
        return self.root / "proxy.log"

    @property
    def servers(self) -> Path:
        """The registry of running single-user servers: one file per server, named by its pid
        (see :class:`smartfab.hub.processes.ServerRegistry`); ``smartfab hub down`` stops them."""
        return self.root / "servers"

    @property
    def run_file(self) -> Path:
        """Written while ``smartfab hub up`` runs: its pid, the hub's pid, URL and mode."""
        return self.root / "hub-run.json"

    def team_folder(self, team_id: str) -> Path:
        return self.teams / team_id

    def ensure(self) -> None:
        """Create the directory layout and secrets (idempotent)."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o711)
        self.teams.mkdir(exist_ok=True)
        os.chmod(self.teams, 0o711)
        self.passwords.mkdir(exist_ok=True)
        os.chmod(self.passwords, 0o700)
        self.datasets.mkdir(exist_ok=True)
        os.chmod(self.datasets, 0o755)
        for secret in (self.cookie_secret, self.proxy_token, self.status_token):
            ensure_secret(secret)

    def read_run_file(self) -> dict[str, Any] | None:
        """Contents of the run file, or None when no hub was started here."""
        try:
            data: dict[str, Any] = json.loads(self.run_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return data
