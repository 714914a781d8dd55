"""The ``xlive serve`` page: the dashboard of a session as a bokeh server page on 127.0.0.1.

Each browser tab gets its own :class:`~xlive.views.layout.Dashboard` (bokeh models belong to one
document), refreshed by a periodic callback on the server's event loop; all tabs read the same
session. BokehJS is served by this server itself (``/static``), never from a CDN.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import threading
import time
from dataclasses import dataclass, field

from bokeh.application import Application
from bokeh.application.handlers.function import FunctionHandler
from bokeh.server.server import Server

from .bokeh_controls import page_layout
from .layout import Dashboard


def add_dashboard(doc, session, *, interval: float = 0.5, defer: bool = False) -> Dashboard:
    """Put a dashboard of ``session`` (plus controls) into ``doc`` and refresh it periodically.

    ``defer``: the document starts with the views of the run's first frames (status, flags,
    hit rate, spots, d_min, detector) and gets the other views once the browser has drawn
    it (its ``DocumentReady`` event), so a page shows the first frame sooner.
    """
    dash = Dashboard(session, defer=defer)
    dash.update()
    doc.title = "xlive"
    doc.add_root(page_layout(dash))
    doc.add_periodic_callback(dash.update, int(interval * 1000))
    if defer:
        from bokeh.events import DocumentReady

        doc.on_event(DocumentReady, lambda event: dash.complete())
    return dash


def make_application(session, *, interval: float = 0.5) -> Application:
    """A bokeh Application whose documents show ``session``."""
    return Application(
        FunctionHandler(lambda doc: add_dashboard(doc, session, interval=interval, defer=True))
    )


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port free on ``address`` now."""
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


@dataclass
class ServerHandle:
    """A bokeh server running in a background thread; :meth:`stop` ends it."""

    server: Server
    thread: threading.Thread
    address: str
    port: int
    _stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and its thread (idempotent)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        loop = self.server.io_loop

        def _stop():
            self.server.stop()
            loop.stop()

        loop.add_callback(_stop)
        self.thread.join(timeout)


def serve_session(
    session,
    *,
    port: int = 5006,
    address: str = "127.0.0.1",
    open_browser: bool = False,
    interval: float = 0.5,
    apps: dict | None = None,
    extra_patterns: list | None = None,
) -> ServerHandle:
    """Serve the dashboard of ``session`` at ``http://address:port/`` from a background thread.

    The caller keeps driving the session (its live loop); the page only reads it.

    Parameters
    ----------
    session
        A :class:`~xlive.engine.session.LiveSession` (None: only ``apps``).
    port
        TCP port (0: any free port; see ``handle.port``).
    address
        Interface to bind; 127.0.0.1 unless you mean to share the page.
    open_browser
        Open the page in the default web browser.
    interval
        Seconds between refreshes of each open page.
    apps, extra_patterns
        More bokeh applications by path (e.g. ``{"/logbook": ...}``) and tornado handlers
        served beside the dashboard.

    Returns
    -------
    ServerHandle
        ``.url``, ``.port`` and ``.stop()``.

    Examples
    --------
    >>> handle = serve_session(session, port=0)      # doctest: +SKIP
    >>> print(handle.url); ...; handle.stop()        # doctest: +SKIP
    """
    port = port or free_port(address)
    box: dict = {}
    ready = threading.Event()

    def run():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            from tornado.ioloop import IOLoop

            dashboard = (
                {"/": make_application(session, interval=interval)} if session is not None else {}
            )
            server = Server(
                {**dashboard, **(apps or {})},
                extra_patterns=list(extra_patterns or []),
                io_loop=IOLoop.current(),
                address=address,
                port=port,
                allow_websocket_origin=[f"{address}:{port}", f"localhost:{port}"],
            )
            server.start()
            box["server"] = server
        except BaseException as e:  # reported to the caller of serve_session
            box["error"] = e
            ready.set()
            return
        ready.set()
        if open_browser:
            server.io_loop.add_callback(server.show, "/")
        server.io_loop.start()
        loop.close()

    thread = threading.Thread(target=run, name=f"xlive-serve-{port}", daemon=True)
    thread.start()
    ready.wait(60)
    if isinstance(box.get("error"), OSError) and box["error"].errno == errno.EADDRINUSE:
        from ..errors import ConfigError

        raise ConfigError(
            f"port {port} on {address} is taken (another server listens there); "
            "choose another with --port PORT, or --port 0 for any free one"
        ) from box["error"]
    if "error" in box:
        raise box["error"]
    if "server" not in box:
        raise RuntimeError(f"the bokeh server on {address}:{port} did not start within 60 s")
    return ServerHandle(box["server"], thread, address, port)


def wait_forever(handle: ServerHandle, poll: float = 0.5) -> None:
    """Block until the server thread ends (e.g. after :meth:`ServerHandle.stop`)."""
    while handle.thread.is_alive():
        time.sleep(poll)
