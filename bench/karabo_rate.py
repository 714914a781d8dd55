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

Usage: ``python bench/karabo_rate.py [--seconds 20] [--trains 20] [--rounds 2] [--no-live]``.
Timings on a shared machine are noisy; (1) and (2) are alternated ``--rounds`` times and their
ratio printed per round.
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


#: the simulator's options (set from the command line in main)
SIM = {"gen": "zeros", "data_like": "online", "detector": "AGIPDModule"}


def start_sim(port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            shutil.which("karabo-bridge-server-sim"),
            str(port),
            "-z",
            "PUSH",
            "-d",
            SIM["detector"],
            "-r",
            "-g",
            SIM["gen"],
            "--data-like",
            SIM["data_like"],
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def bare_rate(seconds: float) -> tuple[float, int, float]:
    from karabo_bridge import Client

    port = free_port()
    proc = start_sim(port)
    try:
        c = Client(f"tcp://127.0.0.1:{port}", sock="PULL", timeout=30)
        c.next()  # the first train: the server is up
        n, t0, cpu0 = 0, time.monotonic(), time.process_time()
        while time.monotonic() - t0 < seconds:
            c.next()
            n += 1
        cpu = (time.process_time() - cpu0) / n * 1e3
        return n / (time.monotonic() - t0), n, cpu
    finally:
        proc.kill()
        proc.wait()


def spool_rate(seconds: float, spool: Path, compress: str | None = "lz4"):
    """Trains/s received and spooled: ``run`` returns once every received train is written,
    so the spooled rate counts the time to drain the writer's queue too."""
    from xlive.sources.karabo import KaraboReceiver

    port = free_port()
    proc = start_sim(port)
    try:
        rec = KaraboReceiver(f"tcp://127.0.0.1:{port}", spool, compress=compress)
        # timed from the first train received (the server is up) to the last one written
        t_start, cpu0 = time.monotonic(), time.process_time()
        rec.run(until=t_start + 30 + seconds, max_trains=None, seconds_after_first=seconds)
        dt = time.monotonic() - rec.t_first
        cpu = (time.process_time() - cpu0) / rec.trains * 1e3
        n, f = rec.trains - 1, rec.frames * (rec.trains - 1) / rec.trains
        assert rec.received == rec.trains and not rec.errors, (rec.received, rec.trains, rec.errors)
        return n / dt, f / dt, n, rec.lost, cpu
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
                "60",  # karabo-bridge-serve-run sends ~0.5 train/s under load: no early stop
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
    ap.add_argument("--rounds", type=int, default=2, help="bare/spool pairs, alternated")
    ap.add_argument("--no-live", action="store_true", help="skip measurement 3")
    ap.add_argument("--no-rates", action="store_true", help="skip measurements 1 and 2")
    ap.add_argument("--gen", choices=["zeros", "random"], default="zeros", help="simulator data")
    ap.add_argument("--data-like", choices=["online", "file"], default="online")
    ap.add_argument("--detector", choices=["AGIPDModule", "AGIPD", "LPD"], default="AGIPDModule")
    ap.add_argument("--raw", action="store_true", help="spool without compression")
    ap.add_argument("--spool-dir", default=None, help="where the spool goes (default: $TMPDIR)")
    a = ap.parse_args()
    SIM.update(gen=a.gen, data_like=a.data_like, detector=a.detector)
    print(f"simulator: {SIM}; spool {'raw' if a.raw else 'blosc lz4'} in {a.spool_dir or 'TMPDIR'}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(dir=a.spool_dir) as tmp:
        tmp = Path(tmp)
        ratios = []
        for r in range(
            0 if a.no_rates else a.rounds
        ):  # alternated, so both see the same load on a shared machine
            full, n_bare, cpu_bare = bare_rate(a.seconds)
            print(
                f"[{r}] sender full rate (bare client, trains dropped): {full:.2f} trains/s "
                f"({n_bare} trains, {cpu_bare:.1f} ms CPU per train in the client process)"
            )
            trains_s, frames_s, n, lost, cpu = spool_rate(
                a.seconds, tmp / f"spool{r}.zarr", None if a.raw else "lz4"
            )
            ratios.append(trains_s / full)
            print(
                f"[{r}] xlive KaraboReceiver (spooling every pulse): {trains_s:.2f} trains/s, "
                f"{frames_s:.0f} frames/s, {n} trains, {lost} trains lost, {cpu:.1f} ms CPU per "
                "train (all threads); "
                f"ratio to the sender's full rate {trains_s / full:.2f}"
            )
        if ratios:
            print(
                f"ratio spooled / sender's full rate: {', '.join(f'{x:.2f}' for x in ratios)}; "
                f"load average now {os.getloadavg()[0]:.1f}"
            )
        if a.no_live:
            return 0
        done, sent, lost, dt = live_follow(a.trains, tmp / "live")
        print(
            f"xlive process --live on karabo-bridge-serve-run: {done} of {sent} frames "
            f"analysed, {lost} trains lost, {dt:.0f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
