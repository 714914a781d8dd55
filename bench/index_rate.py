"""Hits indexed per second on one core, beside the spot finder's frames per second.

Usage::

    python bench/index_rate.py --hits 30            # EIGER 4M hits of 50-300 spots

Simulated EIGER 4M lysozyme hits (one crystal each) are kept when the spot finder finds 50 to
300 spots on them. On the same hits, one thread: xlive's spot finder + frame features
(``FrameAnalyzer``), xlive's indexer with the cell given and without it, and rstbx's 1-D FFT
basis search (``DPS_primitive_lattice``, the search alone, as DIALS' ``fft1d`` runs it) as the
peer. Times are CPU seconds of this process (``time.process_time``), so other jobs on a busy
machine slow the figures less than wall-clock time would; ratios between the rows are the
robust result. rstbx is skipped when cctbx-base is not installed.
"""

from __future__ import annotations

import os

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

try:  # cctbx must load before numba (its extension crashes when imported after LLVM)
    import cctbx.uctbx  # noqa: F401
    import iotbx.phil
    from rstbx.indexing_api.lattice import DPS_primitive_lattice
    from rstbx.phil.phil_preferences import indexing_api_defs
    from scitbx.array_family import flex

    HAVE_RSTBX = True
except ImportError:
    HAVE_RSTBX = False

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def collect_hits(n_hits: int, detector: str, seed: int):
    from xlive.analyzers import FrameAnalyzer
    from xlive.simulate import SimParams, Simulation

    sim = Simulation(
        SimParams(detector=detector, seed=seed, hit_fraction=1.0, crystal_strength=60.0)
    )
    fa = FrameAnalyzer(sim.geometry)
    frames, feats = [], []
    i = 0
    while len(frames) < n_hits and i < 20 * n_hits:
        img, _ = sim.frame(i)
        i += 1
        out = fa(img[None])
        if 50 <= out["n_spots"][0] <= 300:
            frames.append(img)
            feats.append({k: v[:1] for k, v in out.items()})
    return sim, fa, frames, feats


def cpu_per_call(fn, items, repeat: int = 1) -> float:
    fn(items[0])  # warm-up (numba compilation, caches)
    best = np.inf
    for _ in range(repeat):
        t0 = time.process_time()
        for it in items:
            fn(it)
        best = min(best, (time.process_time() - t0) / len(items))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hits", type=int, default=30)
    ap.add_argument("--detector", default="eiger4m")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    from xlive.analyzers.indexing import Indexer, IndexingParams

    sim, fa, frames, feats = collect_hits(args.hits, args.detector, args.seed)
    n_spots = [int(f["n_spots"][0]) for f in feats]
    print(
        f"{len(frames)} {args.detector} hits, {min(n_spots)}-{max(n_spots)} spots "
        f"(median {int(np.median(n_spots))}); one thread, CPU time"
    )
    t_spots = cpu_per_call(lambda f: fa(f[None]), frames, args.repeat)
    rows = [("spot finder + frame features (FrameAnalyzer)", t_spots, "frames")]
    results = {}
    for label, params in (
        ("indexer, cell given", IndexingParams(cell=sim.params.unit_cell)),
        ("indexer, cell found", IndexingParams()),
    ):
        ix = Indexer(sim.geometry, params)
        results[label] = [ix.index_block(f) for f in feats]
        rows.append((label, cpu_per_call(ix.index_block, feats, args.repeat), "hits"))
    if HAVE_RSTBX:
        ix = Indexer(sim.geometry)
        rvecs = [ix.index(f["peak_x"][0], f["peak_y"][0], f["peak_snr"][0])[2] for f in feats]
        hard = iotbx.phil.parse(input_string=indexing_api_defs).extract()

        def dps(r):
            d = DPS_primitive_lattice(
                max_cell=ix.params.max_cell, recommended_grid_sampling_rad=None, horizon_phil=hard
            )
            d.index(reciprocal_space_vectors=flex.vec3_double([tuple(v) for v in r]))
            return d.getSolutions()

        rows.append(("rstbx DPS basis search only (peer)", cpu_per_call(dps, rvecs[:10]), "hits"))
    for label, t, unit in rows:
        print(
            f"{label:48s} {t * 1e3:8.1f} ms  {1.0 / t:7.1f} {unit}/s/core  "
            f"x{t / t_spots:5.2f} of the spot finder"
        )
    for label, res in results.items():
        n_idx = sum(int(r["indexed"][0]) for r in res)
        print(f"{label}: {n_idx}/{len(res)} hits indexed")
    t_index = min(t for label, t, _ in rows if label.startswith("indexer"))
    print(
        f"a 100 Hz run at 30 % hits needs {100 * t_spots:.2f} cores for spots and "
        f"{30 * t_index:.2f} cores to index every hit (cell given)"
    )


if __name__ == "__main__":
    main()
