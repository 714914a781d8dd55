"""The logbook page on a bokeh server: ``xlive logbook`` (at ``/``) and ``xlive serve`` (at
``/logbook``), with download links (``export.csv``, ``export.xlsx``, ``export.md``) and each
run's report (``report?run=KEY``) served by tornado handlers beside the page.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from bokeh.application import Application
from bokeh.application.handlers.function import FunctionHandler
from tornado.web import HTTPError, RequestHandler

from ..outputs.logbook import LogbookKeeper, export, logbook_frame
from ..outputs.logbook_db import LogbookDB
from .logbook import LogbookView, filter_rows

_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class _Shared:
    """What every page of one server shares: the database and the keeper of its logbook."""

    def __init__(self, db, variables):
        self.logdb = db if isinstance(db, LogbookDB) else LogbookDB(db)
        self.keeper = LogbookKeeper(self.logdb, variables).start()

    def current_variables(self):
        return self.keeper.variables


class ExportHandler(RequestHandler):
    def initialize(self, shared: _Shared):
        self.shared = shared

    async def get(self, fmt: str):
        flt = self.get_argument("filter", "")

        def build() -> bytes:
            df = logbook_frame(self.shared.logdb, self.shared.current_variables())
            return export(filter_rows(df, flt), fmt)

        body = await asyncio.get_running_loop().run_in_executor(None, build)
        self.set_header("Content-Type", _TYPES[fmt])
        self.set_header("Content-Disposition", f'attachment; filename="logbook.{fmt}"')
        self.write(body)


class ReportHandler(RequestHandler):
    def initialize(self, shared: _Shared):
        self.shared = shared

    async def get(self):
        run = self.get_argument("run")
        rows = {r["run"]: r for r in logbook_frame(self.shared.logdb).to_dict(orient="records")}
        if run not in rows or not rows[run].get("features"):
            raise HTTPError(404, f"no features recorded for run {run}")
        features = rows[run]["features"]

        def build() -> str:
            from ..outputs.report import write_report

            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "report.html"
                write_report(features, out, title=f"xlive report: {run}")
                return out.read_text(encoding="utf-8")

        try:
            html = await asyncio.get_running_loop().run_in_executor(None, build)
        except Exception as exc:
            raise HTTPError(500, f"cannot build the report of {run}: {exc}") from exc
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.write(html)


def logbook_routes(
    db, *, variables=None, prefix: str = "", interval: float = 1.0
) -> tuple[dict, list]:
    """``({path: Application}, extra_patterns)`` of the logbook page under ``prefix``; a
    :class:`~xlive.outputs.logbook.LogbookKeeper` thread computes the variables meanwhile."""
    shared = _Shared(db, variables)

    def make(doc):
        view = LogbookView(shared.logdb, keeper=shared.keeper, base_url=prefix)
        doc.title = "xlive logbook"
        doc.add_root(view.root)
        doc.add_periodic_callback(view.update, int(interval * 1000))

    app = Application(FunctionHandler(make))
    patterns = [
        (rf"{prefix}/export\.(csv|xlsx|md)", ExportHandler, {"shared": shared}),
        (rf"{prefix}/report", ReportHandler, {"shared": shared}),
    ]
    return {prefix or "/": app}, patterns


def serve_logbook(
    db=None,
    *,
    variables=None,
    port: int = 5007,
    address: str = "127.0.0.1",
    open_browser: bool = False,
    interval: float = 1.0,
):
    """Serve the logbook of ``db`` at ``http://address:port/`` from a background thread.

    Returns the :class:`~xlive.views.app.ServerHandle` (``.url``, ``.stop()``) with
    ``.db_url`` (the database, without its password).
    """
    from .app import serve_session

    logdb = LogbookDB(db)
    apps, patterns = logbook_routes(logdb, variables=variables, interval=interval)
    handle = serve_session(
        None,
        port=port,
        address=address,
        open_browser=open_browser,
        apps=apps,
        extra_patterns=patterns,
    )
    handle.db_url = logdb.rundb.safe_url
    keeper, stop = patterns[0][2]["shared"].keeper, handle.stop

    def stop_all(timeout: float = 10.0) -> None:
        stop(timeout)
        keeper.stop()
        logdb.close()

    handle.stop = stop_all
    return handle
