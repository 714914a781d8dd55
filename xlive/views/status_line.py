"""One status line above the plots: green, amber or red, summing up the flags at a glance."""

from __future__ import annotations

import math

from bokeh.models import ColumnDataSource, Div

from ._base import View

COLORS = {"green": "#2e7d32", "amber": "#ef8f00", "red": "#c62828"}


def status_text(session) -> tuple[str, str]:
    """(status, one-line summary) of the session now."""
    agg = session.aggregates
    st = session.status
    rate = agg.rolling_hit_rate()[0]
    parts = [f"{agg.frames} frames analysed of {session.source.n_frames}",
             f"hit rate {rate:.1%}" if math.isfinite(rate) else "no frames yet"]
    ix = getattr(agg, "indexing", None)
    if ix is not None and ix.tried:
        recent = ix.rolling_rates()[0]
        parts.append(f"indexed {recent if math.isfinite(recent) else ix.rate:.0%} of hits")
    lag = session.lag
    if math.isfinite(lag):
        parts.append(f"lag {lag:.1f} s")
    if session.flags:
        parts.append("; ".join(f.name.replace("_", " ") for f in session.flags))
    elif agg.frames:
        parts.append("all checks pass")
    warning = _placeholder(session)
    if warning:  # a meaningless geometry outweighs every flag: say it first
        st = "red"
        parts.insert(0, warning)
    workers = getattr(session, "cluster_workers", None)
    if workers is not None:  # batch-cluster workers and their jobs
        parts.append(workers.summary())
    if getattr(session, "error", None) is not None:
        st = "red"
        parts.append(f"live loop stopped: {type(session.error).__name__}: {session.error}")
    return st, " · ".join(parts)


def _placeholder(session) -> str | None:
    """The placeholder-geometry warning of the session's run (None when the geometry is real
    or not known yet)."""
    from ..geometry.files import placeholder_warning

    try:
        return placeholder_warning(session.source.geometry) if session.source.n_frames else None
    except Exception:  # no geometry yet: the live loop reports why
        return None


class StatusLine(View):
    """A coloured banner: the run's status and the flags that cause it."""

    name = "status"

    def __init__(self):
        self.source = ColumnDataSource({"status": [], "text": []}, name="status_source")
        self._shown: tuple | None = None
        self.root = Div(name="status_plot", sizing_mode="stretch_width",
                        text=self._html("green", "waiting for frames"))

    @staticmethod
    def _html(status: str, text: str) -> str:
        return (f'<div style="background:{COLORS[status]};color:white;padding:6px 12px;'
                f'border-radius:4px;font-size:15pt;font-family:sans-serif">'
                f'<b>{status.upper()}</b> &nbsp; {text}</div>')

    def update(self, session) -> bool:
        st, text = status_text(session)
        if (st, text) == self._shown:
            return False
        self._shown = (st, text)
        self.source.data = {"status": [st], "text": [text]}
        self.root.text = self._html(st, text)
        return True
