"""The analyzer contract: declarations match outputs, pickling, threads, registry, template."""

from __future__ import annotations

import pickle
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from xlive.analyzers import (
    FeatureSpec,
    RadialProfile,
    analyze_frames,
    default_analyzers,
    get_analyzer,
    registry,
)
from xlive.analyzers._template import MaxPixel
from xlive.errors import AnalyzerError
from xlive.simulate import SimParams, Simulation


@pytest.fixture(scope="module")
def sim():
    return Simulation(SimParams(detector="eiger500k", seed=6, hit_fraction=0.5))


@pytest.fixture(scope="module")
def block(sim):
    return np.stack([sim.frame(i)[0] for i in range(4)])


def test_describe_matches_every_output(sim, block):
    for a in [*default_analyzers(sim.geometry), *default_analyzers(sim.geometry, fused=False),
              MaxPixel(sim.geometry)]:
        specs = {s.name: s for s in a.describe()}
        out = a(block)
        assert set(out) == set(specs)
        for name, arr in out.items():
            s = specs[name]
            assert s.dims[0] == "frame"
            assert arr.shape == s.shape(len(block)), name
            assert arr.dtype == np.dtype(s.dtype), name
        for dim, (d, _values, attrs) in a.coords().items():
            assert any(dim in s.dims or d in s.dims for s in specs.values())
            assert "units" in attrs


def test_pickle_and_threads_give_identical_results(sim, block):
    analyzers = default_analyzers(sim.geometry)
    serial = analyze_frames(block, sim.geometry, analyzers)
    clones = pickle.loads(pickle.dumps(analyzers))
    with ThreadPoolExecutor(2) as pool:
        parts = list(pool.map(lambda i: analyze_frames(block[i:i + 1], sim.geometry, clones),
                              range(len(block))))
    for name, arr in serial.items():
        np.testing.assert_array_equal(np.concatenate([p[name] for p in parts]), arr, err_msg=name)


def test_fused_analyzer_equals_the_separate_ones(sim, block):
    fused = analyze_frames(block, sim.geometry, default_analyzers(sim.geometry))
    separate = analyze_frames(block, sim.geometry, default_analyzers(sim.geometry, fused=False))
    assert set(fused) == set(separate)
    for name in set(fused) - {"jet_score", "ice_score"}:  # these use other q shells
        np.testing.assert_allclose(fused[name], separate[name], rtol=1e-6, err_msg=name)
    for name in ("jet_score", "ice_score"):
        np.testing.assert_allclose(fused[name], separate[name], atol=0.05 + 0.1 * abs(
            separate[name]).max(), err_msg=name)


def test_duplicate_output_names_are_an_error(sim, block):
    with pytest.raises(AnalyzerError, match="radial_profile"):
        analyze_frames(block, sim.geometry, [RadialProfile(sim.geometry)] * 2)


def test_wrong_frame_shape_is_an_error(sim):
    with pytest.raises(AnalyzerError, match="shape"):
        RadialProfile(sim.geometry)(np.zeros((1, 10, 10)))


def test_feature_spec_checks_dims():
    with pytest.raises(AnalyzerError):
        FeatureSpec("x", ("q",), "float32")
    with pytest.raises(AnalyzerError):
        FeatureSpec("x", ("frame", "q"), "float32")


def test_registry_builtins_and_broken_plugin_warns(monkeypatch):
    assert get_analyzer("spots").__name__ == "SpotFinder"
    with pytest.raises(AnalyzerError, match="unknown analyzer"):
        get_analyzer("nope")

    class EP:
        name, value = "broken", "nowhere:Thing"

        def load(self):
            raise ImportError("no module named nowhere")

    class Good(EP):
        name, value = "max_pixel", "xlive.analyzers._template:MaxPixel"

        def load(self):
            return MaxPixel

    monkeypatch.setattr(registry, "entry_points", lambda group: [EP(), Good()])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        avail = registry.available_analyzers()
    assert "broken" not in avail and avail["max_pixel"] is MaxPixel
    assert any("broken" in str(x.message) for x in w)


def test_template_analyzer_runs(sim, block):
    out = MaxPixel(sim.geometry)(block)["max_pixel"]
    use = ~sim.geometry.maps.mask
    np.testing.assert_array_equal(out, [f[use].max() for f in block])
