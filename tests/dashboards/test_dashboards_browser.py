"""A firm viewer in a real browser: gallery, the real SPC and OEE apps, and refusals.

wim (viewer of voltronic) logs in at the hub form in Debian's chromium, opens the SPC chart from
the dashboards gallery, changes its subgroup size and rule switches and sees the bqplot chart
redrawn; the OEE app opens the restricted ``line-oee`` dataset in voltronic's kernel. acme's
dashboard and a server of his own stay closed. Screenshot: ``tests/artifacts/dashboard-spc.png``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from tests.hub.test_browser import PAGE_TIMEOUT_MS, VIEWPORT, log_in, screenshot
from tests.support.browsertools import chromium, needs_chromium
from tests.support.dashboardtools import make_project, project_library
from tests.support.hubtools import ROOT, RunningHub

pytestmark = [pytest.mark.browser, pytest.mark.hub]

RENDER_TIMEOUT_MS = 180_000
APPS = ROOT / "notebooks" / "apps"
REAL_APPS = {"spc-chart": APPS / "spc_chart.ipynb", "oee-dashboard": APPS / "oee_dashboard.ipynb"}
#: the SPC chart's drawing: its lines' paths and its points, as the browser shows them
CHART_SVG_JS = """() => {
  const chart = document.querySelector('.sf-spc-chart');
  if (!chart) return '';
  const marks = [...chart.querySelectorAll('svg path.line, svg path.dot')];
  return marks.map(m => `${m.getAttribute('d')}${m.getAttribute('transform')}`).join('|');
}"""


@pytest.fixture(scope="module")
def sf_dash_browser_hub(
    sf_hub_factory: Callable[..., RunningHub], sf_public_tmp: Path
) -> Iterator[RunningHub]:
    project = make_project(sf_public_tmp / "dashboards-browser-project", REAL_APPS)
    hub = sf_hub_factory(alliance=project, library=project_library(project))
    hub.start()
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def sf_dash_browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def sf_dash_context(sf_dash_browser: Browser) -> Iterator[BrowserContext]:
    context = sf_dash_browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    yield context
    context.close()


def chart_svg(page: Page) -> str:
    return str(page.evaluate(CHART_SVG_JS))


def expect_no_error_output(page: Page) -> None:
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert errors.count() == 0, errors.all_inner_texts()
    assert "Traceback" not in page.content()


@needs_chromium
def test_viewer_changes_spc_chart(
    sf_dash_browser_hub: RunningHub, sf_dash_context: BrowserContext
) -> None:
    hub = sf_dash_browser_hub
    page = sf_dash_context.new_page()
    log_in(page, hub, "wim")
    page.goto(f"{hub.url}services/dashboards/")
    cards = page.locator("li.sf-dashboard")
    cards.first.wait_for()
    ids = sorted(cards.evaluate_all("els => els.map(e => e.dataset.dashboardId)"))
    assert ids == ["oee-dashboard", "spc-chart"]

    page.click("li[data-dashboard-id=spc-chart] a")
    page.wait_for_url(f"{hub.url}services/dashboards/spc-chart/", timeout=RENDER_TIMEOUT_MS)
    # widgets rendered and the chart drawn: the kernel answered
    page.locator(".sf-spc-app .sf-spc-subgroup select").wait_for(timeout=RENDER_TIMEOUT_MS)
    page.wait_for_function(f"({CHART_SVG_JS})().length > 0", timeout=RENDER_TIMEOUT_MS)
    assert "import smartfab.datasets" not in page.content()  # sources are stripped
    before = chart_svg(page)
    alarms = page.locator(".sf-spc-alarm-count").inner_text()

    page.locator(".sf-spc-subgroup select").select_option(label="5")
    # the kernel redraws the chart: wait on the DOM, never on time
    page.wait_for_function(f"({CHART_SVG_JS})() !== {before!r}", timeout=PAGE_TIMEOUT_MS)
    xbar = chart_svg(page)
    page.locator(".sf-spc-rule-4 input[type=checkbox]").check()
    page.wait_for_function(
        f"document.querySelector('.sf-spc-alarm-count')?.innerText !== {alarms!r}"
        f" || ({CHART_SVG_JS})() !== {xbar!r}",
        timeout=PAGE_TIMEOUT_MS,
    )
    expect_no_error_output(page)
    screenshot(page, "dashboard-spc.png")

    refused = page.goto(f"{hub.url}services/dashboards/machine-health/")
    assert refused is not None and refused.status == 403
    lab = page.goto(f"{hub.url}user/wim/lab")
    assert lab is not None
    assert page.locator("#jp-main-dock-panel, .jp-LabShell").count() == 0
    assert "/user/wim/lab" not in page.url or lab.status in (403, 404, 424, 503)
    page.close()


@needs_chromium
def test_viewer_opens_restricted_oee_app(
    sf_dash_browser_hub: RunningHub, sf_dash_context: BrowserContext
) -> None:
    """The OEE app reads line-oee, restricted to voltronic: voltronic's kernel may open it."""
    hub = sf_dash_browser_hub
    page = sf_dash_context.new_page()
    log_in(page, hub, "wim")
    page.goto(f"{hub.url}services/dashboards/oee-dashboard/", timeout=RENDER_TIMEOUT_MS)
    page.locator(".sf-oee-app .sf-oee-numbers").wait_for(timeout=RENDER_TIMEOUT_MS)
    page.wait_for_function(
        "() => document.querySelectorAll('.sf-oee-waterfall svg rect.bar').length > 0",
        timeout=RENDER_TIMEOUT_MS,
    )
    expect_no_error_output(page)
    page.close()


@needs_chromium
def test_leaving_a_dashboard_ends_its_kernel(
    sf_dash_browser_hub: RunningHub, sf_dash_context: BrowserContext
) -> None:
    """The page's unload beacon reaches Voila through the service: the viewer's kernel is shut
    down when he leaves, not kept until the idle cull."""
    hub = sf_dash_browser_hub
    page = sf_dash_context.new_page()
    log_in(page, hub, "wim")
    page.goto(f"{hub.url}services/dashboards/spc-chart/", timeout=RENDER_TIMEOUT_MS)
    page.locator(".sf-spc-app").wait_for(timeout=RENDER_TIMEOUT_MS)
    config = json.loads(page.locator("#jupyter-config-data").text_content() or "{}")
    kernel_id = config["kernelId"]
    assert f"Kernel shutdown: {kernel_id}" not in hub.log()
    page.goto(f"{hub.url}services/dashboards/")
    deadline = time.monotonic() + 30
    while f"Kernel shutdown: {kernel_id}" not in hub.log():
        assert time.monotonic() < deadline, (
            f"kernel {kernel_id} still running after the viewer left"
        )
        time.sleep(0.2)
    page.close()
