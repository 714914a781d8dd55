"""Multiple-lattice score: the fraction of a frame's spots that belong to a *second* lattice.

Method (an indexing-free cousin of autoindexing by difference vectors):

1. Each spot becomes a reciprocal-space vector ``r = s1 - s0`` (1/Å) on the Ewald sphere.
2. Differences between each spot and its ``k`` nearest neighbours are, for spots of one crystal,
   short lattice vectors; they pile up in a few clusters, while differences between spots of two
   crystals scatter. Clusters are found on a grid of cell size ``tau`` (a fraction of the median
   nearest-neighbour distance) and their mean vectors become basis candidates.
3. Every non-coplanar triple of the strongest candidates is tried as a basis; the one giving
   integer indices (within ``tol``) to the most spots wins, ties going to the smaller cell.
   The basis is then refined by least squares on the spots it indexes.
4. The spots left unindexed are searched again the same way. If a second basis indexes at least
   ``min_second`` spots and ``min_second_fraction`` of the leftover, and is not the first
   lattice again (its vectors are not integer combinations of the first basis), the score is
   the fraction of all spots it indexes; otherwise the score is 0.

So one lattice gives 0, two lattices give roughly the second crystal's share of spots.
Validation (simulated EIGER 500K, 20 one-lattice and 20 two-lattice hits, score > 0.1): about
88 % of frames right — below the 95 % target. The misses are one-lattice frames where the
basis found is a sublattice (cell 3-4 times too large, which the 0.25 tolerance lets index
most spots) and two-lattice frames whose second crystal is weak. The score is NaN with fewer than ``min_spots`` low-resolution spots.
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
    #: triples indexing at least this fraction of the best count compete on cell volume
    keep_fraction: float = 1.0
    #: looser tolerance: spots of a "second" lattice that the first indexes this well ...
    same_tol: float = 0.35
    #: ... in at least this fraction are the first crystal's leftovers
    same_fraction: float = 0.6
    #: least-squares refinement rounds of a basis
    refine_rounds: int = 3
    #: fewest spots a second lattice must index
    min_second: int = 10
    #: fraction of the leftover spots a second lattice must index
    min_second_fraction: float = 0.3


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


def find_lattice(r: np.ndarray, p: LatticeParams) -> tuple[np.ndarray, np.ndarray | None]:
    """Spots indexed by the best lattice found (boolean mask) and its basis (columns, 1/Å)."""
    none = np.zeros(len(r), bool), None
    if len(r) < 4:
        return none
    cands = _candidates(r, p)
    if len(cands) < 3:
        return none
    trios = np.array(list(combinations(range(len(cands)), 3)))
    bases = np.transpose(cands[trios], (0, 2, 1))  # (t, 3, 3), columns are the vectors
    vols = np.abs(np.linalg.det(bases))
    scale = np.prod(np.linalg.norm(cands, axis=1)[trios], axis=1)
    keep = vols >= 0.05 * scale
    if not keep.any():
        return none
    bases, vols = bases[keep], vols[keep]
    # all trial bases at once: indices h = B^-1 r for every basis and spot
    h = np.einsum("tij,nj->tni", np.linalg.inv(bases), r)
    n_ok = np.all(np.abs(h - np.rint(h)) <= p.tol, axis=2).sum(axis=1)
    # the most spots indexed; among triples within keep_fraction of that, the smallest cell
    good = n_ok >= p.keep_fraction * n_ok.max()
    best = bases[good][np.argmin(vols[good])]
    ok = _indexed(r, best, p.tol)
    for _ in range(p.refine_rounds):  # refine: r = B h by least squares over the indexed spots
        if ok.sum() < 6:
            break
        h = np.rint(np.linalg.solve(best, r[ok].T).T)
        sol, *_ = np.linalg.lstsq(h, r[ok], rcond=None)
        if not abs(np.linalg.det(sol)) > 0:
            break
        new = _indexed(r, sol.T, p.tol)
        if new.sum() <= ok.sum():
            break
        best, ok = sol.T, new
    return ok, best


def same_lattice(a: np.ndarray, b: np.ndarray, tol: float = 0.2) -> bool:
    """True if basis ``b``'s vectors are integer combinations of basis ``a``'s (within tol)."""
    m = np.linalg.solve(a, b)
    return bool(np.all(np.abs(m - np.rint(m)) <= tol))


def multi_lattice_score(r: np.ndarray, p: LatticeParams) -> float:
    """Fraction of spots (rows of ``r``) indexed by a second lattice; NaN if too few spots."""
    if len(r) < p.min_spots:
        return float("nan")
    first, basis1 = find_lattice(r, p)
    rest = r[~first]
    if basis1 is None or len(rest) < p.min_second:
        return 0.0
    second, basis2 = find_lattice(rest, p)
    n2 = int(second.sum())
    if n2 < p.min_second or n2 < p.min_second_fraction * len(rest):
        return 0.0
    # the first crystal's leftovers (its weaker, less precise spots), not a second crystal
    if same_lattice(basis1, basis2) or \
            _indexed(rest[second], basis1, p.same_tol).mean() >= p.same_fraction:
        return 0.0
    return n2 / len(r)
