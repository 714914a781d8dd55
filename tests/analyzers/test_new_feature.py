"""A new per-frame feature is one file plus one configuration table.

The analyzer below lives in its own file in a separate, installed distribution that registers
it under the ``xlive.analyzers`` entry point; nothing in xlive names it. Switched on with an
``[analyzers.mean_level]`` table, it is computed by ``xlive process`` (another process, which
finds the entry point itself), stored, aggregated, flagged, drawn in the HTML report, and shown
on the dashboard and in the notebook Monitor of a live session.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from xlive_testing import run_xlive

from xlive.config import load_config
from xlive.engine.cf import declared_show_flags
from xlive.engine.store import open_features
from xlive.errors import ConfigError
from xlive.simulate import write_run
from xlive.sources import open_source

PLUGIN = '''
"""mean_level: the mean valid pixel of each frame (the whole feature is this file)."""

from dataclasses import dataclass

import numpy as np

from xlive.analyzers.base import FeatureFlag, FeatureSpec, Show, as_block, valid_range
from xlive.conventions import FRAME


@dataclass(frozen=True, kw_only=True)
class MeanLevelParams:
    #: flag when most recent frames have a mean level below this (counts)
    low_level: float = 0.0
    #: tiles per side of the per-frame image
    tiles: int = 4


class MeanLevel:
    name = "mean_level"
    params_class = MeanLevelParams

    def __init__(self, geometry, params=None):
        self.geometry = geometry
        self.params = params or MeanLevelParams()
        self.use = ~geometry.maps.mask

    def describe(self):
        p = self.params
        low = FeatureFlag(name="level_low", below=p.low_level, min_frames=5,
                          message="mean level below {limit:g} counts in {fraction:.0%} of frames")
        return [
            FeatureSpec("mean_level", (FRAME,), "float64", "counts", "mean valid pixel",
                        show=Show(kind="strip"), flags=(low,)),
            FeatureSpec("mean_level_log", (FRAME,), "float32", "", "log10 mean level",
                        show=Show(kind="histogram", range=(-1.0, 3.0), bins=40)),
            FeatureSpec("mean_level_tiles", (FRAME, "ty", "tx"), "float32", "counts",
                        "mean valid pixel per tile", sizes={"ty": p.tiles, "tx": p.tiles},
                        show=Show(kind="image", reduce="mean")),
        ]

    def coords(self):
        return {}

    def __call__(self, frames):
        frames = as_block(frames, self.geometry.shape, self.name)
        lo, hi = valid_range(frames.dtype)
        t = self.params.tiles
        ys = np.array_split(np.arange(frames.shape[1]), t)
        xs = np.array_split(np.arange(frames.shape[2]), t)
        mean = np.full(len(frames), np.nan)
        tiles = np.full((len(frames), t, t), np.nan, np.float32)
        for k, f in enumerate(frames):
            ok = self.use & (f >= lo) & (f <= hi)
            mean[k] = f[ok].mean()
            for i, yy in enumerate(ys):
                for j, xx in enumerate(xs):
                    sub_ok = ok[np.ix_(yy, xx)]
                    if sub_ok.any():
                        tiles[k, i, j] = f[np.ix_(yy, xx)][sub_ok].mean()
        return {"mean_level": mean, "mean_level_log": np.log10(mean).astype(np.float32),
                "mean_level_tiles": tiles}
'''

FRAMES = 16


@pytest.fixture
def plugin(install_plugin):
    """The one-file analyzer, installed as a distribution with an entry point."""
    return install_plugin(
        {"xlive.analyzers": {"mean_level": "xlive_mean_level:MeanLevel"}},
        {"xlive_mean_level.py": PLUGIN},
    )


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("newfeature") / "run"
    write_run(run, frames=FRAMES, rate=0, detector="eiger500k", seed=5, hit_fraction=0.5)
    return run


def reference_levels(run) -> np.ndarray:
    """The mean valid pixel of each frame, computed here from the raw frames."""
    src = open_source(run)
    src.refresh()
    keep = ~src.geometry.mask
    out = []
    for i in range(src.n_frames):
        f = src.read_frame(i)
        ok = keep & (f < np.iinfo(f.dtype).max)
        out.append(f[ok].astype(np.float64).mean())
    return np.array(out)


def test_config_table_switches_it_on_and_is_checked(plugin, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text("[analyzers.mean_level]\nlow_level = 5.0\n")
    assert load_config(cfg).analyzers["mean_level"].low_level == 5.0
    cfg.write_text("[analyzers.mean_level]\nlow_levle = 5.0\n")
    with pytest.raises(ConfigError, match="did you mean 'low_level'"):
        load_config(cfg)
    cfg.write_text("[analyzers.mean_level]\ntiles = 2.5\n")
    with pytest.raises(ConfigError, match=r"\[analyzers.mean_level\] tiles must be an integer"):
        load_config(cfg)
    cfg.write_text("[analyzers.mean_levl]\n")
    with pytest.raises(ConfigError, match="did you mean 'mean_level'"):
        load_config(cfg)


@pytest.mark.slow
def test_process_store_report_from_an_entry_point(plugin, small_run, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text("[analyzers.mean_level]\nlow_level = 1e9\n")  # the flag fires on every frame
    feats, html = tmp_path / "features.zarr", tmp_path / "report.html"
    env = {"PYTHONPATH": os.pathsep.join([str(plugin), os.environ.get("PYTHONPATH", "")])}
    run_xlive(
        "process",
        str(small_run),
        "--out",
        str(feats),
        "--config",
        str(cfg),
        "--no-db",
        "-q",
        "--workers",
        "1",
        env=env,
    )
    ds = open_features(feats)
    assert ds.sizes["frame"] == FRAMES
    np.testing.assert_allclose(ds["mean_level"].values, reference_levels(small_run), rtol=1e-9)
    assert ds["mean_level_tiles"].shape == (FRAMES, 4, 4)
    assert declared_show_flags(ds["mean_level"].attrs)[0]["kind"] == "strip"
    assert '"low_level": 1000000000.0' in ds.attrs["config"]  # the configuration is stored
    # the report needs no plugin installed: it reads what the store declares
    run_xlive("report", str(feats), "--html", str(html))
    page = html.read_text()
    for name in ("mean_level", "mean_level_log", "mean_level_tiles"):
        assert f'"name":"{name}"' in page.replace(" ", ""), name
    assert "level_low" in page and "mean level below 1e+09 counts" in page


@pytest.mark.slow
def test_live_session_dashboard_and_monitor(plugin, small_run, tmp_path):
    from xlive.engine.session import LiveSession
    from xlive.views.layout import Dashboard
    from xlive.views.monitor import Monitor

    cfg = tmp_path / "run.toml"
    cfg.write_text("[analyzers.mean_level]\nlow_level = 1e9\n")
    with LiveSession(small_run, tmp_path / "f.zarr", config=cfg) as session:
        dash = Dashboard(session)  # before the first frame: the feature views come later
        deadline = time.monotonic() + 180
        while session.processor.stats.frames_stored < FRAMES or not session.processor.idle:
            assert time.monotonic() < deadline, "the session did not finish the run"
            session.step()
        session.update_flags()
        changed = dash.update()
        assert {"mean_level", "mean_level_log", "mean_level_tiles"} <= set(changed)
        strip = dash.views["mean_level"].source.data
        np.testing.assert_allclose(strip["value"], reference_levels(small_run)[strip["frame"]])
        assert sum(dash.views["mean_level_log"].source.data["count"]) == FRAMES
        img = dash.views["mean_level_tiles"].source.data["image"][0]
        assert np.shape(img) == (4, 4) and np.isfinite(img).all()
        assert "level_low" in [f.name for f in session.flags]
        assert dash.root.select_one({"name": "mean_level_plot"}) is not None
        monitor = Monitor(session, run=False)  # the notebook front-end shows the same views
        monitor.update()
        assert monitor.dashboard.views["mean_level"].source.data["frame"] == strip["frame"]
        assert monitor.dashboard.root.select_one({"name": "mean_level_tiles_plot"}) is not None
