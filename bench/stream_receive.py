"""Receive an Eiger-4M-sized bitshuffle-LZ4 stream on loopback and count lost frames.

A sender process (``python -m xlive.sources.stream.sender``) pushes ``--frames`` frames of
2167 x 2070 uint16 (EIGER 4M, Stream V1 bs16-lz4 or V2 bslz4) at ``--rate`` frames/s (0 = as fast
as it can); this process receives them into a Zarr spool (chunks stored as received) and
prints frames/s received and the number lost (sent - spooled).

    python bench/stream_receive.py --frames 3000 --rate 0 --protocol 1
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from xlive.sources.stream.receiver import StreamReceiver, StreamSource


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=3000)
    p.add_argument("--rate", type=float, default=0.0)
    p.add_argument("--protocol", type=int, default=1, choices=(1, 2))
    p.add_argument("--detector", default="eiger4m")
    p.add_argument("--spool", default=None, help="spool folder (default: a temporary folder)")
    a = p.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    spool = Path(a.spool or tempfile.mkdtemp(prefix="xlive-bench-")) / "spool.zarr"
    sender = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xlive.sources.stream.sender",
            "--bind",
            address,
            "--synthetic",
            a.detector,
            "--frames",
            str(a.frames),
            "--rate",
            str(a.rate),
            "--protocol",
            str(a.protocol),
            "--distinct",
            "8",
            "--timeout",
            "30",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    rec = StreamReceiver(address, spool)
    first = {}

    orig = rec._handle

    def handle(parts):  # time from the first frame to the last
        first.setdefault("t", time.perf_counter())
        orig(parts)

    rec._handle = handle
    rec.run(until=time.monotonic() + 600, max_series=1)
    t_end = time.perf_counter()
    out, _ = sender.communicate(timeout=60)
    sent = json.loads(out.strip().splitlines()[-1])
    n = StreamSource(None, spool=spool).refresh()
    dt = t_end - first.get("t", t_end)
    # chunk files frames/c.<n>.0.0 (spools before the flat layout: frames/c/<n>/0/0)
    frames_dir = spool / "seg000" / "frames"
    size = sum(f.stat().st_size for f in [*frames_dir.glob("c.*"), *frames_dir.rglob("c/*/0/0")])
    print(
        f"detector {a.detector}, protocol V{a.protocol}, requested rate {a.rate or 'max'} frames/s"
    )
    print(
        f"sent {sent['sent']} frames in {sent['seconds']:.2f} s "
        f"({sent['sent'] / sent['seconds']:.0f} frames/s)"
    )
    print(
        f"received {rec.received}, spooled {n} frames in {dt:.2f} s: "
        f"{rec.received / dt:.0f} frames/s received, "
        f"{size / max(n, 1) / 1e3:.0f} kB/frame compressed"
    )
    print(f"lost: {sent['sent'] - n}")


if __name__ == "__main__":
    main()
