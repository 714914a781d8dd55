"""Grid scans: a heat map of spots (and hit fraction) per grid position."""

from __future__ import annotations

from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper
from bokeh.palettes import Viridis256

from ._base import View, make_figure
from ._history import GRID_KEYS, history_for


class GridMapView(View):
    """Mean spots per frame at each grid position (metadata ``grid_x``, ``grid_y``).

    Empty (and hidden by the layout) for runs without grid positions.
    """

    name = "grid"

    def __init__(self):
        self._updates = -1
        self.source = ColumnDataSource(
            {"gx": [], "gy": [], "spots": [], "hits": [], "frames": []}, name="grid_source"
        )
        self.mapper = LinearColorMapper(palette=Viridis256, low=0, high=1)
        fig = make_figure(
            self.name,
            "Grid scan: mean spots per position",
            x_label=GRID_KEYS[0],
            y_label=GRID_KEYS[1],
            match_aspect=True,
        )
        fig.rect(
            "gx",
            "gy",
            width=1,
            height=1,
            source=self.source,
            fill_color={"field": "spots", "transform": self.mapper},
            line_color=None,
        )
        fig.add_layout(
            ColorBar(color_mapper=self.mapper, width=8, title="spots per frame", title_standoff=4),
            "right",
        )
        fig.add_tools(
            HoverTool(
                tooltips=[
                    ("position", "@gx, @gy"),
                    ("spots", "@spots{0.0}"),
                    ("hit fraction", "@hits{0%}"),
                    ("frames", "@frames"),
                ]
            )
        )
        self.root = fig

    def update(self, session) -> bool:
        hist = history_for(session)
        if hist.grid_updates == self._updates or not hist.grid:
            return False
        self._updates = hist.grid_updates
        keys = list(hist.grid)
        vals = [hist.grid[k] for k in keys]
        spots = [s / n for n, s, _ in vals]
        self.mapper.high = max(max(spots), 1.0)
        self.source.data = {
            "gx": [k[0] for k in keys],
            "gy": [k[1] for k in keys],
            "spots": spots,
            "hits": [h / n for n, _, h in vals],
            "frames": [n for n, _, _ in vals],
        }
        return True
