"""The red-flags panel: every flag that fires now, with its plain-language advice in full."""

from __future__ import annotations

import html

from bokeh.models import ColumnDataSource, Div

from ._base import View

SEVERITY_COLORS = {"error": "#c62828", "warning": "#b26a00"}
_STYLE = (
    "<style>.xlive-flags{border-collapse:collapse;width:100%;font:10pt sans-serif}"
    ".xlive-flags td,.xlive-flags th{padding:3px 6px;vertical-align:top;text-align:left;"
    "border-bottom:1px solid #e0e0e0;white-space:normal;overflow-wrap:anywhere}"
    ".xlive-flags th{color:#555;font-weight:normal}"
    # severity and flag name are never broken inside a word; only the advice wraps anywhere
    ".xlive-flags td:first-child{white-space:nowrap}"
    ".xlive-flags td:nth-child(2){overflow-wrap:normal}</style>"
)


class FlagsPanel(View):
    """A table of the flags that fire (severity, name, what it means and what to do), the
    advice wrapped over as many lines as it needs; flags raised and cleared earlier follow.
    ``source`` holds the same rows as data."""

    name = "flags"

    def __init__(self):
        self._shown: tuple | None = None
        self.source = ColumnDataSource(
            {"name": [], "severity": [], "message": []}, name="flags_source"
        )
        self.root = Div(
            name="flags_plot",
            width=380,
            text=self._html([], [], []),
        )

    @staticmethod
    def _html(names, severities, messages) -> str:
        if not names:
            return (
                _STYLE
                + "<p style='font:10pt sans-serif;color:#2e7d32'>No flags: all checks pass.</p>"
            )
        rows = "".join(
            f"<tr><td style='color:{SEVERITY_COLORS.get(s, '#555')};font-weight:bold'>"
            f"{html.escape(s)}</td><td>{html.escape(n.replace('_', ' '))}</td>"
            f"<td>{html.escape(m)}</td></tr>"
            for n, s, m in zip(names, severities, messages, strict=True)
        )
        return (
            _STYLE + "<table class='xlive-flags'><tr><th></th><th>flag</th>"
            f"<th>what it means and what to do</th></tr>{rows}</table>"
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
        data = {
            "name": [f.name for f in flags] + [e.name for e in past],
            "severity": [f.severity for f in flags] + [e.severity for e in past],
            "message": [f.message for f in flags]
            + [
                f"earlier, frames {e.raised_at}-{e.cleared_at} (cleared): {e.message}" for e in past
            ],
        }
        self.source.data = data
        self.root.text = self._html(data["name"], data["severity"], data["message"])
        return True
