"""Why the integrated spot finder misses spots and reports false peaks, on the hard preset.

Classifies, against the simulator's truth (:mod:`xlive.simulate.scoring`'s default definition),
every missed expected spot and every unpaired peak:

* misses: ``merged`` (the nearest peak belongs to the nearest neighbour: the pair became one;
  "stronger nb" when that neighbour has > 1.5x the signal), ``off-centre`` (an unpaired peak
  within ``--near`` px but > 2 px away), ``lost`` (no peak near: below detection);
* false peaks: ``duplicate`` (within 2 px of a truth spot already paired), ``off-centre`` (an
  unpaired truth spot within ``--near`` px), ``artefact`` (zinger / hot pixel), ``noise``.

Usage::

    python bench/spots_misses.py --detector eiger500k --seeds 1 2 3 --frames 8

Frames are cached in ``/tmp/xlive_hard_<detector>_<seed>.npz`` (the simulation is the slow part).
"""

from __future__ import annotations

import argparse
import os
import pickle
from collections import Counter

import numpy as np
from scipy.spatial import cKDTree


def frames_for(detector, seed, n):
    """Hard-preset frames and truths of one seed (cached)."""
    from xlive.simulate import SimParams, Simulation

    path = f"/tmp/xlive_hard_{detector}_{seed}_{n}.pkl"
    if os.path.exists(path):
        with open(path, "rb") as fh:
            return pickle.load(fh)
    sim = Simulation(SimParams.preset("hard", detector=detector, seed=seed))
    pairs = [sim.frame(i) for i in range(n)]
    out = (sim.geometry, [f for f, _ in pairs], [t for _, t in pairs])
    with open(path, "wb") as fh:
        pickle.dump(out, fh)
    return out


def classify(peaks, truth, near=4.0, radius=2.0):
    """Counters of miss classes and false-peak classes, and the list of missed spot rows."""
    from xlive.simulate.scoring import pair

    s = truth.spots
    txy = np.stack([s["x"], s["y"]], axis=1)
    xy = peaks[:, :2]
    match = pair(xy, txy, radius)
    owner = np.full(len(txy), -1)
    owner[match[match >= 0]] = np.nonzero(match >= 0)[0]
    want = (s["snr"] >= 10) & ~s["masked"] & (s["separation"] >= 1.0)
    miss, false = Counter(), Counter()
    rows = []
    ptree = cKDTree(xy) if len(xy) else None
    for t in np.nonzero(want & (owner < 0))[0]:
        d, p = (np.inf, -1) if ptree is None else ptree.query(txy[t])
        # nearest comparable neighbour (any truth spot with SNR >= 5)
        dn = np.hypot(*(txy - txy[t]).T)
        dn[t] = np.inf
        dn[s["snr"] < 5] = np.inf
        k = int(np.argmin(dn))
        ratio = s["signal"][k] / s["signal"][t]
        if d <= near and match[p] < 0:
            kind = "off-centre"
        elif d <= near or (owner[k] >= 0 and d <= dn[k] + radius):
            kind = "merged" + (" (stronger nb)" if ratio > 1.5 else "")
        else:
            kind = "lost"
        miss[kind] += 1
        rows.append(
            (
                kind,
                truth.frame_number,
                txy[t, 0],
                txy[t, 1],
                s["snr"][t],
                s["sigma_r"][t],
                s["sigma_t"][t],
                s["separation"][t],
                dn[k],
                ratio,
                d,
            )
        )
    a = truth.artefacts
    atree = cKDTree(np.stack([a["x"], a["y"]], 1)) if len(a["x"]) else None
    ttree = cKDTree(txy)
    for p in np.nonzero(match < 0)[0]:
        d, t = ttree.query(xy[p])
        if d <= radius:
            false["duplicate"] += 1
        elif atree is not None and atree.query(xy[p])[0] <= 1.5:
            false["artefact"] += 1
        elif d <= near and owner[t] < 0:
            false["off-centre" + (" (weak)" if s["snr"][t] < 10 else "")] += 1
        elif d <= near:
            false["near a found spot"] += 1
        else:
            false["noise"] += 1
    return miss, false, rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detector", default="eiger500k")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--near", type=float, default=4.0)
    ap.add_argument("--show", type=int, default=0, help="print this many missed spots")
    ap.add_argument("--set", nargs="*", default=[], help="SpotParams overrides key=value")
    args = ap.parse_args(argv)
    from xlive.analyzers import SpotFinder, SpotParams
    from xlive.simulate.scoring import score

    kw = {}
    for item in args.set:
        k, v = item.split("=")
        kw[k] = type(getattr(SpotParams(), k))(v)
    for seed in args.seeds:
        geom, frames, truths = frames_for(args.detector, seed, args.frames)
        sf = SpotFinder(geom, SpotParams(method="integrated", **kw))
        peaks = [sf.find(f) for f in frames]
        sc = score([p[:, :2] for p in peaks], truths)
        miss, false, rows = Counter(), Counter(), []
        for p, t in zip(peaks, truths, strict=True):
            m, f, r = classify(p, t, args.near)
            miss += m
            false += f
            rows += r
        print(
            f"seed {seed}: recall {sc.recall:.4f} precision {sc.precision:.4f} "
            f"expected {sc.n_expected} peaks {sc.n_peaks} dup {sc.n_duplicates} "
            f"artefacts {sc.n_artefacts}"
        )
        print("  misses:", dict(miss))
        print("  false :", dict(false))
        if rows:
            r = np.array([x[4:] for x in rows], float)
            m = np.median(r[:, [0, 1, 3, 4, 5]], axis=0)
            print(
                f"  missed: median snr {m[0]:.1f}, sigma_r {m[1]:.2f}, separation {m[2]:.2f}, "
                f"neighbour {m[3]:.1f} px, neighbour/self signal {m[4]:.2f}"
            )
        for x in rows[: args.show]:
            k, f, x, y, snr, sr, st, sep, nb, ratio, d = x
            print(
                f"   {k:<10s} f{f} ({x:.1f},{y:.1f}) snr {snr:.1f} sig {sr:.2f}/{st:.2f} "
                f"sep {sep:.2f} nb {nb:.1f}px x{ratio:.2f} peak@{d:.1f}"
            )


if __name__ == "__main__":
    main()
