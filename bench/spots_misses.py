"""Why the integrated spot finder misses spots and reports false peaks, on the hard preset.

Classifies, against the simulator's truth (:mod:`xlive.simulate.scoring`'s default definition),
every missed expected spot and every unpaired peak:

* misses: ``merged`` (the nearest peak belongs to the nearest neighbour: the pair became one;
  "stronger nb" when that neighbour has > 1.5x the signal), ``off-centre`` (an unpaired peak
  within ``--near`` px but > 2 px away), ``lost`` (no peak near: below detection);
* false peaks: ``duplicate`` (within 2 px of a truth spot already paired), ``off-centre`` (an
  unpaired truth spot within ``--near`` px), ``artefact`` (zinger / hot pixel), ``noise``;
  an off-centre one is ``off-centre pair`` when a second unpaired truth spot (SNR >= 5)
  lies within ``--pair`` px of the peak: a merged pair reported once, between the two.

``--types`` also splits the false peaks by what the finder made of them: ``fitted`` (broad,
placed by a Gaussian fit), ``candidate`` (below ``fit_snr``, kept by its fit), ``small``
(fewer than ``fit_min_pixels`` footprint pixels: placed by the watershed), ``sharp``.

Usage::

    python bench/spots_misses.py --detector eiger500k --seeds 1 2 3 --frames 8
    python bench/spots_misses.py --seeds 2 --cutouts 5        # pixels around false peaks
    python bench/spots_misses.py --seeds 1 --also fit_radius=0  # a second setting beside

``--also`` scores a second set of SpotParams overrides on the same frames and prints both
finders' CPU ms/frame (one process, side by side; ``find`` after a warm-up frame).
``--preset default`` uses the default simulator (hits only) instead of the hard one.

Frames are cached in ``/tmp/xlive_<preset>_<detector>_<seed>_<frames>.pkl`` (the simulation
is the slow part).
"""

from __future__ import annotations

import argparse
import os
import pickle
import time
from collections import Counter

import numpy as np
from scipy.spatial import cKDTree


def frames_for(detector, seed, n, preset="hard"):
    """Frames and truths of one seed of a simulator preset (cached; the default preset with
    hits only)."""
    from xlive.simulate import SimParams, Simulation

    path = f"/tmp/xlive_{preset}_{detector}_{seed}_{n}.pkl"
    if os.path.exists(path):
        with open(path, "rb") as fh:
            return pickle.load(fh)
    if preset == "hard":
        params = SimParams.preset("hard", detector=detector, seed=seed)
    else:
        params = SimParams.preset(preset, detector=detector, seed=seed, hit_fraction=1.0)
    sim = Simulation(params)
    pairs = [sim.frame(i) for i in range(n)]
    out = (sim.geometry, [f for f, _ in pairs], [t for _, t in pairs])
    with open(path, "wb") as fh:
        pickle.dump(out, fh)
    return out


def peak_type(peaks, params):
    """What the integrated finder made of each peak (rows of ``SpotFinder.find``, columns
    ``npix``, ``snr``, ``background``, ``max`` of the watershed): ``fitted``, ``candidate``,
    ``small`` or ``sharp`` (see the module docstring)."""
    sharp = peaks[:, 6] - peaks[:, 5] >= 0.1 * peaks[:, 2]
    cand = (peaks[:, 4] < params.fit_snr) & ((peaks[:, 4] < params.min_snr) | ~sharp)
    small = peaks[:, 3] < params.fit_min_pixels
    return np.where(cand, "candidate", np.where(sharp, "sharp", np.where(small, "small", "fitted")))


def classify(peaks, truth, near=4.0, radius=2.0, pair_reach=6.0, types=None):
    """Counters of miss classes and false-peak classes, and the list of missed spot rows;
    ``types``: a label per peak (:func:`peak_type`) added to the false peaks' classes."""
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

    def tag(p):
        return "" if types is None else f" [{types[p]}]"

    for p in np.nonzero(match < 0)[0]:
        d, t = ttree.query(xy[p])
        if d <= radius:
            false["duplicate" + tag(p)] += 1
        elif atree is not None and atree.query(xy[p])[0] <= 1.5:
            false["artefact" + tag(p)] += 1
        elif d <= near and owner[t] < 0:
            # a second unpaired truth spot near the peak: a merged pair reported once
            two = [q for q in ttree.query_ball_point(xy[p], pair_reach) if q != t]
            pair2 = any(owner[q] < 0 and s["snr"][q] >= 5 for q in two)
            kind = "off-centre" + (" pair" if pair2 else "")
            false[kind + (" (weak)" if s["snr"][t] < 10 else "") + tag(p)] += 1
        elif d <= near:
            false["near a found spot" + tag(p)] += 1
        else:
            false["noise" + tag(p)] += 1
    return miss, false, rows


def cutout(frame, truth, peaks, x, y, half=8):
    """Lines showing the pixels around (x, y) (masked: -9), with the truth spots and peaks
    nearby in the cut-out's coordinates."""
    s = truth.spots
    x0, y0 = int(round(x)), int(round(y))
    lines = []
    for q in np.nonzero(np.hypot(s["x"] - x, s["y"] - y) < half + 2)[0]:
        lines.append(
            f"     truth ({s['x'][q] - x0 + half:.1f},{s['y'][q] - y0 + half:.1f}) "
            f"snr {s['snr'][q]:.1f} sigma {s['sigma_r'][q]:.2f}/{s['sigma_t'][q]:.2f} "
            f"signal {s['signal'][q]:.0f} separation {s['separation'][q]:.2f}"
        )
    for p in np.nonzero(np.hypot(peaks[:, 0] - x, peaks[:, 1] - y) < half + 2)[0]:
        lines.append(
            f"     peak ({peaks[p, 0] - x0 + half:.1f},{peaks[p, 1] - y0 + half:.1f}) "
            f"I {peaks[p, 2]:.0f} snr {peaks[p, 4]:.1f}"
        )
    cut = frame[max(y0 - half, 0) : y0 + half + 1, max(x0 - half, 0) : x0 + half + 1]
    cut = np.where(cut > 1e6, -9, cut.astype(np.int64))
    for i, row in enumerate(cut):
        lines.append(f"  {i:3d} " + "".join(f"{v:4d}" for v in row))
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detector", default="eiger500k")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--near", type=float, default=4.0)
    ap.add_argument("--pair", type=float, default=6.0, help="reach of 'off-centre pair'")
    ap.add_argument("--types", action="store_true", help="false peaks by what made them")
    ap.add_argument("--show", type=int, default=0, help="print this many missed spots")
    ap.add_argument("--set", nargs="*", default=[], help="SpotParams overrides key=value")
    ap.add_argument("--also", nargs="*", default=None, help="a second setting, key=value")
    ap.add_argument("--cutouts", type=int, default=0, help="print pixels around N false peaks")
    ap.add_argument("--preset", default="hard", help="simulator preset (hard, default)")
    args = ap.parse_args(argv)
    from xlive.analyzers import SpotFinder, SpotParams
    from xlive.simulate.scoring import pair, score

    def overrides(items):
        kw = {}
        for item in items:
            k, v = item.split("=")
            old = getattr(SpotParams(), k)
            kw[k] = v in ("1", "True", "true") if isinstance(old, bool) else type(old)(v)
        return kw

    kw = overrides(args.set)
    for seed in args.seeds:
        geom, frames, truths = frames_for(args.detector, seed, args.frames, args.preset)
        params = SpotParams(method="integrated", **kw)
        sf = SpotFinder(geom, params)
        sf.find(frames[0])  # warm-up
        t0 = time.process_time()
        peaks = [sf.find(f) for f in frames]
        ms = (time.process_time() - t0) / len(frames) * 1e3
        sc = score([p[:, :2] for p in peaks], truths)
        if args.also is not None:
            sf2 = SpotFinder(
                geom, SpotParams(method="integrated", **{**kw, **overrides(args.also)})
            )
            sf2.find(frames[0])
            t0 = time.process_time()
            p2 = [sf2.find(f)[:, :2] for f in frames]
            ms2 = (time.process_time() - t0) / len(frames) * 1e3
            s2 = score(p2, truths)
            print(
                f"seed {seed} with {' '.join(args.also)}: recall {s2.recall:.4f} precision "
                f"{s2.precision:.4f} dup {s2.n_duplicates} artefacts {s2.n_artefacts} "
                f"({ms2:.1f} CPU ms/frame)"
            )
        miss, false, rows = Counter(), Counter(), []
        for p, t in zip(peaks, truths, strict=True):
            types = peak_type(p, params) if args.types else None
            m, f, r = classify(p, t, args.near, pair_reach=args.pair, types=types)
            miss += m
            false += f
            rows += r
        print(
            f"seed {seed}: recall {sc.recall:.4f} precision {sc.precision:.4f} "
            f"expected {sc.n_expected} peaks {sc.n_peaks} dup {sc.n_duplicates} "
            f"artefacts {sc.n_artefacts} ({ms:.1f} CPU ms/frame)"
        )
        print("  misses:", dict(miss))
        print("  false :", dict(sorted(false.items(), key=lambda kv: -kv[1])))
        if rows:
            r = np.array([x[4:] for x in rows], float)
            m = np.median(r[:, [0, 1, 3, 4, 5]], axis=0)
            print(
                f"  missed: median snr {m[0]:.1f}, sigma_r {m[1]:.2f}, separation {m[2]:.2f}, "
                f"neighbour {m[3]:.1f} px, neighbour/self signal {m[4]:.2f}"
            )
        shown = 0
        for p, f, t in zip(peaks, frames, truths, strict=True):
            s = t.spots
            match = pair(p[:, :2], np.stack([s["x"], s["y"]], axis=1), 2.0)
            for k in np.nonzero(match < 0)[0]:
                if shown >= args.cutouts:
                    break
                shown += 1
                print(f"  false peak, frame {t.frame_number} ({p[k, 0]:.1f},{p[k, 1]:.1f}):")
                print("\n".join(cutout(f, t, p, p[k, 0], p[k, 1])))
        for x in rows[: args.show]:
            k, f, x, y, snr, sr, st, sep, nb, ratio, d = x
            print(
                f"   {k:<10s} f{f} ({x:.1f},{y:.1f}) snr {snr:.1f} sig {sr:.2f}/{st:.2f} "
                f"sep {sep:.2f} nb {nb:.1f}px x{ratio:.2f} peak@{d:.1f}"
            )


if __name__ == "__main__":
    main()
