"""``xlive process tcp://... --live`` against a detector already streaming (zeromq on 127.0.0.1):
started 10 times without a crash, and killed (-9) mid-stream then restarted with the same
spool: the run completes and the frames lost while it was down are reported as dropped."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from xlive.engine.store import PENDING, FeatureStore
from xlive.geometry import Geometry
from xlive.geometry.detectors import get_detector

from ..conftest import free_port

pytestmark = [pytest.mark.network, pytest.mark.slow]


def start_sender(address: str, rate: float = 40) -> subprocess.Popen:
    """An endless stream that, like a detector, drops frames while nobody receives them."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xlive.sources.stream.sender",
            "--bind",
            address,
            "--synthetic",
            "eiger500k",
            "--frames",
            "1000000",
            "--rate",
            str(rate),
            "--no-wait",
            "--timeout",
            "5",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_process(address: str, out: Path, geom: Path, idle: float = 30) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xlive.cli",
            "process",
            address,
            "--out",
            str(out),
            "--live",
            "--idle-timeout",
            str(idle),
            "--no-db",
            "-q",
            "--workers",
            "1",
            "--geometry",
            str(geom),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def geometry_file(tmp_path: Path) -> Path:
    shape = get_detector("eiger500k").shape
    g = Geometry.simple(
        shape=shape,
        pixel_size=75e-6,
        distance=0.1,
        wavelength=1.0,
        beam_center_x=shape[1] / 2,
        beam_center_y=shape[0] / 2,
    )
    path = tmp_path / "geom.json"
    path.write_text(json.dumps(g.to_dict()))
    return path


def spool_segments(spool: Path) -> list[dict]:
    if not (spool / "zarr.json").exists():
        return []
    root = zarr.open_group(str(spool), mode="r")
    return [dict(root[k].attrs) | {"name": k} for k in sorted(root.group_keys())]


def published(spool: Path) -> int:
    try:
        return sum(int(s.get("frames_complete", 0)) for s in spool_segments(spool))
    except Exception:  # a segment being created: ask again
        return -1


def wait_for(cond, proc: subprocess.Popen, timeout: float = 180, what: str = "") -> None:
    t_end = time.time() + timeout
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(
                f"xlive process ended ({proc.returncode}) before {what}: {proc.stderr.read()}"
            )
        assert time.time() < t_end, f"timed out waiting for {what}"
        time.sleep(0.2)


def frames_seen(out: Path) -> int:
    try:
        return FeatureStore.open(out).frames_seen
    except Exception:
        return 0


@pytest.mark.timeout(1800)
def test_started_ten_times_while_the_detector_streams(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    geom, out = geometry_file(tmp_path), tmp_path / "f.zarr"
    sender = start_sender(address)
    try:
        for k in range(10):
            before = frames_seen(out)
            proc = start_process(address, out, geom)
            try:  # running: receiving, reading the spool and storing features
                wait_for(
                    lambda b=before: frames_seen(out) > b, proc, what=f"start {k} stored frames"
                )
                proc.send_signal(signal.SIGINT if k % 2 else signal.SIGTERM)
                _, err = proc.communicate(timeout=120)
            finally:
                if proc.poll() is None:
                    proc.kill()
            assert proc.returncode in (0, 130), err
            assert "Traceback" not in err and "KeyError" not in err, err
    finally:
        sender.kill()
        sender.wait()


def test_killed_mid_stream_and_restarted_reports_frames_lost_while_down(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    geom, out = geometry_file(tmp_path), tmp_path / "f.zarr"
    spool = tmp_path / "f-spool.zarr"  # the default spool, beside the feature store
    sender = start_sender(address)
    try:
        a = start_process(address, out, geom)
        try:
            wait_for(lambda: published(spool) >= 20, a, what="the first receiver spooled frames")
        finally:
            a.kill()  # kill -9 mid-stream
            a.wait()
        time.sleep(3)  # the detector goes on: ~120 frames nobody receives
        n_a = published(spool)
        b = start_process(address, out, geom, idle=5)
        wait_for(lambda: published(spool) >= n_a + 20, b, what="the restarted receiver")
        sender.kill()  # the stream stops (no end of series): b ends after 5 s idle
        stdout, stderr = b.communicate(timeout=300)
    finally:
        sender.kill()
        sender.wait()
    assert b.returncode == 0, stderr
    segs = spool_segments(spool)
    assert len(segs) == 1, segs  # the restarted receiver continued the same segment
    seg = segs[0]
    g = zarr.open_group(str(spool / seg["name"]), mode="r")
    n = int(seg["frames_complete"])
    numbers = np.asarray(g["frame_number"][:n])
    assert np.all(np.diff(numbers) > 0)
    ranges = seg["dropped_ranges"]
    # every detector frame number up to the last received is either spooled or dropped
    assert n + seg["dropped"] == numbers[-1] + 1
    assert seg["dropped"] == sum(b - a for a, b in ranges)
    lost_while_down = [r for r in ranges if r[0] > 0]  # not the frames before the first start
    assert lost_while_down and sum(b - a for a, b in lost_while_down) >= 20, ranges
    assert not list(spool.rglob("*.partial"))
    # the run completed: every frame seen was computed (or sampled out), none pending
    store = FeatureStore.open(out)
    assert store.frames_seen == n
    assert not np.any(store.status() == PENDING)
    faults = store.faults()
    assert faults["dropped"] == seg["dropped"]
    assert f"{seg['dropped']} frames dropped" in stdout
