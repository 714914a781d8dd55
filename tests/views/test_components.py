"""View components against a real session on a simulated run, checked without a browser."""

from __future__ import annotations

import numpy as np
import pytest
from bokeh.document import Document
from bokeh.document.events import ColumnDataChangedEvent, ColumnsStreamedEvent

from xlive.engine.live import LiveParams
from xlive.engine.session import LiveSession
from xlive.views.detector import bin_max
from xlive.views.layout import Dashboard
from xlive.views.tweak import LiveControls

STREAMED = ("hit_rate_source", "spots_source", "d_min_source")


@pytest.fixture(scope="module")
def done_session(finished_run, run_to_end):
    s = LiveSession(finished_run, params=LiveParams(adaptive=False))
    Dashboard(s)  # attach the view history before the first frame
    run_to_end(s)
    yield s
    s.close()


def test_every_view_has_data_and_idle_updates_change_nothing(done_session):
    dash = Dashboard(done_session)
    changed = dash.update()
    agg = done_session.aggregates
    assert agg.frames == 80
    for name in (
        "hit_rate",
        "spots",
        "d_min",
        "radial",
        "waterfall",
        "powder",
        "separation",
        "peakogram",
        "detector",
        "flags",
        "status",
        "lag",
    ):
        assert name in changed or name == "flags", name
    v = dash.views
    assert len(v["spots"].source.data["frame"]) == 80
    # in frame order (blocks may have been stored in another order)
    by_frame = sorted(zip(agg.series["frame"], agg.series["n_spots"], strict=True))
    assert v["spots"].source.data["frame"] == [f for f, _ in by_frame]
    assert v["spots"].source.data["value"] == [float(n) for _, n in by_frame]
    assert len(v["hit_rate"].source.data["frame"]) == len(agg.hit_rate_points)
    assert len(v["radial"].source.data["q"]) == len(agg.mean_profile())
    assert v["powder"].source.data["count"] == agg.powder.tolist()
    assert v["detector"].frame == done_session.latest_hit
    assert len(v["detector"].spots.data["x"]) > 0
    assert v["waterfall"].source.data["image"][0].shape[0] > 0
    assert "GREEN" in v["status"].root.text or "AMBER" in v["status"].root.text
    assert dash.update() == []  # nothing new: nothing sent
    assert not v["grid"].root.visible  # no grid positions in this run


def test_time_series_are_streamed_not_replaced(finished_run):
    s = LiveSession(finished_run, params=LiveParams(adaptive=False, block=4, max_in_flight=1))
    try:
        dash = Dashboard(s)
        doc = Document()
        doc.add_root(dash.root)
        events = []
        doc.on_change(lambda e: events.append(e))
        rounds = 0
        while s.aggregates.frames < 80 and rounds < 500:
            try:
                s.step()
            except TimeoutError:
                pass
            dash.update()
            rounds += 1
        dash.update()
        for name in STREAMED:
            src = doc.get_model_by_name(name)
            streamed = [e for e in events if isinstance(e, ColumnsStreamedEvent) and e.model is src]
            replaced = [
                e for e in events if isinstance(e, ColumnDataChangedEvent) and e.model is src
            ]
            assert len(streamed) >= 3, name
            assert not replaced, name
            rows = sum(len(next(iter(e.data.values()))) for e in streamed)
            assert rows == len(src.data["frame"]), name
        # every stream carries only frames not sent before
        spots = [
            e.data["frame"]
            for e in events
            if isinstance(e, ColumnsStreamedEvent) and e.model.name == "spots_source"
        ]
        flat = [f for chunk in spots for f in chunk]
        assert len(flat) == len(set(flat)) == 80
    finally:
        s.close()


def test_tap_on_strip_chart_shows_that_frame(done_session):
    dash = Dashboard(done_session)
    dash.update()
    src = dash.views["spots"].source
    seen = []
    dash.on_frame_chosen.append(seen.append)
    src.selected.indices = [7]
    frame = src.data["frame"][7]
    assert dash.detector.frame == frame and not dash.detector.follow
    assert seen == [frame]
    assert f" {frame}," in dash.detector.root.title.text
    dash.detector.set_scale("linear")
    assert "detector" in dash.update()
    dash.show_frame(None)
    assert dash.detector.frame == done_session.latest_hit


def test_controls_preview_apply_sample_and_flags(done_session):
    live = LiveControls(done_session)
    frame = done_session.latest_hit
    base = live.preview(frame)
    loose = live.preview(frame, live.trial_params(min_snr=3.0, pixel_snr=3.0))
    strict = live.preview(frame, live.trial_params(min_snr=50.0, min_spots_hit=10_000))
    assert loose.n_spots >= base.n_spots >= strict.n_spots
    assert base.is_hit and not strict.is_hit
    new = live.trial_params(min_snr=6.0)
    live.apply_spot_params(new)
    done_session.step()  # the loop thread takes the new analyzers at its next step
    assert live.spot_params == new
    live.set_sample(0.25)
    assert done_session.processor.params.sample == 0.25 and live.sample == 0.25
    live.set_sample(1.0)
    assert done_session.processor.params.sample is None
    before = done_session.thresholds
    flags = live.set_thresholds(jet_score_min=10.0)
    assert "jet_lost" in [f.name for f in flags]
    live.set_thresholds(jet_score_min=before.jet_score_min)


def test_grid_scan_heat_map(done_session, finished_run):
    from xlive.analyzers import analyze_frames
    from xlive.engine.block import Block

    s = done_session
    dash = Dashboard(s)
    dash.update()
    frames = np.stack([s.read_frame(i) for i in range(4)])
    result = Block(
        np.arange(4),
        np.zeros(4, bool),
        analyze_frames(frames, s.source.geometry, s.processor.analyzers),
    )
    meta = {"grid_x": np.array([0, 1, 0, 1]), "grid_y": np.array([0, 0, 1, 1])}
    for listener in s.listeners:
        if type(listener).__name__ == "ViewHistory":
            listener(result, meta)
    assert "grid" in dash.update()
    grid = dash.views["grid"]
    assert grid.root.visible
    assert sorted(zip(grid.source.data["gx"], grid.source.data["gy"], strict=True)) == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
    ]


def test_bin_max_keeps_spots():
    img = np.zeros((5, 7), np.float32)
    img[4, 6] = 9
    out = bin_max(img, 3)
    assert out.shape == (2, 3) and out[1, 2] == 9 and np.nansum(out) == 9


def test_page_opened_before_the_first_frame(tmp_path):
    """`xlive serve` on a run with no frame yet: the page builds (without spot controls)."""
    from xlive.simulate import SimParams, Simulation
    from xlive.simulate.write_zarr import ZarrRunWriter
    from xlive.views.app import add_dashboard

    sim = Simulation(SimParams(detector="eiger500k", seed=8))
    ZarrRunWriter(
        tmp_path / "run.zarr",
        geometry=sim.geometry,
        pixel_mask=sim.pixel_mask,
        dtype=sim.detector.dtype,
    )
    s = LiveSession(tmp_path / "run.zarr", tmp_path / "f.zarr")
    try:
        assert s.processor.analyzers is None and LiveControls(s).spot_params is None
        doc = Document()
        add_dashboard(doc, s)
        assert len(doc.roots) == 1 and doc.select_one({"name": "spot_min_snr"}) is None
    finally:
        s.close()
