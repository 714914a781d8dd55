"""xlive's spot finders (integrated SNR and threshold) beside OM's peakfinder8 on the harder
simulator: ms/frame, ratios and recall/precision (xlive.simulate.scoring), one thread.

Usage::

    NUMBA_NUM_THREADS=1 python bench/spots_integrated.py --detector eiger4m --frames 6

Peers: ``pip install -e ".[bench]"`` (ondamonitor). Each finder gets the same frames
(``SimParams.preset("hard")``: broad weak spots, large cells, streaks, zingers, hot pixels).
"""

from __future__ import annotations

import os

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

np.float64 = np.float64  # OM's wrapper module uses it (removed in NumPy 2)
sys.path.insert(0, str(Path(__file__).resolve().parent))


def timed(fn, frames, repeat):
    """Best over ``repeat`` rounds of the mean CPU ms per frame (after one warm-up call; CPU
    time of this one-threaded process, less disturbed by other load than wall time)."""
    fn(frames[0])
    best = np.inf
    for _ in range(repeat):
        t0 = time.process_time()
        for f in frames:
            fn(f)
        best = min(best, (time.process_time() - t0) / len(frames) * 1e3)
    return best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detector", default="eiger4m")
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--preset", default="hard", help="simulator preset (hard, default)")
    args = ap.parse_args(argv)
    from peers_om import OMPeakfinder8

    from xlive.analyzers import SpotFinder, SpotParams
    from xlive.simulate import SimParams, Simulation
    from xlive.simulate.scoring import score

    sim = Simulation(SimParams.preset(args.preset, detector=args.detector, seed=args.seed))
    pairs = [sim.frame(i) for i in range(args.frames)]
    frames = [f for f, _ in pairs]
    truths = [t for _, t in pairs]
    g = sim.geometry
    integ = SpotFinder(g, SpotParams(method="integrated"))
    thresh = SpotFinder(g, SpotParams(method="threshold"))
    finders = {
        "xlive spots integrated (find)": integ.find,
        "xlive spots threshold (find)": thresh.find,
        "OM peakfinder8 normal": OMPeakfinder8(g),
        "OM peakfinder8 fast": OMPeakfinder8(g, fast=True),
    }
    ms = {k: timed(fn, frames, args.repeat) for k, fn in finders.items()}
    print(
        f"\n## {g.description} {g.shape}, {args.preset} preset seed {args.seed}, {len(frames)} frames\n"
    )
    print("| finder | CPU ms/frame | recall (SNR >= 10) | precision | duplicates |")
    print("|---|---:|---:|---:|---:|")
    for k, fn in finders.items():
        s = score([fn(f)[:, :2] for f in frames], truths)
        print(f"| {k} | {ms[k]:.1f} | {s.recall:.4f} | {s.precision:.4f} | {s.n_duplicates} |")
    base = ms["xlive spots integrated (find)"]
    print(f"\npeakfinder8 fast / xlive integrated: {ms['OM peakfinder8 fast'] / base:.2f}")
    print(f"peakfinder8 normal / xlive integrated: {ms['OM peakfinder8 normal'] / base:.2f}")


if __name__ == "__main__":
    main()
