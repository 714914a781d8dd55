"""``xlive logbook`` (the run table of a database in the browser), the logbook form of
``xlive runs``, and the ``--variables`` option shared by ``process``, ``serve`` and ``runs``."""

from __future__ import annotations

import argparse
import json
import signal

# (cli.outputs has the same text; imported from there it would make an import cycle)
DB_HELP = (
    "run database: a SQLite file or a SQLAlchemy URL such as "
    "postgresql+psycopg://user@host/db (default: $XLIVE_DB or "
    "~/.local/share/xlive/runs.sqlite)"
)
VARIABLES_HELP = (
    "Python file of @xlive.run_variable functions: each adds a column to the "
    "run table (re-computed for past runs when the file changes)"
)


def add_variables_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variables", default=None, metavar="FILE", help=VARIABLES_HELP)


def variables_from(args: argparse.Namespace, cfg=None):
    """The VariableSet of ``--variables`` (else the configuration's ``[logbook] variables``)."""
    path = getattr(args, "variables", None) or (cfg.logbook.get("variables") if cfg else None)
    if not path:
        return None
    from ..outputs.variables import load_variables

    return load_variables(path)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``logbook`` to the ``xlive`` parser."""
    p = sub.add_parser(
        "logbook",
        help="the run table of a run database in the browser (live)",
        description="Serve the beamtime logbook: one row per run of the run database, updated "
        "live while runs are processed, with comments, tags and user variables. "
        "Stop with Ctrl-C.",
    )
    p.add_argument("--db", default=None, metavar="DB", help=DB_HELP)
    add_variables_option(p)
    p.add_argument(
        "--port", type=int, default=5007, help="TCP port (default %(default)s; 0 picks a free one)"
    )
    p.add_argument(
        "--address",
        default="127.0.0.1",
        help="interface to listen on (default %(default)s: this machine only)",
    )
    p.add_argument("--show", action="store_true", help="open the page in a web browser")
    p.set_defaults(func=cmd_logbook)


def cmd_logbook(args: argparse.Namespace) -> int:
    from ..views.app import wait_forever
    from ..views.logbook_app import serve_logbook

    def _terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    handle = serve_logbook(
        args.db,
        variables=args.variables,
        port=args.port,
        address=args.address,
        open_browser=args.show,
    )
    print(f"xlive: logbook of {handle.db_url} at {handle.url} (Ctrl-C stops)", flush=True)
    try:
        wait_forever(handle)
    except KeyboardInterrupt:
        print("xlive: stopping", flush=True)
    finally:
        handle.stop()
    return 0


def cmd_runs_logbook(args: argparse.Namespace) -> int:
    """``xlive runs``: the logbook table (variables computed where stale) as text, CSV or JSON."""
    from ..outputs.logbook import fill_missing_rows, logbook_frame, refresh_variables, text_frame
    from ..outputs.logbook_db import LogbookDB

    variables = variables_from(args)
    with LogbookDB(args.db) as logdb:
        fill_missing_rows(logdb)
        if variables is not None:
            refresh_variables(logdb, variables)
        df = logbook_frame(logdb, variables)
        where = logdb.rundb.safe_url
    if args.export:
        from pathlib import Path

        from ..errors import ConfigError
        from ..outputs.logbook import export

        fmt = Path(args.export).suffix.lstrip(".").lower()
        if fmt not in ("csv", "xlsx", "md"):
            raise ConfigError(f"--export {args.export}: the file must end in .csv, .xlsx or .md")
        Path(args.export).write_bytes(export(df, fmt))
    if args.format == "json":
        records = df.drop(columns=["trend"]).to_dict(orient="records")
        for rec, spark in zip(records, df["trend"], strict=True):
            rec["trend"] = spark
        print(json.dumps(records, default=str, indent=1, ensure_ascii=False))
        return 0
    text = text_frame(df)  # a variable that raised: "error: ..." in its cell
    drop = ["errors"] + ([] if args.features else ["features", "link"])
    for c in ("indexing_rate", "cell", "lag", "comment", "tags"):  # hide columns nobody filled
        if (text[c] == "").all():
            drop.append(c)
    text = text.drop(columns=drop)
    if args.format == "csv":
        print(text.to_csv(index=False), end="")
        return 0
    if df.empty:
        print(f"no runs recorded in {where}")
        return 0
    print(text.to_string(index=False))
    return 0


def start_recorder(args: argparse.Namespace, processor, variables=None, cfg=None, link=None):
    """A :class:`~xlive.outputs.logbook.LiveRecorder` following ``processor`` (None with
    ``--no-db``): the run's row in the logbook, live."""
    if getattr(args, "no_db", False):
        return None
    from ..outputs.logbook import LiveRecorder

    kw = {}
    if cfg is not None:
        kw = {"aggregate_params": cfg.aggregate, "thresholds": cfg.flags}
    return LiveRecorder(args.db, variables=variables, link=link, **kw).attach(processor)


def record_final_row(args: argparse.Namespace, variables=None) -> None:
    """The logbook row of ``args.out`` from its store (after ``process --fill-in``)."""
    from ..outputs.logbook import record_final
    from ..outputs.logbook_db import LogbookDB

    with LogbookDB(args.db) as logdb:
        record_final(logdb, args.out, variables=variables)


def finish_recorder(recorder, summary=None, *, ok: bool = True) -> None:
    """The run's final logbook row (``finished``, every variable), or ``stopped`` after an
    error or an interrupt."""
    if recorder is None:
        return
    try:
        if ok:
            recorder.finish(flags=summary.flags if summary is not None else None)
        else:
            recorder.write(state="stopped")
    finally:
        recorder.close()


def add_serve_options(p: argparse.ArgumentParser) -> None:
    """``--db`` and ``--variables`` of ``xlive serve``: record the run live and serve the
    logbook at ``/logbook``."""
    p.add_argument(
        "--db",
        default=None,
        metavar="DB",
        help=f"record the run live in this {DB_HELP}; the page then links to the "
        "logbook of the database at /logbook",
    )
    add_variables_option(p)


def serve_extras(args: argparse.Namespace, session, config=None):
    """``(recorder, apps, extra_patterns)`` for ``xlive serve``: nothing without ``--db``."""
    if args.db is None:
        return None, {}, []
    from ..outputs.logbook import LiveRecorder
    from ..views.logbook_app import logbook_routes

    variables = variables_from(args, config)
    recorder = LiveRecorder(args.db, variables=variables, flags=lambda: session.flags)
    with session.lock:
        recorder.attach(session.processor)
    apps, patterns = logbook_routes(
        recorder.logdb, variables=variables.path if variables else None, prefix="/logbook"
    )
    return recorder, apps, patterns


def finish_serve(args: argparse.Namespace, session, recorder) -> None:
    """When ``xlive serve`` stops: the run's summary and final logbook row."""
    if recorder is None:
        return
    summary = None
    if session.processor.store is not None:
        from ..outputs.rundb import record_run

        summary = record_run(args.db, session.features)
    finish_recorder(recorder, summary, ok=summary is not None)
