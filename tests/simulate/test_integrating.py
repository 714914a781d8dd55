"""The simulator's integrating-detector mode (JUNGFRAU, AGIPD): ADU or keV, float32, panels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from analyzers.conftest import recall_precision

from xlive.analyzers import FrameAnalyzer, SpotFinder
from xlive.errors import ConfigError
from xlive.geometry.crystfel import read_crystfel_geom
from xlive.simulate import SimParams, Simulation, write_run
from xlive.sources import open_source


@pytest.fixture(scope="module", params=["jungfrau1m", "agipd-quadrant"])
def run(request):
    sim = Simulation(
        SimParams(detector=request.param, seed=4, hit_fraction=1.0, crystal_strength=300.0)
    )
    return sim, [sim.frame(i) for i in range(4)]


def test_data_are_float_adu_with_pedestal_noise_on_stacked_modules(run):
    sim, frames = run
    det = sim.detector
    frame = frames[0][0]
    assert frame.dtype == np.float32 and frame.shape == det.shape
    assert np.count_nonzero(frame < 0) > 0.05 * frame.size  # pedestal-subtracted noise
    g = sim.geometry
    assert len(g.panels) == 8 * det.n_modules and g.gain == pytest.approx(
        det.adu_per_ev * g.photon_energy
    )
    assert g.sentinels == () and g.read_noise == det.read_noise
    # negative values are the lower half of the read noise around 0 photons: their mean
    # square is the read-noise variance (ADU**2)
    neg = frame[(frame < 0) & ~g.maps.mask].astype(np.float64)
    assert np.sqrt(np.mean(neg**2)) == pytest.approx(det.read_noise * g.gain, rel=0.05)


def test_spot_recall_and_precision_against_truth(run):
    sim, frames = run
    sf = SpotFinder(sim.geometry)
    found = [sf.find(f)[:, :2] for f, _ in frames]
    recall, precision, n = recall_precision(found, [t for _, t in frames])
    assert n > 300
    assert recall >= 0.95 and precision >= 0.97, (recall, precision)
    # some truth spots fall into the gaps between panels: masked, not expected
    assert any(t.spots["masked"].any() for _, t in frames)


def test_scaled_by_30_keeps_the_spot_count(run):
    sim, frames = run
    import dataclasses

    g = sim.geometry
    g30 = g.replace(
        panels=tuple(dataclasses.replace(p, adu_per_ev=p.adu_per_ev * 30) for p in g.panels),
        saturation_value=g.saturation_value * 30,
    )
    stack = np.stack([f for f, _ in frames])
    a = FrameAnalyzer(g)(stack)["n_spots"].astype(float)
    b = FrameAnalyzer(g30)(stack * 30)["n_spots"].astype(float)
    assert np.all(np.abs(a - b) < 0.05 * a), (a, b)


def test_run_folder_has_the_crystfel_geometry_and_reads_back(tmp_path):
    out = tmp_path / "jf"
    write_run(out, frames=3, rate=0, detector="jungfrau1m", seed=2, hit_fraction=1.0)
    info = json.loads((out / "xlive-run.json").read_text())
    geom_file = out / info["crystfel_geometry"]
    sim = Simulation(SimParams(detector="jungfrau1m", seed=2, hit_fraction=1.0))
    back = read_crystfel_geom(geom_file)
    for name in ("lab_x", "lab_y", "lab_z"):
        np.testing.assert_allclose(
            getattr(back.maps, name), getattr(sim.geometry.maps, name), rtol=0, atol=1e-9
        )
    assert back.gain == pytest.approx(sim.geometry.gain)
    np.testing.assert_array_equal(back.mask, sim.geometry.mask)
    src = open_source(out)
    assert src.refresh() == 3
    np.testing.assert_array_equal(src.read_frame(1), sim.frame(1)[0])
    assert len(src.geometry.panels) == 16 and src.geometry.gain == pytest.approx(back.gain)


def test_integrating_detector_needs_a_format_that_holds_its_panels(tmp_path):
    with pytest.raises(ConfigError, match="--format zarr"):
        write_run(tmp_path / "x", frames=1, rate=0, fmt="eiger-h5", detector="agipd-quadrant")
    assert not (tmp_path / "x").exists()
