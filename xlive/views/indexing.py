"""Indexing views: the rolling indexing rate (beside the hit rate) and unit-cell histograms.

Both read ``session.aggregates.indexing`` (:class:`~xlive.aggregate.indexing.IndexingAggregates`)
and stay empty for runs analysed without indexing. Predicted spots of the indexed lattices are
drawn by :class:`~xlive.views.detector.DetectorView`.
"""

from __future__ import annotations

import numpy as np
from bokeh.layouts import gridplot
from bokeh.models import ColumnDataSource, HoverTool, TapTool

from ..analyzers.indexing import CELL_PARAMS
from ._base import (
    ROLLOVER,
    View,
    finite_or_none,
    legend_outside,
    make_figure,
    stream_in_frame_order,
)


class IndexingRateChart(View):
    """Rolling indexing rate of the hits and of all frames, laser on / off, streamed."""

    name = "indexing_rate"

    def __init__(self, rollover: int = ROLLOVER):
        self.rollover = rollover
        self._seen = 0
        self.source = ColumnDataSource(
            {"frame": [], "rate": [], "rate_frames": [], "rate_on": [], "rate_off": []},
            name="indexing_rate_source",
        )
        fig = make_figure(
            self.name,
            "Indexing rate (rolling): waiting for indexed hits",
            y_label="indexed fraction",
        )
        fig.y_range.start = 0
        fig.line(
            "frame",
            "rate",
            source=self.source,
            color="darkgreen",
            line_width=2,
            legend_label="of hits",
        )
        fig.line(
            "frame",
            "rate_frames",
            source=self.source,
            color="black",
            line_dash="dashed",
            legend_label="of all frames",
        )
        fig.line("frame", "rate_on", source=self.source, color="crimson", legend_label="laser on")
        fig.line(
            "frame", "rate_off", source=self.source, color="royalblue", legend_label="laser off"
        )
        dots = fig.scatter(
            "frame", "rate", source=self.source, size=5, color="darkgreen", alpha=0.4
        )
        fig.add_tools(
            TapTool(renderers=[dots]),
            HoverTool(
                renderers=[dots], tooltips=[("frame", "@frame"), ("indexed", "@rate{0.0%} of hits")]
            ),
        )
        legend_outside(fig)
        self.root = fig

    def update(self, session) -> bool:
        ix = getattr(session.aggregates, "indexing", None)
        if ix is None or len(ix.rate_points) <= self._seen:
            return False
        new = ix.rate_points[self._seen :]
        self._seen = len(ix.rate_points)
        frame, rate, of_frames, on, off = zip(*new, strict=True)
        stream_in_frame_order(
            self.source,
            {
                "frame": list(frame),
                "rate": finite_or_none(rate),
                "rate_frames": finite_or_none(of_frames),
                "rate_on": finite_or_none(on),
                "rate_off": finite_or_none(off),
            },
            self.rollover,
        )
        r = ix.rate
        self.root.title.text = (
            f"Indexing rate (rolling): run {r:.0%} of {ix.tried} hits tried"
            if np.isfinite(r)
            else "Indexing rate (rolling)"
        )
        return True


class CellHistograms(View):
    """Histograms of a, b, c, alpha, beta, gamma of the indexed lattices (redrawn when new
    lattices arrive)."""

    name = "cells"

    def __init__(self, bins: int = 40):
        self.bins = bins
        self._count = 0
        self.sources = {}
        figs = []
        for k, p in enumerate(CELL_PARAMS):
            src = ColumnDataSource({"left": [], "right": [], "count": []}, name=f"cell_{p}_source")
            f = make_figure(
                f"cell_{p}",
                p,
                x_label=f"{p} ({'Å' if k < 3 else '°'})",
                y_label="lattices",
                height=170,
            )
            f.quad(left="left", right="right", bottom=0, top="count", source=src, color="#5d4037")
            f.toolbar_location = None
            self.sources[p] = src
            figs.append(f)
        self.source = self.sources["a"]
        self.root = gridplot(figs, ncols=3, sizing_mode="stretch_width", merge_tools=False)

    def update(self, session) -> bool:
        ix = getattr(session.aggregates, "indexing", None)
        if ix is None:
            return False
        cells = ix.cells(last=5000)
        if len(cells) == self._count:
            return False
        self._count = len(cells)
        for k, p in enumerate(CELL_PARAMS):
            v = cells[:, k]
            v = v[np.isfinite(v)]
            if not v.size:
                continue
            lo, hi = np.percentile(v, [0.5, 99.5])
            pad = max(0.02 * (hi - lo), 0.05 if k < 3 else 0.2)
            counts, edges = np.histogram(v, bins=self.bins, range=(lo - pad, hi + pad))
            self.sources[p].data = {
                "left": edges[:-1].tolist(),
                "right": edges[1:].tolist(),
                "count": counts.tolist(),
            }
        return True
