"""The notebook monitor: the dashboard of a run, live in Jupyter, without a bokeh server.

The bokeh layout (the dashboard and the same bokeh controls as the server page) sits in a
``jupyter_bokeh`` :class:`~jupyter_bokeh.widgets.BokehModel` inside an ipywidgets box, under a
link to the dask dashboard of the session's cluster (tasks, workers, memory). An asyncio task
on the kernel's event loop refreshes the views every ``interval`` seconds; streamed rows travel
over the widget's comm. The task runs whenever the kernel is idle or a cell awaits
(``await monitor.wait(...)``).
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from urllib.parse import urlsplit, urlunsplit

import ipywidgets as W
from jupyter_bokeh.widgets import BokehModel

from .bokeh_controls import page_layout
from .layout import Dashboard
from .runner import SessionRunner

log = logging.getLogger(__name__)


def ensure_bokehjs() -> None:
    """Load BokehJS into the notebook page from this installation (no CDN, works offline).

    Without BokehJS in the page, ``BokehModel`` widgets fail with "Failed to create view";
    ``output_notebook()`` alone loads it from a CDN that beamline networks often cannot reach.
    """
    from bokeh.io import output_notebook
    from bokeh.resources import INLINE

    output_notebook(INLINE, hide_banner=True)


def dashboard_link(client) -> str | None:
    """The URL of the dask dashboard of ``client``'s scheduler, or None without one.

    dask names the host of the scheduler's address, but an in-process cluster's address is
    the machine's IP while xlive binds its dashboard to 127.0.0.1 only (see
    :func:`~xlive.engine.cluster.default_client`): the link then points at 127.0.0.1. dask's
    ``distributed.dashboard.link`` template still decides the form of the link.
    """
    try:
        link = client.dashboard_link
    except Exception:  # no scheduler information (closed client): no link
        return None
    if not link:
        return None
    scheduler = getattr(getattr(client, "cluster", None), "scheduler", None)
    bound = getattr(getattr(scheduler, "http_server", None), "address", None)
    parts = urlsplit(link)
    # a relative link (Binder, JupyterHub: "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status" in
    # dask's distributed.dashboard.link) already goes through the notebook server: keep it
    if bound in ("127.0.0.1", "::1") and parts.hostname and parts.port:
        host = "127.0.0.1" if bound == "127.0.0.1" else "[::1]"
        link = urlunsplit(parts._replace(netloc=f"{host}:{parts.port}"))
    return link


def _link_html(link: str | None) -> str:
    if not link:
        return ""
    url = html.escape(link, quote=True)
    return (
        f"<span style='font-size:0.9em'>dask dashboard (tasks, workers, memory): "
        f"<a href='{url}' target='_blank' rel='noopener'>{html.escape(link)}</a></span>"
    )


class Monitor:
    """Monitor a run live in a notebook.

    Parameters
    ----------
    target
        A :class:`~xlive.engine.session.LiveSession`, or anything it opens (a run folder, Zarr store,
        Eiger master file, ...).
    interval
        Seconds between view refreshes.
    run
        Drive the session's live loop in a background thread (False: you drive it).
    **session_kw
        Passed to :class:`~xlive.engine.session.LiveSession` when ``target`` is not a session
        (``features``, ``params``, ``thresholds``, ``analyzer_params``, ...).

    Examples
    --------
    >>> from xlive import Monitor                  # doctest: +SKIP
    >>> m = Monitor("run"); m                       # doctest: +SKIP
    >>> await m.wait(frames=500)                    # doctest: +SKIP
    """

    def __init__(self, target, *, interval: float = 0.5, run: bool = True, **session_kw):
        from ..engine.session import LiveSession

        self._own = not isinstance(target, LiveSession)
        self.session = LiveSession(target, **session_kw) if self._own else target
        self.interval = interval
        self.runner = SessionRunner(self.session) if run else None
        self.dashboard = Dashboard(self.session)
        #: the page of the ``xlive serve`` server, controls included (frame, previous/next hit,
        #: scale and levels, spot finder, sampling, flag thresholds), kept in sync with the
        #: kernel by jupyter_bokeh
        self.page = page_layout(self.dashboard)
        self.plots = BokehModel(self.page)
        #: URL of the dask dashboard of the session's cluster (None without one)
        self.dashboard_link = dashboard_link(self.session.processor.client)
        self.links = W.HTML(_link_html(self.dashboard_link))
        self.message = W.HTML("")
        self.widget = W.VBox([self.links, self.plots, self.message])
        self._task: asyncio.Task | None = None
        self.start()

    # ------------------------------------------------------------------ running
    def update(self) -> list[str]:
        """Refresh the views now; returns the names of the views that changed."""
        return self.dashboard.update()

    def start(self) -> Monitor:
        """Start the live loop (if this monitor drives it) and the refresh task."""
        if self.runner is not None:
            self.runner.start()
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
            except Exception as e:  # keep refreshing; say what went wrong under the plots
                log.exception("xlive monitor: a view update failed")
                self.message.value = (
                    f"<span style='color:#c62828'>xlive views: update failed: "
                    f"{type(e).__name__}: {e}</span>"
                )
            await asyncio.sleep(self.interval)

    async def wait(
        self,
        frames: int | None = None,
        *,
        idle: float | None = None,
        timeout: float | None = 3600.0,
    ) -> int:
        """Let the views update until ``frames`` frames were handled (stored or sampled out),
        or, with ``frames=None``, until the run has ended and every frame is handled.

        The run has ended when its end marker says so (an xlive run's ``complete`` flag, an
        Eiger master's planned frame count) or, for runs without one, when it has not grown
        for an idle time learnt from its cadence (3x the longest pause between new frames,
        at least ``idle`` s): an Eiger run that adds a data file every few seconds is not
        over between two files. A run that does not exist yet is waited for.

        Raises
        ------
        TimeoutError
            When ``timeout`` seconds pass first (say so rather than return half a run).
        """
        s = self.session
        stats = s.processor.stats
        if idle is not None:
            s.clock.min_idle = idle
        t_end = None if timeout is None else time.time() + timeout
        while True:
            done = stats.frames_stored + stats.frames_skipped
            if frames is not None and done >= frames:
                break
            if frames is None and s.run_state() == "finished":
                break
            if s.error is not None:
                raise s.error
            if t_end is not None and time.time() > t_end:
                self.update()
                raise TimeoutError(
                    f"the run is not over after {timeout:g} s ({done} frames handled of "
                    f"{s.source.n_frames} seen; {s.waiting_for() or 'still growing'}); "
                    "wait again, or pass a longer timeout="
                )
            await asyncio.sleep(min(self.interval, 0.25))
        self.update()
        return stats.frames_stored + stats.frames_skipped

    def stop(self) -> None:
        """Stop refreshing and (if this monitor drives it) the live loop."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.runner is not None:
            self.runner.stop()

    def close(self) -> None:
        """Stop, and close the session if this monitor opened it."""
        self.stop()
        if self._own:
            self.session.close()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        ensure_bokehjs()
        display(self.widget)
