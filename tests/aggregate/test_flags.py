"""Each red flag fires on a simulated run that has its condition and stays silent on a clean
run. Features come from the real analyzers; aggregates are fed exactly as the live loop does."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from xlive.aggregate.flags import FlagThresholds, evaluate, status
from xlive.aggregate.reducers import default_reducers
from xlive.aggregate.running import RunAggregates
from xlive.analyzers import default_analyzers
from xlive.engine.features import analyze_block
from xlive.simulate import write_run
from xlive.sources import open_source

FRAMES = 160
T = FlagThresholds(window=60, min_frames=20)


def aggregates_of(tmp_path_factory, name: str, geometry_shift=None, **sim) -> RunAggregates:
    """Simulate a run, compute it block by block with the live loop's worker function
    (analyzers + reducers) and feed the aggregates in order, as the live loop does."""
    out = tmp_path_factory.mktemp(name) / "run"
    index = sim.pop("index", False)  # index the hits (the multiple-lattice flag needs it)
    params = dict(detector="eiger500k", seed=21, hit_fraction=0.4, hot_pixels=0) | sim
    write_run(out, frames=FRAMES, rate=0, **params)
    src = open_source(out)
    src.refresh()
    geom = src.geometry
    if geometry_shift is not None:  # analyse with a beam centre that is off
        bx, by = geom.beam_center
        panel = dataclasses.replace(
            geom.panels[0], corner_x=-(bx - geometry_shift[0]), corner_y=-(by - geometry_shift[1])
        )
        geom = geom.replace(panels=(panel,))
    analyzers = default_analyzers(geom, indexing=index)
    reducers = default_reducers(geom)
    agg = RunAggregates(geometry=geom)
    meta = src.metadata()
    for s in range(0, FRAMES, 16):
        idx = np.arange(s, min(FRAMES, s + 16))
        result = analyze_block(src.reader, analyzers, idx, reducers)
        agg.update(result, {k: np.asarray(v)[idx] for k, v in meta.items()})
    return agg


SCENARIOS = {
    "jet_lost": dict(jet_loss=((70, FRAMES),)),
    "hit_rate_dropped": dict(jet_loss=((100, FRAMES),)),
    "ice_rings": dict(ice_fraction=1.0),
    "multiple_lattices": dict(multi_lattice_fraction=0.9, hit_fraction=0.8, index=True),
    "sample_dying": dict(dose_decay=0.012, hit_fraction=0.8),
    "frames_dropped": dict(dropped_fraction=0.05),
    "saturated": dict(crystal_strength=300000.0, hit_fraction=0.8),
    "new_hot_pixels": dict(hot_pixels=8),
    "beam_centre_suspect": dict(geometry_shift=(7.0, -5.0), detector="eiger1m"),
}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return aggregates_of(tmp_path_factory, "clean")


def test_clean_run_raises_no_flag(clean):
    flags = evaluate(clean, T)
    assert flags == [], [f.message for f in flags]
    assert status(flags) == "green"
    assert 0.25 < clean.hit_rate < 0.55


@pytest.mark.slow
@pytest.mark.parametrize("flag", list(SCENARIOS))
def test_flag_fires_on_its_condition(tmp_path_factory, flag):
    agg = aggregates_of(tmp_path_factory, flag, **SCENARIOS[flag])
    fired = {f.name: f for f in evaluate(agg, T)}
    assert flag in fired, f"{flag} did not fire; fired: {list(fired)}"
    assert len(fired[flag].message) > 20 and fired[flag].message.endswith(".")
    assert status(list(fired.values())) in ("amber", "red")


def test_no_pump_probe_difference_without_laser_on_frames(clean):
    # the clean run never fires the laser: no on-minus-off difference can be formed
    assert clean.pump_probe_difference() is None


@pytest.mark.slow
def test_pump_probe_split(tmp_path_factory):
    agg = aggregates_of(tmp_path_factory, "pp", laser_on_fraction=0.5, hit_fraction=0.1)
    assert agg.frames_by_laser[True] > 40 and agg.frames_by_laser[False] > 40
    diff, err = agg.pump_probe_difference()
    z = diff / err
    q = default_analyzers(agg.geometry)[0].coords()["q"][1]
    # the simulator's laser raises the water ring (q ~ 20/nm) by 3 %: seen at > 4 sigma there
    peak = int(np.nanargmax(z))
    assert z[peak] > 4
    assert 15 < q[peak] < 26
