"""The logbook in a notebook: the same run table as the ``xlive logbook`` page, as a widget.

The table's bokeh layout sits in a ``jupyter_bokeh`` :class:`~jupyter_bokeh.widgets.BokehModel`;
an asyncio task on the kernel's event loop re-reads the database every ``interval`` seconds,
so rows of runs in progress change while the kernel is idle. Comment and tag cells typed in
the table are written to the database.
"""

from __future__ import annotations

import asyncio
import logging

import ipywidgets as W
from jupyter_bokeh.widgets import BokehModel

from .logbook import LogbookView
from .monitor import ensure_bokehjs

log = logging.getLogger(__name__)


class LogbookWidget:
    """The run table of a run database, live in Jupyter.

    Parameters
    ----------
    db
        SQLite file, SQLAlchemy URL, or None (the default database).
    variables
        A variables file of ``@xlive.run_variable`` functions (their columns are computed
        for runs whose values are stale).
    interval
        Seconds between refreshes.

    Examples
    --------
    >>> from xlive.views.logbook_widget import LogbookWidget   # doctest: +SKIP
    >>> LogbookWidget("beamtime.sqlite", variables="vars.py")  # doctest: +SKIP
    """

    def __init__(self, db=None, *, variables=None, interval: float = 2.0):
        self.view = LogbookView(db, variables=variables, base_url=None)
        self.interval = interval
        self.table = BokehModel(self.view.root)
        self.message = W.HTML("")
        self.widget = W.VBox([self.table, self.message])
        self._task: asyncio.Task | None = None
        self.start()

    @property
    def rows(self):
        """The table as a DataFrame (all runs, before the filter)."""
        return self.view.df

    def update(self) -> bool:
        """Re-read the database now; True if the rows changed."""
        return self.view.update()

    def export(self, path) -> None:
        """Write the rows shown (after the filter) to ``path``: .csv, .xlsx or .md."""
        from pathlib import Path

        path = Path(path)
        fmt = path.suffix.lstrip(".").lower()
        path.write_bytes(self.view.export(fmt))

    def start(self) -> LogbookWidget:
        if self._task is None or self._task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no running loop (plain script): call update() yourself
                return self
            self._task = loop.create_task(self._refresh())
        return self

    async def _refresh(self) -> None:
        while True:
            try:
                self.update()
                self.message.value = ""
            except Exception as e:  # keep refreshing; say what went wrong under the table
                log.exception("xlive logbook: update failed")
                self.message.value = (
                    f"<span style='color:#c62828'>xlive logbook: update "
                    f"failed: {type(e).__name__}: {e}</span>"
                )
            await asyncio.sleep(self.interval)

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def close(self) -> None:
        self.stop()
        self.view.close()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        ensure_bokehjs()
        display(self.widget)
