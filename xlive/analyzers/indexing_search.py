"""Basis search for stills: direct-lattice vectors from 1-D periodicities of the spots.

The method is the 1-D FFT search of Steller, Bolotovsky & Rossmann (1997, J. Appl. Cryst. 30,
1036; "DPS"), as in rstbx and DIALS' ``fft1d``: project the spots' reciprocal vectors ``r``
(1/Å) onto directions spread over a hemisphere; along a direct-lattice vector ``t`` the
projections ``t·r`` are integers, so their histogram is periodic and its Fourier transform
peaks at the vector's length. Here the search is arranged for speed on one core:

1. all directions' histograms are filled by one numba kernel and transformed together
   (``scipy.fft.rfft`` over a 2-D array); each direction keeps its fundamental peak;
2. the strongest directions (one per neighbourhood) become trial vectors, which are refined
   by least squares so that ``t·r`` is an integer for as many spots as possible, from the spots
   nearest the origin outwards (the coarse direction grid is exact only there);
3. trial vectors that turned into the same vector (or its opposite) are merged.

rstbx' ``DPS_primitive_lattice`` does steps 1-2 with finer sampling and C++ loops over
directions; it takes ~0.4 s per still with 200 spots on this machine, ~20x too slow to index
every hit live, hence this version (tests compare its vectors with rstbx's).
"""

from __future__ import annotations

import numba
import numpy as np


def hemisphere_directions(step: float) -> np.ndarray:
    """Unit vectors ``(m, 3)`` spread evenly over the ``z >= 0`` hemisphere, ~``step`` rad apart.

    A Fibonacci lattice: ``m = 2π / step²`` points, uniform in ``z`` and golden-angle in azimuth.
    """
    m = max(int(np.ceil(2.0 * np.pi / step**2)), 8)
    i = np.arange(m) + 0.5
    z = 1.0 - i / m
    phi = np.pi * (1.0 + np.sqrt(5.0)) * i
    s = np.sqrt(1.0 - z * z)
    return np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=1)


class DirectionGrid:
    """Search directions over a hemisphere and each one's neighbours (for local maxima).

    Built once per run. Neighbours are the directions within ``1.6 * step`` of a direction or
    of its opposite (a direction and its opposite are the same search line).
    """

    def __init__(self, step: float):
        from scipy.spatial import cKDTree

        self.step = float(step)
        self.directions = hemisphere_directions(step)
        tree = cKDTree(self.directions)
        radius = 2.0 * np.sin(0.8 * step)  # chord of 1.6 * step
        m = len(self.directions)
        lists = [
            set(a) | set(b)
            for a, b in zip(
                tree.query_ball_point(self.directions, radius),
                tree.query_ball_point(-self.directions, radius),
                strict=True,
            )
        ]
        width = max(len(x) for x in lists)
        nb = np.tile(np.arange(m)[:, None], (1, width))
        for j, x in enumerate(lists):
            nb[j, : len(x)] = sorted(x)
        self.neighbours = nb

    def local_maxima(self, score: np.ndarray, n_keep: int) -> np.ndarray:
        """Indices of the ``n_keep`` best directions scoring at least as high as their
        neighbours (ties kept once, for the lowest index)."""
        nb_score = score[self.neighbours]
        idx = np.arange(len(score))[:, None]
        beaten = (nb_score > score[:, None]) | (
            (nb_score == score[:, None]) & (self.neighbours < idx)
        )
        peaks = np.flatnonzero(~beaten.any(axis=1))
        return peaks[np.argsort(-score[peaks], kind="stable")[:n_keep]]


@numba.njit(cache=True, nogil=True)
def projection_histograms(r, directions, pmax, n_bins, out):
    """Histograms ``out[j, :]`` of ``r·directions[j]`` over ``[-pmax, pmax)`` in ``n_bins`` bins.

    ``out`` (float32, ``(m, n_bins)``) is overwritten.
    """
    m = directions.shape[0]
    n = r.shape[0]
    scale = n_bins / (2.0 * pmax)
    for j in range(m):
        ux, uy, uz = directions[j, 0], directions[j, 1], directions[j, 2]
        row = out[j]
        row[:] = 0.0
        for i in range(n):
            p = r[i, 0] * ux + r[i, 1] * uy + r[i, 2] * uz
            b = int((p + pmax) * scale)
            if b < 0:
                b = 0
            elif b >= n_bins:
                b = n_bins - 1
            row[b] += 1.0


def projection_histograms_ref(r, directions, pmax, n_bins):
    """Numpy reference of :func:`projection_histograms`."""
    p = r @ directions.T
    b = np.clip(((p + pmax) * (n_bins / (2.0 * pmax))).astype(np.int64), 0, n_bins - 1)
    m = directions.shape[0]
    idx = b + (np.arange(m) * n_bins)[None, :]
    return np.bincount(idx.ravel(), minlength=m * n_bins).reshape(m, n_bins).astype(np.float32)


@numba.njit(cache=True, nogil=True)
def fundamental_peaks(f, k_min, k_max, harmonic_ratio, out_k, out_power):
    """Per row of spectra ``f`` (complex): the strongest ``k`` in ``[k_min, k_max]`` and its power.

    If ``k / 3`` or ``k / 2`` (within one bin) has at least ``harmonic_ratio`` of that power,
    it is taken instead (the fundamental of a lattice row, not its harmonic). Power is
    ``|f|²``; ``f`` needs columns up to ``k_max + 1``.
    """
    m = f.shape[0]
    for j in range(m):
        best = -1.0
        kb = k_min
        for k in range(k_min, k_max + 1):
            v = f[j, k].real ** 2 + f[j, k].imag ** 2
            if v > best:
                best = v
                kb = k
        for div in (3, 2):
            kd = int(kb / div + 0.5)
            if kd < k_min or abs(kb - div * kd) > 1:
                continue
            sub = -1.0
            ks = kd
            for q in range(kd - 1, kd + 2):
                v = f[j, q].real ** 2 + f[j, q].imag ** 2
                if v > sub:
                    sub = v
                    ks = q
            if sub >= harmonic_ratio * best:
                kb = ks
                best = sub
        out_k[j] = kb
        out_power[j] = best


def fundamental_peaks_ref(f, k_min, k_max, harmonic_ratio):
    """Numpy reference of :func:`fundamental_peaks`: ``(k, power)``."""
    power = f.real.astype(np.float64) ** 2 + f.imag.astype(np.float64) ** 2
    rows = np.arange(len(f))
    k = np.argmax(power[:, k_min : k_max + 1], axis=1) + k_min
    best = power[rows, k]
    for div in (3, 2):
        kd = np.floor(k / div + 0.5).astype(np.int64)
        ok = (kd >= k_min) & (np.abs(k - div * kd) <= 1)
        win = np.stack(
            [power[rows, np.clip(kd + q, 0, power.shape[1] - 1)] for q in (-1, 0, 1)], axis=1
        )
        ks = kd + np.argmax(win, axis=1) - 1
        sub = win.max(axis=1)
        take = ok & (sub >= harmonic_ratio * best)
        k = np.where(take, ks, k)
        best = np.where(take, sub, best)
    return k, best


def periodicity_search(
    r: np.ndarray,
    directions: np.ndarray,
    *,
    max_cell: float,
    min_cell: float,
    oversample: float = 1.5,
    chunk: int = 512,
    harmonic_ratio: float = 0.64,
):
    """Each direction's strongest periodicity: direct length (Å) and its normalised amplitude.

    Returns ``(length, score)``, both ``(m,)``; ``score`` is ``|F(k)| / n`` in ``[0, 1]`` (1: every
    spot projects onto an integer multiple of ``1 / length``); see :func:`fundamental_peaks`.
    Directions are done ``chunk`` at a time so that histograms and transforms stay in cache.
    """
    n = len(r)
    m = len(directions)
    r = np.ascontiguousarray(r, np.float64)
    directions = np.ascontiguousarray(directions, np.float64)
    pmax = float(np.sqrt(np.max(np.sum(r * r, axis=1)))) * 1.000001
    # at least 4 periods over the spots' range: fewer is the envelope, not a lattice
    k_min = max(int(np.floor(2.0 * pmax * min_cell)), 4)
    k_max = max(int(np.ceil(2.0 * pmax * max_cell)), k_min + 1)
    import scipy.fft  # only when indexing runs: serve starts without it

    n_bins = scipy.fft.next_fast_len(int(np.ceil(2.0 * oversample * k_max)) + 4, real=True)
    hist = np.empty((min(chunk, m), n_bins), np.float32)
    k = np.empty(m, np.int64)
    power = np.empty(m)
    for start in range(0, m, chunk):
        stop = min(start + chunk, m)
        h = hist[: stop - start]
        projection_histograms(r, directions[start:stop], pmax, n_bins, h)
        f = scipy.fft.rfft(h, axis=1, workers=1)
        fundamental_peaks(f, k_min, k_max, harmonic_ratio, k[start:stop], power[start:stop])
    return k / (2.0 * pmax), np.sqrt(power) / n


def refine_vectors(
    r: np.ndarray,
    t: np.ndarray,
    tol: float,
    stages: tuple[float, ...] = (0.35, 0.7, 1.0, 1.0),
    max_change: float = 0.15,
) -> np.ndarray:
    """Least-squares refinement of direct vectors ``t`` ``(c, 3)`` so that ``t·r`` is integral.

    Each stage uses the given fraction of spots nearest the origin (``r`` sorted by length is
    assumed) and the spots whose ``t·r`` lies within ``tol`` of an integer. A vector is left
    unchanged where a step would move it by more than ``max_change`` of its length (spots
    rounding to 0 would otherwise pull it to zero).
    """
    t = np.array(t, dtype=np.float64, copy=True)
    n = len(r)
    for frac in stages:
        rs = r[: max(int(frac * n), 8)]
        h = rs @ t.T  # (n, c)
        hi = np.rint(h)
        w = (np.abs(h - hi) <= tol).astype(np.float64)
        rr = (rs[:, :, None] * rs[:, None, :]).reshape(len(rs), 9)
        a = (w.T @ rr).reshape(-1, 3, 3)
        b = (w * hi).T @ rs
        fit = (w.sum(axis=0) >= 6) & (np.abs(np.linalg.det(a)) > 1e-30)
        if not fit.any():
            continue
        new = np.linalg.solve(a[fit], b[fit][..., None])[..., 0]
        old = t[fit]
        moved = np.linalg.norm(new - old, axis=1) / np.linalg.norm(old, axis=1)
        keep = np.flatnonzero(fit)[moved <= max_change]
        t[keep] = new[moved <= max_change]
    return t


def merge_vectors(t: np.ndarray, count: np.ndarray, angle: float, rel_length: float):
    """Distinct vectors among ``t``, best first (more spots, then shorter); ``(t, count)``.

    Vectors within ``angle`` rad (of each other or of the opposite) and ``rel_length`` in length
    are one; the opposite of a kept vector is dropped (a lattice holds both).
    """
    length = np.linalg.norm(t, axis=1)
    order = np.lexsort((length, -count))
    cos_min = np.cos(angle)
    kept: list[int] = []
    for i in order:
        if length[i] <= 0:
            continue
        if kept:
            k = np.array(kept)
            c = np.abs(t[k] @ t[i]) / (length[k] * length[i])
            same = (c >= cos_min) & (np.abs(length[k] - length[i]) <= rel_length * length[i])
            if same.any():
                continue
        kept.append(i)
    k = np.array(kept, dtype=np.int64)
    return t[k], count[k]


def integral(r: np.ndarray, t: np.ndarray, tol: float) -> np.ndarray:
    """Which spots (rows) have ``t·r`` within ``tol`` of an integer, per vector: ``(c, n)``."""
    h = t @ r.T
    return np.abs(h - np.rint(h)) <= tol


def candidate_vectors(
    r: np.ndarray,
    *,
    max_cell: float,
    min_cell: float,
    step: float,
    n_trial: int,
    tol: float,
    min_count: int,
    min_spread: float = 1.0,
    grid: DirectionGrid | None = None,
):
    """Refined, distinct direct-lattice vector candidates ``(c, 3)`` (Å) and their spot counts.

    ``r`` must be sorted by length (nearest the origin first). A vector whose indices ``t·r``
    over the spots have a standard deviation below ``min_spread`` is dropped: the spots of a
    still lie near a surface, and a short vector across it (along the beam) gives nearly every
    spot the index 0 without being a lattice vector.
    """
    if grid is None:
        grid = DirectionGrid(step)
    length, score = periodicity_search(r, grid.directions, max_cell=max_cell, min_cell=min_cell)
    pick = grid.local_maxima(score, n_trial)
    t = grid.directions[pick] * length[pick, None]
    t = refine_vectors(r, t, tol)
    count = integral(r, t, tol).sum(axis=1)
    good = (count >= min_count) & (np.std(t @ r.T, axis=1) >= min_spread)
    return merge_vectors(t[good], count[good], angle=np.radians(2.0), rel_length=0.03)
