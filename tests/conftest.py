"""Shared fixtures: the measured-data folder beside the checkout, small simulated runs."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REALDATA = (REPO / ".." / "shared" / "realdata").resolve()


@pytest.fixture
def chromium():
    """Debian's headless chromium driven by playwright (skips when either is missing)."""
    import shutil

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


@pytest.fixture(scope="session")
def realdata() -> Path:
    """``../shared/realdata`` beside the checkout; tests skip when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"measured data folder {REALDATA} is absent (it sits beside the checkout in CI)")
    return REALDATA


@pytest.fixture(autouse=True, scope="session")
def _run_database_in_tmp(tmp_path_factory):
    """Commands that record runs write into a test database, never the user's."""
    import os

    path = tmp_path_factory.mktemp("rundb") / "runs.sqlite"
    old = os.environ.get("XLIVE_DB")
    os.environ["XLIVE_DB"] = str(path)
    yield path
    if old is None:
        os.environ.pop("XLIVE_DB", None)
    else:
        os.environ["XLIVE_DB"] = old
