"""Peakogram: spot intensity against resolution (1/d), the saturation and weak-data check."""

from __future__ import annotations

import numpy as np
from bokeh.models import ColorBar, ColumnDataSource, LinearColorMapper
from bokeh.palettes import Inferno256

from ._base import View, make_figure
from .resolution import Q_PER_INV_D, add_d_axis


class PeakogramView(View):
    """2-D histogram of spots: q (1/nm, d in Å above) x log10 intensity, colour log10(1 +
    count)."""

    name = "peakogram"

    def __init__(self):
        self._updates = -1
        self.source = ColumnDataSource(
            {"image": [], "x": [], "y": [], "dw": [], "dh": []}, name="peakogram_source"
        )
        self.mapper = LinearColorMapper(palette=Inferno256, low=0, high=1)
        fig = make_figure(
            self.name,
            "Peakogram: spot intensity by resolution",
            x_label="q (1/nm)",
            y_label="log10 spot intensity",
        )
        fig.image(
            "image", x="x", y="y", dw="dw", dh="dh", source=self.source, color_mapper=self.mapper
        )
        add_d_axis(fig)
        fig.add_layout(
            ColorBar(color_mapper=self.mapper, width=8, title="log10(1 + spots)", title_standoff=4),
            "right",
        )
        self.root = fig

    def update(self, session) -> bool:
        agg = session.aggregates
        if agg.updates == self._updates:
            return False
        self._updates = agg.updates
        img = np.log10(1.0 + agg.peakogram.T.astype(np.float32))
        self.mapper.high = float(max(img.max(), 1.0))
        xe, ye = agg.inv_d_edges * Q_PER_INV_D, agg.log_i_edges
        self.source.data = {
            "image": [img],
            "x": [float(xe[0])],
            "y": [float(ye[0])],
            "dw": [float(xe[-1] - xe[0])],
            "dh": [float(ye[-1] - ye[0])],
        }
        return True
