"""Where spots may be: block sums of a frame and their significance over spot-sized windows.

The frame is cut into ``B x B`` pixel blocks (``B = 3``). One read of the frame sums each block's
valid pixels (:func:`block_sums`, or the fused pass of :mod:`.binning`). Each block's background
is the sum of its pixels' ring means (:func:`block_background`, a sparse product with the static
table of :class:`BlockRingTable`: a block spans several one-pixel rings, whose means differ by
orders of magnitude on the flank of a sharp powder ring). What the ring means leave per box of
blocks (beam-stop shadows, diffuse blobs, polarisation) is measured by an inverse-variance
weighted, clipped mean (:func:`local_background`). Each block then gets the integrated SNR
``net / sqrt(g max(net, 0) + var)`` of three windows: the block alone (3 x 3 pixels, sharp spots),
the 2 x 2 blocks it starts (6 x 6 pixels) and the 3 x 3 blocks around it (9 x 9 pixels, broad
spots). A window reaching ``detect_snr`` seeds its blocks (:func:`block_seeds`): the significance
summed over a footprint the size of the spot, as a matched filter, at a ninth of the pixels.
Only seeded blocks (all blocks of a window) are looked at pixel by pixel (:mod:`.watershed`).

Numpy references beside each kernel. Written by hand: the block sums are fused with the
validity test of each pixel and the windows with the per-ring noise model, which no library
filter does in one pass.
"""

from __future__ import annotations

import threading

import numba
import numpy as np

_JIT = dict(cache=True, nogil=True)

#: block edge, pixels
BLOCK = 3

#: blocks spanning more than this many rings per pixel of their edge (and twice the median
#: block's span) are summed from the sparse table in :func:`detect_blocks` (see
#: :class:`BlockRingTable`)
WIDE_SPAN = 2


def block_shape(shape: tuple[int, int], b: int = BLOCK) -> tuple[int, int]:
    """Blocks covering a frame of ``shape`` (the last row and column of blocks may be partial)."""
    return (shape[0] + b - 1) // b, (shape[1] + b - 1) // b


class BlockRingTable:
    """Which rings each block's pixels are in, and how many: the static part of a block's
    background ``sum over its pixels of mean[ring]``.

    A block of ``b x b`` pixels spans several rings one pixel wide (up to five for
    ``b = 3``); on the steep flank of a sharp powder ring their means differ by orders of
    magnitude, so the background of a block must be summed pixel by pixel, not taken as
    ``n * mean[ring of its centre]``. Stored as a sparse matrix (CSR, blocks in raster order):
    ``ptr`` (blocks + 1), ``ring`` and ``count`` per entry; ``n_static`` is each block's
    number of pixels in a ring (blocks where a frame has fewer valid pixels are summed from
    the pixels instead: :func:`block_background`).
    """

    def __init__(self, rings: np.ndarray, b: int = BLOCK):
        self.b = int(b)
        self.shape = block_shape(rings.shape, b)
        nby, nbx = self.shape
        yy, xx = np.indices(rings.shape)
        blk = (yy // b) * nbx + xx // b
        ok = rings >= 0
        key = blk[ok].astype(np.int64) * (int(rings.max(initial=0)) + 1) + rings[ok]
        uniq, count = np.unique(key, return_counts=True)
        nr = int(rings.max(initial=0)) + 1
        owner = uniq // nr
        self.ring = (uniq % nr).astype(np.int32)
        self.count = count.astype(np.float64)
        self.ptr = np.zeros(nby * nbx + 1, np.int64)
        np.cumsum(np.bincount(owner, minlength=nby * nbx), out=self.ptr[1:])
        self.n_static = np.bincount(blk[ok], minlength=nby * nbx).astype(np.int32)
        self.n_static = self.n_static.reshape(nby, nbx)
        # the same table with a fixed span per block, for :func:`detect_blocks`: each block's
        # first ring ``r0`` and its pixels in rings r0 .. r0 + span - 1 (a 3 x 3 block spans
        # up to 4-5 one-pixel rings), so that a block costs no loop of variable length. A
        # block whose pixels lie on rings far apart (it straddles two modules of a stacked
        # detector: hundreds of rings) is *wide*: left out of the fixed span (``n_fixed``
        # -1, its counts 0) and summed from the sparse table instead, so that the span
        # stays that of the ordinary blocks
        first = np.zeros(nby * nbx, np.int64)
        has = self.ptr[1:] > self.ptr[:-1]
        first[has] = self.ring[self.ptr[:-1][has]]
        last = np.zeros(nby * nbx, np.int64)
        last[has] = self.ring[self.ptr[1:][has] - 1]
        spans = last - first + 1
        # relative to the usual block's span too: narrow rings (ring_width < 1) make every
        # block span more rings, and the sparse path is slower for ordinary blocks
        usual = int(np.median(spans[has])) if has.any() else 1
        wide = spans > max(WIDE_SPAN * b, 2 * usual)
        self.span = int(spans[~wide].max(initial=1))
        self.r0 = first.astype(np.int32).reshape(nby, nbx)
        #: each block's pixels in a ring if it is in the fixed span, else -1 (a wide block)
        self.n_fixed = np.where(wide.reshape(nby, nbx), -1, self.n_static).astype(np.int32)
        sc = np.zeros((nby * nbx, self.span), np.uint8)
        inside = ~wide[owner]
        sc[owner[inside], (self.ring - first[owner])[inside]] = count[inside]
        #: (block row, ring offset, block column): a row of blocks' counts per offset in one run
        self.span_count = np.ascontiguousarray(sc.reshape(nby, nbx, self.span).transpose(0, 2, 1))


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


def radial_tolerance_sd(mean, tol):
    """Per ring, ``tol / 2 * |mean[r + 1] - mean[r - 1]|``: how far a pixel's background is
    off its ring's mean when the rings are off by ``tol`` pixels in radius where it is
    (beam centre, tilt, the ring's own width). On a sharp ring's flank this is large and the
    same for neighbouring pixels: :func:`block_seeds` adds it coherently (summed, then
    squared) to the windows' variance. Rings without statistics beside get 0."""
    out = np.zeros(mean.size)
    if mean.size > 2:
        with np.errstate(invalid="ignore"):
            d = np.abs(mean[2:] - mean[:-2]) * (tol / 2.0)
        out[1:-1] = np.where(np.isfinite(d), d, 0.0)
    return out


@numba.njit(**_JIT)
def block_background(
    ptr, ring, count, n_static, bsum, bn, frame, rings, lo, hi, mean, var, sdg, b, net, nvar,
    nsd, nuse,
):  # fmt: skip
    """Per block, its net signal ``net = sum over its valid pixels of (v - mean[ring])``,
    ``nsd``, the sum of the pixels' coherent background error ``sdg[ring]``
    (:func:`radial_tolerance_sd`), the block's background variance ``nvar = sum var[ring]
    + nsd**2`` and ``nuse``, the pixels counted.

    Blocks whose valid pixels are all their ring pixels (``bn == n_static``) use the sparse
    table (``ptr``, ``ring``, ``count`` of :class:`BlockRingTable`): ``bsum`` minus a product
    of a few entries; the others (gaps marked in the data, saturated or out-of-range pixels)
    and blocks touching a ring without statistics (NaN) are summed from their pixels,
    skipping those rings.
    """
    nby, nbx = bsum.shape
    ny, nx = frame.shape
    for bi in range(nby):
        for bj in range(nbx):
            k = bi * nbx + bj
            n = bn[bi, bj]
            net[bi, bj] = 0.0
            nvar[bi, bj] = 0.0
            nsd[bi, bj] = 0.0
            nuse[bi, bj] = 0
            if n == 0:
                continue
            if n == n_static[bi, bj]:
                m = 0.0
                s = 0.0
                g = 0.0
                for e in range(ptr[k], ptr[k + 1]):
                    r = ring[e]
                    m += count[e] * mean[r]
                    s += count[e] * var[r]
                    g += count[e] * sdg[r]
                if np.isfinite(m) and np.isfinite(s):
                    net[bi, bj] = bsum[bi, bj] - m
                    nvar[bi, bj] = s + g * g
                    nsd[bi, bj] = g
                    nuse[bi, bj] = n
                    continue
            t, s, g, c = _pixel_sums(frame, rings, lo, hi, mean, var, sdg, b, bi, bj)
            net[bi, bj] = t
            nvar[bi, bj] = s + g * g
            nsd[bi, bj] = g
            nuse[bi, bj] = c


def block_background_ref(frame, rings, lo, hi, mean, var, sdg, b=BLOCK):
    """Numpy reference of :func:`block_background`, pixel by pixel:
    ``(net, nvar, nsd, nuse)``."""
    f = frame.astype(np.float64)
    r = np.maximum(rings, 0)
    with np.errstate(invalid="ignore"):
        ok = (rings >= 0) & (f >= lo) & (f <= hi) & np.isfinite(mean[r]) & np.isfinite(var[r])
    nby, nbx = block_shape(frame.shape, b)
    pad = ((0, nby * b - f.shape[0]), (0, nbx * b - f.shape[1]))

    def bsum(a):
        return np.pad(a, pad).reshape(nby, b, nbx, b).sum(axis=(1, 3))

    net = bsum(np.where(ok, f - np.where(ok, mean[r], 0.0), 0.0))
    nsd = bsum(np.where(ok, sdg[r], 0.0))
    nvar = bsum(np.where(ok, var[r], 0.0)) + nsd**2
    return net, nvar, nsd, bsum(ok.astype(np.int64)).astype(np.int32)


@numba.njit(inline="always", **_JIT)
def _passes(net, var, gain, t):
    """Whether ``net / sqrt(gain * net + var) >= t`` (``t > 0``), without a square root."""
    if net <= 0:
        return False
    return net * net >= t * t * (gain * net + var)


@numba.njit(**_JIT)
def block_seeds(
    net0, nvar, nsd, nuse, resid, scale, sb, b, shape, edge_excess, gain, detect_snr, seeds
):
    """Mark in ``seeds`` (uint8, zeroed) the blocks of every window whose integrated SNR
    reaches ``detect_snr``; returns the number of seeded blocks.

    ``net0``, ``nvar``, ``nsd``, ``nuse``: of :func:`block_background`; ``resid``, ``scale``:
    the background left per box of ``sb x sb`` blocks, taken off ``nuse`` times, and the
    factor on the blocks' independent variance (:func:`local_background`); a window's
    variance is the sum of its blocks' independent variances plus the square of its summed
    coherent error ``nsd`` (a ring flank's residue has one sign along the flank). ``shape``:
    the frame's, ``b``: the block edge. Blocks with an invalid pixel (gap, mask) in them or
    in a neighbouring block do not count when their mean normalised residual (each clipped
    to +-3) exceeds ``edge_excess`` in this frame (0: always; negative: never): pixels at
    module edges are larger or calibrated worse on some detectors (a PILATUS's row beside a
    gap is brighter by a third), and the windows would sum that row into spots; on
    detectors with sound edges they stay. Windows: each block alone, the 2 x 2 blocks starting at it (all four marked), the
    3 x 3 blocks centred on it (all nine marked).
    """
    nby, nbx = net0.shape
    ny, nx = shape
    # blocks with an invalid pixel (padded by one block), then dilated by one block
    short = np.zeros((nby + 2, nbx + 2), np.uint8)
    for bi in range(nby):
        h = min(b, ny - bi * b)
        for bj in range(nbx):
            if edge_excess >= 0 and nuse[bi, bj] < h * min(b, nx - bj * b):
                short[bi + 1, bj + 1] = 1
    hd = np.zeros((nby + 2, nbx), np.uint8)
    for i in range(nby + 2):
        for bj in range(nbx):
            hd[i, bj] = short[i, bj] | short[i, bj + 1] | short[i, bj + 2]
    skip = edge_excess >= 0
    if edge_excess > 0:  # are this frame's edge blocks brighter than their background?
        zs = 0.0
        ne = 0
        for bi in range(nby):
            ri = resid[bi // sb]
            for bj in range(nbx):
                if (hd[bi, bj] | hd[bi + 1, bj] | hd[bi + 2, bj]) and nvar[bi, bj] > 0:
                    z = (net0[bi, bj] - nuse[bi, bj] * ri[bj // sb]) / np.sqrt(nvar[bi, bj])
                    zs += min(max(z, -3.0), 3.0)
                    ne += 1
        skip = ne > 0 and zs > edge_excess * ne
    # rows of net, independent variance and coherent error, three at a time (rolling)
    net = np.zeros((3, nbx))
    nv = np.zeros((3, nbx))
    sd = np.zeros((3, nbx))
    t2 = np.zeros(nbx)  # per column: the sums of rows bi and bi + 1 (2x2) ...
    w2 = np.zeros(nbx)
    g2 = np.zeros(nbx)
    for bi in range(-1, nby):
        r = bi + 1  # the row to fill
        if r < nby:
            k = r % 3
            ri = resid[r // sb]
            si = scale[r // sb]
            for bj in range(nbx):
                if skip and (hd[r, bj] | hd[r + 1, bj] | hd[r + 2, bj]):
                    net[k, bj] = 0.0
                    nv[k, bj] = 0.0
                    sd[k, bj] = 0.0
                else:
                    g = nsd[r, bj]
                    net[k, bj] = net0[r, bj] - nuse[r, bj] * ri[bj // sb]
                    nv[k, bj] = (nvar[r, bj] - g * g) * si[bj // sb]
                    sd[k, bj] = g
        if bi < 0:
            continue
        c = bi % 3
        for bj in range(nbx):
            w = nv[c, bj]
            if w > 0 and _passes(net[c, bj], w + sd[c, bj] ** 2, gain, detect_snr):
                seeds[bi, bj] = 1
        if bi + 1 < nby:
            n1 = (bi + 1) % 3
            for bj in range(nbx):
                t2[bj] = net[c, bj] + net[n1, bj]
                w2[bj] = nv[c, bj] + nv[n1, bj]
                g2[bj] = sd[c, bj] + sd[n1, bj]
            for bj in range(nbx - 1):
                w = w2[bj] + w2[bj + 1]
                g = g2[bj] + g2[bj + 1]
                if w > 0 and _passes(t2[bj] + t2[bj + 1], w + g * g, gain, detect_snr):
                    seeds[bi, bj] = 1
                    seeds[bi, bj + 1] = 1
                    seeds[bi + 1, bj] = 1
                    seeds[bi + 1, bj + 1] = 1
            if bi > 0:
                p = (bi - 1) % 3
                t = 0.0
                w = 0.0
                g = 0.0
                for bj in range(nbx):  # running sums of 3 columns of rows bi - 1 .. bi + 1
                    t += t2[bj] + net[p, bj]
                    w += w2[bj] + nv[p, bj]
                    g += g2[bj] + sd[p, bj]
                    if bj >= 3:
                        t -= t2[bj - 3] + net[p, bj - 3]
                        w -= w2[bj - 3] + nv[p, bj - 3]
                        g -= g2[bj - 3] + sd[p, bj - 3]
                    if bj >= 2 and w > 0 and _passes(t, w + g * g, gain, detect_snr):
                        for di in range(-1, 2):
                            for dj in range(-2, 1):
                                seeds[bi + di, bj + dj] = 1
    n = 0
    for bi in range(nby):
        for bj in range(nbx):
            n += seeds[bi, bj]
    return n


def block_seeds_ref(
    net0, nvar, nsd, nuse, resid, scale, sb, b, shape, edge_excess, gain, detect_snr
):
    """Numpy reference of :func:`block_seeds` (window sums by slicing): the seed array."""
    yy, xx = np.indices(net0.shape)
    ny, nx = shape
    full = np.minimum(b, ny - yy * b) * np.minimum(b, nx - xx * b)
    short = np.pad((nuse < full) & (edge_excess >= 0), 1)
    edge = np.zeros(net0.shape, bool)
    for di in range(3):
        for dj in range(3):
            edge |= short[di : di + net0.shape[0], dj : dj + net0.shape[1]]
    if edge_excess > 0:
        use = edge & (nvar > 0)
        d = net0 - nuse * resid[yy // sb, xx // sb]
        z = np.clip(d[use] / np.sqrt(nvar[use]), -3.0, 3.0)
        if not (z.size and z.sum() > edge_excess * z.size):
            edge[:] = False
    net = np.where(edge, 0.0, net0 - nuse * resid[yy // sb, xx // sb])
    nv = np.where(edge, 0.0, (nvar - nsd**2) * scale[yy // sb, xx // sb])
    sd = np.where(edge, 0.0, nsd)

    def snr(t, w, g):
        den = gain * np.maximum(t, 0.0) + w + g**2
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where((den > 0) & (w > 0), t / np.sqrt(np.where(den > 0, den, 1.0)), 0.0)

    seeds = snr(net, nv, sd) >= detect_snr
    t2 = net[:-1, :-1] + net[:-1, 1:] + net[1:, :-1] + net[1:, 1:]
    w2 = nv[:-1, :-1] + nv[:-1, 1:] + nv[1:, :-1] + nv[1:, 1:]
    g2 = sd[:-1, :-1] + sd[:-1, 1:] + sd[1:, :-1] + sd[1:, 1:]
    s2 = snr(t2, w2, g2) >= detect_snr
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
    g3 = sum(
        sd[1 + di : sd.shape[0] - 1 + di, 1 + dj : sd.shape[1] - 1 + dj]
        for di in (-1, 0, 1)
        for dj in (-1, 0, 1)
    )
    s3 = snr(t3, w3, g3) >= detect_snr
    for di in (0, 1, 2):
        for dj in (0, 1, 2):
            seeds[di : di + s3.shape[0], dj : dj + s3.shape[1]] |= s3
    return seeds.astype(np.uint8)


@numba.njit(**_JIT)
def local_background(net0, nvar, nuse, s, clip, resid, scale):
    """Per box of ``s x s`` blocks, the background left over by the ring means (beam-stop
    shadows, diffuse blobs, the polarisation's change with azimuth): the clipped mean of its
    blocks' ``net0 / nuse``, each weighted by its inverse variance ``nuse**2 / nvar`` (blocks
    on a sharp ring, whose ring statistics spread wide, count little). Three passes, each
    keeping the blocks within ``clip`` times the rms of the normalised residuals BELOW the
    mean (at least 1) on either side: spots only raise blocks, so in a crowded box they are
    clipped at about their noise and do not lift the level; the two sides of a shadow's
    edge or a sharp ring's residue put blocks below too, and are kept together.
    Written into ``resid`` (``ceil(nby / s) x ceil(nbx / s)``); 0 where fewer than a quarter
    of the box's pixels are used. ``scale``: that mean square below the mean (at least 1): how much more than their noise the blocks of the box scatter
    about one level (a beam-stop shadow's edge, a step of the background), which
    :func:`block_seeds` adds to the windows' variance.
    """
    nby, nbx = net0.shape
    nry, nrx = resid.shape
    vals = np.empty(s * s)
    wts = np.empty(s * s)
    full = s * s * np.max(nuse) if nuse.size else 0
    for ri in range(nry):
        for rj in range(nrx):
            n = 0
            npix = 0
            for bi in range(ri * s, min(ri * s + s, nby)):
                for bj in range(rj * s, min(rj * s + s, nbx)):
                    c = nuse[bi, bj]
                    if c == 0 or not nvar[bi, bj] > 0:
                        continue
                    vals[n] = net0[bi, bj] / c
                    wts[n] = c * c / nvar[bi, bj]
                    npix += c
                    n += 1
            resid[ri, rj] = 0.0
            scale[ri, rj] = 1.0
            if n == 0 or 4 * npix < full:
                continue
            limit = np.inf
            m = 0.0
            f = 1.0
            for _ in range(3):
                sw = 0.0
                sv = 0.0
                for k in range(n):
                    if (vals[k] - m) ** 2 * wts[k] <= limit:
                        sw += wts[k]
                        sv += wts[k] * vals[k]
                if sw == 0:
                    break
                m_new = sv / sw
                ss = 0.0
                nk = 0
                for k in range(n):
                    d = vals[k] - m_new
                    if (vals[k] - m) ** 2 * wts[k] <= limit and d < 0:
                        ss += d * d * wts[k]
                        nk += 1
                m = m_new
                f = max(ss / nk, 1.0) if nk > 0 else 1.0
                limit = clip * clip * f
            resid[ri, rj] = m
            scale[ri, rj] = f


def local_background_ref(net0, nvar, nuse, s, clip):
    """Numpy reference of :func:`local_background`: ``(resid, scale)``."""
    nby, nbx = net0.shape
    nry, nrx = -(-nby // s), -(-nbx // s)
    out = np.zeros((nry, nrx))
    scale = np.ones((nry, nrx))
    full = s * s * nuse.max() if nuse.size else 0
    for ri in range(nry):
        for rj in range(nrx):
            sl = (slice(ri * s, ri * s + s), slice(rj * s, rj * s + s))
            n, t, sv = nuse[sl], net0[sl], nvar[sl]
            ok = (n > 0) & (sv > 0)
            if not ok.any() or 4 * n[ok].sum() < full:
                continue
            v = t[ok] / n[ok]
            w = n[ok].astype(float) ** 2 / sv[ok]
            keep = np.ones(v.size, bool)
            mu = 0.0
            for _ in range(3):
                if not keep.any():
                    break
                new = np.sum(w[keep] * v[keep]) / np.sum(w[keep])
                below = keep & (v < new)
                f = max(np.mean((v[below] - new) ** 2 * w[below]), 1.0) if below.any() else 1.0
                mu = new
                keep = (v - mu) ** 2 * w <= clip**2 * f
            out[ri, rj] = mu
            scale[ri, rj] = f
    return out, scale


@numba.njit(**_JIT)
def boxes_to_blocks(box, s, out):
    """Per block, ``box`` (one value per box of ``s x s`` blocks) interpolated bilinearly
    between the boxes' centres (constant beyond the outer centres): the leftover background
    follows a gradient (polarisation near the beam) instead of stepping at box edges."""
    nry, nrx = box.shape
    nby, nbx = out.shape
    x0 = np.empty(nbx, np.int64)
    x1 = np.empty(nbx, np.int64)
    fx = np.empty(nbx)
    for bj in range(nbx):
        x = (bj + 0.5) / s - 0.5
        x0[bj] = min(max(int(np.floor(x)), 0), nrx - 1)
        x1[bj] = min(x0[bj] + 1, nrx - 1)
        fx[bj] = min(max(x - x0[bj], 0.0), 1.0)
    top = np.empty(nrx)
    for bi in range(nby):
        y = (bi + 0.5) / s - 0.5
        y0 = min(max(int(np.floor(y)), 0), nry - 1)
        y1 = min(y0 + 1, nry - 1)
        fy = min(max(y - y0, 0.0), 1.0)
        for rj in range(nrx):  # the boxes' row interpolated to this block row
            top[rj] = box[y0, rj] * (1 - fy) + box[y1, rj] * fy
        for bj in range(nbx):
            out[bi, bj] = top[x0[bj]] * (1 - fx[bj]) + top[x1[bj]] * fx[bj]


def boxes_to_blocks_ref(box, s, shape):
    """Numpy reference of :func:`boxes_to_blocks`."""
    nry, nrx = box.shape

    def axis(n, nr):
        c = (np.arange(n) + 0.5) / s - 0.5
        i0 = np.clip(np.floor(c).astype(int), 0, nr - 1)
        return i0, np.minimum(i0 + 1, nr - 1), np.clip(c - i0, 0.0, 1.0)

    y0, y1, fy = axis(shape[0], nry)
    x0, x1, fx = axis(shape[1], nrx)
    fy, fx = fy[:, None], fx[None, :]
    top = box[y0][:, x0] * (1 - fx) + box[y0][:, x1] * fx
    bot = box[y1][:, x0] * (1 - fx) + box[y1][:, x1] * fx
    return top * (1 - fy) + bot * fy


@numba.njit(**_JIT)
def box_scatter(net0, nvar, nuse, resid, s, scale):
    """Per box of ``s x s`` blocks, how much more than their noise its blocks scatter about
    the per-block leftover background ``resid``: the mean of the squared normalised
    residuals ``(net0 - nuse * resid)**2 / nvar`` of the blocks BELOW it (at least 1). Spots
    only raise blocks, so the spots of a crowded box do not count; a beam-stop shadow's
    edge, a step of the background or a ring's residue, which the smooth ``resid`` does not
    follow, put blocks below it too. :func:`block_seeds` multiplies the blocks' variance by
    it."""
    nby, nbx = net0.shape
    nry, nrx = scale.shape
    for ri in range(nry):
        for rj in range(nrx):
            ss = 0.0
            nk = 0
            for bi in range(ri * s, min(ri * s + s, nby)):
                for bj in range(rj * s, min(rj * s + s, nbx)):
                    if nuse[bi, bj] == 0 or not nvar[bi, bj] > 0:
                        continue
                    d = net0[bi, bj] - nuse[bi, bj] * resid[bi, bj]
                    if d < 0:
                        ss += d * d / nvar[bi, bj]
                        nk += 1
            scale[ri, rj] = max(ss / nk, 1.0) if nk > 0 else 1.0


def box_scatter_ref(net0, nvar, nuse, resid, s, shape):
    """Numpy reference of :func:`box_scatter`: the ``scale`` array of ``shape``."""
    ok = (nuse > 0) & (nvar > 0)
    d = np.where(ok, net0 - nuse * resid, 0.0)
    z2 = np.where(ok & (d < 0), d**2 / np.where(ok, nvar, 1.0), np.nan)
    out = np.ones(shape)
    for ri in range(shape[0]):
        for rj in range(shape[1]):
            z = z2[ri * s : ri * s + s, rj * s : rj * s + s]
            z = z[np.isfinite(z)]
            if z.size:
                out[ri, rj] = max(z.mean(), 1.0)
    return out


# --------------------------------------------------------------------------- fused stage
_LOCAL = threading.local()


def detect_scratch(nb: tuple[int, int], nbox: tuple[int, int]) -> dict:
    """This thread's per-block and per-box arrays for :func:`detect_blocks` (blocks ``nb``,
    boxes ``nbox``), made on first use and reused for every later frame of that shape: a
    frame then allocates nothing of the blocks' size (several threads analyse frames at
    once, each with its own)."""
    sc = getattr(_LOCAL, "detect", None)
    if sc is None or sc["shape"] != (nb, nbox):
        sc = _LOCAL.detect = dict(
            shape=(nb, nbox),
            net0=np.zeros(nb),
            nvar=np.zeros(nb),
            nsd=np.zeros(nb),
            nuse=np.zeros(nb, np.int32),
            edge=np.zeros(nb, np.uint8),
            rbox=np.zeros(nbox),
            sbox=np.ones(nbox),
            resid=np.zeros(nb),
            seeds=np.zeros(nb, np.uint8),
        )
    return sc


def ring_table(mean, var, sdg, span):
    """Per ring ``(mean, var, sdg, bad)`` in one row of four (one ring's values in one cache
    line), for :func:`detect_blocks`: rings without statistics (non-finite mean or variance)
    get zeros and ``bad = 1``; ``span`` rows of zeros after the last ring (a block's fixed
    span of rings may run past it)."""
    n = mean.size
    t = np.zeros((n + span, 4))
    good = np.isfinite(mean) & np.isfinite(var)
    t[:n, 0] = np.where(good, mean, 0.0)
    t[:n, 1] = np.where(good, var, 0.0)
    t[:n, 2] = sdg
    t[:n, 3] = ~good
    return t


@numba.njit(inline="always", **_JIT)
def _pixel_sums(frame, rings, lo, hi, mean, var, sdg, b, bi, bj):
    """Block (bi, bj) summed from its own valid pixels on rings with statistics:
    ``(sum of v - mean, sum of var, sum of sdg, pixels)``."""
    ny, nx = frame.shape
    t = 0.0
    s = 0.0
    g = 0.0
    c = 0
    for i in range(bi * b, min(bi * b + b, ny)):
        for j in range(bj * b, min(bj * b + b, nx)):
            r = rings[i, j]
            if r < 0:
                continue
            v = frame[i, j]
            if not (v >= lo and v <= hi):
                continue
            if not (np.isfinite(mean[r]) and np.isfinite(var[r])):
                continue
            t += v - mean[r]
            s += var[r]
            g += sdg[r]
            c += 1
    return t, s, g, c


@numba.njit(inline="always", **_JIT)
def _interp_row(box, s, bi, top):
    """Row ``bi`` of blocks of :func:`boxes_to_blocks`: ``top`` (per box column) gets the
    boxes' row interpolated to it (same arithmetic)."""
    nry, nrx = box.shape
    y = (bi + 0.5) / s - 0.5
    y0 = min(max(int(np.floor(y)), 0), nry - 1)
    y1 = min(y0 + 1, nry - 1)
    fy = min(max(y - y0, 0.0), 1.0)
    for rj in range(nrx):
        top[rj] = box[y0, rj] * (1 - fy) + box[y1, rj] * fy


@numba.njit(**_JIT)
def _background_row(
    bi, r0, span_count, n_fixed, ptr, ring, count, n_static, flat, bsum, bn, frame, rings, lo,
    hi, mean, var, sdg, b, o_net, o_var, o_sd, o_use,
):  # fmt: skip
    """Row ``bi`` of :func:`block_background` (same values, bit for bit) from the fixed span
    of rings of :class:`BlockRingTable` (``flat``: :func:`ring_table` raveled), its wide
    blocks (``n_fixed`` -1) from the sparse table (``ptr``, ``ring``, ``count``). Returns the
    row's largest count of used pixels."""
    ny, nx = frame.shape
    nbx = bsum.shape[1]
    span = span_count.shape[1]
    r0r = r0[bi]
    bnr = bn[bi]
    nsr = n_fixed[bi]
    nst = n_static[bi]
    bsr = bsum[bi]
    if span == 4:  # the usual 3 x 3 blocks on one-pixel rings: unrolled
        c0 = span_count[bi, 0]
        c1 = span_count[bi, 1]
        c2 = span_count[bi, 2]
        c3 = span_count[bi, 3]
        for bj in range(nbx):
            r = np.uint64(r0r[bj]) * np.uint64(4)
            a0 = np.float64(c0[bj])
            a1 = np.float64(c1[bj])
            a2 = np.float64(c2[bj])
            a3 = np.float64(c3[bj])
            m = 0.0 + a0 * flat[r]
            m += a1 * flat[r + np.uint64(4)]
            m += a2 * flat[r + np.uint64(8)]
            m += a3 * flat[r + np.uint64(12)]
            v = 0.0 + a0 * flat[r + np.uint64(1)]
            v += a1 * flat[r + np.uint64(5)]
            v += a2 * flat[r + np.uint64(9)]
            v += a3 * flat[r + np.uint64(13)]
            g = 0.0 + a0 * flat[r + np.uint64(2)]
            g += a1 * flat[r + np.uint64(6)]
            g += a2 * flat[r + np.uint64(10)]
            g += a3 * flat[r + np.uint64(14)]
            bad = a0 * flat[r + np.uint64(3)] + a1 * flat[r + np.uint64(7)]
            bad += a2 * flat[r + np.uint64(11)] + a3 * flat[r + np.uint64(15)]
            n = bnr[bj]
            ok = (n == nsr[bj]) & (bad == 0.0)
            pos = ok & (n > 0)
            o_net[bj] = bsr[bj] - m if pos else 0.0
            o_var[bj] = v + g * g if pos else 0.0
            o_sd[bj] = g if pos else 0.0
            o_use[bj] = n if ok else -1
    else:
        for bj in range(nbx):
            r = np.uint64(r0r[bj]) * np.uint64(4)
            m = 0.0
            v = 0.0
            g = 0.0
            bad = 0.0
            for k in range(span):
                a = np.float64(span_count[bi, k, bj])
                q = r + np.uint64(4 * k)
                m += a * flat[q]
                v += a * flat[q + np.uint64(1)]
                g += a * flat[q + np.uint64(2)]
                bad += a * flat[q + np.uint64(3)]
            n = bnr[bj]
            ok = (n == nsr[bj]) & (bad == 0.0)
            pos = ok & (n > 0)
            o_net[bj] = bsr[bj] - m if pos else 0.0
            o_var[bj] = v + g * g if pos else 0.0
            o_sd[bj] = g if pos else 0.0
            o_use[bj] = n if ok else -1
    maxuse = 0
    for bj in range(nbx):
        if o_use[bj] < 0:  # not all its ring pixels valid, a ring without statistics, wide
            o_use[bj] = 0
            n = bnr[bj]
            if nsr[bj] < 0 and n == nst[bj] and n > 0:  # wide: the sparse table's entries
                k = bi * nbx + bj
                m = 0.0
                v = 0.0
                g = 0.0
                bad = 0.0
                for e in range(ptr[k], ptr[k + 1]):
                    a = count[e]
                    q = np.uint64(ring[e]) * np.uint64(4)
                    m += a * flat[q]
                    v += a * flat[q + np.uint64(1)]
                    g += a * flat[q + np.uint64(2)]
                    bad += a * flat[q + np.uint64(3)]
                if bad == 0.0:
                    o_net[bj] = bsr[bj] - m
                    o_var[bj] = v + g * g
                    o_sd[bj] = g
                    o_use[bj] = n
                    maxuse = max(maxuse, n)
                    continue
            if n > 0:  # summed from its pixels
                t, s, gg, c = _pixel_sums(frame, rings, lo, hi, mean, var, sdg, b, bi, bj)
                o_net[bj] = t
                o_var[bj] = s + gg * gg
                o_sd[bj] = gg
                o_use[bj] = c
        maxuse = max(maxuse, o_use[bj])
    return maxuse


@numba.njit(error_model="numpy", **_JIT)  # divisions without a zero test (selects discard)
def detect_blocks(
    r0, span_count, n_fixed, ptr, ring, count, n_static, rtab, bsum, bn, frame, rings, lo, hi,
    mean, var, sdg, b, sb, clip, edge_excess, gain, detect_snr, net0, nvar, nsd, nuse, edge,
    rbox, sbox, resid, seeds,
):  # fmt: skip
    """The detection stage in one call, with the results of :func:`block_background`,
    :func:`local_background` (boxes of ``sb`` blocks, ``clip``), :func:`boxes_to_blocks`,
    :func:`box_scatter` and :func:`block_seeds` (``sb = 1`` on the interpolated boxes)
    called in turn: ``resid`` (per block), ``rbox``, ``sbox`` (per box) and ``seeds``, bit
    for bit but for the seeds' window sums (sums of column sums, not running sums: equal
    but for the last bits); returns the number of seeded blocks.

    Faster by fewer branches and sweeps: a block's background from the fixed span of rings
    of :class:`BlockRingTable` (``r0``, ``span_count``, ``n_fixed``; its wide blocks from
    ``ptr``, ``ring``, ``count``; ``n_static``; ``rtab`` of :func:`ring_table`), no loop of
    variable length (:func:`_background_row`); the boxes of
    a row of boxes clipped side by side; the box scatter and the module-edge test in one
    sweep; the scale interpolated inside the seeds' sweep; no branch on the sign of a
    block's residual. ``net0``, ``nvar``, ``nsd`` (float64), ``nuse`` (int32), ``edge``
    (uint8), all per block: scratch, overwritten (the caller keeps them from frame to
    frame).
    """
    nby, nbx = bsum.shape
    ny, nx = frame.shape
    nry, nrx = rbox.shape
    flat = rtab.ravel()
    # (1) leftover background per box: the clipped, inverse-variance weighted mean of
    # local_background, for all boxes of a row of boxes at once (each box's sums in its own
    # order, the boxes side by side: independent chains the compiler vectorises). Each block
    # at a fixed place of its box (raster order; places without a used block count
    # nothing).
    nk2 = sb * sb
    vals = np.zeros((nk2, nrx))
    wts = np.zeros((nk2, nrx))
    cval = np.zeros((nk2, nrx), np.int64)
    valid = np.zeros((nk2, nrx), np.bool_)
    keep = np.zeros((nk2, nrx), np.bool_)
    cnt = np.zeros(nrx, np.int64)
    npix = np.zeros(nrx, np.int64)
    m = np.zeros(nrx)
    m_new = np.zeros(nrx)
    limit = np.zeros(nrx)
    sw = np.zeros(nrx)
    sv = np.zeros(nrx)
    ssb = np.zeros(nrx)
    nkb = np.zeros(nrx, np.int64)
    active = np.zeros(nrx, np.bool_)
    # (0) block backgrounds (:func:`block_background`) of a row of boxes just before (1)
    # clips its boxes, their rows still in cache. A box counts when at least a quarter of
    # the pixels of a box of the frame's fullest blocks are used: assumed b * b pixels per
    # block, and (1) done again in the rare frame where no block has all its pixels used.
    used = np.zeros(1, np.int64)
    full = sb * sb * b * b
    for attempt in range(2):
        _box_rows(
            attempt == 0, r0, span_count, n_fixed, ptr, ring, count, n_static, flat, bsum,
            bn, frame, rings, lo, hi, mean, var, sdg, b, sb, clip, full, net0, nvar, nsd,
            nuse, rbox, vals, wts, cval, valid, keep, cnt, npix, m, m_new, limit, sw, sv, ssb,
            nkb, active, used,
        )  # fmt: skip
        if sb * sb * used[0] == full:
            break
        full = sb * sb * used[0]
    # (2) per block: the interpolated leftover (resid), each box's scatter below it, and
    # the blocks by an invalid pixel (``edge``) with their mean normalised residual
    x0 = np.empty(nbx, np.int64)
    x1 = np.empty(nbx, np.int64)
    fx = np.empty(nbx)
    for bj in range(nbx):
        x = (bj + 0.5) / sb - 0.5
        x0[bj] = min(max(int(np.floor(x)), 0), nrx - 1)
        x1[bj] = min(x0[bj] + 1, nrx - 1)
        fx[bj] = min(max(x - x0[bj], 0.0), 1.0)
    top = np.empty(nrx)
    ss = np.zeros(nrx)
    nk = np.zeros(nrx, np.int64)
    q = np.empty(nbx)
    qn = np.empty(nbx, np.int64)
    use_edge = edge_excess >= 0
    hd = np.zeros((3, nbx), np.uint8)  # rows bi - 1, bi, bi + 1 of the dilated short blocks
    zs = 0.0
    ne = 0
    for bi in range(-1, nby):
        r = bi + 1  # the row looked ahead at: its short blocks into hd
        if use_edge:
            hk = hd[(r + 3) % 3]
            for bj in range(nbx):
                hk[bj] = 0
            if r < nby:
                h = min(b, ny - r * b)
                nu = nuse[r]
                for bj in range(nbx):
                    if nu[bj] < h * min(b, nx - bj * b):
                        hk[max(bj - 1, 0)] = 1
                        hk[bj] = 1
                        hk[min(bj + 1, nbx - 1)] = 1
        if bi < 0:
            continue
        _interp_row(rbox, sb, bi, top)
        ri = bi // sb
        ra = hd[(bi + 2) % 3]
        rb = hd[bi % 3]
        rc = hd[(bi + 1) % 3]
        o_res = resid[bi]
        o_edge = edge[bi]
        nu = nuse[bi]
        nt = net0[bi]
        nw = nvar[bi]
        ne_row = 0
        for bj in range(nbx):
            v = top[x0[bj]] * (1 - fx[bj]) + top[x1[bj]] * fx[bj]
            o_res[bj] = v
            e = use_edge & ((ra[bj] | rb[bj] | rc[bj]) != 0)
            o_edge[bj] = e
            c = nu[bj]
            w = nw[bj]
            d = nt[bj] - c * v
            neg = (c != 0) & (w > 0) & (d < 0)
            q[bj] = d * d / w if neg else 0.0
            qn[bj] = neg
            ne_row += e
        for kk in range(sb):  # each box's sum in the order of its blocks, boxes side by side
            nrj = nrx if (nrx - 1) * sb + kk < nbx else nrx - 1
            for rj in range(nrj):
                ss[rj] += q[rj * sb + kk]
                nk[rj] += qn[rj * sb + kk]
        if edge_excess > 0 and ne_row > 0:
            for bj in range(nbx):
                if o_edge[bj] and nu[bj] != 0 and nw[bj] > 0:
                    z = (nt[bj] - nu[bj] * o_res[bj]) / np.sqrt(nw[bj])
                    zs += min(max(z, -3.0), 3.0)
                    ne += 1
        if bi % sb == sb - 1 or bi == nby - 1:
            for rj in range(nrx):
                sbox[ri, rj] = max(ss[rj] / nk[rj], 1.0) if nk[rj] > 0 else 1.0
                ss[rj] = 0.0
                nk[rj] = 0
    skip = use_edge
    if edge_excess > 0:
        skip = ne > 0 and zs > edge_excess * ne
    # (3) seeds: windows of 1 x 1, 2 x 2 and 3 x 3 blocks (rows three at a time, rolling;
    # a window's sums over its columns' sums, not running sums along the row: a loop the
    # compiler vectorises, equal to them but for the last bits)
    for bi in range(nby):
        sr = seeds[bi]
        for bj in range(nbx):
            sr[bj] = 0
    net = np.zeros((3, nbx))
    nv = np.zeros((3, nbx))
    sd = np.zeros((3, nbx))
    t2 = np.zeros(nbx)
    w2 = np.zeros(nbx)
    g2 = np.zeros(nbx)
    t3 = np.zeros(nbx)
    w3 = np.zeros(nbx)
    g3 = np.zeros(nbx)
    f1 = np.zeros(nbx, np.uint8)
    f2 = np.zeros(nbx, np.uint8)
    f3 = np.zeros(nbx, np.uint8)
    tt = detect_snr * detect_snr
    for bi in range(-1, nby):
        r = bi + 1  # the row to fill
        if r < nby:
            k = r % 3
            _interp_row(sbox, sb, r, top)
            nt = net0[r]
            nw = nvar[r]
            ng = nsd[r]
            nu = nuse[r]
            o_net = net[k]
            o_nv = nv[k]
            o_sd = sd[k]
            eg = edge[r]
            rs = resid[r]
            for bj in range(nbx):
                g = ng[bj]
                si = top[x0[bj]] * (1 - fx[bj]) + top[x1[bj]] * fx[bj]
                z = skip & (eg[bj] != 0)
                o_net[bj] = 0.0 if z else nt[bj] - nu[bj] * rs[bj]
                o_nv[bj] = 0.0 if z else (nw[bj] - g * g) * si
                o_sd[bj] = 0.0 if z else g
        if bi < 0:
            continue
        c = bi % 3
        nc_ = net[c]
        vc = nv[c]
        dc = sd[c]
        for bj in range(nbx):
            w = vc[bj]
            x = nc_[bj]
            f1[bj] = (w > 0) & (x > 0) & (x * x >= tt * (gain * x + w + dc[bj] ** 2))
        sr = seeds[bi]
        if bi + 1 < nby:
            n1 = (bi + 1) % 3
            na = net[n1]
            va = nv[n1]
            da = sd[n1]
            for bj in range(nbx):
                t2[bj] = nc_[bj] + na[bj]
                w2[bj] = vc[bj] + va[bj]
                g2[bj] = dc[bj] + da[bj]
            for bj in range(nbx - 1):
                w = w2[bj] + w2[bj + 1]
                g = g2[bj] + g2[bj + 1]
                x = t2[bj] + t2[bj + 1]
                f2[bj] = (w > 0) & (x > 0) & (x * x >= tt * (gain * x + w + g * g))
            f2[nbx - 1] = 0
            if bi > 0:
                p = (bi - 1) % 3
                npv = net[p]
                vp = nv[p]
                dp = sd[p]
                for bj in range(nbx):  # columns' sums of rows bi - 1 .. bi + 1
                    t3[bj] = t2[bj] + npv[bj]
                    w3[bj] = w2[bj] + vp[bj]
                    g3[bj] = g2[bj] + dp[bj]
                f3[0] = 0
                f3[nbx - 1] = 0
                for bj in range(1, nbx - 1):  # centred on bj
                    x = t3[bj - 1] + t3[bj] + t3[bj + 1]
                    w = w3[bj - 1] + w3[bj] + w3[bj + 1]
                    g = g3[bj - 1] + g3[bj] + g3[bj + 1]
                    f3[bj] = (w > 0) & (x > 0) & (x * x >= tt * (gain * x + w + g * g))
            else:
                for bj in range(nbx):
                    f3[bj] = 0
            s1 = seeds[bi + 1]
            for bj in range(nbx):
                if f1[bj] | f2[bj] | f3[bj]:
                    if f1[bj]:
                        sr[bj] = 1
                    if f2[bj]:
                        sr[bj] = 1
                        sr[bj + 1] = 1
                        s1[bj] = 1
                        s1[bj + 1] = 1
                    if f3[bj]:
                        s0 = seeds[bi - 1]
                        for dj in range(-1, 2):
                            s0[bj + dj] = 1
                            sr[bj + dj] = 1
                            s1[bj + dj] = 1
        else:
            for bj in range(nbx):
                if f1[bj]:
                    sr[bj] = 1
    n = 0
    for bi in range(nby):
        for bj in range(nbx):
            n += seeds[bi, bj]
    return n


@numba.njit(error_model="numpy", **_JIT)
def _box_rows(
    backgrounds, r0, span_count, n_fixed, ptr, ring, count, n_static, flat, bsum, bn, frame,
    rings, lo, hi, mean, var, sdg, b, sb, clip, full, net0, nvar, nsd, nuse, rbox, vals, wts,
    cval, valid, keep, cnt, npix, m, m_new, limit, sw, sv, ssb, nkb, active, used,
):  # fmt: skip
    """Steps (0) and (1) of :func:`detect_blocks`, a row of boxes at a time: with
    ``backgrounds``, the backgrounds of its blocks first (the largest count of used pixels
    into ``used[0]``), then each box's clipped mean into ``rbox``; ``full``: the pixels of
    a box of the frame's fullest blocks."""
    nby, nbx = bsum.shape
    nry, nrx = rbox.shape
    nk2 = sb * sb
    maxuse = 0
    for ri in range(nry):
        if backgrounds:
            for bi in range(ri * sb, min(ri * sb + sb, nby)):
                mu = _background_row(
                    bi, r0, span_count, n_fixed, ptr, ring, count, n_static, flat, bsum, bn,
                    frame, rings, lo, hi, mean, var, sdg, b, net0[bi], nvar[bi], nsd[bi],
                    nuse[bi],
                )  # fmt: skip
                maxuse = max(maxuse, mu)
        for k in range(nk2):
            for rj in range(nrx):
                valid[k, rj] = False
                cval[k, rj] = 0
        for bi in range(ri * sb, min(ri * sb + sb, nby)):
            nt = net0[bi]
            nw = nvar[bi]
            nu = nuse[bi]
            off = (bi - ri * sb) * sb
            for kk in range(sb):  # place kk of every box: contiguous stores along the boxes
                k = off + kk
                nrj = nrx if (nrx - 1) * sb + kk < nbx else nrx - 1
                vk = vals[k]
                wk = wts[k]
                okk = valid[k]
                ck = cval[k]
                for rj in range(nrj):
                    bj = rj * sb + kk
                    c = nu[bj]
                    w = nw[bj]
                    ok = (c != 0) & (w > 0)
                    vk[rj] = nt[bj] / c if ok else 0.0
                    wk[rj] = c * c / w if ok else 0.0
                    okk[rj] = ok
                    ck[rj] = c if ok else 0
        for rj in range(nrx):
            cnt[rj] = 0
            npix[rj] = 0
        for k in range(nk2):
            for rj in range(nrx):
                cnt[rj] += valid[k, rj]
                npix[rj] += cval[k, rj]
        for rj in range(nrx):
            active[rj] = not (cnt[rj] == 0 or 4 * npix[rj] < full)
            m[rj] = 0.0
            limit[rj] = np.inf
        for _ in range(3):
            for rj in range(nrx):
                sw[rj] = 0.0
                sv[rj] = 0.0
            for k in range(nk2):
                for rj in range(nrx):
                    v = vals[k, rj]
                    w = wts[k, rj]
                    kp = ((v - m[rj]) ** 2 * w <= limit[rj]) & valid[k, rj]
                    keep[k, rj] = kp
                    sw[rj] += w if kp else 0.0
                    sv[rj] += w * v if kp else 0.0
            for rj in range(nrx):
                if active[rj] and sw[rj] == 0:
                    active[rj] = False
                m_new[rj] = sv[rj] / sw[rj] if active[rj] else m[rj]
                ssb[rj] = 0.0
                nkb[rj] = 0
            for k in range(nk2):
                for rj in range(nrx):
                    d = vals[k, rj] - m_new[rj]
                    below = keep[k, rj] & (d < 0)
                    ssb[rj] += d * d * wts[k, rj] if below else 0.0
                    nkb[rj] += below
            for rj in range(nrx):
                if active[rj]:
                    m[rj] = m_new[rj]
                    f = max(ssb[rj] / nkb[rj], 1.0) if nkb[rj] > 0 else 1.0
                    limit[rj] = clip * clip * f
        for rj in range(nrx):
            rbox[ri, rj] = m[rj]
    if backgrounds:
        used[0] = maxuse
