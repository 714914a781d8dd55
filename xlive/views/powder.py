"""Virtual powder pattern: histogram of spot resolution over all hits, with the ice rings."""

from __future__ import annotations

from bokeh.models import Span

from ._base import HistogramView
from ._rings import ice_inv_d
from .resolution import Q_PER_INV_D, add_d_axis


class PowderView(HistogramView):
    """Spots per resolution bin since the run started, against q (1/nm) with d (Å) above; the
    ice rings dashed.

    The histogram has a fixed number of bins; an update replaces it only when new frames came.
    """

    name = "powder"
    title = "Virtual powder pattern: spots by resolution (dashed: ice rings)"
    x_label = "q (1/nm)"
    y_label = "spots"
    color = "navy"

    def __init__(self):
        super().__init__()
        add_d_axis(self.fig)
        for x in ice_inv_d():
            self.fig.add_layout(
                Span(
                    location=x * Q_PER_INV_D,
                    dimension="height",
                    line_color="deepskyblue",
                    line_dash="dashed",
                    line_alpha=0.6,
                )
            )

    def histogram(self, agg):
        return agg.inv_d_edges * Q_PER_INV_D, agg.powder
