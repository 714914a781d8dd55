"""Nearest-neighbour distances of a point set (numba sweep), beside a numpy reference."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def nearest_distances(x, y):
    """Distance from each point to its nearest other point (inf for a single point).

    Points are sorted by ``x``; each point scans outwards in both directions and stops once the
    ``x`` gap alone exceeds the best distance found, so spots spread over a detector cost about
    ``n log n``.
    """
    n = x.shape[0]
    order = np.argsort(x)
    xs = x[order]
    ys = y[order]
    out = np.empty(n)
    for a in range(n):
        best = np.inf
        for step in (-1, 1):
            b = a + step
            while 0 <= b < n:
                dx = xs[b] - xs[a]
                if dx * dx >= best:
                    break
                dy = ys[b] - ys[a]
                d2 = dx * dx + dy * dy
                if d2 < best:
                    best = d2
                b += step
        out[order[a]] = np.sqrt(best)
    return out


def nearest_distances_ref(x, y):
    """Numpy reference: full distance matrix."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1) if x.size else np.zeros(0)


@numba.njit(cache=True, nogil=True)
def window_medians(m, half):
    """Median of the values other than NaN among ``m[k - half : k + half + 1]`` for each ``k``
    (NaN where there are none), as ``np.nanmedian`` gives it (infinities included): the mean
    of the two middle values for an even count. The rings' means beside each ring, one small
    sort per ring."""
    n = m.shape[0]
    out = np.full(n, np.nan)
    buf = np.empty(2 * half + 1)
    for k in range(n):
        c = 0
        for q in range(max(k - half, 0), min(k + half + 1, n)):
            v = m[q]
            if not np.isnan(v):
                # insertion into the sorted buffer
                t = c
                while t > 0 and buf[t - 1] > v:
                    buf[t] = buf[t - 1]
                    t -= 1
                buf[t] = v
                c += 1
        if c:
            h = c // 2
            out[k] = buf[h] if c % 2 else (buf[h - 1] + buf[h]) / 2.0
    return out


def window_medians_ref(m, half):
    """Numpy reference of :func:`window_medians`: ``np.nanmedian`` over sliding windows."""
    win = np.lib.stride_tricks.sliding_window_view(
        np.pad(np.asarray(m, float), half, constant_values=np.nan), 2 * half + 1
    )
    some = (~np.isnan(win)).any(axis=1)
    out = np.full(len(m), np.nan)
    if some.any():
        with np.errstate(invalid="ignore"):  # inf and -inf in the middle: NaN, as the kernel
            out[some] = np.nanmedian(win[some], axis=1)
    return out
