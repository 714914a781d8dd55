"""The logbook view: the run table of a run database as a bokeh DataTable, live.

One :class:`LogbookView` per bokeh document (a page of ``xlive logbook`` or ``xlive serve``, or
the notebook's :class:`LogbookWidget`). :meth:`LogbookView.update` re-reads the database and
re-sends the rows only when something changed; comment and tag cells typed in the table (or
in the form below it, for the selected run) are written back to the database (other cells
are read-only: an edit there is undone). A cell editor closes when its table is refreshed, so
notes on a run whose row changes live are best typed in the form. A filter box takes text
(rows containing it) or a condition (``hit_rate > 0.2 and d_min < 2``); links export the
rows shown as CSV, Excel or Markdown; each run links to its live page or report; a scatter
plot shows any numeric column against another across runs.
"""

from __future__ import annotations

import html
import logging
import math
from urllib.parse import quote

import numpy as np
import pandas as pd
from bokeh.layouts import column, row
from bokeh.models import (
    Button,
    ColumnDataSource,
    DataTable,
    Div,
    HoverTool,
    HTMLTemplateFormatter,
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
        self._written: dict[str, tuple[str, str]] = {}
        self._setting = False
        self.edits = 0
        self.source = ColumnDataSource({}, name="logbook_source")
        self.table = DataTable(
            source=self.source,
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
        self.source.on_change("data", self._on_edit)
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
        it); True if the rows changed."""
        if self._own_keeper:
            try:
                self.keeper.step()
            except Exception as exc:  # the table goes on
                log.warning("logbook: computing variables failed: %s", exc)
        msg = self.keeper.message
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
        self._show()
        return True

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

    def _show(self) -> None:
        df = filter_rows(self.df, self.filter.value)
        self.shown = df
        data = self._data(df)
        cols = self._columns(self.df)
        self._setting = True
        try:
            if [c.field for c in cols] != [c.field for c in self.table.columns]:
                self.table.columns = cols
            self.source.data = data
        finally:
            self._setting = False
        self._written = {
            r: (c, t)
            for r, c, t in zip(
                data.get("run", []), data.get("comment", []), data.get("tags", []), strict=True
            )
        }
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

    def _update_scatter(self) -> None:
        data = self.source.data
        x, y = self.xsel.value, self.ysel.value
        if x in data and y in data:
            self.scatter_source.data = {
                "x": list(data[x]),
                "y": list(data[y]),
                "run": list(data.get("_label", [])),
            }
            self.scatter.xaxis.axis_label, self.scatter.yaxis.axis_label = x, y

    # ------------------------------------------------------------------ edits
    def _on_edit(self, attr, old, new) -> None:
        if self._setting:
            return
        data = self.source.data
        for i, run in enumerate(data.get("run", [])):
            comment, tags = data["comment"][i], data["tags"][i]
            before = self._written.get(run)
            if before is None:
                continue
            if (comment, tags) != before:
                self.logdb.set_note(
                    run,
                    comment=comment if comment != before[0] else None,
                    tags=parse_tags(tags) if tags != before[1] else None,
                )
                self._written[run] = (comment, tags)
                self.edits += 1
        # re-read: an edit of a read-only cell is undone, the typed notes come back from the
        # database (other pages show them at their next update)
        # (not now: the source is still notifying its owners of this change)
        self._digest = None
        doc = self.source.document
        if doc is not None and doc.session_context is not None:
            doc.add_next_tick_callback(self.update)

    def _on_select(self, attr, old, new) -> None:
        runs = self.source.data.get("run", [])
        if not new or new[0] >= len(runs):
            return
        i = new[0]
        self._note_key = runs[i]
        self.note_run.value = short_name(runs[i])
        self.note_comment.value = self.source.data["comment"][i]
        self.note_tags.value = self.source.data["tags"][i]

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
