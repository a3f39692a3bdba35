"""The app prototypes as viewers see them: the real Voila server and Debian's chromium.

Voila serves ``notebooks/apps`` on loopback; each app must render its widgets with no error
output, and the SPC chart must redraw when a viewer changes a control. Screenshots go to
``tests/artifacts/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.support.browsertools import chromium, needs_chromium
from tests.support.jupyterdirs import isolated_jupyter_dirs
from tests.support.voilatools import PlainVoila, start_plain_voila

pytestmark = [pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "notebooks" / "apps"
ARTIFACTS = ROOT / "tests" / "artifacts"
VIEWPORT = {"width": 1280, "height": 1000}
#: Voila starts a kernel and runs the whole notebook before the page is complete
SERVER_TIMEOUT_S = 60.0
PAGE_TIMEOUT_MS = 60_000
#: CSS class of each app's outer box
APP_CLASSES = {
    "spc_chart": "sf-spc-app",
    "tool_life_calculator": "sf-tool-app",
    "machine_health_monitor": "sf-health-app",
    "oee_dashboard": "sf-oee-app",
}
#: what Voila shows for a failing cell (its error template) and what a notebook's stderr shows
ERROR_SELECTORS = (
    ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
    ".jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']",
    ".output_error",
    ".voila-error",
)

#: Voila's message for a failing cell when tracebacks are hidden, and what a traceback shows
ERROR_PHRASES = ("There was an error when executing cell", "Traceback", "Warning:")
#: drawn data of a bqplot figure: lines, scatter points, bars
MARK_SELECTORS = ("path.line", "path.dot", "rect.bar")


@pytest.fixture(scope="module")
def sf_voila(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlainVoila]:
    """Voila serving the apps folder on a free loopback port, with its own data directory."""
    base = tmp_path_factory.mktemp("voila")
    env = {**os.environ, **isolated_jupyter_dirs(base), "SMARTFAB_DATA_DIR": str(base / "data")}
    server = start_plain_voila(APPS, env, base / "voila.log", timeout=SERVER_TIMEOUT_S)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def sf_browser() -> Iterator[Browser]:
    """Debian's chromium, headless (never a downloaded browser)."""
    with chromium() as browser:
        yield browser


@pytest.fixture
def sf_page(sf_browser: Browser) -> Iterator[Page]:
    context = sf_browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def open_app(page: Page, server: PlainVoila, name: str) -> None:
    """Open an app and wait until its widgets and its first figure are drawn."""
    page.goto(server.app_url(name))
    app = f".{APP_CLASSES[name]}"
    page.wait_for_selector(app, state="visible")
    page.wait_for_function(
        "sel => document.querySelectorAll(MARKS.map(m => sel + ' .bqplot svg ' + m).join(','))"
        ".length > 0".replace("MARKS", repr(list(MARK_SELECTORS))),
        arg=app,
    )
    for selector in ERROR_SELECTORS:
        assert page.locator(selector).count() == 0, f"{name} shows error output ({selector})"
    text = page.locator("body").inner_text()
    for phrase in ERROR_PHRASES:
        assert phrase not in text, f"{name} shows {phrase!r}"


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"app-{name}.png"), full_page=True)


#: the chart's data marks as a fingerprint: every path's geometry and the red (alarm) points
CHART_STATE_JS = """
() => {
  const chart = document.querySelector('.sf-spc-chart');
  const lines = [...chart.querySelectorAll('svg path.line')].map(p => p.getAttribute('d') || '');
  const dots = [...chart.querySelectorAll('svg path.dot')];
  const alarms = dots.filter(d => getComputedStyle(d).fill === 'rgb(214, 39, 40)');
  return {lines: lines.join('|'), dots: dots.length, alarms: alarms.length,
          alarmsAt: alarms.map(d => d.getAttribute('transform')).join(' ')};
}
"""


@needs_chromium
def test_spc_chart_redraws_when_controls_change(sf_voila: PlainVoila, sf_page: Page) -> None:
    page = sf_page
    open_app(page, sf_voila, "spc_chart")
    page.wait_for_function(f"({CHART_STATE_JS})().alarms > 0")
    before = page.evaluate(CHART_STATE_JS)

    # an X-bar chart of five: a fifth of the points, a new trace
    page.locator(".sf-spc-subgroup select").select_option(label="5")
    # bqplot redraws the trace and the points as two marks: wait until both have changed
    changed = f"(s => s.lines !== {before['lines']!r} && s.dots !== {before['dots']})"
    page.wait_for_function(f"{changed}(({CHART_STATE_JS})())".replace("\n", " "))
    xbar = page.evaluate(CHART_STATE_JS)
    assert xbar["lines"] != before["lines"] and xbar["dots"] < before["dots"], xbar

    # switching rule 4 on flags more points
    page.locator(".sf-spc-rule-4 input[type=checkbox]").check()
    page.wait_for_function(f"({CHART_STATE_JS})().alarmsAt !== {xbar['alarmsAt']!r}")
    ruled = page.evaluate(CHART_STATE_JS)
    assert ruled["alarms"] > xbar["alarms"]
    assert page.locator(".sf-spc-alarm-count").inner_text() == str(ruled["alarms"])
    screenshot(page, "spc_chart")


@needs_chromium
@pytest.mark.parametrize(
    "name", ["tool_life_calculator", "machine_health_monitor", "oee_dashboard"]
)
def test_app_renders_without_errors(sf_voila: PlainVoila, sf_page: Page, name: str) -> None:
    open_app(sf_page, sf_voila, name)
    screenshot(sf_page, name)
