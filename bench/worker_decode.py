"""The live worker task (``analyze_block`` on EIGER 16-bit bitshuffle-LZ4 chunk files, default
analyzers and reducers, two threads) with the spool reader's decoder (DECTRIS's, read-only
frames) and with ``bitshuffle.decompress_lz4`` (writable frames), alternated round by round in
one process: thread CPU ms per frame, and the per-round difference (less sensitive to the
machine's load than two separate runs).

    python bench/worker_decode.py                       # EIGER 4M, 8 frames simulated here
    python bench/worker_decode.py --run /tmp/run --rounds 14
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from xlive.aggregate.reducers import default_reducers
from xlive.analyzers import default_analyzers
from xlive.engine._dask_plugins import keep_frame_buffers
from xlive.engine.features import analyze_block
from xlive.engine.live import warm_up
from xlive.simulate import SimParams, Simulation
from xlive.sources._bslz4 import bslz4_decode, bslz4_encode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--run", help="an `xlive simulate` run (default: simulate 8 frames here)")
    ap.add_argument("--detector", default="eiger4m")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--blocks", type=int, default=3, help="blocks of 8 frames per thread a round")
    args = ap.parse_args()
    keep_frame_buffers()
    import bitshuffle  # after xlive's _bslz4, which turns bitshuffle's OpenMP threads off
    import zarr

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else Path(tmp) / "run"
        if not args.run:
            subprocess.run(
                [sys.executable, "-m", "xlive.cli", "simulate", str(run), "--frames", "8",
                 "--rate", "0", "--detector", args.detector, "-q"],
                check=True,
            )  # fmt: skip
        g = zarr.open_group(str(run / "run.zarr"), mode="r")
        n = min(8, g["frames"].shape[0])
        # as an EIGER stream carries them, chunk files as the receiver spools them
        frames = [np.minimum(np.asarray(g["frames"][i]), 65535).astype(np.uint16) for i in range(n)]
        files = []
        for k, f in enumerate(frames):
            files.append(Path(tmp) / f"chunk-{k}")
            files[-1].write_bytes(bslz4_encode(f))
        geometry = Simulation(SimParams(detector=args.detector)).geometry.replace(sentinels=None)
        analyzers, reducers = default_analyzers(geometry), default_reducers(geometry)
        shape, size = frames[0].shape, frames[0].size
        warm_up(analyzers, shape, np.uint16, reducers)

        def spool_reader(blob):
            return bslz4_decode(blob, dtype=np.uint16, shape=shape, writable=False)

        def bitshuffle_decode(blob):
            block = int.from_bytes(blob[8:12], "big") // 2
            body = np.frombuffer(blob, np.uint8, offset=12)
            out = bitshuffle.decompress_lz4(body, (size,), np.dtype(np.uint16), block)
            return out.reshape(shape)

        decoders = {
            "spool reader (DECTRIS, read-only)": spool_reader,
            "bitshuffle": bitshuffle_decode,
        }
        for dec in decoders.values():
            np.testing.assert_array_equal(dec(files[0].read_bytes()), frames[0])

        class Reader:
            def __init__(self, dec):
                self.dec = dec

            def read_one(self, i):
                return self.dec(files[i % n].read_bytes())

        def work(reader, out, t):
            c0 = time.thread_time()
            for k in range(args.blocks):
                idx = np.arange(8 * k, 8 * k + 8)
                analyze_block(reader, analyzers, idx, reducers, ("bench", 1e9))
            out[t] = time.thread_time() - c0

        rows: dict[str, list[float]] = {k: [] for k in decoders}
        for r in range(args.rounds):
            order = list(decoders.items())
            for name, dec in order if r % 2 == 0 else order[::-1]:
                out: dict[int, float] = {}
                threads = [
                    threading.Thread(target=work, args=(Reader(dec), out, t)) for t in (0, 1)
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                rows[name].append(sum(out.values()) / (2 * args.blocks * 8) * 1e3)
    print(
        f"worker task, {args.detector} uint16, 2 threads x {8 * args.blocks} frames a round; "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print("thread CPU ms per frame, each round:")
    for name, v in rows.items():
        print(f"  {name:34s} {' '.join(f'{x:5.2f}' for x in v)}   median {np.median(v):.2f}")
    a, b = (np.array(v) for v in rows.values())
    d = b - a
    print(
        f"bitshuffle - spool reader, per round: {' '.join(f'{x:+.2f}' for x in d)}   "
        f"median {np.median(d):+.2f} ms per frame"
    )


if __name__ == "__main__":
    main()
