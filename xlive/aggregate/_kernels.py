"""Numba kernels of the reducers, each beside a plain numpy reference used by the tests."""

from __future__ import annotations

import math

import numba
import numpy as np


def project(frame, valid, lo, hi, f, sum_out, max_out, with_max, also_sum=None):
    """Add the valid pixels of ``frame`` (``valid`` and within ``[lo, hi]``) into ``sum_out``
    binned f x f (and into ``also_sum`` too, when given); their maximum into ``max_out``
    (``with_max``; ``max_out`` starts at 0, so it holds max(0, pixels)). One frame's
    :func:`project_bands` and :func:`fold_bands` (a reducer adding many frames bins the
    columns once for all of them: :class:`~xlive.aggregate.reducers.BandSums`)."""
    lo, hi, acc, _ = band_bounds(frame.dtype, lo, hi, f)
    shape = (-(-frame.shape[0] // f), frame.shape[1])
    rows = np.zeros(shape, acc)
    mx = np.zeros(shape, frame.dtype) if with_max else no_max(frame.dtype)
    project_bands(frame, valid, lo, hi, f, rows, rows, False, mx, with_max)
    fold_bands(rows, f, sum_out, False)
    if also_sum is not None:
        fold_bands(rows, f, also_sum, False)
    if with_max:
        fold_bands(mx, f, max_out, True)


def band_bounds(dtype, lo: float, hi: float, f: int):
    """``(lo, hi, acc_type, limit)``: the valid range in ``dtype`` itself (integer frames are
    compared in their own type: no per-pixel float conversion), the type row sums of ``f``
    pixels accumulate in (exact), and how many frames they may add before the sums must be
    folded into float images (so they never overflow)."""
    dt = np.dtype(dtype)
    if dt.kind in "ui":
        info = np.iinfo(dt)
        lo_c = info.min if lo <= info.min else min(math.ceil(lo), info.max + 1)
        hi_c = info.max if hi >= info.max else max(math.floor(hi), info.min - 1)
        if lo_c > hi_c:  # nothing valid
            lo_c, hi_c = info.max, info.min
        # unsigned up to 16 bits in uint32 (the narrow type vectorises best), other unsigned
        # in uint64 (float64 for uint64 frames), signed in int64
        if dt.kind == "u":
            acc = np.uint32 if dt.itemsize <= 2 else np.uint64
            acc = np.float64 if dt == np.uint64 else acc
        else:
            acc = np.int64
        top = float(np.iinfo(acc).max) if acc != np.float64 else math.inf
        per_frame = f * float(max(abs(info.max), abs(info.min)))
        limit = max(1, int(top // per_frame)) if math.isfinite(top) else 2**62
        return dt.type(lo_c), dt.type(hi_c), np.dtype(acc), limit
    lo, hi = dt.type(max(lo, -3e38)), dt.type(min(hi, 3e38))
    return lo, hi, np.dtype(np.float64), 2**62


#: an empty (1, 1) maximum of each dtype, passed where no maximum is kept
_NO_MAX: dict = {}


def no_max(dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype not in _NO_MAX:
        _NO_MAX[dtype] = np.zeros((1, 1), dtype)
    return _NO_MAX[dtype]


@numba.njit(cache=True, nogil=True)
def project_bands(frame, valid, lo, hi, f, rows, rows_b, both, rows_max, with_max):
    """Add the valid pixels of ``frame`` (``valid`` and ``lo <= v <= hi``, else 0) into
    ``rows[i // f]`` (and ``rows_b`` with ``both``); their maximum into ``rows_max`` with
    ``with_max``. Each pixel goes to its own column: no chain between pixels."""
    ny, nx = frame.shape
    zero = frame.dtype.type(0)
    for i in range(ny):
        bi = i // f
        r = rows[bi]
        rb = rows_b[bi]
        frow = frame[i]
        vrow = valid[i]
        if with_max:
            rm = rows_max[bi]
            if both:
                for j in range(nx):
                    v = frow[j]
                    x = v if (vrow[j] & (v >= lo) & (v <= hi)) else zero
                    r[j] += x
                    rb[j] += x
                    rm[j] = max(rm[j], x)
            else:
                for j in range(nx):
                    v = frow[j]
                    x = v if (vrow[j] & (v >= lo) & (v <= hi)) else zero
                    r[j] += x
                    rm[j] = max(rm[j], x)
        elif both:
            for j in range(nx):
                v = frow[j]
                x = v if (vrow[j] & (v >= lo) & (v <= hi)) else zero
                r[j] += x
                rb[j] += x
        else:
            for j in range(nx):
                v = frow[j]
                r[j] += v if (vrow[j] & (v >= lo) & (v <= hi)) else zero


@numba.njit(cache=True, nogil=True)
def fold_bands(rows, f, out, is_max):
    """Bin the columns of ``rows`` by ``f`` and add them into ``out`` (``is_max``: keep the
    larger of ``out`` and the bin's maximum instead)."""
    nx = rows.shape[1]
    for bi in range(out.shape[0]):
        r = rows[bi]
        o = out[bi]
        for bj in range(out.shape[1]):
            j0 = bj * f
            j1 = min(j0 + f, nx)
            if is_max:
                m = float(r[j0])
                for j in range(j0 + 1, j1):
                    m = max(m, float(r[j]))
                if m > o[bj]:
                    o[bj] = m
            else:
                s = 0.0
                for j in range(j0, j1):
                    s += float(r[j])
                o[bj] += s


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
    """Flat indices of pixels above their ring's mean + nsigma * sqrt(mean) (Poisson); count.
    The second pass passes over pixels at or below the lowest ring threshold without looking
    up their ring (most of a frame: EIGER 4M, 15 -> ~10 ms a sampled frame)."""
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
    low = np.inf  # the lowest threshold of a ring with pixels (none: nothing to find)
    for r in range(n_rings):
        m = s[r] / c[r] if c[r] > 0 else 0.0
        thr[r] = m + nsigma * np.sqrt(max(m, 1.0))
        if c[r] > 0:
            low = min(low, thr[r])
    k = 0
    for i in range(ny):
        frow = frame[i]
        rrow = ring[i]
        for j in range(nx):
            v = frow[j]
            if v > low and v >= lo and v <= hi:
                r = rrow[j]
                if r >= 0 and v > thr[r] and k < out.size:
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
