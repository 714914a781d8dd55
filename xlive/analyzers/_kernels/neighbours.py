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
