"""The analyzer contract: declarations match outputs, pickling, threads, registry, template."""

from __future__ import annotations

import pickle
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from xlive.analyzers import (
    FeatureSpec,
    RadialProfile,
    analyze_frames,
    analyzer_class,
    available_analyzers,
    default_analyzers,
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
    for a in [
        *default_analyzers(sim.geometry),
        *default_analyzers(sim.geometry, fused=False),
        MaxPixel(sim.geometry),
    ]:
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
        parts = list(
            pool.map(
                lambda i: analyze_frames(block[i : i + 1], sim.geometry, clones), range(len(block))
            )
        )
    for name, arr in serial.items():
        np.testing.assert_array_equal(np.concatenate([p[name] for p in parts]), arr, err_msg=name)


def test_fused_analyzer_equals_the_separate_ones(sim, block):
    fused = analyze_frames(block, sim.geometry, default_analyzers(sim.geometry))
    separate = analyze_frames(block, sim.geometry, default_analyzers(sim.geometry, fused=False))
    assert set(fused) == set(separate)
    for name in set(fused) - {"jet_score", "ice_score"}:  # these use other q shells
        np.testing.assert_allclose(fused[name], separate[name], rtol=1e-6, err_msg=name)
    for name in ("jet_score", "ice_score"):
        np.testing.assert_allclose(
            fused[name], separate[name], atol=0.05 + 0.1 * abs(separate[name]).max(), err_msg=name
        )


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


def test_registry_builtins_and_broken_plugin_warns(install_plugin):
    from xlive.registry import PluginWarning

    assert analyzer_class("spots").__name__ == "SpotFinder"
    with pytest.raises(AnalyzerError, match="unknown analyzer 'nope'"):
        analyzer_class("nope")
    install_plugin(
        {
            "xlive.analyzers": {
                "broken": "nowhere_at_all:Thing",
                "max_pixel_copy": "xlive.analyzers._template:MaxPixel",
            }
        }
    )
    with pytest.warns(PluginWarning, match="broken"):
        avail = available_analyzers()
    assert "broken" not in avail and avail["max_pixel_copy"] is MaxPixel
    with pytest.raises(AnalyzerError, match="'broken'.*failed to load"):
        analyzer_class("broken")


def test_in_tree_analyzer_is_found_by_its_module_name(tmp_path, monkeypatch):
    """A new file xlive/analyzers/NAME.py defining a class with ``name = "NAME"`` is all it takes
    (here the package path is extended with a temporary folder instead of writing into it)."""
    import xlive.analyzers
    from xlive import registry

    src = (Path(xlive.analyzers.__file__).parent / "_template.py").read_text()
    (tmp_path / "peak_pixel.py").write_text(
        src.replace('name = "max_pixel"', 'name = "peak_pixel"').replace(
            "class MaxPixel:", "class PeakPixel:"
        )
    )
    monkeypatch.setattr(xlive.analyzers, "__path__", [*xlive.analyzers.__path__, str(tmp_path)])
    registry.refresh()
    try:
        cls = analyzer_class("peak_pixel")
        assert cls.__name__ == "PeakPixel" and "peak_pixel" in available_analyzers()
    finally:
        monkeypatch.undo()
        sys.modules.pop("xlive.analyzers.peak_pixel", None)
        registry.refresh()


def test_template_analyzer_runs(sim, block):
    out = MaxPixel(sim.geometry)(block)["max_pixel"]
    use = ~sim.geometry.maps.mask
    np.testing.assert_array_equal(out, [f[use].max() for f in block])
