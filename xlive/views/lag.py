"""Lag and throughput of the live loop over wall time: is analysis keeping up?"""

from __future__ import annotations

import math
import time

from bokeh.models import ColumnDataSource, LinearAxis, Range1d

from ._base import ROLLOVER, View, legend_outside, make_figure
from .tweak import sampling_note


class LagView(View):
    """95th-percentile lag (s) and throughput (frames/s) against seconds since the view started.

    One point per update in which frames were stored; the title says which fraction of the
    frames is analysed (as the sampling slider does). Hidden once the run is finished, where
    lag means nothing.
    """

    name = "lag"

    def __init__(self, rollover: int = ROLLOVER):
        self.rollover = rollover
        self._t0 = time.time()
        self._stored = -1
        self.source = ColumnDataSource({"t": [], "lag": [], "throughput": []}, name="lag_source")
        fig = make_figure(
            self.name, "Lag and throughput", x_label="time (s)", y_label="lag, 95% (s)"
        )
        fig.line("t", "lag", source=self.source, color="purple", line_width=2, legend_label="lag")
        fig.extra_y_ranges = {"rate": Range1d(0, 10)}
        fig.add_layout(LinearAxis(y_range_name="rate", axis_label="frames/s"), "right")
        fig.line(
            "t",
            "throughput",
            source=self.source,
            color="teal",
            y_range_name="rate",
            legend_label="throughput",
        )
        legend_outside(fig)
        self.root = fig

    def update(self, session) -> bool:
        live = session.run_state() != "finished"
        changed = live != self.root.visible
        self.root.visible = live
        stats = session.processor.stats
        if stats.frames_stored == self._stored:
            return changed
        self._stored = stats.frames_stored
        lag, rate = session.lag, session.throughput
        self.source.stream(
            {
                "t": [round(time.time() - self._t0, 2)],
                "lag": [lag if math.isfinite(lag) else float("nan")],
                "throughput": [rate],
            },
            rollover=self.rollover,
        )
        rr = self.root.extra_y_ranges["rate"]
        rr.end = max(rr.end, 1.2 * rate)
        note = sampling_note(session)
        self.root.title.text = (
            f"Lag {lag:.1f} s (95%), {rate:.0f} frames/s, {note}"
            if math.isfinite(lag)
            else "Lag and throughput"
        )
        return True
