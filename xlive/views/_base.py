"""What every view component shares: the component protocol, figure defaults, streaming cursors.

A component owns a :class:`~bokeh.models.ColumnDataSource` (``source``), a root model (``root``)
and ``update(session) -> bool``, which reads the session's state (the caller holds
``session.lock``), sends only what is new, and returns whether anything changed. Components are
built here, assembled in :mod:`xlive.views.layout` and scheduled by the notebook monitor or the
server page, like the components of dask.distributed's dashboard.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

#: points kept in the browser per strip chart (older points roll over)
ROLLOVER = 20_000
#: plot height in pixels
HEIGHT = 230
TOOLS = "pan,wheel_zoom,box_zoom,reset,save"


class View:
    """Base of the view components.

    Attributes
    ----------
    name
        Short name; the bokeh models carry ``name=f"{name}_source"`` / ``f"{name}_plot"`` so
        tests and pages can find them.
    source
        The component's data.
    root
        The bokeh model to place in a layout.
    """

    name = "view"
    source: ColumnDataSource
    root: Any

    def update(self, session) -> bool:  # pragma: no cover - overridden
        """Bring the component up to date with ``session``; True when something changed."""
        raise NotImplementedError


def make_figure(
    name: str, title: str, *, x_label: str = "frame", y_label: str = "", height: int = HEIGHT, **kw
):
    """A figure with xlive's defaults (stretches to the width of its container)."""
    fig = figure(
        title=title,
        name=f"{name}_plot",
        height=height,
        sizing_mode="stretch_width",
        tools=kw.pop("tools", TOOLS),
        toolbar_location="right",
        **kw,
    )
    fig.xaxis.axis_label = x_label
    fig.yaxis.axis_label = y_label
    fig.title.text_font_size = "11pt"
    return fig


def legend_outside(fig, click_policy: str = "hide") -> None:
    """Move the figure's legend to the right of the plot area, so it never hides data
    (clicking an entry hides that line)."""
    for leg in list(fig.legend):
        if leg in fig.center:
            fig.center.remove(leg)
        leg.location = "top_left"
        leg.click_policy = click_policy
        leg.label_text_font_size = "9pt"
        leg.spacing = 0
        leg.padding = 4
        leg.margin = 4
        fig.add_layout(leg, "right")


def tail(seq: Sequence, k: int) -> list:
    """The last ``k`` items of a sequence or deque, in order, in O(k)."""
    if k <= 0:
        return []
    if isinstance(seq, list):
        return seq[-k:]
    if hasattr(seq, "last"):  # a RingSeries: numpy slice, Python values
        return seq.last(k).tolist()
    out = list(itertools.islice(reversed(seq), k))
    out.reverse()
    return out


def finite_or_none(values) -> list:
    """Floats with inf replaced by NaN (bokeh leaves gaps at NaN; ``None`` would plot as 0)."""
    arr = np.asarray(values, float)
    return np.where(np.isfinite(arr), arr, np.nan).tolist()


def stream_in_frame_order(source: ColumnDataSource, rows: dict, rollover: int, key: str = "frame"):
    """Add ``rows`` to ``source`` so that its ``key`` column stays in increasing order.

    Blocks of frames finish out of order on a cluster; plotted in arrival order a line would
    run backwards. The usual case (every new row after the last one sent) is streamed (only the
    new rows travel); a row that belongs earlier makes the source be replaced by the merged,
    sorted rows (the newest ``rollover`` kept). Returns ``"streamed"``, ``"replaced"`` or
    ``""`` (nothing to add).
    """
    keys = np.asarray(rows[key], float)
    if not keys.size:
        return ""
    order = np.argsort(keys, kind="stable")
    rows = {k: [v[i] for i in order] for k, v in rows.items()}
    old = source.data.get(key, [])
    if not len(old) or rows[key][0] >= old[-1]:
        source.stream(rows, rollover=rollover)
        return "streamed"
    merged = {k: list(source.data[k]) + list(v) for k, v in rows.items()}
    order = np.argsort(np.asarray(merged[key], float), kind="stable")[-rollover:]
    source.data = {k: [v[i] for i in order] for k, v in merged.items()}
    return "replaced"


class SeriesCursor:
    """Hands out the per-frame rows of ``RunAggregates.series`` added since the last call.

    The aggregates append every stored frame to each series (bounded deques); the count of good
    frames (``aggregates.frames``) tells how many rows are new, so a read costs O(new rows)
    however long the run is.
    """

    def __init__(self) -> None:
        self.seen = 0

    def new_rows(self, aggregates, names: Sequence[str]) -> dict[str, list] | None:
        """New rows of ``frame`` and ``names`` (None when nothing is new)."""
        total = aggregates.frames
        k = total - self.seen
        if k <= 0:
            return None
        self.seen = total
        frames = aggregates.series["frame"]
        k = min(k, len(frames))
        out = {"frame": tail(frames, k)}
        for name in names:
            s = aggregates.series.get(name, ())
            vals = tail(s, k) if len(s) == len(frames) else [np.nan] * k
            out[name] = vals
        return out


class HistogramView(View):
    """A histogram the aggregates keep (:meth:`histogram`), redrawn only when new frames came;
    subclasses set the names, labels and colour, and may decorate ``fig``."""

    title = ""
    x_label = ""
    y_label = ""
    color = "navy"

    def __init__(self):
        self._updates = -1
        self.source = ColumnDataSource(
            {"left": [], "right": [], "count": []}, name=f"{self.name}_source"
        )
        self.fig = make_figure(self.name, self.title, x_label=self.x_label, y_label=self.y_label)
        self.fig.quad(
            left="left",
            right="right",
            bottom=0,
            top="count",
            source=self.source,
            color=self.color,
            alpha=0.8,
        )
        self.root = self.fig

    def update(self, session) -> bool:
        agg = session.aggregates
        if agg.updates == self._updates:
            return False
        self._updates = agg.updates
        e, counts = self.histogram(agg)
        self.source.data = {
            "left": e[:-1].tolist(),
            "right": e[1:].tolist(),
            "count": counts.tolist(),
        }
        return True

    def histogram(self, agg) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - overridden
        """``(edges, counts)`` of the histogram in the aggregates ``agg``."""
        raise NotImplementedError
