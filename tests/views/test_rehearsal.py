"""Rehearsal of a beamtime: `xlive serve` and `xlive process --live` are started before the
detector writes anything. The page goes waiting -> live -> finished and stays readable after
the run's end; the processing waits, then follows the run to its end marker (issue 14)."""

from __future__ import annotations

import re
import sys
import time

import pytest

from xlive.views.app import free_port

FRAMES = 120


def _read(page, expr):
    return page.evaluate(f"() => {{ const d = Bokeh.documents[0]; return {expr}; }}")


def _status(page) -> str:
    return _read(page, "d.get_model_by_name('status_plot').text")


def _wait_status(page, needle: str, timeout: float) -> str:
    t_end = time.time() + timeout
    while time.time() < t_end:
        text = _status(page)
        if needle in text:
            return text
        page.wait_for_timeout(500)
    raise AssertionError(f"the status never said {needle!r}; last: {_status(page)}")


@pytest.mark.browser
@pytest.mark.slow
def test_serve_and_process_started_before_the_run(tmp_path, chromium, simulator, process):
    run = tmp_path / "run"
    port = free_port()
    server = process(
        [
            sys.executable,
            "-m",
            "xlive.cli",
            "serve",
            str(run),
            "--port",
            str(port),
            "--features",
            str(tmp_path / "serve.zarr"),
        ]
    )
    proc = process(
        [
            sys.executable,
            "-m",
            "xlive.cli",
            "process",
            str(run),
            "--live",
            "--out",
            str(tmp_path / "proc.zarr"),
            "--workers",
            "1",
            "--no-db",
            "-q",
            "--idle-timeout",
            "60",
        ]
    )
    t_end = time.time() + 90
    lines = []
    while not any("serving" in ln for ln in lines):
        lines.append(server.stdout.readline())
        assert lines[-1] or server.poll() is None, "".join(lines)
        assert time.time() < t_end, "xlive serve did not start within 90 s"
    page = chromium.new_page(viewport={"width": 1400, "height": 1600})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
    waiting = _wait_status(page, "WAITING", 30)
    assert f"waiting for {run}" in waiting, waiting
    page.wait_for_timeout(2000)
    assert server.poll() is None and proc.poll() is None  # both wait, neither gave up

    writer = simulator(run, frames=FRAMES, rate=15)
    live = _wait_status(page, "frames analysed", 120)
    assert "run finished" not in live
    writer.wait(timeout=120)
    finished = _wait_status(page, "run finished", 120)
    assert f"of {FRAMES}" in finished, finished
    assert not page.evaluate("() => document.body.innerText.includes('connection lost')")
    # the page stays up, readable, with the whole run: plots keep their points
    n_points = _read(page, "d.get_model_by_name('hit_rate_source').data.frame.length")
    assert n_points > 0
    page.wait_for_timeout(3000)
    assert "run finished" in _status(page) and server.poll() is None
    assert _read(page, "d.get_model_by_name('hit_rate_source').data.frame.length") == n_points
    assert not errors, errors

    out, _ = proc.communicate(timeout=120)  # the processing ends at the run's end marker
    assert proc.returncode == 0, out
    m = re.search(r"stored features of (\d+) frames .*\((\d+) skipped", out)
    assert m and int(m.group(1)) + int(m.group(2)) == FRAMES, out  # (sampled when behind)
    assert f"waiting for {run} to appear" in out, out
    page.close()
