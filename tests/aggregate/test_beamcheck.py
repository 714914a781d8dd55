"""The beam-centre check finds how far the rings' centre lies from the geometry's beam centre."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from xlive.aggregate.beamcheck import estimate_beam_offset
from xlive.aggregate.reducers import bin_factor, bin_image
from xlive.simulate import SimParams, Simulation


@pytest.fixture(scope="module")
def sim():
    return Simulation(SimParams(detector="eiger1m", seed=3))


def shifted(geom, dx, dy):
    bx, by = geom.beam_center
    p = dataclasses.replace(geom.panels[0], corner_x=-(bx - dx), corner_y=-(by - dy))
    return geom.replace(panels=(p,))


@pytest.mark.parametrize("dx, dy", [(0.0, 0.0), (8.0, -5.0), (-3.0, 2.0), (0.0, 12.0)])
def test_offset_of_noise_free_rings(sim, dx, dy):
    img = np.where(
        sim.geometry.maps.mask, 0.0, sim.expected_background(jet_on=True, ice=True, laser_on=False)
    )
    f = bin_factor(sim.geometry.shape)
    ex, ey, quality = estimate_beam_offset(bin_image(img, f), shifted(sim.geometry, dx, dy), f)
    assert quality > 0.8
    assert ex == pytest.approx(dx, abs=1.0) and ey == pytest.approx(dy, abs=1.0)


def test_flat_image_gives_no_verdict(sim):
    img = np.where(sim.geometry.maps.mask, 0.0, 5.0)
    _, _, quality = estimate_beam_offset(img, sim.geometry, 1)
    assert quality < 0.5
