"""Indexing stills: kernels against numpy references, cells against gemmi/spglib, and the
indexer against the simulator's true crystals (one and two lattices, blank frames)."""

from __future__ import annotations

import numpy as np
import pytest

from xlive.analyzers.indexing import IndexedAnalyzer, Indexer, IndexingParams, index_features
from xlive.analyzers.indexing_cells import (
    TargetCell,
    cell_parameters,
    direct_basis,
    lattice_type,
    match_cell,
    niggli_basis,
)
from xlive.analyzers.indexing_predict import rays_to_pixels
from xlive.analyzers.indexing_search import (
    DirectionGrid,
    fundamental_peaks,
    fundamental_peaks_ref,
    projection_histograms,
    projection_histograms_ref,
)
from xlive.errors import ConfigError

from .indexing_helpers import misorientation, simulated_peaks

LYSOZYME = (79.1, 79.1, 37.9, 90.0, 90.0, 90.0)


# ---------------------------------------------------------------------------- kernels
def test_projection_histograms_equal_numpy():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(150, 3)) * 0.2
    dirs = DirectionGrid(0.08).directions
    pmax = float(np.linalg.norm(r, axis=1).max()) * 1.000001
    out = np.empty((len(dirs), 97), np.float32)
    projection_histograms(r, dirs, pmax, 97, out)
    np.testing.assert_array_equal(out, projection_histograms_ref(r, dirs, pmax, 97))
    assert np.all(out.sum(axis=1) == 150)


def test_fundamental_peaks_equal_numpy():
    rng = np.random.default_rng(1)
    f = (rng.normal(size=(300, 80)) + 1j * rng.normal(size=(300, 80))).astype(np.complex64)
    f[:40, 30] = 50  # strong harmonics with (rows < 20) or without a fundamental at 15
    f[:20, 15] = 45
    k = np.empty(300, np.int64)
    power = np.empty(300)
    fundamental_peaks(f, 4, 70, 0.64, k, power)
    k_ref, p_ref = fundamental_peaks_ref(f, 4, 70, 0.64)
    np.testing.assert_array_equal(k, k_ref)
    np.testing.assert_allclose(power, p_ref, rtol=1e-5)
    assert np.all(k[:20] == 15) and np.all(k[20:40] == 30)


def test_direction_grid_covers_the_hemisphere():
    grid = DirectionGrid(0.05)
    u = np.random.default_rng(2).normal(size=(2000, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    nearest = np.max(np.abs(u @ grid.directions.T), axis=1)  # a line: u and -u alike
    assert np.degrees(np.arccos(nearest.min())) < np.degrees(0.05)
    # a single bump in the score is one local maximum
    score = grid.directions @ np.array([0.3, -0.2, 0.93])
    assert len(grid.local_maxima(np.abs(score) ** 8, 10)) == 1


# ---------------------------------------------------------------------------- cells
def random_setting(cell, rng, centring_op=None, noise=0.0):
    """A primitive basis of ``cell``'s lattice in a random unimodular setting, rotated."""
    d = direct_basis(cell)
    if centring_op is not None:
        d = centring_op @ d
    m = np.array([[1, 1, 0], [0, 1, 0], [1, -1, 1]]) @ np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1]])
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    return (m @ d) @ q.T + rng.normal(0.0, noise, (3, 3))


@pytest.mark.parametrize(
    "cell, sg, bravais",
    [
        (LYSOZYME, "P 43 21 2", "tP"),
        ((58.6, 58.6, 151.5, 90, 90, 90), "P 41 21 2", "tP"),
        ((61.0, 91.0, 151.0, 90, 90, 90), "I 2 2 2", "oI"),
        ((120.0, 60.0, 80.0, 90, 106.0, 90), "C 1 2 1", "mC"),
        ((70.0, 70.0, 120.0, 90, 90, 120), "P 61", "hP"),
        ((120.0, 120.0, 120.0, 90, 90, 90), "F 2 3", "cF"),
        ((50.0, 60.0, 70.0, 80.0, 95.0, 105.0), "P 1", "aP"),
    ],
)
def test_bravais_lattice_and_given_cell_from_any_setting(cell, sg, bravais):
    import gemmi

    rng = np.random.default_rng(3)
    g = gemmi.SpaceGroup(sg)
    op = g.centred_to_primitive()
    prim = (np.array(op.rot, float) / op.DEN).T
    for noise in (0.0, 0.05):
        d = random_setting(cell, rng, prim, noise)
        assert TargetCell(cell, sg).bravais == bravais
        lt = lattice_type(d)
        assert lt.bravais == bravais, (noise, lt.bravais)
        found = np.sort(cell_parameters(lt.basis)[:3])
        np.testing.assert_allclose(found, np.sort(cell[:3]), rtol=0.01)
        m = match_cell(d, TargetCell(cell, sg))
        assert m is not None and np.linalg.det(m) > 0
        np.testing.assert_allclose(cell_parameters(m), cell, rtol=0.01, atol=0.5)
        # the matched basis spans the same lattice (primitive vectors are integer combinations)
        coef = np.linalg.solve(niggli_basis(d).T, m.T)
        np.testing.assert_allclose(coef, np.rint(coef), atol=0.02)
    # a cell 10 % off does not match
    other = tuple(v * 1.1 if i < 3 else v for i, v in enumerate(cell))
    assert match_cell(random_setting(cell, rng, prim), TargetCell(other, sg)) is None


def test_niggli_cell_equals_gemmi_reduced_cell_of_the_truth():
    import gemmi

    rng = np.random.default_rng(4)
    d = random_setting(LYSOZYME, rng)
    red = gemmi.UnitCell(*LYSOZYME)
    gv = gemmi.GruberVector(red, "P", True)
    gv.niggli_reduce()
    np.testing.assert_allclose(
        cell_parameters(niggli_basis(d)), gv.get_cell().parameters, atol=1e-6
    )


def test_bad_cells_say_what_is_wrong():
    with pytest.raises(ConfigError, match="6 numbers"):
        TargetCell((79.1, 79.1, 37.9))
    with pytest.raises(ConfigError, match="do not form a cell"):
        TargetCell((10, 10, 10, 170, 170, 170))
    with pytest.raises(ConfigError, match="unknown space group"):
        TargetCell(LYSOZYME, "P 7")


def test_rays_to_pixels_inverts_lab_positions():
    from xlive.geometry import Geometry, Panel

    # two panels: one flat, one rotated in plane and tilted out of it, farther away
    p0 = Panel("p0", 0, 99, 0, 79, corner_x=-120.0, corner_y=-40.0, pixel_size=1e-4)
    p1 = Panel(
        "p1",
        0,
        99,
        80,
        159,
        fs=(0.0, 0.96, 0.28),
        ss=(-1.0, 0.0, 0.0),
        corner_x=60.0,
        corner_y=-50.0,
        coffset=0.01,
        pixel_size=1e-4,
    )
    g = Geometry(shape=(160, 100), distance=0.1, wavelength=1.0, panels=(p0, p1))
    rng = np.random.default_rng(5)
    x = rng.uniform(-0.4, 99.4, 300)
    y = rng.uniform(-0.4, 159.4, 300)
    lab = g.lab_positions(x, y)
    px, py = rays_to_pixels(g, lab * rng.uniform(0.5, 2.0, (300, 1)))
    np.testing.assert_allclose(px, x, atol=1e-8)
    np.testing.assert_allclose(py, y, atol=1e-8)
    miss = rays_to_pixels(g, np.array([[0.0, 0.0, -1.0], [5.0, 0.0, 0.01]]))
    assert np.isnan(miss[0]).all()


# ---------------------------------------------------------------------------- simulator truth
@pytest.fixture(scope="module")
def one_lattice():
    return simulated_peaks(30, seed=21, hit_fraction=1.0)


@pytest.fixture(scope="module")
def two_lattices():
    return simulated_peaks(20, seed=22, hit_fraction=1.0, multi_lattice_fraction=1.0)


@pytest.mark.parametrize("given", [True, False], ids=["cell-given", "cell-free"])
def test_single_lattice_hits_index_to_the_true_crystal(one_lattice, given):
    geom, cell, frames = one_lattice
    params = IndexingParams(cell=cell if given else None)
    ix = Indexer(geom, params)
    strong = [f for f in frames if f["n_strong"] >= 15]
    assert len(strong) >= 25
    good = wrong = 0
    for f in strong:
        out = ix.index_block(
            {k: np.asarray(f[k])[None] for k in ("peak_x", "peak_y", "peak_snr", "is_hit")}
        )
        n = int(out["n_lattices"][0])
        if n != 1:
            wrong += n > 1
            continue
        found = out["unit_cell"][0, 0]
        rel = np.abs(found - np.asarray(cell)) / np.asarray(cell)
        rot = misorientation(out["orientation"][0, 0].astype(float), f["true_a"][0], cell)
        ok = rel.max() < 0.01 and rot < 0.5
        good += ok
        wrong += not ok
        assert 0 < out["rmsd_px"][0, 0] < 2.0
        assert out["indexed_fraction"][0, 0] > 0.5
    assert good >= 0.95 * len(strong), f"{good}/{len(strong)} indexed right"
    assert wrong <= 0.02 * len(strong), f"{wrong}/{len(strong)} reported wrongly"


def test_two_lattice_frames_are_found_as_two(two_lattices):
    geom, cell, frames = two_lattices
    ix = Indexer(geom, IndexingParams(cell=cell))
    feats = {
        k: np.stack([np.asarray(f[k]) for f in frames])
        for k in ("peak_x", "peak_y", "peak_snr", "is_hit")
    }
    out = ix.index_block(feats)
    assert np.mean(out["n_lattices"] == 2) >= 0.9, out["n_lattices"]
    # each found lattice is one of the frame's two crystals
    for k, f in enumerate(frames):
        for j in range(int(out["n_lattices"][k])):
            a = out["orientation"][k, j].astype(float)
            assert min(misorientation(a, t, cell) for t in f["true_a"]) < 0.5
    # peaks are shared out between the lattices
    two = out["n_lattices"] == 2
    assert np.all(np.any(out["peak_lattice"][two] == 1, axis=1))


@pytest.mark.parametrize("ice", [0.0, 1.0], ids=["plain", "ice-rings"])
def test_blank_frames_do_not_index(ice):
    geom, cell, frames = simulated_peaks(12, seed=23, hit_fraction=0.0, ice_fraction=ice)
    feats = {
        k: np.stack([np.asarray(f[k]) for f in frames]) for k in ("peak_x", "peak_y", "peak_snr")
    }
    feats["is_hit"] = np.ones(len(frames), bool)  # index them all, hit or not
    for params in (IndexingParams(cell=cell), IndexingParams()):
        out = Indexer(geom, params).index_block(feats)
        assert out["index_tried"].all()
        assert not out["indexed"].any(), np.flatnonzero(out["indexed"])


def test_indexed_analyzer_adds_indexing_to_the_frame_features(one_lattice):
    from xlive.analyzers import FrameAnalyzer
    from xlive.simulate import Simulation

    geom, cell, _ = one_lattice
    sim = Simulation(detector="eiger500k", seed=21, hit_fraction=0.5)
    frames = np.stack([sim.frame(i)[0] for i in range(6)])
    inner = FrameAnalyzer(geom)
    an = IndexedAnalyzer(inner, Indexer(geom, IndexingParams(cell=cell)))
    names = [s.name for s in an.describe()]
    assert len(names) == len(set(names)) and {"unit_cell", "radial_profile"} <= set(names)
    out = an(frames)
    for s in an.describe():
        assert out[s.name].shape == s.shape(6), s.name
    assert np.array_equal(out["index_tried"], out["is_hit"])
    assert np.array_equal(out["indexed"], out["is_hit"])  # every simulated hit indexes
    # the same from the stored peak tables
    again = index_features(out, geom, IndexingParams(cell=cell))
    np.testing.assert_allclose(again["unit_cell"], out["unit_cell"], equal_nan=True)
    # a budget of nothing leaves the hits for later
    lazy = IndexedAnalyzer(inner, Indexer(geom, IndexingParams(cell=cell)), budget=0.0)
    res = lazy(frames)
    assert not res["index_tried"].any() and not res["indexed"].any()
