"""Who a service's child process runs as, and the environment it starts with.

The services run their children (a team's Voila, a team's test-bench batches) as the team's
unprivileged system account in system mode, or as the service's own account in single mode,
and always with an environment built from scratch: nothing of the service's environment (its
hub API token above all) reaches a kernel.
"""

from __future__ import annotations

import os
import pwd
import sys
from dataclasses import dataclass
from pathlib import Path

from smartfab.host.layout import Layout
from smartfab.host.settings import SpawnMode

#: environment variables of a service that its children may keep
PASSED_ENV = ("LANG", "LC_ALL", "TZ", "SMARTFAB_CARDS_DIR", "SMARTFAB_VERIFY")


@dataclass(frozen=True)
class RunAs:
    """The account a child process runs as: ids, supplementary groups, home, login name."""

    uid: int
    gid: int
    groups: list[int]
    home: Path
    name: str = ""

    @classmethod
    def current(cls, home: Path) -> RunAs:
        """The service's own account (single mode: no isolation)."""
        name = pwd.getpwuid(os.getuid()).pw_name
        return cls(os.getuid(), os.getgid(), os.getgroups(), home, name)

    @classmethod
    def account(cls, name: str) -> RunAs:
        """The system account ``name`` as the password database has it."""
        entry = pwd.getpwnam(name)
        return cls(
            uid=entry.pw_uid,
            gid=entry.pw_gid,
            groups=os.getgrouplist(entry.pw_name, entry.pw_gid),
            home=Path(entry.pw_dir),
            name=entry.pw_name,
        )


def team_account(layout: Layout, hub_user: str, home: Path) -> RunAs:
    """Whom a team's service account ``hub_user`` (``dash-<team>``, ``run-<team>``) is on
    this machine: its system account, or the service's own in single mode (home ``home``)."""
    if layout.mode is SpawnMode.single:
        return RunAs.current(home)
    return RunAs.account(layout.system_user(hub_user))


def account_environment(identity: RunAs, extra: dict[str, str]) -> dict[str, str]:
    """The whole environment of a child running as ``identity``: locale and smartfab's own
    switches from the service, the account's home and Jupyter folders, and ``extra``."""
    home = identity.home
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env.update(
        {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
            "HOME": str(home),
            "USER": identity.name,
            "LOGNAME": identity.name,
            "SHELL": "/bin/bash",
            "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
            "JUPYTER_DATA_DIR": str(home / ".local" / "share" / "jupyter"),
            "JUPYTER_RUNTIME_DIR": str(home / ".local" / "share" / "jupyter" / "runtime"),
            "IPYTHONDIR": str(home / ".ipython"),
            "MPLCONFIGDIR": str(home / ".config" / "matplotlib"),
            # public synthetic datasets are built here on first use
            "SMARTFAB_DATA_DIR": str(home / "datasets"),
            **extra,
        }
    )
    return env


def ensure_account_dir(path: Path, identity: RunAs) -> None:
    """Create ``path`` inside the account's home; every level created belongs to the account."""
    missing = [p for p in (path, *path.parents) if p.is_relative_to(identity.home)]
    for folder in reversed(missing):
        if not folder.exists():
            folder.mkdir(mode=0o700)
            os.chown(folder, identity.uid, identity.gid)
