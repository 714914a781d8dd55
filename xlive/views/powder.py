"""Virtual powder pattern: histogram of spot 1/d over all hits, with resolution rings."""

from __future__ import annotations

from bokeh.models import Label, Span

from ._base import HistogramView
from ._rings import RING_D, ice_inv_d


class PowderView(HistogramView):
    """Spots per 1/d bin (1/Å) since the run started; ice rings dashed, d rings labelled.

    The histogram has a fixed number of bins; an update replaces it only when new frames came.
    """

    name = "powder"
    title = "Virtual powder pattern (spots)"
    x_label = "1/d (1/Å)"
    y_label = "spots"
    color = "navy"

    def __init__(self):
        super().__init__()
        for d in RING_D:
            self.fig.add_layout(
                Span(location=1 / d, dimension="height", line_color="gray", line_alpha=0.5)
            )
            self.fig.add_layout(
                Label(
                    x=1 / d,
                    y=5,
                    y_units="screen",
                    text=f"{d:g} Å",
                    text_font_size="8pt",
                    text_color="gray",
                )
            )
        for x in ice_inv_d():
            self.fig.add_layout(
                Span(
                    location=x,
                    dimension="height",
                    line_color="deepskyblue",
                    line_dash="dashed",
                    line_alpha=0.6,
                )
            )

    def histogram(self, agg):
        return agg.inv_d_edges, agg.powder
