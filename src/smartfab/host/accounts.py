"""Idempotent ``ensure_*`` steps for system accounts, groups and folders (system-account mode).

Each hub user runs their server as the system account ``<prefix><name>``. Each team has a group
``<prefix>team-<id>`` which is also the primary group of the account that runs the team workspace,
and a folder owned by that account and group with mode ``2770``: the kernel, not smartfab, stops
anyone outside the group from reading or writing it.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from smartfab.errors import ProvisioningError

TEAM_FOLDER_MODE = 0o2770
HOME_MODE = 0o700


def _run(cmd: list[str]) -> None:
    if os.geteuid() != 0:
        raise ProvisioningError(f"{cmd[0]} needs root: system-account mode runs the hub as root")
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    except FileNotFoundError as err:
        raise ProvisioningError(f"{cmd[0]} not found: install the 'passwd' package") from err
    except subprocess.CalledProcessError as err:
        detail = (err.stderr or err.stdout).strip()
        raise ProvisioningError(f"{' '.join(cmd)} failed: {detail}") from err


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def ensure_group(name: str) -> int:
    """Create the system group ``name`` if missing; return its gid."""
    if not group_exists(name):
        _run(["groupadd", name])
    return grp.getgrnam(name).gr_gid


def ensure_user(name: str, home: Path, primary_group: str | None = None) -> pwd.struct_passwd:
    """Create the system account ``name`` (no password, no login) with a private home.

    ``primary_group`` must exist; without it the account gets its own user group.
    """
    if not user_exists(name):
        cmd = ["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/bash"]
        cmd += ["--gid", primary_group] if primary_group else ["--user-group"]
        _run([*cmd, name])
    account = pwd.getpwnam(name)
    ensure_private_dir(Path(account.pw_dir), account.pw_uid, account.pw_gid, HOME_MODE)
    return account


def ensure_private_dir(path: Path, uid: int, gid: int, mode: int) -> None:
    """Create ``path`` if needed and set its owner and mode."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def managed_groups(user: str, prefix: str) -> set[str]:
    """Team groups (``<prefix>team-*``) that ``user`` is a supplementary member of."""
    team_prefix = f"{prefix}team-"
    return {
        g.gr_name for g in grp.getgrall() if g.gr_name.startswith(team_prefix) and user in g.gr_mem
    }


def ensure_team_groups(user: str, wanted: set[str], prefix: str) -> bool:
    """Make ``user``'s team groups exactly ``wanted``, keeping groups smartfab does not manage.

    Returns True when membership changed.
    """
    current = managed_groups(user, prefix)
    if current == wanted:
        return False
    team_prefix = f"{prefix}team-"
    others = {g.gr_name for g in grp.getgrall() if user in g.gr_mem}
    others = {g for g in others if not g.startswith(team_prefix)}
    _run(["usermod", "-G", ",".join(sorted(others | wanted)), user])
    return True


def ensure_team_folder(path: Path, owner: str, group: str) -> None:
    """Create the team folder owned by ``owner:group`` with mode 2770 (setgid: new files stay in
    the team group)."""
    account = pwd.getpwnam(owner)
    gid = grp.getgrnam(group).gr_gid
    ensure_private_dir(path, account.pw_uid, gid, TEAM_FOLDER_MODE)


def ensure_link(link: Path, target: Path) -> None:
    """Make ``link`` a symlink to ``target`` (replacing a wrong link, never a real file)."""
    if link.is_symlink():
        if Path(os.readlink(link)) == target:
            return
        link.unlink()
    elif link.exists():
        raise ProvisioningError(f"{link} exists and is not a link; move it away to see {target}")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)


def remove_user(name: str, home: Path | None = None) -> None:
    """Delete the account ``name`` (and ``home`` if given); missing accounts are ignored."""
    if user_exists(name):
        _run(["userdel", name])
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


def remove_group(name: str) -> None:
    """Delete the group ``name``; a missing group is ignored."""
    if group_exists(name):
        _run(["groupdel", name])


def remove_prefixed(prefix: str) -> list[str]:
    """Delete every account and group whose name starts with ``prefix``; return their names.

    Used to undo a test or demo installation that ran with its own account prefix.
    """
    removed: list[str] = []
    for account in pwd.getpwall():
        if account.pw_name.startswith(prefix):
            remove_user(account.pw_name)
            removed.append(account.pw_name)
    for group in grp.getgrall():
        if group.gr_name.startswith(prefix):
            remove_group(group.gr_name)
            removed.append(group.gr_name)
    return removed
