"""A per-frame strip chart (one value per stored frame, hits coloured), streamed."""

from __future__ import annotations

from bokeh.models import ColumnDataSource, HoverTool, TapTool

from ._base import (
    ROLLOVER,
    SeriesCursor,
    View,
    finite_or_none,
    make_figure,
    stream_in_frame_order,
)

HIT_COLOR = "crimson"
MISS_COLOR = "gray"


class StripChart(View):
    """Value of one per-frame series against frame index; hits in red, others in grey."""

    series = ""
    title = ""
    y_label = ""
    #: plot the value of hits only (other frames get a gap)
    hits_only = False

    def __init__(self, rollover: int = ROLLOVER):
        self.rollover = rollover
        self._cursor = SeriesCursor()
        self.source = ColumnDataSource(
            {"frame": [], "value": [], "color": []}, name=f"{self.name}_source"
        )
        fig = make_figure(self.name, self.title, y_label=self.y_label)
        dots = fig.scatter(
            "frame",
            "value",
            source=self.source,
            color="color",
            size=4,
            alpha=0.7,
            nonselection_alpha=0.3,
            selection_color="orange",
        )
        fig.add_tools(
            TapTool(renderers=[dots]),
            HoverTool(renderers=[dots], tooltips=[("frame", "@frame"), (self.y_label, "@value")]),
        )
        self.root = fig

    def update(self, session) -> bool:
        rows = self._cursor.new_rows(session.aggregates, [self.series, "is_hit"])
        if rows is None:
            return False
        colors = [HIT_COLOR if h == 1 else MISS_COLOR for h in rows["is_hit"]]
        values = finite_or_none(rows[self.series])
        if self.hits_only:
            values = [
                v if h == 1 else float("nan") for v, h in zip(values, rows["is_hit"], strict=True)
            ]
        stream_in_frame_order(
            self.source, {"frame": rows["frame"], "value": values, "color": colors}, self.rollover
        )
        return True
