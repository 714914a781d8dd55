"""Numba kernels of the reducers, each beside a plain numpy reference used by the tests."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def project(frame, valid, lo, hi, f, sum_out, max_out, with_max):
    """Add the valid pixels of ``frame`` into ``sum_out`` binned f x f; max into ``max_out``."""
    ny, nx = frame.shape
    colbin = np.empty(nx, np.int64)
    for j in range(nx):
        colbin[j] = j // f
    for i in range(ny):
        srow = sum_out[i // f]
        mrow = max_out[i // f]
        frow = frame[i]
        vrow = valid[i]
        for j in range(nx):
            v = frow[j]
            if vrow[j] and v >= lo and v <= hi:
                bj = colbin[j]
                srow[bj] += v
                if with_max and v > mrow[bj]:
                    mrow[bj] = v


def project_ref(frame, valid, lo, hi, f):
    """Reference: binned sum and max of the valid pixels (float64)."""
    v = frame.astype(np.float64)
    ok = valid & (v >= lo) & (v <= hi)
    v = np.where(ok, v, 0.0)
    ny, nx = v.shape
    py, px = -ny % f, -nx % f
    a = np.pad(v, ((0, py), (0, px))).reshape((ny + py) // f, f, (nx + px) // f, f)
    return a.sum(axis=(1, 3)), a.max(axis=(1, 3))


@numba.njit(cache=True, nogil=True)
def ring_outliers(frame, ring, n_rings, lo, hi, nsigma, out):
    """Flat indices of pixels above their ring's mean + nsigma * sqrt(mean) (Poisson); count."""
    ny, nx = frame.shape
    s = np.zeros(n_rings)
    c = np.zeros(n_rings)
    for i in range(ny):
        for j in range(nx):
            r = ring[i, j]
            v = frame[i, j]
            if r >= 0 and v >= lo and v <= hi:
                s[r] += v
                c[r] += 1
    thr = np.empty(n_rings)
    for r in range(n_rings):
        m = s[r] / c[r] if c[r] > 0 else 0.0
        thr[r] = m + nsigma * np.sqrt(max(m, 1.0))
    k = 0
    for i in range(ny):
        for j in range(nx):
            r = ring[i, j]
            v = frame[i, j]
            if r >= 0 and v >= lo and v <= hi and v > thr[r] and k < out.size:
                out[k] = i * nx + j
                k += 1
    return k


def ring_outliers_ref(frame, ring, n_rings, lo, hi, nsigma):
    if n_rings == 0:
        return np.zeros(0, np.int64)
    v = frame.astype(np.float64)
    ok = (ring >= 0) & (v >= lo) & (v <= hi)
    s = np.bincount(ring[ok], v[ok], minlength=n_rings)
    c = np.bincount(ring[ok], minlength=n_rings)
    m = np.where(c > 0, s / np.maximum(c, 1), 0.0)
    thr = m + nsigma * np.sqrt(np.maximum(m, 1.0))
    hot = ok & (v > thr[np.maximum(ring, 0)])
    return np.flatnonzero(hot.ravel())
