"""One peak per spot: a watershed of the 3 x 3 local sums, split only at significant saddles.

Inside the blocks :mod:`.blocks` seeded, each valid pixel gets its net
value ``N = v - mean[ring]`` and ``G``, the sum of ``N`` over its 3 x 3 neighbourhood (a
smoothing the size of a sharp spot). Pixels whose ``G`` reaches ``floor_snr`` times its
background noise are the spots' footprints. They are visited from the highest ``G`` down
(ties: raster order) and grown into components by union-find (8-connected). Where a pixel
touches two components, the lower one stays a spot of its own only if its peak stands above
this saddle by ``split_snr`` times the noise of that difference and by ``split_frac`` of its
peak (crowded neighbours are split at their saddle); otherwise it joins the higher one (the
noise bumps of one broad spot, the length of a streak), and so does a peak closer than
``min_sep`` pixels to the higher one. Each pixel belongs to one component,
so a spot is reported once.

Each component is then measured over its footprint: intensity ``I = sum N``, integrated SNR
``I / sqrt(g I + sum var)`` (g: ADU per photon), centroid of the positive ``N``. It is a spot
when the SNR reaches ``min_snr``, its size is within limits, and its brightest pixel does not
hold more than ``max_single_frac`` of the net signal of its 3 x 3 neighbourhood: a single-pixel
zinger or hot pixel, where a real spot always spreads over the point-spread function.

Written by hand (numba): a watershed restricted to a sparse set of pixels, with a
noise-dependent merge rule and the measurement fused in; scikit-image's watershed works on
dense images with markers given in advance.
"""

from __future__ import annotations

import threading

import numba
import numpy as np

_JIT = dict(cache=True, nogil=True)

#: the centroid is taken over a spot's core: its pixels whose G is at least this fraction of
#: the peak's (the noise of a weak spot's outer footprint would pull it off)
CORE = 0.5

#: columns of the spot table (same as :data:`.peaks.COLUMNS`)
COLUMNS = ("x", "y", "intensity", "npix", "snr", "background", "max")


@numba.njit(inline="always", **_JIT)
def _net(frame, rings, mean, resid, sbs, lo, hi, i, j):
    """``(N, valid)`` of pixel (i, j): its value minus its background (its ring's mean plus
    the local residual of its box of ``sbs`` pixels)."""
    r = rings[i, j]
    if r < 0:
        return 0.0, False
    v = frame[i, j]
    if not (v >= lo and v <= hi):
        return 0.0, False
    m = mean[r]
    if not np.isfinite(m):
        return 0.0, False
    return np.float64(v) - (m + resid[i // sbs, j // sbs]), True


@numba.njit(**_JIT)
def _local_sum(frame, rings, mean, resid, sbs, lo, hi, i, j):
    """Sum of N over the valid pixels of the 3 x 3 neighbourhood, and their count."""
    ny, nx = frame.shape
    g = 0.0
    n = 0
    for ii in range(i - 1, i + 2):
        if ii < 0 or ii >= ny:
            continue
        for jj in range(j - 1, j + 2):
            if jj < 0 or jj >= nx:
                continue
            v, ok = _net(frame, rings, mean, resid, sbs, lo, hi, ii, jj)
            if ok:
                g += v
                n += 1
    return g, n


@numba.njit(**_JIT)
def _root(parent, a):
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@numba.njit(**_JIT)
def dilate_blocks(seeds):
    """Seeded blocks and their 8 neighbours (uint8)."""
    nby, nbx = seeds.shape
    out = np.zeros((nby, nbx), np.uint8)
    for bi in range(nby):
        for bj in range(nbx):
            if seeds[bi, bj]:
                for di in range(max(bi - 1, 0), min(bi + 2, nby)):
                    for dj in range(max(bj - 1, 0), min(bj + 2, nbx)):
                        out[di, dj] = 1
    return out


def find_spots(
    frame,
    rings,
    mean,
    resid,
    sbs,
    var,
    lo,
    hi,
    blocks,
    b,
    h,
    gain,
    floor_snr,
    split_snr,
    split_frac,
    min_sep,
    min_snr,
    max_single_frac,
    min_pix,
    max_pix,
    out,
    *,
    log_sigma=0.0,
    log_snr=2.0,
    log_gsnr=5.0,
    log_sep=5.0,
    log_min_core=12,
    log_spike=0.3,
    log_sharp=0.2,
    log_peel_snr=5.0,
    log_peel_gsnr=6.0,
):
    """Spots in the pixels of the marked ``blocks`` (``b x b`` pixels each); rows of ``out``
    get :data:`COLUMNS`, in order of their peak's ``G``. Returns the number of spots (rows
    beyond ``out``'s length are counted, not stored).

    ``mean``, ``var``: background and its variance per pixel of each ring (ADU, ADU**2; the
    caller floors ``var`` at the read noise). Footprint pixels are visited connected
    region by connected region (regions in raster order of their first pixel), so that the
    growth reads memory that is close by.

    ``log_sigma > 0`` splits components further at the maxima of their Laplacian of Gaussian
    (:func:`_split`, parameters ``log_*``).
    """
    sc = _scratch(blocks.shape, int(np.count_nonzero(blocks)) * b * b)
    try:
        nc, ns = _footprint(
            frame, rings, mean, resid, sbs, var, lo, hi, blocks, b, h, floor_snr,
            sc.slot, sc.nloc, sc.gloc, sc.cand, sc.ci, sc.cj, sc.gval, sc.par, sc.ismax,
            sc.svar, sc.fval, sc.sblk,
        )  # fmt: skip
        cand, ci, cj, gval, par = sc.cand[:nc], sc.ci[:nc], sc.cj[:nc], sc.gval[:nc], sc.par[:nc]
        svar, fval = sc.svar[:nc], sc.fval[:nc]
        slot, nloc, gloc = sc.slot, sc.nloc, sc.gloc
        order, start, rmax = _region_order(par, gval, sc.ismax)
        parent, peak = sc.parent, sc.peak
        _grow(
            cand, ci, cj, gval, order, start, rmax, slot, svar, b, h, gain, split_snr,
            split_frac, min_sep, parent, peak, sc.pki, sc.pkj,
        )  # fmt: skip
        posx, posy = sc.posx, sc.posy
        if log_sigma > 0:
            g, g2, k2 = log_kernel(log_sigma)
            _split(
                frame, rings, mean, resid, sbs, var, lo, hi, cand, ci, cj, gval, order, slot,
                b, h, parent, peak, gain, g, g2, k2, log_snr, log_gsnr, log_sep, log_min_core,
                posx, posy, log_spike, nloc, log_sharp, sc.cid, log_peel_snr, log_peel_gsnr,
                *peel_models(log_sigma),
            )  # fmt: skip
        found = _measure(
            frame, rings, mean, resid, sbs, var, lo, hi, cand, ci, cj, gval, order, nloc,
            gloc, slot, b, parent, peak, gain, min_snr, max_single_frac, min_pix, max_pix, out,
            posx, posy, sc.comp, svar, fval,
        )  # fmt: skip
        _restore(sc.sblk[:ns], cand, slot, parent, posx, posy)
    except BaseException:
        _LOCAL.__dict__.clear()  # never reuse scratch left half-written
        raise
    return found


class _Scratch:
    """Per-thread arrays the kernels reuse from frame to frame (no allocation and no page
    faults per frame): indexed by block (``slot``) or by local pixel index. Between calls
    ``slot``, ``parent``, ``comp``, ``cid`` hold -1 and ``posx``, ``posy`` NaN
    everywhere; each kernel puts back what it changed, so a frame costs what its footprint
    costs, not the size of these arrays."""

    def __init__(self, shape, n):
        self.shape = shape
        self.slot = np.full(shape, -1, np.int32)
        self.size = n
        for name in ("parent", "comp", "cid"):
            setattr(self, name, np.full(n, -1, np.int32))
        self.posx = np.full(n, np.nan)
        self.posy = np.full(n, np.nan)
        self.peak = np.zeros(n)
        self.pki = np.zeros(n, np.int32)
        self.pkj = np.zeros(n, np.int32)
        self.nloc = np.zeros(n)
        self.gloc = np.zeros(n)
        for name in ("cand", "ci", "cj", "par"):  # footprint pixels (:func:`_footprint`)
            setattr(self, name, np.zeros(n, np.int64))
        self.gval = np.zeros(n)
        self.ismax = np.zeros(n, np.uint8)
        self.svar = np.zeros(n)
        self.fval = np.zeros(n)
        self.sblk = np.zeros(n, np.int64)  # the marked blocks (raveled index), by slot


_LOCAL = threading.local()


def _scratch(shape, n):
    """This thread's :class:`_Scratch` for blocks of ``shape`` and ``n`` local pixels
    (grown by half again when too small)."""
    sc = getattr(_LOCAL, "scratch", None)
    if sc is None or sc.shape != shape or sc.size < n:
        sc = _LOCAL.scratch = _Scratch(shape, max(n + n // 2, 1))
    return sc


@numba.njit(**_JIT)
def _restore(sblk, cand, slot, parent, posx, posy):
    """Put back the scratch entries the frame changed (see :class:`_Scratch`); ``sblk``:
    the marked blocks (raveled indices, of :func:`_footprint`)."""
    for c in range(cand.shape[0]):
        parent[cand[c]] = -1
        posx[cand[c]] = np.nan
        posy[cand[c]] = np.nan
    flat = slot.reshape(-1)
    for s in range(sblk.shape[0]):
        flat[sblk[s]] = -1


@numba.njit(**_JIT)
def _footprint(
    frame, rings, mean, resid, sbs, var, lo, hi, blocks, b, h, floor_snr, slot, nloc, gloc,
    cand, ci, cj, gval, par, ismax, svar, fval, sblk,
):  # fmt: skip
    """The footprint pixels in raster order (local index ``cand``, row ``ci``, column
    ``cj``, G ``gval``) and their 8-connected regions (``par``: a union-find over their
    positions in that order) and whether each is a local maximum of its region (``ismax``:
    no 8-neighbour in the footprint comes before it in the watershed's order, by decreasing
    G, ties in raster order), its background variance ``svar`` and value ``fval`` (as
    float64), in the first entries of these arrays (as long as the marked
    blocks' pixels); returns their number and that of the marked blocks, listed in ``sblk``
    (raveled indices, by slot). Written: ``slot`` of the marked blocks (all -1 on
    entry), N (``nloc``) and G (``gloc``) of every pixel of the marked blocks (0 where not
    valid)."""
    ny, nx = frame.shape
    nby, nbx = blocks.shape
    # slot of each marked block (given in the sweep below, raster order); pixels are
    # numbered slot * b * b + (i % b) * b + (j % b)
    ns = 0
    bb = b * b
    # N and G of every pixel of the marked blocks. N is computed once per pixel needed (the
    # blocks and their halo of h pixels) into a rolling buffer of the last b + 2h frame rows
    # (``stamp``: the frame row a buffer cell holds), so that vertically adjacent blocks
    # share their halo rows.
    nr = b + 2 * h
    ncol = nbx * b + 2 * h
    buf = np.zeros((nr, ncol))  # frame column jj at jj + h
    bok = np.zeros((nr, ncol), np.bool_)
    stamp = np.full((nr, ncol), -(1 << 40), np.int64)
    hsum = np.zeros((nr, ncol))
    hcnt = np.zeros((nr, ncol), np.int64)
    hstamp = np.full((nr, ncol), -(1 << 40), np.int64)
    jbox = np.empty(ncol, np.int64)  # resid box of each buffer column
    for c in range(ncol):
        jbox[c] = min(max(c - h, 0), nx - 1) // sbs
    # runs of adjacent marked blocks in a row: first and last block (their halos overlap, so
    # a run is worked on as one strip of columns, each column once)
    run0 = np.empty(nbx, np.int64)
    run1 = np.empty(nbx, np.int64)
    krow = np.empty(2 * h + 1, np.int64)
    # the footprint pixels are listed as they are found (the pixel rows of a row of blocks
    # are swept in raster order) with their 8-connected regions: a union-find (``par``) of
    # each footprint pixel with those before it (the row above and the left neighbour),
    # found in two rows of the frame's width that hold each column's last footprint pixel
    # and its row (no lookup through the blocks)
    rowc = np.zeros((2, nx + 2), np.int64)  # column j at j + 1
    rowi = np.full((2, nx + 2), -2, np.int64)
    nc = 0
    for bi in range(nby):
        nrb = 0
        nrun = 0
        for bj in range(nbx):
            if blocks[bi, bj]:
                slot[bi, bj] = ns
                sblk[ns] = bi * nbx + bj
                ns += 1
                nrb += 1
                if nrun > 0 and run1[nrun - 1] == bj - 1:
                    run1[nrun - 1] = bj
                else:
                    run0[nrun] = bj
                    run1[nrun] = bj
                    nrun += 1
        if nrb == 0:
            continue
        i0 = bi * b - h
        for ii in range(max(i0, 0), min(i0 + nr, ny)):
            sr = ii % nr
            ri = rings[ii]
            fi = frame[ii]
            rres = resid[ii // sbs]
            bsr = buf[sr]
            oksr = bok[sr]
            stsr = stamp[sr]
            for t in range(nrun):
                for c in range(run0[t] * b, run1[t] * b + b + 2 * h):
                    if stsr[c] == ii:
                        continue
                    stsr[c] = ii
                    jj = c - h
                    ok = False
                    val = 0.0
                    if 0 <= jj < nx:
                        r = ri[jj]
                        if r >= 0:
                            v = fi[jj]
                            if v >= lo and v <= hi:
                                m = mean[r]
                                if np.isfinite(m):
                                    ok = True
                                    val = np.float64(v) - (m + rres[jbox[c]])
                    bsr[c] = val
                    oksr[c] = ok
            # horizontal sums of the blocks' pixel columns over 2h + 1 columns (separable G;
            # an invalid pixel's buf is 0.0, so adding it changes no sum)
            hssr = hsum[sr]
            hcsr = hcnt[sr]
            htsr = hstamp[sr]
            for t in range(nrun):
                for c in range(run0[t] * b + h, run1[t] * b + h + b):
                    if htsr[c] == ii:
                        continue
                    htsr[c] = ii
                    a = 0.0
                    n = 0
                    for kc in range(c - h, c + h + 1):
                        a += bsr[kc]
                        n += oksr[kc]
                    hssr[c] = a
                    hcsr[c] = n
        # N, G and the footprint test of the marked blocks' pixels, a pixel row at a time
        # (the ring-buffer rows of its vertical sum resolved once per row)
        for di in range(b):
            i = bi * b + di
            if i >= ny:
                break
            sr = i % nr
            k0 = max(i - h, 0)
            nk = min(i + h + 1, ny) - k0
            for q in range(nk):
                krow[q] = (k0 + q) % nr
            bsr = buf[sr]
            oksr = bok[sr]
            ri = rings[i]
            upc = rowc[(i + 1) % 2]  # row i - 1
            upi = rowi[(i + 1) % 2]
            cuc = rowc[i % 2]
            cui = rowi[i % 2]
            for t in range(nrun):
                for bj in range(run0[t], run1[t] + 1):
                    base = slot[bi, bj] * bb + di * b
                    for dj in range(b):
                        c = bj * b + dj + h  # buffer column of this pixel
                        loc = base + dj
                        if c - h >= nx or not oksr[c]:
                            nloc[loc] = 0.0
                            gloc[loc] = 0.0
                            continue
                        g = 0.0
                        n = 0
                        for q in range(nk):
                            g += hsum[krow[q], c]
                            n += hcnt[krow[q], c]
                        s2 = var[ri[c - h]]
                        nloc[loc] = bsr[c]
                        gloc[loc] = g
                        # sqrt of a negative s2 is NaN: False
                        if not ((g > 0) & (s2 >= 0) & (g >= floor_snr * np.sqrt(n * s2))):
                            continue
                        j = c - h
                        cand[nc] = loc
                        ci[nc] = i
                        cj[nc] = j
                        gval[nc] = g
                        par[nc] = nc
                        svar[nc] = s2
                        fval[nc] = np.float64(frame[i, j])
                        top = np.uint8(1)
                        for k in range(j, j + 3):  # columns j - 1, j, j + 1 of the row above
                            if upi[k] == i - 1:
                                e = upc[k]
                                _union(par, nc, e)
                                if gval[e] >= g:  # the earlier pixel wins ties
                                    top = 0
                                else:
                                    ismax[e] = 0
                        if cui[j] == i:  # the left neighbour
                            e = cuc[j]
                            _union(par, nc, e)
                            if gval[e] >= g:
                                top = 0
                            else:
                                ismax[e] = 0
                        ismax[nc] = top
                        cui[j + 1] = i
                        cuc[j + 1] = nc
                        nc += 1
    return nc, ns


@numba.njit(inline="always", **_JIT)
def _union(par, a, c):
    """Join the sets of ``a`` and ``c`` (the smaller root becomes the root)."""
    ra = _root(par, a)
    rb = _root(par, c)
    if ra != rb:
        par[max(ra, rb)] = min(ra, rb)


@numba.njit(inline="always", **_JIT)
def _local(slot, b, bb, ii, jj):
    """Local index of pixel (ii, jj), -1 outside the marked blocks (fast path for the usual
    3-pixel blocks: a division by a constant compiles to a multiplication)."""
    if b == 3:
        bi = ii // 3
        bj = jj // 3
    else:
        bi = ii // b
        bj = jj // b
    s = slot[bi, bj]
    if s < 0:
        return -1
    return s * bb + (ii - bi * b) * b + (jj - bj * b)


@numba.njit(**_JIT)
def _region_order(par, gval, ismax):
    """Visiting order of the footprint pixels: by 8-connected region (``par``: their
    union-find of :func:`_footprint`; regions in raster order of their first pixel), then by
    decreasing G, ties in raster order. Returns ``(order, start, rmax)``: the order, where
    each region starts in it (regions + 1) and each region's number of local maxima
    (``ismax`` of :func:`_footprint`)."""
    nc = par.shape[0]
    # regions numbered by their first pixel; counting sort by region keeps raster order
    label = np.full(nc, -1, np.int64)
    nreg = 0
    reg = np.empty(nc, np.int64)
    for c in range(nc):
        r = _root(par, c)
        if label[r] < 0:
            label[r] = nreg
            nreg += 1
        reg[c] = label[r]
    start = np.zeros(nreg + 1, np.int64)
    rmax = np.zeros(nreg, np.int64)
    for c in range(nc):
        start[reg[c] + 1] += 1
        rmax[reg[c]] += ismax[c]
    for k in range(nreg):
        start[k + 1] += start[k]
    fill = start[:-1].copy()
    order = np.empty(nc, np.int64)
    for c in range(nc):
        order[fill[reg[c]]] = c
        fill[reg[c]] += 1
    # decreasing G inside each region (stable insertion sort: regions are small)
    for k in range(nreg):
        a0 = start[k]
        a1 = start[k + 1]
        if a1 - a0 > 32:
            sub = order[a0:a1].copy()
            idx = np.argsort(-gval[sub], kind="mergesort")
            for t in range(a1 - a0):
                order[a0 + t] = sub[idx[t]]
            continue
        for t in range(a0 + 1, a1):
            c = order[t]
            g = gval[c]
            u = t - 1
            while u >= a0 and gval[order[u]] < g:
                order[u + 1] = order[u]
                u -= 1
            order[u + 1] = c
    return order, start, rmax


@numba.njit(**_JIT)
def _grow(
    cand, ci, cj, gval, order, start, rmax, slot, svar, b, h, gain, split_snr,
    split_frac, min_sep, parent, peak, pki, pkj,
):  # fmt: skip
    """Union-find growth of the footprint from the highest G down into ``parent`` (-1 on
    entry) with ``peak`` (G at the peak of each root) and its pixel (``pki``, ``pkj``),
    region by region (``start``, ``rmax`` of :func:`_region_order`). A region with one
    local maximum is one component: every pixel after its peak touches a pixel visited
    before it, all of that one component, so it joins it (no neighbour is looked at).
    ``svar``: each footprint pixel's background variance (:func:`_footprint`)."""
    ny = slot.shape[0] * b
    nx = slot.shape[1] * b
    bb = b * b
    roots = np.empty(8, np.int64)
    for k in range(start.shape[0] - 1):
        if rmax[k] == 1:
            c0 = order[start[k]]
            r0 = cand[c0]
            peak[r0] = gval[c0]
            pki[r0] = ci[c0]
            pkj[r0] = cj[c0]
            for o in range(start[k], start[k + 1]):
                parent[cand[order[o]]] = r0
            continue
        for o in range(start[k], start[k + 1]):
            c = order[o]
            loc = cand[c]
            i = ci[c]
            j = cj[c]
            g = gval[c]
            nr = 0
            for ii in range(i - 1, i + 2):
                if ii < 0 or ii >= ny:
                    continue
                for jj in range(j - 1, j + 2):
                    if jj < 0 or jj >= nx or (ii == i and jj == j):
                        continue
                    q = _local(slot, b, bb, ii, jj)
                    if q < 0 or parent[q] < 0:
                        continue
                    rq = _root(parent, q)
                    new = True
                    for t in range(nr):
                        if roots[t] == rq:
                            new = False
                    if new:
                        roots[nr] = rq
                        nr += 1
            if nr == 0:
                parent[loc] = loc
                peak[loc] = g
                pki[loc] = i
                pkj[loc] = j
                continue
            main = roots[0]
            for t in range(1, nr):
                if peak[roots[t]] > peak[main]:
                    main = roots[t]
            s2 = svar[c]
            for t in range(nr):
                r = roots[t]
                if r == main:
                    continue
                dip = peak[r] - g
                noise = np.sqrt(
                    2.0 * (2 * h + 1) ** 2 * s2 + gain * (max(peak[r], 0.0) + max(g, 0.0))
                )
                far = (pki[r] - pki[main]) ** 2 + (pkj[r] - pkj[main]) ** 2 >= min_sep**2
                if far and dip >= split_snr * noise and dip >= split_frac * peak[r]:
                    continue  # a spot of its own: its saddle is here
                parent[r] = main
            parent[loc] = main
    return 0


def log_kernel(sigma):
    """1-D factors of the Laplacian of Gaussian at scale ``sigma``, truncated at ``3 sigma``:
    ``(g, g2, k2)`` with ``-LoG = -(g2(x) g(y) + g(x) g2(y))`` (``g`` sums to 1, ``g2`` its
    second derivative) and ``k2`` the sum of the squared 2-D kernel (its noise gain)."""
    r = max(int(np.ceil(3 * sigma)), 1)
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * sigma**2))
    g /= g.sum()
    g2 = (x**2 / sigma**4 - 1 / sigma**2) * g
    k = np.outer(g2, g) + np.outer(g, g2)
    return g, g2, float(np.sum(k * k))


_PEEL = {}


def peel_models(sigma, half=12):
    """``(models, ratios)``: ``-LoG`` (scale ``sigma``) of centred, unit-sum Gaussian spots
    of width 0.6-4.5 px on a ``2 half + 1`` square, and each one's ``-LoG / G`` at its centre
    (G: the sum over its central 5 x 5 pixels), by which a peak's width is looked up."""
    key = (float(sigma), half)
    if key not in _PEEL:
        from scipy import ndimage

        g, g2, _ = log_kernel(sigma)
        yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
        models, ratios = [], []
        for s in np.arange(0.6, 4.55, 0.1):
            img = np.exp(-(xx**2 + yy**2) / (2 * s * s))
            img /= img.sum()
            lg = -(
                ndimage.correlate1d(ndimage.correlate1d(img, g2, axis=1), g, axis=0)
                + ndimage.correlate1d(ndimage.correlate1d(img, g, axis=1), g2, axis=0)
            )
            models.append(lg)
            ratios.append(lg[half, half] / img[half - 2 : half + 3, half - 2 : half + 3].sum())
        _PEEL[key] = (np.array(models), np.array(ratios))
    return _PEEL[key]


@numba.njit(**_JIT)
def _neg_log(p, g, g2):
    """``-LoG`` of the dense patch ``p`` (zero outside) on its inner part (the patch less a
    margin of the kernel's radius ``r`` on each side), separable: rows then columns."""
    ph, pw = p.shape
    r = g.shape[0] // 2
    oh = ph - 2 * r
    ow = pw - 2 * r
    t1 = np.empty((ph, ow))
    t2 = np.empty((ph, ow))
    for i in range(ph):
        for j in range(ow):
            a = 0.0
            c = 0.0
            for k in range(2 * r + 1):
                v = p[i, j + k]
                a += v * g2[k]
                c += v * g[k]
            t1[i, j] = a
            t2[i, j] = c
    out = np.empty((oh, ow))
    for i in range(oh):
        for j in range(ow):
            a = 0.0
            for k in range(2 * r + 1):
                a += t1[i + k, j] * g[k] + t2[i + k, j] * g2[k]
            out[i, j] = -a
    return out


@numba.njit(**_JIT)
def _despike(p, frac, s2, gain):
    """``p`` with single-pixel spikes (a pixel holding more than ``frac`` of the net signal
    of its 3 x 3 neighbourhood and 5 sigmas above the mean ``m8`` of its 8 neighbours, with
    ``sigma**2 = s2 + gain * max(m8, 0)``: a zinger or hot pixel, also on a spot) replaced
    by ``max(m8, 0)`` (zero outside ``p``), so that they do not draw the ``-LoG``."""
    ph, pw = p.shape
    q = p.copy()
    for i in range(ph):
        for j in range(pw):
            v = p[i, j]
            if v <= 0 or v * v <= 25.0 * s2:  # cannot be 5 sigmas above its neighbours
                continue
            s8 = 0.0
            for ii in range(max(i - 1, 0), min(i + 2, ph)):
                for jj in range(max(j - 1, 0), min(j + 2, pw)):
                    s8 += p[ii, jj]
            s8 -= v
            m8 = max(s8 / 8.0, 0.0)
            if v > frac * (v + s8) and (v - m8) ** 2 > 25.0 * (s2 + gain * m8):
                q[i, j] = m8
    return q


@numba.njit(**_JIT)
def _split(
    frame, rings, mean, resid, sbs, var, lo, hi, cand, ci, cj, gval, order, slot, b, h,
    parent, peak, gain, g, g2, k2, log_snr, log_gsnr, log_sep, min_core, posx, posy, spike,
    nloc, sharp, cid, peel_snr, peel_gsnr, models, ratios,
):  # fmt: skip
    """Split components that hide several spots at the maxima of their ``-LoG``.

    A weak spot on the flank of a stronger one, or two broad spots closer than about three
    widths, leave no saddle in ``G``; the Laplacian of Gaussian (scale ``g``) still peaks on
    each. Only components with at least ``min_core`` pixels whose ``G`` is half their peak's
    or more (broad spots, merged pairs) are looked at. Their pixels that are the maximum of
    ``-LoG`` over their 5 x 5 neighbourhood, reach ``log_snr`` times its background noise
    and whose ``G`` reaches ``log_gsnr`` times its noise, taken by decreasing ``-LoG``,
    become peaks of their own when ``log_sep`` pixels or more from the component's peak and
    the peaks already taken; the component's pixels then go to their nearest peak
    (``parent`` rewritten, ``peak`` of the new roots set). Every peak of such a component is
    placed at the ``-LoG`` maximum (within 2 px of its ``G`` peak for the first) by a
    parabola (``posx``, ``posy`` at its root). ``-LoG`` is computed on a patch around the
    pixels needed only, after removing single-pixel spikes (:func:`_despike`)."""
    nc = cand.shape[0]
    ny, nx = frame.shape
    bb = b * b
    r = g.shape[0] // 2
    w = (2 * h + 1) ** 2
    jbox = np.empty(nx, np.int64)  # resid box of each column (no division per pixel)
    for j in range(nx):
        jbox[j] = j // sbs
    # components in visiting order, their members grouped (stable)
    compc = np.empty(nc, np.int64)  # cid: scratch per root, -1 on entry and on return
    rlist = np.empty(nc, np.int64)  # the roots, to put cid back
    ncomp = 0
    for o in range(nc):
        rt = _root(parent, cand[order[o]])
        if cid[rt] < 0:
            cid[rt] = ncomp
            rlist[ncomp] = rt
            ncomp += 1
        compc[o] = cid[rt]
    for k in range(ncomp):
        cid[rlist[k]] = -1
    start = np.zeros(ncomp + 1, np.int64)
    for o in range(nc):
        start[compc[o] + 1] += 1
    for k in range(ncomp):
        start[k + 1] += start[k]
    fill = start[:-1].copy()
    memb = np.empty(nc, np.int64)  # positions in order
    for o in range(nc):
        memb[fill[compc[o]]] = o
        fill[compc[o]] += 1
    pk_i = np.empty(8, np.int64)
    pk_j = np.empty(8, np.int64)
    for k in range(ncomp):
        a0 = start[k]
        a1 = start[k + 1]
        if a1 - a0 < min_core:
            continue
        c0 = order[memb[a0]]  # the component's peak: first visited
        half = 0.5 * gval[c0]
        core = 0
        full = False
        nmax = -np.inf
        for t in range(a0, a1):
            c = order[memb[t]]
            gg = gval[c]
            nmax = max(nmax, nloc[cand[c]])
            if gg >= half:
                core += 1
            if not full and (ci[c] - ci[c0]) ** 2 + (cj[c] - cj[c0]) ** 2 >= log_sep**2:
                s2 = var[rings[ci[c], cj[c]]]
                full = gg > 0 and gg * gg >= log_gsnr**2 * (w * s2 + gain * gg)
        if core < min_core or nmax >= sharp * gval[c0]:
            continue  # small, or sharp: its brightest pixel holds much of G
        # the region where -LoG is needed: all members and their 5 x 5 neighbourhoods, or
        # only 3 px around the peak when no member can be a peak of its own
        if full:
            i0 = ci[c0]
            i1 = ci[c0]
            j0 = cj[c0]
            j1 = cj[c0]
            for t in range(a0, a1):
                c = order[memb[t]]
                i0 = min(i0, ci[c])
                i1 = max(i1, ci[c])
                j0 = min(j0, cj[c])
                j1 = max(j1, cj[c])
            i0 -= 2
            i1 += 2
            j0 -= 2
            j1 += 2
        else:
            i0 = ci[c0] - 3
            i1 = ci[c0] + 3
            j0 = cj[c0] - 3
            j1 = cj[c0] + 3
        pi0 = i0 - r
        pj0 = j0 - r
        ph = i1 - i0 + 1 + 2 * r
        pw = j1 - j0 + 1 + 2 * r
        p = np.zeros((ph, pw))
        for ii in range(max(-pi0, 0), min(ph, ny - pi0)):
            fi = pi0 + ii
            ib = fi // sbs
            fr = frame[fi]
            rr = rings[fi]
            for jj in range(max(-pj0, 0), min(pw, nx - pj0)):
                fj = pj0 + jj
                rg = rr[fj]
                if rg < 0:
                    continue
                v = fr[fj]
                if v >= lo and v <= hi and np.isfinite(mean[rg]):
                    p[ii, jj] = np.float64(v) - (mean[rg] + resid[ib, jbox[fj]])
        s2c = var[rings[ci[c0], cj[c0]]]
        lg = _neg_log(_despike(p, spike, s2c, gain), g, g2)  # lg[0, 0] is pixel (i0, j0)
        npk = 1
        pk_i[0] = ci[c0]
        pk_j[0] = cj[c0]
        if full:
            # members at a 5 x 5 maximum of -LoG, significant, by decreasing -LoG
            npk = _add_maxima(
                lg, log_snr, log_gsnr, order, memb, a0, a1, ci, cj, i0, j0, gval, var, rings,
                k2, w, gain, log_sep, pk_i, pk_j, npk,
            )  # fmt: skip
        # the first peak: the -LoG maximum within 2 px of its G peak
        bi = pk_i[0]
        bj = pk_j[0]
        bv = lg[bi - i0, bj - j0]
        for t in range(a0, a1):
            c = order[memb[t]]
            if (ci[c] - pk_i[0]) ** 2 + (cj[c] - pk_j[0]) ** 2 <= 4:
                if lg[ci[c] - i0, cj[c] - j0] > bv:
                    bv = lg[ci[c] - i0, cj[c] - j0]
                    bi = ci[c]
                    bj = cj[c]
        n0 = npk
        lr = lg
        if full and peel_snr > 0:
            # peel: subtract each peak's model -LoG (a Gaussian whose width makes -LoG / G at
            # its pixel what is measured) and take the residual's maxima (a weak spot that is
            # only a shoulder on a stronger one's -LoG)
            lr = lg.copy()
            wm = models.shape[1] // 2
            for e in range(n0):
                ei = bi if e == 0 else pk_i[e]
                ej = bj if e == 0 else pk_j[e]
                le = lg[ei - i0, ej - j0]
                ge = _g_at(gval, cand, order, memb, a0, a1, _local(slot, b, bb, ei, ej))
                if le <= 0 or ge <= 0:
                    continue
                rq = le / ge
                km = 0
                for u in range(1, ratios.shape[0]):
                    if abs(ratios[u] - rq) < abs(ratios[km] - rq):
                        km = u
                amp = ge * ratios[km] / models[km, wm, wm]
                for ii in range(max(ei - wm, i0), min(ei + wm + 1, i1 + 1)):
                    for jj in range(max(ej - wm, j0), min(ej + wm + 1, j1 + 1)):
                        lr[ii - i0, jj - j0] -= amp * models[km, ii - ei + wm, jj - ej + wm]
            npk = _add_maxima(
                lr, peel_snr, peel_gsnr, order, memb, a0, a1, ci, cj, i0, j0, gval, var, rings,
                k2, w, gain, log_sep, pk_i, pk_j, npk,
            )  # fmt: skip
        rt = _root(parent, cand[c0])
        roots = np.empty(npk, np.int64)
        roots[0] = rt
        for e in range(1, npk):
            roots[e] = _local(slot, b, bb, pk_i[e], pk_j[e])
            _log_fit(lg if e < n0 else lr, pk_i[e] - i0, pk_j[e] - j0, i0, j0, roots[e], posx, posy)
        _log_fit(lg, bi - i0, bj - j0, i0, j0, rt, posx, posy)
        if npk == 1:
            continue
        for t in range(a0, a1):
            c = order[memb[t]]
            best = 0
            bd = (ci[c] - pk_i[0]) ** 2 + (cj[c] - pk_j[0]) ** 2
            for e in range(1, npk):
                d = (ci[c] - pk_i[e]) ** 2 + (cj[c] - pk_j[e]) ** 2
                if d < bd:
                    bd = d
                    best = e
            parent[cand[c]] = roots[best]
        for e in range(1, npk):
            parent[roots[e]] = roots[e]
            peak[roots[e]] = _g_at(gval, cand, order, memb, a0, a1, roots[e])
    return 0


@numba.njit(**_JIT)
def _add_maxima(
    surf, snr, gsnr, order, memb, a0, a1, ci, cj, i0, j0, gval, var, rings, k2, w, gain, sep,
    pk_i, pk_j, npk,
):  # fmt: skip
    """Add to the peaks ``pk_i``, ``pk_j`` (``npk`` taken) the component's members (``order``
    positions ``memb[a0:a1]``) that are the maximum of ``surf`` (a ``-LoG`` patch starting at
    pixel ``(i0, j0)``) over their 5 x 5 neighbourhood, reach ``snr`` times its background
    noise and whose ``G`` reaches ``gsnr`` times its noise, by decreasing ``surf``, when
    ``sep`` pixels or more from every peak taken; returns the new ``npk``."""
    nq = 0
    qs = np.empty(a1 - a0, np.int64)
    qv = np.empty(a1 - a0)
    for t in range(a0, a1):
        c = order[memb[t]]
        li = ci[c] - i0
        lj = cj[c] - j0
        v = surf[li, lj]
        gg = gval[c]
        s2 = var[rings[ci[c], cj[c]]]
        sig = gain * max(gg, 0.0)
        if v <= 0 or v * v < snr**2 * k2 * (s2 + sig / w):
            continue
        if gg <= 0 or gg * gg < gsnr**2 * (w * s2 + sig):
            continue
        top = True
        for di in range(-2, 3):
            for dj in range(-2, 3):
                if surf[li + di, lj + dj] > v:
                    top = False
        if not top:
            continue
        u = nq  # insertion by decreasing surf, ties keep visiting order
        while u > 0 and qv[u - 1] < v:
            qs[u] = qs[u - 1]
            qv[u] = qv[u - 1]
            u -= 1
        qs[u] = t
        qv[u] = v
        nq += 1
    for u in range(nq):
        c = order[memb[qs[u]]]
        keep = True
        for e in range(npk):
            if (ci[c] - pk_i[e]) ** 2 + (cj[c] - pk_j[e]) ** 2 < sep**2:
                keep = False
        if keep and npk < pk_i.shape[0]:
            pk_i[npk] = ci[c]
            pk_j[npk] = cj[c]
            npk += 1
    return npk


@numba.njit(**_JIT)
def _log_fit(lg, li, lj, pi0, pj0, loc, posx, posy):
    """Position (frame pixels) of the ``-LoG`` maximum at patch pixel (li, lj) by a parabola
    along each axis, stored at ``loc``."""
    x = float(lj + pj0)
    y = float(li + pi0)
    den = lg[li, lj - 1] - 2 * lg[li, lj] + lg[li, lj + 1]
    if den < 0:
        x += min(max(0.5 * (lg[li, lj - 1] - lg[li, lj + 1]) / den, -0.5), 0.5)
    den = lg[li - 1, lj] - 2 * lg[li, lj] + lg[li + 1, lj]
    if den < 0:
        y += min(max(0.5 * (lg[li - 1, lj] - lg[li + 1, lj]) / den, -0.5), 0.5)
    posx[loc] = x
    posy[loc] = y


@numba.njit(**_JIT)
def _g_at(gval, cand, order, memb, a0, a1, loc):
    """G of the member of ``memb[a0:a1]`` at local index ``loc``."""
    for t in range(a0, a1):
        c = order[memb[t]]
        if cand[c] == loc:
            return gval[c]
    return 0.0


PEAK_FIT = True


@numba.njit(**_JIT)
def _peak_fit(gloc, slot, b, i, j, x, y, ny, nx):
    """Sub-pixel position of the maximum of G at pixel (i, j): a parabola through it and its
    two neighbours along each axis (``x``, ``y`` kept where a neighbour is missing). A
    neighbour in a marked block but outside the ``ny`` x ``nx`` frame has G = 0, as in the
    reference (``_footprint`` does not write those rows: their ``gloc`` is stale scratch)."""
    bb = b * b
    nyb = slot.shape[0] * b
    nxb = slot.shape[1] * b
    g0 = gloc[_local(slot, b, bb, i, j)]
    if 0 < j < nxb - 1:
        a = _local(slot, b, bb, i, j - 1)
        c = _local(slot, b, bb, i, j + 1)
        if a >= 0 and c >= 0:
            gc = gloc[c] if j + 1 < nx else 0.0
            den = gloc[a] - 2 * g0 + gc
            if den < 0:
                x = j + min(max(0.5 * (gloc[a] - gc) / den, -0.5), 0.5)
    if 0 < i < nyb - 1:
        a = _local(slot, b, bb, i - 1, j)
        c = _local(slot, b, bb, i + 1, j)
        if a >= 0 and c >= 0:
            gc = gloc[c] if i + 1 < ny else 0.0
            den = gloc[a] - 2 * g0 + gc
            if den < 0:
                y = i + min(max(0.5 * (gloc[a] - gc) / den, -0.5), 0.5)
    return x, y


@numba.njit(**_JIT)
def _measure(
    frame,
    rings,
    mean,
    resid,
    sbs,
    var,
    lo,
    hi,
    cand,
    ci,
    cj,
    gval,
    order,
    nloc,
    gloc,
    slot,
    b,
    parent,
    peak,
    gain,
    min_snr,
    max_single_frac,
    min_pix,
    max_pix,
    out,
    posx,
    posy,
    comp,
    svar,
    fval,
):
    """Measure each component; write the spots into ``out``, return their number. ``posx``,
    ``posy``: position of a component given by its root (:func:`_split`), NaN: not given;
    ``svar``, ``fval``: each footprint pixel's background variance and value
    (:func:`_footprint`)."""
    nc = cand.shape[0]
    # components (``comp``: scratch per root, -1 on entry and on return), counted first so
    # that the per-component sums are as long as the components are many: one per root, a
    # footprint pixel that is its own parent
    m = 0
    for c in range(nc):
        m += parent[cand[c]] == cand[c]
    ncomp = 0
    isum = np.zeros(m)
    vsum = np.zeros(m)
    wsum = np.zeros(m)
    wx = np.zeros(m)
    wy = np.zeros(m)
    npx = np.zeros(m, np.int64)
    vmax = np.full(m, -np.inf)
    nmax = np.full(m, -np.inf)
    imax = np.zeros(m, np.int64)
    jmax = np.zeros(m, np.int64)
    ipk = np.zeros(m, np.int64)
    jpk = np.zeros(m, np.int64)
    rootk = np.zeros(m, np.int64)
    for o in range(nc):
        c = order[o]
        loc = cand[c]
        i = ci[c]
        j = cj[c]
        r = _root(parent, loc)
        if comp[r] < 0:
            comp[r] = ncomp
            ipk[ncomp] = i  # the first pixel visited is the peak
            jpk[ncomp] = j
            rootk[ncomp] = r
            ncomp += 1
        k = comp[r]
        nv = nloc[loc]
        npx[k] += 1
        isum[k] += nv
        vsum[k] += svar[c]
        if nv > 0 and gval[c] >= CORE * peak[r]:
            wsum[k] += nv
            wx[k] += nv * j
            wy[k] += nv * i
        v = fval[c]
        if v > vmax[k]:
            vmax[k] = v
        if nv > nmax[k]:
            nmax[k] = nv
            imax[k] = i
            jmax[k] = j
    for k in range(ncomp):
        comp[rootk[k]] = -1
    found = 0
    for k in range(ncomp):
        if npx[k] < min_pix or npx[k] > max_pix or wsum[k] <= 0:
            continue
        tot = isum[k]
        den = gain * max(tot, 0.0) + vsum[k]
        snr = tot / np.sqrt(den) if den > 0 else 0.0
        if snr < min_snr:
            continue
        g3, _ = _local_sum(frame, rings, mean, resid, sbs, lo, hi, imax[k], jmax[k])
        if g3 > 0 and nmax[k] > max_single_frac * g3:
            continue
        if found < out.shape[0]:
            x = wx[k] / wsum[k]
            y = wy[k] / wsum[k]
            if np.isfinite(posx[rootk[k]]):
                x = posx[rootk[k]]
                y = posy[rootk[k]]
            elif PEAK_FIT:
                x, y = _peak_fit(
                    gloc, slot, b, ipk[k], jpk[k], x, y, frame.shape[0], frame.shape[1]
                )
            out[found, 0] = x
            out[found, 1] = y
            out[found, 2] = tot
            out[found, 3] = npx[k]
            out[found, 4] = snr
            rpk = rings[imax[k], jmax[k]]
            out[found, 5] = mean[rpk] + resid[imax[k] // sbs, jmax[k] // sbs]
            out[found, 6] = vmax[k]
        found += 1
    return found


def find_spots_ref(
    frame,
    rings,
    mean,
    resid,
    sbs,
    var,
    lo,
    hi,
    blocks,
    b,
    h,
    gain,
    floor_snr,
    split_snr,
    split_frac,
    min_sep,
    min_snr,
    max_single_frac,
    min_pix,
    max_pix,
    *,
    log_sigma=0.0,
    log_snr=2.0,
    log_gsnr=5.0,
    log_sep=5.0,
    log_min_core=12,
    log_spike=0.3,
    log_sharp=0.2,
    log_peel_snr=5.0,
    log_peel_gsnr=6.0,
):
    """Reference of :func:`find_spots` on dense arrays (numpy, a dict union-find): ``(n, 7)``."""
    ny, nx = frame.shape
    f = frame.astype(np.float64)
    r = np.maximum(rings, 0)
    yy, xx = np.indices((ny, nx))
    m = mean[r] + resid[yy // sbs, xx // sbs]
    with np.errstate(invalid="ignore"):
        valid = (rings >= 0) & (f >= lo) & (f <= hi) & np.isfinite(m)
    net = np.where(valid, f - np.where(valid, m, 0.0), 0.0)

    def local_sums(h):
        pn = np.pad(net, h)
        pv = np.pad(valid, h)
        g = np.zeros((ny, nx))
        cnt = np.zeros((ny, nx), np.int64)
        for di in range(2 * h + 1):
            for dj in range(2 * h + 1):
                g = np.where(pv[di : di + ny, dj : dj + nx], g + pn[di : di + ny, dj : dj + nx], g)
                cnt += pv[di : di + ny, dj : dj + nx]
        return g, cnt

    def separable_sums(h):  # G as the kernel sums it: rows of 2h + 1 first, then columns
        pn = np.pad(net, h)
        pv = np.pad(valid, h)
        hs = np.zeros((ny + 2 * h, nx))
        hc = np.zeros((ny + 2 * h, nx), np.int64)
        for dj in range(2 * h + 1):
            hs = np.where(pv[:, dj : dj + nx], hs + pn[:, dj : dj + nx], hs)
            hc += pv[:, dj : dj + nx]
        g = np.zeros((ny, nx))
        cnt = np.zeros((ny, nx), np.int64)
        for di in range(2 * h + 1):
            g = g + hs[di : di + ny]
            cnt += hc[di : di + ny]
        return g, cnt

    g, cnt = separable_sums(h)
    g3 = local_sums(1)[0]
    nyb, nxb = blocks.shape[0] * b, blocks.shape[1] * b
    inbp = np.repeat(np.repeat(blocks.astype(bool), b, 0), b, 1)  # whole blocks
    inblk = inbp[:ny, :nx]
    s2 = var[r]
    with np.errstate(invalid="ignore"):
        fp = inblk & valid & (g > 0) & (s2 >= 0) & (g >= floor_snr * np.sqrt(cnt * s2))
    from scipy import ndimage

    label, _ = ndimage.label(fp, structure=np.ones((3, 3), bool))  # raster order of 1st pixel
    ii, jj = np.nonzero(fp)  # raster order
    order = np.lexsort((ii * nx + jj, -g[ii, jj], label[ii, jj]))
    parent: dict[tuple[int, int], tuple[int, int]] = {}
    peak: dict[tuple[int, int], float] = {}

    def root(a):
        while parent[a] != a:
            a = parent[a]
        return a

    for o in order:
        p = (int(ii[o]), int(jj[o]))
        gp = g[p]
        found = []
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                q = (p[0] + di, p[1] + dj)
                if q != p and q in parent:
                    rq = root(q)
                    if rq not in found:
                        found.append(rq)
        if not found:
            parent[p] = p
            peak[p] = gp
            continue
        main = found[0]
        for rq in found[1:]:
            if peak[rq] > peak[main]:
                main = rq
        noise_var = 2.0 * (2 * h + 1) ** 2 * s2[p]
        for rq in found:
            if rq == main:
                continue
            dip = peak[rq] - gp
            noise = np.sqrt(noise_var + gain * (max(peak[rq], 0.0) + max(gp, 0.0)))
            far = (rq[0] - main[0]) ** 2 + (rq[1] - main[1]) ** 2 >= min_sep**2
            if not (far and dip >= split_snr * noise and dip >= split_frac * peak[rq]):
                parent[rq] = main
        parent[p] = main
    comps: dict[tuple[int, int], list] = {}
    for o in order:
        p = (int(ii[o]), int(jj[o]))
        comps.setdefault(root(p), []).append(p)
    pos: dict[tuple[int, int], tuple[float, float]] = {}
    if log_sigma > 0:
        owner = _split_ref(
            comps, net, g, s2, gain, h, log_sigma, log_snr, log_gsnr, log_sep, log_min_core,
            log_spike, peak, pos, log_sharp, log_peel_snr, log_peel_gsnr,
        )  # fmt: skip
        comps = {}
        for o in order:
            p = (int(ii[o]), int(jj[o]))
            comps.setdefault(owner[p], []).append(p)
    rows = []
    for rt, pix in comps.items():
        pi = np.array([q[0] for q in pix])
        pj = np.array([q[1] for q in pix])
        nv = net[pi, pj]
        x = 0.0
        y = 0.0
        ws = 0.0
        for q in range(len(pix)):
            if nv[q] > 0 and g[pi[q], pj[q]] >= CORE * peak[rt]:
                ws += nv[q]
                x += nv[q] * pj[q]
                y += nv[q] * pi[q]
        if not (min_pix <= len(pix) <= max_pix) or ws <= 0:
            continue
        tot = 0.0
        vs = 0.0
        for k in range(len(pix)):
            tot += nv[k]
            vs += s2[pi[k], pj[k]]
        den = gain * max(tot, 0.0) + vs
        snr = tot / np.sqrt(den) if den > 0 else 0.0
        if snr < min_snr:
            continue
        k = int(np.argmax(nv))  # first of the highest, in visit order
        if g3[pi[k], pj[k]] > 0 and nv[k] > max_single_frac * g3[pi[k], pj[k]]:
            continue
        x, y = x / ws, y / ws
        if rt in pos:
            x, y = pos[rt]
        elif PEAK_FIT:  # parabola through G at the peak and its neighbours in marked blocks
            i0, j0 = pix[0]
            gk = np.zeros((nyb, nxb))
            gk[:ny, :nx] = np.where(inblk & valid, g, 0.0)
            if 0 < j0 < nxb - 1 and inbp[i0, j0 - 1] and inbp[i0, j0 + 1]:
                den = gk[i0, j0 - 1] - 2 * gk[i0, j0] + gk[i0, j0 + 1]
                if den < 0:
                    off = 0.5 * (gk[i0, j0 - 1] - gk[i0, j0 + 1]) / den
                    x = j0 + min(max(off, -0.5), 0.5)
            if 0 < i0 < nyb - 1 and inbp[i0 - 1, j0] and inbp[i0 + 1, j0]:
                den = gk[i0 - 1, j0] - 2 * gk[i0, j0] + gk[i0 + 1, j0]
                if den < 0:
                    off = 0.5 * (gk[i0 - 1, j0] - gk[i0 + 1, j0]) / den
                    y = i0 + min(max(off, -0.5), 0.5)
        rows.append((x, y, tot, len(pix), snr, m[pi[k], pj[k]], f[pi, pj].max()))
    return np.array(rows, float).reshape(-1, len(COLUMNS))


def _split_ref(
    comps, net, g, s2, gain, h, sigma, snr, gsnr, sep, min_core, spike, peak, pos, sharp,
    peel_snr, peel_gsnr,
):  # fmt: skip
    """Numpy reference of :func:`_split`: the new root of every footprint pixel; ``peak``
    and ``pos`` (root -> (x, y)) are filled for the new roots and relocated peaks."""
    from scipy import ndimage

    g1, g2, k2 = log_kernel(sigma)
    r = g1.size // 2
    w = (2 * h + 1) ** 2
    owner = {}
    for rt, pix in comps.items():
        for q in pix:
            owner[q] = rt
        pa = np.array(pix)
        gp = g[pa[:, 0], pa[:, 1]]
        if len(pix) < min_core or np.sum(gp >= 0.5 * gp[0]) < min_core:
            continue
        if net[pa[:, 0], pa[:, 1]].max() >= sharp * gp[0]:
            continue
        far = np.sum((pa - pa[0]) ** 2, axis=1) >= sep**2
        s2p = s2[pa[:, 0], pa[:, 1]]
        full = np.any(far & (gp > 0) & (gp * gp >= gsnr**2 * (w * s2p + gain * gp)))
        if full:
            (i0, j0), (i1, j1) = pa.min(axis=0) - 2, pa.max(axis=0) + 2
        else:
            (i0, j0), (i1, j1) = pa[0] - 3, pa[0] + 3
        # the patch: the region and a margin r, zero outside the frame
        p = np.pad(net, r + 4)[i0 + 4 : i1 + 2 * r + 5, j0 + 4 : j1 + 2 * r + 5]
        s9 = ndimage.correlate(p, np.ones((3, 3)), mode="constant")
        m8 = np.maximum((s9 - p) / 8.0, 0.0)
        s2c = s2[pix[0]]
        sp = (p > 0) & (p > spike * s9) & ((p - m8) ** 2 > 25.0 * (s2c + gain * m8))
        p = np.where(sp, m8, p)
        t1 = ndimage.correlate1d(p, g2, axis=1, mode="constant")
        t2 = ndimage.correlate1d(p, g1, axis=1, mode="constant")
        lg = -(
            ndimage.correlate1d(t1, g1, axis=0, mode="constant")
            + ndimage.correlate1d(t2, g2, axis=0, mode="constant")
        )[r:-r, r:-r]
        peaks = [pix[0]]
        if full:
            top = lg >= ndimage.maximum_filter(lg, 5, mode="constant", cval=-np.inf)
            cand, vals = [], []
            for q in pix:
                v, gg, n2 = lg[q[0] - i0, q[1] - j0], g[q], s2[q]
                sig = gain * max(gg, 0.0)
                if v <= 0 or v * v < snr**2 * k2 * (n2 + sig / w) or gg <= 0:
                    continue
                if gg * gg < gsnr**2 * (w * n2 + sig) or not top[q[0] - i0, q[1] - j0]:
                    continue
                cand.append(q)
                vals.append(v)
            for k in np.argsort(-np.array(vals), kind="stable"):
                q = cand[k]
                if len(peaks) < 8 and all(
                    (q[0] - a) ** 2 + (q[1] - b) ** 2 >= sep**2 for a, b in peaks
                ):
                    peaks.append(q)
        best = pix[0]
        for q in pix:
            near = (q[0] - pix[0][0]) ** 2 + (q[1] - pix[0][1]) ** 2 <= 4
            if near and lg[q[0] - i0, q[1] - j0] > lg[best[0] - i0, best[1] - j0]:
                best = q
        pos[rt] = _fit_ref(lg, i0, j0, best)
        for q in peaks[1:]:
            pos[q] = _fit_ref(lg, i0, j0, q)
            peak[q] = g[q]
        if full and peel_snr > 0:
            models, ratios = peel_models(sigma)
            wm = models.shape[1] // 2
            lr = lg.copy()
            for e, q in enumerate(peaks):
                c = best if e == 0 else q
                le, ge = lg[c[0] - i0, c[1] - j0], g[c]
                if le <= 0 or ge <= 0:
                    continue
                km = int(np.argmin(np.abs(ratios - le / ge)))
                amp = ge * ratios[km] / models[km, wm, wm]
                a0, a1 = max(c[0] - wm, i0), min(c[0] + wm, i1)
                b0, b1 = max(c[1] - wm, j0), min(c[1] + wm, j1)
                mod = models[
                    km, a0 - c[0] + wm : a1 - c[0] + wm + 1, b0 - c[1] + wm : b1 - c[1] + wm + 1
                ]
                lr[a0 - i0 : a1 - i0 + 1, b0 - j0 : b1 - j0 + 1] -= amp * mod
            top = lr >= ndimage.maximum_filter(lr, 5, mode="constant", cval=-np.inf)
            cand, vals = [], []
            for q in pix:
                v, gg, n2 = lr[q[0] - i0, q[1] - j0], g[q], s2[q]
                sig = gain * max(gg, 0.0)
                if v <= 0 or v * v < peel_snr**2 * k2 * (n2 + sig / w) or gg <= 0:
                    continue
                if gg * gg < peel_gsnr**2 * (w * n2 + sig) or not top[q[0] - i0, q[1] - j0]:
                    continue
                cand.append(q)
                vals.append(v)
            for k in np.argsort(-np.array(vals), kind="stable"):
                q = cand[k]
                if len(peaks) < 8 and all(
                    (q[0] - a) ** 2 + (q[1] - b) ** 2 >= sep**2 for a, b in peaks
                ):
                    peaks.append(q)
                    pos[q] = _fit_ref(lr, i0, j0, q)
                    peak[q] = g[q]
        roots = [rt, *peaks[1:]]
        for q in pix:
            d = [(q[0] - a) ** 2 + (q[1] - b) ** 2 for a, b in peaks]
            owner[q] = roots[int(np.argmin(d))]
    return owner


def _fit_ref(lg, i0, j0, q):
    """Parabola through the ``-LoG`` patch ``lg`` (origin ``i0, j0``) at pixel ``q``."""
    li, lj = q[0] - i0, q[1] - j0
    x, y = float(q[1]), float(q[0])
    den = lg[li, lj - 1] - 2 * lg[li, lj] + lg[li, lj + 1]
    if den < 0:
        x += min(max(0.5 * (lg[li, lj - 1] - lg[li, lj + 1]) / den, -0.5), 0.5)
    den = lg[li - 1, lj] - 2 * lg[li, lj] + lg[li + 1, lj]
    if den < 0:
        y += min(max(0.5 * (lg[li - 1, lj] - lg[li + 1, lj]) / den, -0.5), 0.5)
    return x, y
