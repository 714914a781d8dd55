"""`Monitor` started before an Eiger run exists; `wait()` returns only when the run's last data
file is in and analysed (the run adds a data file every second or so) (issue 14)."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from xlive_testing import stop_process


@pytest.mark.slow
def test_monitor_waits_for_the_run_and_for_its_last_data_file(tmp_path):
    from xlive.views.monitor import Monitor

    run = tmp_path / "run"
    master = run / "run_master.h5"
    m = Monitor(master, features=tmp_path / "f.zarr", interval=0.2)
    writer = None
    try:
        assert m.session.run_state() == "waiting"
        assert "to appear" in m.session.waiting_for()
        writer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "xlive.cli",
                "simulate",
                str(run),
                "--format",
                "eiger-h5",
                "--frames",
                "60",
                "--frames-per-file",
                "15",
                "--rate",
                "12",
                "--detector",
                "eiger500k",
                "-q",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        handled = asyncio.run(m.wait(idle=0.5, timeout=300))
        assert writer.wait(timeout=60) == 0
        assert handled == 60 and m.session.source.n_frames == 60
        assert m.session.run_state() == "finished"
    finally:
        m.close()
        if writer is not None:
            stop_process(writer)
