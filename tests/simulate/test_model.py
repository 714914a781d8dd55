"""The simulator's physics: determinism, Bragg geometry of every spot, detector values."""

from __future__ import annotations

import numpy as np
import pytest

from xlive.simulate import SimParams, Simulation
from xlive.simulate.lattice import reciprocal_basis


def d_from_cell(hkl: np.ndarray, cell) -> np.ndarray:
    """d-spacing from the metric tensor (independent of the B-matrix construction)."""
    a, b, c, al, be, ga = cell
    ca, cb, cg = np.cos(np.radians([al, be, ga]))
    G = np.array(
        [
            [a * a, a * b * cg, a * c * cb],
            [a * b * cg, b * b, b * c * ca],
            [a * c * cb, b * c * ca, c * c],
        ]
    )
    Gs = np.linalg.inv(G)
    inv_d2 = np.einsum("ni,ij,nj->n", hkl, Gs, hkl)
    return 1.0 / np.sqrt(inv_d2)


@pytest.fixture(scope="module")
def sim():
    return Simulation(
        SimParams(
            detector="eiger500k",
            seed=3,
            hit_fraction=1.0,
            unit_cell=(61.2, 72.5, 80.3, 90.0, 101.5, 90.0),
        )
    )


def test_deterministic_for_a_seed(sim):
    again = Simulation(sim.params)
    for n in (0, 5):
        a, ta = sim.frame(n)
        b, tb = again.frame(n)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ta.spots["x"], tb.spots["x"])
    other = Simulation(
        SimParams(
            **{
                **sim.params.to_dict(),
                "seed": 4,
                "unit_cell": sim.params.unit_cell,
                "jet_loss": (),
                "beam_offset": sim.params.beam_offset,
            }
        )
    )
    assert not np.array_equal(sim.frame(0)[0], other.frame(0)[0])


def test_frames_do_not_depend_on_order(sim):
    late_first = Simulation(sim.params)
    a7 = late_first.frame(7)[0]
    late_first.frame(2)
    np.testing.assert_array_equal(a7, sim.frame(7)[0])


def test_spot_d_matches_unit_cell(sim):
    _, truth = sim.frame(1)
    s = truth.spots
    assert len(s["x"]) > 50
    hkl = np.stack([s["h"], s["k"], s["l"]], axis=1).astype(float)
    np.testing.assert_allclose(s["d"], d_from_cell(hkl, sim.params.unit_cell), rtol=1e-9)


def test_spot_positions_obey_bragg_law(sim):
    """The scattering angle at each spot's pixel position gives back its d (within the
    excitation-error tolerance set by mosaicity and bandwidth)."""
    _, truth = sim.frame(2)
    s = truth.spots
    g = sim.geometry
    bx, by = g.beam_center
    # array-index coords -> lab metres (pixel j centre at j + 0.5 in beam-centre units)
    x = (s["x"] + 0.5 - bx) * g.pixel_size
    y = (s["y"] + 0.5 - by) * g.pixel_size
    two_theta = np.arctan2(np.hypot(x, y), g.distance)
    d_pos = g.wavelength / (2 * np.sin(two_theta / 2))
    tol = 3 * (np.radians(sim.params.mosaicity) + sim.params.bandwidth) / np.tan(two_theta / 2)
    rel = np.abs(d_pos - s["d"]) / s["d"]
    assert np.all(rel <= tol + 1e-3), rel.max()
    # the geometry's own q map agrees at the nearest pixel
    iy, ix = np.rint(s["y"]).astype(int), np.rint(s["x"]).astype(int)
    d_map = g.maps.d[iy, ix]
    assert np.median(np.abs(d_map - d_pos) / d_pos) < 0.01


def test_reciprocal_basis_orthogonality():
    B = reciprocal_basis((50.0, 60.0, 70.0, 90.0, 90.0, 90.0))
    np.testing.assert_allclose(np.diag(B), [1 / 50, 1 / 60, 1 / 70])


def test_spots_are_in_the_pixels(sim):
    img, truth = sim.frame(3)
    bg = sim._backgrounds((truth.jet_on, truth.ice, truth.laser_on))
    s = truth.spots
    strong = (s["snr"] > 30) & ~s["masked"]
    assert strong.sum() >= 5
    iy, ix = np.rint(s["y"][strong]).astype(int), np.rint(s["x"][strong]).astype(int)
    excess = img[iy, ix].astype(float) - np.median([b[iy, ix] for b in bg], axis=0)
    assert np.all(excess > 0)
    # the sum over a 7x7 box recovers the expected photons within Poisson + background noise
    box = np.array(
        [
            img[y - 3 : y + 4, x - 3 : x + 4].astype(float).sum()
            for y, x in zip(iy, ix, strict=True)
            if 3 <= y < img.shape[0] - 3
            and 3 <= x < img.shape[1] - 3
            and not sim.geometry.mask[y - 3 : y + 4, x - 3 : x + 4].any()
        ]
    )
    n = s["photons"][strong][: len(box)]
    assert np.median(box / n) == pytest.approx(1.0, abs=0.25)


def test_detector_values_at_gaps_and_bad_pixels():
    eig = Simulation(SimParams(detector="eiger1m", seed=0, hit_fraction=0.0))
    img, _ = eig.frame(0)
    gaps = (eig.pixel_mask & 1).astype(bool)
    assert gaps.any() and np.all(img[gaps] == 2**32 - 1)
    assert np.all(img[(eig.pixel_mask & 2).astype(bool)] == 2**32 - 1)
    pil = Simulation(SimParams(detector="pilatus300k", seed=0, hit_fraction=0.0))
    img, _ = pil.frame(0)
    assert img.dtype == np.int32
    assert np.all(img[(pil.pixel_mask & 1).astype(bool)] == -1)
    assert np.all(img[(pil.pixel_mask & 2).astype(bool)] == -2)
    hot = img.reshape(-1)[pil.hot_pixels]
    assert np.all(hot > 1000)


def test_conditions_appear_in_truth():
    p = SimParams(
        detector="eiger500k",
        seed=1,
        hit_fraction=0.5,
        ice_fraction=0.5,
        multi_lattice_fraction=0.5,
        jet_loss=((10, 20),),
        laser_on_fraction=0.5,
        dropped_fraction=0.1,
    )
    sim = Simulation(p)
    truths = [sim.event(n)[0] for n in range(200)]
    assert not any(t.jet_on for t in truths[10:20]) and all(t.jet_on for t in truths[:10])
    assert not any(t.hit for t in truths[10:20])
    frac = lambda key: np.mean([getattr(t, key) for t in truths])  # noqa: E731
    assert 0.3 < frac("ice") < 0.7
    assert 0.35 < frac("laser_on") < 0.65
    assert 0.03 < frac("dropped") < 0.2
    assert any(t.n_lattices == 2 for t in truths)


def test_ice_and_jet_change_the_background():
    sim = Simulation(SimParams(detector="eiger500k", seed=1))
    m = sim.geometry.maps
    jet = sim.expected_background(jet_on=True, ice=False, laser_on=False)
    nojet = sim.expected_background(jet_on=False, ice=False, laser_on=False)
    ice = sim.expected_background(jet_on=True, ice=True, laser_on=False)
    ring = (m.q > 19) & (m.q < 21)
    assert jet[ring].mean() > 5 * nojet[ring].mean()
    q_ice = 20 * np.pi / 3.67
    at_ice = np.abs(m.q - q_ice) < 0.05
    assert ice[at_ice].mean() > 1.5 * jet[at_ice].mean()
