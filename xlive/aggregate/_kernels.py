"""Numba kernels of the reducers, each beside a plain numpy reference used by the tests."""

from __future__ import annotations

import math

import numba
import numpy as np


def project(frame, valid, lo, hi, f, sum_out, max_out, with_max, also_sum=None):
    """Add the valid pixels of ``frame`` (``valid`` and within ``[lo, hi]``) into ``sum_out``
    binned f x f (and into ``also_sum`` too, when given); their maximum into ``max_out``
    (``with_max``; ``max_out`` starts at 0, so it holds max(0, pixels))."""
    dt = frame.dtype
    if dt.kind in "ui":  # compare in the frame's own type (no per-pixel float conversion)
        info = np.iinfo(dt)
        lo_c = info.min if lo <= info.min else min(math.ceil(lo), info.max + 1)
        hi_c = info.max if hi >= info.max else max(math.floor(hi), info.min - 1)
        if lo_c > hi_c:  # nothing valid
            lo_c, hi_c = info.max, info.min
        lo, hi = dt.type(lo_c), dt.type(hi_c)
        # bin sums (f x f values) exact: unsigned up to 16 bits in uint32 while f*f*(2**16-1)
        # fits (the narrow type vectorises best), other unsigned in uint64, signed in int64
        if dt.kind == "u":
            fits = dt.itemsize <= 2 and f * f * 65535 < 2**32
            acc_type = np.uint32 if fits else np.uint64
        else:
            acc_type = np.int64
        acc = np.zeros(frame.shape[1], np.float64 if dt == np.uint64 else acc_type)
    else:
        lo, hi = dt.type(max(lo, -3e38)), dt.type(min(hi, 3e38))
        acc = np.zeros(frame.shape[1], np.float64)
    both = also_sum is not None
    _project_rows(
        frame,
        valid,
        lo,
        hi,
        f,
        sum_out,
        also_sum if both else sum_out,
        both,
        max_out,
        with_max,
        acc,
        np.zeros(frame.shape[1], dt),
    )


@numba.njit(cache=True, nogil=True)
def _project_rows(frame, valid, lo, hi, f, sum_out, sum_b, both, max_out, with_max, acc, mx):
    """Per band of f rows: column sums (and maxima) of the valid pixels in a row buffer, a
    loop without dependencies between pixels that the compiler vectorises; then f columns
    per bin. (Adding each pixel straight into its bin chains every f pixels on one sum.)"""
    ny, nx = frame.shape
    zero = frame.dtype.type(0)
    for bi in range(sum_out.shape[0]):
        acc[:] = 0
        mx[:] = 0
        for i in range(bi * f, min(bi * f + f, ny)):
            frow = frame[i]
            vrow = valid[i]
            if with_max:
                for j in range(nx):
                    v = frow[j]
                    x = v if (vrow[j] & (v >= lo) & (v <= hi)) else zero
                    acc[j] += x
                    mx[j] = max(mx[j], x)
            else:
                for j in range(nx):
                    v = frow[j]
                    acc[j] += v if (vrow[j] & (v >= lo) & (v <= hi)) else zero
        srow = sum_out[bi]
        brow = sum_b[bi]
        mrow = max_out[bi]
        for bj in range(sum_out.shape[1]):
            s = acc[bj * f]
            m = mx[bj * f]
            for j in range(bj * f + 1, min(bj * f + f, nx)):
                s += acc[j]
                m = max(m, mx[j])
            srow[bj] += s
            if both:
                brow[bj] += s
            if with_max and m > mrow[bj]:
                mrow[bj] = m


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
