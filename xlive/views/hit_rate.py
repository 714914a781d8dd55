"""Hit-rate strip chart: the rolling hit rate, and laser-on / laser-off as two more lines."""

from __future__ import annotations

from bokeh.models import ColumnDataSource, HoverTool, TapTool

from ._base import (
    ROLLOVER,
    View,
    finite_or_none,
    legend_outside,
    make_figure,
    stream_in_frame_order,
    tail,
)


class HitRateChart(View):
    """Rolling hit rate against frame index, streamed.

    Reads ``session.aggregates.hit_rate_points`` (one point per stored block) from where the
    last update stopped, so an update costs O(new points).
    """

    name = "hit_rate"

    def __init__(self, rollover: int = ROLLOVER):
        self.rollover = rollover
        self._seen = 0
        self.source = ColumnDataSource(
            {"frame": [], "rate": [], "rate_on": [], "rate_off": []}, name="hit_rate_source"
        )
        fig = make_figure(self.name, "Hit rate (rolling)", y_label="hit rate")
        fig.y_range.start = 0
        fig.line(
            "frame", "rate", source=self.source, color="black", line_width=2, legend_label="all"
        )
        fig.line("frame", "rate_on", source=self.source, color="crimson", legend_label="laser on")
        fig.line(
            "frame", "rate_off", source=self.source, color="royalblue", legend_label="laser off"
        )
        dots = fig.scatter("frame", "rate", source=self.source, size=5, color="black", alpha=0.4)
        fig.add_tools(
            TapTool(renderers=[dots]),
            HoverTool(renderers=[dots], tooltips=[("frame", "@frame"), ("rate", "@rate{0.0%}")]),
        )
        fig.yaxis.formatter.use_scientific = False
        legend_outside(fig)
        self.root = fig

    def update(self, session) -> bool:
        agg = session.aggregates
        new = tail(agg.hit_rate_points, agg.hit_rate_count - self._seen)
        if not new:
            return False
        self._seen = agg.hit_rate_count
        frame, rate, on, off = zip(*new, strict=True)
        stream_in_frame_order(
            self.source,
            {
                "frame": list(frame),
                "rate": finite_or_none(rate),
                "rate_on": finite_or_none(on),
                "rate_off": finite_or_none(off),
            },
            self.rollover,
        )
        return True
