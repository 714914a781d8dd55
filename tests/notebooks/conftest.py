"""Fixtures for the notebook tests: Debian's chromium through playwright."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture
def chromium():
    """Headless chromium (skips when Debian's chromium or playwright is missing)."""
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            yield browser
        finally:
            browser.close()
