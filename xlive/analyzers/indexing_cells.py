"""Unit cells of indexed lattices: parameters, Niggli reduction, Bravais lattice, a given cell.

A lattice is held as its direct basis ``D`` ``(3, 3)``: rows are the vectors a, b, c in the lab
frame (Å). Miller indices of a reciprocal vector ``r`` (1/Å) are ``h = D r``; the orientation
matrix ``A = D⁻¹`` has the reciprocal axes a*, b*, c* as columns (``r = A h``).

Libraries: gemmi's ``GruberVector`` does the Niggli reduction (Křivý-Gruber) and spglib finds
the lattice's symmetry, Bravais type and conventional setting (a lattice is a crystal with one
atom at the origin). cctbx does both too, but its Python extension crashes (segmentation fault
in ``boost_adaptbx``'s import) in a process that has loaded numba's LLVM first, as every xlive
process has; the tests compare with cctbx in a separate process.

Matching a given cell (:func:`match_cell`) is written here: among the short integer
combinations of a reduced basis, the right-handed triple whose lengths and angles come closest
to the given cell, with the cell's centring fixing the volume ratio (CrystFEL's cell matching
does the same; no installed library offers it without cctbx).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

from ..errors import ConfigError

#: Bravais lattice symbols, in the order of the codes stored per lattice (-1: none)
BRAVAIS = ("aP", "mP", "mC", "oP", "oC", "oI", "oF", "tP", "tI", "hR", "hP", "cP", "cI", "cF")

#: lattice points per conventional cell for each centring letter
CENTRING_MULTIPLICITY = {"P": 1, "A": 2, "B": 2, "C": 2, "I": 2, "R": 3, "F": 4}


def cell_parameters(d: np.ndarray) -> np.ndarray:
    """``(a, b, c, alpha, beta, gamma)`` (Å, degrees) of direct basis rows ``d`` ``(..., 3, 3)``."""
    g = d @ np.swapaxes(d, -1, -2)
    lengths = np.sqrt(np.stack([g[..., 0, 0], g[..., 1, 1], g[..., 2, 2]], axis=-1))
    a, b, c = lengths[..., 0], lengths[..., 1], lengths[..., 2]
    cosines = np.stack(
        [g[..., 1, 2] / (b * c), g[..., 0, 2] / (a * c), g[..., 0, 1] / (a * b)], axis=-1
    )
    return np.concatenate([lengths, np.degrees(np.arccos(np.clip(cosines, -1, 1)))], axis=-1)


def direct_basis(cell) -> np.ndarray:
    """A direct basis (rows a, b, c; a along x, b in the xy plane) with these cell parameters."""
    a, b, c, al, be, ga = (float(v) for v in cell)
    if min(a, b, c) <= 0:
        raise ConfigError(f"unit cell lengths must be > 0 angstrom, got {a}, {b}, {c}")
    ca, cb, cg = np.cos(np.radians([al, be, ga]))
    sg = np.sin(np.radians(ga))
    cx = c * cb
    cy = c * (ca - cb * cg) / sg if sg > 0 else np.nan
    cz2 = c * c - cx * cx - cy * cy
    if not cz2 > 0:
        raise ConfigError(f"unit cell angles {al}, {be}, {ga} degrees do not form a cell")
    return np.array([[a, 0.0, 0.0], [b * cg, b * sg, 0.0], [cx, cy, np.sqrt(cz2)]])


def right_handed(d: np.ndarray) -> np.ndarray:
    """The basis, negated if left-handed (``-D`` indexes the same spots with ``-h``)."""
    return d if np.linalg.det(d) > 0 else -d


def niggli_basis(d: np.ndarray) -> np.ndarray:
    """The Niggli-reduced basis of the lattice spanned by rows ``d`` (gemmi), right-handed."""
    import gemmi

    gv = gemmi.GruberVector(gemmi.UnitCell(*cell_parameters(d)), "P", True)
    gv.niggli_reduce()
    op = gv.change_of_basis
    q = np.array(op.rot, dtype=np.float64) / op.DEN
    return right_handed(q.T @ d)


@dataclass(frozen=True)
class LatticeType:
    """A lattice's Bravais type and its conventional basis (rows, not idealised)."""

    bravais: str
    basis: np.ndarray

    @property
    def code(self) -> int:
        return BRAVAIS.index(self.bravais)


def _bravais_symbol(number: int, international: str) -> str:
    centring = international[0]
    if number <= 2:
        return "aP"
    if number <= 15:
        return "m" + ("P" if centring == "P" else "C")
    if number <= 74:
        return "o" + ("C" if centring in "ABC" else centring)
    if number <= 142:
        return "t" + centring
    if number <= 167:
        return "hR" if centring == "R" else "hP"
    if number <= 194:
        return "hP"
    return "c" + centring


def lattice_type(d: np.ndarray, *, length_tol: float = 0.01, angle_tol: float = 1.5) -> LatticeType:
    """Bravais type and conventional basis of the lattice of rows ``d`` (spglib).

    ``length_tol`` is relative to the cube root of the cell volume; ``angle_tol`` in degrees.
    """
    import spglib
    import spglib.error

    # errors as exceptions (spglib's recommended mode; the old one warns on every call)
    spglib.error.OLD_ERROR_HANDLING = False
    d = niggli_basis(d)
    vol = abs(np.linalg.det(d))
    try:
        ds = spglib.get_symmetry_dataset(
            (d, [[0.0, 0.0, 0.0]], [1]),
            symprec=length_tol * vol ** (1 / 3),
            angle_tolerance=angle_tol,
        )
    except spglib.error.SpglibError:
        ds = None
    if ds is None:
        return LatticeType("aP", d)
    conv = np.linalg.inv(ds.transformation_matrix).T @ d
    return LatticeType(_bravais_symbol(ds.number, ds.international), right_handed(conv))


@dataclass(frozen=True)
class TargetCell:
    """A cell the user expects: conventional parameters and the lattice centring."""

    cell: tuple[float, float, float, float, float, float]
    space_group: str | None = None

    def __post_init__(self):
        if len(self.cell) != 6:
            raise ConfigError(
                f"a unit cell has 6 numbers (a, b, c, alpha, beta, gamma), got "
                f"{len(self.cell)}: {self.cell}"
            )
        direct_basis(self.cell)  # checks the numbers form a cell
        _ = self.centring  # checks the space group

    @property
    def centring(self) -> str:
        if not self.space_group:
            return "P"
        import gemmi

        try:
            sg = gemmi.SpaceGroup(self.space_group)
        except ValueError:
            raise ConfigError(
                f"unknown space group {self.space_group!r}; give a Hermann-Mauguin "
                "symbol such as 'P 41 21 2' or 'P43212', or a number"
            ) from None
        return sg.centring_type()

    @property
    def bravais(self) -> str:
        """Bravais type of this cell (from its metric and centring)."""
        import gemmi

        if not self.space_group:
            return lattice_type(direct_basis(self.cell)).bravais
        sg = gemmi.SpaceGroup(self.space_group)
        return _bravais_symbol(sg.number, sg.centring_type())


_COMBOS = np.array([v for v in product(range(-2, 3), repeat=3) if any(v)], dtype=np.float64)


def match_cell(
    d: np.ndarray, target: TargetCell, *, length_tol: float = 0.05, angle_tol: float = 3.0
) -> np.ndarray | None:
    """Basis of lattice ``d`` (rows, any primitive basis) in ``target``'s setting, or None.

    The returned rows are integer combinations of ``d`` whose lengths lie within ``length_tol``
    (relative) and angles within ``angle_tol`` degrees of the target cell, right-handed, with
    ``|det|`` of the combination equal to the target's centring multiplicity; of those, the
    closest to the target cell.
    """
    d = niggli_basis(d)
    mult = CENTRING_MULTIPLICITY.get(target.centring, 1)
    tcell = np.asarray(target.cell, dtype=np.float64)
    vecs = _COMBOS @ d
    lens = np.linalg.norm(vecs, axis=1)
    cand = [np.flatnonzero(np.abs(lens - tcell[k]) <= length_tol * tcell[k]) for k in range(3)]
    if any(c.size == 0 for c in cand):
        return None
    ia, ib, ic = (g.ravel() for g in np.meshgrid(*cand, indexing="ij"))
    combos = np.stack([_COMBOS[ia], _COMBOS[ib], _COMBOS[ic]], axis=1)
    det = np.linalg.det(combos)
    ok = np.abs(np.abs(det) - mult) < 0.5
    if not ok.any():
        return None
    basis = np.einsum("tij,jk->tik", combos[ok], d)
    par = cell_parameters(basis)
    dl = np.abs(par[:, :3] - tcell[:3]) / tcell[:3]
    da = np.abs(par[:, 3:] - tcell[3:])
    good = np.all(dl <= length_tol, axis=1) & np.all(da <= angle_tol, axis=1) & (det[ok] > 0)
    if not good.any():
        return None
    cost = np.sum((dl / length_tol) ** 2, axis=1) + np.sum((da / angle_tol) ** 2, axis=1)
    cost[~good] = np.inf
    return basis[int(np.argmin(cost))]
