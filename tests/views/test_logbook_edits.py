"""Cell edits of the notebook's logbook table racing with its refreshes, at the Python level.

The page sends an edit as jupyter_bokeh does: a ``jsevent`` message holding BokehJS's
``ColumnsPatched`` event (field, row index of the page's data, value), given to the widget's
real message handler. The refresh that lands between the page's edit and its arrival is the
widget's own ``update()``; what the page is sent is read from the bokeh document's events.
"""

from __future__ import annotations

import datetime as dt

import pytest
from bokeh.core.serialization import Serializer
from bokeh.document.events import (
    ColumnDataChangedEvent,
    ColumnsPatchedEvent,
    ColumnsStreamedEvent,
)
from bokeh.models import IndexFilter

from xlive.outputs.logbook_db import LogbookDB

T0 = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.timezone.utc)


def _typed(widget, field: str, row: int, value) -> None:
    """The page's cell editor committed ``value`` in ``field`` of the page's data row ``row``."""
    content = {
        "event": "jsevent",
        "kind": "ColumnsPatched",
        "model": {"id": widget.view.source.id},
        "attr": "data",
        "patches": {"type": "map", "entries": [[field, [[row, value]]]]},
    }
    widget.table._sync_model(widget.table, content, [])


def _wire(doc, event) -> dict:
    """``event`` as the page sends it back (BokehJS applies a ``ColumnDataChanged`` as a new
    ``data``: a ``ModelChanged``), encoded when the kernel sends it."""
    content = Serializer(references=set(doc.models)).encode(event)
    if content["kind"] == "ColumnDataChanged":
        content = {"kind": "ModelChanged", "model": content["model"], "attr": content["attr"]}
        content["new"] = Serializer().encode(dict(event.model.data))
    return content


def _echo(widget, content: dict) -> None:
    """The page sends a change the kernel sent it back once applied, as the jupyter_bokeh 4.1
    page does with every change it gets from the kernel."""
    widget.table._sync_model(widget.table, {"event": "jsevent", **content}, [])


def _start(db, run: str, hours: float, **values) -> None:
    with LogbookDB(db) as logdb:
        logdb.set_progress(
            run, started=T0 + dt.timedelta(hours=hours), frames_seen=10, state="finished", **values
        )


@pytest.fixture
def widget(tmp_path):
    from xlive import Logbook

    db = tmp_path / "bt.sqlite"
    _start(db, "run-1", 0, hit_rate=0.5)
    _start(db, "run-3", 2, hit_rate=0.3)
    w = Logbook(db, interval=60)  # no running event loop here: update() by hand
    w.sent, w.wire = [], []  # what the page is sent: the document's changes of the source
    doc = w.view.source.document

    def record(e):
        if getattr(e, "model", None) is w.view.source and e.setter is not w.table:
            w.sent.append(e)
            w.wire.append(_wire(doc, e))

    doc.on_change(record)
    try:
        yield w, db
    finally:
        w.close()


def _notes(db) -> dict:
    with LogbookDB(db) as logdb:
        return {run: (n["comment"], n["tags"]) for run, n in logdb.notes().items()}


def _page_rows(w) -> dict:
    """run -> comment as the page's table shows it (the kernel's source mirrors the page's)."""
    data = w.view.source.data
    shown = w.view.table.view.filter  # (an IndexFilter, or AllIndices: every row)
    rows = shown.indices if isinstance(shown, IndexFilter) else range(len(data["run"]))
    return {data["run"][i]: data["comment"][i] for i in rows}


@pytest.mark.parametrize("how", ["new run started earlier", "filter admits a live row"])
def test_edit_sent_before_a_refresh_added_a_row_reaches_the_run_typed(widget, how):
    w, db = widget
    if how == "filter admits a live row":
        _start(db, "run-2", 1, hit_rate=0.1)
        w.view.filter.value = "hit_rate > 0.2"
        w.update()
    assert list(_page_rows(w)) == ["run-1", "run-3"]
    row = w.view.source.data["run"].index("run-3")  # the row the user edits on the page
    # a refresh lands first: a run that sorts between the two comes in (its start time is
    # earlier than run-3's), or a live row starts to match the filter
    _start(db, "run-2", 1, hit_rate=0.4)
    assert w.update()
    assert set(_page_rows(w)) == {"run-1", "run-2", "run-3"}
    # ... then the page's edit of run-3's comment arrives, by the row index it had
    _typed(w, "comment", row, "jet wobbly")
    notes = _notes(db)
    assert notes.get("run-3", (None,))[0] == "jet wobbly", notes
    assert "run-2" not in notes and "run-1" not in notes, notes  # nothing the user did not type
    w.update()
    assert _page_rows(w) == {"run-1": "", "run-2": "", "run-3": "jet wobbly"}


def test_refresh_sends_only_what_changed_and_nothing_after_an_edit(widget):
    w, db = widget
    w.sent.clear()
    assert not w.update()  # nothing changed: nothing sent (an open cell editor stays open)
    assert w.sent == []
    # one live cell changes: one patch of that cell, no new data (which closes editors)
    _start(db, "run-3", 2, hit_rate=0.3, frames_analysed=7)
    assert w.update()
    assert len(w.sent) == 1 and isinstance(w.sent[0], ColumnsPatchedEvent), w.sent
    row = w.view.source.data["run"].index("run-3")
    assert w.sent[0].patches == {"analysed": [(row, 7.0)]}
    # a new run: streamed
    w.sent.clear()
    _start(db, "run-4", 3)
    assert w.update()
    assert [type(e) for e in w.sent] == [ColumnsStreamedEvent], w.sent
    assert w.sent[0].data["run"] == ["run-4"] and "run-4" in _page_rows(w)
    _echo(w, w.wire[-1])  # (the page sends the stream back: the kernel keeps one run-4 row)
    assert w.view.source.data["run"] == ["run-1", "run-3", "run-4"]
    # the page's edit is written, and the refresh after it sends nothing back: the page
    # has the value the database has
    _typed(w, "tags", row, "lyso, good")
    assert _notes(db)["run-3"][1] == ["lyso", "good"]
    w.sent.clear()
    w.view._sent_at.clear()  # (not crossing a change the server sent: see the next test)
    _typed(w, "comment", row, "fine")
    w.sent.clear()
    assert not w.update() and w.sent == [], w.sent
    assert _notes(db)["run-3"] == ("fine", ["lyso", "good"])


def test_edit_crossing_a_change_of_the_same_cell_is_stored_and_shown(widget):
    w, db = widget
    row = w.view.source.data["run"].index("run-1")
    # another page (or the form) stores a comment; this page is sent it ...
    with LogbookDB(db) as logdb:
        logdb.set_note("run-1", comment="from the other page")
    assert w.update()
    # ... while this page's user typed over the older value: the edit arrives after
    _typed(w, "comment", row, "typed here")
    assert _notes(db)["run-1"][0] == "typed here"  # the last edit wins in the database
    w.sent.clear()
    assert w.update()  # the page may show either value: the stored one is sent again
    assert [e.patches for e in w.sent] == [{"comment": [(row, "typed here")]}], w.sent


def test_read_only_cell_typed_over_is_put_back_and_not_stored(widget):
    w, db = widget
    row = w.view.source.data["run"].index("run-1")
    _typed(w, "hit_rate", row, 0.99)
    w.sent.clear()
    assert w.update()
    assert [e.patches for e in w.sent] == [{"hit_rate": [(row, 0.5)]}]
    assert _notes(db) == {}
    assert not [e for e in w.sent if isinstance(e, ColumnDataChangedEvent)]


@pytest.mark.parametrize("change", ["a live cell of the row", "the same cell"])
def test_echo_of_a_refresh_arriving_after_an_edit_is_no_edit(widget, change):
    w, db = widget
    row = w.view.source.data["run"].index("run-3")
    n = len(w.sent)
    if change == "the same cell":  # another page stores a comment, this page is sent it
        with LogbookDB(db) as logdb:
            logdb.set_note("run-3", comment="older")
    else:  # the run's row changes live
        _start(db, "run-3", 2, hit_rate=0.3, frames_analysed=9)
    assert w.update()
    refresh = w.wire[n:]
    # the user's edit reaches the kernel before the page's echo of that refresh
    _typed(w, "comment", row, "typed")
    for content in refresh:
        _echo(w, content)
    w.update()
    assert _notes(db)["run-3"][0] == "typed", _notes(db)
    assert _page_rows(w)["run-3"] == "typed"
    for content in w.wire[n + len(refresh) :]:  # (and the echo of what was sent since)
        _echo(w, content)
    w.update()
    assert _notes(db)["run-3"][0] == "typed", _notes(db)
    assert set(_notes(db)) == {"run-3"}
