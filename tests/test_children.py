"""Child processes end with their parent: ``kill -TERM``/``-INT`` of ``xlive demo`` stops its
simulator (clean-up), and so does ``kill -9`` (the kernel's parent-death signal)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil
import pytest


def start_demo(out) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xlive.cli",
            "demo",
            "--no-browser",
            "--frames",
            "0",
            "--rate",
            "5",
            "--detector",
            "eiger500k",
            "--port",
            "0",
            "--out",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def simulator_of(proc: subprocess.Popen, timeout: float = 120) -> psutil.Process:
    t_end = time.time() + timeout
    while time.time() < t_end:
        assert proc.poll() is None, proc.stderr.read()
        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                if any("spawn_main" in a for a in child.cmdline()):  # multiprocessing's child
                    return child
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.2)
    raise AssertionError("the demo started no simulator")


def gone(p: psutil.Process, timeout: float = 30) -> bool:
    try:
        p.wait(timeout=timeout)
    except psutil.TimeoutExpired:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_demo_signal_stops_its_simulator(tmp_path, sig):
    proc = start_demo(tmp_path / "d")
    sim = None
    try:
        sim = simulator_of(proc)
        while not (tmp_path / "d" / "run" / "run.zarr" / "zarr.json").exists():
            assert sim.is_running()
            time.sleep(0.2)
        proc.send_signal(sig)
        proc.wait(timeout=120)
        assert gone(sim), f"the simulator outlived the demo after {sig.name}"
        if sig != signal.SIGKILL:
            assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        if sim is not None and sim.is_running():
            sim.kill()
