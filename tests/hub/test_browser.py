"""The hub in a real browser: people log in through the form in Debian's chromium (Playwright).

A member reaches JupyterLab on their own server, then opens the team workspace and sees a notebook
written into the shared team folder; a viewer gets the hub home page and a 403 for the workspace.
Screenshots go to ``tests/artifacts/``.
"""

from __future__ import annotations

import secrets
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.support.browsertools import chromium, needs_chromium
from tests.support.hubtools import ARTIFACTS, HubClient, RunningHub

pytestmark = [pytest.mark.browser, pytest.mark.hub]

VIEWPORT = {"width": 1280, "height": 800}

TEAM = "acme-machining"
WORKSPACE = f"team-{TEAM}"
#: a spawn may take a while on a busy 2-core machine (the hub's own start_timeout is 120 s)
SPAWN_TIMEOUT_MS = 120_000
PAGE_TIMEOUT_MS = 30_000
EMPTY_NOTEBOOK: dict[str, Any] = {
    "type": "notebook",
    "content": {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5},
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sf_browser_hub(sf_hub_factory: Callable[..., RunningHub]) -> Iterator[RunningHub]:
    """The demo alliance hub, for the whole module."""
    hub = sf_hub_factory()
    hub.start()
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def sf_browser() -> Iterator[Browser]:
    """Debian's chromium, headless (never a downloaded browser)."""
    with chromium() as browser:
        yield browser


@pytest.fixture
def sf_context(sf_browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser context (no cookies) for one person."""
    context = sf_browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    yield context
    context.close()


def log_in(page: Page, hub: RunningHub, user: str) -> None:
    """Fill the hub's login form (NativeAuthenticator) and submit it, as a person would."""
    page.goto(f"{hub.url}hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", hub.password(user))
    with page.expect_navigation(timeout=SPAWN_TIMEOUT_MS):
        page.click("#login_submit")


def in_lab_of(owner: str) -> Callable[[str], bool]:
    """URL predicate: JupyterLab of ``owner``'s server."""
    return lambda url: f"/user/{owner}/lab" in url


def is_oauth_consent(url: str) -> bool:
    return "/hub/api/oauth2/authorize" in url


def wait_for_lab(page: Page, owner: str, visitor: str) -> None:
    """Wait until JupyterLab of ``owner``'s server has loaded for ``visitor`` and shows its file
    browser."""
    page.wait_for_url(in_lab_of(owner), timeout=SPAWN_TIMEOUT_MS)
    page.wait_for_selector("#jp-main-dock-panel", timeout=SPAWN_TIMEOUT_MS)
    page.wait_for_selector(".jp-DirListing-content", timeout=PAGE_TIMEOUT_MS)
    config = page.evaluate("JSON.parse(document.getElementById('jupyter-config-data').textContent)")
    # the server's owner and the person logged in to it, as the page reports them
    assert (config["hubServerUser"], config["hubUser"]) == (owner, visitor), config


def listed(page: Page, name: str) -> None:
    """Wait until the file browser lists ``name``."""
    listing = page.locator(".jp-DirListing-content")
    listing.get_by_text(name, exact=True).wait_for(timeout=PAGE_TIMEOUT_MS)


def has_lab(page: Page) -> bool:
    return page.locator("#jp-main-dock-panel, .jp-LabShell").count() > 0


def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot in ``tests/artifacts/``; check it is a real, non-trivial PNG."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    path.unlink(missing_ok=True)
    page.screenshot(path=str(path), full_page=True)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC), f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # IHDR comes first
    assert (width, height) >= (VIEWPORT["width"], VIEWPORT["height"]), (width, height)
    assert len(data) > 10_000, f"{path} is only {len(data)} bytes"
    return path


def server_running(client: HubClient, owner: str) -> bool:
    model = client.api("GET", f"users/{owner}").json()
    return "" in (model.get("servers") or {})


def stop_and_wait(client: HubClient, owner: str, timeout: float = 60) -> None:
    """Stop ``owner``'s server (if any) and wait until the hub no longer lists it."""
    reply = client.stop_server(owner)
    assert reply.status_code in (202, 204, 400), reply.text  # 400: not running
    deadline = time.monotonic() + timeout
    while server_running(client, owner):
        assert time.monotonic() < deadline, f"server of {owner} still listed after {timeout} s"
        time.sleep(0.25)


@needs_chromium
def test_member_reaches_lab_and_team_workspace(
    sf_browser_hub: RunningHub, sf_context: BrowserContext
) -> None:
    """ben logs in to JupyterLab on his server, then opens the workspace of his team."""
    hub = sf_browser_hub
    ben = hub.client("ben")
    page = sf_context.new_page()
    try:
        log_in(page, hub, "ben")
        wait_for_lab(page, "ben", "ben")
        listed(page, "teams")

        # a notebook written into the team folder through ben's own server ...
        notebook = f"browser-check-{secrets.token_hex(3)}.ipynb"
        reply = ben.server_api(
            "PUT", "ben", f"contents/teams/{TEAM}/{notebook}", json=EMPTY_NOTEBOOK
        )
        assert reply.status_code == 201, reply.text

        # ... is in the root of the team workspace, which ben may start
        page.goto(f"{hub.url}hub/spawn/{WORKSPACE}")
        page.wait_for_url(
            lambda url: in_lab_of(WORKSPACE)(url) or is_oauth_consent(url),
            timeout=SPAWN_TIMEOUT_MS,
        )
        # members go straight in: their team's workspace is on the hub's no-consent list
        assert not is_oauth_consent(page.url), page.url
        wait_for_lab(page, WORKSPACE, "ben")
        listed(page, notebook)
        assert page.url.startswith(f"{hub.url}user/{WORKSPACE}/lab")
        assert server_running(ben, WORKSPACE)
        screenshot(page, "browser-team-workspace.png")
    finally:
        page.close()
        for owner in (WORKSPACE, "ben"):
            stop_and_wait(ben, owner)


@needs_chromium
def test_viewer_gets_hub_home_and_403(
    sf_browser_hub: RunningHub, sf_context: BrowserContext
) -> None:
    """carl (viewer) gets the hub home page, and no way into the team workspace."""
    hub = sf_browser_hub
    ben = hub.client("ben")
    page = sf_context.new_page()
    try:
        log_in(page, hub, "carl")
        page.wait_for_url(f"{hub.url}hub/home")
        assert not has_lab(page)
        page.wait_for_selector("#smartfab-viewer-home")
        assert page.locator("#start").count() == 0  # no "Start My Server" button
        assert "ACME Machining" in page.inner_text("#smartfab-viewer-home")
        screenshot(page, "browser-viewer-home.png")

        # no server of his own, even when asking for it directly
        response = page.goto(f"{hub.url}hub/spawn/carl")
        assert response is not None
        assert response.status == 403, response.status
        assert not has_lab(page)

        # a stopped workspace: the hub does not even say whether it exists, nor starts it
        stop_and_wait(ben, WORKSPACE)
        response = page.goto(f"{hub.url}user/{WORKSPACE}/lab")
        assert response is not None
        assert response.status in (403, 404), response.status
        assert not has_lab(page)
        assert not server_running(ben, WORKSPACE)

        # a running workspace: the hub refuses carl's OAuth login to it
        reply = ben.start_server(WORKSPACE)
        assert reply.status_code in (201, 202), reply.text
        ben.wait_for_server(WORKSPACE)
        response = page.goto(f"{hub.url}user/{WORKSPACE}/lab")
        assert response is not None
        assert response.status == 403, response.status
        text = page.inner_text("body")
        assert "403" in text
        assert "You do not have permission to access Server" in text, text
        assert not has_lab(page)
        assert f"/user/{WORKSPACE}/lab" not in page.url
        screenshot(page, "browser-viewer-403.png")
    finally:
        page.close()
        stop_and_wait(ben, WORKSPACE)
