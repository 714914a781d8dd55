"""The logbook view: the run table of a run database as a bokeh DataTable, live.

One :class:`LogbookView` per bokeh document (a page of ``xlive logbook`` or ``xlive serve``, or
the notebook's :class:`LogbookWidget`). :meth:`LogbookView.update` re-reads the database and
sends the page only the cells that changed (a patch) and the new runs (a stream); the rows of
the table's source never move (a run keeps its row for the life of the page, new runs are
appended, the filter hides rows through the table's view), so a cell edit, which BokehJS
sends as a patch by row index, always names the run the user saw. Comment and tag cells typed
in the table (or in the form below it, for the selected run) are written back to the database
(other cells are read-only: an edit there is undone). BokehJS closes a cell editor whenever
its table's data changes, so notes on a run whose row changes live are best typed in the
form; a refresh that changes nothing sends nothing. A filter box takes text
(rows containing it) or a condition (``hit_rate > 0.2 and d_min < 2``); links export the
rows shown as CSV, Excel or Markdown; each run links to its live page or report; a scatter
plot shows any numeric column against another across runs.
"""

from __future__ import annotations

import html
import logging
import math
import time
from collections import deque
from urllib.parse import quote

import numpy as np
import pandas as pd
from bokeh.document.events import ColumnsPatchedEvent, ColumnsStreamedEvent
from bokeh.layouts import column, row
from bokeh.models import (
    Button,
    CDSView,
    ColumnDataSource,
    DataTable,
    Div,
    HoverTool,
    HTMLTemplateFormatter,
    IndexFilter,
    NumberFormatter,
    Select,
    StringEditor,
    TableColumn,
    TextInput,
)
from bokeh.plotting import figure

from ..outputs.logbook import (
    COLUMNS,
    LogbookKeeper,
    cell_text,
    logbook_frame,
)
from ..outputs.logbook_db import LogbookDB, parse_tags

log = logging.getLogger(__name__)

EDITABLE = ("comment", "tags")
#: numeric built-in columns (sorted as numbers; offered to the scatter plot)
NUMERIC = ("seen", "analysed", "hits", "hit_rate", "indexing_rate", "d_min", "lag")
_FORMATS = {"hit_rate": "0.0%", "indexing_rate": "0.0%", "d_min": "0.00", "lag": "0.0"}
#: seconds after the server sent a note cell during which an edit of it may have crossed
#: that change in flight (the page then shows the server's value): such a cell is sent again
_CROSSING = 10.0
_STALE = object()  # a cell whose value on the page is not known: sent at the next refresh


def filter_rows(df: pd.DataFrame, text: str) -> pd.DataFrame:
    """Rows matching ``text``: a pandas condition (``hit_rate > 0.2``) if it parses as one,
    else rows with ``text`` in any cell (case-insensitive)."""
    text = (text or "").strip()
    if not text or df.empty:
        return df
    if any(op in text for op in ("<", ">", "==", "!=")):
        try:
            return df[df.eval(text).astype(bool)]
        except Exception:  # not a condition over the columns: search the text
            pass
    needle = text.lower()
    hit = [any(needle in cell_text(v).lower() for v in r) for r in df.itertuples(index=False)]
    return df[np.asarray(hit, bool)] if len(df) else df


def short_name(run: str) -> str:
    """A run key short enough for a cell: its last two path parts when it is long."""
    run = str(run)
    return run if len(run) <= 30 else "/".join(run.rstrip("/").split("/")[-2:])


def _same(a, b) -> bool:
    """Equal cells (NaN equals NaN: an empty number cell)."""
    if a is _STALE or b is _STALE:
        return False
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return type(a) is type(b) and a == b


def _cell_key(v):
    """A cell as it comes back through JSON (100.0 and 100 alike, NaN as text)."""
    if isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
        f = float(v)
        return "nan" if f != f else f
    return v


def _patch_key(patches) -> tuple:
    """A patch's content, the same for the patch sent and for its echo."""
    return tuple(
        sorted(
            (str(name), tuple((int(i), _cell_key(v)) for i, v in items))
            for name, items in dict(patches).items()
        )
    )


def _numeric(values) -> bool:
    return all(
        v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values
    )


class LogbookView:
    """The run table of ``db`` (path, URL or :class:`~xlive.outputs.logbook_db.LogbookDB`).

    Parameters
    ----------
    db
        The run database.
    variables
        A variables file (path) or :class:`~xlive.outputs.variables.VariableSet`: its columns are
        shown, and computed for runs whose values are stale (every few seconds, and at once
        when the file changes) by this view's own
        :class:`~xlive.outputs.logbook.LogbookKeeper`.
    keeper
        A keeper shared by several views, stepped elsewhere (its thread).
    base_url
        Prefix of the page's export and report links (``/logbook`` on ``xlive serve``);
        None: no links (the notebook).
    """

    def __init__(
        self, db, *, variables=None, base_url: str | None = "", keeper: LogbookKeeper | None = None
    ):
        self.logdb = db if isinstance(db, LogbookDB) else LogbookDB(db)
        self._own_db = not isinstance(db, LogbookDB)
        self._own_keeper = keeper is None
        self.keeper = keeper or LogbookKeeper(self.logdb, variables)
        self.base_url = base_url
        self.df = pd.DataFrame()
        self.shown = pd.DataFrame()
        self._digest = None
        # the source's rows: run keys in the order their rows were first sent (never
        # reordered, so a patch index from the page always means the same run)
        self._keys: list[str] = []
        self._row: dict[str, int] = {}
        # the cells as the page has them (what was sent, with the page's own edits)
        self._sent: dict[str, list] = {}
        self._sent_at: dict[tuple[str, str], float] = {}  # (run, field): note cell last sent
        self._pending: dict[tuple[str, str], str] = {}  # edits not written yet (database busy)
        # patches sent and not yet seen coming back: jupyter_bokeh's page sends every change
        # the kernel made back to the kernel once applied (jupyter_bokeh 4.1 does not skip
        # BokehJS's sync=False events); an echo arriving after an edit of the same cell is no
        # edit (it would write the older value over the one typed)
        self._echoes: deque[tuple[float, tuple]] = deque()
        self._shown_sent: list[int] = []
        self._scatter_sent: dict = {}
        self._write_error = ""
        self._setting = False
        self._doc = None
        self.edits = 0
        self.source = ColumnDataSource({}, name="logbook_source")
        self.rows_shown = IndexFilter(indices=[], name="logbook_rows_shown")
        self.table = DataTable(
            source=self.source,
            view=CDSView(filter=self.rows_shown),
            columns=[],
            editable=True,
            sortable=True,
            name="logbook_table",
            index_position=None,
            sizing_mode="stretch_width",
            height=360,
            selectable=True,
        )
        self.filter = TextInput(
            title="Filter (text, or a condition like hit_rate > 0.2)", value="", width=420
        )
        self.filter.on_change("value", lambda attr, old, new: self._show())
        self.count = Div(text="")
        self.exports = Div(text="")
        self.message = Div(text="")
        self.xsel = Select(title="x", options=list(NUMERIC), value="hit_rate", width=180)
        self.ysel = Select(title="y", options=list(NUMERIC), value="d_min", width=180)
        self.scatter_source = ColumnDataSource({"x": [], "y": [], "run": []})
        self.scatter = figure(
            height=300,
            width=420,
            title="runs: a column against a column",
            tools="pan,wheel_zoom,box_zoom,reset,save",
        )
        self.scatter.scatter("x", "y", source=self.scatter_source, size=9, alpha=0.8)
        self.scatter.add_tools(HoverTool(tooltips=[("run", "@run"), ("x", "@x"), ("y", "@y")]))
        for sel in (self.xsel, self.ysel):
            sel.on_change("value", lambda attr, old, new: self._update_scatter())
        self.source.on_change("data", self._on_data)
        # the selected run's notes in a form: typing there is never cut short by a refresh of
        # the table (a cell editor is, when a live row changes under it)
        # (inputs only: a Div or a button changing on selection makes the page lay out again,
        # which closes a cell editor opened by the same click)
        self.note_run = TextInput(
            title="Run (click a row)", width=260, disabled=True, name="logbook_note_run"
        )
        self.note_comment = TextInput(title="Comment", width=420, name="logbook_note_comment")
        self.note_tags = TextInput(
            title="Tags (comma separated)", width=240, name="logbook_note_tags"
        )
        self.note_save = Button(
            label="Save", button_type="primary", width=80, name="logbook_note_save"
        )
        self.note_save.on_click(self._save_note)
        self._note_key: str | None = None
        self.source.selected.on_change("indices", self._on_select)
        self.root = column(
            row(self.filter, self.count, self.exports, self.message),
            self.table,
            row(
                self.note_run,
                self.note_comment,
                self.note_tags,
                column(Div(text="&nbsp;"), self.note_save),
            ),
            row(column(self.xsel, self.ysel), self.scatter),
            sizing_mode="stretch_width",
            name="xlive-logbook",
        )
        self.update()

    # ------------------------------------------------------------------ data
    @property
    def variables(self):
        """The variables shown (None: every variable stored)."""
        return self.keeper.variables

    def update(self) -> bool:
        """Re-read the database (computing stale variables first unless a shared keeper does
        it) and send the page what changed; True if anything was sent."""
        self._attach()
        self._flush()
        if self._own_keeper:
            try:
                self.keeper.step()
            except Exception as exc:  # the table goes on
                log.warning("logbook: computing variables failed: %s", exc)
        msg = self.keeper.message or self._write_error
        self.message.text = f"<span style='color:#b00'>{html.escape(msg)}</span>" if msg else ""
        variables = self.keeper.variables
        df = logbook_frame(self.logdb, variables)
        digest = (
            pd.util.hash_pandas_object(
                df.map(cell_text) if hasattr(df, "map") else df.applymap(cell_text), index=False
            ).sum()
            if len(df)
            else 0
        )
        digest = (digest, tuple(df.columns))
        if digest == self._digest:
            return False
        self._digest = digest
        self.df = df
        return self._show()

    def _columns(self, df: pd.DataFrame) -> list[TableColumn]:
        titles = df.attrs.get("titles", {})
        cols = []
        for name in [c for c in df.columns if c not in ("errors", "features", "link")]:
            if (
                name in ("indexing_rate", "cell", "lag")
                and df[name]
                .map(lambda v: v is None or v == [] or (isinstance(v, float) and math.isnan(v)))
                .all()
            ):
                continue  # columns nothing fills (no indexing, no live lag)
            kw = {}
            if name in _FORMATS:
                kw["formatter"] = NumberFormatter(format=_FORMATS[name], nan_format="")
            elif (
                name in df.attrs.get("variables", [])
                and _numeric(list(df[name]))
                and not any((df["errors"].iloc[i] or {}).get(name) for i in range(len(df)))
            ):
                kw["formatter"] = NumberFormatter(format="0.[0000]", nan_format="")
            elif name == "run" and self.base_url is not None:
                kw["formatter"] = HTMLTemplateFormatter(
                    template='<a href="<%= _href %>" target="_blank" title="<%= value %>">'
                    "<%= _label %></a>"
                )
            width = {"run": 220, "trend": 200, "comment": 240, "flags": 160}.get(name, 90)
            cols.append(
                TableColumn(
                    field=name,
                    title=titles.get(name, COLUMNS.get(name, name)),
                    width=width,
                    editor=StringEditor(),
                    **kw,
                )
            )
        return cols

    def _href(self, r) -> str:
        if self.base_url is None:
            return r.get("link") or ""
        if r.get("link"):
            return r["link"]
        return f"{self.base_url}/report?run={quote(str(r['run']), safe='')}"

    def _data(self, df: pd.DataFrame) -> dict:
        data: dict = {}
        names = df.attrs.get("variables", [])
        for name in df.columns:
            if name in ("errors",):
                continue
            vals = list(df[name])
            if name in NUMERIC or (name in names and _numeric(vals)):
                data[name] = [float("nan") if v is None or v != v else float(v) for v in vals]
            elif name == "tags":
                data[name] = [", ".join(v or []) for v in vals]
            else:
                data[name] = [cell_text(v, name) for v in vals]
        for i, errs in enumerate(df["errors"] if "errors" in df else ()):
            for name, msg in (errs or {}).items():
                if name in data:
                    if not isinstance(data[name][0], str):
                        data[name] = [cell_text(v) if v == v else "" for v in data[name]]
                    data[name][i] = f"error: {msg}"
        if len(df):
            recs = df.to_dict(orient="records")
            data["_href"] = [self._href(r) for r in recs]
            data["_label"] = [short_name(r["run"]) for r in recs]
        else:
            data["_href"], data["_label"] = [], []
        return data

    def _ordered(self, fresh: dict) -> dict:
        """The columns of ``fresh`` (rows in the frame's order) in the source's row order: the
        rows sent before keep their places, new runs are appended, runs gone from the database
        keep their last cells (hidden by the view); edits not yet written keep their value."""
        runs = fresh.get("run", [])
        for r in runs:
            if r not in self._row:
                self._row[r] = len(self._keys)
                self._keys.append(r)
        at = {r: i for i, r in enumerate(runs)}
        names = list(fresh) if runs else list(self._sent)
        data = {}
        for name in names:
            old = self._sent.get(name)
            data[name] = [
                fresh[name][at[r]]
                if r in at and name in fresh
                else (old[i] if old is not None and i < len(old) and old[i] is not _STALE else "")
                for i, r in enumerate(self._keys)
            ]
        for (run, field), value in self._pending.items():
            if field in data:
                data[field][self._row[run]] = value
        return data

    def _send(self, data: dict) -> bool:
        """Send ``data`` (rows in the source's order): patch the changed cells and stream the
        new rows when the columns are the same, else replace the data; True if anything was
        sent."""
        old = self._sent
        n_old = len(next(iter(old.values()), [])) if old else 0
        if old and list(old) == list(data) and n_old:
            patches: dict[str, list] = {}
            for name, col in data.items():
                prev = old[name]
                diff = [(i, col[i]) for i in range(n_old) if not _same(prev[i], col[i])]
                if diff:
                    patches[name] = diff
            new_rows = {name: col[n_old:] for name, col in data.items()}
            if patches:
                doc = self.source.document
                if doc is None or doc.session_context is None:  # (a bokeh server echoes none)
                    self._echoes.append((time.monotonic(), _patch_key(patches)))
                self.source.patch(patches)
            if len(self._keys) > n_old:
                self.source.stream(new_rows)
            sent = bool(patches) or len(self._keys) > n_old
        else:
            self.source.data = {name: list(col) for name, col in data.items()}
            sent = True
            patches = {  # (the note cells changed by this replacement)
                name: [
                    (i, v)
                    for i, v in enumerate(data[name])
                    if not _same(v, old[name][i] if name in old and i < n_old else "")
                ]
                for name in EDITABLE
                if name in data
            }
        t = time.monotonic()
        for name in EDITABLE:
            for i, _ in patches.get(name, []):
                self._sent_at[(self._keys[i], name)] = t
        self._sent = {name: list(col) for name, col in data.items()}
        return sent

    def _show(self) -> bool:
        """Send the page the rows of ``self.df`` and show those the filter keeps; True if
        anything was sent."""
        df = filter_rows(self.df, self.filter.value)
        self.shown = df
        cols = self._columns(self.df)
        data = self._ordered(self._data(self.df))
        self._setting = True
        try:
            if [c.field for c in cols] != [c.field for c in self.table.columns]:
                self.table.columns = cols
            sent = self._send(data)
            shown = sorted(self._row[r] for r in df["run"]) if len(df) else []
            if self._shown_sent != shown:
                self.rows_shown.indices = self._shown_sent = shown
                sent = True
        finally:
            self._setting = False
        self.count.text = f"{len(df)} of {len(self.df)} runs"
        if self.base_url is not None:
            q = quote(self.filter.value or "", safe="")
            self.exports.text = " ".join(
                f'<a href="{self.base_url}/export.{ext}?filter={q}" download="logbook.{ext}" '
                f'class="xlive-export-{ext}">{label}</a>'
                for ext, label in (("csv", "CSV"), ("xlsx", "Excel"), ("md", "Markdown"))
            )
        numeric = [
            c
            for c in data
            if not c.startswith("_") and data[c] and all(isinstance(v, float) for v in data[c])
        ] or list(NUMERIC)
        for sel in (self.xsel, self.ysel):
            if sel.options != numeric:
                sel.options = numeric
                if sel.value not in numeric:
                    sel.value = numeric[0]
        self._update_scatter()
        return sent

    def shown_runs(self) -> list[str]:
        """The runs of the rows the table shows (after the filter), in the source's order."""
        return [self._keys[i] for i in self._shown_sent]

    def _update_scatter(self) -> None:
        data = self._sent
        x, y = self.xsel.value, self.ysel.value
        if x in data and y in data:
            rows = self._shown_sent
            new = {
                "x": [data[x][i] for i in rows],
                "y": [data[y][i] for i in rows],
                "run": [data["_label"][i] for i in rows],
            }
            key = {k: [_cell_key(v) for v in col] for k, col in new.items()}
            if key != self._scatter_sent:  # (its own record: NaN != NaN, and echoes)
                self.scatter_source.data = new
                self._scatter_sent = key
            self.scatter.xaxis.axis_label, self.scatter.yaxis.axis_label = x, y

    # ------------------------------------------------------------------ edits
    def _attach(self) -> None:
        """Listen to the document's changes (once it has one): a cell edit arrives as a
        ``ColumnsPatchedEvent`` of the source, with the row indices and values typed."""
        doc = self.source.document
        if doc is not None and doc is not self._doc:
            if self._doc is not None:
                self._doc.remove_on_change(self._on_change)
            doc.on_change(self._on_change)
            self._doc = doc

    def _on_data(self, attr, old, new) -> None:
        # (called before the document's change callbacks: attached now, the document still
        # gives this very change to _on_change)
        self._attach()

    def _on_change(self, event) -> None:
        if self._setting or getattr(event, "model", None) is not self.source:
            return
        if isinstance(event, ColumnsStreamedEvent):
            # a page never streams rows: jupyter_bokeh's echo of a stream sent, which appended
            # the rows a second time on this side: cut back to the rows sent
            for col in self.source.data.values():
                del col[len(self._keys) :]
            return
        if not isinstance(event, ColumnsPatchedEvent):
            return
        if self._is_echo(event.patches):
            return
        for field, items in event.patches.items():
            for index, value in items:
                if isinstance(index, (int, np.integer)) and 0 <= index < len(self._keys):
                    self._edit(int(index), field, value)
                else:  # BokehJS patches a cell by its row index; nothing else is typed
                    log.warning("logbook: ignored a patch of %s at %r", field, index)

    def _is_echo(self, patches) -> bool:
        """True if ``patches`` is a patch this view sent, come back (forgotten then)."""
        now = time.monotonic()
        while self._echoes and (now - self._echoes[0][0] > 120 or len(self._echoes) > 500):
            self._echoes.popleft()  # (echoes lost: the page closed)
        try:
            key = _patch_key(patches)
        except (TypeError, ValueError):
            return False
        for n, (_, sent) in enumerate(self._echoes):
            if sent == key:
                del self._echoes[n]
                return True
        return False

    def _edit(self, i: int, field: str, value) -> None:
        """The page's cell ``field`` of source row ``i`` (run ``self._keys[i]``) now holds
        ``value``: a note is written to the database, another cell is put back at the next
        refresh (the database's value differs from the page's)."""
        run = self._keys[i]
        if field not in self._sent:
            return
        self._sent[field][i] = value
        if time.monotonic() - self._sent_at.get((run, field), -math.inf) < _CROSSING:
            # the server may have changed this cell while the edit was on its way: the page
            # may show either value, so the stored one is sent again
            self._sent[field][i] = _STALE
        if field in EDITABLE and run in self._row:
            self._pending[(run, field)] = "" if value is None else str(value)
            self._flush()
        # re-read at once on a bokeh server (not now: the source is still notifying its
        # owners of this change); the notebook's refresh task does it at its next step
        self._digest = None
        doc = self.source.document
        if doc is not None and doc.session_context is not None:
            doc.add_next_tick_callback(self.update)

    def _flush(self) -> None:
        """Write the edits typed in the table and not written yet (kept for the next refresh
        when the database refuses them, e.g. locked by another writer)."""
        for (run, field), value in list(self._pending.items()):
            try:
                if field == "comment":
                    self.logdb.set_note(run, comment=value)
                else:
                    self.logdb.set_note(run, tags=parse_tags(value))
            except Exception as exc:
                self._write_error = f"{run}: the {field} typed is not saved yet ({exc})"
                log.warning("logbook: %s", self._write_error)
                self.message.text = (
                    f"<span style='color:#b00'>{html.escape(self._write_error)}</span>"
                )
                return
            del self._pending[(run, field)]
            self.edits += 1
        self._write_error = ""

    def _on_select(self, attr, old, new) -> None:
        if not new or new[0] >= len(self._keys):
            return
        i = new[0]
        self._note_key = self._keys[i]
        self.note_run.value = short_name(self._keys[i])
        # (the page's cells: what was sent, with the page's own edits)
        comment, tags = self._sent["comment"][i], self._sent["tags"][i]
        self.note_comment.value = "" if comment is _STALE else str(comment)
        self.note_tags.value = "" if tags is _STALE else str(tags)

    def _save_note(self) -> None:
        if self._note_key is None:
            return
        self.logdb.set_note(
            self._note_key, comment=self.note_comment.value, tags=parse_tags(self.note_tags.value)
        )
        self.edits += 1
        self._digest = None
        self.update()

    # ------------------------------------------------------------------ misc
    def export(self, fmt: str, filter_text: str | None = None) -> bytes:
        from ..outputs.logbook import export

        df = filter_rows(self.df, self.filter.value if filter_text is None else filter_text)
        return export(df, fmt)

    def close(self) -> None:
        if self._own_db:
            self.logdb.close()
