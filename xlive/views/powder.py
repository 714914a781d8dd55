"""Virtual powder pattern: histogram of spot 1/d over all hits, with resolution rings."""

from __future__ import annotations

from bokeh.models import ColumnDataSource, Label, Span

from ._base import View, make_figure
from ._rings import RING_D, ice_inv_d


class PowderView(View):
    """Spots per 1/d bin (1/Å) since the run started; ice rings dashed, d rings labelled.

    The histogram has a fixed number of bins; an update replaces it only when new frames came.
    """

    name = "powder"

    def __init__(self):
        self._updates = -1
        self.source = ColumnDataSource({"left": [], "right": [], "count": []},
                                       name="powder_source")
        fig = make_figure(self.name, "Virtual powder pattern (spots)", x_label="1/d (1/Å)",
                          y_label="spots")
        fig.quad(left="left", right="right", bottom=0, top="count", source=self.source,
                 color="navy", alpha=0.8)
        for d in RING_D:
            fig.add_layout(Span(location=1 / d, dimension="height", line_color="gray",
                                line_alpha=0.5))
            fig.add_layout(Label(x=1 / d, y=5, y_units="screen", text=f"{d:g} Å",
                                 text_font_size="8pt", text_color="gray"))
        for x in ice_inv_d():
            fig.add_layout(Span(location=x, dimension="height", line_color="deepskyblue",
                                line_dash="dashed", line_alpha=0.6))
        self.root = fig

    def update(self, session) -> bool:
        agg = session.aggregates
        if agg.updates == self._updates:
            return False
        self._updates = agg.updates
        e = agg.inv_d_edges
        self.source.data = {"left": e[:-1].tolist(), "right": e[1:].tolist(),
                            "count": agg.powder.tolist()}
        return True
