"""Shared fixtures: an isolated Jupyter environment, free loopback ports, and real hubs."""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from smartfab.prctl import PR_SET_CHILD_SUBREAPER, prctl
from tests.support.hubtools import DEMO_ALLIANCE, RunningHub
from tests.support.jupyterdirs import JUPYTER_DIRS, isolated_jupyter_dirs

IS_ROOT = os.geteuid() == 0

#: CI runs as root with chromium installed: there these tests must run, never skip
IN_CI = bool(os.environ.get("CI"))
needs_root = pytest.mark.skipif(
    not IS_ROOT and not IN_CI, reason="system accounts need root (CI runs as root)"
)


@pytest.fixture(scope="session", autouse=True)
def sf_jupyter_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point every Jupyter and IPython directory into a temp dir for the whole session."""
    saved = {name: os.environ.get(name) for name in JUPYTER_DIRS}
    os.environ.update(isolated_jupyter_dirs(tmp_path_factory.mktemp("jupyter-env")))
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def sf_public_tmp() -> Iterator[Path]:
    """A temp dir other system accounts can traverse (pytest's own tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="smartfab-test-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _remove_stale_test_accounts() -> None:
    """Accounts left by a test session that was killed: test prefix and a vanished home."""
    from smartfab.host.accounts import remove_prefixed

    stale = {
        m.group(0)
        for account in pwd.getpwall()
        if (m := re.match(r"^sft[a-z0-9]{3}-", account.pw_name))
        and account.pw_dir.startswith("/tmp/smartfab-test-")
        and not Path(account.pw_dir).exists()
    }
    for prefix in stale:
        remove_prefixed(prefix)


@pytest.fixture(scope="session")
def sf_account_prefixes() -> Iterator[list[str]]:
    """Every account prefix handed out in this session; all their accounts go at the end."""
    prefixes: list[str] = []
    if IS_ROOT:
        _remove_stale_test_accounts()
    yield prefixes
    if IS_ROOT:
        from smartfab.host.accounts import remove_prefixed

        for prefix in prefixes:
            remove_prefixed(prefix)


@pytest.fixture(scope="module")
def sf_account_prefix(sf_account_prefixes: list[str]) -> str:
    """A prefix unique to this test module for the system accounts and groups it creates."""
    prefix = "sft" + secrets.token_hex(2)[:3] + "-"
    sf_account_prefixes.append(prefix)
    return prefix


@pytest.fixture(scope="module")
def sf_hub_factory(
    sf_public_tmp: Path, sf_account_prefix: str
) -> Iterator[Callable[..., RunningHub]]:
    """Make hubs for one test module; at the end every hub is stopped and ``smartfab hub down``
    stops what it left running (proxy, servers), so no test module leaks a process."""
    hubs: list[RunningHub] = []

    def make(
        alliance: Path = DEMO_ALLIANCE,
        spawn_mode: str | None = None,
        extra_args: list[str] | None = None,
        name: str | None = None,
        library: Path | None = None,
    ) -> RunningHub:
        name = name or f"hub{len(hubs)}-{secrets.token_hex(3)}"
        base = sf_public_tmp / name
        base.mkdir()
        base.chmod(0o755)
        hub = RunningHub(
            alliance=alliance,
            state_dir=base / "state",
            home_root=base / "home",
            prefix=sf_account_prefix,
            spawn_mode=spawn_mode or ("system" if IS_ROOT else "single"),
            extra_args=extra_args or [],
            library=library,
        )
        hubs.append(hub)
        return hub

    yield make
    failures = []
    for hub in hubs:
        if hub.proc is not None:
            try:
                hub.stop()  # the launcher if it still runs, then `smartfab hub down`
            except Exception as err:  # the other hubs are stopped all the same
                failures.append(f"{hub.state_dir}: {err}")
    assert not failures, failures


@pytest.fixture
def sf_subreaper() -> Iterator[None]:
    """Make pytest a subreaper for one test: descendants orphaned under test (a killed owner's)
    are adopted by pytest, so the test sees them gone, not zombies, and can reap them by pid."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    yield
    prctl(PR_SET_CHILD_SUBREAPER, 0)
