"""The test bench in a real hub: programs registered and submitted through the service's API
and pages, batches run as each team's run account, reports seen by the team only, bad input
refused with nothing queued, cancel, the per-team limit."""

from __future__ import annotations

import base64
import grp
import json
import os
import pwd
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from tests.support.browsertools import chromium, needs_chromium
from tests.support.hubtools import DEMO_ALLIANCE, RunningHub
from tests.testbench.benchtools import BenchClient, write_probe_program

pytestmark = [pytest.mark.hub, pytest.mark.root]

SMARTFAB = str(Path(sys.executable).with_name("smartfab"))
ACME = "acme-machining"


def _alliance_granting_the_probe(folder: Path) -> Path:
    text = DEMO_ALLIANCE.read_text()
    granted = text.replace(
        "programs: [bearing-fault-detector]", "programs: [bearing-fault-detector, bench-probe]"
    )
    project_grants = "      dashboards: [machine-health]\n"  # the joint project's, alone
    granted = granted.replace(project_grants, project_grants + "      programs: [bench-probe]\n")
    assert granted.count("bench-probe") == 2
    alliance = folder / "alliance.yaml"
    alliance.write_text(granted)
    return alliance


@pytest.fixture(scope="module")
def sf_bench_hub(
    sf_hub_factory: Callable[..., RunningHub], sf_public_tmp: Path
) -> Iterator[RunningHub]:
    """The demo alliance, granting ACME's bench probe to Voltronic; the probe registered."""
    project = sf_public_tmp / "testbench-project"
    spec = write_probe_program(project / "probe")
    alliance = _alliance_granting_the_probe(project)
    hub = sf_hub_factory(alliance=alliance)
    registered = subprocess.run(
        [SMARTFAB, "programs", "register", str(spec), "--team", "acme-machining",
         "--config", str(alliance), "--state-dir", str(hub.state_dir)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert registered.returncode == 0, registered.stderr
    hub.start()
    yield hub
    hub.stop()


VIEWERS = {"wim", "carl"}


def person(hub: RunningHub, name: str) -> BenchClient:
    """A person on the bench: with a hub API token, except viewers, who may not make one."""
    return BenchClient(hub.url, hub.client(name, token=name not in VIEWERS))


def queued_pid(hub: RunningHub, batch_id: str) -> int:
    """The pid the service recorded for a running batch (from its queue, as root)."""
    with sqlite3.connect(hub.state_dir / "testbench" / "queue.sqlite") as db:
        row = db.execute("SELECT pid FROM testbench_batches WHERE id = ?", (batch_id,)).fetchone()
    assert row and row[0], f"no pid for {batch_id}"
    return int(row[0])


def account(hub: RunningHub, hub_user: str) -> pwd.struct_passwd:
    return pwd.getpwnam(f"{hub.prefix}{hub_user}")


def test_a_member_submits_and_the_team_run_account_runs_it(sf_bench_hub: RunningHub) -> None:
    hub = sf_bench_hub
    ben = person(hub, "ben")
    reply = ben.submit(program="bench-probe", team=ACME, set={"x": [1, 2, 3, 4]})
    assert reply.status_code == 201, reply.text
    submitted = reply.json()
    assert (submitted["team"], submitted["runs"], submitted["submitted_by"]) == (
        "acme-machining", 4, "ben",
    )  # fmt: skip
    done = ben.wait(submitted["id"])
    assert done["state"] == "finished", done
    assert done["progress"]["done"] == 4
    assert done["progress"]["counts"] == {"passed": 4}
    # the runs ran as ACME's run account, into ACME's store in its team folder
    run_account = account(hub, "run-acme-machining")
    store = hub.state_dir / "teams" / "acme-machining" / "runs"
    records = list(store.glob("runs/*/record.json"))
    assert len(records) == 4
    assert {p.stat().st_uid for p in records} == {run_account.pw_uid}
    report = ben.page(f"batches/{done['id']}/report/")
    assert report.status_code == 200 and "bench-probe" in report.text
    # a member reads the team's store from their own terminal
    listed = ben.api("GET", "batches?program=bench-probe").json()
    assert done["id"] in [b["id"] for b in listed]


def test_the_run_account_is_in_its_team_group_only(sf_bench_hub: RunningHub) -> None:
    hub = sf_bench_hub
    ben = person(hub, "ben")
    other_team = hub.state_dir / "teams" / "voltronic"
    own_team = hub.state_dir / "teams" / "acme-machining"
    uids = set()
    for path, readable in ((other_team, False), (own_team, True)):
        reply = ben.submit(program="bench-probe", team=ACME, set={"x": 1, "probe_path": str(path)})
        assert reply.status_code == 201, reply.text
        done = ben.wait(reply.json()["id"])
        assert done["state"] == "finished", done
        runs = ben.page(f"batches/{done['id']}/report/runs.json").json()
        metrics = runs["runs"][0]["metrics"] if "runs" in runs else runs[0]["metrics"]
        assert metrics["reads_probe_path"] is readable, (path, metrics)
        uids.add(metrics["uid"])
    assert uids == {account(hub, "run-acme-machining").pw_uid}


def test_a_granted_firm_runs_the_program_and_only_it_sees_its_report(
    sf_bench_hub: RunningHub,
) -> None:
    hub = sf_bench_hub
    vera, wim, ben = person(hub, "vera"), person(hub, "wim"), person(hub, "ben")
    reply = vera.submit(program="bench-probe", set={"x": [5, 6]})
    assert reply.status_code == 201, reply.text
    firm_batch = vera.wait(reply.json()["id"])
    assert firm_batch["state"] == "finished" and firm_batch["team"] == "voltronic"
    # Voltronic's viewer reads Voltronic's report, on the page and through the API
    assert wim.page(f"batches/{firm_batch['id']}").status_code == 200
    assert wim.page(f"batches/{firm_batch['id']}/report/").status_code == 200
    assert wim.api("GET", f"batches/{firm_batch['id']}").status_code == 200
    # ... but may neither submit nor cancel
    refused = wim.submit(program="bench-probe")
    assert refused.status_code == 403, refused.text
    # the program's authors do not see the firm's batch
    assert ben.page(f"batches/{firm_batch['id']}").status_code == 403
    assert ben.api("GET", f"batches/{firm_batch['id']}").status_code == 403
    assert ben.page(f"batches/{firm_batch['id']}/report/").status_code == 403
    assert firm_batch["id"] not in [b["id"] for b in ben.api("GET", "batches").json()]
    # and the firm's people do not see ACME's batches
    acme = ben.submit(program="bench-probe", team=ACME, set={"x": 7})
    assert acme.status_code == 201
    for outsider in (wim, vera):
        assert outsider.api("GET", f"batches/{acme.json()['id']}").status_code == 403
        assert outsider.page(f"batches/{acme.json()['id']}").status_code == 403
    # the firm's records belong to the firm's run account, in the firm's store
    store = hub.state_dir / "teams" / "voltronic" / "runs"
    owners = {p.stat().st_uid for p in store.glob("runs/*/record.json")}
    assert owners == {account(hub, "run-voltronic").pw_uid}


BAD_SUBMISSIONS: list[tuple[str, dict[str, Any], int, str, str]] = [
    ("unknown program", {"program": "nope"}, 404, "program", "unknown program"),
    ("unknown version", {"program": "bench-probe", "version": "9"}, 404, "version", "9"),
    ("unknown spec", {"program": "bench-probe", "batch": "other"}, 404, "batch", "other"),
    ("unknown parameter", {"program": "bench-probe", "set": {"nope": 1}}, 422, "set.nope",
     "nope"),
    ("wrong type", {"program": "bench-probe", "set": {"x": "many"}}, 422, "set.x", "int"),
    ("empty grid", {"program": "bench-probe", "set": {"x": []}}, 422, "set.x", ""),
    ("team not mine", {"program": "bench-probe", "team": "voltronic"}, 403, "team",
     "voltronic"),
    ("dataset not open", {"program": "bench-probe", "set": {"dataset": "line-oee"}}, 403,
     "dataset", "line-oee"),
    ("unknown dataset", {"program": "bench-probe", "set": {"dataset": "nosuch"}}, 403,
     "dataset", "nosuch"),
    ("unknown field", {"program": "bench-probe", "colour": "red"}, 400, "colour", ""),
    ("bad priority", {"program": "bench-probe", "priority": "urgent"}, 400, "priority", ""),
]  # fmt: skip


def test_bad_submissions_are_refused_field_by_field_and_nothing_is_queued(
    sf_bench_hub: RunningHub,
) -> None:
    ben = person(sf_bench_hub, "ben")
    before = len(ben.api("GET", "batches").json())
    for case, body, status, field, needle in BAD_SUBMISSIONS:
        reply = ben.submit(**{"team": ACME, **body})
        assert reply.status_code == status, (case, reply.text)
        data = reply.json()
        fields = [p["field"] for p in data["problems"]]
        assert field in fields, (case, data)
        assert needle in str(data), (case, data)
    not_json = ben.api("POST", "batches", data=b"{", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["error"]
    assert len(ben.api("GET", "batches").json()) == before
    leftovers = list((sf_bench_hub.state_dir / "testbench" / "scratch").iterdir())
    assert leftovers == []


def test_cancel_stops_a_running_batch(sf_bench_hub: RunningHub) -> None:
    ben = person(sf_bench_hub, "ben")
    settings = {"x": [1, 2, 3, 4, 5, 6], "sleep": 30.0}
    reply = ben.submit(program="bench-probe", team=ACME, set=settings)
    assert reply.status_code == 201, reply.text
    batch_id = reply.json()["id"]
    running = ben.wait(batch_id, states=("running",))
    assert "pid" not in running  # the API does not show pids
    process = psutil.Process(queued_pid(sf_bench_hub, batch_id))
    wim = person(sf_bench_hub, "wim")
    assert wim.api("POST", f"batches/{batch_id}/cancel").status_code == 403
    cancelled = ben.api("POST", f"batches/{batch_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    done = ben.wait(batch_id)
    assert done["state"] == "cancelled", done
    assert done["progress"]["done"] < 6
    process.wait(timeout=30)  # the batch process is gone (raises TimeoutExpired if not)


def test_the_per_team_limit_holds_under_concurrent_submits(sf_bench_hub: RunningHub) -> None:
    hub = sf_bench_hub
    people = {"ben": "acme-machining", "vera": "voltronic", "lena": "spindle-health"}
    clients = {name: person(hub, name) for name in people}
    ids: list[str] = []
    errors: list[str] = []

    def submit(name: str) -> None:
        for _ in range(2):
            reply = clients[name].submit(
                program="bench-probe", team=people[name], set={"x": [1, 2, 3], "sleep": 0.5}
            )
            if reply.status_code == 201:
                ids.append(reply.json()["id"])
            else:
                errors.append(reply.text)

    threads = [threading.Thread(target=submit, args=(name,)) for name in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(ids) == 6
    limit = 2  # the deployment's default: two runs at once per team
    peak: dict[str, int] = {}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        batches = clients["ben"].api("GET", "batches").json()
        batches += clients["vera"].api("GET", "batches").json()
        mine = {b["id"]: b for b in batches if b["id"] in ids}
        for team in people.values():
            used = sum(b["workers"] for b in mine.values()
                       if b["team"] == team and b["state"] == "running")  # fmt: skip
            peak[team] = max(peak.get(team, 0), used)
        if len(mine) == 6 and all(b["state"] == "finished" for b in mine.values()):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"batches not finished: {mine}")
    assert all(0 < used <= limit for used in peak.values()), peak
    assert os.path.isdir(hub.state_dir / "teams" / "spindle-health" / "runs")


def service_pid(hub: RunningHub) -> int:
    """The pid of the hub's test bench service process."""
    run = json.loads((hub.state_dir / "hub-run.json").read_text())
    for child in psutil.Process(run["hub_pid"]).children():
        if "smartfab.testbench.service" in " ".join(child.cmdline()):
            return child.pid
    raise AssertionError("no test bench service among the hub's children")


def test_a_batch_survives_its_service_killed(sf_bench_hub: RunningHub) -> None:
    """The service dies mid-batch (SIGKILL); the hub starts it again; it finds the batch by its
    pid and sees it to its end with every run."""
    hub = sf_bench_hub
    ben = person(hub, "ben")
    reply = ben.submit(program="bench-probe", team=ACME, set={"x": [11, 12, 13, 14], "sleep": 3.0})
    assert reply.status_code == 201, reply.text
    batch_id = reply.json()["id"]
    ben.wait(batch_id, states=("running",))
    batch_process = psutil.Process(queued_pid(hub, batch_id))
    old_service = service_pid(hub)
    os.kill(old_service, signal.SIGKILL)
    assert batch_process.is_running()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the hub restarts its managed service
        try:
            if service_pid(hub) != old_service and ben.api("GET", "").status_code == 200:
                break
        except (AssertionError, requests.RequestException, psutil.Error):
            pass
        time.sleep(0.5)
    done = ben.wait(batch_id)
    assert done["state"] == "finished", done
    assert done["progress"]["counts"] == {"passed": 4}
    assert done["attempts"] == 1  # found again, not started again


@pytest.mark.browser
@needs_chromium
def test_a_member_submits_from_the_page_and_watches_it_finish(
    sf_bench_hub: RunningHub, tmp_path: Path
) -> None:
    hub = sf_bench_hub
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(120_000)
        page = context.new_page()
        page.goto(f"{hub.url}services/testbench/programs/bench-probe")
        page.fill("#username_input", "ben")
        page.fill("#password_input", hub.password("ben"))
        with page.expect_navigation():
            page.click("#login_submit")
        page.wait_for_selector("form.sf-submit")
        page.select_option("form.sf-submit select[name=team]", ACME)
        page.fill("form.sf-submit textarea[name=set]", "x = [21, 22]\nsleep = 1")
        with page.expect_navigation():
            page.click("form.sf-submit button[type=submit]")
        assert "/services/testbench/batches/tb-" in page.url
        page.wait_for_selector(".sf-state-finished", timeout=240_000)
        assert page.inner_text(".sf-done") == "2"
        page.screenshot(path=str(tmp_path / "batch.png"))
        with page.expect_navigation():
            page.click("a.sf-report")
        assert "bench-probe" in page.content()
        # a refused submission shows the problems field by field, and queues nothing
        page.goto(f"{hub.url}services/testbench/programs/bench-probe")
        page.select_option("form.sf-submit select[name=team]", ACME)
        page.fill("form.sf-submit textarea[name=set]", "nope = 1")
        page.click("form.sf-submit button[type=submit]")
        page.wait_for_selector(".sf-problems:has-text('set.nope')")
        context.close()


def _metrics(client: BenchClient, batch_id: str) -> dict[str, Any]:
    runs = client.page(f"batches/{batch_id}/report/runs.json").json()["runs"]
    return dict(runs[0]["metrics"])


def test_another_teams_program_runs_sealed_from_the_network(sf_bench_hub: RunningHub) -> None:
    """Voltronic runs ACME's program: its kernels cannot reach a port on the host; ACME running
    its own program can (so the probe does detect a reachable port)."""
    hub = sf_bench_hub
    vera, ben = person(hub, "vera"), person(hub, "ben")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        listener.settimeout(0.1)
        results = {}
        for client, team in ((vera, "voltronic"), (ben, ACME)):
            reply = client.submit(program="bench-probe", team=team,
                                  set={"x": 1, "probe_port": port})  # fmt: skip
            assert reply.status_code == 201, reply.text
            done = client.wait(reply.json()["id"])
            assert done["state"] == "finished", done
            results[team] = (done["sealed"], _metrics(client, done["id"])["reaches_probe_port"])
    assert results == {"voltronic": (True, False), ACME: (False, True)}


def test_register_and_submit_from_a_terminal(sf_bench_hub: RunningHub, tmp_path: Path) -> None:
    """``smartfab programs register | submit | batch`` through the service's API, as ben."""
    hub = sf_bench_hub
    ben = person(hub, "ben")
    env = {**os.environ, "SMARTFAB_TESTBENCH_URL": f"{hub.url}services/testbench/",
           "SMARTFAB_TOKEN": str(ben.client.token)}  # fmt: skip

    def smartfab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SMARTFAB, *args], capture_output=True, text=True, env=env,
                              check=False, timeout=300)  # fmt: skip

    spec = write_probe_program(tmp_path / "v2")
    spec.write_text(spec.read_text().replace('"x": [1, 2, 3]', '"x": [1, 2]'))
    registered = smartfab("programs", "register", str(spec), "--team", ACME, "--json")
    assert registered.returncode == 0, registered.stderr
    version = json.loads(registered.stdout)["version"]
    assert json.loads(registered.stdout)["created"] and version["number"] >= 2
    number = str(version["number"])
    submitted = smartfab("programs", "submit", "bench-probe", "--team", ACME, "--version", number,
                         "--set", "x=[3, 4, 5]", "--wait", "--json")  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    batch = json.loads(submitted.stdout)
    assert (batch["state"], batch["runs"], batch["version"]) == ("finished", 3, version["number"])
    shown = smartfab("programs", "batch", batch["id"])
    assert shown.returncode == 0 and "finished" in shown.stdout
    # refusals: the service's problems, field by field, and a non-zero exit
    unknown = smartfab("programs", "submit", "nope")
    assert unknown.returncode == 10 and "404" in unknown.stderr and "program" in unknown.stderr
    bad = smartfab("programs", "submit", "bench-probe", "--team", ACME, "--set", "x=many")
    assert bad.returncode == 10 and "set.x" in bad.stderr, bad.stderr
    not_pair = smartfab("programs", "submit", "bench-probe", "--set", "x")
    assert not_pair.returncode == 2 and "NAME=VALUE" in not_pair.stderr
    viewer_spec = smartfab("programs", "register", str(spec), "--team", "voltronic")
    assert viewer_spec.returncode == 10 and "403" in viewer_spec.stderr


def test_an_admin_enters_a_teams_results_only_through_logged_break_glass(
    sf_bench_hub: RunningHub,
) -> None:
    hub = sf_bench_hub
    olga, vera, wim = person(hub, "olga"), person(hub, "vera"), person(hub, "wim")
    reply = vera.submit(program="bench-probe", team="voltronic", set={"x": 8})
    assert reply.status_code == 201, reply.text
    batch_id = vera.wait(reply.json()["id"])["id"]
    # the operator is no way in
    assert olga.api("GET", f"batches/{batch_id}").status_code == 403
    assert olga.page(f"batches/{batch_id}/report/").status_code == 403
    # break-glass: admins only, with a reason, for a known team
    assert vera.api("POST", "break-glass", json={"team": "voltronic", "reason": "x" * 12}
                    ).status_code == 403  # fmt: skip
    short = olga.api("POST", "break-glass", json={"team": "voltronic", "reason": "why"})
    assert short.status_code == 400 and "reason" in str(short.json()["problems"])
    unknown = olga.api("POST", "break-glass", json={"team": "nope", "reason": "x" * 12})
    assert unknown.status_code == 404
    reason = "support ticket 4711: the firm asked why its batch failed"
    entered = olga.api("POST", "break-glass", json={"team": "voltronic", "reason": reason})
    assert entered.status_code == 201, entered.text
    assert olga.api("GET", f"batches/{batch_id}").status_code == 200
    assert olga.page(f"batches/{batch_id}/report/").status_code == 200
    # only that team: ACME's batches stay closed to her
    acme = person(hub, "ben").submit(program="bench-probe", team=ACME, set={"x": 9})
    assert olga.api("GET", f"batches/{acme.json()['id']}").status_code == 403
    # the team's people see who entered, when and why: on the page, in the API, in their folder
    for someone in (vera, wim):
        seen = someone.api("GET", "break-glass").json()
        assert [(e["admin"], e["team"], e["reason"]) for e in seen] == [
            ("olga", "voltronic", reason)
        ]
        assert reason in someone.page("").text
    log = hub.state_dir / "teams" / "voltronic" / ".testbench" / "break-glass.log"
    assert reason in log.read_text()
    assert log.stat().st_gid == grp.getgrnam(f"{hub.prefix}team-voltronic").gr_gid
    # another firm does not see Voltronic's break-glass
    assert person(hub, "ben").api("GET", "break-glass").json() == []


def test_an_admin_enters_a_team_workspace_only_through_break_glass(
    sf_bench_hub: RunningHub,
) -> None:
    """JupyterHub's admin role opens every server; the team's server refuses an admin all the
    same until she enters through break-glass, which the team sees."""
    hub = sf_bench_hub
    ben, olga = person(hub, "ben"), person(hub, "olga")
    workspace = f"team-{ACME}"
    started = ben.client.start_server(workspace)
    assert started.status_code in (201, 202), started.text
    ben.client.wait_for_server(workspace)
    assert ben.client.server_api("GET", workspace, "status").status_code == 200
    refused = olga.client.server_api("GET", workspace, "status")
    assert refused.status_code == 403, refused.text
    # over the browser's OAuth as well: the hub lets her through, the server does not
    page = olga.client.session.get(f"{hub.url}user/{workspace}/lab", timeout=60)
    assert page.status_code == 403
    assert "only through break-glass" in page.text  # a page that says why, not an empty 403
    reason = "incident 12: ACME's lead asked for help with a stuck kernel in the workspace"
    entered = olga.api("POST", "break-glass", json={"team": ACME, "reason": reason})
    assert entered.status_code == 201, entered.text
    assert olga.client.server_api("GET", workspace, "status").status_code == 200
    assert reason in [e["reason"] for e in ben.api("GET", "break-glass").json()]
    assert ben.client.stop_server(workspace).status_code in (202, 204)


IMPORT_CARD = """\
id: voltronic-line-3
title: Line 3 reflow oven fan vibration
description: One minute of fan vibration on Voltronic's reflow oven, line 3.
recording:
  machine: reflow oven R3
  recorded_by: Voltronic maintenance
  recorded_at: 2026-11-30T10:00:00
  method: accelerometer on the fan housing, exported as CSV by the controller
sampling_rate_hz: 100
variables:
  vibration: {units: m s-2, long_name: fan vibration, column: acc}
"""


def test_a_firm_imports_its_own_recording_and_runs_a_program_on_it(
    sf_bench_hub: RunningHub,
) -> None:
    hub = sf_bench_hub
    vera, wim, ben = person(hub, "vera"), person(hub, "wim"), person(hub, "ben")
    csv = "acc\n" + "\n".join(f"{(i % 7) * 0.1:.1f}" for i in range(600)) + "\n"
    body = {"team": "voltronic", "file_name": "line3.csv", "card": IMPORT_CARD,
            "content_base64": base64.b64encode(csv.encode()).decode()}  # fmt: skip
    # bad imports are refused field by field, and nothing is kept
    assert wim.api("POST", "datasets", json=body).status_code == 403
    assert ben.api("POST", "datasets", json={**body}).status_code == 403
    bad_units = vera.api("POST", "datasets", json={**body, "card": IMPORT_CARD.replace(
        "m s-2", "bananas per drawer")})  # fmt: skip
    assert bad_units.status_code == 422, bad_units.text
    assert "card.variables" in str(bad_units.json()["problems"])
    no_column = vera.api("POST", "datasets", json={**body, "card": IMPORT_CARD.replace(
        "column: acc", "column: accel")})  # fmt: skip
    assert no_column.status_code == 422 and "accel" in no_column.text
    assert vera.api("GET", "datasets").json() == []
    imported = vera.api("POST", "datasets", json=body)
    assert imported.status_code == 201, imported.text
    assert [d["id"] for d in wim.api("GET", "datasets").json()] == ["voltronic-line-3"]
    assert ben.api("GET", "datasets").json() == []
    # Voltronic runs ACME's program on it, sealed, as its run account
    reply = vera.submit(program="bench-probe", team="voltronic",
                        set={"x": 1, "dataset": "voltronic-line-3"})  # fmt: skip
    assert reply.status_code == 201, reply.text
    done = vera.wait(reply.json()["id"])
    assert done["state"] == "finished" and done["sealed"], done
    assert wim.page(f"batches/{done['id']}/report/").status_code == 200
    # ACME may not use Voltronic's recording
    refused = ben.submit(program="bench-probe", team=ACME, set={"dataset": "voltronic-line-3"})
    assert refused.status_code == 403 and "voltronic-line-3" in refused.text


def test_a_batch_survives_logout_server_stop_and_hub_restart(sf_bench_hub: RunningHub) -> None:
    """ben submits, logs out, his server is stopped and the operator restarts the hub mid-batch:
    the batch finishes with every run, found again rather than started again."""
    hub = sf_bench_hub
    ben = person(hub, "ben")
    assert ben.client.start_server().status_code in (201, 202)
    ben.client.wait_for_server()
    reply = ben.submit(program="bench-probe", team=ACME, set={"x": [31, 32, 33, 34], "sleep": 4.0})
    assert reply.status_code == 201, reply.text
    batch_id = reply.json()["id"]
    ben.wait(batch_id, states=("running",))
    batch_process = psutil.Process(queued_pid(hub, batch_id))
    ben.client.session.get(f"{hub.url}hub/logout", timeout=30)
    assert ben.client.stop_server().status_code in (202, 204)
    assert hub.stop(keep_servers=True) == 0
    assert batch_process.is_running()
    hub.start()
    done = ben.wait(batch_id)
    assert done["state"] == "finished", done
    assert done["progress"]["counts"] == {"passed": 4}
    assert done["attempts"] == 1
    assert not batch_process.is_running()


def test_a_member_registers_a_library_program_which_a_granted_firm_then_sees(
    sf_bench_hub: RunningHub,
) -> None:
    hub = sf_bench_hub
    ben, vera, wim = person(hub, "ben"), person(hub, "vera"), person(hub, "wim")
    assert "bearing-fault-detector" in ben.api("GET", "programs/library").json()
    assert "bearing-fault-detector" not in [p["id"] for p in vera.api("GET", "programs").json()]
    body = {"id": "bearing-fault-detector", "team": ACME}
    assert wim.api("POST", "programs/library", json={**body, "team": "voltronic"}
                   ).status_code == 403  # fmt: skip
    assert ben.api("POST", "programs/library", json={**body, "id": "nope"}).status_code == 404
    registered = ben.api("POST", "programs/library", json=body)
    assert registered.status_code == 201, registered.text
    assert registered.json()["program"]["team"] == ACME
    assert "bearing-fault-detector" not in ben.api("GET", "programs/library").json()
    # Voltronic is granted it in the alliance file: it sees it and may run it
    seen = {p["id"]: p for p in vera.api("GET", "programs").json()}
    assert seen["bearing-fault-detector"]["team"] == ACME
    assert "Submit a batch" in vera.page("programs/bearing-fault-detector").text
    # a team that is not granted it does not see it at all
    assert "bearing-fault-detector" not in [p["id"] for p in person(hub, "mia").api(
        "GET", "programs").json()]  # fmt: skip
