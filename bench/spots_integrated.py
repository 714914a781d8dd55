"""xlive's spot finders (integrated SNR and threshold) beside OM's peakfinder8 on the harder
simulator: ms/frame, ratios and recall/precision (xlive.simulate.scoring), one thread.

Usage::

    NUMBA_NUM_THREADS=1 python bench/spots_integrated.py --detector eiger4m --frames 6
    python bench/spots_integrated.py --detector eiger4m --frames 3 --stages

``--stages``: CPU ms per frame of the integrated finder's detection stage (the fused
``detect_blocks`` beside the kernels it replaces, step by step), of the whole ``find`` and of
its watershed, instead of the peers.

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
    ap.add_argument("--stages", action="store_true", help="time the detection stage's steps")
    args = ap.parse_args(argv)
    if args.stages:
        return stages(args)
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


def stages(args) -> None:
    """CPU ms per frame of the integrated finder's detection stage: the fused kernel
    (:func:`~xlive.analyzers._kernels.blocks.detect_blocks`, what the finder runs) beside
    the kernels it replaces one after the other (its references), and of the whole ``find``
    and its watershed (best of ``repeat``)."""
    from xlive.analyzers import SpotFinder, SpotParams
    from xlive.analyzers import spots as S
    from xlive.analyzers._kernels import blocks as B
    from xlive.analyzers.base import valid_range
    from xlive.simulate import SimParams, Simulation

    sim = Simulation(SimParams.preset(args.preset, detector=args.detector, seed=args.seed))
    frames = [sim.frame(i)[0] for i in range(args.frames)]
    p = SpotParams(method="integrated")
    sf = SpotFinder(sim.geometry, p)
    lo, hi = valid_range(frames[0].dtype, sim.geometry)
    t = sf.block_table
    nb = B.block_shape(frames[0].shape)
    sb = p.bg_box // B.BLOCK
    nbox = (-(-nb[0] // sb), -(-nb[1] // sb))
    cand = np.empty(p.max_candidates, np.int64)
    prepared = []
    for f in frames:  # the fused pass's outputs: ring statistics and block sums
        res = sf.binning.run(f, lo, hi, sf.saturation, sf.adc_level, cand)
        bsum, bn = np.zeros(nb), np.zeros(nb, np.int32)
        B.block_sums(f, sf.binning.rings, lo, hi, B.BLOCK, bsum, bn)
        var = np.maximum(res.sigma, sf.read_sigma) ** 2
        prepared.append((f, res.mean, var, bsum, bn))
    net0, nvar, nsd = np.empty(nb), np.empty(nb), np.empty(nb)
    nuse = np.empty(nb, np.int32)
    rbox, sbox = np.zeros(nbox), np.ones(nbox)
    resid, scale, seeds = np.zeros(nb), np.ones(nb), np.zeros(nb, np.uint8)
    edge = np.zeros(nb, np.uint8)

    def old(f, mean, var, bsum, bn, clock):
        sdg = B.radial_tolerance_sd(mean, p.radial_tolerance)
        args_ = (t.ptr, t.ring, t.count, t.n_static, bsum, bn, f, sf.binning.rings, lo, hi)
        c0 = clock()
        B.block_background(*args_, mean, var, sdg, B.BLOCK, net0, nvar, nsd, nuse)
        c1 = clock()
        B.local_background(net0, nvar, nuse, sb, 2.5, rbox, sbox)
        c2 = clock()
        B.boxes_to_blocks(rbox, sb, resid)
        B.box_scatter(net0, nvar, nuse, resid, sb, sbox)
        B.boxes_to_blocks(sbox, sb, scale)
        c3 = clock()
        seeds[:] = 0
        args_ = (net0, nvar, nsd, nuse, resid, scale, 1, B.BLOCK, f.shape)
        B.block_seeds(*args_, p.module_edge_excess, sf.gain, p.detect_snr, seeds)
        c4 = clock()
        return np.array([c1 - c0, c2 - c1, c3 - c2, c4 - c3, c4 - c0])

    def fused(f, mean, var, bsum, bn, clock):
        sdg = B.radial_tolerance_sd(mean, p.radial_tolerance)
        c0 = clock()
        B.detect_blocks(
            t.r0, t.span_count, t.n_fixed, t.ptr, t.ring, t.count, t.n_static,
            B.ring_table(mean, var, sdg, t.span), bsum, bn,
            f, sf.binning.rings, lo, hi, mean, var, sdg, B.BLOCK, sb, 2.5,
            p.module_edge_excess, sf.gain, p.detect_snr, net0, nvar, nsd, nuse, edge, rbox,
            sbox, resid, seeds,
        )  # fmt: skip
        return clock() - c0

    old(*prepared[0], time.process_time)  # compile / load the cache
    fused(*prepared[0], time.process_time)
    best = np.full(5, np.inf)
    best_fused = np.inf
    for _ in range(args.repeat):  # round robin
        tot = sum(old(*x, time.process_time) for x in prepared) / len(prepared)
        best = np.minimum(best, tot)
        tot = sum(fused(*x, time.process_time) for x in prepared) / len(prepared)
        best_fused = min(best_fused, tot)
    spent = {}
    inner = S.find_spots

    def find_spots(*a, **k):  # the watershed's share of find
        c0 = time.process_time()
        try:
            return inner(*a, **k)
        finally:
            spent["ws"] = spent.get("ws", 0.0) + time.process_time() - c0

    find = timed(sf.find, frames, args.repeat)
    S.find_spots = find_spots
    try:
        spent.clear()
        for f in frames:
            sf.find(f)
    finally:
        S.find_spots = inner
    floor = timed(np.max, frames, args.repeat)
    names = ["block background", "local background", "scatter + interpolation", "seeds"]
    load = os.getloadavg()
    print(
        f"\n## integrated finder, detection stage, {sim.geometry.description} {nb} blocks, "
        f"{args.preset} preset, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}\n"
    )
    print("| step | CPU ms/frame |\n|---|---:|")
    for n, v in zip([*names, "kernels one after the other (sum)"], best, strict=True):
        print(f"| {n} | {v * 1e3:.2f} |")
    print(f"| **detect_blocks (fused, what find runs)** | {best_fused * 1e3:.2f} |")
    print(f"| whole find (incl. ring pass, block sums, watershed) | {find:.1f} |")
    print(f"| of which find_spots (watershed), one round | {spent['ws'] / len(frames) * 1e3:.1f} |")
    print(f"| memory floor (np.max) | {floor:.2f} |")
    print(f"\nkernels one after the other / detect_blocks: {best[-1] / best_fused:.2f}")


if __name__ == "__main__":
    main()
