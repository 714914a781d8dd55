"""Multiple-lattice score: the fraction of a frame's spots that belong to a *second* lattice.

Method (an indexing-free cousin of autoindexing by difference vectors):

1. Each spot becomes a reciprocal-space vector ``r = s1 - s0`` (1/Å) on the Ewald sphere.
2. Differences between each spot and its ``k`` nearest neighbours are, for spots of one crystal,
   short lattice vectors; they pile up in a few clusters, while differences between spots of two
   crystals scatter. Clusters are found on a grid of cell size ``tau`` (a fraction of the median
   nearest-neighbour distance) and their mean vectors become basis candidates.
3. Every non-coplanar triple of the strongest candidates is tried as a basis; the one that gives
   integer indices (within ``tol``) to most spots wins, ties going to the smaller cell. The basis
   is then refined by least squares on the spots it indexes.
4. The spots left unindexed are searched again the same way. If a second basis indexes at least
   ``min_second`` spots and ``min_second_fraction`` of the leftover, the score is the fraction of
   all spots it indexes; otherwise the score is 0.

So one lattice gives 0 (or a few per cent from chance), two lattices give roughly the second
crystal's share of spots. The score is NaN with fewer than ``min_spots`` low-resolution spots.
Validated on simulator runs with and without ``multi_lattice_fraction`` (tests/analyzers).
Written by hand: DIALS/cctbx indexers are not on PyPI and do far more than this needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np


@dataclass(frozen=True, kw_only=True)
class LatticeParams:
    """Settings of the multiple-lattice score."""

    #: fewest usable spots to compute a score
    min_spots: int = 20
    #: most spots used (the strongest)
    max_spots: int = 200
    #: only spots at d >= this (Å) are used (smaller Ewald-sphere errors)
    d_limit: float = 4.0
    #: neighbours per spot for the difference vectors
    k_neighbours: int = 8
    #: grid cell of the difference-vector clustering, fraction of the median neighbour distance
    tau: float = 0.2
    #: basis candidates tried (strongest clusters)
    n_candidates: int = 12
    #: largest index deviation from an integer for a spot to count as indexed
    tol: float = 0.25
    #: fewest spots a second lattice must index
    min_second: int = 8
    #: fraction of the leftover spots a second lattice must index
    min_second_fraction: float = 0.5


def reciprocal_vectors(lab: np.ndarray, wavelength: float) -> np.ndarray:
    """Spots' lab positions ``(n, 3)`` (m) -> reciprocal vectors ``s1 - s0`` (1/Å)."""
    s1 = lab / np.linalg.norm(lab, axis=1, keepdims=True) / wavelength
    s1[:, 2] -= 1.0 / wavelength
    return s1


def _candidates(r: np.ndarray, p: LatticeParams) -> np.ndarray:
    n = len(r)
    k = min(p.k_neighbours, n - 1)
    dist = np.linalg.norm(r[:, None, :] - r[None, :, :], axis=2)
    np.fill_diagonal(dist, np.inf)
    nn = np.argpartition(dist, k - 1, axis=1)[:, :k]
    diff = (r[nn] - r[:, None, :]).reshape(-1, 3)
    # one sign per pair of opposite vectors
    flip = diff @ np.array([0.57, 0.31, 0.76]) < 0
    diff[flip] *= -1
    tau = p.tau * float(np.median(dist.min(axis=1)))
    if not tau > 0:
        return np.zeros((0, 3))
    cell = np.floor(diff / tau).astype(np.int64)
    keys, inv, counts = np.unique(cell, axis=0, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    order = np.argsort(-counts)[: 4 * p.n_candidates]
    centres = []
    for c in order:
        if counts[c] < 3:
            break
        v = diff[inv == c].mean(axis=0)
        # gather the neighbourhood of the cluster mean (clusters split by cell edges)
        near = np.linalg.norm(diff - v, axis=1) < 1.5 * tau
        v = diff[near].mean(axis=0)
        if all(np.linalg.norm(v - u) > 1.5 * tau for u, _ in centres):
            centres.append((v, int(near.sum())))
        if len(centres) >= p.n_candidates:
            break
    return np.array([v for v, _ in centres]).reshape(-1, 3)


def _indexed(r: np.ndarray, basis: np.ndarray, tol: float) -> np.ndarray:
    h = np.linalg.solve(basis, r.T).T  # r = basis @ h, basis columns are the vectors
    return np.all(np.abs(h - np.rint(h)) <= tol, axis=1)


def find_lattice(r: np.ndarray, p: LatticeParams) -> np.ndarray:
    """Boolean mask of the spots indexed by the best lattice found (all False if none)."""
    none = np.zeros(len(r), bool)
    if len(r) < 4:
        return none
    cands = _candidates(r, p)
    best, best_key = None, (0, 0.0)
    for trio in combinations(range(len(cands)), 3):
        basis = cands[list(trio)].T
        vol = abs(np.linalg.det(basis))
        scale = np.prod(np.linalg.norm(basis, axis=0))
        if vol < 0.05 * scale:
            continue
        n_ok = int(_indexed(r, basis, p.tol).sum())
        key = (n_ok, -vol)
        if key > best_key:
            best, best_key = basis, key
    if best is None:
        return none
    ok = _indexed(r, best, p.tol)
    if ok.sum() >= 4:  # refine: r = B h by least squares over the indexed spots
        h = np.rint(np.linalg.solve(best, r[ok].T).T)
        sol, *_ = np.linalg.lstsq(h, r[ok], rcond=None)
        if abs(np.linalg.det(sol)) > 0:
            ok = _indexed(r, sol.T, p.tol)
    return ok


def multi_lattice_score(r: np.ndarray, p: LatticeParams) -> float:
    """Fraction of spots (rows of ``r``) indexed by a second lattice; NaN if too few spots."""
    if len(r) < p.min_spots:
        return float("nan")
    first = find_lattice(r, p)
    rest = r[~first]
    if len(rest) < p.min_second:
        return 0.0
    second = find_lattice(rest, p)
    n2 = int(second.sum())
    if n2 < p.min_second or n2 < p.min_second_fraction * len(rest):
        return 0.0
    return n2 / len(r)
