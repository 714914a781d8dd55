"""No view plots a series out of frame order, even when blocks of frames finish out of order
(as they do on a cluster): every line and scatter of the dashboard and of the report has a
non-decreasing x."""

from __future__ import annotations

import numpy as np
import pytest
from bokeh.models import GlyphRenderer

from xlive.engine.live import LiveParams
from xlive.engine.session import LiveSession
from xlive.views.layout import Dashboard

BLOCK = 4


@pytest.fixture(scope="module")
def recorded_blocks(finished_run, run_to_end):
    """The stored blocks of a real run (with their metadata), in the order they were stored,
    and the feature store they went to."""
    # blocks of exactly BLOCK frames (they would grow with the backlog up to max_block)
    params = LiveParams(adaptive=False, block=BLOCK, max_block=BLOCK)
    s = LiveSession(finished_run, params=params)
    blocks = []
    s.listeners.append(lambda block, meta: blocks.append((block, meta)))
    run_to_end(s)
    s.close()
    assert len(blocks) >= 4  # enough to deliver out of order (finished blocks may be merged)
    return blocks, s.features


def _line_and_scatter_x(layout):
    """(source name, x values) of every line/scatter renderer whose x is a data column (spots
    on the detector image are positions, not a series)."""
    out = []
    for r in layout.references():
        if not isinstance(r, GlyphRenderer) or type(r.glyph).__name__ not in ("Line", "Scatter"):
            continue
        if (r.data_source.name or "").startswith("detector"):
            continue
        field = r.glyph.x if isinstance(r.glyph.x, str) else getattr(r.glyph.x, "field", None)
        if field is None:
            continue
        x = np.asarray(r.data_source.data.get(field, []), float)
        out.append((f"{r.data_source.name or r.glyph.x}", x))
    return out


def _unordered(series) -> list[str]:
    bad = []
    for name, x in series:
        x = x[np.isfinite(x)]
        if x.size > 1 and np.any(np.diff(x) < 0):
            bad.append(f"{name}: {x[:12].tolist()}")
    return bad


def test_blocks_out_of_order_are_plotted_in_frame_order(finished_run, recorded_blocks):
    recorded_blocks, _ = recorded_blocks
    rng = np.random.default_rng(5)
    order = rng.permutation(len(recorded_blocks))
    # the newest block first: every later block then belongs before what is shown
    order = np.r_[len(recorded_blocks) - 1, [k for k in order if k != len(recorded_blocks) - 1]]
    assert np.any(np.diff(order) < 0)
    # blocks of exactly BLOCK frames (they would grow with the backlog up to max_block)
    params = LiveParams(adaptive=False, block=BLOCK, max_block=BLOCK)
    s = LiveSession(finished_run, params=params)
    try:
        dash = Dashboard(s)
        for k in order:
            block, meta = recorded_blocks[k]
            s._on_block(block, meta)  # the live loop's hand-over of a stored block
            dash.update()
            bad = _unordered(_line_and_scatter_x(dash.root))
            assert not bad, f"after block {k}: {bad}"
        v = dash.views
        frames = np.concatenate([b.frames[b.good] for b, _ in recorded_blocks])
        # every frame is plotted once, in order
        assert v["spots"].source.data["frame"] == sorted(frames.tolist())
        assert len(v["hit_rate"].source.data["frame"]) == len(s.aggregates.hit_rate_points)
        assert len(_line_and_scatter_x(dash.root)) >= 8
    finally:
        s.close()


def test_report_plots_a_shuffled_dataset_in_frame_order(recorded_blocks):
    from xlive.engine.store import open_features
    from xlive.outputs.report import build_report

    ds = open_features(recorded_blocks[1]).load()
    shuffled = ds.isel(frame=np.random.default_rng(1).permutation(ds.sizes["frame"]))
    layout, _, _ = build_report(shuffled)
    series = _line_and_scatter_x(layout)
    assert len(series) >= 4
    assert not _unordered(series)
