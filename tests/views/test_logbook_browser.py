"""The logbook page in headless chromium: two runs processed live into one database at once,
a variables file added afterwards, a comment typed in the table that survives reprocessing."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlparse

import numpy as np
import pytest
from xlive_testing import stop_process

from xlive.engine.store import open_features
from xlive.views.app import free_port

FRAMES, RATE = 96, 8.0  # 12 s of frames: rows seen live, the test short

VARS = textwrap.dedent("""
    import xlive

    @xlive.run_variable(title="Frames with ≥ 10 spots")
    def many_spots(ds):
        return int((ds.n_spots >= 10).sum())
""")


def _read(page, expr):
    return page.evaluate(
        f"() => {{ const d = Bokeh.documents[0]; const s = d.get_model_by_name('logbook_source');"
        f" return {expr}; }}"
    )


def _rows(page) -> dict:
    """run -> {column: value} as the page's table holds them now."""
    data = _read(page, "s.data")
    cols = [c for c in data if not c.startswith("_")]
    return {run: {c: data[c][i] for c in cols} for i, run in enumerate(data.get("run", []))}


def _wait(cond, timeout: float, what: str, poll: float = 0.5):
    t_end = time.time() + timeout
    while time.time() < t_end:
        value = cond()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


@pytest.fixture
def spawn(tmp_path):
    """``spawn(name, cmd)``: a subprocess writing its output to ``tmp_path/name.log`` (a pipe
    nobody reads fills and blocks a chatty process), stopped after the test; ``log(name)``
    reads that output back."""
    procs = []

    def start(name, cmd):
        with open(tmp_path / f"{name}.log", "w") as out:
            p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
        procs.append(p)
        return p

    start.log = lambda name: (tmp_path / f"{name}.log").read_text(errors="replace")
    yield start
    for p in procs:
        stop_process(p)


def _process(spawn, name, run, out, db, *extra):
    return spawn(
        name,
        [
            sys.executable,
            "-m",
            "xlive.cli",
            "process",
            str(run),
            "--out",
            str(out),
            "--db",
            str(db),
            "--workers",
            "1",
            "-q",
            *extra,
        ],
    )


def _wait_for_line(spawn, name, proc, text, timeout):
    """Wait until ``name``'s output holds ``text`` (the process still running)."""
    t_end = time.time() + timeout
    while text not in spawn.log(name):
        assert proc.poll() is None, f"{name} exited: {spawn.log(name)[-2000:]}"
        assert time.time() < t_end, f"{name} did not say {text!r} within {timeout} s"
        time.sleep(0.2)


@pytest.mark.browser
@pytest.mark.slow
def test_two_live_runs_variables_and_comments(tmp_path, chromium, simulator, spawn, artifacts):
    db = tmp_path / "beamtime.sqlite"
    vars_py = tmp_path / "vars.py"  # given to the logbook now, written later
    runs = [tmp_path / "run_a", tmp_path / "run_b"]
    keys = [str(r.absolute() / "run.zarr") for r in runs]
    port = free_port()
    server = spawn(
        "logbook",
        [
            sys.executable,
            "-m",
            "xlive.cli",
            "logbook",
            "--db",
            str(db),
            "--variables",
            str(vars_py),
            "--port",
            str(port),
        ],
    )
    url = f"http://127.0.0.1:{port}/"
    # the live processors first, waiting for their runs: started once the writers run, they
    # could (under load) start only after the run was written, and no row would be seen live
    procs = [
        _process(
            spawn,
            f"process_{i}",
            r,
            tmp_path / f"features_{i}.zarr",
            db,
            "--live",
            "--idle-timeout",
            "4",
            "--no-sampling",
            "--timeout",
            "120",
        )
        for i, r in enumerate(runs)
    ]
    for i, p in enumerate(procs):
        _wait_for_line(spawn, f"process_{i}", p, "to appear", 60)
    # both writers start at once (each start waits for its run to appear)
    with ThreadPoolExecutor(2) as pool:
        writers = list(
            pool.map(
                lambda i: simulator(runs[i], frames=FRAMES, rate=RATE, extra=("--seed", str(i))),
                range(2),
            )
        )
    _wait_for_line(spawn, "logbook", server, "logbook of", 60)

    page = chromium.new_page(viewport={"width": 1600, "height": 1000})
    errors, foreign = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on(
        "request",
        lambda r: (
            foreign.append(r.url) if urlparse(r.url).hostname not in ("127.0.0.1", None) else None
        ),
    )
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)

    # both rows appear and change while the runs are processed live
    seen: dict[str, list] = {k: [] for k in keys}
    t_end = time.time() + 120
    while time.time() < t_end and not all(p.poll() is not None for p in procs):
        rows = _rows(page)
        for k in keys:
            if k in rows and rows[k]["state"] == "live":
                seen[k].append(rows[k]["analysed"])
        if all(len(set(v)) >= 2 for v in seen.values()):
            break
        time.sleep(0.5)
    assert all(len(set(v)) >= 2 for v in seen.values()), (
        f"rows seen live (analysed): {seen}; processes: "
        + "; ".join(spawn.log(f"process_{i}")[-800:] for i in range(2))
    )
    both_live = _rows(page)
    page.screenshot(path=str(artifacts / "xlive-logbook-live.png"), full_page=True)

    for p in (*writers, *procs):
        p.wait(timeout=300)
    assert [p.returncode for p in procs] == [0, 0], [spawn.log(f"process_{i}") for i in range(2)]
    rows = _wait(
        lambda: (
            (r := _rows(page)) and all(r.get(k, {}).get("state") == "finished" for k in keys) and r
        ),
        60,
        "both rows finished",
    )
    for i, k in enumerate(keys):
        ds = open_features(tmp_path / f"features_{i}.zarr")
        assert rows[k]["analysed"] == ds.sizes["frame"] == FRAMES
        assert rows[k]["hit_rate"] == pytest.approx(float(ds.is_hit.mean()))
        assert len(rows[k]["trend"]) == 40 and rows[k]["trend"].strip()
    assert set(both_live) >= set(keys)

    # a variables file added now fills its column for both runs
    vars_py.write_text(VARS)
    rows = _wait(
        lambda: (
            (r := _rows(page))
            and all(isinstance(v := r[k].get("many_spots"), (int, float)) and v == v for k in keys)
            and r
        ),
        60,
        "the variable's column filled",
    )
    for i, k in enumerate(keys):
        ds = open_features(tmp_path / f"features_{i}.zarr")
        assert rows[k]["many_spots"] == int(np.sum(ds.n_spots.values >= 10))
    headers = page.locator(".slick-header-column").all_inner_texts()
    assert "Frames with ≥ 10 spots" in headers

    # a comment typed in the table
    ci = headers.index("Comment")
    row = page.locator(".slick-row", has_text="run_a/run.zarr")
    row.locator(".slick-cell").nth(ci).dblclick()
    editor = page.locator(".slick-cell input")
    editor.first.fill("jet wobbly, good crystals")
    editor.first.press("Enter")
    comment_in_db = _wait(
        lambda: (
            sqlite3.connect(db)
            .execute("select comment from xlive_logbook_notes where run = ?", (keys[0],))
            .fetchone()
        ),
        20,
        "the comment stored",
    )
    assert comment_in_db == ("jet wobbly, good crystals",)

    # run A processed again, into a new store: its comment stays, on the page and in the db
    again = _process(spawn, "again", runs[0], tmp_path / "features_again.zarr", db)
    assert again.wait(timeout=300) == 0, spawn.log("again")
    con = sqlite3.connect(db)
    assert con.execute(
        "select times_processed from xlive_runs where run = ?", (keys[0],)
    ).fetchone() == (2,)
    page.reload(wait_until="domcontentloaded")
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
    rows = _wait(lambda: (r := _rows(page)) and keys[0] in r and r, 30, "rows after reload")
    assert rows[keys[0]]["comment"] == "jet wobbly, good crystals"
    assert rows[keys[0]]["state"] == "finished"

    # the exports hold what the table shows
    csv = urllib.request.urlopen(url + "export.csv", timeout=30).read().decode()
    assert "jet wobbly, good crystals" in csv and "Frames with ≥ 10 spots" in csv
    md = urllib.request.urlopen(url + "export.md?filter=" + quote("wobbly"), timeout=30).read()
    assert md.decode().count("run_a") == 1 and b"run_b" not in md
    xlsx = urllib.request.urlopen(url + "export.xlsx", timeout=30).read()
    import io

    import openpyxl

    sheet = openpyxl.load_workbook(io.BytesIO(xlsx)).active
    values = [[c.value for c in r] for r in sheet.iter_rows()]
    assert len(values) == 3 and "Comment" in values[0]
    # the run's cell links to its report (the page of a run served live links there instead)
    href = (
        page.locator(".slick-row", has_text="run_b/run.zarr")
        .locator("a")
        .first.get_attribute("href")
    )
    assert href == "/report?run=" + quote(keys[1], safe="")
    report = urllib.request.urlopen(url + "report?run=" + quote(keys[1], safe=""), timeout=120)
    assert b"<html" in report.read()[:2000].lower()
    page.screenshot(path=str(artifacts / "xlive-logbook.png"), full_page=True)
    assert not errors, errors
    assert not foreign, foreign
