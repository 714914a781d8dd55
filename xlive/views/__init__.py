"""Live views: bokeh components (one per module), the notebook ``Monitor`` and the server page.

- Components (:mod:`~xlive.views.hit_rate`, :mod:`~xlive.views.spots_chart`, ...) each own a
  ``ColumnDataSource``, a root model and ``update(session)``.
- :class:`~xlive.views.layout.Dashboard` assembles them for one session.
- :class:`~xlive.views.monitor.Monitor` shows a dashboard in a notebook, live, without a server.
- :func:`~xlive.views.app.serve_session` serves it as a bokeh server page (``xlive serve``).
"""

from __future__ import annotations

__all__ = ["Dashboard", "Monitor", "serve_session", "SessionRunner", "LiveControls"]


def __getattr__(name: str):
    # keep `import xlive.views` cheap: bokeh and ipywidgets load on first use
    if name == "Dashboard":
        from .layout import Dashboard

        return Dashboard
    if name == "Monitor":
        from .monitor import Monitor

        return Monitor
    if name == "serve_session":
        from .app import serve_session

        return serve_session
    if name == "SessionRunner":
        from .runner import SessionRunner

        return SessionRunner
    if name == "LiveControls":
        from .tweak import LiveControls

        return LiveControls
    raise AttributeError(f"module 'xlive.views' has no attribute {name!r}")
