"""Single-account mode: for a developer without root, with a loud warning that isolation is off."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator

import psutil
import pytest

from tests.support.hubtools import RunningHub

pytestmark = pytest.mark.hub


@pytest.fixture(scope="module")
def sf_single_hub(sf_hub_factory: Callable[..., RunningHub]) -> Iterator[RunningHub]:
    # also covers starting servers as new processes, without the fork server
    hub = sf_hub_factory(spawn_mode="single", extra_args=["--no-fork-server"])
    hub.start()
    yield hub
    if hub.proc is not None and hub.proc.poll() is None:
        hub.stop()


def test_warns_loudly_that_isolation_is_off(sf_single_hub: RunningHub) -> None:
    assert "ISOLATION IS OFF" in sf_single_hub.log()
    assert "single-account mode" in sf_single_hub.log()


def test_servers_are_plain_processes(sf_single_hub: RunningHub) -> None:
    assert "Forked server" not in sf_single_hub.log()
    assert "forkserver.sock" not in sf_single_hub.log()


def test_member_gets_jupyterlab_and_team_folder(sf_single_hub: RunningHub) -> None:
    """Servers still start, homes and team links are laid out in the state directory."""
    ben = sf_single_hub.client("ben")
    ben.start_server()
    ben.wait_for_server()
    listing = ben.server_api("GET", "ben", "contents/teams").json()
    assert sorted(i["name"] for i in listing["content"]) == ["acme-machining", "spindle-health"]
    home = sf_single_hub.state_dir / "homes" / "ben"
    assert (home / "teams" / "acme-machining").resolve() == (
        sf_single_hub.state_dir / "teams" / "acme-machining"
    )
    ben.start_server("team-acme-machining")
    ben.wait_for_server("team-acme-machining")
    # access control through the hub still holds without OS isolation
    vera = sf_single_hub.client("vera")
    assert vera.server_api("GET", "team-acme-machining", "contents").status_code == 403


def test_ctrl_c_stops_everything(sf_single_hub: RunningHub) -> None:
    """SIGINT (Ctrl-C in the terminal) stops the hub, and `hub down` (run by the fixture's stop)
    the proxy and the servers it left running."""
    assert sf_single_hub.proc is not None
    started = psutil.Process(sf_single_hub.proc.pid).children(recursive=True)
    assert any("jupyterhub-singleuser" in " ".join(p.cmdline()) for p in started)
    assert sf_single_hub.stop(signum=signal.SIGINT) == 0
    _, alive = psutil.wait_procs(started, timeout=30)
    assert not alive, [p.cmdline() for p in alive]
    assert "smartfab hub stopped" in sf_single_hub.log()
