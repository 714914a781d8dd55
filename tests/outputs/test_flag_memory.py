"""A jet lost mid-run is remembered: processed live with sampling, and offline, the jet loss
is in the end-of-run summary, the HTML report and the run database each time (issue 14)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from xlive_testing import run_xlive, stop_process

FRAMES, LOSS = 360, (140, 230)


def _check(features, db, out: str, html):
    # end-of-run summary of `xlive process`
    (line,) = [ln for ln in out.splitlines() if ln.strip().startswith("jet_lost")]
    assert "frames" in line and "worst" in line, out
    # the report: listed with its frames, shaded on the plots along the run
    run_xlive("report", str(features), "--html", str(html))
    page = html.read_text()
    assert "jet_lost" in page and "xlive-flag-span" in page and "flag_band_jet_lost" in page
    assert "No flags raised" not in page
    # the run database
    (row,) = json.loads(run_xlive("runs", "--db", str(db), "--all", "--format", "json").stdout)
    (ep,) = [f for f in row["flags"] if f["name"] == "jet_lost"]
    assert LOSS[0] <= ep["raised_at"] < LOSS[1] and ep["cleared_at"] >= LOSS[1]
    assert ep["worst"] < 0.3 and row["status"] == "red"
    return ep


@pytest.mark.slow
def test_jet_loss_in_summary_report_and_database_live_sampled_and_offline(tmp_path):
    run = tmp_path / "run"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xlive.cli",
            "simulate",
            str(run),
            "--frames",
            str(FRAMES),
            "--rate",
            "60",
            "--detector",
            "eiger500k",
            "--hit-fraction",
            "0.3",
            "--jet-loss",
            f"{LOSS[0]}:{LOSS[1]}",
            "-q",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        t_end = time.time() + 60
        while not (run / "xlive-run.json").exists():
            assert writer.poll() is None and time.time() < t_end, "the simulator wrote nothing"
            time.sleep(0.1)
        # live, every 3rd frame only: the jet loss spans 30 analysed frames. No sampling on
        # top when the loop falls behind (a loaded machine would thin the loss to a few frames
        # and the flag, judged over analysed frames, would be raised after the jet is back)
        live = run_xlive(
            "process",
            str(run),
            "--out",
            str(tmp_path / "live.zarr"),
            "--live",
            "--sample",
            "0.34",
            "--no-sampling",
            "--idle-timeout",
            "6",
            "--workers",
            "1",
            "-q",
            "--db",
            str(tmp_path / "live.sqlite"),
        ).stdout
        assert writer.wait(timeout=60) == 0
    finally:
        stop_process(writer)
    ep_live = _check(tmp_path / "live.zarr", tmp_path / "live.sqlite", live, tmp_path / "live.html")
    offline = run_xlive(
        "process",
        str(run),
        "--out",
        str(tmp_path / "off.zarr"),
        "-q",
        "--workers",
        "1",
        "--db",
        str(tmp_path / "off.sqlite"),
    ).stdout
    ep_off = _check(tmp_path / "off.zarr", tmp_path / "off.sqlite", offline, tmp_path / "off.html")
    assert abs(ep_live["raised_at"] - ep_off["raised_at"]) <= 40
