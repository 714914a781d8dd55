"""How much better two spots fit than one: merged pairs against single spots, hard preset.

Most misses and false peaks of the integrated finder on the hard preset are pairs of broad
spots (sigma ~3.3 px) about 7 px apart (separation 1-1.3 in the scorer's units) reported once,
between the two (``bench/spots_misses.py``: "merged", "off-centre pair"). Whether a two-spot
fit can tell them from single spots is measured here, on the finder's own one-spot fits (the
state of :func:`~xlive.analyzers._kernels.psf_fit.fit_spots` after its first sweeps, the
neighbours' models subtracted), in windows of ``2 --radius + 1`` pixels:

* ``pair``: the one-spot fit has two truth spots (SNR >= 5) within 6 px and lies > 2 px from
  both; its chi-square gain from one to two spots is given for the best of the finder's two
  starts, for a fit started at the truth (positions kept within 1 px of it, an oracle) and
  for the better of the two;
* ``single``: one truth spot (SNR >= 5) within 6 px, the one-spot fit within 2 px of it.

A test on the gain (``split_chi2``) separates the two only as far as the ``pair`` gains stand
above the ``single`` ones; the lines ``gain >= X`` count both above thresholds.

Usage::

    python bench/spots_pairs.py --seeds 2 5 --radius 6
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from scipy.spatial import cKDTree

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from spots_misses import frames_for  # noqa: E402


def gains(geom, frames, truths, radius):
    """Per broad peak: (label, gain best two-spot fit, gain two-spot fit from the truth)."""
    import xlive.analyzers.spots as spots_mod
    from xlive.analyzers import SpotFinder, SpotParams
    from xlive.analyzers._kernels import psf_fit as pf

    captured = []
    fit_spots = spots_mod.fit_spots

    def capture(*args, **kw):
        captured.append(args)
        return fit_spots(*args, **kw)

    params = SpotParams(method="integrated")
    sf = SpotFinder(geom, params)
    one_k, two_k = np.int64(1), np.int64(2)
    w2 = 2 * radius + 1
    d, v, w = np.zeros((w2, w2)), np.zeros((w2, w2)), np.zeros((w2, w2))
    ok = np.zeros((w2, w2), bool)
    out = []
    spots_mod.fit_spots = capture
    try:
        for frame, truth in zip(frames, truths, strict=True):
            captured.clear()
            sf.find(frame)
            if not captured:
                continue
            fr, rings, mean, resid, sbs, var, lo, hi, gain, peaks, dirs = captured[0][:11]
            peaks = np.ascontiguousarray(peaks, np.float64)
            order = np.argsort(-peaks[:, 2], kind="stable")
            state = pf._fit_start(
                fr, rings, mean, resid, sbs, var, lo, hi, float(gain), peaks,
                np.ascontiguousarray(dirs, np.float64), order, float(params.fit_min_pixels),
                params.fit_radius, 2, params.min_snr, 0.1, params.fit_snr, False,
            )  # fmt: skip
            par, dirs2, _, _, alive, broad, cand, head, nxt = state
            s = truth.spots
            txy = np.stack([s["x"], s["y"]], axis=1)
            tree = cKDTree(txy)
            for k in np.nonzero(broad[: len(peaks)] & ~cand[: len(peaks)])[0]:
                i0 = int(np.rint(par[k, 1])) - radius
                j0 = int(np.rint(par[k, 0])) - radius
                pf._net_patch(fr, rings, mean, resid, sbs, var, lo, hi, i0, j0, d, v, ok)
                pf._others(d, i0, j0, par, dirs2, alive, head, nxt, k, pf._NO_MEMBERS)
                one = par[k : k + 1].copy()
                cs = np.stack([dirs2[k], dirs2[k]])
                for _ in range(2):  # weights from the model, refit (as the finder does)
                    pf._weights(v, ok, i0, j0, one, cs, one_k, float(gain), w)
                    c1 = pf._fit(
                        d, w, ok, i0, j0, one, cs, one_k, one.copy(), np.full(1, 2.0),
                        np.int64(12),
                    )  # fmt: skip
                near = [q for q in tree.query_ball_point(one[0, :2], 6.0) if s["snr"][q] >= 5]
                dist = np.hypot(*(txy[near] - one[0, :2]).T) if near else np.zeros(0)
                if len(near) == 1 and dist[0] <= 2.0:
                    label = "single"
                elif len(near) >= 2 and dist.min() > 2.0:
                    label = "pair"
                else:
                    continue
                # the finder's two starts: symmetric along the main axis; fitted + residual max
                ex, ey, lam = pf._principal(d, ok, i0, j0, one[0], cs[0])
                a = max(np.sqrt(max(lam, 0.0)), 1.0)
                sw = np.log(max(np.exp(min(one[0, 3], one[0, 4])), 0.71))
                ps = np.array(
                    [[one[0, 0] + g * a * ex, one[0, 1] + g * a * ey, 0.5 * one[0, 2], sw, sw]
                     for g in (1.0, -1.0)]
                )  # fmt: skip
                c2 = pf._fit(d, w, ok, i0, j0, ps, cs, two_k, ps.copy(), np.full(2, 6.0),
                             np.int64(12))  # fmt: skip
                ra, rb = pf._residual_max(d, ok, i0, j0, one[0], cs[0])
                if ra >= 0:
                    pb = np.stack([one[0], [j0 + rb, i0 + ra, 0.3 * one[0, 2], sw, sw]])
                    c2 = min(c2, pf._fit(d, w, ok, i0, j0, pb, cs, two_k, pb.copy(),
                                         np.full(2, 6.0), np.int64(12)))  # fmt: skip
                c_true = np.nan
                if label == "pair":
                    two = np.array(near)[np.argsort(dist)[:2]]
                    pt = np.array(
                        [[txy[q, 0], txy[q, 1], s["signal"][q], np.log(s["sigma_r"][q]),
                          np.log(s["sigma_t"][q])] for q in two]
                    )  # fmt: skip
                    c_true = pf._fit(d, w, ok, i0, j0, pt, cs, two_k, pt.copy(),
                                     np.full(2, 1.0), np.int64(30))  # fmt: skip
                out.append((label, c1 - c2, c1 - c_true))
    finally:
        spots_mod.fit_spots = fit_spots
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--detector", default="eiger500k")
    ap.add_argument("--seeds", type=int, nargs="+", default=[5])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--radius", type=int, default=6, help="half-width of the fit windows")
    args = ap.parse_args(argv)
    rows = []
    for seed in args.seeds:
        geom, frames, truths = frames_for(args.detector, seed, args.frames)
        rows += gains(geom, frames, truths, args.radius)
    lab = np.array([r[0] for r in rows])
    best = np.array([r[1] for r in rows])
    oracle = np.array([r[2] for r in rows])  # NaN for the singles
    pair, single = lab == "pair", lab == "single"
    q = [10, 25, 50, 75, 90, 95]
    print(f"window {2 * args.radius + 1} px, seeds {args.seeds}: percentiles {q} of the gain")
    print(f"  pairs   ({pair.sum()}), finder's starts: {np.percentile(best[pair], q).round(1)}")
    print(f"  pairs   ({pair.sum()}), truth start:     {np.percentile(oracle[pair], q).round(1)}")
    both = np.maximum(best, oracle)
    print(f"  pairs   ({pair.sum()}), best of both:    {np.percentile(both[pair], q).round(1)}")
    print(f"  singles ({single.sum()}), finder's starts: {np.percentile(best[single], q).round(1)}")
    for x in (20, 30, 45, 60):
        print(
            f"  gain >= {x}: pairs {(best[pair] >= x).sum()} (best of both "
            f"{(both[pair] >= x).sum()}), singles {(best[single] >= x).sum()}"
        )


if __name__ == "__main__":
    main()
