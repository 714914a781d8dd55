"""Spot-separation histogram: nearest-neighbour distance between spots (crowding, big cells)."""

from __future__ import annotations

from ._base import HistogramView


class SeparationView(HistogramView):
    """Histogram of the per-frame minimum spot separation (pixels)."""

    name = "separation"
    title = "Spot separation (nearest neighbour, per frame)"
    x_label = "separation (pixels)"
    y_label = "frames"
    color = "darkgreen"

    def histogram(self, agg):
        return agg.sep_edges, agg.separation
