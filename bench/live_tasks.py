"""CPU per frame of the live loop keeping up, with a poll's new frames shared over one task
per worker thread (what ``LiveProcessor._submit`` does) or by the rule before (each task's
size recomputed as the queue over every task slot, two per thread, at least ``block``),
alternated in one run.

A zarr run (eiger500k) grows at ``--rate`` by its ``frames_complete`` counter, as a detector
writing it would; the analysis is the radial profile only, so the loop keeps up and the
difference is the loop's own cost per task (dask's scheduler, worker and client all run in
this process). The rule before is :func:`slots_submit`, kept here as it was.

    python bench/live_tasks.py --rate 100 --frames 1500
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

from xlive.analyzers.radial import RadialParams, RadialProfile
from xlive.engine.live import LiveParams, LiveProcessor, default_client
from xlive.simulate import write_run
from xlive.sources import open_source


def slots_submit(self) -> None:
    """``LiveProcessor._submit`` before live19 (the error handling left out)."""
    from xlive.engine.features import analyze_block

    self._futures_setup()
    p = self.params
    limit = p.max_in_flight or 2 * self._threads
    while self._queue and len(self._in_flight) < limit:
        size = min(max(p.block, -(-len(self._queue) // max(limit, 1))), max(p.max_block, p.block))
        idx = [self._queue.popleft() for _ in range(min(size, len(self._queue)))]
        hold = (self._hold_key, p.partials_interval)
        fut = self.client.submit(
            analyze_block,
            self._reader_f,
            self._analyzers_f,
            np.array(idx),
            self._reducers_f,
            hold,
            pure=False,
        )
        self._in_flight[fut] = idx


def one(run: Path, client, rate: float, n: int, rule: str) -> tuple[float, int, float]:
    """(CPU ms per frame, tasks, p95 lag) of one growing run."""
    group = zarr.open_group(str(run / "run.zarr"), mode="r+")
    group.attrs["frames_complete"] = 1
    src = open_source(run)
    tasks = 0
    with tempfile.TemporaryDirectory() as tmp:
        lp = LiveProcessor(
            src,
            Path(tmp) / "f.zarr",
            analyzers=[RadialProfile(src.geometry, RadialParams(n_bins=48))],
            client=client,
            reducers=[],
            params=LiveParams(adaptive=False),
        )
        if rule == "slots":
            lp._submit = slots_submit.__get__(lp)
        lp.prepare()
        t0, c0 = time.time(), time.process_time()
        while True:
            k = min(n, int((time.time() - t0) * rate) + 1)
            group.attrs["frames_complete"] = k
            before = set(lp._in_flight)
            lp.step()
            tasks += len(set(lp._in_flight) - before)
            if k >= n and lp.idle and lp.frames_seen >= n:
                break
        cpu = time.process_time() - c0
        lags = np.asarray(lp.stats.lags)
        lp.close()
    return cpu * 1e3 / n, tasks, float(np.percentile(lags, 95))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--frames", type=int, default=1500)
    ap.add_argument("--pairs", type=int, default=2)
    args = ap.parse_args()
    client = default_client(2)
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        write_run(run, frames=args.frames, rate=0, detector="eiger500k", seed=3)
        rows = {"threads": [], "slots": []}
        for _ in range(args.pairs):
            for rule in ("slots", "threads"):
                rows[rule].append(one(run, client, args.rate, args.frames, rule))
    client.close()
    client.cluster.close()
    print(f"{args.rate:g} Hz, {args.frames} eiger500k frames; load now {os.getloadavg()[0]:.1f}")
    print(f"  {'tasks shared over':20s} {'CPU ms/frame':>12s} {'tasks':>6s} {'p95 lag':>8s}")
    for rule, label in (("slots", "rule before"), ("threads", "worker threads")):
        for cpu, tasks, lag in rows[rule]:
            print(f"  {label:20s} {cpu:12.2f} {tasks:6d} {lag:7.2f}s")
    ratio = np.median([r[0] for r in rows["slots"]]) / np.median([r[0] for r in rows["threads"]])
    print(f"CPU per frame, rule before / worker threads: {ratio:.2f}")


if __name__ == "__main__":
    main()
