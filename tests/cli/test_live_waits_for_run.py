"""``xlive process --live`` started before its run: the idle timeout counts from the run's
frames, not from the start (it stopped with an empty store before the run appeared)."""

from __future__ import annotations

import subprocess
import sys
import time

from xlive_testing import stop_process

from xlive.engine.store import open_features
from xlive.simulate import write_run


def test_live_process_started_before_its_run_waits_for_it(tmp_path):
    run, out = tmp_path / "run", tmp_path / "features.zarr"
    cmd = [sys.executable, "-m", "xlive.cli", "process", str(run), "--out", str(out)]
    cmd += ["--live", "--idle-timeout", "1", "--timeout", "120", "--workers", "1", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "to appear" in proc.stdout.readline()  # (imports done: waiting for the run)
        time.sleep(3)  # three idle timeouts
        assert proc.poll() is None, proc.stdout.read()
        write_run(tmp_path / "w", frames=6, rate=0, detector="eiger500k")
        (tmp_path / "w").rename(run)
        assert proc.wait(timeout=120) == 0, proc.stdout.read()
    finally:
        stop_process(proc)
    assert open_features(out).sizes["frame"] == 6
