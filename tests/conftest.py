"""Shared fixtures: the measured-data folder beside the checkout, small simulated runs."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REALDATA = (REPO / ".." / "shared" / "realdata").resolve()


def pytest_xdist_auto_num_workers(config):
    """``-n logical``: one and a half workers per CPU (3 on 2 cores). Many slow tests wait on
    subprocesses, servers and browsers: with one worker per CPU the whole run used 130 % of
    2 cores (``/usr/bin/time``), so a third worker fills the gaps. The environment variable
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides when set."""
    import os

    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # pytest-xdist's own hook reads it
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cpus or 1) * 3 // 2)


@pytest.fixture
def chromium():
    """Debian's headless chromium driven by playwright (skips when either is missing)."""
    import shutil

    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=exe,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def realdata() -> Path:
    """``../shared/realdata`` beside the checkout; tests skip when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(
            f"measured data folder {REALDATA} is absent (it sits beside the checkout in CI)"
        )
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


@pytest.fixture(autouse=True, scope="session")
def _cache_in_tmp(tmp_path_factory):
    """Geometry maps cached on disk go to a test folder, never the user's cache."""
    import os

    path = tmp_path_factory.mktemp("cache")
    old = os.environ.get("XLIVE_CACHE_DIR")
    os.environ["XLIVE_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("XLIVE_CACHE_DIR", None)
    else:
        os.environ["XLIVE_CACHE_DIR"] = old


@pytest.fixture
def install_plugin(tmp_path):
    """``install_plugin(entry_points, files)``: a real installed distribution on ``sys.path``.

    Writes the ``files`` (relative path -> text) and a ``.dist-info`` folder whose
    ``entry_points.txt`` lists ``entry_points`` (group -> {name: "module:attr"}), as pip would,
    so ``importlib.metadata`` finds the plugins; the registry then reads the entry points again.
    Returns the site folder (put it on PYTHONPATH to let a subprocess see the plugin too).
    Everything is removed again after the test.
    """
    import importlib
    import sys

    from xlive import registry

    site = tmp_path / "site"
    modules: list[str] = []

    def install(entry_points: dict, files: dict | None = None, name: str = "xlive-test-plugin"):
        dist = site / f"{name.replace('-', '_')}-0.1.dist-info"
        dist.mkdir(parents=True, exist_ok=True)
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text(
            "".join(
                f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
                for group, eps in entry_points.items()
            )
        )
        for rel, text in (files or {}).items():
            (site / rel).parent.mkdir(parents=True, exist_ok=True)
            (site / rel).write_text(text)
            modules.append(Path(rel).with_suffix("").as_posix().replace("/", "."))
        if str(site) not in sys.path:
            sys.path.insert(0, str(site))
        importlib.invalidate_caches()
        registry.refresh()
        return site

    try:
        yield install
    finally:
        while str(site) in sys.path:
            sys.path.remove(str(site))
        for m in modules:
            sys.modules.pop(m, None)
        importlib.invalidate_caches()
        registry.refresh()


@pytest.fixture(autouse=True)
def _no_unconnected_default_client(request):
    """A test must not leave a dask client that never connected as this process's default:
    every later computation in the worker waits for it (CI: five tests of another file hung
    600 s each)."""
    yield
    import sys

    if "distributed" not in sys.modules:
        return
    from distributed import default_client

    try:
        client = default_client()
    except ValueError:  # no default client
        return
    status = client.status
    if status not in ("running", "closing", "closed"):
        client.close()
        pytest.fail(f"{request.node.nodeid} left a default dask client {status!r}")
