"""The ``xlive serve`` page: the dashboard of a session as a bokeh server page on 127.0.0.1.

Each browser tab gets its own :class:`~xlive.views.layout.Dashboard` (bokeh models belong to one
document), refreshed by a periodic callback on the server's event loop; all tabs read the same
session. BokehJS is served by this server itself (``/static``), never from a CDN.

``xlive serve`` starts the server before the session (a :class:`PendingSession`): the browser
loads the page and BokehJS while the engine imports, opens the run and builds its analyzers.
A page asked for meanwhile gets its dashboard as soon as the session is there; its document is
sent to the browser only then (bokeh sends a document under its lock, which the dashboard's
build holds while it waits), so a page always starts with the dashboard. The live loop
analyses the run's first block in its own thread and waits until those pages have sent it to
their browsers, which have drawn the page (:meth:`PendingSession.wait_shown`), before the dask
cluster starts.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from bokeh.application import Application
from bokeh.application.handlers.function import FunctionHandler
from bokeh.server.server import BaseServer


class PendingSession:
    """A session still being built: :func:`serve_session` can serve its page already.

    The thread building the session calls :meth:`set` with it (or :meth:`fail` with the error);
    pages asked for before then get their dashboard at that moment.
    """

    def __init__(self):
        self._ready = threading.Event()
        self._lock = threading.Lock()
        #: (event loop, future) of each page waiting
        self._waiters: list = []
        self.session = None
        self.error: BaseException | None = None
        #: pages woken by :meth:`set`, how many of them have their dashboard built, and how
        #: many of those have sent their first analysed frame
        self._woken = 0
        self._built = 0
        self._shown = 0
        self._built_changed = threading.Condition()

    def set(self, session) -> None:
        """The session is built: pages waiting for it get their dashboard."""
        self.session = session
        with self._built_changed:
            self._woken += self._wake()

    def wait_pages(self, timeout: float) -> bool:
        """Until every page woken by :meth:`set` has its dashboard built and, if the page
        had asked for it, its document's reply made (at most ``timeout`` seconds); False on
        timeout.

        ``xlive serve`` starts the live loop after this: the server builds and sends those
        pages' documents first, so the browser draws them (on another core) while the run's
        first block is analysed, instead of both sharing the interpreter until both are done.
        """
        with self._built_changed:
            return self._built_changed.wait_for(lambda: self._built >= self._woken, timeout)

    def wait_shown(self, timeout: float) -> bool:
        """Until every page built by then has sent the run's first analysed frame to its
        browser and the browser has drawn the page's document (at most ``timeout`` seconds);
        False on timeout.

        ``xlive serve``'s live loop waits for this after the run's first block, analysed in
        its own thread, before it starts the dask cluster: the cluster's start (~1 s of CPU,
        several threads) would otherwise share the interpreter with the pages' update that
        shows the frame, and the machine with the browser drawing it.
        """
        with self._built_changed:
            return self._built_changed.wait_for(lambda: self._shown >= self._built, timeout)

    def _page_built(self) -> None:
        with self._built_changed:
            self._built += 1
            self._built_changed.notify_all()

    def _page_shown(self) -> None:
        with self._built_changed:
            self._shown += 1
            self._built_changed.notify_all()

    def fail(self, error: BaseException, *, linger: float = 0.0) -> None:
        """The session could not be built: pages waiting for it say why. ``linger``: seconds
        to wait, when pages are waiting, so they get the message before the server stops."""
        self.error = error
        if self._wake() and linger > 0:
            time.sleep(linger)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait(self) -> None:
        """Until :meth:`set` or :meth:`fail` (on the server's event loop).

        Woken by the thread that sets the session, not by polling: a loop waking every few
        milliseconds would take the interpreter lock from the thread building the session
        just as often, which on a busy machine slows it down badly.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if self.ready:
                return
            self._waiters.append((loop, future))
        await future

    def _wake(self) -> int:
        """Wake the pages waiting; how many were woken."""
        with self._lock:
            self._ready.set()
            waiters, self._waiters = self._waiters, []
        woken = 0
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future)
                woken += 1
            except RuntimeError:  # that page's loop is closed (server stopped)
                pass
        return woken


def _resolve(future) -> None:
    if not future.done():
        future.set_result(None)


def add_dashboard(doc, session, *, interval: float = 0.5, defer: bool = False, on_shown=None):
    """Put a dashboard of ``session`` (plus controls) into ``doc`` and refresh it periodically.

    ``defer``: the document starts with the views of the run's first frames (status, flags,
    hit rate, spots, d_min, detector) and gets the other views once the browser has drawn
    it (its ``DocumentReady`` event), so a page shows the first frame sooner. ``on_shown``
    (with ``defer``): called on the server's loop once the update that sent the run's first
    analysed frame (or the first update, if it had one) has gone out and the browser has
    drawn the document (may be called more than once).
    Returns the :class:`~xlive.views.layout.Dashboard`.
    """
    # imported here: the server can start (and send BokehJS) before the views are imported
    from .bokeh_controls import page_layout
    from .layout import Dashboard

    dash = Dashboard(session, defer=defer)
    dash.update()
    doc.title = "xlive"
    doc.add_root(page_layout(dash))
    if not defer:
        doc.add_periodic_callback(dash.update, int(interval * 1000))
        return dash
    from bokeh.events import DocumentReady

    drawn: list[float] = []  # when the browser said it had drawn the first document

    def complete_when_shown():
        # building the other views holds the server's loop for a while (1-4 s): first let an
        # update send the run's first analysed frame, unless the run has none to show yet
        if dash.deferred and drawn:
            waited = time.monotonic() - drawn[0]
            if shows_frames(dash) or session.source.n_frames == 0 or waited > COMPLETE_WAIT:
                dash.complete()

    def update():
        dash.update()
        if dash.deferred and drawn:  # after this update's changes are sent
            doc.add_next_tick_callback(complete_when_shown)

    sent: list[bool] = []  # the update that shows the run's first frame has gone out

    def shown_when_drawn():
        # the page shows the frame once it went out and the browser has drawn the document
        # (it applies the frame's patch next; before, heavy work here would slow the browser)
        if sent and drawn and on_shown is not None:
            on_shown()

    def frame_sent():
        sent.append(True)
        shown_when_drawn()

    def on_ready(event):
        drawn.append(time.monotonic())
        shown_when_drawn()
        complete_when_shown()

    doc.add_periodic_callback(update, int(interval * 1000))
    doc.on_event(DocumentReady, on_ready)
    if shows_frames(dash):
        frame_sent()
    else:
        # until the run's first analysed frame is on the page, look for it every 0.1 s (an
        # integer read) rather than wait for the next refresh
        def first_frame():
            if shows_frames(dash):  # (sent by a regular refresh)
                doc.remove_periodic_callback(watch)
                frame_sent()
            elif session.aggregates.updates > 0:
                # once: a run of bad frames only is stored but never shows a hit-rate point,
                # and the regular refresh takes it from here. (The aggregates' count, not the
                # store's: a block is counted as stored before the session has taken it in.)
                doc.remove_periodic_callback(watch)
                update()
                # the update's changes go out as this callback returns
                doc.add_next_tick_callback(frame_sent)

        watch = doc.add_periodic_callback(first_frame, FIRST_FRAME_POLL)
    return dash


#: milliseconds between looks for the first analysed frame of a page that has none yet
FIRST_FRAME_POLL = 100


#: seconds a drawn page waits for the run's first analysed frame before its other views are built
COMPLETE_WAIT = 10.0


def shows_frames(dash) -> bool:
    """Whether the dashboard's hit-rate chart holds an analysed frame."""
    return len(dash.views["hit_rate"].source.data.get("frame", ())) > 0


def add_dashboard_when_ready(doc, pending: PendingSession, *, interval: float = 0.5) -> None:
    """Put the dashboard of ``pending``'s session into ``doc`` once it is built.

    Before that the document is empty: the browser gets the page, loads BokehJS and asks for
    the document, which bokeh sends only when this callback (holding the document's lock while
    it waits) has added the dashboard.
    """
    doc.title = "xlive"
    if pending.ready:
        _attach(doc, pending, interval)
        return

    async def attach():
        await pending.wait()
        try:  # (a page counted as built also says when it has shown the first frame)
            _attach(doc, pending, interval, on_shown=_once(pending._page_shown))
        finally:
            # counted once the document's reply to the page's request, waiting for this
            # callback's lock, is made (serialised: 0.1-0.2 s of CPU): the next callback
            # waits behind it for the same lock. So the live loop's first block, started
            # then, does not share the interpreter with it, and the browser draws the page
            # meanwhile (a page that has not asked for its document yet is not waited for)
            doc.add_next_tick_callback(_once(pending._page_built))

    doc.add_next_tick_callback(attach)


def _attach(doc, pending: PendingSession, interval: float, on_shown=None) -> None:
    with _unannounced(doc):
        if pending.error is not None:
            from bokeh.models import Div

            doc.add_root(Div(text=f"xlive could not start: {pending.error}", name="start_error"))
            return
        add_dashboard(doc, pending.session, interval=interval, defer=True, on_shown=on_shown)


def _once(f):
    """``f``, called at most once however often this is called."""
    done: list = []

    def once():
        if not done:
            done.append(True)
            f()

    return once


@contextmanager
def _unannounced(doc):
    """Changes to ``doc`` made meanwhile are not sent to its connections as PATCH-DOC messages.

    For a document no browser holds yet: :func:`add_dashboard_when_ready` builds it holding
    the document's lock, so the document's reply, sent after, carries the dashboard. A patch
    would make bokeh serialise the whole dashboard once more (as long as the document itself:
    0.1-0.3 s of the server's start-up) for BokehJS to drop (it ignores patches that come
    before its document). Other document events (periodic callbacks added) go on as usual.
    """
    server_session = doc.session_context.session if doc.session_context is not None else None
    # bokeh keeps no public list of a session's connections; without it, patches go out
    connections = set(getattr(server_session, "_subscribed_connections", ()))
    for c in connections:
        server_session.unsubscribe(c)
    try:
        yield
    finally:
        for c in connections:
            server_session.subscribe(c)


def make_application(session, *, interval: float = 0.5) -> Application:
    """A bokeh Application whose documents show ``session`` (or a :class:`PendingSession`)."""
    pending = session if isinstance(session, PendingSession) else None
    if pending is None:
        pending = PendingSession()
        pending.set(session)
    return Application(
        FunctionHandler(lambda doc: add_dashboard_when_ready(doc, pending, interval=interval))
    )


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port free on ``address`` now."""
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


@dataclass
class ServerHandle:
    """A bokeh server running in a background thread; :meth:`stop` ends it."""

    server: BaseServer
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
        A :class:`~xlive.engine.session.LiveSession`, a :class:`PendingSession` (the page is
        served at once, its dashboard added when the session is set) or None (only ``apps``).
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
    try:
        port = port or free_port(address)
    except OSError as exc:
        _not_this_machine(address, exc)
        raise
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
            server = _server(
                {**dashboard, **(apps or {})},
                extra_patterns=list(extra_patterns or []),
                io_loop=IOLoop.current(),
                address=address,
                port=port,
                # the logbook's run table is a DataTable (bokeh-tables)
                components=PAGE_COMPONENTS + (("bokeh-tables",) if apps else ()),
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
    if isinstance(box.get("error"), OSError):
        _not_this_machine(address, box["error"])
    if "error" in box:
        raise box["error"]
    if "server" not in box:
        raise RuntimeError(f"the bokeh server on {address}:{port} did not start within 60 s")
    return ServerHandle(box["server"], thread, address, port)


def _not_this_machine(address: str, err: OSError) -> None:
    """A ConfigError when ``err`` says ``address`` is no interface of this machine."""
    if isinstance(err, socket.gaierror) or err.errno == errno.EADDRNOTAVAIL:
        from ..errors import ConfigError

        raise ConfigError(
            f"cannot listen on {address} ({err.strerror or err}): not an address of this "
            "machine; give --address 127.0.0.1 (this machine only) or 0.0.0.0 (all interfaces)"
        ) from err


#: the BokehJS bundles the pages load: the dashboard's models are in these two (no TeX, no
#: WebGL, no tables), so its page leaves out bokeh-mathjax (1.8 MB), bokeh-gl and
#: bokeh-tables, which bokeh's server pages load by default (it cannot know which models an
#: application will use): less for the browser to parse and for the server to send while
#: it starts
PAGE_COMPONENTS = ("bokeh", "bokeh-widgets")


def _server(applications, *, extra_patterns, io_loop, address, port, components):
    """A bokeh server like ``bokeh.server.server.Server(applications, ...)`` on ``address:port``
    (websocket origins: that address and localhost), whose pages load only the BokehJS
    bundles ``components``: built from bokeh's public parts (``BaseServer`` with a
    ``BokehTornado`` and tornado's ``HTTPServer``), as bokeh's docs show for an own IO loop;
    ``Server`` itself has no option for the bundles."""
    from bokeh.resources import server_url
    from bokeh.server.server import BaseServer
    from bokeh.server.tornado import BokehTornado
    from bokeh.server.util import bind_sockets, create_hosts_allowlist
    from tornado.httpserver import HTTPServer

    class PageTornado(BokehTornado):
        def resources(self, absolute_url=None):
            res = super().resources(absolute_url)
            return res.clone(components=[c for c in res.components if c in components])

    sockets, port = bind_sockets(address, port)
    try:
        tornado_app = PageTornado(
            applications,
            extra_patterns=extra_patterns,
            extra_websocket_origins=create_hosts_allowlist(
                [f"{address}:{port}", f"localhost:{port}"], port
            ),
            absolute_url=server_url(address, port),
        )
        http_server = HTTPServer(tornado_app, xheaders=False)
        http_server.start(1)
        http_server.add_sockets(sockets)
    except Exception:
        for s in sockets:
            s.close()
        raise
    return BaseServer(io_loop, tornado_app, http_server)


def wait_forever(handle: ServerHandle, poll: float = 0.5) -> None:
    """Block until the server thread ends (e.g. after :meth:`ServerHandle.stop`)."""
    while handle.thread.is_alive():
        time.sleep(poll)
