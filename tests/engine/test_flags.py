"""Each red flag fires on a simulated run that has its condition and stays silent on a clean
run. Features come from the real analyzers; aggregates are fed exactly as the live loop does."""

from __future__ import annotations

import numpy as np
import pytest

from xlive.aggregate import RunAggregates
from xlive.features import analyze
from xlive.flags import FlagThresholds, evaluate, status
from xlive.simulate import write_run
from xlive.sources import open_source

FRAMES = 160
T = FlagThresholds(window=60, min_frames=20)


def aggregates_of(tmp_path_factory, name: str, **sim) -> RunAggregates:
    out = tmp_path_factory.mktemp(name) / "run"
    params = dict(detector="eiger500k", seed=21, hit_fraction=0.4) | sim
    write_run(out, frames=FRAMES, rate=0, **params)
    src = open_source(out)
    ds = analyze(src, block=16).compute(scheduler="threads")
    agg = RunAggregates()
    meta = {k: ds[k].values for k in ("laser_on", "frame_number", "timestamp") if k in ds.coords}
    for s in range(0, FRAMES, 16):  # blocks, in order, as the live loop stores them
        sl = slice(s, s + 16)
        result = {k: ds[k].values[sl] for k in ds.data_vars}
        result["frame_index"] = ds.frame.values[sl]
        agg.update(result, {k: v[sl] for k, v in meta.items()})
    return agg


SCENARIOS = {
    "jet_lost": dict(jet_loss=((70, FRAMES),)),
    "hit_rate_dropped": dict(jet_loss=((100, FRAMES),)),
    "ice_rings": dict(ice_fraction=1.0),
    "multiple_lattices": dict(multi_lattice_fraction=0.9, hit_fraction=0.8),
    "sample_dying": dict(dose_decay=0.012, hit_fraction=0.8),
    "frames_dropped": dict(dropped_fraction=0.05),
    "saturated": dict(crystal_strength=300000.0, hit_fraction=0.8),
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


def test_pump_probe_difference_has_an_uncertainty(clean):
    # the clean run has no laser: no difference can be formed
    assert clean.pump_probe_difference() is None


@pytest.mark.slow
def test_pump_probe_split(tmp_path_factory):
    agg = aggregates_of(tmp_path_factory, "pp", laser_on_fraction=0.5)
    assert agg.frames_by_laser[True] > 40 and agg.frames_by_laser[False] > 40
    diff, err = agg.pump_probe_difference()
    ok = np.isfinite(diff) & np.isfinite(err) & (err > 0)
    assert ok.sum() > 10
    # the simulator's laser raises the water ring by 3 %: the difference is positive there
    assert np.nanmax(diff[ok] / err[ok]) > 3
