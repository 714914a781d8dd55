"""The logbook widget in a real JupyterLab, in headless chromium: the table shows the runs of
a database, follows it while it changes, and writes a typed comment back."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from xlive_testing import stop_process

from xlive.outputs.logbook_db import LogbookDB


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab_with_logbook(tmp_path):
    db = tmp_path / "bt.sqlite"
    with LogbookDB(db) as logdb:
        logdb.set_progress(
            "run-7",
            frames_seen=100,
            frames_analysed=90,
            hits=30,
            hit_rate=1 / 3,
            trend=[0.1, 0.3, 0.5],
            state="live",
        )
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell(
            f"import xlive\nlb = xlive.Logbook({str(db)!r}, interval=0.5)\nlb"
        )
    ]
    nbformat.write(nb, tmp_path / "logbook.ipynb")
    port = _free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.token=",
            "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True",
            "--allow-root",
            f"--ServerApp.root_dir={tmp_path}",
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        t_end = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api", timeout=2)
                break
            except OSError:
                assert proc.poll() is None, "jupyter lab exited"
                assert time.time() < t_end, "jupyter lab did not start within 90 s"
                time.sleep(0.5)
        yield url, db
    finally:
        stop_process(proc)


ROWS = """() => { for (const d of Bokeh.documents) { const s = d.get_model_by_name(
    'logbook_source'); if (s) return [s.data.run, s.data.analysed, s.data.comment]; }
    return null; }"""


@pytest.mark.browser
@pytest.mark.slow
def test_logbook_widget_in_jupyterlab(lab_with_logbook, chromium):
    url, db = lab_with_logbook
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/lab/tree/logbook.ipynb", wait_until="domcontentloaded")
    page.wait_for_function(
        "() => window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel",
        timeout=120_000,
    )
    page.wait_for_timeout(2000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(f"({ROWS})()?.[0]?.length === 1", timeout=120_000)
    assert page.evaluate(ROWS)[:2] == [["run-7"], [90]]
    page.locator(".slick-row", has_text="run-7").first.wait_for(timeout=30_000)

    # the database changes (another process analyses more frames, a new run starts)
    with LogbookDB(db) as logdb:
        logdb.set_progress("run-7", frames_analysed=100, state="finished")
        # (finished: a live row not updated for 60 s turns "stalled", and a refresh of the
        # table closes a cell editor; this machine may be that slow)
        logdb.set_progress("run-8", frames_seen=5, frames_analysed=5, state="finished")
    page.wait_for_function(f"({ROWS})()?.[0]?.length === 2", timeout=60_000)
    assert page.evaluate(ROWS)[:2] == [["run-7", "run-8"], [100, 5]]

    # a comment typed in the notebook's table reaches the database: typed once (nothing
    # changes in the database now, so no refresh closes the cell editor; the edit reaches the
    # kernel as a patch by row index, which names the run the page showed)
    typed = "typed in the notebook"
    headers = page.locator(".slick-header-column").all_inner_texts()
    row = page.locator(".slick-row", has_text="run-8").first
    row.locator(".slick-cell").nth(headers.index("Comment")).dblclick()
    editor = page.locator(".slick-cell input").first
    editor.fill(typed)
    editor.press("Enter")
    try:
        page.wait_for_function(f"({ROWS})()?.[2]?.includes({typed!r})", timeout=10_000)
    except PlaywrightTimeout:
        raise AssertionError(f"the page did not take the edit: {page.evaluate(ROWS)}") from None
    t_end = time.time() + 45  # the kernel shares the CPU with the other test worker
    notes: dict = {}
    while time.time() < t_end:
        with LogbookDB(db) as logdb:
            notes = logdb.notes()
        if (notes.get("run-8") or {}).get("comment") == typed:
            break
        time.sleep(0.5)
    assert (notes.get("run-8") or {}).get("comment") == typed, (
        f"the page has the comment, the database not: {notes}, page {page.evaluate(ROWS)}"
    )
    assert set(notes) == {"run-8"}, notes  # no note the user did not type
    # the refresh after the edit leaves the page's row as typed (the kernel sends it nothing:
    # the database holds what the page shows)
    page.wait_for_timeout(1500)  # three refreshes of the widget (interval 0.5 s)
    assert page.evaluate(ROWS)[2] == ["", typed]
    body = page.inner_text("body")
    assert "Failed to create view" not in body and "update failed" not in body
    assert not [e for e in errors if "require" in e or "Bokeh" in e], errors
