"""Parameter classes refuse wrongly typed or out-of-range values, naming the key and the type."""

from __future__ import annotations

import math

import pytest

from xlive.aggregate import AggregateParams
from xlive.aggregate.flags import FlagThresholds
from xlive.analyzers import RadialParams, SpotParams, StatsParams
from xlive.analyzers.lattice import LatticeParams
from xlive.engine.live import LiveParams
from xlive.errors import AnalyzerError, ConfigError, XliveError


@pytest.mark.parametrize(
    "cls, key, value, words",
    [
        (SpotParams, "min_snr", "high", ["[analyzers.spots]", "min_snr", "a number", "'high'"]),
        (SpotParams, "min_snr", math.nan, ["min_snr", "a number"]),
        (SpotParams, "min_snr", -1.0, ["min_snr", ">= 0"]),
        (SpotParams, "max_peaks", 2.5, ["max_peaks", "an integer"]),
        (SpotParams, "max_peaks", True, ["max_peaks", "an integer"]),
        (SpotParams, "adc_threshold", math.inf, ["adc_threshold", "finite"]),
        (RadialParams, "q_range", (1.0,), ["q_range", "a list of 2 numbers"]),
        (RadialParams, "q_range", "0,10", ["q_range", "a list of 2 numbers"]),
        (RadialParams, "solid_angle", "yes", ["solid_angle", "true or false"]),
        (StatsParams, "sample_step", 0, ["sample_step", ">= 1"]),
        (LatticeParams, "stages", (0.5, "x"), ["stages", "a list of numbers"]),
        (LiveParams, "poll_interval", "fast", ["[live]", "poll_interval", "a number"]),
        (LiveParams, "sample", 1.5, ["sample", "between"]),
        (LiveParams, "block", 0, ["block", ">= 1"]),
        (FlagThresholds, "window", "100", ["[flags]", "window", "an integer"]),
        (FlagThresholds, "ice_fraction", 2.0, ["ice_fraction", "between 0 and 1"]),
        (AggregateParams, "log_i_range", [0, "6"], ["[aggregate]", "log_i_range"]),
    ],
)
def test_bad_value_names_key_and_type(cls, key, value, words):
    with pytest.raises(XliveError) as exc:
        cls(**{key: value})
    msg = str(exc.value)
    for w in words:
        assert w in msg, msg
    assert "\n" not in msg


def test_error_classes():
    with pytest.raises(AnalyzerError):
        SpotParams(min_snr="high")
    with pytest.raises(ConfigError):
        LiveParams(latency_budget=-1)


def test_values_normalised_for_numba():
    """Integers where numbers are expected become floats; TOML lists become tuples."""
    p = SpotParams(min_snr=3, adc_threshold=10)
    assert type(p.min_snr) is float and type(p.adc_threshold) is float
    r = RadialParams(q_range=[1, 20])
    assert r.q_range == (1.0, 20.0) and type(r.q_range) is tuple
    assert type(r.q_range[0]) is float
    assert LiveParams(sample=None).sample is None


def test_nested_table_checked():
    p = SpotParams(stats={"d_min_snr": 4, "lattice": {"min_spots": 30}})
    assert p.stats.d_min_snr == 4.0 and p.stats.lattice.min_spots == 30
    with pytest.raises(AnalyzerError, match=r"lattice.*min_spots.*an integer"):
        SpotParams(stats={"lattice": {"min_spots": "many"}})
    with pytest.raises(AnalyzerError, match=r"unknown keys \['zzz'\]"):
        SpotParams(stats={"zzz": 1})


def test_defaults_pass():
    for cls in (
        SpotParams,
        RadialParams,
        StatsParams,
        LatticeParams,
        LiveParams,
        FlagThresholds,
        AggregateParams,
    ):
        cls()
