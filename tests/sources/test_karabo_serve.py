"""``xlive serve karabo://HOST:PORT`` follows the Karabo bridge package's own simulator on
127.0.0.1: the page is served, frames are analysed with their train and pulse ids, and the
command stops cleanly on SIGTERM. Small detector (one AGIPD module), bounded time."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

pytest.importorskip("karabo_bridge")

from xlive.engine.store import open_features  # noqa: E402

from .conftest import free_port  # noqa: E402

GEOMETRY = """[geometry]
pixel_size = 200e-6
distance = 0.25
wavelength = 1.33
beam_center_x = 64.0
beam_center_y = 256.0
"""


def _features(path, least: int, timeout: float):
    """The feature store once it holds ``least`` frames (it is read while being written)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            ds = open_features(path)
            if ds.sizes["frame"] >= least:
                return ds
        except Exception as exc:  # not created yet, or caught between two appends
            last = exc
        time.sleep(1.0)
    raise AssertionError(f"{path} did not reach {least} frames in {timeout:g} s ({last})")


@pytest.mark.network
@pytest.mark.slow
def test_xlive_serve_follows_the_karabo_bridge_simulator(tmp_path):
    port = free_port()
    sim = subprocess.Popen(
        [shutil.which("karabo-bridge-server-sim"), str(port), "-z", "PUSH", "-d", "AGIPDModule"]
        + ["-r", "-g", "random"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    (tmp_path / "run.toml").write_text(GEOMETRY)
    out = tmp_path / "features.zarr"
    serve = subprocess.Popen(
        [sys.executable, "-m", "xlive.cli", "serve", f"karabo://127.0.0.1:{port}"]
        + ["--port", "0", "--config", str(tmp_path / "run.toml"), "--features", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 120
        url = None
        while url is None:
            line = serve.stdout.readline()
            assert line or serve.poll() is None, "xlive serve exited before serving"
            assert time.monotonic() < deadline, "xlive serve did not start within 120 s"
            if "serving karabo://" in line:
                url = line.split(" at ")[1].split()[0]
        html = urllib.request.urlopen(url, timeout=60).read().decode()
        assert "<title>xlive</title>" in html
        ds = _features(out, least=64, timeout=240)  # a train of 64 pulses
        tid = ds["train_id"].values
        pid = ds["pulse_id"].values
        assert (tid >= 10_000_000_000).all() and set(np.unique(pid)) <= set(range(64))
        # every analysed frame keeps its train and pulse (sampling may skip some, never mix)
        assert len(set(zip(tid.tolist(), pid.tolist(), strict=True))) == len(tid)
        assert np.isfinite(ds["background"].values).all()
        serve.send_signal(signal.SIGTERM)
        rest, _ = serve.communicate(timeout=60)
        assert serve.returncode == 0, rest
        assert "stopping" in rest and "Traceback" not in rest
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait(10)
        sim.kill()
        sim.wait(10)
