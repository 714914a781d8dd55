"""Where spots may be: block sums of a frame and their significance over spot-sized windows.

The frame is cut into ``B x B`` pixel blocks (``B = 3``). One read of the frame sums each block's
valid pixels (:func:`block_sums`). Against the per-ring background, each block then gets the
integrated SNR ``net / sqrt(g max(net, 0) + n var)`` of three windows: the block alone (3 x 3
pixels, sharp spots), the 2 x 2 blocks it starts (6 x 6 pixels) and the 3 x 3 blocks around it
(9 x 9 pixels, broad spots). A window reaching ``detect_snr`` seeds its blocks
(:func:`block_seeds`): the significance summed over a footprint the size of the spot, as a
matched filter, at a ninth of the pixels. Only seeded blocks (all blocks of a window) are looked at
pixel by pixel (:mod:`.watershed`).

Numpy references beside each kernel. Written by hand: the block sums are fused with the
validity test of each pixel and the windows with the per-ring noise model, which no library
filter does in one pass.
"""

from __future__ import annotations

import numba
import numpy as np

_JIT = dict(cache=True, nogil=True)

#: block edge, pixels
BLOCK = 3


def block_shape(shape: tuple[int, int], b: int = BLOCK) -> tuple[int, int]:
    """Blocks covering a frame of ``shape`` (the last row and column of blocks may be partial)."""
    return (shape[0] + b - 1) // b, (shape[1] + b - 1) // b


def block_rings(rings: np.ndarray, b: int = BLOCK) -> np.ndarray:
    """Ring of each block: that of its most central unmasked pixel (-1: all masked)."""
    ny, nx = rings.shape
    nby, nbx = block_shape(rings.shape, b)
    out = np.full((nby, nbx), -1, np.int32)
    best = np.full((nby, nbx), np.inf)
    c = (b - 1) / 2.0
    for di in range(b):
        for dj in range(b):
            sub = rings[di::b, dj::b]
            d = (di - c) ** 2 + (dj - c) ** 2
            view_o = out[: sub.shape[0], : sub.shape[1]]
            view_b = best[: sub.shape[0], : sub.shape[1]]
            take = (sub >= 0) & (d < view_b)
            view_o[take] = sub[take]
            view_b[take] = d
    return out


@numba.njit(**_JIT)
def block_sums(frame, rings, lo, hi, b, bsum, bn):
    """Add each valid pixel (ring >= 0, value in ``[lo, hi]``) into its block: ``bsum`` (sum of
    values), ``bn`` (count)."""
    ny, nx = frame.shape
    for i in range(ny):
        bi = i // b
        fi = frame[i]
        ri = rings[i]
        bj = 0
        k = 0
        for j in range(nx):
            if k == b:
                k = 0
                bj += 1
            k += 1
            if ri[j] < 0:
                continue
            v = fi[j]
            if v >= lo and v <= hi:
                bsum[bi, bj] += v
                bn[bi, bj] += 1


def block_sums_ref(frame, rings, lo, hi, b=BLOCK):
    """Numpy reference of :func:`block_sums`: ``(bsum, bn)``."""
    f = frame.astype(np.float64)
    with np.errstate(invalid="ignore"):
        ok = (rings >= 0) & (f >= lo) & (f <= hi)
    nby, nbx = block_shape(frame.shape, b)
    pad = ((0, nby * b - f.shape[0]), (0, nbx * b - f.shape[1]))
    v = np.pad(np.where(ok, f, 0.0), pad).reshape(nby, b, nbx, b)
    n = np.pad(ok, pad).reshape(nby, b, nbx, b)
    return v.sum(axis=(1, 3)), n.sum(axis=(1, 3)).astype(np.int32)


@numba.njit(inline="always", **_JIT)
def _passes(net, var, gain, t):
    """Whether ``net / sqrt(gain * net + var) >= t`` (``t > 0``), without a square root."""
    if net <= 0:
        return False
    return net * net >= t * t * (gain * net + var)


@numba.njit(**_JIT)
def block_seeds(bsum, bn, bring, mean, resid, sb, var, gain, detect_snr, seeds):
    """Mark in ``seeds`` (uint8, zeroed) the blocks of every window whose integrated SNR
    reaches ``detect_snr``; returns the number of seeded blocks.

    Windows: each block alone, the 2 x 2 blocks starting at it (all four marked), the 3 x 3
    blocks centred on it (all nine marked). ``mean``/``var``: background per pixel of each
    ring (ADU, ADU**2), plus ``resid`` per box of ``sb x sb`` blocks (:func:`local_background`);
    blocks of rings without statistics (NaN) count as empty.
    """
    nby, nbx = bsum.shape
    net = np.zeros((nby, nbx))
    nv = np.zeros((nby, nbx))
    for bi in range(nby):
        for bj in range(nbx):
            r = bring[bi, bj]
            if r < 0 or bn[bi, bj] == 0:
                continue
            m = mean[r] + resid[bi // sb, bj // sb]
            s = var[r]
            if not (np.isfinite(m) and np.isfinite(s)):
                continue
            net[bi, bj] = bsum[bi, bj] - bn[bi, bj] * m
            nv[bi, bj] = bn[bi, bj] * s
    for bi in range(nby):
        for bj in range(nbx):
            if nv[bi, bj] > 0 and _passes(net[bi, bj], nv[bi, bj], gain, detect_snr):
                seeds[bi, bj] = 1
            if bi + 1 < nby and bj + 1 < nbx:
                t = net[bi, bj] + net[bi, bj + 1] + net[bi + 1, bj] + net[bi + 1, bj + 1]
                w = nv[bi, bj] + nv[bi, bj + 1] + nv[bi + 1, bj] + nv[bi + 1, bj + 1]
                if w > 0 and _passes(t, w, gain, detect_snr):
                    seeds[bi, bj] = 1
                    seeds[bi, bj + 1] = 1
                    seeds[bi + 1, bj] = 1
                    seeds[bi + 1, bj + 1] = 1
            if 0 < bi < nby - 1 and 0 < bj < nbx - 1:
                t = 0.0
                w = 0.0
                for di in range(-1, 2):
                    for dj in range(-1, 2):
                        t += net[bi + di, bj + dj]
                        w += nv[bi + di, bj + dj]
                if w > 0 and _passes(t, w, gain, detect_snr):
                    for di in range(-1, 2):
                        for dj in range(-1, 2):
                            seeds[bi + di, bj + dj] = 1
    n = 0
    for bi in range(nby):
        for bj in range(nbx):
            n += seeds[bi, bj]
    return n


def block_seeds_ref(bsum, bn, bring, mean, resid, sb, var, gain, detect_snr):
    """Numpy reference of :func:`block_seeds` (window sums by slicing): the seed array."""
    r = np.maximum(bring, 0)
    yy, xx = np.indices(bsum.shape)
    m, s = mean[r] + resid[yy // sb, xx // sb], var[r]
    use = (bring >= 0) & (bn > 0) & np.isfinite(m) & np.isfinite(s)
    net = np.where(use, bsum - bn * np.where(use, m, 0.0), 0.0)
    nv = np.where(use, bn * np.where(use, s, 0.0), 0.0)

    def snr(t, w):
        den = gain * np.maximum(t, 0.0) + w
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where((den > 0) & (w > 0), t / np.sqrt(np.where(den > 0, den, 1.0)), 0.0)

    seeds = snr(net, nv) >= detect_snr
    t2 = net[:-1, :-1] + net[:-1, 1:] + net[1:, :-1] + net[1:, 1:]
    w2 = nv[:-1, :-1] + nv[:-1, 1:] + nv[1:, :-1] + nv[1:, 1:]
    s2 = snr(t2, w2) >= detect_snr
    for di in (0, 1):
        for dj in (0, 1):
            seeds[di : di + s2.shape[0], dj : dj + s2.shape[1]] |= s2
    t3 = sum(
        net[1 + di : net.shape[0] - 1 + di, 1 + dj : net.shape[1] - 1 + dj]
        for di in (-1, 0, 1)
        for dj in (-1, 0, 1)
    )
    w3 = sum(
        nv[1 + di : nv.shape[0] - 1 + di, 1 + dj : nv.shape[1] - 1 + dj]
        for di in (-1, 0, 1)
        for dj in (-1, 0, 1)
    )
    s3 = snr(t3, w3) >= detect_snr
    for di in (0, 1, 2):
        for dj in (0, 1, 2):
            seeds[di : di + s3.shape[0], dj : dj + s3.shape[1]] |= s3
    return seeds.astype(np.uint8)


@numba.njit(**_JIT)
def local_background(bsum, bn, bring, mean, s, clip, resid):
    """Per box of ``s x s`` blocks, the background left over by the ring means: the clipped
    mean of its blocks' ``bsum / bn - mean[ring]`` (weighted by ``bn``; three passes, each
    dropping blocks above ``mean + clip * sd`` of the blocks, i.e. spots). Written into
    ``resid`` (``ceil(nby / s) x ceil(nbx / s)``); 0 where fewer than a quarter of the box's
    pixels are valid.
    """
    nby, nbx = bsum.shape
    nry, nrx = resid.shape
    vals = np.empty(s * s)
    wts = np.empty(s * s)
    full = s * s * np.max(bn) if bn.size else 0
    for ri in range(nry):
        for rj in range(nrx):
            n = 0
            for bi in range(ri * s, min(ri * s + s, nby)):
                for bj in range(rj * s, min(rj * s + s, nbx)):
                    r = bring[bi, bj]
                    if r < 0 or bn[bi, bj] == 0 or not np.isfinite(mean[r]):
                        continue
                    vals[n] = bsum[bi, bj] / bn[bi, bj] - mean[r]
                    wts[n] = bn[bi, bj]
                    n += 1
            wsum = 0.0
            for k in range(n):
                wsum += wts[k]
            if n == 0 or 4 * wsum < full:
                resid[ri, rj] = 0.0
                continue
            limit = np.inf
            m = 0.0
            for _ in range(3):
                sw = 0.0
                sv = 0.0
                for k in range(n):
                    if vals[k] <= limit:
                        sw += wts[k]
                        sv += wts[k] * vals[k]
                if sw == 0:
                    break
                m = sv / sw
                ss = 0.0
                nk = 0
                for k in range(n):
                    if vals[k] <= limit:
                        ss += (vals[k] - m) ** 2
                        nk += 1
                limit = m + clip * np.sqrt(ss / nk)
            resid[ri, rj] = m


def local_background_ref(bsum, bn, bring, mean, s, clip):
    """Numpy reference of :func:`local_background`: the ``resid`` array."""
    nby, nbx = bsum.shape
    nry, nrx = -(-nby // s), -(-nbx // s)
    out = np.zeros((nry, nrx))
    full = s * s * bn.max() if bn.size else 0
    for ri in range(nry):
        for rj in range(nrx):
            sl = (slice(ri * s, ri * s + s), slice(rj * s, rj * s + s))
            r, n, t = bring[sl], bn[sl], bsum[sl]
            m = mean[np.maximum(r, 0)]
            ok = (r >= 0) & (n > 0) & np.isfinite(m)
            if not ok.any() or 4 * n[ok].sum() < full:
                continue
            v = t[ok] / n[ok] - m[ok]
            w = n[ok].astype(float)
            keep = np.ones(v.size, bool)
            mu = 0.0
            for _ in range(3):
                if not keep.any():
                    break
                mu = np.sum(w[keep] * v[keep]) / np.sum(w[keep])
                keep = v <= mu + clip * np.sqrt(np.mean((v[keep] - mu) ** 2))
            out[ri, rj] = mu
    return out
