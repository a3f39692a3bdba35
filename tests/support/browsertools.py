"""Debian's chromium driven by Playwright: one launch for every browser test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.conftest import IN_CI

CHROMIUM = Path("/usr/bin/chromium")
#: root needs --no-sandbox; the machine has no network besides loopback
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: CI installs chromium (scripts/bootstrap test): there these tests must run, never skip
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and not IN_CI,
    reason=f"{CHROMIUM} not installed (scripts/bootstrap test installs it)",
)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's chromium, headless (never a downloaded browser)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
