"""Spot-separation histogram: nearest-neighbour distance between spots (crowding, big cells)."""

from __future__ import annotations

from bokeh.models import ColumnDataSource

from ._base import View, make_figure


class SeparationView(View):
    """Histogram of the per-frame minimum spot separation (pixels)."""

    name = "separation"

    def __init__(self):
        self._updates = -1
        self.source = ColumnDataSource({"left": [], "right": [], "count": []},
                                       name="separation_source")
        fig = make_figure(self.name, "Spot separation (nearest neighbour, per frame)",
                          x_label="separation (pixels)", y_label="frames")
        fig.quad(left="left", right="right", bottom=0, top="count", source=self.source,
                 color="darkgreen", alpha=0.8)
        self.root = fig

    def update(self, session) -> bool:
        agg = session.aggregates
        if agg.updates == self._updates:
            return False
        self._updates = agg.updates
        e = agg.sep_edges
        self.source.data = {"left": e[:-1].tolist(), "right": e[1:].tolist(),
                            "count": agg.separation.tolist()}
        return True
