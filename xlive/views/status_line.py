"""One status line above the plots: what the run is doing and how it is going, at a glance.

Grey "WAITING" until the run exists and its first frame is analysed (nothing analysed is not
"all good"); then green, amber or red from the flags; after the run, the status over the whole
run with "run finished N s ago", so the page stays readable once the run is over.
"""

from __future__ import annotations

import math
import time

from bokeh.models import ColumnDataSource, Div

from ._base import View

COLORS = {"green": "#2e7d32", "amber": "#ef8f00", "red": "#c62828", "waiting": "#757575"}


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def status_text(session) -> tuple[str, str]:
    """(status, one-line summary) of the session now; status is ``waiting``, ``green``,
    ``amber`` or ``red``."""
    agg = session.aggregates
    error = getattr(session, "error", None)
    if error is not None:
        return "red", f"live loop stopped: {type(error).__name__}: {error}"
    state = session.run_state()
    if state == "waiting":
        return "waiting", session.waiting_for() or "waiting for the run"
    if agg.frames == 0:
        text = f"no data yet: {session.source.n_frames} frames seen, analysing the first"
        warning = _placeholder(session)  # a meaningless geometry is said before any data
        return ("red", f"{warning} · {text}") if warning else ("waiting", text)
    finished = state == "finished"
    st = session.timeline.status() if finished else session.status
    rate = agg.rolling_hit_rate()[0] if not finished else agg.hit_rate
    parts = []
    if finished:
        since = session.clock.finished_at
        parts.append(f"run finished {_ago(time.time() - since)} ago" if since else "run finished")
    parts += [
        f"{agg.frames} frames analysed of {session.source.n_frames}",
        f"hit rate {rate:.1%}" if math.isfinite(rate) else "no hits yet",
    ]
    ix = getattr(agg, "indexing", None)
    if ix is not None and ix.tried:
        recent = ix.rolling_rates()[0]
        parts.append(f"indexed {recent if math.isfinite(recent) else ix.rate:.0%} of hits")
    lag = session.lag
    if math.isfinite(lag) and not finished:
        parts.append(f"lag {lag:.1f} s")
    more = session.waiting_for()
    if more and not finished:
        parts.append(more)
    if finished:
        eps = session.timeline.episodes
        parts.append(
            "; ".join(
                f"{e.name.replace('_', ' ')} (frames {e.raised_at}-"
                f"{e.cleared_at if e.cleared_at is not None else 'end'})"
                for e in eps
            )
            if eps
            else "no flags during the run"
        )
    elif session.flags:
        parts.append("; ".join(f.name.replace("_", " ") for f in session.flags))
    else:
        parts.append("all checks pass")
    warning = _placeholder(session)
    if warning:  # a meaningless geometry outweighs every flag: say it first
        st = "red"
        parts.insert(0, warning)
    workers = getattr(session, "cluster_workers", None)
    if workers is not None:  # batch-cluster workers and their jobs
        parts.append(workers.summary())
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
    """A coloured banner: the run's state and status, and the flags that cause it."""

    name = "status"

    def __init__(self):
        self.source = ColumnDataSource({"status": [], "text": []}, name="status_source")
        self._shown: tuple | None = None
        self.root = Div(
            name="status_plot",
            sizing_mode="stretch_width",
            text=self._html("waiting", "waiting for the run"),
        )

    @staticmethod
    def _html(status: str, text: str) -> str:
        return (
            f'<div style="background:{COLORS[status]};color:white;padding:6px 12px;'
            f'border-radius:4px;font-size:15pt;font-family:sans-serif">'
            f"<b>{status.upper()}</b> &nbsp; {text}</div>"
        )

    def update(self, session) -> bool:
        st, text = status_text(session)
        if (st, text) == self._shown:
            return False
        self._shown = (st, text)
        self.source.data = {"status": [st], "text": [text]}
        self.root.text = self._html(st, text)
        return True
