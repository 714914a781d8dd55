"""Simulated hits with their true crystals, and an orientation check that does not use xlive."""

from __future__ import annotations

import numpy as np

from xlive.analyzers import SpotFinder
from xlive.simulate import SimParams, Simulation
from xlive.simulate.lattice import reciprocal_basis


def simulated_peaks(n: int, **params):
    """Simulator frames through the spot finder: ``(geometry, cell, frames)``.

    Each frame is a dict with the spot finder's per-frame outputs (``peak_x`` ... ``is_hit``)
    and the truth: ``n_lattices``, ``n_strong`` (spots with SNR >= 10) and ``true_a`` (the
    crystals' ``A = U B``, columns a*, b*, c* in the lab frame).
    """
    sim = Simulation(SimParams(**{"detector": "eiger500k", **params}))
    sf = SpotFinder(sim.geometry)
    b = reciprocal_basis(sim.params.unit_cell)
    frames = []
    for i in range(n):
        img, truth = sim.frame(i)
        out = sf(img)
        frame = {k: v[0] for k, v in out.items()}
        frame.update(
            n_lattices=truth.n_lattices,
            n_strong=truth.n_spots,
            true_a=[u @ b for u in sim.event(i)[2]],
        )
        frames.append(frame)
    return sim.geometry, sim.params.unit_cell, frames


def lattice_rotations(cell) -> list[np.ndarray]:
    """Rotations of the lattice's point group as integer matrices acting on Miller indices
    (gemmi's lattice symmetry: ``find_lattice_symmetry``)."""
    import gemmi

    ops = gemmi.find_lattice_symmetry(gemmi.UnitCell(*cell), "P", 3.0)
    mats = []
    for op in ops:
        rot = np.array(op.rot, dtype=float) / op.DEN  # acts on fractional coordinates
        if np.linalg.det(rot) > 0:
            mats.append(np.rint(np.linalg.inv(rot).T))  # the same operation on indices
    return mats


def misorientation(found_a: np.ndarray, true_a: np.ndarray, cell) -> float:
    """Smallest rotation (degrees) between two orientation matrices of the same cell and
    setting, over the lattice's symmetry (equivalent choices of axes)."""
    from xlive.analyzers.indexing_cells import direct_basis

    b = np.linalg.inv(direct_basis(cell))  # columns a*, b*, c* of the cell, crystal frame
    best = 180.0
    for m in lattice_rotations(cell):
        u = found_a @ m @ np.linalg.inv(b)
        w, _, vt = np.linalg.svd(u)
        u = w @ vt
        if np.linalg.det(u) < 0:
            continue
        rel = u @ (true_a @ np.linalg.inv(b)).T
        w, _, vt = np.linalg.svd(rel)
        rel = w @ vt
        ang = np.degrees(np.arccos(np.clip((np.trace(rel) - 1.0) / 2.0, -1.0, 1.0)))
        best = min(best, float(ang))
    return best
