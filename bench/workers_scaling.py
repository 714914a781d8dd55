"""Throughput of the live loop with one and with two local dask worker processes, on the same
finished run (frames/s and the ratio; goal >= 1.7x on 2 cores).

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


def throughput(run: Path, feats: Path, workers: int) -> float:
    client = default_client(workers, processes=True)
    try:
        src = open_source(run)
        # warm-up: numba compilation/caches on every worker, then time a fresh store
        with LiveProcessor(src, feats.with_suffix(".warm.zarr"), client=client,
                           frames=range(0, 4 * workers)) as lp:
            lp.run()
        t0 = time.perf_counter()
        with LiveProcessor(src, feats, client=client,
                           params=LiveParams(adaptive=False, block=BLOCK)) as lp:
            stats = lp.run()
        return stats.frames_stored / (time.perf_counter() - t0)
    finally:
        client.close()
        client.cluster.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--detector", default="eiger4m")
    ap.add_argument("--frames", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        write_run(run, frames=args.frames, rate=0, detector=args.detector, hit_fraction=0.3)
        one = throughput(run, Path(tmp) / "one.zarr", 1)
        two = throughput(run, Path(tmp) / "two.zarr", 2)
    print(f"{args.detector}, {args.frames} frames: 1 worker {one:.1f} frames/s, "
          f"2 workers {two:.1f} frames/s, ratio {two / one:.2f} (goal >= 1.7)")


if __name__ == "__main__":
    main()
