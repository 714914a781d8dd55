"""Throughput of the live loop with one and with two local dask worker processes, on the same
finished run (frames/s and the ratio; goal >= 1.7x on 2 cores). Set-up (shipping the analyzers
to the workers, loading kernels) is done before the clock starts; blocks of 8 frames.

    python bench/workers_scaling.py --detector eiger4m --frames 200
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from xlive.live import LiveParams, LiveProcessor, default_client
from xlive.simulate import write_run
from xlive.sources import open_source

BLOCK = 8


def throughput(run: Path, feats: Path, workers: int, processes: bool) -> float:
    client = default_client(workers, processes=processes)
    try:
        src = open_source(run)
        with LiveProcessor(src, feats, client=client,
                           params=LiveParams(adaptive=False, block=BLOCK,
                                             max_in_flight=4 * workers)) as lp:
            lp.prepare()  # analyzers shipped and warmed on every worker: not timed
            t0, c0 = time.perf_counter(), time.process_time()
            stats = lp.run()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            print(f"  {workers} worker(s): driver process used {1e3 * cpu / stats.frames_stored:.1f}"
                  f" ms CPU per frame ({cpu / wall:.0%} of a core)")
            return stats.frames_stored / wall
    finally:
        client.close()
        client.cluster.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--detector", default="eiger4m")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--threads", action="store_true",
                    help="workers as threads of one process (default: one process each)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        write_run(run, frames=args.frames, rate=0, detector=args.detector, hit_fraction=0.3)
        one = throughput(run, Path(tmp) / "one.zarr", 1, not args.threads)
        two = throughput(run, Path(tmp) / "two.zarr", 2, not args.threads)
    kind = "thread" if args.threads else "process"
    print(f"{args.detector}, {args.frames} frames, {kind} workers: 1 worker {one:.1f} frames/s, "
          f"2 workers {two:.1f} frames/s, ratio {two / one:.2f} (goal >= 1.7)")


if __name__ == "__main__":
    main()
