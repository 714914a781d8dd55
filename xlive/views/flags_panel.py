"""The red-flags panel: every flag that fires now, with its plain-language message."""

from __future__ import annotations

from bokeh.models import ColumnDataSource, DataTable, HTMLTemplateFormatter, TableColumn

from ._base import View

_SEVERITY_HTML = (
    '<span style="color: <%= value == "error" ? "#c62828" : "#b26a00" %>; font-weight: bold">'
    "<%= value %></span>"
)


class FlagsPanel(View):
    """A table of the flags that fire (name, severity, message); empty when all is well."""

    name = "flags"

    def __init__(self):
        self._shown: tuple | None = None
        self.source = ColumnDataSource(
            {"name": [], "severity": [], "message": []}, name="flags_source"
        )
        self.root = DataTable(
            source=self.source,
            name="flags_plot",
            height=150,
            sizing_mode="stretch_width",
            index_position=None,
            columns=[
                TableColumn(
                    field="severity",
                    title="",
                    width=60,
                    formatter=HTMLTemplateFormatter(template=_SEVERITY_HTML),
                ),
                TableColumn(field="name", title="flag", width=130),
                TableColumn(field="message", title="what it means and what to do", width=700),
            ],
        )

    def update(self, session) -> bool:
        flags = tuple(session.flags)
        now = {f.name for f in flags}
        # flags raised earlier in the run and cleared since stay listed, with their frames
        past = tuple(
            e for e in session.timeline.episodes if e.cleared_at is not None and e.name not in now
        )
        key = (flags, tuple((e.name, e.raised_at, e.cleared_at) for e in past))
        if key == self._shown:
            return False
        self._shown = key
        self.source.data = {
            "name": [f.name for f in flags] + [e.name for e in past],
            "severity": [f.severity for f in flags] + [e.severity for e in past],
            "message": [f.message for f in flags]
            + [
                f"earlier, frames {e.raised_at}-{e.cleared_at} (cleared): {e.message}" for e in past
            ],
        }
        return True
