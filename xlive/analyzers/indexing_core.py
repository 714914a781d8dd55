"""Indexing one still: lattices (up to ``max_lattices``) from the spots' reciprocal vectors.

1. Candidate direct vectors from the 1-D periodicity search
   (:mod:`xlive.analyzers.indexing_search`).
2. Every non-coplanar triple of the best candidates is a trial basis; the one indexing the most
   spots wins (ties within ``tie_fraction`` of the best go to the smallest cell volume).
3. The basis is refined by least squares (``h = D r`` for the rounded indices), from the spots
   nearest the origin outwards, then Niggli-reduced. With a given cell it must match that cell
   (:func:`~xlive.analyzers.indexing_cells.match_cell`) and is reported in its setting;
   without one it is reported in the conventional setting of its Bravais lattice.
4. A lattice counts when it indexes at least ``min_indexed`` spots and ``min_fraction`` of the
   spots searched. Its spots are then set aside and the rest searched again: a second crystal
   in the beam shows as a second lattice. A further lattice must index ``min_indexed`` spots
   and ``min_fraction_next`` of what was left, differ in orientation from every lattice found
   (else it is the earlier crystal's leftovers), and, without a given cell, have the first
   lattice's cell (two crystals of one sample).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from .indexing_cells import (
    TargetCell,
    cell_parameters,
    lattice_type,
    match_cell,
    niggli_basis,
    right_handed,
)
from .indexing_search import DirectionGrid, candidate_vectors


@dataclass(frozen=True, kw_only=True)
class IndexingParams:
    """Settings of the indexer."""

    #: expected unit cell a, b, c (Å), alpha, beta, gamma (deg); None: find it from the data
    cell: tuple[float, float, float, float, float, float] | None = None
    #: space group of the expected cell (sets its centring), e.g. "P 41 21 2"; None: primitive
    space_group: str | None = None
    #: longest direct-lattice vector searched (Å) when no cell is given
    max_cell: float = 250.0
    #: shortest direct-lattice vector searched (Å)
    min_cell: float = 5.0
    #: most lattices per frame
    max_lattices: int = 2
    #: fewest spots a frame needs to be indexed (the strongest ``max_spots`` are used)
    min_spots: int = 10
    #: most spots used (strongest by SNR)
    max_spots: int = 300
    #: angular step of the direction search, radians
    step: float = 0.03
    #: trial directions refined after the search
    n_trial: int = 60
    #: best candidate vectors combined into trial bases
    n_basis: int = 20
    #: candidate vectors indexing at least this fraction of the best one's spots are basis
    #: candidates (the shortest ``n_basis`` of them)
    basis_count_fraction: float = 0.8
    #: tolerance of the single-vector counts that rank candidate vectors (tighter than ``tol``:
    #: a third of all spots fall within 0.15 of an integer by chance, half within 0.25)
    vector_tol: float = 0.15
    #: trial bases refined and checked per search (best first)
    n_try: int = 4
    #: trial bases indexing at least this fraction of the best one's spots compete on volume
    tie_fraction: float = 0.95
    #: largest distance of an index from an integer for a spot to count as indexed
    tol: float = 0.25
    #: fewest spots a lattice must index
    min_indexed: int = 12
    #: largest RMS distance of the indexed spots' indices from integers (any of h, k, l); a
    #: chance lattice spreads them evenly within ``tol`` (RMS ``tol / sqrt(3)``)
    max_index_rms: float = 0.11
    #: fraction of the frame's spots the first lattice must index
    min_fraction: float = 0.3
    #: fraction of the spots left over that a further lattice must index
    min_fraction_next: float = 0.4
    #: a further lattice differs from every earlier one by at least this rotation (degrees)
    min_misorientation: float = 2.0
    #: relative length tolerance when matching a given cell (or a first lattice's cell)
    length_tol: float = 0.05
    #: angle tolerance (degrees) when matching a given cell (or a first lattice's cell)
    angle_tol: float = 3.0
    #: largest share of the frame analysis time indexing may take (hits beyond it are left
    #: for later, ``index_tried`` False); None: index every hit
    budget: float | None = None

    def __post_init__(self):
        from ..errors import ConfigError

        if self.cell is not None:
            object.__setattr__(self, "cell", tuple(float(v) for v in self.cell))
            TargetCell(self.cell, self.space_group)  # checks both
        elif self.space_group is not None:
            raise ConfigError(
                "indexing: a space group needs a cell (give cell = [a, b, c, "
                "alpha, beta, gamma] too)"
            )
        if not 0 < self.tol < 0.5 or not 0 < self.vector_tol < 0.5:
            raise ConfigError(
                f"indexing: tol and vector_tol must be in (0, 0.5), got "
                f"{self.tol}, {self.vector_tol}"
            )
        if self.max_lattices < 1 or self.min_indexed < 3 or self.step <= 0:
            raise ConfigError("indexing: max_lattices >= 1, min_indexed >= 3 and step > 0")
        if self.budget is not None and not self.budget > 0:
            raise ConfigError(
                f"indexing: budget must be > 0 (share of the frame analysis "
                f"time), got {self.budget}"
            )
        if not self.min_cell < self.max_cell:
            raise ConfigError(
                f"indexing: min_cell ({self.min_cell}) must be below max_cell "
                f"({self.max_cell}) angstrom"
            )

    @property
    def target(self) -> TargetCell | None:
        return None if self.cell is None else TargetCell(tuple(self.cell), self.space_group)


@dataclass(frozen=True)
class Lattice:
    """One indexed lattice: basis rows (Å, reported setting), which spots it indexes."""

    basis: np.ndarray
    indexed: np.ndarray  # bool over the spots given to index_spots
    bravais: str

    @property
    def cell(self) -> np.ndarray:
        return cell_parameters(self.basis)

    @property
    def orientation(self) -> np.ndarray:
        """``A``: columns a*, b*, c* in the lab frame (1/Å); ``r = A h``."""
        return np.linalg.inv(self.basis)

    def hkl(self, r: np.ndarray) -> np.ndarray:
        """Nearest integer indices of reciprocal vectors ``r`` ``(n, 3)``."""
        return np.rint(r @ self.basis.T).astype(np.int64)


def _indexed(r: np.ndarray, d: np.ndarray, tol: float) -> np.ndarray:
    h = r @ d.T
    return np.all(np.abs(h - np.rint(h)) <= tol, axis=1)


def index_rms(r: np.ndarray, d: np.ndarray) -> np.ndarray:
    """RMS distance of ``d r`` from the nearest integers, per axis ``(3,)``."""
    h = r @ d.T
    return np.sqrt(np.mean((h - np.rint(h)) ** 2, axis=0)) if len(r) else np.full(3, np.nan)


def refine_basis(
    r: np.ndarray, d: np.ndarray, tol: float, stages: tuple[float, ...] = (0.5, 1.0, 1.0, 1.0)
) -> np.ndarray:
    """Least-squares basis (rows) making ``d r`` integral, from the nearest spots outwards.

    ``r`` sorted by length is assumed. A stage that would leave fewer than 6 spots or change
    the volume by more than 20 % is skipped.
    """
    n = len(r)
    vol = abs(np.linalg.det(d))
    for frac in stages:
        rs = r[: max(int(frac * n), 8)]
        h = rs @ d.T
        hi = np.rint(h)
        ok = np.all(np.abs(h - hi) <= tol, axis=1)
        if ok.sum() < 6:
            continue
        x, *_ = np.linalg.lstsq(rs[ok], hi[ok], rcond=None)
        new = x.T
        if abs(abs(np.linalg.det(new)) / vol - 1.0) <= 0.2:
            d = new
    return d


def ranked_bases(t: np.ndarray, ok: np.ndarray, p: IndexingParams) -> np.ndarray:
    """Trial bases (rows) from triples of ``t``, best first: ``(k, 3, 3)``.

    Triples indexing at least ``tie_fraction`` of the best count come first, smallest volume
    first (a supercell indexes what its cell does); then the others by count. Flat triples
    (volume below a quarter of the product of lengths) are left out.
    """
    k = len(t)
    if k < 3:
        return np.zeros((0, 3, 3))
    trios = np.array(list(combinations(range(k), 3)))
    bases = t[trios]
    vol = np.abs(np.linalg.det(bases))
    length = np.linalg.norm(t, axis=1)
    flat = vol < 0.25 * np.prod(length[trios], axis=1)
    counts = (ok[trios[:, 0]] & ok[trios[:, 1]] & ok[trios[:, 2]]).sum(axis=1)
    counts[flat] = -1
    top = counts.max()
    if top < 3:
        return np.zeros((0, 3, 3))
    near = counts >= p.tie_fraction * top
    order = np.lexsort((np.where(near, vol, -counts), ~near))
    order = order[counts[order] >= 3]
    return bases[order[: p.n_try]]


def _rotation_between(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest rotation (degrees) taking lattice ``a`` onto lattice ``b``, any basis choice.

    Both are direct bases (rows); the rotation is sought among ``b``'s integer re-expressions
    of ``a``'s reduced vectors (metric-preserving ones).
    """
    from .indexing_cells import _COMBOS

    a = niggli_basis(a)
    b = niggli_basis(b)
    vecs = _COMBOS @ b
    lens = np.linalg.norm(vecs, axis=1)
    best = 180.0
    la = np.linalg.norm(a, axis=1)
    cand = [np.flatnonzero(np.abs(lens - la[k]) <= 0.05 * la[k]) for k in range(3)]
    if any(c.size == 0 for c in cand):
        return best
    for i in cand[0]:
        for j in cand[1]:
            for k in cand[2]:
                m = vecs[[i, j, k]]
                if np.linalg.det(m) <= 0:
                    continue
                # rotation R with R a_i ~ m_i: polar decomposition of m^T a^-T ... via SVD
                u, _, vt = np.linalg.svd(m.T @ a)
                rot = u @ vt
                if np.linalg.det(rot) < 0:
                    continue
                ang = np.degrees(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1)))
                best = min(best, ang)
    return best


def find_lattice(
    r: np.ndarray,
    p: IndexingParams,
    grid: DirectionGrid,
    target: TargetCell | None,
    max_cell: float,
):
    """One lattice among spots ``r`` (sorted by length): ``(basis in reported setting, bravais)``.

    None if no trial basis works (or, with a target cell, none matches it).
    """
    t, count = candidate_vectors(
        r,
        max_cell=max_cell,
        min_cell=p.min_cell,
        step=p.step,
        n_trial=p.n_trial,
        tol=p.tol,
        min_count=max(p.min_indexed // 2, 3),
        grid=grid,
    )
    if len(t) < 3:
        return None
    # a lattice's shortest vectors are its likeliest basis: of the vectors indexing nearly as
    # many spots as the best one, the shortest are combined (single-vector counts include
    # chance hits, and with two crystals they mix the two)
    hv = t @ r.T
    count = np.sum(np.abs(hv - np.rint(hv)) <= p.vector_tol, axis=1)
    strong = count >= p.basis_count_fraction * count.max()
    order = np.flatnonzero(strong)[np.argsort(np.linalg.norm(t[strong], axis=1), kind="stable")]
    t = t[order[: p.n_basis]]
    h = t @ r.T
    ok = np.abs(h - np.rint(h)) <= p.tol
    best = None
    for d in ranked_bases(t, ok, p):
        d = refine_basis(r, right_handed(d), p.tol)
        d = niggli_basis(d)
        d = refine_basis(r, d, p.tol, stages=(1.0,))
        if target is not None:
            d = match_cell(d, target, length_tol=p.length_tol, angle_tol=p.angle_tol)
            if d is None:
                continue
        hit = _indexed(r, d, p.tol)
        n_hit = int(hit.sum())
        if n_hit < 3 or index_rms(r[hit], d).max() > p.max_index_rms:
            continue
        if best is None or n_hit > best[1]:
            best = (d, n_hit)
    if best is None:
        return None
    if target is not None:
        return best[0], target.bravais
    lt = lattice_type(best[0])
    return lt.basis, lt.bravais


def index_spots(
    r: np.ndarray, p: IndexingParams, grid: DirectionGrid | None = None
) -> list[Lattice]:
    """Lattices found among reciprocal vectors ``r`` ``(n, 3)`` (1/Å), best first."""
    n = len(r)
    if n < p.min_spots:
        return []
    target = p.target
    max_cell = p.max_cell
    if target is not None:
        max_cell = 1.2 * float(np.max(cell_parameters(niggli_basis(match_ready(target)))[:3]))
    if grid is None:
        grid = DirectionGrid(p.step)
    order = np.argsort(np.sum(r * r, axis=1), kind="stable")
    rs = r[order]
    free = np.ones(n, bool)
    found: list[Lattice] = []
    for _ in range(p.max_lattices):
        left = np.flatnonzero(free)
        if len(left) < max(p.min_indexed, p.min_spots if not found else 0):
            break
        res = find_lattice(rs[left], p, grid, target, max_cell)
        if res is None:
            break
        basis, bravais = res
        ok_left = _indexed(rs[left], basis, p.tol)
        n_ok = int(ok_left.sum())
        need = p.min_fraction if not found else p.min_fraction_next
        if n_ok < p.min_indexed or n_ok < need * len(left):
            break
        if found:
            if any(_rotation_between(f.basis, basis) < p.min_misorientation for f in found):
                break
            if target is None:
                first = found[0]
                if (
                    match_cell(
                        basis,
                        TargetCell(tuple(first.cell)),
                        length_tol=p.length_tol,
                        angle_tol=p.angle_tol,
                    )
                    is None
                ):
                    break
        mask = np.zeros(n, bool)
        mask[order[left[ok_left]]] = True
        found.append(Lattice(basis=basis, indexed=mask, bravais=bravais))
        free[left[ok_left]] = False
    return found


def match_ready(target: TargetCell) -> np.ndarray:
    """A primitive basis of the target lattice (rows)."""
    from .indexing_cells import direct_basis

    d = direct_basis(target.cell)
    c = target.centring
    if c == "P":
        return d
    import gemmi

    op = gemmi.SpaceGroup(target.space_group).centred_to_primitive()
    q = np.array(op.rot, dtype=np.float64) / op.DEN
    return q.T @ d
