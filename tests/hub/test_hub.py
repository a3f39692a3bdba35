"""The alliance hub for real: JupyterHub, proxy and single-user servers on loopback.

Logs in as people of different teams, spawns their servers and the team workspaces, checks the
full denial matrix over HTTP and, as root, the operating system's isolation between firms.
"""

from __future__ import annotations

import asyncio
import grp
import json
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import requests

from tests.conftest import IS_ROOT, needs_root
from tests.support.collab import RoomClient
from tests.support.hubtools import SMARTFAB, HubClient, LoginRefusedError, RunningHub, run_in_kernel

pytestmark = pytest.mark.hub

ACME = "acme-machining"
ACME_WS = f"team-{ACME}"
VOLTRONIC = "voltronic"
VOLTRONIC_WS = f"team-{VOLTRONIC}"


@pytest.fixture(scope="module")
def sf_hub(sf_hub_factory: Callable[..., RunningHub]) -> Iterator[RunningHub]:
    """The demo alliance hub, with quick lock-out settings so throttling can be tested."""
    hub = sf_hub_factory(extra_args=["--max-failed-logins", "3", "--lockout-seconds", "600"])
    hub.start()
    yield hub
    if hub.proc is not None and hub.proc.poll() is None:
        hub.stop()


@pytest.fixture(scope="module")
def sf_ben(sf_hub: RunningHub) -> HubClient:
    """ben: member of the firm ACME Machining and of the joint project spindle-health."""
    return sf_hub.client("ben")


@pytest.fixture(scope="module")
def sf_anna(sf_hub: RunningHub) -> HubClient:
    """anna: lead of ACME Machining."""
    return sf_hub.client("anna")


@pytest.fixture(scope="module")
def sf_vera(sf_hub: RunningHub) -> HubClient:
    """vera: lead of Voltronic, the other firm."""
    return sf_hub.client("vera")


@pytest.fixture(scope="module")
def sf_carl(sf_hub: RunningHub) -> HubClient:
    """carl: viewer of ACME Machining (cookie session only: viewers cannot make tokens)."""
    return sf_hub.client("carl", token=False)


def _started(client: HubClient, owner: str | None = None) -> None:
    reply = client.start_server(owner)
    assert reply.status_code in (201, 202, 400), reply.text  # 400: already running
    client.wait_for_server(owner)


def test_start_prints_url_mode_and_passwords(sf_hub: RunningHub) -> None:
    """The start banner names the URL, the spawn mode and where passwords are."""
    log = sf_hub.log()
    assert f"is up at {sf_hub.url}" in log
    assert "initial-passwords" in log
    if IS_ROOT:
        assert "spawn mode: system accounts" in log
    else:
        assert "ISOLATION IS OFF" in log


def test_password_files_are_private(sf_hub: RunningHub) -> None:
    """One 0600 file per account in a 0700 folder; no two accounts share a password."""
    folder = sf_hub.state_dir / "initial-passwords"
    assert folder.stat().st_mode & 0o777 == 0o700
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == sorted(
        ["olga", "anna", "ben", "carl", "vera", "wim", "lena", "sam", "mia"]
    )
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    assert len({f.read_text() for f in files}) == len(files)


def test_people_of_different_teams_log_in(sf_hub: RunningHub) -> None:
    """Members land on their server's spawn page, viewers on the hub home page."""
    for user, landing in [("ben", "/hub/spawn"), ("vera", "/hub/spawn"), ("carl", "/hub/home")]:
        reply = HubClient(sf_hub.url).login(user, sf_hub.password(user))
        assert reply.headers["Location"].startswith(landing), (user, reply.headers)


@pytest.mark.parametrize(
    ("user", "password"),
    [("ben", "not-his-password"), ("nobody", "whatever-1234"), ("team-acme-machining", "x")],
    ids=["wrong-password", "unknown-user", "workspace-name"],
)
def test_bad_logins_are_refused(sf_hub: RunningHub, user: str, password: str) -> None:
    """Wrong passwords, unknown users and workspace names get no session."""
    client = HubClient(sf_hub.url)
    with pytest.raises(LoginRefusedError):
        client.login(user, password)
    assert "jupyterhub-hub-login" not in client.session.cookies


def test_repeated_failed_logins_are_throttled(sf_hub: RunningHub) -> None:
    """After 3 failures even the right password is refused for the lock-out time."""
    for _ in range(3):
        with pytest.raises(LoginRefusedError):
            HubClient(sf_hub.url).login("mia", "wrong-password")
    with pytest.raises(LoginRefusedError):
        HubClient(sf_hub.url).login("mia", sf_hub.password("mia"))
    # another account is not affected
    HubClient(sf_hub.url).login("lena", sf_hub.password("lena"))


def test_member_spawns_jupyterlab_with_team_folders(sf_ben: HubClient) -> None:
    """ben's own server runs JupyterLab and shows his two teams' folders."""
    _started(sf_ben)
    lab = sf_ben.session.get(f"{sf_ben.url}user/ben/lab")
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    listing = sf_ben.server_api("GET", "ben", "contents/teams").json()
    assert sorted(item["name"] for item in listing["content"]) == [ACME, "spindle-health"]


def test_collaboration_extension_is_on(sf_ben: HubClient) -> None:
    """JupyterLab in single-user servers carries the real-time collaboration extension."""
    reply = requests.get(
        f"{sf_ben.url}user/ben/lab/api/settings/",
        headers={"Authorization": f"token {sf_ben.token}"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    ids = {s["id"] for s in reply.json()["settings"]}
    assert any(i.startswith("@jupyter/collaboration-extension") for i in ids), sorted(ids)


def test_members_open_and_share_the_team_workspace(
    sf_ben: HubClient, sf_anna: HubClient, sf_hub: RunningHub
) -> None:
    """ben starts ACME's workspace; a file he saves there is read by anna and lies in the folder."""
    _started(sf_ben, ACME_WS)
    saved = sf_ben.server_api(
        "PUT",
        ACME_WS,
        "contents/plan.txt",
        json={"type": "file", "format": "text", "content": "spindle plan\n"},
    )
    assert saved.status_code in (200, 201), saved.text
    page = sf_anna.session.get(f"{sf_anna.url}user/{ACME_WS}/lab")
    assert page.status_code == 200 and "JupyterLab" in page.text  # no consent page in between
    read = sf_anna.server_api("GET", ACME_WS, "contents/plan.txt").json()
    assert read["content"] == "spindle plan\n"
    on_disk = sf_hub.state_dir / "teams" / ACME / "plan.txt"
    assert on_disk.read_text() == "spindle plan\n"
    if IS_ROOT:
        assert on_disk.stat().st_mode & 0o777 == 0o660  # shared with the team group only
        folder = on_disk.parent.stat()
        assert stat.S_IMODE(folder.st_mode) == 0o2770  # setgid: new files stay in the group
        assert grp.getgrgid(folder.st_gid).gr_name == f"{sf_hub.prefix}team-{ACME}"
        assert grp.getgrgid(on_disk.stat().st_gid).gr_name == f"{sf_hub.prefix}team-{ACME}"


def test_members_co_edit_live(sf_ben: HubClient, sf_anna: HubClient) -> None:
    """ben and anna join the same Yjs room; ben's typing reaches anna and is saved."""
    sessions = [
        c.server_api(
            "PUT",
            ACME_WS,
            "collaboration/session/plan.txt",
            json={"format": "text", "type": "file"},
        ).json()
        for c in (sf_ben, sf_anna)
    ]
    assert sessions[0]["fileId"] == sessions[1]["fileId"]
    server = f"{sf_ben.url}user/{ACME_WS}/"

    async def co_edit() -> str:
        ben = await RoomClient.join(server, sf_ben.token or "", sessions[0])
        anna = await RoomClient.join(server, sf_anna.token or "", sessions[1])
        try:
            await ben.wait_for_text("spindle plan")
            await anna.wait_for_text("spindle plan")
            ben.text += "bearing check by ben\n"
            return await anna.wait_for_text("bearing check by ben")
        finally:
            ben.close()
            anna.close()

    assert asyncio.run(co_edit()) == "spindle plan\nbearing check by ben\n"


def test_lead_manages_membership(sf_anna: HubClient, sf_ben: HubClient) -> None:
    """anna (lead) adds and removes a viewer; ben (member) and anna elsewhere cannot."""
    path = f"groups/{ACME}-viewers/users"
    added = sf_anna.api("POST", path, json={"users": ["wim"]})
    assert added.status_code == 200, added.text
    assert "wim" in sf_anna.api("GET", f"groups/{ACME}-viewers").json()["users"]
    assert sf_anna.api("DELETE", path, json={"users": ["wim"]}).status_code == 200
    assert sf_ben.api("POST", path, json={"users": ["wim"]}).status_code in (403, 404)
    other = sf_anna.api("POST", f"groups/{VOLTRONIC}/users", json={"users": ["anna"]})
    assert other.status_code in (403, 404)


# -- the denial matrix -------------------------------------------------------------------------


def test_non_member_cannot_open_or_start_another_firms_workspace(
    sf_vera: HubClient, sf_ben: HubClient
) -> None:
    """vera (Voltronic) gets nothing of ACME's running workspace, over API or pages."""
    assert sf_vera.server_api("GET", ACME_WS, "contents").status_code == 403
    assert sf_vera.server_api("GET", ACME_WS, "contents/plan.txt").status_code == 403
    assert sf_vera.server_api("POST", ACME_WS, "kernels").status_code == 403
    assert sf_vera.start_server(ACME_WS).status_code in (403, 404)
    assert sf_vera.stop_server(ACME_WS).status_code in (403, 404)
    page = sf_vera.session.get(f"{sf_vera.url}user/{ACME_WS}/lab")
    assert page.status_code == 403
    # and the other way round: ben may not start Voltronic's workspace
    assert sf_ben.start_server(VOLTRONIC_WS).status_code in (403, 404)


def test_non_member_cannot_use_another_persons_server(
    sf_vera: HubClient, sf_ben: HubClient
) -> None:
    """Personal servers are their owner's alone."""
    assert sf_vera.server_api("GET", "ben", "contents").status_code == 403
    assert sf_vera.start_server("ben").status_code in (403, 404)
    assert sf_ben.start_server("vera").status_code in (403, 404)


def test_home_page_fits_the_account(sf_ben: HubClient, sf_carl: HubClient) -> None:
    """Members see JupyterHub's server buttons; viewers see their teams and no dead button."""
    member = sf_ben.session.get(f"{sf_ben.url}hub/home")
    assert member.status_code == 200 and "My Server" in member.text
    viewer = sf_carl.session.get(f"{sf_carl.url}hub/home")
    assert viewer.status_code == 200
    assert "My Server" not in viewer.text
    assert "no notebook server of its own" in viewer.text
    assert "ACME Machining (machine-tool builder)" in viewer.text


def test_viewer_has_no_server_and_no_workspace(sf_carl: HubClient, sf_hub: RunningHub) -> None:
    """carl (viewer of ACME) can neither start a server nor open his team's workspace."""
    assert sf_carl.start_server().status_code == 403
    assert sf_carl.session.get(f"{sf_hub.url}hub/spawn", allow_redirects=False).status_code == 403
    assert sf_carl.session.get(f"{sf_hub.url}user/{ACME_WS}/lab").status_code == 403
    assert sf_carl.api("POST", "users/carl/tokens", json={}).status_code == 403
    assert sf_carl.start_server(ACME_WS).status_code in (403, 404)


def test_signup_needs_admin_approval(sf_hub: RunningHub) -> None:
    """A self-registered account logs in only after an admin approves it, and gets no server."""
    client = HubClient(sf_hub.url)
    page = client.session.get(f"{sf_hub.url}hub/signup")
    reply = client.session.post(
        f"{sf_hub.url}hub/signup",
        data={
            "username": "eve",
            "signup_password": "Correct-Horse-42",
            "signup_password_confirmation": "Correct-Horse-42",
            "_xsrf": client.session.cookies.get("_xsrf", path="/hub/"),
        },
    )
    assert page.status_code == 200 and reply.status_code == 200
    with pytest.raises(LoginRefusedError):
        HubClient(sf_hub.url).login("eve", "Correct-Horse-42")
    olga = sf_hub.client("olga", token=False)
    approve = olga.session.get(f"{sf_hub.url}hub/authorize/eve", allow_redirects=False)
    assert approve.status_code in (200, 302), approve.text
    eve = HubClient(sf_hub.url)
    assert eve.login("eve", "Correct-Horse-42").headers["Location"].startswith("/hub/home")
    assert eve.start_server().status_code == 403


def test_signup_cannot_claim_a_workspace_name(sf_hub: RunningHub) -> None:
    """Nobody can register as a team workspace, even with an admin's approval."""
    client = HubClient(sf_hub.url)
    client.session.get(f"{sf_hub.url}hub/signup")
    client.session.post(
        f"{sf_hub.url}hub/signup",
        data={
            "username": ACME_WS,
            "signup_password": "Correct-Horse-42",
            "signup_password_confirmation": "Correct-Horse-42",
            "_xsrf": client.session.cookies.get("_xsrf", path="/hub/"),
        },
    )
    olga = sf_hub.client("olga", token=False)
    olga.session.get(f"{sf_hub.url}hub/authorize/{ACME_WS}", allow_redirects=False)
    with pytest.raises(LoginRefusedError):
        HubClient(sf_hub.url).login(ACME_WS, "Correct-Horse-42")


def test_second_hub_on_the_same_state_is_refused(sf_hub: RunningHub) -> None:
    """Starting another hub on a state directory in use fails clearly and changes nothing."""
    done = subprocess.run(
        [SMARTFAB, "hub", "up", "--config", str(sf_hub.alliance),
         "--state-dir", str(sf_hub.state_dir), "--spawn-mode", sf_hub.spawn_mode,
         "--account-prefix", sf_hub.prefix, "--home-root", str(sf_hub.home_root),
         "--port", "1", "--hub-port", "2", "--proxy-api-port", "3"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 3
    assert "a hub already runs from" in done.stderr
    assert requests.get(f"{sf_hub.url}hub/api/", timeout=10).status_code == 200


@needs_root
def test_os_isolation_between_firms(
    sf_ben: HubClient, sf_vera: HubClient, sf_hub: RunningHub
) -> None:
    """ben's kernel runs as his account: ACME's folder yes; Voltronic's and vera's home no."""
    _started(sf_vera)
    voltronic = sf_hub.state_dir / "teams" / VOLTRONIC
    (voltronic / "secret.csv").write_text("spindle,42\n")
    home_of_vera = sf_hub.home_root / f"{sf_hub.prefix}vera"
    probes = {
        "read_own_team": f"print(open('teams/{ACME}/plan.txt').read())",
        "read_other_firm": f"open({str(voltronic / 'secret.csv')!r}).read()",
        "write_other_firm": f"open({str(voltronic / 'planted.txt')!r}, 'w').write('x')",
        "list_other_firm": f"import os; os.listdir({str(voltronic)!r})",
        "read_other_home": f"import os; os.listdir({str(home_of_vera)!r})",
        "whoami": "import os, pwd; print(pwd.getpwuid(os.getuid()).pw_name)",
    }
    token = sf_ben.token or ""
    results = {
        name: asyncio.run(run_in_kernel(sf_hub.url, "ben", token, code))
        for name, code in probes.items()
    }
    assert results["whoami"]["stdout"].strip() == f"{sf_hub.prefix}ben"
    assert results["read_own_team"]["error"] is None
    assert "spindle plan" in results["read_own_team"]["stdout"]
    for name in ("read_other_firm", "write_other_firm", "list_other_firm", "read_other_home"):
        assert results[name]["error"] == "PermissionError", (name, results[name])
    assert not (voltronic / "planted.txt").exists()


def test_servers_know_their_teams_grants_and_shared_data(
    sf_ben: HubClient, sf_hub: RunningHub
) -> None:
    """The dataset catalog in a server learns the user's teams and grants from the spawner."""
    code = (
        "import os; print(os.environ['SMARTFAB_TEAMS']); "
        "print(os.environ['SMARTFAB_DATASET_GRANTS']); print(os.environ['SMARTFAB_SHARED_DATA'])"
    )
    result = asyncio.run(run_in_kernel(sf_hub.url, "ben", sf_ben.token or "", code))
    teams, grants, shared = result["stdout"].split("\n")[:3]
    assert teams == f"{ACME},spindle-health"
    assert set(grants.split(",")) == {
        "milling-tool-wear",
        "spindle-thermal",
        "cell-energy",
        "bearing-run-to-failure",
    }
    state = sf_hub.state_dir
    assert shared.split(":") == [
        str(state / "datasets"),
        str(state / "teams" / ACME / ".datasets"),
        str(state / "teams" / "spindle-health" / ".datasets"),
    ]


def test_datasets_in_kernels_follow_team_access(
    sf_ben: HubClient, sf_vera: HubClient, sf_hub: RunningHub
) -> None:
    """In a kernel, smartfab.datasets lists and opens line-oee (Voltronic only) for vera, not ben;
    both open a public dataset, built in their own cache and checked against its card's content
    fingerprint."""
    _started(sf_ben)
    _started(sf_vera)
    code = (
        "import smartfab.datasets as sd\n"
        "def pinned(i):\n"
        "    return sd.open(i).attrs['smartfab_fingerprint'] == sd.info(i).fingerprint.digest()\n"
        "print('line-oee' in [c.id for c in sd.list()])\n"
        "try:\n"
        "    print(pinned('line-oee'))\n"
        "except Exception as err:\n"
        "    print(type(err).__name__)\n"
        "print(pinned('process-quality'))\n"
    )
    results = {
        user: asyncio.run(run_in_kernel(sf_hub.url, user, client.token or "", code, timeout=120))
        for user, client in (("ben", sf_ben), ("vera", sf_vera))
    }
    assert results["ben"]["stdout"].split() == ["False", "DatasetAccessError", "True"]
    assert results["vera"]["stdout"].split() == ["True", "True", "True"], results["vera"]


@needs_root
def test_restricted_builds_in_a_team_folder_are_guarded_by_the_os(
    sf_ben: HubClient, sf_vera: HubClient, sf_hub: RunningHub
) -> None:
    """A curated build in Voltronic's .datasets folder: vera reads it, ben's kernel cannot."""
    build = sf_hub.state_dir / "teams" / VOLTRONIC / ".datasets" / "secret-line" / "1.0.0"
    build.mkdir(parents=True)
    (build / "secret-line.nc").write_bytes(b"line data")
    code = f"print(open({str(build / 'secret-line.nc')!r}, 'rb').read())"
    token_vera, token_ben = sf_vera.token or "", sf_ben.token or ""
    as_vera = asyncio.run(run_in_kernel(sf_hub.url, "vera", token_vera, code))
    as_ben = asyncio.run(run_in_kernel(sf_hub.url, "ben", token_ben, code))
    assert as_vera["error"] is None and "line data" in as_vera["stdout"]
    assert as_ben["error"] == "PermissionError"


@needs_root
def test_workspace_server_runs_as_team_account(sf_ben: HubClient, sf_hub: RunningHub) -> None:
    """The workspace kernel runs as the team account with the team folder as its root."""
    result = asyncio.run(
        run_in_kernel(
            sf_hub.url,
            ACME_WS,
            sf_ben.token or "",
            "import os, pwd; print(pwd.getpwuid(os.getuid()).pw_name, os.getcwd())",
        )
    )
    account, cwd = result["stdout"].split()
    assert account == f"{sf_hub.prefix}team-{ACME}"
    assert Path(cwd) == sf_hub.state_dir / "teams" / ACME


def test_hub_status_reports_what_runs(sf_hub: RunningHub) -> None:
    """`smartfab hub status --json` sees the hub, the proxy and the running servers."""
    done = subprocess.run(
        [SMARTFAB, "hub", "status", "--state-dir", str(sf_hub.state_dir), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    status = json.loads(done.stdout)
    assert status["running"] and status["proxy_running"]
    assert status["url"] == sf_hub.url
    assert {"ben", ACME_WS} <= {s["user"] for s in status["servers"]}


def test_stop_ends_everything_and_restart_keeps_state(sf_hub: RunningHub) -> None:
    """SIGTERM and `hub down` stop hub, proxy and servers; a restart keeps accounts, groups and
    files."""
    launcher = psutil.Process(sf_hub.proc.pid if sf_hub.proc else 0)
    started = launcher.children(recursive=True)
    commands = [" ".join(p.cmdline()) for p in started]
    assert any("jupyterhub-singleuser" in c for c in commands)
    assert any("jupyterhub_idle_culler" in c for c in commands)  # the managed culler service
    assert any("configurable-http-proxy" in c for c in commands)
    password_before = sf_hub.password("ben")
    code = sf_hub.stop()
    assert code == 0, sf_hub.log()[-4000:]
    _, alive = psutil.wait_procs(started, timeout=30)
    assert not alive, [p.cmdline() for p in alive]
    status = subprocess.run(
        [SMARTFAB, "hub", "status", "--state-dir", str(sf_hub.state_dir)], capture_output=True
    )
    assert status.returncode == 3

    sf_hub.start()
    assert sf_hub.password("ben") == password_before
    ben = sf_hub.client("ben")
    groups = ben.api("GET", "users/ben").json()["groups"]
    assert sorted(groups) == [ACME, "spindle-health"]
    _started(ben, ACME_WS)
    assert (
        ben.server_api("GET", ACME_WS, "contents/plan.txt")
        .json()["content"]
        .startswith("spindle plan")
    )
    assert HubClient(sf_hub.url).login("vera", sf_hub.password("vera")).status_code == 302
    with pytest.raises(requests.HTTPError):
        sf_hub.client("carl")  # a viewer still cannot create tokens after the restart
