"""Auto-mask: hot pixels from the simulator, dead pixels from synthetic Poisson frames."""

from __future__ import annotations

import numpy as np

from xlive.analyzers import PixelStats, SpotFinder, auto_mask
from xlive.geometry import Geometry
from xlive.simulate import SimParams, Simulation


def test_hot_pixels_found_incrementally_and_then_masked():
    sim = Simulation(SimParams(detector="eiger500k", seed=2, hit_fraction=0.3, hot_pixels=20))
    frames = np.stack([sim.frame(i)[0] for i in range(30)])
    ps = PixelStats(sim.geometry)
    ps.update(frames[:10])
    assert not ps.mask().any() or ps.frames < ps.params.min_frames  # too few frames to judge
    ps.update(frames[10:])
    hot = ps.hot_mask()
    truth = np.zeros(hot.size, bool)
    truth[sim.hot_pixels] = True
    truth = truth.reshape(hot.shape)
    assert (hot & truth).sum() == 20 and (hot & ~truth).sum() == 0
    # a split run gives the same statistics as one pass
    merged = PixelStats(sim.geometry).update(frames[:15]) + PixelStats(sim.geometry).update(frames[15:])
    np.testing.assert_array_equal(merged.hot_mask(), hot)
    geom = sim.geometry.with_mask(ps.mask())
    assert geom.maps.mask[truth].all()
    assert SpotFinder(geom)(frames[0])["n_saturated"][0] == 0


def test_dead_pixels_found_and_bright_spots_not_masked():
    rng = np.random.default_rng(0)
    geom = Geometry.simple(shape=(100, 120), pixel_size=75e-6, distance=0.1, beam_center_x=60,
                           beam_center_y=50, wavelength=1.0)
    frames = rng.poisson(5.0, (40, 100, 120)).astype(np.uint32)
    frames[:, 20, 30] = 0  # dead
    frames[:, 70, 90] = 2**32 - 1  # always invalid
    frames[3, 40:43, 40:43] += 500  # a Bragg spot in one frame only
    m = auto_mask(frames, geom)
    assert m[20, 30] and m[70, 90]
    assert not m[40:43, 40:43].any()
    assert m.sum() == 2
