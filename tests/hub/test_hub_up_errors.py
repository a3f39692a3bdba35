"""`smartfab hub up` refuses bad input before starting anything, naming what is wrong."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from smartfab.errors import HubError
from smartfab.host.settings import HubSettings, SpawnMode
from smartfab.host.state import default_state_dir
from smartfab.hub import launcher
from tests.support.hubtools import DEMO_ALLIANCE, ROOT, SMARTFAB, free_ports


def _hub_up(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    port, hub_port, api_port = free_ports(3)
    base = [
        SMARTFAB, "hub", "up",
        "--state-dir", str(tmp_path / "state"),
        "--home-root", str(tmp_path / "home"),
        "--account-prefix", "sfe-",
        "--port", str(port), "--hub-port", str(hub_port), "--proxy-api-port", str(api_port),
    ]  # fmt: skip
    return subprocess.run(
        [*base, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def test_bad_alliance_file_starts_nothing(tmp_path: Path) -> None:
    """An invalid alliance file exits 2 with the problems and writes no state at all."""
    bad = tmp_path / "alliance.yaml"
    bad.write_text(DEMO_ALLIANCE.read_text().replace("ben: member", "ben: boss", 1))
    done = _hub_up(tmp_path, "--config", str(bad))
    assert done.returncode == 2
    assert f"{bad}:" in done.stderr and "bad role 'boss'" in done.stderr
    assert "teams[0].members.ben" in done.stderr
    assert not (tmp_path / "state").exists()
    assert not (tmp_path / "home").exists()


def test_grant_of_an_unknown_dashboard_starts_nothing(tmp_path: Path) -> None:
    """An alliance file anywhere may grant the curated apps; an unknown one is refused."""
    elsewhere = tmp_path / "etc" / "alliance.yaml"
    elsewhere.parent.mkdir()
    elsewhere.write_text(
        DEMO_ALLIANCE.read_text().replace("dashboards: [spc-chart", "dashboards: [spc-chartt", 1)
    )
    done = _hub_up(tmp_path, "--config", str(elsewhere))
    assert done.returncode == 2, done.stderr
    assert f"{elsewhere}:" in done.stderr and "unknown dashboard 'spc-chartt'" in done.stderr
    assert "known: machine-health, oee-dashboard, spc-chart, tool-life" in done.stderr
    assert not (tmp_path / "state").exists()


def test_missing_alliance_file(tmp_path: Path) -> None:
    done = _hub_up(tmp_path, "--config", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2
    assert "nope.yaml: file not found" in done.stderr


def test_port_in_use_is_named(tmp_path: Path) -> None:
    """A busy public port is reported with its number before anything is provisioned."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _hub_up(tmp_path, "--config", str(DEMO_ALLIANCE), "--spawn-mode", "single",
                       "--port", str(port))  # fmt: skip
    assert done.returncode == 3
    assert f"hub port {port} on 127.0.0.1 is not free" in done.stderr
    assert not (tmp_path / "state" / "hub-settings.json").exists()


def test_missing_proxy_is_explained(tmp_path: Path) -> None:
    done = _hub_up(
        tmp_path,
        "--config",
        str(DEMO_ALLIANCE),
        env={"SMARTFAB_PROXY_COMMAND": str(tmp_path / "no-such-proxy")},
    )
    assert done.returncode == 3
    assert "SMARTFAB_PROXY_COMMAND" in done.stderr and "not an executable" in done.stderr


def test_missing_hub_config_file(tmp_path: Path) -> None:
    done = _hub_up(tmp_path, "--config", str(DEMO_ALLIANCE), "--spawn-mode", "single",
                   "--hub-config", str(tmp_path / "missing_config.py"))  # fmt: skip
    assert done.returncode == 3
    assert "missing_config.py: JupyterHub config file not found" in done.stderr


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--account-prefix", "Bad", "--account-prefix"),
        ("--spawn-mode", "docker", "--spawn-mode"),
        ("--idle-timeout", "5", "--idle-timeout"),
        ("--max-failed-logins", "0", "--max-failed-logins"),
    ],
)
def test_bad_option_values_are_named(tmp_path: Path, option: str, value: str, named: str) -> None:
    done = _hub_up(tmp_path, "--config", str(DEMO_ALLIANCE), option, value)
    assert done.returncode == 3
    assert (named in done.stderr and repr(value) in done.stderr) or value in done.stderr
    assert not (tmp_path / "state").exists()


def test_system_mode_needs_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without root, system-account mode is refused before any provisioning."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    settings = HubSettings(
        alliance_file=DEMO_ALLIANCE,
        state_dir=tmp_path / "state",
        spawn_mode=SpawnMode.system,
        proxy_command=["chp"],
    )
    from smartfab.alliance import load_alliance

    with pytest.raises(HubError, match="system-account mode needs root"):
        launcher.prepare(settings, load_alliance(DEMO_ALLIANCE))
    assert not (tmp_path / "state").exists()


def test_default_state_dir_depends_on_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_state_dir() == Path("/var/lib/smartfab")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", "/data")
    assert default_state_dir() == Path("/data/smartfab")


def test_status_without_a_hub(tmp_path: Path) -> None:
    done = subprocess.run(
        [SMARTFAB, "hub", "status", "--state-dir", str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 3
    assert "no hub runs from" in done.stdout
