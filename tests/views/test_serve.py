"""``xlive serve`` during a simulated run, in headless chromium; ``serve_session`` in-process."""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from urllib.parse import urlparse

import pytest

from xlive.views.app import free_port, serve_session

PLOTS = (
    "hit_rate",
    "spots",
    "d_min",
    "radial",
    "waterfall",
    "powder",
    "separation",
    "peakogram",
    "detector",
    "lag",
    "flags",
    "status",
)


def test_serve_session_in_a_thread_and_stop(finished_run):
    from xlive.engine.session import LiveSession

    with LiveSession(finished_run) as s:
        handle = serve_session(s, port=0)
        try:
            assert handle.url.startswith("http://127.0.0.1:")
            html = urllib.request.urlopen(handle.url, timeout=30).read().decode()
            assert "<title>xlive</title>" in html
            assert "cdn.bokeh.org" not in html
            # the dashboard's models need BokehJS and its widgets only (the browser test
            # below shows every view drawn without a console error)
            assert "bokeh.min.js" in html and "bokeh-widgets.min.js" in html
            for unused in ("bokeh-mathjax", "bokeh-gl", "bokeh-tables"):
                assert unused not in html
        finally:
            handle.stop()
        assert not handle.thread.is_alive()
        handle.stop()  # idempotent


def _pull(url, box):
    """Pull the page's document over bokeh's websocket (as BokehJS does), into ``box``."""
    from bokeh.client import pull_session

    try:
        box["session"] = pull_session(url=url)
    except BaseException as e:  # reported by the test
        box["error"] = e


def test_page_served_before_its_session(finished_run):
    """With a PendingSession the page is served at once; its document is sent with the
    dashboard once the session is set (never an empty document first)."""
    import threading

    from xlive.engine.session import LiveSession
    from xlive.views.app import PendingSession

    pending = PendingSession()
    handle = serve_session(pending, port=0)
    try:
        html = urllib.request.urlopen(handle.url, timeout=30).read().decode()
        assert "<title>xlive</title>" in html  # before any session exists
        box: dict = {}
        pull = threading.Thread(target=_pull, args=(handle.url, box), daemon=True)
        pull.start()
        pull.join(1.0)
        assert pull.is_alive() and not box  # the document waits for the session
        with LiveSession(finished_run) as s:
            while not s.step():
                pass
            pending.set(s)
            pull.join(30)
            assert "error" not in box, box
            doc = box["session"].document
            names = {m.name for m in doc.roots[0].references()}
            assert {"hit_rate_source", "detector_plot", "status_plot"} <= names
            assert len(doc.get_model_by_name("hit_rate_source").data["frame"]) > 0
            box["session"].close()
    finally:
        handle.stop()


async def _messages_until_document(url: str, drawn=None) -> list[str]:
    """Open a page's websocket as BokehJS does (bokeh's own protocol classes over a tornado
    websocket), ask for the document and list the types of the messages the server sends
    until the document comes. With ``drawn`` (a threading.Event), then say the document is
    drawn (BokehJS's ``document_ready`` event) and keep the connection until it is set."""
    from bokeh.client.websocket import WebSocketClientConnectionWrapper
    from bokeh.protocol import Protocol
    from bokeh.protocol.receiver import Receiver
    from bokeh.util.token import generate_jwt_token, generate_session_id
    from tornado.websocket import websocket_connect

    token = generate_jwt_token(generate_session_id())
    ws = await websocket_connect(
        url.replace("http://", "ws://") + "ws", subprotocols=["bokeh", token]
    )
    protocol = Protocol()
    receiver = Receiver(protocol)
    seen: list[str] = []

    async def receive():
        message = None
        while message is None:
            fragment = await ws.read_message()
            assert fragment is not None, f"connection closed after {seen}"
            message = await receiver.consume(fragment)
        seen.append(message.msgtype)

    try:
        await receive()  # the server's ACK: it has opened the session (as BokehJS waits)
        await protocol.create("PULL-DOC-REQ").send(WebSocketClientConnectionWrapper(ws))
        while seen[-1] != "PULL-DOC-REPLY":
            await receive()
        if drawn is not None:  # as BokehJS: a PATCH-DOC carrying the event
            import asyncio

            from bokeh.document import Document
            from bokeh.document.events import MessageSentEvent
            from bokeh.events import DocumentReady

            event = MessageSentEvent(Document(), "bokeh_event", DocumentReady())
            await protocol.create("PATCH-DOC", [event]).send(WebSocketClientConnectionWrapper(ws))
            while not drawn.is_set():
                await asyncio.sleep(0.05)
    finally:
        ws.close()
    return seen


def test_waiting_page_gets_its_document_once(finished_run):
    """A page waiting for the session gets the dashboard in the document's reply only: no
    PATCH-DOC carrying the whole dashboard first (BokehJS drops patches that come before its
    document, so building one only costs the server its serialisation)."""
    import asyncio
    import threading

    from xlive.engine.session import LiveSession
    from xlive.views.app import PendingSession

    pending = PendingSession()
    handle = serve_session(pending, port=0)
    box: dict = {}

    def page():
        try:
            box["seen"] = asyncio.run(_messages_until_document(handle.url))
        except BaseException as e:  # reported by the test
            box["error"] = e

    thread = threading.Thread(target=page, daemon=True)
    try:
        thread.start()
        t_end = time.time() + 20
        while not pending._waiters and time.time() < t_end:  # the page is waiting
            time.sleep(0.05)
        assert pending._waiters
        with LiveSession(finished_run) as s:
            while not s.step():
                pass
            pending.set(s)
            # as `xlive serve` does before starting the live loop: the waiting page's
            # dashboard is built when this returns
            assert pending.wait_pages(30)
            (page_session,) = handle.server.get_sessions("/")
            source = page_session.document.get_model_by_name("hit_rate_source")
            assert source is not None
            # ... and the document's reply to the page (asked for long before) is made:
            # bokeh counts the models it serialised as synced with the page
            assert source in page_session.document.models.synced_references
            thread.join(30)
    finally:
        handle.stop()
    assert "error" not in box, box
    assert box["seen"] == ["ACK", "PULL-DOC-REPLY"]
    assert PendingSession().wait_pages(0)  # no page waiting: nothing to wait for


def test_first_frame_reaches_the_pages_before_the_cluster_starts(finished_run):
    """``xlive serve``'s live loop analyses the run's first block in its own thread, with no
    dask cluster yet, and starts the cluster only once the waiting pages have sent that
    frame to their browsers, which have drawn the page (``PendingSession.wait_shown``)."""
    import asyncio
    import threading

    from xlive.engine.session import LiveSession
    from xlive.views.app import PendingSession
    from xlive.views.runner import SessionRunner

    pending = PendingSession()
    assert pending.wait_shown(0)  # no page: nothing to wait for
    handle = serve_session(pending, port=0)
    box: dict = {}
    done = threading.Event()
    thread = threading.Thread(  # a page that draws the document it gets
        target=lambda: box.update(seen=asyncio.run(_messages_until_document(handle.url, done))),
        daemon=True,
    )
    record: dict = {}

    def after_first():  # in the loop's thread, as `xlive serve` has it
        record["shown"] = pending.wait_shown(30)
        record["client"] = s.processor._client
        (page,) = handle.server.get_sessions("/")
        record["frames"] = len(page.document.get_model_by_name("hit_rate_source").data["frame"])
        done.set()

    try:
        thread.start()
        t_end = time.time() + 20
        while not pending._waiters and time.time() < t_end:
            time.sleep(0.05)
        with LiveSession(finished_run) as s:
            runner = SessionRunner(s, after_first=after_first)  # in `xlive serve`'s order
            pending.set(s)
            assert pending.wait_pages(30)
            runner.start()
            try:
                assert done.wait(60), s.error
                t_end = time.time() + 60
                while runner.steps < 2 and time.time() < t_end:  # a step after the first
                    time.sleep(0.05)
            finally:
                runner.stop()
            assert s.processor._client is not None  # the loop went on with the cluster
        thread.join(30)
    finally:
        handle.stop()
    assert box.get("seen") == ["ACK", "PULL-DOC-REPLY"], box
    assert record["shown"] and record["client"] is None and record["frames"] > 0, record


def test_page_says_why_its_session_failed():
    from xlive.views.app import PendingSession

    pending = PendingSession()
    handle = serve_session(pending, port=0)
    try:
        pending.fail(ValueError("no such run: /nowhere"))
        box: dict = {}
        _pull(handle.url, box)
        assert "error" not in box, box
        text = box["session"].document.get_model_by_name("start_error").text
        assert "xlive could not start" in text and "no such run: /nowhere" in text
        box["session"].close()
    finally:
        handle.stop()


def test_a_waiting_page_says_why_before_the_server_stops():
    """As `xlive serve` does on a failed start: a page asked for before the failure gets the
    reason, although the server stops right after (``fail`` lingers while pages wait)."""
    import threading

    from xlive.views.app import PendingSession

    pending = PendingSession()
    handle = serve_session(pending, port=0)
    box: dict = {}
    page = threading.Thread(target=_pull, args=(handle.url, box), daemon=True)
    try:
        page.start()
        t_end = time.time() + 20
        while not pending._waiters and time.time() < t_end:  # the page is waiting
            time.sleep(0.05)
        assert pending._waiters
        pending.fail(ValueError("no such run: /nowhere"), linger=2.0)
    finally:
        handle.stop()
    page.join(20)
    assert "error" not in box, box
    text = box["session"].document.get_model_by_name("start_error").text
    assert "no such run: /nowhere" in text


def _read(page, expr):
    return page.evaluate(f"() => {{ const d = Bokeh.documents[0]; return {expr}; }}")


@pytest.mark.browser
@pytest.mark.slow
def test_serve_page_updates_during_a_run(tmp_path, chromium, simulator, process, artifacts):
    run = tmp_path / "run"
    simulator(run, frames=2000, rate=12)
    port = free_port()
    server = process([sys.executable, "-m", "xlive.cli", "serve", str(run), "--port", str(port)])
    t_end = time.time() + 60
    line = ""
    while "serving" not in line:
        line = server.stdout.readline()
        assert line or server.poll() is None, "xlive serve exited"
        assert time.time() < t_end, "xlive serve did not start within 60 s"
    page = chromium.new_page(viewport={"width": 1400, "height": 1900})
    errors, foreign = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on(
        "request",
        lambda r: (
            foreign.append(r.url) if urlparse(r.url).hostname not in ("127.0.0.1", None) else None
        ),
    )
    page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=60_000)
    page.wait_for_function(
        "() => Bokeh.documents[0].get_model_by_name('hit_rate_source').data.frame.length > 2",
        timeout=90_000,
    )
    # the page's first document holds the views of the first frames; the others follow once
    # the browser has drawn it: each plot is then in the document with a view drawn in the page
    drawn = " && ".join(
        f"Bokeh.index.find_one(d.get_model_by_name('{name}_plot')) != null" for name in PLOTS
    )
    page.wait_for_function(
        f"() => {{ const d = Bokeh.documents[0]; return {drawn}; }}", timeout=60_000
    )
    first = _read(
        page,
        "[d.get_model_by_name('hit_rate_source').data.frame.length, "
        "d.get_model_by_name('spots_source').data.frame.length]",
    )
    page.wait_for_timeout(5000)
    second = _read(
        page,
        "[d.get_model_by_name('hit_rate_source').data.frame.length, "
        "d.get_model_by_name('spots_source').data.frame.length]",
    )
    assert second[0] > first[0] and second[1] > first[1], (first, second)
    status = _read(page, "d.get_model_by_name('status_plot').text")
    assert "frames analysed" in status
    page.screenshot(path=str(artifacts / "xlive-serve.png"), full_page=True)
    if os.environ.get("XLIVE_UPDATE_DOCS") == "1":  # refresh the README image
        from PIL import Image

        page.screenshot(path=str(artifacts / "dashboard-full.png"), full_page=False)
        img = Image.open(artifacts / "dashboard-full.png").convert("RGB")
        img = img.resize((img.width * 2 // 3, img.height * 2 // 3), Image.LANCZOS)
        img.quantize(colors=128).save(artifacts.parent / "docs" / "dashboard.png", optimize=True)
    assert not errors, errors
    assert not foreign, f"requests left 127.0.0.1: {foreign[:5]}"
    page.close()
