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
):
    """Spots in the pixels of the marked ``blocks`` (``b x b`` pixels each); rows of ``out``
    get :data:`COLUMNS`, in order of their peak's ``G``. Returns the number of spots (rows
    beyond ``out``'s length are counted, not stored).

    ``mean``, ``var``: background and its variance per pixel of each ring (ADU, ADU**2; the
    caller floors ``var`` at the read noise). Footprint pixels are visited connected
    region by connected region (regions in raster order of their first pixel), so that the
    growth reads memory that is close by.
    """
    slot, cand, ci, cj, gval, nloc, gloc = _footprint(
        frame, rings, mean, resid, sbs, var, lo, hi, blocks, b, h, floor_snr
    )
    order = _region_order(cand, ci, cj, gval, slot, b, rings.shape[0], rings.shape[1])
    parent, peak = _grow(
        cand, ci, cj, gval, order, slot, rings, var, b, h, gain, split_snr, split_frac, min_sep
    )
    return _measure(
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
    )


@numba.njit(**_JIT)
def _footprint(frame, rings, mean, resid, sbs, var, lo, hi, blocks, b, h, floor_snr):
    """Slots of the marked blocks; the footprint pixels in raster order (local index, row,
    column, G) and N of every pixel of the marked blocks."""
    ny, nx = frame.shape
    nby, nbx = blocks.shape
    # slot of each marked block; pixels are numbered slot * b * b + (i % b) * b + (j % b)
    slot = np.full((nby, nbx), -1, np.int64)
    ns = 0
    for bi in range(nby):
        for bj in range(nbx):
            if blocks[bi, bj]:
                slot[bi, bj] = ns
                ns += 1
    bb = b * b
    # N and G of every pixel of the marked blocks. Per row of blocks, N is computed once per
    # column needed (the blocks and their halo of h pixels) for the b + 2h rows involved.
    nloc = np.zeros(ns * bb)
    gloc = np.zeros(ns * bb)
    infp = np.zeros(ns * bb, np.bool_)
    w = b + 2 * h
    ncol = nbx * b + 2 * h
    strip = np.zeros((w, ncol))  # column jj of the frame at jj + h
    sok = np.zeros((w, ncol), np.bool_)
    stamp = np.full(ncol, -1, np.int64)
    row_blocks = np.empty(nbx, np.int64)
    nfp = 0
    for bi in range(nby):
        nrb = 0
        for bj in range(nbx):
            if blocks[bi, bj]:
                row_blocks[nrb] = bj
                nrb += 1
        if nrb == 0:
            continue
        i0 = bi * b - h
        for t in range(nrb):
            bj = row_blocks[t]
            for c in range(bj * b, bj * b + b + 2 * h):  # strip columns (frame column c - h)
                if stamp[c] == bi:
                    continue
                stamp[c] = bi
                jj = c - h
                for di in range(w):
                    ii = i0 + di
                    if 0 <= ii < ny and 0 <= jj < nx:
                        strip[di, c], sok[di, c] = _net(
                            frame, rings, mean, resid, sbs, lo, hi, ii, jj
                        )
                    else:
                        strip[di, c] = 0.0
                        sok[di, c] = False
        for t in range(nrb):
            bj = row_blocks[t]
            s = slot[bi, bj]
            for di in range(h, b + h):
                for dj in range(h, b + h):
                    c = bj * b + dj  # strip column of this pixel
                    if not sok[di, c]:
                        continue
                    g = 0.0
                    n = 0
                    for ki in range(di - h, di + h + 1):
                        for kc in range(c - h, c + h + 1):
                            if sok[ki, kc]:
                                g += strip[ki, kc]
                                n += 1
                    s2 = var[rings[i0 + di, c - h]]
                    loc = s * bb + (di - h) * b + (dj - h)
                    nloc[loc] = strip[di, c]
                    gloc[loc] = g
                    if g > 0 and s2 >= 0 and g >= floor_snr * np.sqrt(n * s2):
                        infp[loc] = True
                        nfp += 1
    # footprint pixels in raster order
    cand = np.empty(nfp, np.int64)  # local index
    ci = np.empty(nfp, np.int64)
    cj = np.empty(nfp, np.int64)
    gval = np.empty(nfp)
    nc = 0
    row_blocks = np.empty(nbx, np.int64)
    for bi in range(nby):
        nrb = 0
        for bj in range(nbx):
            if blocks[bi, bj]:
                row_blocks[nrb] = bj
                nrb += 1
        for i in range(bi * b, min(bi * b + b, ny)):
            for t in range(nrb):
                bj = row_blocks[t]
                base = slot[bi, bj] * bb + (i - bi * b) * b
                for j in range(bj * b, min(bj * b + b, nx)):
                    loc = base + j - bj * b
                    if infp[loc]:
                        cand[nc] = loc
                        ci[nc] = i
                        cj[nc] = j
                        gval[nc] = gloc[loc]
                        nc += 1
    return slot, cand, ci, cj, gval, nloc, gloc


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
def _region_order(cand, ci, cj, gval, slot, b, ny, nx):
    """Visiting order of the footprint pixels: by 8-connected region (raster order of each
    region's first pixel), then by decreasing G, ties in raster order."""
    nc = cand.shape[0]
    bb = b * b
    ns = int(slot.max()) + 1 if slot.size else 0
    cidx = np.full(ns * bb, -1, np.int64)
    for c in range(nc):
        cidx[cand[c]] = c
    par = np.arange(nc)
    for c in range(nc):  # raster order: look back at the row above and the left neighbour
        i = ci[c]
        j = cj[c]
        for di, dj in ((-1, -1), (-1, 0), (-1, 1), (0, -1)):
            ii = i + di
            jj = j + dj
            if ii < 0 or jj < 0 or jj >= nx:
                continue
            q = _local(slot, b, bb, ii, jj)
            if q < 0 or cidx[q] < 0:
                continue
            ra = _root(par, c)
            rb = _root(par, cidx[q])
            if ra != rb:
                par[max(ra, rb)] = min(ra, rb)
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
    for c in range(nc):
        start[reg[c] + 1] += 1
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
    return order


@numba.njit(**_JIT)
def _grow(cand, ci, cj, gval, order, slot, rings, var, b, h, gain, split_snr, split_frac, min_sep):
    """Union-find growth of the footprint from the highest G down: ``(parent, peak)``."""
    ny, nx = rings.shape
    bb = b * b
    nc = cand.shape[0]
    ns = int(slot.max()) + 1 if slot.size else 0
    parent = np.full(ns * bb, -1, np.int64)
    peak = np.zeros(ns * bb)  # G at the peak of each root
    pki = np.zeros(ns * bb, np.int64)  # the peak pixel of each root
    pkj = np.zeros(ns * bb, np.int64)
    roots = np.empty(8, np.int64)
    for o in range(nc):
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
        s2 = var[rings[i, j]]
        for t in range(nr):
            r = roots[t]
            if r == main:
                continue
            dip = peak[r] - g
            noise = np.sqrt(2.0 * (2 * h + 1) ** 2 * s2 + gain * (max(peak[r], 0.0) + max(g, 0.0)))
            far = (pki[r] - pki[main]) ** 2 + (pkj[r] - pkj[main]) ** 2 >= min_sep**2
            if far and dip >= split_snr * noise and dip >= split_frac * peak[r]:
                continue  # a spot of its own: its saddle is here
            parent[r] = main
        parent[loc] = main
    return parent, peak


PEAK_FIT = True


@numba.njit(**_JIT)
def _peak_fit(gloc, slot, b, i, j, x, y):
    """Sub-pixel position of the maximum of G at pixel (i, j): a parabola through it and its
    two neighbours along each axis (``x``, ``y`` kept where a neighbour is missing)."""
    bb = b * b
    ny = slot.shape[0] * b
    nx = slot.shape[1] * b
    g0 = gloc[_local(slot, b, bb, i, j)]
    if 0 < j < nx - 1:
        a = _local(slot, b, bb, i, j - 1)
        c = _local(slot, b, bb, i, j + 1)
        if a >= 0 and c >= 0:
            den = gloc[a] - 2 * g0 + gloc[c]
            if den < 0:
                x = j + min(max(0.5 * (gloc[a] - gloc[c]) / den, -0.5), 0.5)
    if 0 < i < ny - 1:
        a = _local(slot, b, bb, i - 1, j)
        c = _local(slot, b, bb, i + 1, j)
        if a >= 0 and c >= 0:
            den = gloc[a] - 2 * g0 + gloc[c]
            if den < 0:
                y = i + min(max(0.5 * (gloc[a] - gloc[c]) / den, -0.5), 0.5)
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
):
    """Measure each component; write the spots into ``out``, return their number."""
    nc = cand.shape[0]
    ns_bb = parent.shape[0]
    # measure each component
    comp = np.full(ns_bb, -1, np.int64)
    ncomp = 0
    isum = np.zeros(nc)
    vsum = np.zeros(nc)
    wsum = np.zeros(nc)
    wx = np.zeros(nc)
    wy = np.zeros(nc)
    npx = np.zeros(nc, np.int64)
    vmax = np.full(nc, -np.inf)
    nmax = np.full(nc, -np.inf)
    imax = np.zeros(nc, np.int64)
    jmax = np.zeros(nc, np.int64)
    ipk = np.zeros(nc, np.int64)
    jpk = np.zeros(nc, np.int64)
    rpk = np.zeros(nc, np.int64)
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
            ncomp += 1
        k = comp[r]
        nv = nloc[loc]
        rr = rings[i, j]
        npx[k] += 1
        isum[k] += nv
        vsum[k] += var[rr]
        if nv > 0 and gval[c] >= CORE * peak[r]:
            wsum[k] += nv
            wx[k] += nv * j
            wy[k] += nv * i
        v = np.float64(frame[i, j])
        if v > vmax[k]:
            vmax[k] = v
        if nv > nmax[k]:
            nmax[k] = nv
            imax[k] = i
            jmax[k] = j
            rpk[k] = rr
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
            if PEAK_FIT:
                x, y = _peak_fit(gloc, slot, b, ipk[k], jpk[k], x, y)
            out[found, 0] = x
            out[found, 1] = y
            out[found, 2] = tot
            out[found, 3] = npx[k]
            out[found, 4] = snr
            out[found, 5] = mean[rpk[k]] + resid[imax[k] // sbs, jmax[k] // sbs]
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

    g, cnt = local_sums(h)
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
        if PEAK_FIT:  # parabola through G at the peak and its neighbours in marked blocks
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
