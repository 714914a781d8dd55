"""Radial profile: the latest frame and the running mean (laser on / off), with a d axis."""

from __future__ import annotations

import numpy as np
from bokeh.models import ColumnDataSource

from ._base import View, finite_or_none, legend_outside, make_figure
from .resolution import add_d_axis, q_axis


class RadialProfileView(View):
    """Radial profile against q (1/nm), with the matching d-spacing (Å) on the top axis.

    The arrays have a fixed length (the q bins), so an update replaces them; it happens only
    when new frames were stored.
    """

    name = "radial"

    def __init__(self):
        self._frames = -1
        self.source = ColumnDataSource(
            {"q": [], "latest": [], "mean": [], "mean_on": [], "mean_off": []}, name="radial_source"
        )
        fig = make_figure(self.name, "Radial profile", x_label="q (1/nm)", y_label="mean intensity")
        fig.line(
            "q", "mean", source=self.source, color="black", line_width=2, legend_label="run mean"
        )
        fig.line("q", "mean_on", source=self.source, color="crimson", legend_label="laser on")
        fig.line("q", "mean_off", source=self.source, color="royalblue", legend_label="laser off")
        fig.line(
            "q",
            "latest",
            source=self.source,
            color="orange",
            alpha=0.8,
            legend_label="latest frame",
        )
        add_d_axis(fig)
        legend_outside(fig)
        self.root = fig

    def update(self, session) -> bool:
        agg = session.aggregates
        if agg.frames == self._frames or not agg.radial:
            return False
        self._frames = agg.frames
        mean = agg.mean_profile()
        q = q_axis(session)
        if q is None or len(q) != len(mean):
            q = np.arange(len(mean), dtype=float)
        on, off = agg.mean_profile(True), agg.mean_profile(False)
        nan = np.full(len(mean), np.nan)
        latest = agg.latest_profile if agg.latest_profile is not None else nan
        self.source.data = {
            "q": q.tolist(),
            "latest": finite_or_none(latest),
            "mean": finite_or_none(mean),
            "mean_on": finite_or_none(on if on is not None else nan),
            "mean_off": finite_or_none(off if off is not None else nan),
        }
        return True
