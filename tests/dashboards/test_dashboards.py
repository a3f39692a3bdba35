"""Dashboards through the hub: registry, grants, publishing, and the ``dashboards`` service.

The service tests start a real hub, proxy, service and Voila on 127.0.0.1 with tiny widget
notebooks, and log in as a firm viewer (wim of voltronic) and an acme viewer (carl).
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from smartfab.alliance import GrantReferences, load_alliance
from smartfab.dashboards.access import DashboardAccess, access_role, teams_of_groups
from smartfab.dashboards.registry import DashboardCatalog, curated_registry
from smartfab.dashboards.relay import KERNEL_PROTOCOL_V1, client_message_allowed
from smartfab.errors import AllianceError, DashboardError
from smartfab.resources import LIBRARY_ENV
from tests.support.dashboardtools import (
    FAILING_APP,
    FAILURE_MARKER,
    SOURCE_MARKER,
    make_project,
    project_library,
    write_notebook,
)
from tests.support.hubtools import SMARTFAB, RunningHub

PREFIX = "services/dashboards/"
GALLERY_ID = re.compile(r'data-dashboard-id="([^"]+)"')
RENDER_TIMEOUT = 180


@pytest.fixture
def sf_project(tmp_path: Path) -> Path:
    """A project folder with the demo alliance and fixture apps; returns the alliance file."""
    return make_project(tmp_path / "project")


def smartfab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SMARTFAB, *args], capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------- registry, grants, CLI


def test_registry_and_grants(
    sf_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LIBRARY_ENV, str(project_library(sf_project)))
    registry = curated_registry()
    assert registry == sf_project.parents[1] / "notebooks" / "apps" / "dashboards.yaml"
    catalog = DashboardCatalog.for_hub(tmp_path / "state")
    assert catalog.registry == registry
    assert catalog.ids() == {"machine-health", "tool-life", "spc-chart", "oee-dashboard"}
    access = DashboardAccess(load_alliance(sf_project))
    wim = [d.id for d in access.visible(catalog.all(), ["voltronic-viewers"])]
    carl = [d.id for d in access.visible(catalog.all(), ["acme-machining-viewers"])]
    assert sorted(wim) == ["oee-dashboard", "spc-chart"]
    assert sorted(carl) == ["machine-health", "tool-life"]
    assert access.visible(catalog.all(), ["unrelated", "team-acme-machining"]) == []
    assert teams_of_groups(["spindle-health", "x-viewers"], ["spindle-health"]) == {
        "spindle-health"
    }


def test_the_service_reads_the_hub_settings(
    sf_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service is configured from the settings file the hub writes, nothing else."""
    from smartfab.dashboards.hubservice import dashboards_service
    from smartfab.dashboards.service import service_state
    from smartfab.host.settings import HubSettings, SpawnMode, load_settings

    monkeypatch.setenv(LIBRARY_ENV, str(project_library(sf_project)))
    settings = HubSettings(
        alliance_file=sf_project,
        state_dir=tmp_path / "state",
        home_root=tmp_path / "home",
        spawn_mode=SpawnMode.single,
        account_prefix="sfx-",
        dashboard_pool_size=3,
    )
    settings.save()
    environment = dashboards_service(settings)["environment"]
    assert environment[LIBRARY_ENV] == str(project_library(sf_project))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    state = service_state(load_settings(), "/services/dashboards/", "/hub/")
    assert state.backends.pool_size == 3
    assert state.backends.layout.prefix == "sfx-"
    assert state.backends.layout.mode is SpawnMode.single
    assert state.backends.layout.state.root == tmp_path / "state"
    assert state.catalog.ids() == {"machine-health", "tool-life", "spc-chart", "oee-dashboard"}
    assert state.hub_home == "/hub/home"


def test_access_role_covers_every_team_group(sf_project: Path) -> None:
    role = access_role(load_alliance(sf_project))
    assert "access:services!service=dashboards" in role["scopes"]  # type: ignore[operator]
    assert {"voltronic", "voltronic-viewers", "acme-machining-viewers"} <= set(
        role["groups"]  # type: ignore[call-overload]
    )


def test_curated_grants_must_exist(sf_project: Path) -> None:
    text = sf_project.read_text().replace("[spc-chart, oee-dashboard]", "[spc-chart, no-such]")
    sf_project.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "no-such" in row)
    known = GrantReferences(
        kind="dashboards", noun="dashboard", known=frozenset({"spc-chart", "oee-dashboard"})
    )
    with pytest.raises(AllianceError) as err:
        load_alliance(sf_project, [known])
    assert (
        f"{sf_project}:{line}: teams[1].grants.dashboards[1]: unknown dashboard 'no-such'"
        in str(err.value)
    )
    done = smartfab("hub", "check", str(sf_project))
    assert done.returncode == 2, done.stderr
    assert "'no-such'" in done.stderr and "teams[1].grants.dashboards[1]" in done.stderr


def test_publish_and_list(sf_project: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    app = write_notebook(tmp_path / "Line_Report.ipynb", "print(1)\n")
    base = ["--config", str(sf_project), "--state-dir", str(state)]
    done = smartfab("dashboards", "publish", str(app), "--team", "voltronic", *base)
    assert done.returncode == 0, done.stderr
    listed = json.loads(smartfab("dashboards", "list", "--json", *base).stdout)
    rows = {row["id"]: row for row in listed}
    assert rows["line-report"]["teams"] == ["voltronic"]
    assert rows["line-report"]["origin"] == "published"
    assert rows["spc-chart"]["teams"] == ["voltronic"]
    assert (state / "dashboards" / "serve" / "line-report.ipynb").is_file()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--team", "no-such-team"], "'no-such-team'"),
        (["--team", "voltronic", "--id", "spc-chart"], "'spc-chart' is already taken"),
        (["--team", "voltronic", "--id", "voila"], "reserved"),
    ],
)
def test_publish_refusals(sf_project: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    state = tmp_path / "state"
    app = write_notebook(tmp_path / "app.ipynb", "print(1)\n")
    base = ["--config", str(sf_project), "--state-dir", str(state)]
    done = smartfab("dashboards", "publish", str(app), *args, *base)
    assert done.returncode == DashboardError.exit_code, done.stderr
    assert needle in done.stderr
    assert not (state / "dashboards" / "published.json").exists()
    assert not list(state.rglob("*.ipynb"))


def test_publish_missing_notebook(sf_project: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.ipynb"
    done = smartfab(
        "dashboards", "publish", str(missing), "--team", "voltronic",
        "--config", str(sf_project), "--state-dir", str(tmp_path / "state"),
    )  # fmt: skip
    assert done.returncode == DashboardError.exit_code
    assert str(missing) in done.stderr
    assert not (tmp_path / "state" / "dashboards" / "published.json").exists()


def test_relay_lets_only_widget_messages_through() -> None:
    def msg(msg_type: str, channel: str = "shell") -> str:
        return json.dumps({"channel": channel, "header": {"msg_type": msg_type}, "content": {}})

    assert client_message_allowed(msg("comm_msg"))
    assert client_message_allowed(msg("kernel_info_request"))
    assert not client_message_allowed(msg("execute_request"))
    assert not client_message_allowed(msg("complete_request"))
    assert not client_message_allowed(msg("input_reply", "stdin"))
    assert not client_message_allowed(b"\x00\x00")
    assert not client_message_allowed("not json")


def v1_message(msg_type: str, channel: str = "shell") -> bytes:
    """A message in the ``v1.kernel.websocket.jupyter.org`` framing JupyterLab sends."""
    parts = [channel.encode(), json.dumps({"msg_type": msg_type}).encode(), b"{}", b"{}", b"{}"]
    offsets = [8 * (len(parts) + 2)]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    head = struct.pack(f"<{len(offsets) + 1}Q", len(offsets), *offsets)
    return head + b"".join(parts)


def test_relay_filters_the_v1_kernel_protocol() -> None:
    assert client_message_allowed(v1_message("comm_msg"), KERNEL_PROTOCOL_V1)
    assert not client_message_allowed(v1_message("execute_request"), KERNEL_PROTOCOL_V1)
    assert not client_message_allowed(v1_message("input_reply", "stdin"), KERNEL_PROTOCOL_V1)
    assert not client_message_allowed(v1_message("comm_msg")[:20], KERNEL_PROTOCOL_V1)
    legacy = json.dumps({"channel": "shell", "header": {"msg_type": "comm_msg"}})
    assert not client_message_allowed(legacy, KERNEL_PROTOCOL_V1)


# ---------------------------------------------------------------- the service in a real hub


@pytest.fixture(scope="module")
def sf_dash_hub(
    sf_hub_factory: Callable[..., RunningHub], sf_public_tmp: Path
) -> Iterator[RunningHub]:
    """A hub of the fixture project: its dashboards service serves the fixture apps."""
    alliance = make_project(sf_public_tmp / "dashboards-project")
    hub = sf_hub_factory(alliance=alliance, library=project_library(alliance))
    hub.start()
    yield hub
    hub.stop()


def viewer(hub: RunningHub, user: str) -> requests.Session:
    return hub.client(user, token=False).session


def get(session: requests.Session, hub: RunningHub, path: str, **kw: object) -> requests.Response:
    return session.get(f"{hub.url}{PREFIX}{path}", timeout=RENDER_TIMEOUT, **kw)  # type: ignore[arg-type]


def gallery_ids(session: requests.Session, hub: RunningHub) -> list[str]:
    reply = get(session, hub, "")
    assert reply.status_code == 200, reply.text[:500]
    return sorted(GALLERY_ID.findall(reply.text))


PROBE = re.compile(r"probe: (user=\S+ uid=\d+ teams=\S+ [^<\n]*)")


def probe(hub: RunningHub, user: str, dashboard: str) -> dict[str, str]:
    """What the probe app of ``dashboard`` printed when rendered for ``user``."""
    page = get(viewer(hub, user), hub, f"{dashboard}/")
    assert page.status_code == 200, page.text[:500]
    found = PROBE.search(page.text)
    assert found, f"no probe output in {dashboard}: {page.text[-2000:]}"
    return dict(part.split("=", 1) if "=" in part else part.split(":", 1)
                for part in found.group(1).split())  # fmt: skip


@pytest.mark.hub
def test_team_kernels_run_as_team_dashboards_accounts(
    sf_dash_hub: RunningHub, sf_account_prefix: str
) -> None:
    """Each firm's kernels run as its own unprivileged account and read no other firm's folder."""
    voltronic = probe(sf_dash_hub, "wim", "oee-dashboard")
    acme = probe(sf_dash_hub, "carl", "machine-health")
    assert voltronic["teams"] == "voltronic" and acme["teams"] == "acme-machining"
    assert voltronic["hubtoken"] == acme["hubtoken"] == "False"  # the service's token stays
    if sf_dash_hub.spawn_mode != "system":
        return
    assert voltronic["user"] == f"{sf_account_prefix}dash-voltronic"
    assert acme["user"] == f"{sf_account_prefix}dash-acme-machining"
    assert voltronic["uid"] != "0" and acme["uid"] != "0"
    assert voltronic["acme-machining"] == "PermissionError"
    assert acme["voltronic"] == "PermissionError"
    assert voltronic["voltronic"] == "readable" and acme["acme-machining"] == "readable"


@pytest.mark.hub
def test_gallery_per_firm(sf_dash_hub: RunningHub) -> None:
    assert gallery_ids(viewer(sf_dash_hub, "wim"), sf_dash_hub) == ["oee-dashboard", "spc-chart"]
    assert gallery_ids(viewer(sf_dash_hub, "carl"), sf_dash_hub) == ["machine-health", "tool-life"]


@pytest.mark.hub
def test_viewer_opens_granted_dashboard_only(sf_dash_hub: RunningHub) -> None:
    wim = viewer(sf_dash_hub, "wim")
    page = get(wim, sf_dash_hub, "spc-chart/")
    assert page.status_code == 200, page.text[:500]
    assert "application/vnd.jupyter.widget-view+json" in page.text
    assert SOURCE_MARKER not in page.text
    assert get(wim, sf_dash_hub, "machine-health/").status_code == 403
    assert get(wim, sf_dash_hub, "no-such-app/").status_code == 404


REFUSED = [
    ("GET", "voila/tree"),
    ("GET", "voila/render/spc-chart.ipynb"),
    ("GET", "voila/render/machine-health.ipynb"),
    ("GET", "voila/api/contents"),
    ("GET", "voila/files/spc-chart.ipynb"),
    ("GET", "api/contents"),
    ("GET", "api/kernels"),
    ("POST", "api/kernels"),
    ("GET", "api/sessions"),
    ("GET", "api/terminals"),
    ("POST", "api/terminals"),
    ("GET", "lab"),
    ("GET", "tree"),
    ("GET", "terminals/1"),
]


@pytest.mark.hub
def test_everything_else_is_refused(sf_dash_hub: RunningHub) -> None:
    wim = viewer(sf_dash_hub, "wim")
    get(wim, sf_dash_hub, "")  # completes the OAuth dance
    for method, path in REFUSED:
        reply = wim.request(method, f"{sf_dash_hub.url}{PREFIX}{path}", timeout=30)
        assert reply.status_code in (403, 404), (method, path, reply.status_code)
        assert SOURCE_MARKER not in reply.text


#: a URL in an attribute or an import of a page: ``src="..."``, ``href='...'``, ``import("...")``
PAGE_URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']""")


@pytest.mark.hub
def test_dashboard_page_fetches_nothing_from_other_hosts(sf_dash_hub: RunningHub) -> None:
    """No CDN style sheet or script: the page works on a factory network without internet, and
    no third party learns who opens which dashboard. Every template file it names is served."""
    wim = viewer(sf_dash_hub, "wim")
    page = get(wim, sf_dash_hub, "spc-chart/")
    assert page.status_code == 200
    urls = [a or b for a, b in PAGE_URL.findall(page.text)]
    assert any(PREFIX + "voila/static/voila.js" in url for url in urls), urls
    foreign = [url for url in urls if urlparse(url).netloc or url.startswith("//")]
    assert foreign == [], foreign
    template_files = [url for url in urls if "/voila/templates/" in url]
    assert template_files, urls
    for url in template_files:
        assert f"{PREFIX}voila/templates/smartfab/static/" in url, url
        reply = wim.get(sf_dash_hub.url.rstrip("/") + url, timeout=30)
        assert reply.status_code == 200, (url, reply.status_code)
        assert "immutable" in reply.headers["Cache-Control"]


@pytest.mark.hub
def test_kernel_of_another_person_is_refused(sf_dash_hub: RunningHub) -> None:
    """A kernel id seen in wim's page gives carl nothing (the websocket upgrade is refused)."""
    wim = viewer(sf_dash_hub, "wim")
    page = get(wim, sf_dash_hub, "spc-chart/")
    kernel = re.search(r'"kernelId"\s*:\s*"([0-9a-f-]{36})"', page.text)
    assert kernel, "rendered page names no kernel"
    carl = viewer(sf_dash_hub, "carl")
    get(carl, sf_dash_hub, "")
    headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip
    url = f"{sf_dash_hub.url}{PREFIX}api/kernels/{kernel.group(1)}/channels"
    assert carl.get(url, headers=headers, timeout=30).status_code == 403
    assert requests.get(url, headers=headers, timeout=30).status_code in (302, 403)


@pytest.mark.hub
def test_assets_from_the_service_cached_by_version(sf_dash_hub: RunningHub) -> None:
    """Voila's files come from the service: versioned ones immutable, the others revalidated;
    nothing outside the asset folders, and nothing without the hub identity."""
    wim = viewer(sf_dash_hub, "wim")
    page = get(wim, sf_dash_hub, "spc-chart/")
    config = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                       page.text, re.S)  # fmt: skip
    assert config, "the page has no page config"
    extensions = json.loads(config.group(1))["federated_extensions"]
    assert extensions, "the page loads no JupyterLab extension"
    first = extensions[0]
    hashed = get(wim, sf_dash_hub, f"voila/labextensions/{first['name']}/{first['load']}")
    assert hashed.status_code == 200
    assert "immutable" in hashed.headers["Cache-Control"]
    plain = get(wim, sf_dash_hub, "voila/static/voila.js")
    assert plain.status_code == 200 and "Etag" in plain.headers
    assert "immutable" not in plain.headers.get("Cache-Control", "")
    assert get(wim, sf_dash_hub, "voila/static/../../voila/__init__.py").status_code in (403, 404)
    anonymous = requests.get(f"{sf_dash_hub.url}{PREFIX}voila/static/voila.js",
                             allow_redirects=False, timeout=30)  # fmt: skip
    assert anonymous.status_code == 302


@pytest.mark.hub
def test_unauthenticated_goes_to_hub_login(sf_dash_hub: RunningHub) -> None:
    first = requests.get(f"{sf_dash_hub.url}{PREFIX}", allow_redirects=False, timeout=30)
    assert first.status_code == 302
    assert "/hub/api/oauth2/authorize" in first.headers["Location"]
    final = requests.get(f"{sf_dash_hub.url}{PREFIX}spc-chart/", timeout=30)
    assert final.url.startswith(f"{sf_dash_hub.url}hub/login"), final.url


@pytest.mark.hub
def test_publish_reaches_viewer_without_restart(
    sf_dash_hub: RunningHub, sf_public_tmp: Path
) -> None:
    hub = sf_dash_hub
    wim = viewer(hub, "wim")
    assert "line-report" not in gallery_ids(wim, hub)
    app = write_notebook(sf_public_tmp / "line_report.ipynb", "import ipywidgets\nprint(1)\n")
    failing = write_notebook(sf_public_tmp / "broken.ipynb", FAILING_APP)
    base = ["--config", str(hub.alliance), "--state-dir", str(hub.state_dir)]
    for notebook, app_id in ((app, "line-report"), (failing, "broken-app")):
        done = smartfab("dashboards", "publish", str(notebook), "--team", "voltronic",
                        "--id", app_id, *base)  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert gallery_ids(wim, hub) == ["broken-app", "line-report", "oee-dashboard", "spc-chart"]
    assert get(wim, hub, "line-report/").status_code == 200
    carl = viewer(hub, "carl")
    assert get(carl, hub, "line-report/").status_code == 403

    broken = get(wim, hub, "broken-app/")
    assert FAILURE_MARKER not in broken.text
    assert "Traceback" not in broken.text and "RuntimeError" not in broken.text
    assert SOURCE_MARKER not in broken.text


@pytest.mark.hub
def test_viewer_has_no_server(sf_dash_hub: RunningHub) -> None:
    wim = viewer(sf_dash_hub, "wim")
    reply = wim.get(f"{sf_dash_hub.url}user/wim/lab", timeout=30, allow_redirects=True)
    assert reply.status_code in (403, 404, 424, 503) or "/hub/" in reply.url
    assert "jp-LabShell" not in reply.text
