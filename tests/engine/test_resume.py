"""`xlive process` killed with SIGKILL mid-run and started again ends with a feature store
identical to an uninterrupted run's, and does not recompute frames already stored."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
from xlive_testing import run_xlive

from xlive.engine.store import FeatureStore, open_features
from xlive.simulate import write_run


@pytest.mark.slow
def test_kill_9_then_resume_equals_uninterrupted(tmp_path):
    run = tmp_path / "run"
    write_run(run, frames=48, rate=0, detector="eiger1m", seed=11, hit_fraction=0.5)
    run_xlive("process", str(run), "--out", str(tmp_path / "a.zarr"), "--workers", "1", "-q")

    b = tmp_path / "b.zarr"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xlive.cli",
            "process",
            str(run),
            "--out",
            str(b),
            "--workers",
            "1",
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    t_end = time.time() + 120
    done = 0
    while time.time() < t_end and proc.poll() is None:
        if (b / "zarr.json").exists():
            try:
                done = FeatureStore.open(b).frames_done_count()
            except Exception:
                done = 0
            if done >= 8:
                break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    stored_at_kill = FeatureStore.open(b).frames_done_count()
    assert 8 <= stored_at_kill < 48

    out = run_xlive("process", str(run), "--out", str(b), "--workers", "1", "-q").stdout
    recomputed = int(re.search(r"stored features of (\d+) frames", out).group(1))
    assert recomputed == 48 - stored_at_kill  # nothing computed twice

    a_ds, b_ds = open_features(tmp_path / "a.zarr"), open_features(b)
    assert a_ds.sizes["frame"] == b_ds.sizes["frame"] == 48
    xr.testing.assert_identical(a_ds.drop_attrs(), b_ds.drop_attrs())
    assert np.all(a_ds.status.values == 1)
