"""The settings of one deployment: one object, one file, read by every process of the hub.

``smartfab hub up`` builds :class:`HubSettings` from its options and writes them to the state
directory (``<state>/hub-settings.json``, mode 0600, :meth:`HubSettings.save`); the JupyterHub
process and the services it starts find that file through ``$SMARTFAB_HUB_SETTINGS`` and read
it with :func:`load_settings`. No process is handed the settings as command-line options.
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from smartfab.errors import HubError
from smartfab.host.state import StateDir, write_private_file

#: environment variable naming the settings file, for the hub process and its services
SETTINGS_ENV = "SMARTFAB_HUB_SETTINGS"
#: the alliance file of the commands when none is given (relative to the working directory)
DEFAULT_ALLIANCE_FILE = Path("hub/alliance.yaml")


class SpawnMode(StrEnum):
    """How single-user servers are isolated from each other."""

    #: each hub user runs as their own system account; team folders are guarded by OS groups
    system = "system"
    #: every server runs as the account that runs the hub; no isolation (development only)
    single = "single"


def default_spawn_mode() -> SpawnMode:
    """System accounts when running as root, one shared account otherwise."""
    return SpawnMode.system if os.geteuid() == 0 else SpawnMode.single


class HubSettings(BaseModel):
    """Everything the hub process needs beyond the alliance file.

    Written by ``smartfab hub up`` to ``<state_dir>/hub-settings.json`` (mode 0600) and read by
    :func:`smartfab.hub.config.configure_hub` inside JupyterHub and by the ``dashboards``
    service. Each default here is the only one: the command-line options take theirs from it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    alliance_file: Path
    state_dir: Path
    ip: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    hub_port: int = Field(default=8081, ge=1, le=65535)
    proxy_api_port: int = Field(default=8001, ge=1, le=65535)
    spawn_mode: SpawnMode = Field(default_factory=default_spawn_mode)
    account_prefix: str = Field(default="sf-", pattern=r"^[a-z][a-z0-9]{0,5}-$")
    home_root: Path = Path("/home")
    proxy_command: list[str] = Field(default_factory=list)
    python_bin: Path = Field(default_factory=lambda: Path(sys.executable).parent)
    db_url: str = ""
    fork_server: bool = Field(
        default=True, description="fork servers from a warm process instead of starting each anew"
    )
    idle_timeout: int = Field(default=3600, ge=60, description="seconds before idle servers stop")
    dashboard_pool_size: int = Field(
        default=2,
        ge=0,
        le=16,
        description="executed kernels kept ready per dashboard app and team (0: none)",
    )
    testbench_db_url: str = Field(
        default="", description="database of the test bench's queue (default: SQLite in the state)"
    )
    testbench_runs: int = Field(
        default_factory=lambda: os.cpu_count() or 2,
        ge=1,
        le=1024,
        description="program runs at once on the test bench, every team together",
    )
    testbench_team_runs: int = Field(
        default=2, ge=1, le=1024, description="program runs at once on the test bench per team"
    )
    allowed_failed_logins: int = Field(default=5, ge=1)
    seconds_before_next_try: int = Field(default=300, ge=1)

    @property
    def url(self) -> str:
        """Public URL of the hub."""
        host = "127.0.0.1" if self.ip in ("", "0.0.0.0") else self.ip
        return f"http://{host}:{self.port}/"

    @property
    def database_url(self) -> str:
        """SQLite in the state directory unless a database URL (PostgreSQL) was given."""
        return self.db_url or f"sqlite:///{self.state_dir / 'jupyterhub.sqlite'}"

    @property
    def testbench_database_url(self) -> str:
        """The test bench's queue: SQLite in the state directory unless a URL was given."""
        return self.testbench_db_url or f"sqlite:///{self.state_dir / 'testbench' / 'queue.sqlite'}"

    @property
    def settings_file(self) -> Path:
        """Where :meth:`save` writes the settings: ``<state_dir>/hub-settings.json``."""
        return StateDir(self.state_dir).settings_file

    def save(self) -> Path:
        """Write the settings to the state directory (mode 0600) and return the path."""
        write_private_file(self.settings_file, self.model_dump_json(indent=2))
        return self.settings_file


#: command-line options whose names differ from the settings field they fill
_OPTION_NAMES = {
    "alliance_file": "--config",
    "allowed_failed_logins": "--max-failed-logins",
    "seconds_before_next_try": "--lockout-seconds",
}


def _option(field_name: str) -> str:
    return _OPTION_NAMES.get(field_name, "--" + field_name.replace("_", "-"))


def hub_settings(**values: Any) -> HubSettings:
    """Build settings from command-line values; a bad value is a HubError naming the option."""
    try:
        return HubSettings(**values)
    except ValidationError as err:
        problems = "; ".join(
            f"{_option(str(e['loc'][0]))}: {e['msg']} (got {e.get('input')!r})"
            for e in err.errors()
        )
        raise HubError(f"invalid hub settings: {problems}") from None


def load_settings(path: Path | str | None = None) -> HubSettings:
    """Read settings written by :meth:`HubSettings.save`.

    ``path`` defaults to the file named by ``$SMARTFAB_HUB_SETTINGS``.
    """
    if path is None:
        env = os.environ.get(SETTINGS_ENV)
        if not env:
            raise HubError(
                f"{SETTINGS_ENV} is not set: start the hub with 'smartfab hub up', "
                "which writes the settings and points JupyterHub at them"
            )
        path = env
    path = Path(path)
    try:
        return HubSettings.model_validate(json.loads(path.read_text()))
    except FileNotFoundError:
        raise HubError(f"{path}: hub settings not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise HubError(f"{path}: cannot read hub settings: {err}") from err
    except (json.JSONDecodeError, ValidationError) as err:
        raise HubError(f"{path}: invalid hub settings: {err}") from err
