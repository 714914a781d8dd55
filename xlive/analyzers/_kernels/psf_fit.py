"""Spot shapes fitted to the pixels: where crowded broad spots are, and one spot or two.

The watershed (:mod:`.watershed`) gives one peak per lump of signal and places it on the
lump's local sums. On crowded frames of broad spots a lump may hold two spots (two spots one
to 1.35 widths apart, a weak one on a stronger one's flank) and a neighbour's flank pulls a
weak spot's peak by pixels. Here every broad peak (``min_pixels`` footprint pixels or more)
is modelled as a 2-D Gaussian with its own flux, position and two widths (``sigma_r`` along
the radius, where bandwidth streaks lengthen spots, ``sigma_t`` across), fitted by weighted
least squares (Levenberg-Marquardt; weights ``1 / (background variance + gain * model)``,
Poisson) to the net pixels of a small window around it (``2 radius + 1`` pixels square),
its neighbours' models subtracted, in ``sweeps`` passes over the peaks (strongest first).
Single-pixel spikes (zingers, hot pixels) are left out of the windows.

Then, peak by peak, two spots are fitted instead of one (started symmetric along the main
axis of the signal, and as the fitted spot plus one at the residual's maximum; the better
kept). The second spot is kept when the chi-square drops by ``split_chi2`` or more (a
likelihood-ratio test against the noise, for 5 parameters more), both reach ``min_snr``
(flux over its Fisher error), both are at least 1 px wide and the new one lies at least
``min_dist`` pixels from every other spot (so that a spot is never reported twice).
Finally all spots, the new ones with them, are refitted in ``sweeps`` more passes and
reported at their fitted positions.

Weak candidates (peaks the watershed measured below ``keep_snr``) are fitted too and kept
only where the fitted Gaussian's flux reaches ``keep_snr`` times its Fisher error (a
matched filter: on broad weak spots surer than the footprint's sum) and, below the
watershed's own ``min_snr``, the fit is at least 1 px wide.

With ``model``, :func:`fit_spots` also adds the reported spots' Gaussians into a frame,
and :func:`residual_seeds` finds the local maxima of the matched-filter significance of the
frame minus that model: in a crowded lattice of broad spots, a spot 1-1.35 widths from a
stronger neighbour leaves no saddle the watershed can split at, but stands out once the
neighbour's fit is subtracted (find, fit, subtract, find: as crowded-field photometry
does). The spot finder fits again with those seeds as candidates.

Written by hand (numba): scipy's least_squares costs ~1 ms of Python per fit, and a frame
has hundreds of crowded windows; these fits are small (5 or 10 parameters, 81 pixels).
"""

from __future__ import annotations

import numba
import numpy as np

_JIT = dict(cache=True, nogil=True)

#: parameters per spot: x, y, flux, ln sigma_r, ln sigma_t
NP = 5
#: widths (pixels) a fitted spot may take
MIN_SIGMA = 0.6
MAX_SIGMA = 4.5
#: cell (pixels) of the grid of peaks used to find neighbours
CELL = 16
WIDE = 1.0


@numba.njit(inline="always", **_JIT)
def _net_pixel(frame, rings, mean, resid, sbs, var, lo, hi, i, j):
    """(valid, net value, background variance) of pixel ``(i, j)``: frame minus its ring's
    mean and box residual; invalid when masked, outside ``[lo, hi]`` or in an empty ring."""
    r = rings[i, j]
    if r < 0:
        return False, 0.0, 0.0
    f = frame[i, j]
    if not (f >= lo and f <= hi):
        return False, 0.0, 0.0
    m = mean[r]
    s2 = var[r]
    if not np.isfinite(m) or not (s2 > 0):
        return False, 0.0, 0.0
    return True, np.float64(f) - (m + resid[i // sbs, j // sbs]), np.float64(s2)


@numba.njit(**_JIT)
def _net_patch(frame, rings, mean, resid, sbs, var, lo, hi, i0, j0, d, v, ok):
    """Net values ``d``, background variance ``v`` and validity ``ok`` of the window whose
    top-left pixel is ``(i0, j0)``."""
    ph, pw = d.shape
    ny, nx = frame.shape
    for a in range(ph):
        i = i0 + a
        for b in range(pw):
            j = j0 + b
            ok[a, b] = False
            d[a, b] = 0.0
            v[a, b] = 1.0
            if i < 0 or i >= ny or j < 0 or j >= nx:
                continue
            valid, x, s2 = _net_pixel(frame, rings, mean, resid, sbs, var, lo, hi, i, j)
            if valid:
                d[a, b] = x
                v[a, b] = s2
                ok[a, b] = True
    # single-pixel spikes (zingers, hot pixels: more than 0.3 of their 3 x 3 sum and 5
    # sigmas above their neighbours' mean) are left out of the fit
    for a in range(ph):
        for b in range(pw):
            x = d[a, b]
            if not ok[a, b] or x <= 0 or x * x <= 25.0 * v[a, b]:
                continue
            s8 = 0.0
            for aa in range(max(a - 1, 0), min(a + 2, ph)):
                for bb in range(max(b - 1, 0), min(b + 2, pw)):
                    s8 += d[aa, bb]
            s8 -= x
            m8 = max(s8 / 8.0, 0.0)
            if x > 0.3 * (x + s8) and (x - m8) ** 2 > 25.0 * (v[a, b] + m8):
                ok[a, b] = False


@numba.njit(inline="always", **_JIT)
def _shape(p, cx, cy, i, j):
    """Unit-flux Gaussian of parameters ``p`` at pixel (i, j); radial unit vector (cx, cy)."""
    dx = j - p[0]
    dy = i - p[1]
    u = dx * cx + dy * cy
    w = -dx * cy + dy * cx
    sr = np.exp(p[3])
    st = np.exp(p[4])
    e = 0.5 * ((u / sr) ** 2 + (w / st) ** 2)
    if e > 20.0:
        return 0.0
    return np.exp(-e) / (2.0 * np.pi * sr * st)


@numba.njit(**_JIT)
def _add_model(m, i0, j0, p, cx, cy, sign):
    """``m += sign * flux * shape`` over the window at ``(i0, j0)`` (only where the spot is
    within 4.5 sigma)."""
    ph, pw = m.shape
    reach = 4.5 * np.exp(max(p[3], p[4]))
    a0 = max(int(np.floor(p[1] - reach)) - i0, 0)
    a1 = min(int(np.ceil(p[1] + reach)) - i0 + 1, ph)
    b0 = max(int(np.floor(p[0] - reach)) - j0, 0)
    b1 = min(int(np.ceil(p[0] + reach)) - j0 + 1, pw)
    for a in range(a0, a1):
        for b in range(b0, b1):
            m[a, b] += sign * p[2] * _shape(p, cx, cy, i0 + a, j0 + b)


@numba.njit(**_JIT)
def _chi2(d, w, ok, i0, j0, ps, cs, k):
    """Weighted squared residual of the ``k`` spots ``ps`` (directions ``cs``) on the window."""
    ph, pw = d.shape
    t = 0.0
    for a in range(ph):
        for b in range(pw):
            if not ok[a, b]:
                continue
            m = 0.0
            for s in range(k):
                m += ps[s, 2] * _shape(ps[s], cs[s, 0], cs[s, 1], i0 + a, j0 + b)
            r = d[a, b] - m
            t += w[a, b] * r * r
    return t


@numba.njit(**_JIT)
def _chol_solve(m, g, x):
    """``x = m^-1 g`` for a symmetric positive definite ``m`` (overwritten by its Cholesky
    factor); False if ``m`` is not positive definite. By hand: ``np.linalg.solve`` costs
    microseconds of LAPACK call and allocation per solve, more than these 5-30 unknowns."""
    n = m.shape[0]
    for j in range(n):
        t = m[j, j]
        for q in range(j):
            t -= m[j, q] * m[j, q]
        if not (t > 0):
            return False
        t = np.sqrt(t)
        m[j, j] = t
        for i in range(j + 1, n):
            u = m[i, j]
            for q in range(j):
                u -= m[i, q] * m[j, q]
            m[i, j] = u / t
    for i in range(n):
        u = g[i]
        for q in range(i):
            u -= m[i, q] * x[q]
        x[i] = u / m[i, i]
    for i in range(n - 1, -1, -1):
        u = x[i]
        for q in range(i + 1, n):
            u -= m[q, i] * x[q]
        x[i] = u / m[i, i]
    return True


@numba.njit(**_JIT)
def _fit(d, w, ok, i0, j0, ps, cs, k, start, maxmove, niter):
    """Levenberg-Marquardt fit of ``k`` spots ``ps`` (rows updated in place) to the window
    ``d`` with weights ``w``; positions kept within ``maxmove`` (pixels, one per spot) of
    ``start``, widths within [MIN_SIGMA, MAX_SIGMA], fluxes positive. Returns the
    chi-square."""
    ph, pw = d.shape
    npar = NP * k
    jac = np.zeros(npar)
    a = np.zeros((npar, npar))
    g = np.zeros(npar)
    trial = ps[:k].copy()
    m2 = np.zeros((npar, npar))
    step = np.zeros(npar)
    lam = 1e-3
    chi = _chi2(d, w, ok, i0, j0, ps, cs, k)
    lmin = np.log(MIN_SIGMA)
    lmax = np.log(MAX_SIGMA)
    for _ in range(niter):
        a[:, :] = 0.0
        g[:] = 0.0
        for aa in range(ph):
            for bb in range(pw):
                if not ok[aa, bb]:
                    continue
                i = i0 + aa
                j = j0 + bb
                m = 0.0
                for s in range(k):
                    p = ps[s]
                    cx = cs[s, 0]
                    cy = cs[s, 1]
                    sh = _shape(p, cx, cy, i, j)
                    f = p[2] * sh
                    m += f
                    dx = j - p[0]
                    dy = i - p[1]
                    u = dx * cx + dy * cy
                    v = -dx * cy + dy * cx
                    ir2 = np.exp(-2.0 * p[3])
                    it2 = np.exp(-2.0 * p[4])
                    jac[NP * s + 0] = f * (u * cx * ir2 - v * cy * it2)
                    jac[NP * s + 1] = f * (u * cy * ir2 + v * cx * it2)
                    jac[NP * s + 2] = sh
                    jac[NP * s + 3] = f * (u * u * ir2 - 1.0)
                    jac[NP * s + 4] = f * (v * v * it2 - 1.0)
                r = d[aa, bb] - m
                ww = w[aa, bb]
                for q in range(npar):
                    jq = jac[q] * ww
                    if jq == 0.0:
                        continue
                    g[q] += jq * r
                    for q2 in range(q, npar):
                        a[q, q2] += jq * jac[q2]
        for q in range(npar):
            for q2 in range(q):
                a[q, q2] = a[q2, q]
        improved = False
        for _t in range(6):
            m2[:, :] = a
            for q in range(npar):
                m2[q, q] += lam * a[q, q] + 1e-12
            if not _chol_solve(m2, g, step):
                # not positive definite (rounding): damp more, as for a step that failed
                # (no np.linalg.solve here: it alone was ~10 % of the kernels' compile time)
                lam *= 10.0
                continue
            for s in range(k):
                for q in range(NP):
                    trial[s, q] = ps[s, q] + step[NP * s + q]
                mm = maxmove[s]
                trial[s, 0] = min(max(trial[s, 0], start[s, 0] - mm), start[s, 0] + mm)
                trial[s, 1] = min(max(trial[s, 1], start[s, 1] - mm), start[s, 1] + mm)
                trial[s, 2] = max(trial[s, 2], 1e-3)
                trial[s, 3] = min(max(trial[s, 3], lmin), lmax)
                trial[s, 4] = min(max(trial[s, 4], lmin), lmax)
            c2 = _chi2(d, w, ok, i0, j0, trial, cs, k)
            if c2 < chi:
                improved = True
                rel = chi - c2
                chi = c2
                ps[:k] = trial
                lam = max(lam * 0.3, 1e-6)
                break
            lam *= 10.0
        if not improved or rel < 1e-3:
            break
    return chi


@numba.njit(**_JIT)
def _weights(v, ok, i0, j0, ps, cs, k, gain, w):
    """``w = 1 / (v + gain * max(model, 0))`` (0 where not valid)."""
    ph, pw = v.shape
    for a in range(ph):
        for b in range(pw):
            if not ok[a, b]:
                w[a, b] = 0.0
                continue
            m = 0.0
            for s in range(k):
                m += ps[s, 2] * _shape(ps[s], cs[s, 0], cs[s, 1], i0 + a, j0 + b)
            w[a, b] = 1.0 / (v[a, b] + gain * max(m, 0.0))


@numba.njit(**_JIT)
def _flux_snr(w, ok, i0, j0, p, c):
    """Flux over its standard error (Fisher, position and widths held): ``F sqrt(sum w g^2)``."""
    ph, pw = w.shape
    t = 0.0
    for a in range(ph):
        for b in range(pw):
            if ok[a, b]:
                sh = _shape(p, c[0], c[1], i0 + a, j0 + b)
                t += w[a, b] * sh * sh
    return p[2] * np.sqrt(t)


@numba.njit(**_JIT)
def _pos_err(w, ok, i0, j0, p, c):
    """Standard error (pixels, ``sqrt(var x + var y)``) of the fitted position of spot
    ``p`` (direction ``c``) on the window with weights ``w``: the inverse Fisher matrix of
    all five parameters (flux and widths free); inf if singular."""
    ph, pw = w.shape
    f = np.zeros((NP, NP))
    jac = np.zeros(NP)
    cx = c[0]
    cy = c[1]
    ir2 = np.exp(-2.0 * p[3])
    it2 = np.exp(-2.0 * p[4])
    for a in range(ph):
        for b in range(pw):
            if not ok[a, b] or w[a, b] <= 0:
                continue
            sh = _shape(p, cx, cy, i0 + a, j0 + b)
            fl = p[2] * sh
            dx = j0 + b - p[0]
            dy = i0 + a - p[1]
            u = dx * cx + dy * cy
            v = -dx * cy + dy * cx
            jac[0] = fl * (u * cx * ir2 - v * cy * it2)
            jac[1] = fl * (u * cy * ir2 + v * cx * it2)
            jac[2] = sh
            jac[3] = fl * (u * u * ir2 - 1.0)
            jac[4] = fl * (v * v * it2 - 1.0)
            for q in range(NP):
                for q2 in range(NP):
                    f[q, q2] += w[a, b] * jac[q] * jac[q2]
    tot = 0.0
    e = np.zeros(NP)
    x = np.zeros(NP)
    m = np.zeros((NP, NP))
    for q in range(2):
        m[:, :] = f
        e[:] = 0.0
        e[q] = 1.0
        if not _chol_solve(m, e, x):
            return np.inf
        tot += x[q]
    return np.sqrt(max(tot, 0.0))


#: no group members (``_others`` with one spot left out)
_NO_MEMBERS = np.zeros(0, np.bool_)


@numba.njit(**_JIT)
def _others(d, i0, j0, par, dirs, alive, head, nxt, k, member):
    """``d -= model`` of every live spot near the window except ``k`` and the ``member``
    spots (``member``: a flag per spot, or empty)."""
    ph, pw = d.shape
    ncy, ncx = head.shape
    ci0 = max((i0 - 3 * CELL // 2) // CELL, 0)
    ci1 = min((i0 + ph + 3 * CELL // 2) // CELL, ncy - 1)
    cj0 = max((j0 - 3 * CELL // 2) // CELL, 0)
    cj1 = min((j0 + pw + 3 * CELL // 2) // CELL, ncx - 1)
    for ci in range(ci0, ci1 + 1):
        for cj in range(cj0, cj1 + 1):
            s = head[ci, cj]
            while s >= 0:
                if s != k and alive[s] and not (s < member.size and member[s]):
                    _add_model(d, i0, j0, par[s], dirs[s, 0], dirs[s, 1], -1.0)
                s = nxt[s]


@numba.njit(**_JIT)
def _principal(d, ok, i0, j0, p, c):
    """Unit vector of the main axis of the positive net signal in the window, weighted by
    the fitted spot's shape, and the excess variance along it (``lam1 - lam2``)."""
    ph, pw = d.shape
    sw = 0.0
    sx = 0.0
    sy = 0.0
    for a in range(ph):
        for b in range(pw):
            if ok[a, b] and d[a, b] > 0:
                q = d[a, b] * _shape(p, c[0], c[1], i0 + a, j0 + b)
                sw += q
                sx += q * (j0 + b)
                sy += q * (i0 + a)
    if sw <= 0:
        return 1.0, 0.0, 0.0
    mx = sx / sw
    my = sy / sw
    cxx = 0.0
    cyy = 0.0
    cxy = 0.0
    for a in range(ph):
        for b in range(pw):
            if ok[a, b] and d[a, b] > 0:
                q = d[a, b] * _shape(p, c[0], c[1], i0 + a, j0 + b)
                dx = j0 + b - mx
                dy = i0 + a - my
                cxx += q * dx * dx
                cyy += q * dy * dy
                cxy += q * dx * dy
    cxx /= sw
    cyy /= sw
    cxy /= sw
    tr = cxx + cyy
    det = cxx * cyy - cxy * cxy
    disc = np.sqrt(max(0.25 * tr * tr - det, 0.0))
    l1 = 0.5 * tr + disc
    l2 = 0.5 * tr - disc
    if abs(cxy) > 1e-12:
        ex = l1 - cyy
        ey = cxy
    elif cxx >= cyy:
        ex = 1.0
        ey = 0.0
    else:
        ex = 0.0
        ey = 1.0
    nrm = np.sqrt(ex * ex + ey * ey)
    return ex / nrm, ey / nrm, l1 - l2


@numba.njit(**_JIT)
def _clear(par, alive, head, nxt, k, x, y, dist):
    """Whether no live spot but ``k`` lies within ``dist`` pixels of (x, y)."""
    ncy, ncx = head.shape
    ci = min(max(int(y) // CELL, 0), ncy - 1)
    cj = min(max(int(x) // CELL, 0), ncx - 1)
    for a in range(max(ci - 1, 0), min(ci + 2, ncy)):
        for b in range(max(cj - 1, 0), min(cj + 2, ncx)):
            s = head[a, b]
            while s >= 0:
                if s != k and alive[s] and (par[s, 0] - x) ** 2 + (par[s, 1] - y) ** 2 < dist**2:
                    return False
                s = nxt[s]
    return True


@numba.njit(**_JIT)
def _residual_max(d, ok, i0, j0, p, c):
    """Window pixel (row, column) of the largest 3 x 3 sum of ``d`` minus the spot ``p``,
    at least 2 px from the spot's centre and 1 px inside the window; (-1, -1) if none."""
    ph, pw = d.shape
    r = np.zeros((ph, pw))
    for a in range(ph):
        for b in range(pw):
            if ok[a, b]:
                r[a, b] = d[a, b] - p[2] * _shape(p, c[0], c[1], i0 + a, j0 + b)
    best = -np.inf
    ba = -1
    bb = -1
    for a in range(1, ph - 1):
        for b in range(1, pw - 1):
            if (j0 + b - p[0]) ** 2 + (i0 + a - p[1]) ** 2 < 4.0:
                continue
            t = 0.0
            for u in range(a - 1, a + 2):
                for v in range(b - 1, b + 2):
                    t += r[u, v]
            if t > best:
                best = t
                ba = a
                bb = b
    return ba, bb


@numba.njit(**_JIT)
def _members(par, alive, broad, head, nxt, k, reach, kmax, mem):
    """``mem[0] = k``, then the live broad spots within ``reach`` pixels of it, nearest
    first, ``kmax`` in all at most; returns their number."""
    ncy, ncx = head.shape
    x = par[k, 0]
    y = par[k, 1]
    cand = np.empty(64, np.int64)
    dist = np.empty(64)
    nc = 0
    ci = min(max(int(y) // CELL, 0), ncy - 1)
    cj = min(max(int(x) // CELL, 0), ncx - 1)
    for a in range(max(ci - 1, 0), min(ci + 2, ncy)):
        for b in range(max(cj - 1, 0), min(cj + 2, ncx)):
            s = head[a, b]
            while s >= 0:
                if s != k and alive[s] and broad[s] and nc < 64:
                    dd = np.hypot(par[s, 0] - x, par[s, 1] - y)
                    if dd < reach:
                        cand[nc] = s
                        dist[nc] = dd
                        nc += 1
                s = nxt[s]
    mem[0] = k
    m = 1
    for q in np.argsort(dist[:nc]):
        if m >= kmax:
            break
        mem[m] = cand[q]
        m += 1
    return m


@numba.njit(**_JIT)
def _residual_peak(d, w, ok, i0, j0, ps, cs, m, cx, cy, radius, dist, hs):
    """Window pixel (row, column) of the most significant sum over ``2 hs + 1`` pixels
    square of ``d`` minus the ``m`` spots ``ps``, within ``radius`` (Chebyshev) of (cx, cy)
    and at least ``dist`` pixels from every spot; (-1, -1) if none."""
    ph, pw = d.shape
    r = np.zeros((ph, pw))
    vv = np.zeros((ph, pw))
    for a in range(ph):
        for b in range(pw):
            if ok[a, b] and w[a, b] > 0:
                mod = 0.0
                for s in range(m):
                    mod += ps[s, 2] * _shape(ps[s], cs[s, 0], cs[s, 1], i0 + a, j0 + b)
                r[a, b] = d[a, b] - mod
                vv[a, b] = 1.0 / w[a, b]
    best = -np.inf
    ba = -1
    bb = -1
    for a in range(hs, ph - hs):
        for b in range(hs, pw - hs):
            if abs(i0 + a - cy) > radius or abs(j0 + b - cx) > radius:
                continue
            far = True
            for s in range(m):
                if (j0 + b - ps[s, 0]) ** 2 + (i0 + a - ps[s, 1]) ** 2 < dist * dist:
                    far = False
                    break
            if not far:
                continue
            t = 0.0
            tv = 0.0
            for u in range(a - hs, a + hs + 1):
                for v in range(b - hs, b + hs + 1):
                    t += r[u, v]
                    tv += vv[u, v]
            if tv <= 0:
                continue
            t /= np.sqrt(tv)
            if t > best:
                best = t
                ba = a
                bb = b
    return ba, bb


@numba.njit(**_JIT)
def _joint_pass(frame, rings, mean, resid, sbs, var, lo, hi, gain, par, dirs, start, src,
                alive, broad, head, nxt, order, n, nsp, radius, reach, kmax, split_chi2,
                min_snr, min_dist, skip_red, peaks, ext, hs, new_snr):  # fmt: skip
    """Each broad spot (strongest first) fitted jointly with its broad neighbours within
    ``reach`` pixels (``kmax`` spots at most, all free), on the union of their windows, the
    other spots subtracted; then the same group with one spot more (started at the
    residual's most significant 3 x 3 sum near the spot, or as the spot split in two along
    its main axis), kept when the chi-square drops by ``split_chi2`` or more and the new
    spots pass the one-at-a-time split's tests (:func:`_fit_finish`). The pixels fitted
    are the members' windows and the box of half-width ``radius + ext`` around the spot,
    where the new spot is looked for (sums of ``2 hs + 1`` pixels square). Returns the new
    number of spots."""
    box = radius + ext
    ny, nx = frame.shape
    member = np.zeros(par.shape[0], np.bool_)
    mem = np.empty(kmax, np.int64)
    ps = np.zeros((kmax + 1, NP))
    cs = np.zeros((kmax + 1, 2))
    st = np.zeros((kmax + 1, NP))
    pa = np.zeros((kmax + 1, NP))
    pb = np.zeros((kmax + 1, NP))
    mm = np.zeros(kmax + 1)
    for t in range(n):
        k = order[t]
        if not broad[k] or not alive[k]:
            continue
        m = _members(par, alive, broad, head, nxt, k, reach, kmax, mem)
        ya = par[k, 1] - ext
        yb = par[k, 1] + ext
        xa = par[k, 0] - ext
        xb = par[k, 0] + ext
        for q in range(m):
            s = mem[q]
            ya = min(ya, par[s, 1])
            yb = max(yb, par[s, 1])
            xa = min(xa, par[s, 0])
            xb = max(xb, par[s, 0])
        i0 = int(np.rint(ya)) - radius
        j0 = int(np.rint(xa)) - radius
        ph = int(np.rint(yb)) + radius + 1 - i0
        pw = int(np.rint(xb)) + radius + 1 - j0
        d = np.zeros((ph, pw))
        v = np.zeros((ph, pw))
        w = np.zeros((ph, pw))
        ok = np.zeros((ph, pw), np.bool_)
        _net_patch(frame, rings, mean, resid, sbs, var, lo, hi, i0, j0, d, v, ok)
        # the union of the members' windows
        for a in range(ph):
            for b in range(pw):
                if not ok[a, b]:
                    continue
                near = (
                    abs(i0 + a - np.rint(par[k, 1])) <= box
                    and abs(j0 + b - np.rint(par[k, 0])) <= box
                )
                for q in range(m):
                    s = mem[q]
                    if (
                        abs(i0 + a - np.rint(par[s, 1])) <= radius
                        and abs(j0 + b - np.rint(par[s, 0])) <= radius
                    ):
                        near = True
                        break
                ok[a, b] = near
        for q in range(m):
            member[mem[q]] = True
        _others(d, i0, j0, par, dirs, alive, head, nxt, np.int64(-1), member)
        for q in range(m):
            s = mem[q]
            member[s] = False
            ps[q] = par[s]
            cs[q] = dirs[s]
            st[q, 0] = start[s, 0]
            st[q, 1] = start[s, 1]
            mm[q] = 2.0
        _weights(v, ok, i0, j0, ps, cs, m, gain, w)
        ck = _fit(d, w, ok, i0, j0, ps, cs, m, st, mm, np.int64(10))
        for q in range(m):
            par[mem[q]] = ps[q]
        if split_chi2 <= 0 or nsp >= par.shape[0]:
            continue
        nok = 0
        for a in range(ph):
            for b in range(pw):
                nok += ok[a, b]
        if ck < split_chi2 + skip_red * (nok - NP * m):
            continue
        # start A: the group as fitted and one spot more at the residual's peak near k
        sw = np.log(max(np.exp(min(ps[0, 3], ps[0, 4])), 0.71))
        best = np.inf
        ra, rb = _residual_peak(
            d, w, ok, i0, j0, ps, cs, m, par[k, 0], par[k, 1], box, min_dist, hs
        )
        if ra >= 0:
            for q in range(m):
                pa[q] = ps[q]
                mm[q] = 2.0
            pa[m, 0] = j0 + rb
            pa[m, 1] = i0 + ra
            pa[m, 2] = 0.3 * ps[0, 2]
            pa[m, 3] = sw
            pa[m, 4] = sw
            st[m, 0] = pa[m, 0]
            st[m, 1] = pa[m, 1]
            mm[m] = 4.0
            cs[m] = dirs[k]
            best = _fit(d, w, ok, i0, j0, pa, cs, m + 1, st, mm, np.int64(12))
        # start B: k split in two along the main axis of its signal (the others' removed)
        dk = d.copy()
        for q in range(1, m):
            _add_model(dk, i0, j0, ps[q], cs[q, 0], cs[q, 1], -1.0)
        ex, ey, lam = _principal(dk, ok, i0, j0, ps[0], cs[0])
        sep = max(np.sqrt(max(lam, 0.0)), 1.0)
        for q in range(m):
            pb[q] = ps[q]
        pb[0, 0] = ps[0, 0] + sep * ex
        pb[0, 1] = ps[0, 1] + sep * ey
        pb[m, 0] = ps[0, 0] - sep * ex
        pb[m, 1] = ps[0, 1] - sep * ey
        pb[0, 2] = 0.5 * ps[0, 2]
        pb[m, 2] = 0.5 * ps[0, 2]
        pb[0, 3] = sw
        pb[0, 4] = sw
        pb[m, 3] = sw
        pb[m, 4] = sw
        cs[m] = dirs[k]
        stb = st.copy()
        stb[m, 0] = pb[m, 0]
        stb[m, 1] = pb[m, 1]
        stb[0, 0] = pb[0, 0]
        stb[0, 1] = pb[0, 1]
        mmb = mm.copy()
        mmb[0] = 4.0
        mmb[m] = 4.0
        cb = _fit(d, w, ok, i0, j0, pb, cs, m + 1, stb, mmb, np.int64(12))
        if cb < best:
            best = cb
            pa[: m + 1] = pb[: m + 1]
        if ck - best < split_chi2:
            continue
        good = True
        for q in (0, m):
            if np.exp(min(pa[q, 3], pa[q, 4])) < 1.0:
                good = False  # a spike or noise, not a spot
            elif _flux_snr(w, ok, i0, j0, pa[q], cs[q]) < (new_snr if q == m else min_snr):
                good = False
        for q in range(m + 1):
            for q2 in range(q):
                if np.hypot(pa[q, 0] - pa[q2, 0], pa[q, 1] - pa[q2, 1]) < min_dist:
                    good = False
        if not good:
            continue
        for q in range(m):
            member[mem[q]] = True
        member[k] = True
        clear = True
        for q in (0, m):
            if not _clear_but(par, alive, head, nxt, member, pa[q, 0], pa[q, 1], min_dist):
                clear = False
        for q in range(m):
            member[mem[q]] = False
        if not clear:
            continue
        # k becomes the product nearer to its peak, a new spot the other one
        e = 0
        if np.hypot(pa[m, 0] - peaks[k, 0], pa[m, 1] - peaks[k, 1]) < np.hypot(
            pa[0, 0] - peaks[k, 0], pa[0, 1] - peaks[k, 1]
        ):
            e = m
        f = m - e
        for q in range(1, m):
            par[mem[q]] = pa[q]
        par[k] = pa[e]
        par[nsp] = pa[f]
        start[k, 0] = pa[e, 0]
        start[k, 1] = pa[e, 1]
        start[nsp, 0] = pa[f, 0]
        start[nsp, 1] = pa[f, 1]
        dirs[nsp] = dirs[k]
        src[nsp] = k
        alive[nsp] = True
        broad[nsp] = True
        ci = min(max(int(pa[f, 1]) // CELL, 0), head.shape[0] - 1)
        cj = min(max(int(pa[f, 0]) // CELL, 0), head.shape[1] - 1)
        nxt[nsp] = head[ci, cj]
        head[ci, cj] = nsp
        nsp += 1
    return nsp


@numba.njit(**_JIT)
def _clear_but(par, alive, head, nxt, member, x, y, dist):
    """Whether no live spot but the ``member`` ones lies within ``dist`` pixels of (x, y)."""
    ncy, ncx = head.shape
    ci = min(max(int(y) // CELL, 0), ncy - 1)
    cj = min(max(int(x) // CELL, 0), ncx - 1)
    for a in range(max(ci - 1, 0), min(ci + 2, ncy)):
        for b in range(max(cj - 1, 0), min(cj + 2, ncx)):
            s = head[a, b]
            while s >= 0:
                if not member[s] and alive[s]:
                    if (par[s, 0] - x) ** 2 + (par[s, 1] - y) ** 2 < dist**2:
                        return False
                s = nxt[s]
    return True


def fit_spots(
    frame,
    rings,
    mean,
    resid,
    sbs,
    var,
    lo,
    hi,
    gain,
    peaks,
    dirs,
    out,
    *,
    min_pixels=60,
    radius=4,
    sweeps=2,
    split_chi2=30.0,
    min_snr=5.0,
    min_dist=3.5,
    max_fraction=0.1,
    skip_red=0.8,
    group=0,
    reach=6.0,
    keep_snr=0.0,
    ext=0,
    hs=1,
    new_snr=5.0,
    split_cand=False,
    sharp_cand=False,
    split_radius=0,
    split_sigma=0.0,
    max_pos_err=0.0,
    model=None,
):
    """The watershed's peaks (rows of :data:`.watershed.COLUMNS`) placed by fitted spot
    shapes and split in two where two spots fit better (module docstring); rows in ``out``
    (the new spots after the others), their number returned (rows beyond ``out`` counted,
    not stored). ``dirs``: unit radial vector (x, y) at each peak. Peaks with fewer than
    ``min_pixels`` footprint pixels (column ``npix``: sharp or weak spots), or whose
    brightest pixel holds ``max_fraction`` of their intensity or more (sharp spots: columns
    ``max - background`` over ``intensity``) are reported as they are and enter the others' fits as Gaussians of width 1.5 px; ``split_chi2`` 0: no
    split. A new spot takes its parent's ``npix``, ``snr``, ``background`` and ``max``, and
    its fitted flux as intensity. The two-spot fit is skipped where one spot's chi-square is
    below ``split_chi2 + skip_red * (window pixels - 5)`` (for speed; measured to change the
    hard preset's figures by < 0.1 point).

    ``keep_snr`` > 0: peaks the watershed measured below it (candidates) are fitted too and
    kept only where the fitted flux reaches ``keep_snr`` times its Fisher error and, when
    they were below ``min_snr``, their fit is >= 1 px wide (not a spike); sharp peaks (as
    above) at ``min_snr`` or more are no candidates unless ``sharp_cand``; candidates are
    not split unless ``split_cand``. ``group`` > 0: instead of the one-at-a-time two-spot
    test, :func:`_joint_pass` (``group`` spots at most, neighbours within ``reach`` px, the
    new spot searched ``ext`` px beyond the window in sums of ``2 hs + 1`` px, kept at
    ``new_snr``); measured to move along the same recall/precision front as the one-spot
    test at 2-7x its cost, so off by default. ``new_snr`` also applies to the product of
    the one-at-a-time split that becomes a new spot. ``split_radius`` > 0: the two-spot
    fits use windows of that half-width (0: ``radius``); on the hard preset a wider window
    (6) splits more merged pairs and adds more false splits, on the same front as
    ``split_chi2``."""
    # three kernels, the joint pass called only when used: numba compiles a kernel and
    # all it calls on first use, and CI's cache is cold (the joint pass doubled it)
    peaks = np.ascontiguousarray(peaks, np.float64)
    dirs = np.ascontiguousarray(dirs, np.float64)
    radius, sweeps, group = int(radius), int(sweeps), int(group)
    split_chi2, min_snr, min_dist = float(split_chi2), float(min_snr), float(min_dist)
    skip_red, keep_snr, new_snr = float(skip_red), float(keep_snr), float(new_snr)
    # strongest first (sorted here: numba's argsort costs seconds of compile time)
    order = np.argsort(-peaks[:, 2], kind="stable")
    state = _fit_start(
        frame, rings, mean, resid, sbs, var, lo, hi, gain, peaks, dirs, order,
        float(min_pixels), radius, sweeps, min_snr, float(max_fraction), keep_snr,
        bool(sharp_cand),
    )  # fmt: skip
    par, dirs, start, src, alive, broad, cand, head, nxt = state
    n = nsp = len(peaks)
    if group > 0:
        nsp = _joint_pass(
            frame, rings, mean, resid, sbs, var, lo, hi, gain, par, dirs, start, src, alive,
            broad, head, nxt, order, n, nsp, radius, float(reach), group, split_chi2,
            min_snr, min_dist, skip_red, peaks, int(ext), int(hs), new_snr,
        )  # fmt: skip
    found = _fit_finish(
        frame, rings, mean, resid, sbs, var, lo, hi, gain, peaks, out, par, dirs, start, src,
        alive, broad, cand, head, nxt, order, nsp, radius, sweeps, split_chi2, min_snr,
        min_dist, skip_red, group > 0, keep_snr, new_snr, bool(split_cand),
        int(split_radius) if split_radius > 0 else radius, float(split_sigma),
        float(max_pos_err),
    )  # fmt: skip
    if model is not None:  # the reported spots' models added into ``model`` (frame-sized)
        _render(model, par, dirs, alive, broad, nsp)
    return found


@numba.njit(**_JIT)
def _render(model, par, dirs, alive, broad, nsp):
    """``model +=`` the fitted Gaussians of the live broad spots (the others, sharp or small,
    keep the watershed's peak and a nominal shape that would leave rings in the residual)."""
    for k in range(nsp):
        if alive[k] and broad[k]:
            _add_model(model, 0, 0, par[k], dirs[k, 0], dirs[k, 1], 1.0)


def gauss_weights(sigma: float) -> np.ndarray:
    """Unit-sum Gaussian weights of ``sigma`` px out to ``int(3 sigma + 0.5)`` px (as
    ``scipy.ndimage.gaussian_filter`` with ``truncate=3``)."""
    r = int(3.0 * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


@numba.njit(**_JIT)
def _smooth(a, g, tmp, out):
    """``out`` = ``a`` filtered by the separable kernel ``g`` along both axes (zeros
    outside); ``tmp`` scratch of the same shape."""
    ny, nx = a.shape
    r = g.size // 2
    for i in range(ny):
        for j in range(nx):
            t = 0.0
            for q in range(max(-r, -j), min(r, nx - 1 - j) + 1):
                t += g[q + r] * a[i, j + q]
            tmp[i, j] = t
    for i in range(ny):
        for j in range(nx):
            t = 0.0
            for q in range(max(-r, -i), min(r, ny - 1 - i) + 1):
                t += g[q + r] * tmp[i + q, j]
            out[i, j] = t


@numba.njit(**_JIT)
def _residual_maps(frame, rings, mean, resid, sbs, var, lo, hi, gain, model, net, vv, ok):
    """Net frame minus ``model``, its variance (background + gain * (model + positive
    residual)) and validity, per pixel."""
    ny, nx = frame.shape
    for i in range(ny):
        for j in range(nx):
            net[i, j] = 0.0
            vv[i, j] = 0.0
            ok[i, j] = False
            valid, x, s2 = _net_pixel(frame, rings, mean, resid, sbs, var, lo, hi, i, j)
            if not valid:
                continue
            x -= model[i, j]
            net[i, j] = x
            vv[i, j] = s2 + gain * max(model[i, j] + max(x, 0.0), 0.0)
            ok[i, j] = True


@numba.njit(**_JIT)
def _seed_maxima(sig, num, ok, min_snr, half, out):
    """Pixels where ``sig`` reaches ``min_snr`` and is the maximum of its ``2 half + 1``
    square (valid pixels only): rows (x, y, sig, num) in ``out``, their number returned
    (rows beyond ``out`` counted, not stored)."""
    ny, nx = sig.shape
    n = 0
    for i in range(ny):
        for j in range(nx):
            s = sig[i, j]
            if not ok[i, j] or not (s >= min_snr):
                continue
            top = True
            for a in range(max(i - half, 0), min(i + half + 1, ny)):
                for b in range(max(j - half, 0), min(j + half + 1, nx)):
                    if sig[a, b] > s:
                        top = False
                        break
                if not top:
                    break
            if not top:
                continue
            if n < out.shape[0]:
                out[n, 0] = j
                out[n, 1] = i
                out[n, 2] = s
                out[n, 3] = num[i, j]
            n += 1
    return n


def residual_seeds(frame, rings, mean, resid, sbs, var, lo, hi, gain, model, sigma, min_snr,
                   half=2, max_seeds=1 << 16):  # fmt: skip
    """Local maxima (``2 half + 1`` px square) of the matched-filter significance of the net
    frame minus ``model`` (the spots fitted so far), a Gaussian of ``sigma`` px:
    ``sum g r / sqrt(sum g^2 v)`` with ``r`` the residual and ``v`` its variance, reaching
    ``min_snr``: rows (x, y, significance, ``sum g r``), in row-major order. Spots the
    watershed merged into a neighbour stand out once the neighbour's fit is subtracted.
    Numba; :func:`residual_seeds_ref` is the numpy/scipy reference."""
    shape = frame.shape
    net, vv, num, den, tmp = (np.empty(shape) for _ in range(5))
    ok = np.empty(shape, np.bool_)
    _residual_maps(frame, rings, mean, resid, int(sbs), var, lo, hi, float(gain),
                   np.ascontiguousarray(model, np.float64), net, vv, ok)  # fmt: skip
    _smooth(net, gauss_weights(sigma), tmp, num)
    _smooth(vv, gauss_weights(sigma / np.sqrt(2.0)), tmp, den)
    # g (unit sum) squared is the Gaussian of sigma / sqrt(2) over 4 pi sigma^2
    sig = num / np.sqrt(np.maximum(den, 1e-12) / (4.0 * np.pi * sigma * sigma))
    out = np.empty((max_seeds, 4))
    n = _seed_maxima(sig, num, ok, float(min_snr), int(half), out)
    return out[: min(n, max_seeds)]


def residual_seeds_ref(frame, rings, mean, resid, sbs, var, lo, hi, gain, model, sigma,
                       min_snr, half=2):  # fmt: skip
    """Numpy/scipy reference of :func:`residual_seeds`."""
    from scipy import ndimage

    ny, nx = frame.shape
    ok = (rings >= 0) & (frame >= lo) & (frame <= hi)
    r = np.where(ok, rings, 0)
    m = np.asarray(mean, np.float64)[r]
    v = np.asarray(var, np.float64)[r]
    ok &= np.isfinite(m) & (v > 0)
    ii, jj = np.indices((ny, nx))
    rb = resid[ii // sbs, jj // sbs]
    net = np.where(ok, frame - m - rb - model, 0.0)
    vv = np.where(ok, v + gain * np.maximum(model + np.maximum(net, 0.0), 0.0), 0.0)
    num = ndimage.gaussian_filter(net, sigma, mode="constant", truncate=3.0)
    s2 = sigma / np.sqrt(2.0)
    den = ndimage.gaussian_filter(vv, s2, mode="constant", truncate=3.0)
    sig = num / np.sqrt(np.maximum(den, 1e-12) / (4.0 * np.pi * sigma * sigma))
    mx = ndimage.maximum_filter(sig, size=2 * half + 1, mode="constant", cval=-np.inf)
    iy, ix = np.nonzero((sig >= mx) & (sig >= min_snr) & ok)
    return np.stack([ix, iy, sig[iy, ix], num[iy, ix]], axis=1).astype(np.float64)


@numba.njit(**_JIT)
def _fit_one(frame, rings, mean, resid, sbs, var, lo, hi, gain, par, dirs, alive, head, nxt,
             k, start, radius, d, v, w, ok, ps, cs, st):  # fmt: skip
    """Refit spot ``k`` alone in its window, the others subtracted (position kept within
    2 px of ``start``)."""
    k1 = np.int64(1)  # not a literal 1: one compiled _fit, _chi2, _weights for all counts
    i0 = int(np.rint(par[k, 1])) - radius
    j0 = int(np.rint(par[k, 0])) - radius
    _net_patch(frame, rings, mean, resid, sbs, var, lo, hi, i0, j0, d, v, ok)
    _others(d, i0, j0, par, dirs, alive, head, nxt, k, _NO_MEMBERS)
    ps[0] = par[k]
    cs[0] = dirs[k]
    st[0, 0] = start[0]
    st[0, 1] = start[1]
    _weights(v, ok, i0, j0, ps, cs, k1, gain, w)
    _fit(d, w, ok, i0, j0, ps, cs, k1, st, np.full(1, 2.0), np.int64(8))
    par[k] = ps[0]


@numba.njit(**_JIT)
def _fit_start(frame, rings, mean, resid, sbs, var, lo, hi, gain, peaks, dirs_in, order,
               min_pixels, radius, sweeps, min_snr, max_fraction, keep_snr, sharp_cand):  # fmt: skip
    """The spots' state (parameters, grid of spots, ...) and the first ``sweeps`` fits of
    each broad peak alone (:func:`fit_spots`)."""
    n = peaks.shape[0]
    ny, nx = frame.shape
    cap = 2 * n + 1
    par = np.zeros((cap, NP))
    dirs = np.zeros((cap, 2))
    start = np.zeros((cap, 2))
    src = np.empty(cap, np.int64)
    alive = np.zeros(cap, np.bool_)
    broad = np.zeros(cap, np.bool_)
    cand = np.zeros(cap, np.bool_)
    ncy = ny // CELL + 1
    ncx = nx // CELL + 1
    head = np.full((ncy, ncx), -1, np.int64)
    nxt = np.full(cap, -1, np.int64)
    s0 = np.log(1.5)
    for k in range(n):
        par[k, 0] = peaks[k, 0]
        par[k, 1] = peaks[k, 1]
        par[k, 2] = max(peaks[k, 2], 1.0)
        par[k, 3] = s0
        par[k, 4] = s0
        start[k, 0] = peaks[k, 0]
        start[k, 1] = peaks[k, 1]
        dirs[k, 0] = dirs_in[k, 0]
        dirs[k, 1] = dirs_in[k, 1]
        src[k] = k
        alive[k] = True
        # broad: a large footprint, and its brightest pixel a small share of it (a sharp
        # spot's is more than 1 / (2 pi sigma^2) ~ 0.1 for sigma < 1.3 px)
        broad[k] = peaks[k, 3] >= min_pixels and (
            peaks[k, 6] - peaks[k, 5] < max_fraction * peaks[k, 2]
        )
        # a candidate (detected below min_snr, or below keep_snr and not sharp unless
        # sharp_cand) is fitted, and kept when its fit reaches keep_snr
        cand[k] = (
            peaks[k, 4] < min_snr
            or sharp_cand
            or peaks[k, 6] - peaks[k, 5] < max_fraction * peaks[k, 2]
        )
        cand[k] = cand[k] and peaks[k, 4] < keep_snr
        broad[k] = broad[k] or cand[k]
        ci = min(max(int(peaks[k, 1]) // CELL, 0), ncy - 1)
        cj = min(max(int(peaks[k, 0]) // CELL, 0), ncx - 1)
        nxt[k] = head[ci, cj]
        head[ci, cj] = k
    w2 = 2 * radius + 1
    d = np.zeros((w2, w2))
    v = np.zeros((w2, w2))
    w = np.zeros((w2, w2))
    ok = np.zeros((w2, w2), np.bool_)
    ps = np.zeros((2, NP))
    cs = np.zeros((2, 2))
    st = np.zeros((2, NP))
    for _sweep in range(sweeps):
        for t in range(n):
            k = order[t]
            if broad[k]:
                _fit_one(
                    frame, rings, mean, resid, sbs, var, lo, hi, gain, par, dirs, alive, head,
                    nxt, k, start[k], radius, d, v, w, ok, ps, cs, st,
                )  # fmt: skip
    return par, dirs, start, src, alive, broad, cand, head, nxt


@numba.njit(**_JIT)
def _fit_finish(frame, rings, mean, resid, sbs, var, lo, hi, gain, peaks, out, par, dirs,
                start, src, alive, broad, cand, head, nxt, order, nsp, radius, sweeps,
                split_chi2, min_snr, min_dist, skip_red, joint, keep_snr, new_snr,
                split_cand, split_radius, split_sigma, max_pos_err):  # fmt: skip
    """After :func:`_fit_start` (and :func:`_joint_pass` when ``joint``): two spots
    instead of one (unless ``joint``), all refitted, candidates judged, rows written to
    ``out``; returns their number (:func:`fit_spots`)."""
    n = peaks.shape[0]
    ny, nx = frame.shape
    ncy, ncx = head.shape
    k1 = np.int64(1)  # not literals: one compiled _fit, _chi2, _weights for all counts
    k2 = np.int64(2)
    # the two-spot fits' windows: half-width split_radius for spots fitted split_sigma px
    # wide or more, radius for the others
    w2 = 2 * split_radius + 1
    dw = np.zeros((w2, w2))
    vw = np.zeros((w2, w2))
    ww = np.zeros((w2, w2))
    okw = np.zeros((w2, w2), np.bool_)
    w2 = 2 * radius + 1
    dn = np.zeros((w2, w2))
    vn = np.zeros((w2, w2))
    wn = np.zeros((w2, w2))
    okn = np.zeros((w2, w2), np.bool_)
    ps = np.zeros((2, NP))
    cs = np.zeros((2, 2))
    st = np.zeros((2, NP))
    one = np.zeros((1, NP))
    pb = np.zeros((2, NP))
    stb = np.zeros((2, NP))
    # two spots instead of one
    for t in range(n if split_chi2 > 0 and not joint else 0):
        k = order[t]
        if not broad[k] or (cand[k] and not split_cand):
            continue
        if np.exp(max(par[k, 3], par[k, 4])) >= split_sigma:
            d, v, w, ok, sr = dw, vw, ww, okw, split_radius
        else:
            d, v, w, ok, sr = dn, vn, wn, okn, radius
        i0 = int(np.rint(par[k, 1])) - sr
        j0 = int(np.rint(par[k, 0])) - sr
        _net_patch(frame, rings, mean, resid, sbs, var, lo, hi, i0, j0, d, v, ok)
        _others(d, i0, j0, par, dirs, alive, head, nxt, k, _NO_MEMBERS)
        one[0] = par[k]
        cs[0] = dirs[k]
        cs[1] = dirs[k]
        _weights(v, ok, i0, j0, one, cs, k1, gain, w)
        c1 = _chi2(d, w, ok, i0, j0, one, cs, k1)
        nok = 0
        for aa in range(ok.shape[0]):
            for bb in range(ok.shape[1]):
                nok += ok[aa, bb]
        if c1 < split_chi2 + skip_red * (nok - NP):
            # one spot already fits about as well as the noise allows (chi-square below
            # skip_red per degree of freedom plus the test's margin): two cannot gain much
            continue
        # first start: symmetric about the fitted centre along the signal's main axis
        ex, ey, lam = _principal(d, ok, i0, j0, one[0], cs[0])
        a = max(np.sqrt(max(lam, 0.0)), 1.0)
        sw = np.log(max(np.exp(min(one[0, 3], one[0, 4])), 0.71))
        for s in range(2):
            sg = 1.0 if s == 0 else -1.0
            ps[s, 0] = one[0, 0] + sg * a * ex
            ps[s, 1] = one[0, 1] + sg * a * ey
            ps[s, 2] = 0.5 * one[0, 2]
            ps[s, 3] = sw
            ps[s, 4] = sw
            st[s] = ps[s]
        c2 = _fit(d, w, ok, i0, j0, ps, cs, k2, st, np.full(2, 6.0), np.int64(12))
        # second start: the spot as fitted, and a second one at the residual's maximum
        # (3 x 3 sums), where a weak neighbour on its flank is
        ra, rb = _residual_max(d, ok, i0, j0, one[0], cs[0])
        if ra >= 0:
            pb[0] = one[0]
            pb[1, 0] = j0 + rb
            pb[1, 1] = i0 + ra
            pb[1, 2] = 0.3 * one[0, 2]
            pb[1, 3] = sw
            pb[1, 4] = sw
            stb[:] = pb
            c2b = _fit(d, w, ok, i0, j0, pb, cs, k2, stb, np.full(2, 6.0), np.int64(12))
            if c2b < c2:
                c2 = c2b
                ps[:] = pb
        if c1 - c2 < split_chi2:
            continue
        if np.exp(min(ps[0, 3], ps[0, 4], ps[1, 3], ps[1, 4])) < 1.0:
            continue  # a spike or noise, not a spot
        # k becomes the product nearer to its peak, a new spot the other one
        e = 0
        if np.hypot(ps[1, 0] - peaks[k, 0], ps[1, 1] - peaks[k, 1]) < np.hypot(
            ps[0, 0] - peaks[k, 0], ps[0, 1] - peaks[k, 1]
        ):
            e = 1
        if _flux_snr(w, ok, i0, j0, ps[e], cs[e]) < min_snr or _flux_snr(
            w, ok, i0, j0, ps[1 - e], cs[1 - e]
        ) < max(min_snr, new_snr):
            continue
        if np.hypot(ps[0, 0] - ps[1, 0], ps[0, 1] - ps[1, 1]) < min_dist:
            continue
        if not _clear(par, alive, head, nxt, k, ps[1 - e, 0], ps[1 - e, 1], min_dist):
            continue
        par[k] = ps[e]
        par[nsp] = ps[1 - e]
        start[nsp, 0] = ps[1 - e, 0]
        start[nsp, 1] = ps[1 - e, 1]
        start[k, 0] = ps[e, 0]
        start[k, 1] = ps[e, 1]
        dirs[nsp] = dirs[k]
        src[nsp] = k
        alive[nsp] = True
        broad[nsp] = True
        ci = min(max(int(ps[1 - e, 1]) // CELL, 0), ncy - 1)
        cj = min(max(int(ps[1 - e, 0]) // CELL, 0), ncx - 1)
        nxt[nsp] = head[ci, cj]
        head[ci, cj] = nsp
        nsp += 1
    w2 = 2 * radius + 1
    d = np.zeros((w2, w2))
    v = np.zeros((w2, w2))
    w = np.zeros((w2, w2))
    ok = np.zeros((w2, w2), np.bool_)
    # all refitted with the new spots in
    for _sweep in range(sweeps if nsp > n or joint else 0):
        for k in range(nsp):
            if broad[k]:
                _fit_one(
                    frame, rings, mean, resid, sbs, var, lo, hi, gain, par, dirs, alive, head,
                    nxt, k, start[k], radius, d, v, w, ok, ps, cs, st,
                )  # fmt: skip
    # candidates kept where their fitted flux reaches keep_snr (the others subtracted) and
    # they are at least 1 px wide (not a spike)
    for k in range(n):
        if not cand[k]:
            continue
        i0 = int(np.rint(par[k, 1])) - radius
        j0 = int(np.rint(par[k, 0])) - radius
        _net_patch(frame, rings, mean, resid, sbs, var, lo, hi, i0, j0, d, v, ok)
        _others(d, i0, j0, par, dirs, alive, head, nxt, k, _NO_MEMBERS)
        one[0] = par[k]
        cs[0] = dirs[k]
        _weights(v, ok, i0, j0, one, cs, k1, gain, w)
        if (np.exp(min(par[k, 3], par[k, 4])) < WIDE and peaks[k, 4] < min_snr) or _flux_snr(
            w, ok, i0, j0, par[k], dirs[k]
        ) < keep_snr:
            alive[k] = False
    # candidates whose fitted position is known worse than max_pos_err (px) are not
    # reported: weak spots in a crowd, placed pixels off
    for k in range(n if max_pos_err > 0 else 0):
        if not alive[k] or not cand[k]:
            continue
        i0 = int(np.rint(par[k, 1])) - radius
        j0 = int(np.rint(par[k, 0])) - radius
        _net_patch(frame, rings, mean, resid, sbs, var, lo, hi, i0, j0, d, v, ok)
        one[0] = par[k]
        cs[0] = dirs[k]
        _weights(v, ok, i0, j0, one, cs, k1, gain, w)
        if _pos_err(w, ok, i0, j0, par[k], dirs[k]) > max_pos_err:
            alive[k] = False
    found = 0
    for k in range(nsp):
        if not alive[k]:
            continue
        if found < out.shape[0]:
            r = src[k]
            if broad[k]:  # on the detector (a spot cut by the edge pulls its fit out)
                out[found, 0] = min(max(par[k, 0], 0.0), nx - 1.0)
                out[found, 1] = min(max(par[k, 1], 0.0), ny - 1.0)
            else:
                out[found, 0] = peaks[r, 0]
                out[found, 1] = peaks[r, 1]
            out[found, 2] = par[k, 2] if k >= n else peaks[r, 2]
            for c in range(3, 7):
                out[found, c] = peaks[r, c]
        found += 1
    return found


def fit_one_ref(d, w, ok, i0, j0, p, c):
    """Numpy/scipy reference of one spot's fit (:func:`_fit` with ``k = 1``, no bounds
    reached): ``scipy.optimize.least_squares`` on ``sqrt(w) (d - model)`` over the valid
    pixels of the window; returns the parameters (x, y, flux, ln sigma_r, ln sigma_t)."""
    from scipy.optimize import least_squares

    ii, jj = np.nonzero(ok)
    sw = np.sqrt(w[ii, jj])
    dv = d[ii, jj]

    def resid(q):
        dx = jj + j0 - q[0]
        dy = ii + i0 - q[1]
        u = dx * c[0] + dy * c[1]
        v = -dx * c[1] + dy * c[0]
        sr, st = np.exp(q[3]), np.exp(q[4])
        m = q[2] * np.exp(-0.5 * ((u / sr) ** 2 + (v / st) ** 2)) / (2 * np.pi * sr * st)
        return sw * (dv - m)

    return least_squares(resid, np.asarray(p, float), method="lm", xtol=1e-12, ftol=1e-12).x
