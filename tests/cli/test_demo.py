"""`xlive demo`: a simulated run monitored live, its dashboard served on 127.0.0.1 while the
run proceeds, and a clean exit with a summary when the run ends."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request

import pytest


@pytest.mark.slow
def test_demo_serves_the_dashboard_and_exits_when_the_run_ends(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xlive.cli",
            "demo",
            "--no-browser",
            "--frames",
            "120",
            "--rate",
            "30",
            "--detector",
            "eiger500k",
            "--port",
            "0",
            "--out",
            str(tmp_path / "d"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    url = None
    t_end = time.time() + 120
    try:
        while url is None and time.time() < t_end:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"live dashboard: (http://127\.0\.0\.1:\d+/)", line)
            if m:
                url = m.group(1)
        assert url, "".join(lines)
        with urllib.request.urlopen(url, timeout=30) as page:  # loopback only
            html = page.read().decode()
        assert page.status == 200 and "bokeh" in html.lower()
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(lines) + out
    assert proc.returncode == 0, text
    assert "run finished: " in text and "hits: " in text and "status: " in text
    assert "indexed: " in text and "median cell 79." in text  # indexed to the simulated cell
    assert (tmp_path / "d" / "features.zarr").is_dir()
