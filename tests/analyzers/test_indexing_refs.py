"""xlive's basis search, Niggli cells and Bravais lattices against cctbx/rstbx (own process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xlive.analyzers.indexing import Indexer, IndexingParams
from xlive.analyzers.indexing_cells import cell_parameters, direct_basis, lattice_type, niggli_basis

from .indexing_helpers import simulated_peaks

HERE = Path(__file__).parent


def cctbx_reference(tmp_path, **arrays) -> dict:
    """Run tests/analyzers/cctbx_reference.py on ``arrays`` in a fresh interpreter."""
    probe = subprocess.run(
        [sys.executable, "-c", "import cctbx.uctbx, rstbx.dps_core"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip("cctbx-base (cctbx, rstbx) is not installed: pip install cctbx-base")
    path = tmp_path / "in.npz"
    np.savez(path, **arrays)
    res = subprocess.run(
        [sys.executable, str(HERE / "cctbx_reference.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_basis_search_finds_the_vectors_rstbx_dps_finds(tmp_path):
    geom, cell, frames = simulated_peaks(3, seed=31, hit_fraction=1.0)
    ix = Indexer(geom, IndexingParams(max_cell=120.0))
    for f in frames:
        lattices, rows, r = ix.index(f["peak_x"], f["peak_y"], f["peak_snr"])
        assert len(lattices) == 1
        ref = np.array(cctbx_reference(tmp_path, r=r, max_cell=120.0)["dps_vectors"])
        # each vector of the reduced cell xlive finds is one rstbx finds (or its opposite);
        # rstbx's are unrefined search results, good to a few per cent
        for v in niggli_basis(lattices[0].basis):
            near = np.abs(ref @ v) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(v))
            length = np.abs(np.linalg.norm(ref, axis=1) / np.linalg.norm(v) - 1)
            assert np.any((near > np.cos(np.radians(1.5))) & (length < 0.03)), v


def test_niggli_cells_and_bravais_lattices_equal_cctbx(tmp_path):
    rng = np.random.default_rng(7)
    cells = [
        (79.1, 79.1, 37.9, 90, 90, 90),
        (58.6, 58.6, 151.5, 90, 90, 90),
        (40.0, 60.0, 80.0, 90, 90, 90),
        (70.0, 70.0, 120.0, 90, 90, 120),
        (60.0, 60.0, 60.0, 70, 70, 70),
        (52.0, 58.0, 67.0, 90, 104.0, 90),
        (50.0, 60.0, 70.0, 80.0, 95.0, 105.0),
        (100.0, 100.0, 100.0, 90, 90, 90),
    ]
    noisy = []
    for c in cells:  # the measured kind: lengths to 0.2 %, angles to 0.2 degrees
        noisy.append(
            tuple(np.asarray(c) + np.r_[rng.normal(0, 0.002, 3) * c[:3], rng.normal(0, 0.2, 3)])
        )
    ref = cctbx_reference(tmp_path, cells=np.array(noisy))
    for c, b, nig in zip(noisy, ref["bravais"], ref["niggli"], strict=True):
        d = direct_basis(c)
        assert lattice_type(d).bravais == b, (c, b)
        np.testing.assert_allclose(cell_parameters(niggli_basis(d)), nig, rtol=1e-6, atol=1e-4)
