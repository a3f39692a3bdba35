"""Atomic and private files, secrets, the state directory, hub settings and password accounts."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bcrypt
import pytest

from smartfab.atomicfile import atomic_file, atomic_path
from smartfab.errors import HubError
from smartfab.host.settings import (
    SETTINGS_ENV,
    HubSettings,
    SpawnMode,
    hub_settings,
    load_settings,
)
from smartfab.host.state import SETTINGS_FILE, StateDir, ensure_secret, write_private_file
from smartfab.hub.authenticator import SmartfabAuthenticator
from tests.support.hubtools import DEMO_ALLIANCE


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ------------------------------------------------------------------------ write_private_file


def test_write_private_file_mode(tmp_path: Path) -> None:
    """A new private file has mode 0600 and the given text; parents are created."""
    path = tmp_path / "sub" / "secret.txt"
    write_private_file(path, "hello\n")
    assert path.read_text() == "hello\n"
    assert _mode(path) == 0o600


def test_write_private_file_replaces(tmp_path: Path) -> None:
    """An existing (world-readable) file is replaced by a new 0600 file, not rewritten in place."""
    path = tmp_path / "secret.txt"
    path.write_text("old\n")
    path.chmod(0o644)
    old_inode = path.stat().st_ino
    write_private_file(path, "new\n")
    assert path.read_text() == "new\n"
    assert _mode(path) == 0o600
    assert path.stat().st_ino != old_inode
    assert [p.name for p in tmp_path.iterdir()] == ["secret.txt"]


def test_write_private_file_failure_leaves_nothing(tmp_path: Path) -> None:
    """When writing fails the old file stays as it was and no temp file is left behind."""
    path = tmp_path / "secret.txt"
    path.write_text("old\n")
    with pytest.raises(UnicodeEncodeError):
        write_private_file(path, "bad \udcff surrogate")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["secret.txt"]


def test_private_file_is_private_from_creation(tmp_path: Path) -> None:
    """The temporary file of a private write is 0600 before a byte is written into it."""
    path = tmp_path / "secret.txt"
    with atomic_file(path, mode=0o600) as handle:
        assert stat.S_IMODE(os.fstat(handle.fileno()).st_mode) == 0o600
        assert not path.exists()
        handle.write(b"x")
    assert path.read_bytes() == b"x"


def test_atomic_path_for_a_writer_that_wants_a_path(tmp_path: Path) -> None:
    """A writer gets a hidden path beside the target; the target appears only at the end."""
    target = tmp_path / "data.nc"
    with atomic_path(target, mode=0o644) as temp:
        assert temp.parent == tmp_path and temp.name.startswith(".data.nc.")
        temp.write_bytes(b"new")
        assert not target.exists()
    assert target.read_bytes() == b"new"
    assert _mode(target) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["data.nc"]


def test_atomic_path_failure_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "data.nc"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as temp:
        temp.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.nc"]


# ------------------------------------------------------------------------------ ensure_secret


def test_ensure_secret_created_and_reused(tmp_path: Path) -> None:
    """A secret is created as 0600 hex on first use and returned unchanged afterwards."""
    path = tmp_path / "cookie"
    value = ensure_secret(path)
    assert len(value) == 64
    int(value, 16)
    assert _mode(path) == 0o600
    assert path.read_text().strip() == value
    assert ensure_secret(path) == value


def test_ensure_secret_refuses_open_file(tmp_path: Path) -> None:
    """A secret file readable by others is refused with its path and mode."""
    path = tmp_path / "cookie"
    path.write_text("abc\n")
    path.chmod(0o644)
    with pytest.raises(HubError) as info:
        ensure_secret(path)
    assert str(path) in str(info.value)
    assert "644" in str(info.value)
    assert path.read_text() == "abc\n"


# ---------------------------------------------------------------------------------- StateDir


def test_state_dir_ensure(tmp_path: Path) -> None:
    """ensure() creates the layout with its modes and three 0600 secrets, idempotently."""
    state = StateDir(tmp_path / "state")
    state.ensure()
    assert _mode(state.root) == 0o711
    assert _mode(state.teams) == 0o711
    assert _mode(state.passwords) == 0o700
    secrets = (state.cookie_secret, state.proxy_token, state.status_token)
    values = [p.read_text() for p in secrets]
    for path in secrets:
        assert _mode(path) == 0o600
    assert len(set(values)) == 3
    state.root.chmod(0o755)
    state.ensure()
    assert _mode(state.root) == 0o711
    assert [p.read_text() for p in secrets] == values


# ------------------------------------------------------------------------------- HubSettings


@pytest.fixture
def sf_settings(tmp_path: Path) -> HubSettings:
    """Settings with a few non-default values, state in tmp_path."""
    return HubSettings(
        alliance_file=DEMO_ALLIANCE,
        state_dir=tmp_path / "state",
        proxy_command=["chp", "--x"],
        port=9000,
        spawn_mode=SpawnMode.single,
        db_url="postgresql://hub@db/hub",
    )


def test_settings_round_trip(sf_settings: HubSettings) -> None:
    """save() writes a 0600 file that load_settings reads back equal."""
    path = sf_settings.save()
    assert path == sf_settings.state_dir / SETTINGS_FILE
    assert _mode(path) == 0o600
    assert load_settings(path) == sf_settings


def test_settings_from_env(sf_settings: HubSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a path, load_settings reads the file named by $SMARTFAB_HUB_SETTINGS."""
    monkeypatch.setenv(SETTINGS_ENV, str(sf_settings.save()))
    assert load_settings() == sf_settings


def _bad_settings(tmp_path: Path, text: str | None) -> Path:
    path = tmp_path / "hub-settings.json"
    if text is not None:
        path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (None, "not found"),
        ("{not json", "invalid hub settings"),
        (json.dumps({"alliance_file": "a", "state_dir": "s", "colour": 1}), "colour"),
    ],
    ids=["missing", "invalid-json", "unknown-field"],
)
def test_load_settings_errors(tmp_path: Path, text: str | None, fragment: str) -> None:
    """A missing, unparsable or unknown-field settings file is a HubError naming the file."""
    path = _bad_settings(tmp_path, text)
    with pytest.raises(HubError) as info:
        load_settings(path)
    assert str(path) in str(info.value)
    assert fragment in str(info.value)


def test_load_settings_directory(tmp_path: Path) -> None:
    """A settings path that is a directory is a HubError too, not a raw OSError."""
    with pytest.raises(HubError) as info:
        load_settings(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_load_settings_without_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a path and without $SMARTFAB_HUB_SETTINGS the error names the variable."""
    monkeypatch.delenv(SETTINGS_ENV, raising=False)
    with pytest.raises(HubError, match=SETTINGS_ENV):
        load_settings()


@pytest.mark.parametrize(
    ("values", "option"),
    [
        ({"account_prefix": "BAD"}, "--account-prefix"),
        ({"port": 0}, "--port"),
        ({"idle_timeout": 5}, "--idle-timeout"),
        ({"dashboard_pool_size": -1}, "--dashboard-pool-size"),
        ({"allowed_failed_logins": 0}, "--max-failed-logins"),
    ],
)
def test_hub_settings_bad_values(tmp_path: Path, values: dict[str, Any], option: str) -> None:
    """A bad command-line value is a HubError naming the option and the value."""
    with pytest.raises(HubError) as info:
        hub_settings(alliance_file=DEMO_ALLIANCE, state_dir=tmp_path, **values)
    message = str(info.value)
    assert f"{option}: " in message
    assert repr(next(iter(values.values()))) in message


# ----------------------------------------------------------------------- password accounts


@pytest.fixture
def sf_auth(tmp_path: Path) -> Iterator[SmartfabAuthenticator]:
    """A SmartfabAuthenticator on a fresh in-memory hub database; no hub is started."""
    from jupyterhub import orm

    db = orm.new_session_factory("sqlite://")()
    auth = SmartfabAuthenticator(
        db=db, password_dir=str(tmp_path / "pw"), provisioned_users={"ana", "bob"}
    )
    yield auth
    db.close()


def test_provision_account(sf_auth: SmartfabAuthenticator) -> None:
    """The password file is 0600 and the stored bcrypt hash verifies the written password."""
    path = sf_auth.provision_account("ana")
    assert path == Path(sf_auth.password_dir) / "ana"
    assert _mode(path) == 0o600
    password = path.read_text().strip()
    assert len(password) >= 12
    info = sf_auth.get_user("ana")
    assert info is not None
    assert info.is_authorized
    assert info.password.startswith(b"$2")
    assert bcrypt.checkpw(password.encode(), info.password)
    assert not bcrypt.checkpw(b"wrong password", info.password)


def test_add_user_provisions_once(sf_auth: SmartfabAuthenticator) -> None:
    """add_user provisions a listed name once; a second call keeps the password file."""
    user = SimpleNamespace(name="ana")
    asyncio.run(sf_auth.add_user(user))
    path = Path(sf_auth.password_dir) / "ana"
    first = path.read_text()
    inode = path.stat().st_ino
    info = sf_auth.get_user("ana")
    assert info is not None
    assert bcrypt.checkpw(first.strip().encode(), info.password)
    asyncio.run(sf_auth.add_user(user))
    assert path.read_text() == first
    assert path.stat().st_ino == inode


def test_add_user_not_provisioned(sf_auth: SmartfabAuthenticator) -> None:
    """add_user for a name not in provisioned_users creates no account."""
    asyncio.run(sf_auth.add_user(SimpleNamespace(name="zed")))
    assert sf_auth.get_user("zed") is None
    assert not (Path(sf_auth.password_dir) / "zed").exists()


def test_workspace_names_blocked(sf_auth: SmartfabAuthenticator) -> None:
    """Workspace names never log in and cannot be signed up; people can."""
    assert sf_auth.check_blocked_users("team-acme") is False
    assert sf_auth.check_blocked_users("ana") is True
    assert sf_auth.create_user("team-x", "a-long-enough-passphrase-123") is None
    assert sf_auth.get_user("team-x") is None
    created = sf_auth.create_user("zed", "a-long-enough-passphrase-123")
    assert created is not None
    assert sf_auth.get_user("zed") is not None
