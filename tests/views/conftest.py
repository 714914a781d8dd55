"""Fixtures for the view tests: small simulated runs, processed sessions, browsers, processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from xlive_testing import stop_process

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """A finished 80-frame Eiger 500K run (laser on for half the frames, some decay)."""
    from xlive.simulate import write_run

    out = tmp_path_factory.mktemp("views") / "run"
    write_run(
        out,
        frames=80,
        rate=0,
        detector="eiger500k",
        seed=3,
        hit_fraction=0.4,
        laser_on_fraction=0.5,
    )
    return out


def _run_to_end(session, timeout: float = 120.0) -> None:
    """Step ``session`` in this thread until every frame of its (finished) run is handled."""
    proc = session.processor
    t_end = time.time() + timeout
    while time.time() < t_end:
        try:
            proc.step()
        except TimeoutError:
            continue
        if (
            proc.idle
            and proc.stats.frames_stored + proc.stats.frames_skipped >= session.source.refresh()
        ):
            session.update_flags()
            return
    raise AssertionError(f"the session did not finish within {timeout} s")


def _start_simulator(run: Path, *, frames: int, rate: float, extra=()) -> subprocess.Popen:
    """``xlive simulate`` in a subprocess, writing ``frames`` at ``rate`` frames/s."""
    cmd = [
        sys.executable,
        "-m",
        "xlive.cli",
        "simulate",
        str(run),
        "--frames",
        str(frames),
        "--rate",
        str(rate),
        "--detector",
        "eiger500k",
        "--hit-fraction",
        "0.4",
        "--laser-on-fraction",
        "0.5",
        "-q",
        *extra,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t_end = time.time() + 60
    while not (run / "run.zarr" / "zarr.json").exists():
        if proc.poll() is not None:
            raise AssertionError(f"simulator failed: {proc.stderr.read()}")
        if time.time() > t_end:
            proc.kill()
            raise AssertionError("the simulator wrote nothing within 60 s")
        time.sleep(0.1)
    return proc


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def update_docs() -> bool:
    """Whether this test run refreshes docs/ images (XLIVE_UPDATE_DOCS=1)."""
    return os.environ.get("XLIVE_UPDATE_DOCS") == "1"


@pytest.fixture(scope="session")
def run_to_end():
    """``run_to_end(session)``: process a finished run completely in this thread."""
    return _run_to_end


@pytest.fixture
def simulator():
    """``simulator(run, frames=, rate=)``: a writer process, stopped after the test."""
    procs = []

    def start(run, **kw):
        p = _start_simulator(run, **kw)
        procs.append(p)
        return p

    yield start
    for p in procs:
        stop_process(p)


@pytest.fixture
def process():
    """``process(cmd)``: a subprocess with piped stdout, stopped after the test."""
    procs = []

    def start(cmd, **kw):
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
        procs.append(p)
        return p

    yield start
    for p in procs:
        stop_process(p)
