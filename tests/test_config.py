"""The run configuration is checked when it is loaded: names, types, analyzer tables."""

from __future__ import annotations

import dataclasses
import json

import pytest

from xlive.analyzers import FrameAnalyzer
from xlive.analyzers._template import MaxPixel, MaxPixelParams
from xlive.config import RunConfig, load_config, parse_config, stored_config
from xlive.errors import ConfigError
from xlive.geometry import Geometry


def test_wrong_type_names_the_key(tmp_path):
    f = tmp_path / "run.toml"
    f.write_text("[live]\nblock = 2.5\n")
    with pytest.raises(ConfigError, match=r"\[live\] block must be an integer, got 2.5 \(float\)"):
        load_config(f)
    with pytest.raises(ConfigError, match=r"\[flags\] jet_score_min must be a number"):
        parse_config({"flags": {"jet_score_min": "low"}})
    with pytest.raises(ConfigError, match=r"\[live\] adaptive must be true or false"):
        parse_config({"live": {"adaptive": 1}})
    with pytest.raises(ConfigError, match=r"log_i_range must be a list of 2 values"):
        parse_config({"aggregate": {"log_i_range": [0.0]}})


def test_values_take_the_field_type():
    cfg = parse_config(
        {"live": {"latency_budget": 3, "sample": 0.5}, "aggregate": {"log_i_range": [0, 5]}}
    )
    assert cfg.live.latency_budget == 3.0 and isinstance(cfg.live.latency_budget, float)
    assert cfg.aggregate.log_i_range == (0.0, 5.0)


def test_unknown_names_suggest_the_nearest():
    with pytest.raises(ConfigError, match=r"\[live\] has no key 'blok' \(did you mean 'block'\?\)"):
        parse_config({"live": {"blok": 4}})
    with pytest.raises(ConfigError, match=r"unknown table \[flag\] \(did you mean 'flags'\?\)"):
        parse_config({"flag": {}})
    with pytest.raises(ConfigError, match=r"unknown analyzer 'spot' \(did you mean 'spots'\?\)"):
        parse_config({"analyzers": {"spot": {"min_snr": 3}}})
    with pytest.raises(ConfigError, match="did you mean 'min_snr'"):
        parse_config({"analyzers": {"spots": {"min_sn": 3}}})
    with pytest.raises(ConfigError, match="is the built-in set"):
        parse_config({"analyzers": {"frame": {}}})


def test_an_analyzer_table_switches_the_analyzer_on():
    geom = Geometry.simple(
        shape=(64, 64),
        pixel_size=75e-6,
        distance=0.1,
        beam_center_x=32,
        beam_center_y=32,
        wavelength=1.0,
    )
    cfg = parse_config({"analyzers": {"max_pixel": {"alarm_level": 100}, "spots": {"min_snr": 4}}})
    assert cfg.analyzers["max_pixel"] == MaxPixelParams(alarm_level=100.0)
    fused, extra = cfg.build_analyzers(geom)
    assert isinstance(fused, FrameAnalyzer) and fused.spots.params.min_snr == 4
    assert isinstance(extra, MaxPixel) and extra.params.alarm_level == 100.0
    assert [a.name for a in RunConfig().build_analyzers(geom)] == ["frame"]


def test_configuration_round_trips_through_the_store_attributes():
    cfg = parse_config(
        {
            "live": {"block": 8},
            "flags": {"ice_fraction": 0.4},
            "analyzers": {"max_pixel": {"tile": 16}},
        }
    )
    attrs = {"config": json.dumps(cfg.to_dict())}  # as FeatureStore.to_dataset gives it
    back = stored_config(attrs)
    assert back == cfg
    assert stored_config(attrs, analyzers=False).analyzers == {}
    assert stored_config({}) == RunConfig()
    assert dataclasses.asdict(back.live)["block"] == 8
