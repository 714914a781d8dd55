"""Karabo bridge: received rate against the sender's full rate, and trains lost.

Three measurements on 127.0.0.1, each against the karabo-bridge package's own servers:

1. the sender's full rate: ``karabo-bridge-server-sim`` (PUSH, AGIPD module, ``--gen
   zeros``) read by a bare ``karabo_bridge.Client`` that drops every train (the most any
   receiver can get);
2. the same server read by xlive's :class:`~xlive.sources.karabo.KaraboReceiver`, which
   spools every pulse to Zarr: trains/s and frames/s, trains lost (gaps in train ids), and the
   ratio to (1);
3. a mock EuXFEL run (extra-data's mock writers, simulated diffraction) replayed by
   ``karabo-bridge-serve-run`` and followed by ``xlive process karabo://... --live``: frames
   analysed against frames sent.

Usage: ``python bench/karabo_rate.py [--seconds 20] [--trains 20]``. Timings on a shared
machine are noisy; the ratio in (2) is measured side by side.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sim(port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            shutil.which("karabo-bridge-server-sim"),
            str(port),
            "-z",
            "PUSH",
            "-d",
            "AGIPDModule",
            "-r",
            "-g",
            "zeros",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def bare_rate(seconds: float) -> tuple[float, int]:
    from karabo_bridge import Client

    port = free_port()
    proc = start_sim(port)
    try:
        c = Client(f"tcp://127.0.0.1:{port}", sock="PULL", timeout=30)
        c.next()  # the first train: the server is up
        n, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < seconds:
            c.next()
            n += 1
        return n / (time.monotonic() - t0), n
    finally:
        proc.kill()
        proc.wait()


def spool_rate(seconds: float, spool: Path):
    from xlive.sources.karabo import KaraboReceiver

    port = free_port()
    proc = start_sim(port)
    try:
        rec = KaraboReceiver(f"tcp://127.0.0.1:{port}", spool)
        t0 = time.monotonic()
        rec.run(until=t0 + seconds)
        dt = time.monotonic() - t0
        return rec.trains / dt, rec.frames / dt, rec.trains, rec.lost
    finally:
        proc.kill()
        proc.wait()


def live_follow(trains: int, work: Path) -> tuple[int, int, float]:
    from xlive.simulate.write_euxfel import write_euxfel_run

    run = work / "SPB" / "202601" / "p700000" / "raw" / "r0001"
    pulses = 8
    write_euxfel_run(
        run, detector="agipd1m", trains=trains, pulses=pulses, seed=3, hit_fraction=0.5
    )
    port = free_port()
    env = {**os.environ, "EXTRA_DATA_DATA_ROOT": str(work)}
    server = subprocess.Popen(
        [
            shutil.which("karabo-bridge-serve-run"),
            "700000",
            "1",
            "--port",
            f"tcp://127.0.0.1:{port}",
            "-z",
            "PUSH",
            "--append-detector-modules",
            "--include",
            "SPB_DET_AGIPD1M-1/DET/*",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    out = work / "features.zarr"
    t0 = time.monotonic()
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "xlive.cli",
                "process",
                f"karabo://127.0.0.1:{port}",
                "--live",
                "--no-sampling",
                "--idle-timeout",
                "10",
                "--out",
                str(out),
                "--geometry",
                str(run.with_suffix(".geom")),
                "--no-db",
                "-q",
            ],
            check=True,
            timeout=900,
        )
    finally:
        server.kill()
        server.wait()
    from xlive.engine.store import open_features

    ds = open_features(out)
    lost = len(set(range(10000, 10000 + trains)) - set(ds.train_id.values.tolist()))
    return int(ds.sizes["frame"]), trains * pulses, lost, time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--trains", type=int, default=20)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        full, n_bare = bare_rate(a.seconds)
        print(
            f"sender full rate (bare client, trains dropped): {full:.2f} trains/s ({n_bare} trains)"
        )
        trains_s, frames_s, n, lost = spool_rate(a.seconds, tmp / "spool.zarr")
        print(
            f"xlive KaraboReceiver (spooling every pulse): {trains_s:.2f} trains/s, "
            f"{frames_s:.0f} frames/s, {n} trains, {lost} trains lost; "
            f"ratio to the sender's full rate {trains_s / full:.2f}"
        )
        done, sent, lost, dt = live_follow(a.trains, tmp / "live")
        print(
            f"xlive process --live on karabo-bridge-serve-run: {done} of {sent} frames "
            f"analysed, {lost} trains lost, {dt:.0f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
