"""Multiple-lattice score: the fraction of a frame's spots that belong to a *second* lattice.

Method (an indexing-free cousin of autoindexing by difference vectors):

1. Each spot becomes a reciprocal-space vector ``r = s1 - s0`` (1/Å) on the Ewald sphere.
2. Differences between each spot and its ``k`` nearest neighbours are, for spots of one crystal,
   short lattice vectors; they pile up in a few clusters, while differences between spots of two
   crystals scatter. Clusters are found on a grid of cell size ``tau`` (a fraction of the median
   nearest-neighbour distance) and the means of the ``n_candidates`` strongest distinct ones
   become basis candidates. Short vectors of a still tend to lie in one lattice plane (the one
   closest to the Ewald sphere near the origin), so ``n_extra`` further clusters that are not
   small integer combinations of two candidates are added: they supply the third direction.
3. Every non-coplanar triple of candidates is a trial basis. Candidates are only good to a few
   per cent (a spot sits on the Ewald sphere, off its lattice point by the excitation error),
   and index errors grow with the index, so an unrefined basis indexes the spots near the
   origin only. The trial bases are therefore refined by least squares from the origin
   outwards (``stages``: on the 25 % of spots nearest the origin, then 50 %, then all), keeping
   the ones indexing the most spots at each stage (``stage_keep``); all at once, as arrays.
   The basis indexing the most spots (within ``tol``) wins, ties going to the smaller cell.
4. The spots left unindexed are searched again the same way. If a second basis indexes at least
   ``min_second`` spots and ``min_second_fraction`` of the leftover, and is not the first
   lattice again (its vectors are not integer combinations of the first basis, and the first
   basis does not index ``same_fraction`` of its spots within ``same_tol``), the score is the
   fraction of all spots it indexes. Leftovers of the first crystal are set aside and the rest
   searched once more (``second_tries``); otherwise the score is 0.

So one lattice gives 0, two lattices give roughly the second crystal's share of spots.
The score is NaN with fewer than ``min_spots`` low-resolution spots.

Validation (measured with SpotFinder end to end on simulated EIGER 500K hits, default lysozyme
cell, ``hit_fraction=1``, ``multi_lattice_fraction`` 0 or 1, frames 0-19 of seeds 11-31 and
40-49, i.e. 620 one-lattice and 620 two-lattice frames; right means score > 0.1 exactly when
there are two crystals): 611/620 one-lattice and 615/620 two-lattice frames right, 98.9 %
(the previous version, without the out-of-plane candidates and the staged refinement of all
trial bases: 84 % of the same frames). Seed 11, used by tests/analyzers/test_spots.py: 40/40.
The misses:
one-lattice frames where no trial basis refines to the crystal's lattice (the best indexes only
55-70 % of the spots), whose leftovers then make a "second" lattice that the same-lattice tests
do not recognise; two-lattice frames whose second crystal's leftover spots all lie in one
lattice plane (zone axis along the beam: no non-coplanar triple), or whose second basis happens
to pass the same-lattice test. From the simulator's true spots (seeds 31-50, 12 one-lattice
frames each), the first basis is the crystal's own lattice, indexing >= 80 % of the spots, on
218/240 frames (tests/analyzers/test_lattice.py checks this on one seed).
Cost: the numpy reference (:func:`find_lattice_ref`) took about 4-9 ms per hit with 70-200
spots, mostly the overhead of many calls on tiny arrays; the numba search
(:mod:`xlive.analyzers._kernels.lattice`) does the same steps in one call.

Written by hand: DIALS/cctbx indexers are not on PyPI and do far more than this needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from ..errors import AnalyzerError
from ..validate import check_fields
from ._kernels import lattice as _kl


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
    #: most difference-vector clusters looked at for candidates
    n_clusters: int = 64
    #: further candidates: the strongest clusters that two candidates do not span
    n_extra: int = 2
    #: largest index deviation from an integer for a spot to count as indexed
    tol: float = 0.25
    #: triples indexing at least this fraction of the best count compete on cell volume
    keep_fraction: float = 1.0
    #: looser tolerance: spots of a "second" lattice that the first indexes this well ...
    same_tol: float = 0.35
    #: ... in at least this fraction are the first crystal's leftovers
    same_fraction: float = 0.6
    #: refinement stages: least squares on this fraction of the spots nearest the origin ...
    stages: tuple[float, ...] = (0.25, 0.5, 1.0, 1.0)
    #: ... after which at most this many trial bases, those indexing the most of them, go on
    stage_keep: tuple[int, ...] = (1000, 32, 8, 8)
    #: fewest spots a second lattice must index
    min_second: int = 10
    #: fraction of the leftover spots a second lattice must index
    min_second_fraction: float = 0.3
    #: searches for a second lattice (another after one that found the first's leftovers)
    second_tries: int = 2

    def __post_init__(self):
        check_fields(
            self,
            "analyzers.spots.stats.lattice",
            error=AnalyzerError,
            ranges={
                "min_spots": (3, None),
                "max_spots": (3, None),
                "d_limit": (0, None),
                "k_neighbours": (1, None),
                "tau": (1e-6, None),
                "n_candidates": (1, None),
                "n_clusters": (1, None),
                "n_extra": (0, None),
                "tol": (0, 0.5),
                "keep_fraction": (0, 1),
                "same_tol": (0, 0.5),
                "same_fraction": (0, 1),
                "stages": (0, 1),
                "stage_keep": (1, None),
                "min_second": (1, None),
                "min_second_fraction": (0, 1),
                "second_tries": (0, None),
            },
        )


def reciprocal_vectors(lab: np.ndarray, wavelength: float) -> np.ndarray:
    """Spots' lab positions ``(n, 3)`` (m) -> reciprocal vectors ``s1 - s0`` (1/Å)."""
    s1 = lab / np.linalg.norm(lab, axis=1, keepdims=True) / wavelength
    s1[:, 2] -= 1.0 / wavelength
    return s1


def _candidates(r: np.ndarray, p: LatticeParams) -> np.ndarray:
    """Basis candidates ``(m, 3)`` (1/Å): cluster means of neighbour difference vectors."""
    n = len(r)
    k = min(p.k_neighbours, n - 1)
    sq = np.sum(r * r, axis=1)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * (r @ r.T), 0.0))
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
    cell -= cell.min(axis=0)
    span = cell.max(axis=0) + 1
    key = (cell[:, 0] * span[1] + cell[:, 1]) * span[2] + cell[:, 2]
    _, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
    order = np.argsort(-counts, kind="stable")[: p.n_clusters]
    order = order[counts[order] >= 3]
    # cluster means, then the mean over each one's neighbourhood (clusters split by cell edges)
    sums = np.stack(
        [np.bincount(inv, weights=diff[:, a], minlength=len(counts)) for a in range(3)], axis=1
    )
    means = sums[order] / counts[order, None]
    lim2 = (1.5 * tau) ** 2
    d2 = np.sum(means**2, axis=1)[:, None] + np.sum(diff**2, axis=1)[None, :] - 2 * means @ diff.T
    near = (d2 < lim2).astype(float)
    means = (near @ diff) / np.maximum(near.sum(axis=1, keepdims=True), 1)
    # the strongest distinct clusters
    close = np.sum((means[:, None, :] - means[None, :, :]) ** 2, axis=2) <= lim2
    picked = []
    for i in range(len(means)):
        if not close[i, picked].any():
            picked.append(i)
            if len(picked) >= p.n_candidates:
                break
    centres = means[picked]
    if len(picked) < p.n_candidates or p.n_extra == 0:
        return centres
    # short vectors of a still tend to lie in one lattice plane: add the strongest further
    # clusters that are not small integer combinations of two candidates (out-of-plane ones)
    rest = means[picked[-1] + 1 :]
    a, b = np.triu_indices(len(centres), 1)
    pair = np.stack([centres[a], centres[b]], axis=2)  # (P, 3, 2)
    coef = np.rint(np.einsum("pkj,mj->mpk", np.linalg.pinv(pair), rest))  # (M, P, 2)
    res = rest[:, None, :] - np.einsum("pjk,mpk->mpj", pair, coef)
    spanned = np.any((np.sum(res**2, axis=2) <= lim2) & np.all(np.abs(coef) <= 3, axis=2), axis=1)
    for v in rest[~spanned]:
        if np.all(np.sum((centres - v) ** 2, axis=1) > lim2):
            centres = np.vstack([centres, v])
            if len(centres) >= p.n_candidates + p.n_extra:
                break
    return centres


def _indexed(r: np.ndarray, basis: np.ndarray, tol: float) -> np.ndarray:
    h = np.linalg.solve(basis, r.T).T  # r = basis @ h, basis columns are the vectors
    return np.all(np.abs(h - np.rint(h)) <= tol, axis=1)


def _index_counts(r: np.ndarray, bases: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(t, 3, n)`` of every spot in every basis and which are within ``tol``."""
    h = np.linalg.inv(bases) @ r.T
    return h, np.all(np.abs(h - np.rint(h)) <= tol, axis=1)


def _refine(r: np.ndarray, bases: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """One least-squares round for many bases at once over spots ``r``; also the counts."""
    h, ok = _index_counts(r, bases, tol)
    hi = np.rint(h) * ok[:, None, :]
    a = hi @ np.transpose(hi, (0, 2, 1))
    c = hi @ r
    fit = (ok.sum(axis=1) >= 6) & (np.abs(np.linalg.det(a)) > 1e-6)
    bases = bases.copy()
    if fit.any():
        new = np.transpose(np.linalg.solve(a[fit], c[fit]), (0, 2, 1))  # r = h @ x
        good = np.abs(np.linalg.det(new)) > 0
        bases[np.flatnonzero(fit)[good]] = new[good]
    return bases, ok.sum(axis=1)


def find_lattice(r: np.ndarray, p: LatticeParams) -> tuple[np.ndarray, np.ndarray | None]:
    """Spots indexed by the best lattice found (boolean mask) and its basis (columns, 1/Å).

    The numba search (:mod:`xlive.analyzers._kernels.lattice`); :func:`find_lattice_ref` is its
    numpy reference."""
    none = np.zeros(len(r), bool), None
    if len(r) < 4:
        return none
    r = np.ascontiguousarray(r, np.float64)
    cands = _kl.candidates(r, p.k_neighbours, p.tau, p.n_clusters, p.n_candidates, p.n_extra)
    best, found = _kl.search(
        r,
        cands,
        p.tol,
        np.asarray(p.stages, np.float64),
        np.asarray(p.stage_keep, np.int64),
        p.keep_fraction,
    )
    if not found:
        return none
    return _indexed(r, best, p.tol), best


def find_lattice_ref(r: np.ndarray, p: LatticeParams) -> tuple[np.ndarray, np.ndarray | None]:
    """Numpy reference of :func:`find_lattice`."""
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
    bases = bases[keep]
    # unrefined bases only index spots near the origin: refine from there outwards, pruning
    rs = r[np.argsort(np.sum(r * r, axis=1), kind="stable")]
    for frac, n_keep in zip(p.stages, p.stage_keep, strict=True):
        bases, n_ok = _refine(rs[: max(int(frac * len(r)), 8)], bases, p.tol)
        if len(bases) > n_keep:
            bases = bases[np.argsort(-n_ok, kind="stable")[:n_keep]]
    vols = np.abs(np.linalg.det(bases))
    n_ok = _index_counts(r, bases, p.tol)[1].sum(axis=1)
    # ties go to the larger reciprocal (smaller direct) cell: a finer reciprocal grid indexes
    # whatever the true one does
    good = n_ok >= p.keep_fraction * n_ok.max()
    best = bases[good][np.argmax(vols[good])]
    return _indexed(r, best, p.tol), best


def same_lattice(a: np.ndarray, b: np.ndarray, tol: float = 0.2) -> bool:
    """True if basis ``b``'s vectors are integer combinations of basis ``a``'s (within tol)."""
    m = np.linalg.solve(a, b)
    return bool(np.all(np.abs(m - np.rint(m)) <= tol))


def multi_lattice_score(r: np.ndarray, p: LatticeParams, find=find_lattice) -> float:
    """Fraction of spots (rows of ``r``) indexed by a second lattice; NaN if too few spots.
    ``find``: the lattice search (:func:`find_lattice` or its reference)."""
    if len(r) < p.min_spots:
        return float("nan")
    first, basis1 = find(r, p)
    if basis1 is None:
        return 0.0
    rest = r[~first]
    for _ in range(p.second_tries):
        if len(rest) < p.min_second:
            return 0.0
        second, basis2 = find(rest, p)
        n2 = int(second.sum())
        if n2 < p.min_second or n2 < p.min_second_fraction * len(rest):
            return 0.0
        # the first crystal's leftovers (its weaker, less precise spots), not a second crystal:
        # set them aside and look again
        if (
            same_lattice(basis1, basis2)
            or _indexed(rest[second], basis1, p.same_tol).mean() >= p.same_fraction
        ):
            rest = rest[~second]
            continue
        return n2 / len(r)
    return 0.0
