"""Flag episodes as shaded bands on the plots along the run's frames (red: error, amber:
warning), so a jet lost a minute ago still shows where it happened."""

from __future__ import annotations

from bokeh.models import ColumnDataSource, VStrip

from ._base import View

COLORS = {"error": "#c62828", "warning": "#ef8f00"}


class FlagBands(View):
    """One band per flag episode, drawn on every figure given (one source per document)."""

    name = "flag_bands"

    def __init__(self, figures):
        self.source = ColumnDataSource(
            {"x0": [], "x1": [], "color": [], "flag": []}, name="flag_bands_source"
        )
        for fig in figures:
            fig.add_glyph(
                self.source,
                VStrip(x0="x0", x1="x1", fill_color="color", fill_alpha=0.15, line_alpha=0),
            )
        self._shown: tuple | None = None
        self.root = None

    def update(self, session) -> bool:
        eps = session.timeline.episodes
        last = session.tracker.last_frame or 0
        rows = tuple(
            (
                e.raised_at,
                e.cleared_at if e.cleared_at is not None else last,
                COLORS.get(e.severity, "#757575"),
                e.name,
            )
            for e in eps
        )
        if rows == self._shown:
            return False
        self._shown = rows
        x0, x1, color, flag = (
            (list(c) for c in zip(*rows, strict=True)) if rows else ([], [], [], [])
        )
        self.source.data = {"x0": x0, "x1": x1, "color": color, "flag": flag}
        return True
