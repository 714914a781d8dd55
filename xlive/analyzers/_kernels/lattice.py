"""The multiple-lattice score's search for one lattice, in numba.

:func:`find_lattice` is :func:`xlive.analyzers.lattice.find_lattice` (the numpy reference, whose
docstring describes the method) step by step: the same basis candidates from the same
difference-vector clusters, the same trial bases in the same order, the same staged
least-squares refinement and pruning, the same choice of the best basis. Only the arithmetic of
the small linear algebra differs (3 x 3 inverses, determinants and solves written out instead
of LAPACK's, sums in another order), by rounding in the last bits, so a decision can differ
only for a value within rounding of a threshold (a spot's index exactly ``tol`` off an integer).
The numpy version spends its time on the overhead of hundreds of calls on tiny arrays; here one
call does the whole search. Written by hand: no library indexes this way (see the reference).
"""

from __future__ import annotations

import numba
import numpy as np

_JIT = dict(cache=True, nogil=True)


@numba.njit(inline="always", **_JIT)
def _det3(m):
    return (
        m[0, 0] * (m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1])
        - m[0, 1] * (m[1, 0] * m[2, 2] - m[1, 2] * m[2, 0])
        + m[0, 2] * (m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0])
    )


@numba.njit(**_JIT)
def _inv3(m, out):
    """``out`` = inverse of the 3 x 3 ``m`` (adjugate over determinant)."""
    det = _det3(m)
    out[0, 0] = (m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1]) / det
    out[0, 1] = (m[0, 2] * m[2, 1] - m[0, 1] * m[2, 2]) / det
    out[0, 2] = (m[0, 1] * m[1, 2] - m[0, 2] * m[1, 1]) / det
    out[1, 0] = (m[1, 2] * m[2, 0] - m[1, 0] * m[2, 2]) / det
    out[1, 1] = (m[0, 0] * m[2, 2] - m[0, 2] * m[2, 0]) / det
    out[1, 2] = (m[0, 2] * m[1, 0] - m[0, 0] * m[1, 2]) / det
    out[2, 0] = (m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0]) / det
    out[2, 1] = (m[0, 1] * m[2, 0] - m[0, 0] * m[2, 1]) / det
    out[2, 2] = (m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]) / det


@numba.njit(**_JIT)
def _count_indexed(r, inv, tol):
    """Spots (rows of ``r``, all of them) whose indices ``inv @ r`` are within ``tol`` of
    integers."""
    n_ok = 0
    for s in range(r.shape[0]):
        ok = True
        for c in range(3):
            h = inv[c, 0] * r[s, 0] + inv[c, 1] * r[s, 1] + inv[c, 2] * r[s, 2]
            if not abs(h - np.rint(h)) <= tol:
                ok = False
                break
        n_ok += ok
    return n_ok


@numba.njit(**_JIT)
def _refine(r, m, bases, tol, n_ok):
    """One least-squares round of every basis (``bases[t]``: columns are the vectors) over the
    first ``m`` spots of ``r``; ``n_ok[t]``: the spots basis ``t`` indexed before the round."""
    inv = np.empty((3, 3))
    a = np.empty((3, 3))
    c = np.empty((3, 3))
    h = np.empty(3)
    for t in range(bases.shape[0]):
        _inv3(bases[t], inv)
        a[:] = 0.0
        c[:] = 0.0
        cnt = 0
        for s in range(m):
            ok = True
            for k in range(3):
                x = inv[k, 0] * r[s, 0] + inv[k, 1] * r[s, 1] + inv[k, 2] * r[s, 2]
                h[k] = np.rint(x)
                if not abs(x - h[k]) <= tol:
                    ok = False
            if not ok:
                continue
            cnt += 1
            for k in range(3):
                for q in range(3):
                    a[k, q] += h[k] * h[q]
                    c[k, q] += h[k] * r[s, q]
        n_ok[t] = cnt
        if cnt < 6 or not abs(_det3(a)) > 1e-6:
            continue
        # r = h @ x: x = a^-1 c; the new basis is x transposed (columns are the vectors)
        _inv3(a, inv)
        new = np.empty((3, 3))
        for k in range(3):
            for q in range(3):
                new[q, k] = inv[k, 0] * c[0, q] + inv[k, 1] * c[1, q] + inv[k, 2] * c[2, q]
        if abs(_det3(new)) > 0:
            bases[t] = new


@numba.njit(**_JIT)
def _k_nearest(d, nn, nd):
    """Indices ``nn`` of the ``len(nn)`` smallest values of ``d`` (by insertion, ascending)."""
    k = nn.shape[0]
    m = 0
    for j in range(d.shape[0]):
        v = d[j]
        if m == k and not v < nd[k - 1]:
            continue
        q = min(m, k - 1)
        while q > 0 and nd[q - 1] > v:
            nd[q] = nd[q - 1]
            nn[q] = nn[q - 1]
            q -= 1
        nd[q] = v
        nn[q] = j
        m = min(m + 1, k)


@numba.njit(**_JIT)
def candidates(r, k_neighbours, tau_frac, n_clusters, n_candidates, n_extra):
    """Basis candidates ``(m, 3)`` (1/Å): the reference's ``_candidates``."""
    n = r.shape[0]
    k = min(k_neighbours, n - 1)
    sq = np.empty(n)
    for i in range(n):
        sq[i] = r[i, 0] * r[i, 0] + r[i, 1] * r[i, 1] + r[i, 2] * r[i, 2]
    dist = np.empty((n, n))
    dmin = np.empty(n)
    for i in range(n):
        for j in range(n):
            if i == j:
                dist[i, j] = np.inf
            else:
                dot = r[i, 0] * r[j, 0] + r[i, 1] * r[j, 1] + r[i, 2] * r[j, 2]
                dist[i, j] = np.sqrt(max(sq[i] + sq[j] - 2.0 * dot, 0.0))
        dmin[i] = dist[i].min()
    nd = n * k
    diff = np.empty((nd, 3))
    nn = np.empty(k, np.int64)
    nd_ = np.empty(k)
    for i in range(n):
        _k_nearest(dist[i], nn, nd_)
        for q in range(k):
            d = diff[i * k + q]
            for a in range(3):
                d[a] = r[nn[q], a] - r[i, a]
            # one sign per pair of opposite vectors
            if d[0] * 0.57 + d[1] * 0.31 + d[2] * 0.76 < 0:
                for a in range(3):
                    d[a] = -d[a]
    tau = tau_frac * np.median(dmin)
    if not tau > 0:
        return np.zeros((0, 3))
    cell = np.empty((nd, 3), np.int64)
    for d in range(nd):
        for a in range(3):
            cell[d, a] = np.int64(np.floor(diff[d, a] / tau))
    lo = np.empty(3, np.int64)
    span = np.empty(3, np.int64)
    for a in range(3):
        lo[a] = cell[:, a].min()
        span[a] = cell[:, a].max() - lo[a] + 1
    key = np.empty(nd, np.int64)
    for d in range(nd):
        key[d] = (
            ((cell[d, 0] - lo[0]) * span[1] + cell[d, 1] - lo[1]) * span[2] + cell[d, 2] - lo[2]
        )
    # clusters: distinct keys in ascending order (np.unique), their counts and sums
    order = np.argsort(key, kind="mergesort")
    inv = np.empty(nd, np.int64)
    nu = 0
    for q in range(nd):
        if q == 0 or key[order[q]] != key[order[q - 1]]:
            nu += 1
        inv[order[q]] = nu - 1
    counts = np.zeros(nu, np.int64)
    sums = np.zeros((nu, 3))
    for d in range(nd):
        counts[inv[d]] += 1
        for a in range(3):
            sums[inv[d], a] += diff[d, a]
    strong = np.argsort(-counts, kind="mergesort")[:n_clusters]
    nm = 0
    while nm < strong.size and counts[strong[nm]] >= 3:
        nm += 1
    # cluster means, then the mean over each one's neighbourhood
    lim2 = (1.5 * tau) ** 2
    means = np.empty((nm, 3))
    for q in range(nm):
        u = strong[q]
        m0 = sums[u, 0] / counts[u]
        m1 = sums[u, 1] / counts[u]
        m2 = sums[u, 2] / counts[u]
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        cnt = 0.0
        mm = m0 * m0 + m1 * m1 + m2 * m2
        for d in range(nd):
            dd = diff[d, 0] * diff[d, 0] + diff[d, 1] * diff[d, 1] + diff[d, 2] * diff[d, 2]
            dot = m0 * diff[d, 0] + m1 * diff[d, 1] + m2 * diff[d, 2]
            if mm + dd - 2 * dot < lim2:
                s0 += diff[d, 0]
                s1 += diff[d, 1]
                s2 += diff[d, 2]
                cnt += 1.0
        cnt = max(cnt, 1.0)
        means[q, 0] = s0 / cnt
        means[q, 1] = s1 / cnt
        means[q, 2] = s2 / cnt
    # the strongest distinct clusters
    picked = np.empty(nm, np.int64)
    npk = 0
    for i in range(nm):
        free = True
        for q in range(npk):
            j = picked[q]
            e = (
                (means[i, 0] - means[j, 0]) ** 2
                + (means[i, 1] - means[j, 1]) ** 2
                + (means[i, 2] - means[j, 2]) ** 2
            )
            if e <= lim2:
                free = False
                break
        if free:
            picked[npk] = i
            npk += 1
            if npk >= n_candidates:
                break
    out = np.empty((npk + n_extra, 3))
    for q in range(npk):
        out[q] = means[picked[q]]
    if npk < n_candidates or n_extra == 0:
        return out[:npk].copy()
    # further candidates: clusters that are not small integer combinations of two candidates
    nc = npk
    p2 = np.empty((2, 3))  # pseudo-inverse of the 3 x 2 matrix of a pair
    for i in range(picked[npk - 1] + 1, nm):
        v = means[i]
        spanned = False
        for a in range(npk):
            if spanned:
                break
            for b in range(a + 1, npk):
                x = out[a]
                y = out[b]
                xx = x[0] * x[0] + x[1] * x[1] + x[2] * x[2]
                yy = y[0] * y[0] + y[1] * y[1] + y[2] * y[2]
                xy = x[0] * y[0] + x[1] * y[1] + x[2] * y[2]
                det = xx * yy - xy * xy
                ff = xx + yy
                if det > 1e-30 * ff * ff:
                    for q in range(3):
                        p2[0, q] = (yy * x[q] - xy * y[q]) / det
                        p2[1, q] = (xx * y[q] - xy * x[q]) / det
                else:
                    # parallel pair (rank 1, as numpy's pinv cuts it): pinv = A.T / |A|_F**2;
                    # both zero: pinv = 0
                    f = 1.0 / ff if ff > 0 else 0.0
                    for q in range(3):
                        p2[0, q] = x[q] * f
                        p2[1, q] = y[q] * f
                ca = np.rint(p2[0, 0] * v[0] + p2[0, 1] * v[1] + p2[0, 2] * v[2])
                cb = np.rint(p2[1, 0] * v[0] + p2[1, 1] * v[1] + p2[1, 2] * v[2])
                res = 0.0
                for q in range(3):
                    res += (v[q] - (x[q] * ca + y[q] * cb)) ** 2
                if res <= lim2 and abs(ca) <= 3 and abs(cb) <= 3:
                    spanned = True
                    break
        if spanned:
            continue
        far = True
        for q in range(nc):
            e = (out[q, 0] - v[0]) ** 2 + (out[q, 1] - v[1]) ** 2 + (out[q, 2] - v[2]) ** 2
            if not e > lim2:
                far = False
                break
        if far:
            out[nc] = v
            nc += 1
            if nc >= n_candidates + n_extra:
                break
    return out[:nc].copy()


@numba.njit(**_JIT)
def search(r, cands, tol, stages, stage_keep, keep_fraction):
    """The best basis (columns, 1/Å) for spots ``r`` from candidates ``cands``, and whether one
    was found: the reference's ``find_lattice`` after ``_candidates``."""
    m = cands.shape[0]
    best = np.zeros((3, 3))
    if m < 3:
        return best, False
    nt = m * (m - 1) * (m - 2) // 6
    bases = np.empty((nt, 3, 3))
    nb = 0
    for a in range(m):
        for b in range(a + 1, m):
            for c in range(b + 1, m):
                t = bases[nb]
                for q in range(3):
                    t[q, 0] = cands[a, q]
                    t[q, 1] = cands[b, q]
                    t[q, 2] = cands[c, q]
                na = np.sqrt(cands[a, 0] ** 2 + cands[a, 1] ** 2 + cands[a, 2] ** 2)
                nb_ = np.sqrt(cands[b, 0] ** 2 + cands[b, 1] ** 2 + cands[b, 2] ** 2)
                nc = np.sqrt(cands[c, 0] ** 2 + cands[c, 1] ** 2 + cands[c, 2] ** 2)
                if abs(_det3(t)) >= 0.05 * (na * nb_ * nc):
                    nb += 1
    if nb == 0:
        return best, False
    bases = bases[:nb].copy()
    n = r.shape[0]
    sq = np.empty(n)
    for i in range(n):
        sq[i] = r[i, 0] * r[i, 0] + r[i, 1] * r[i, 1] + r[i, 2] * r[i, 2]
    rs = r[np.argsort(sq, kind="mergesort")]
    for st in range(stages.shape[0]):
        mm = min(max(np.int64(stages[st] * n), 8), n)
        n_ok = np.empty(bases.shape[0], np.int64)
        _refine(rs, mm, bases, tol, n_ok)
        if bases.shape[0] > stage_keep[st]:
            bases = bases[np.argsort(-n_ok, kind="mergesort")[: stage_keep[st]]].copy()
    inv = np.empty((3, 3))
    nf = bases.shape[0]
    n_ok = np.empty(nf, np.int64)
    for t in range(nf):
        _inv3(bases[t], inv)
        n_ok[t] = _count_indexed(r, inv, tol)
    top = n_ok.max()
    bv = -1.0
    for t in range(nf):
        if n_ok[t] >= keep_fraction * top:
            v = abs(_det3(bases[t]))
            if v > bv:
                bv = v
                best = bases[t].copy()
    return best, True
