"""Sustained simulator write rate (frames/s) into Zarr, after set-up, unpaced.

    python bench/simulate_rate.py --detector eiger4m --frames 600

Goal (issue 2): >= 100 Eiger 4M frames/s sustained on a 2-core machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from xlive.simulate import write_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--detector", default="eiger4m")
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--format", default="zarr")
    ap.add_argument("--hit-fraction", type=float, default=0.3)
    args = ap.parse_args()
    stamps: list[tuple[float, int]] = []
    done = [0]

    def progress(k: int) -> None:
        done[0] += k
        stamps.append((time.perf_counter(), done[0]))

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        s = write_run(
            f"{tmp}/run",
            frames=args.frames,
            rate=0,
            fmt=args.format,
            detector=args.detector,
            hit_fraction=args.hit_fraction,
            progress=progress,
        )
        total = time.perf_counter() - t0
    # sustained: from the first written batch to the last (excludes set-up)
    (ta, na), (tb, nb) = stamps[0], stamps[-1]
    sustained = (nb - na) / (tb - ta)
    print(
        f"detector={args.detector} format={args.format} frames={s.frames} "
        f"hit_fraction={args.hit_fraction}"
    )
    print(f"set-up + first batch: {ta - t0:.2f} s; total {total:.2f} s")
    print(f"sustained write rate: {sustained:.1f} frames/s (goal >= 100 for eiger4m zarr)")


if __name__ == "__main__":
    main()
