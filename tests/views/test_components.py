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


# ---------------------------------------------------------------- read in five seconds


def _figures(layout):
    from bokeh.models import Plot

    return [m for m in layout.references() if isinstance(m, Plot)]


def test_axes_and_colour_bars_labelled_and_legends_outside(done_session):
    from bokeh.models import ColorBar, Legend

    dash = Dashboard(done_session)
    dash.update()
    figs = _figures(dash.root)
    assert len(figs) >= 15
    for fig in figs:
        for axis in (*fig.xaxis, *fig.yaxis):
            assert axis.axis_label, f"{fig.name}: an axis without a label"
        for m in fig.center:
            assert not isinstance(m, Legend), f"{fig.name}: legend over the data"
        for m in (*fig.right, *fig.left, *fig.above, *fig.below):
            if isinstance(m, ColorBar):
                assert m.title, f"{fig.name}: colour bar without a title"
    legends = [m for f in figs for m in f.right if isinstance(m, Legend)]
    assert {f.name for f in figs if any(m in legends for m in f.right)} >= {
        "hit_rate_plot",
        "radial_plot",
        "detector_plot",
    }


def test_one_resolution_convention_q_with_d_above(done_session):
    from xlive.views.resolution import D_TICKS, d_from_q, q_from_d

    dash = Dashboard(done_session)
    dash.update()
    for name in ("radial", "waterfall", "powder", "peakogram"):
        fig = dash.views[name].root
        assert fig.below[0].axis_label == "q (1/nm)", name
        top = [a for a in fig.above if getattr(a, "name", None) == "d_axis"]
        assert len(top) == 1 and "d-spacing (Å)" == top[0].axis_label, name
        np.testing.assert_allclose(d_from_q(top[0].ticker.ticks), D_TICKS)
    # the powder pattern's bins are the aggregates' 1/d bins in q: q = 2 pi / d (d in Å -> nm)
    agg = done_session.aggregates
    left = np.asarray(dash.views["powder"].source.data["left"])
    np.testing.assert_allclose(left[1:], q_from_d(1 / agg.inv_d_edges[1:-1]))
    np.testing.assert_allclose(q_from_d(2.0), 2 * np.pi / 0.2)


def test_ring_labels_do_not_overlap(done_session):
    """At the view's default zoom (the detector fills ~560 screen pixels), every two labels
    of rings on the detector are at least a label's size apart."""
    from xlive.views.detector import DetectorView

    det = DetectorView()
    det.update(done_session)
    r = det.rings.data
    h, w = done_session.source.geometry.shape
    on = [
        (x, y)
        for x, y in zip(r["lx"], r["ly"], strict=True)
        if -0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5
    ]
    assert len(on) >= 3
    px = 560 / w  # screen pixels per detector pixel
    for i, (x1, y1) in enumerate(on):
        for x2, y2 in on[i + 1 :]:
            assert abs(x1 - x2) * px > 40 or abs(y1 - y2) * px > 14, (on, px)


@pytest.mark.parametrize("max_side", [1100, 400])
def test_spots_fall_on_their_pixels_of_the_drawn_image(done_session, max_side):
    """Each circle's centre, mapped through the image's drawn extent, lands in the (binned)
    image pixel that holds the spot's detector pixel, and that pixel is bright: the circles
    and the image share one coordinate frame, binned (1028 x 512 by 3) or not."""
    from xlive.views.detector import DetectorView

    det = DetectorView(max_side=max_side)
    det.update(done_session)
    src = det.source.data
    img = np.asarray(src["image"][0])
    x0, y0, dw, dh = src["x"][0], src["y"][0], src["dw"][0], src["dh"][0]
    f = int(np.ceil(max(done_session.source.geometry.shape) / max_side))
    assert dw / img.shape[1] == dh / img.shape[0] == f  # square pixels of f detector pixels
    x = np.asarray(det.spots.data["x"])
    y = np.asarray(det.spots.data["y"])
    assert x.size > 20
    assert np.all((x >= x0) & (x <= x0 + dw) & (y >= y0) & (y <= y0 + dh))
    # where the browser draws each spot: the image column/row under the circle's centre
    col = np.floor((x - x0) / dw * img.shape[1]).astype(int)
    row = np.floor((y - y0) / dh * img.shape[0]).astype(int)
    np.testing.assert_array_equal(col, np.rint(x).astype(int) // f)
    np.testing.assert_array_equal(row, np.rint(y).astype(int) // f)
    frame = np.asarray(done_session.read_frame(det.frame), float)
    under = img[row, col]
    assert np.nanmedian(under) > 5 * np.nanmedian(frame), (np.nanmedian(under), np.nanmedian(frame))


def test_detector_levels_title_and_hit_stepping(done_session):
    from xlive.views.bokeh_controls import page_layout

    dash = Dashboard(done_session)
    page_layout(dash)
    dash.update()
    det = dash.detector
    frame_img = np.asarray(det.source.data["image"][0])
    lo, hi = det.levels_shown
    assert lo >= 1 and hi > lo and hi <= np.nanmax(frame_img)  # log scale: from one count
    det.set_levels((3.0, 40.0))
    assert "detector" in dash.update()
    assert (det.mapper.low, det.mapper.high) == (3.0, 40.0)
    det.set_scale("linear")
    dash.update()
    assert type(det.image.glyph.color_mapper).__name__ == "LinearColorMapper"
    assert det.colorbar.color_mapper is det.mapper and "linear" in det.colorbar.title
    det.set_levels(None)
    det.set_scale("log")
    dash.update()
    # the title says how many spots were found, how many are circled and the peak cap
    n = len(det.spots.data["x"])
    found = dict(
        zip(
            done_session.aggregates.series["frame"],
            done_session.aggregates.series["n_spots"],
            strict=True,
        )
    )[det.frame]
    found = int(found)
    cap = LiveControls(done_session).spot_params.max_peaks
    if found > n:
        assert f"{n} of {found} spots circled" in det.root.title.text
        assert f"strongest {cap}" in det.root.title.text
    else:
        assert f"{n} spots found and circled" in det.root.title.text
    # previous / next hit
    hits = dash.hits()
    assert len(hits) >= 3 and det.frame == hits[-1]
    assert dash.step_hit(-1) == hits[-2] and det.frame == hits[-2]
    assert dash.step_hit(-1) == hits[-3]
    assert dash.step_hit(+1) == hits[-2]
    dash.show_frame(hits[-1])
    assert dash.step_hit(+1) is None and det.frame == hits[-1]
    # under the cursor: the d-spacing and panel maps have the image's shape
    maps = det.maps.data
    assert np.asarray(maps["d"][0]).shape == frame_img.shape
    geom = done_session.source.geometry
    assert len(geom.panels) == 1 and np.asarray(maps["panel"][0]).size == 0  # its name only
    d = np.asarray(maps["d"][0])
    np.testing.assert_allclose(
        np.nanmin(d), np.nanmin(done_session.source.geometry.maps.d), rtol=1e-5
    )
    dash.show_frame(None)


def test_sampling_said_alike_and_lag_hidden_once_finished(done_session):
    from bokeh.document import Document

    from xlive.views.bokeh_controls import page_layout
    from xlive.views.tweak import sampling_note

    proc = done_session.processor
    dash = Dashboard(done_session)
    doc = Document()
    doc.add_root(page_layout(dash))
    dash.update()
    # hidden once the run is finished (the browser test sees it go on a finished run)
    assert dash.views["lag"].root.visible == (done_session.run_state() != "finished")
    slider = doc.get_model_by_name("sample_slider")
    assert "every frame analysed" in slider.title
    step = proc.stats.sample_step
    try:
        proc.stats.sample_step = 2  # the live loop sampling 1 in 2 as it is behind
        LiveControls(done_session).set_sample(0.5)  # and the user asked for half
        dash2 = Dashboard(done_session)  # a fresh lag chart draws its title at once
        doc2 = Document()
        doc2.add_root(page_layout(dash2))
        dash2.update()
        note = sampling_note(done_session)
        assert note.startswith("1 in 4 frames analysed (25%)"), note
        assert note in dash2.views["lag"].root.title.text
        assert note in doc2.get_model_by_name("sample_slider").title
    finally:
        proc.stats.sample_step = step
        LiveControls(done_session).set_sample(1.0)


def test_flags_panel_shows_the_advice_in_full(done_session):
    from xlive.aggregate.flags import Flag
    from xlive.views.flags_panel import FlagsPanel

    advice = (
        "The water ring is weak in 80% of recent frames: the jet is probably lost or "
        "misaligned. Check the jet camera, the nozzle pressure and the sample reservoir; "
        "if the jet is fine, lower jet_score_min."
    )
    panel = FlagsPanel()
    flags = done_session.flags
    try:
        done_session.flags = [Flag("jet_lost", "error", advice)]
        assert panel.update(done_session)
    finally:
        done_session.flags = flags
    assert advice in panel.root.text and "white-space:normal" in panel.root.text


def test_panel_under_the_cursor_of_a_multi_panel_detector():
    """A JUNGFRAU of many ASIC panels: the view sends the per-pixel panel map (binned) and
    the panel names for the tooltip."""
    from xlive.simulate import SimParams, Simulation
    from xlive.views.detector import DetectorView

    geom = Simulation(SimParams(detector="jungfrau1m", seed=1)).geometry
    assert len(geom.panels) > 2
    det = DetectorView(max_side=300)
    f = int(np.ceil(max(geom.shape) / 300))
    det._draw_maps(geom, geom.shape, f)
    panel = np.asarray(det.maps.data["panel"][0])
    assert panel.shape == (-(-geom.shape[0] // f), -(-geom.shape[1] // f))
    names = det.hover.formatters["$x"].args["names"]
    assert names == [p.name for p in geom.panels]
    # each binned pixel names a panel that holds one of its detector pixels
    truth = np.asarray(geom.maps.panel)
    for r, c in [(0, 0), (panel.shape[0] // 2, panel.shape[1] // 3), (-1, -1)]:
        r, c = r % panel.shape[0], c % panel.shape[1]
        block = truth[r * f : (r + 1) * f, c * f : (c + 1) * f]
        assert panel[r, c] in set(block.ravel().tolist()) | {-1}
    assert set(np.unique(panel)) - {-1} == set(range(len(names)))


def test_deferred_page_document_gets_the_other_views_once_drawn(done_session):
    """A page's first document holds the first frames' views; DocumentReady adds the rest,
    refreshed like a dashboard built whole."""
    from bokeh.events import DocumentReady

    from xlive.views.app import add_dashboard
    from xlive.views.layout import VIEWS

    doc = Document()
    dash = add_dashboard(doc, done_session, defer=True)
    assert set(dash.views) == set(Dashboard.FIRST)
    names = {m.name for m in doc.models}
    assert "hit_rate_plot" in names and "detector_plot" in names
    assert "radial_plot" not in names and "correlation_plot" not in names
    assert "previous_hit_button" in names  # the detector's controls: with the image
    assert "xlive_controls" not in names  # the run's controls: with the other views
    assert len(dash.views["hit_rate"].source.data["frame"]) > 0  # the first frames: there
    maps = dash.detector.maps.data  # the image and its mask; the cursor's maps come later
    assert len(dash.detector.source.data["image"]) == 1 and len(maps["mask"]) == 1
    assert maps["d"][0].size == 0 and maps["panel"][0].size == 0
    doc.callbacks.trigger_event(DocumentReady())
    assert list(dash.views)[: len(VIEWS)] == list(VIEWS) and dash.deferred is False
    names = {m.name for m in doc.models}
    for name in ("radial", "waterfall", "powder", "separation", "peakogram", "lag", "correlation"):
        assert f"{name}_plot" in names, name
    assert "xlive_controls" in names and "sample_slider" in names
    whole = Dashboard(done_session)
    whole.update()
    for name in ("radial", "powder"):  # refreshed at once, as in a dashboard built whole
        assert dash.views[name].source.data == whole.views[name].source.data, name
    d = dash.detector.maps.data["d"][0]
    assert d.shape == dash.detector.maps.data["mask"][0].shape
    np.testing.assert_array_equal(d, whole.views["detector"].maps.data["d"][0])
    assert dash.complete() is False  # nothing left to build


def test_completing_a_page_leaves_the_live_loop_free_while_it_builds(done_session, monkeypatch):
    """The other views' bokeh models are built without the session's lock, which the live loop
    needs to hand over each block: a page completing itself holds it back no longer."""
    import threading

    from xlive.views import layout

    seen = []

    class Probe:  # a view whose construction looks whether another thread may take the lock
        def __init__(self):
            t = threading.Thread(target=self.try_lock)
            t.start()
            t.join()

        def try_lock(self):
            free = done_session.lock.acquire(blocking=False)
            if free:
                done_session.lock.release()
            seen.append(free)

        def update(self, session):
            return False

    monkeypatch.setitem(layout.VIEWS, "probe", Probe)
    dash = Dashboard(done_session, defer=True)
    assert seen == []  # not a first view
    assert dash.complete()
    assert seen == [True] and "probe" in dash.views


def test_deferred_page_builds_the_other_views_after_the_first_frame(finished_run):
    """A page drawn before the run's first frame is analysed keeps its other views back until
    an update has sent that frame (building them holds the server's loop for a while)."""
    from bokeh.events import DocumentReady
    from bokeh.server.callbacks import NextTickCallback, PeriodicCallback

    from xlive.engine.session import LiveSession
    from xlive.views.app import FIRST_FRAME_POLL, add_dashboard, shows_frames

    def of(kind):
        return [cb for cb in doc.session_callbacks if isinstance(cb, kind)]

    with LiveSession(finished_run) as s:
        doc = Document()
        dash = add_dashboard(doc, s, defer=True)
        periodic = {cb.period: cb for cb in of(PeriodicCallback)}
        update, first = periodic[500], periodic[FIRST_FRAME_POLL]
        doc.callbacks.trigger_event(DocumentReady())
        assert dash.deferred and not shows_frames(dash)  # drawn, no frame to show yet
        update.callback()
        for cb in of(NextTickCallback):  # what the update left for the loop's next turn
            cb.callback()
        assert dash.deferred
        first.callback()  # nothing stored yet: no refresh
        assert not shows_frames(dash) and first in doc.session_callbacks
        while not s.step():
            pass
        first.callback()  # a frame is stored: refreshed at once (not at the next update)
        assert shows_frames(dash) and dash.deferred  # sends the first frame, and only that
        # its work is done: one refresh, whether or not it shows a frame (a run of bad frames
        # only never does, and must not be refreshed at 10 Hz for ever)
        assert first not in doc.session_callbacks
        for cb in of(NextTickCallback):  # then the other views are built
            cb.callback()
        assert not dash.deferred and "radial_plot" in {m.name for m in doc.models}
