"""Peak search after the ring statistics (numba), beside a numpy/scipy reference.

Given per-ring thresholds, the pixels above them are grouped into 8-connected components.
Each component gets a *local* background (mean and variance of the pixels in a box around it that
are neither near it nor above their ring threshold, as peakfinder8 does), an integration region
(its bounding box grown by one pixel), a background-subtracted intensity, a centroid and an
integrated SNR ``I / sqrt(g I + n * var_bg)`` (g: ADU per photon) — the same form as the simulator's truth SNR, so
a threshold on it means the same thing. A component is a peak when its pixel count is within
limits, its integrated SNR reaches ``min_snr`` and it is not a lone pixel holding almost all of
its intensity (a hot pixel: a real spot always spreads over its neighbours).

Candidates come in raster order (flat indices, ascending), so neighbours are found by a pointer
that walks the row above: nothing of the frame's size is allocated per call. Written by hand (scipy.ndimage.label
allocates full-frame label arrays and cannot fuse the per-peak statistics).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_JIT = dict(cache=True, nogil=True)
#: components ahead whose pixels :func:`find_peaks` prefetches
_AHEAD = 4


@intrinsic
def _prefetch(typingctx, arr, i, j):
    """Hint the CPU to fetch ``arr[i, j]``'s cache line (no bounds check: any address is
    allowed, nothing is read). The frames are read pixel by pixel around scattered spots: left
    to the CPU, each row of a spot's box waits for its cache line in turn."""
    if not (
        isinstance(arr, types.Array)
        and arr.ndim == 2
        and isinstance(i, types.Integer)
        and isinstance(j, types.Integer)
    ):
        return None

    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = [
            context.cast(builder, a, t, types.intp)
            for a, t in zip(args[1:], sig.args[1:], strict=True)
        ]
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx, wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
        # read access, keep in all cache levels, data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.none(arr, i, j), codegen


@numba.njit(inline="always", **_JIT)
def _prefetch_box(frame, rings, i0, i1, j0, j1):
    """Prefetch the rows ``i0..i1``, columns ``j0..j1`` (clipped) of ``frame`` and ``rings``."""
    ny, nx = frame.shape
    i0 = max(i0, 0)
    i1 = min(i1, ny - 1)
    j0 = max(j0, 0)
    j1 = min(j1, nx - 1)
    for i in range(i0, i1 + 1):
        for j in range(j0, j1 + 1, 16):
            _prefetch(frame, i, j)
            _prefetch(rings, i, j)
        _prefetch(frame, i, j1)
        _prefetch(rings, i, j1)


#: columns of the peak table produced by :func:`find_peaks`
COLUMNS = ("x", "y", "intensity", "npix", "snr", "background", "max")


@numba.njit(**_JIT)
def _find(parent, a):
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


@numba.njit(inline="always", **_JIT)
def _union(parent, a, b):
    ra = _find(parent, a)
    rb = _find(parent, b)
    if ra != rb:
        parent[max(ra, rb)] = min(ra, rb)


@numba.njit(**_JIT)
def pixels_above(frame, rings, thr, lo, hi):
    """Flat indices (ascending) of valid pixels above their ring's threshold (full scan)."""
    ny, nx = frame.shape
    n = 0
    for _ in range(2):
        out = np.empty(n, np.int64)
        n = 0
        for i in range(ny):
            for j in range(nx):
                r = rings[i, j]
                if r < 0:
                    continue
                v = frame[i, j]
                if v >= lo and v <= hi and v > thr[r]:
                    if n < out.shape[0]:
                        out[n] = i * nx + j
                    n += 1
    return out


@numba.njit(**_JIT)
def find_peaks(
    frame,
    rings,
    thr,
    rmean,
    rsigma,
    lo,
    hi,
    cand,
    min_pix,
    max_pix,
    bg_radius,
    min_snr,
    max_single_frac,
    gain,
    read_var,
    out,
):
    """Peaks among candidate pixels ``cand``; rows of ``out`` get :data:`COLUMNS`.

    ``gain`` (ADU per photon) and ``read_var`` (read-noise variance, ADU**2) make the noise
    model: the spot's own Poisson variance is ``gain * I`` (I in ADU), the background variance
    is measured around it but never below ``read_var``.

    Returns the number of peaks found (rows beyond ``out``'s length are counted, not stored).
    """
    ny, nx = frame.shape
    # pixels above their ring's threshold
    above = np.empty(cand.shape[0], np.int64)
    # their rows, columns and values (no divisions, no second read of the frame later)
    ai = np.empty(cand.shape[0], np.int64)
    aj = np.empty(cand.shape[0], np.int64)
    av = np.empty(cand.shape[0])
    na = 0
    i = 0
    for c in range(cand.shape[0]):
        if c + 16 < cand.shape[0]:  # candidates are sparse: a cache line each
            # (row 0, column q: pixel q of a C-contiguous frame; elsewhere only a wasted hint)
            q = cand[c + 16]
            _prefetch(frame, 0, q)
            _prefetch(rings, 0, q)
        p = cand[c]
        if p < i * nx or p >= (i + 2) * nx:  # the row: by division unless the next one
            i = p // nx
        elif p >= (i + 1) * nx:
            i += 1
        j = p - i * nx
        r = rings[i, j]
        if r < 0:
            continue
        v = frame[i, j]
        if v >= lo and v <= hi and v > thr[r]:
            above[na] = p
            ai[na] = i
            aj[na] = j
            av[na] = np.float64(v)
            na += 1
    above = above[:na]
    parent = np.arange(na)
    # 8-connected neighbours before a pixel: its left one (the previous candidate, if
    # adjacent) and up to three in the row above, found by a pointer that only moves forward
    # (candidates are in raster order); a set's root is its first pixel, whatever the order
    # of the unions
    up = 0
    for a in range(na):
        p = above[a]
        i = ai[a]
        j = aj[a]
        if j > 0 and a > 0 and above[a - 1] == p - 1:
            _union(parent, a, a - 1)
        if i == 0:
            continue
        while up < a and above[up] < p - nx - 1:
            up += 1
        b = up
        while b < a and above[b] <= p - nx + 1:
            jj = above[b] - (i - 1) * nx
            if jj >= j - 1 and jj <= j + 1 and jj < nx:
                _union(parent, a, b)
            b += 1
    # components: pixel count, bounding box, brightest pixel
    comp = np.full(na, -1, np.int64)
    nc = 0
    npix = np.zeros(na, np.int64)
    box = np.empty((na, 4), np.int64)
    vmax = np.full(na, -np.inf)
    pmax = np.zeros(na, np.int64)
    for a in range(na):
        root = _find(parent, a)
        if comp[root] < 0:
            comp[root] = nc
            box[nc, 0] = ny
            box[nc, 1] = -1
            box[nc, 2] = nx
            box[nc, 3] = -1
            nc += 1
        k = comp[root]
        p = above[a]
        i = ai[a]
        j = aj[a]
        npix[k] += 1
        box[k, 0] = min(box[k, 0], i)
        box[k, 1] = max(box[k, 1], i)
        box[k, 2] = min(box[k, 2], j)
        box[k, 3] = max(box[k, 3], j)
        v = av[a]
        if v > vmax[k]:
            vmax[k] = v
            pmax[k] = p
    found = 0
    # the pixels of the first components' boxes, then _AHEAD components ahead: the CPU
    # fetches them while it works on the current one
    pr = max(bg_radius, 2)
    for k in range(min(_AHEAD, nc)):
        _prefetch_box(frame, rings, box[k, 0] - pr, box[k, 1] + pr, box[k, 2] - pr, box[k, 3] + pr)
    for k in range(nc):
        ka = k + _AHEAD
        if ka < nc and min_pix <= npix[ka] <= max_pix:
            _prefetch_box(
                frame, rings, box[ka, 0] - pr, box[ka, 1] + pr, box[ka, 2] - pr, box[ka, 3] + pr
            )
        if npix[k] < min_pix or npix[k] > max_pix:
            continue
        i0, i1, j0, j1 = box[k, 0], box[k, 1], box[k, 2], box[k, 3]
        # local background: box grown by bg_radius, minus the box grown by 2
        nb = 0
        sb = 0.0
        sb2 = 0.0
        for i in range(max(i0 - bg_radius, 0), min(i1 + bg_radius + 1, ny)):
            for j in range(max(j0 - bg_radius, 0), min(j1 + bg_radius + 1, nx)):
                if i0 - 2 <= i <= i1 + 2 and j0 - 2 <= j <= j1 + 2:
                    continue
                r = rings[i, j]
                if r < 0:
                    continue
                v = frame[i, j]
                if v >= lo and v <= hi and v <= thr[r]:
                    fv = np.float64(v)
                    nb += 1
                    sb += fv
                    sb2 += fv * fv
        if nb >= 8:
            bg = sb / nb
            var = max((sb2 - nb * bg * bg) / (nb - 1), 0.0)
        else:
            pm = pmax[k]
            r = rings[pm // nx, pm % nx]
            bg = rmean[r]
            var = rsigma[r] ** 2
        var = max(var, read_var)
        # integration region: box grown by one pixel
        ni = 0
        tot = 0.0
        wsum = 0.0
        wx = 0.0
        wy = 0.0
        for i in range(max(i0 - 1, 0), min(i1 + 2, ny)):
            for j in range(max(j0 - 1, 0), min(j1 + 2, nx)):
                if rings[i, j] < 0:
                    continue
                v = frame[i, j]
                if not (v >= lo and v <= hi):
                    continue
                net = np.float64(v) - bg
                ni += 1
                tot += net
                if net > 0:
                    wsum += net
                    wx += net * j
                    wy += net * i
        den = gain * max(tot, 0.0) + ni * var
        snr = tot / np.sqrt(den) if den > 0 else 0.0
        if snr < min_snr or wsum <= 0:
            continue
        if npix[k] == 1 and (vmax[k] - bg) > max_single_frac * tot:
            continue
        if found < out.shape[0]:
            out[found, 0] = wx / wsum
            out[found, 1] = wy / wsum
            out[found, 2] = tot
            out[found, 3] = npix[k]
            out[found, 4] = snr
            out[found, 5] = bg
            out[found, 6] = vmax[k]
        found += 1
    return found


def find_peaks_ref(
    frame,
    rings,
    thr,
    rmean,
    rsigma,
    lo,
    hi,
    min_pix,
    max_pix,
    bg_radius,
    min_snr,
    max_single_frac,
    gain=1.0,
    read_var=0.0,
):
    """Reference of :func:`find_peaks` with numpy and ``scipy.ndimage.label``; ``(n, 7)`` rows.

    Rows follow scipy's label order (raster order of each component's first pixel), which is
    the kernel's order too.
    """
    from scipy import ndimage

    f = frame.astype(np.float64)
    valid = (rings >= 0) & (f >= lo) & (f <= hi)
    t = np.where(rings >= 0, thr[np.maximum(rings, 0)], np.inf)
    above = valid & (f > t)
    labels, n = ndimage.label(above, structure=np.ones((3, 3), bool))
    rows = []
    ny, nx = f.shape
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        comp = labels[sl] == k
        npix = int(comp.sum())
        if npix < min_pix or npix > max_pix:
            continue
        i0, i1, j0, j1 = sl[0].start, sl[0].stop - 1, sl[1].start, sl[1].stop - 1
        vals = np.where(comp, f[sl], -np.inf)
        vmax = vals.max()
        im, jm = np.unravel_index(np.argmax(vals), vals.shape)
        outer = (
            slice(max(i0 - bg_radius, 0), min(i1 + bg_radius + 1, ny)),
            slice(max(j0 - bg_radius, 0), min(j1 + bg_radius + 1, nx)),
        )
        use = valid[outer] & ~above[outer]
        ii, jj = np.mgrid[outer]
        near = (ii >= i0 - 2) & (ii <= i1 + 2) & (jj >= j0 - 2) & (jj <= j1 + 2)
        b = f[outer][use & ~near]
        if b.size >= 8:
            bg, var = b.mean(), max(b.var(ddof=1), 0.0)
        else:
            r = rings[i0 + im, j0 + jm]
            bg, var = rmean[r], rsigma[r] ** 2
        var = max(var, read_var)
        inner = (slice(max(i0 - 1, 0), min(i1 + 2, ny)), slice(max(j0 - 1, 0), min(j1 + 2, nx)))
        ok = valid[inner]
        net = np.where(ok, f[inner] - bg, 0.0)
        tot = net.sum()
        den = gain * max(tot, 0.0) + ok.sum() * var
        snr = tot / np.sqrt(den) if den > 0 else 0.0
        w = np.where(net > 0, net, 0.0)
        if snr < min_snr or w.sum() <= 0:
            continue
        if npix == 1 and (vmax - bg) > max_single_frac * tot:
            continue
        ii, jj = np.mgrid[inner]
        rows.append(((w * jj).sum() / w.sum(), (w * ii).sum() / w.sum(), tot, npix, snr, bg, vmax))
    return np.array(rows, float).reshape(-1, len(COLUMNS))


def merge_close_peaks(peaks: np.ndarray, radius: float) -> np.ndarray:
    """One row per spot: peaks whose centroids lie within ``radius`` pixels (transitively) are
    one spot that a pixel below threshold split into two 8-connected components.

    The merged row keeps the strongest member's background and SNR, the largest intensity and
    maximum (the members' integration regions overlap, so their sum would count pixels twice),
    the sum of the pixels above threshold, and the intensity-weighted centroid. Rows keep the
    order of each group's first member. Numba (:func:`_merge`); :func:`merge_close_peaks_ref`
    is the numpy/scipy reference, whose sums this takes in numpy's order.
    """
    if radius <= 0 or len(peaks) < 2:
        return peaks
    return _merge(np.ascontiguousarray(peaks, np.float64), float(radius))


@numba.njit(**_JIT)
def _np_sum(a):
    """``np.sum`` of a 1-D float64 array, in numpy's order (pairwise, 8 partial sums)."""
    n = a.shape[0]
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[i]
        return res
    if n <= 128:
        r = a[:8].copy()
        i = 8
        while i < n - (n % 8):
            for k in range(8):
                r[k] += a[i + k]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            res += a[i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _np_sum(a[:n2]) + _np_sum(a[n2:])


@numba.njit(**_JIT)
def _merge(peaks, radius):
    n = peaks.shape[0]
    x = peaks[:, 0]
    y = peaks[:, 1]
    parent = np.arange(n)
    r2 = radius * radius
    reach = radius * (1.0 + 1e-9) + 1e-12  # a safe bound for the sweep; the test is d2 <= r2
    order = np.argsort(x, kind="mergesort")
    for a in range(n):
        i = order[a]
        for b in range(a + 1, n):
            j = order[b]
            if x[j] - x[i] > reach:
                break
            dx = x[i] - x[j]
            dy = y[i] - y[j]
            if dx * dx + dy * dy <= r2:
                _union(parent, i, j)
    # members of each group in index order; a group's root is its first member
    root = np.empty(n, np.int64)
    size = np.zeros(n, np.int64)
    for i in range(n):
        root[i] = _find(parent, i)
        size[root[i]] += 1
    start = np.zeros(n + 1, np.int64)
    for i in range(n):
        start[i + 1] = start[i] + size[i]
    fill = start[:n].copy()
    members = np.empty(n, np.int64)
    for i in range(n):
        members[fill[root[i]]] = i
        fill[root[i]] += 1
    n_out = 0
    for i in range(n):
        n_out += root[i] == i
    out = np.empty((n_out, peaks.shape[1]))
    g = 0
    for i in range(n):
        if root[i] != i:
            continue
        m = members[start[i] : start[i + 1]]
        if m.size == 1:
            out[g] = peaks[i]
            g += 1
            continue
        best = m[0]
        for q in m:
            if peaks[q, 4] > peaks[best, 4]:
                best = q
        out[g] = peaks[best]
        w = np.empty(m.size)
        wx = np.empty(m.size)
        wy = np.empty(m.size)
        npx = np.empty(m.size)
        top = -np.inf
        vmax = -np.inf
        for k in range(m.size):
            row = peaks[m[k]]
            w[k] = max(row[2], 0.0) + 1e-12
            wx[k] = w[k] * row[0]
            wy[k] = w[k] * row[1]
            npx[k] = row[3]
            top = max(top, row[2])
            vmax = max(vmax, row[6])
        ws = _np_sum(w)
        out[g, 0] = _np_sum(wx) / ws
        out[g, 1] = _np_sum(wy) / ws
        out[g, 2] = top
        out[g, 3] = _np_sum(npx)
        out[g, 6] = vmax
        g += 1
    return out


def merge_close_peaks_ref(peaks: np.ndarray, radius: float) -> np.ndarray:
    """Numpy/scipy reference of :func:`merge_close_peaks`.

    One row per spot: peaks whose centroids lie within ``radius`` pixels (transitively) are
    one spot that a pixel below threshold split into two 8-connected components.

    The merged row keeps the strongest member's background and SNR, the largest intensity and
    maximum (the members' integration regions overlap, so their sum would count pixels twice),
    the sum of the pixels above threshold, and the intensity-weighted centroid. Rows keep the
    order of each group's first member. Pairs come from scipy's k-d tree.
    """
    if radius <= 0 or len(peaks) < 2:
        return peaks
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    pairs = cKDTree(peaks[:, :2]).query_pairs(radius, output_type="ndarray")
    if not len(pairs):
        return peaks
    import scipy.sparse as sp

    n = len(peaks)
    graph = sp.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    n_groups, label = connected_components(graph, directed=False)
    first = np.full(n_groups, n, np.int64)
    np.minimum.at(first, label, np.arange(n))
    out = peaks[first].copy()
    for g in np.flatnonzero(np.bincount(label, minlength=n_groups) > 1):
        rows = peaks[label == g]
        w = np.maximum(rows[:, 2], 0.0) + 1e-12
        best = rows[np.argmax(rows[:, 4])]
        out[g] = best
        out[g, 0] = np.sum(w * rows[:, 0]) / w.sum()
        out[g, 1] = np.sum(w * rows[:, 1]) / w.sum()
        out[g, 2] = rows[:, 2].max()
        out[g, 3] = rows[:, 3].sum()
        out[g, 6] = rows[:, 6].max()
    return out[np.argsort(first, kind="stable")]
