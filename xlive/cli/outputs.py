"""Subcommands that hand results on: ``export-hits``, ``export-table``, ``record``, ``runs``,
``report`` (each thin: parse, call :mod:`xlive.outputs`, print)."""

from __future__ import annotations

import argparse
import json

DB_HELP = (
    "run database: a SQLite file or a SQLAlchemy URL such as "
    "postgresql+psycopg://user@host/db (default: $XLIVE_DB or "
    "~/.local/share/xlive/runs.sqlite)"
)


def add_db_option(p: argparse.ArgumentParser) -> None:
    """The ``--db`` option (shared with ``xlive process``)."""
    p.add_argument("--db", default=None, metavar="DB", help=DB_HELP)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the output subcommands to the ``xlive`` parser."""
    p = sub.add_parser(
        "export-hits",
        help="write the hits of a processed run as a CXI file for CrystFEL",
        description="Write the hit frames of a processed run with their peaks into a CXI file "
        "that `indexamajig --peaks=cxi` reads, with an event list and a .geom.",
    )
    p.add_argument("features", help="feature store (.zarr) written by `xlive process`")
    p.add_argument("--cxi", required=True, help="output CXI file")
    p.add_argument("--lst", help="event list of the CXI rows (`file //N` lines)")
    p.add_argument("--geom", help="CrystFEL geometry for the CXI file (mask in <stem>-mask.h5)")
    p.add_argument(
        "--lst-original",
        help="event list pointing at the hits in the run's own HDF5 or image files",
    )
    p.add_argument("--source", help="the run, if it moved since it was processed")
    p.add_argument(
        "--no-half-pixel-shift",
        action="store_true",
        help="write positions + 0.5 for `indexamajig --no-half-pixel-shift`",
    )
    p.add_argument("--compress", action="store_true", help="gzip the frames")
    p.add_argument(
        "--stream",
        default=None,
        help="also write the indexed hits as a CrystFEL stream (crystals, reflections;"
        " needs a run processed with --cell or --index)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=cmd_export_hits)

    p = sub.add_parser(
        "export-table",
        help="write per-frame or per-peak feature tables (Parquet or CSV)",
        description="Write one row per frame (or per peak with --peaks) of a feature store.",
    )
    p.add_argument("features", help="feature store (.zarr)")
    p.add_argument("--out", required=True, help="table file: .parquet, .csv or .csv.gz")
    p.add_argument("--peaks", action="store_true", help="one row per peak instead of per frame")
    p.add_argument(
        "--format",
        choices=("parquet", "csv"),
        default=None,
        help="table format (default: from the file suffix)",
    )
    p.set_defaults(func=cmd_export_table)

    p = sub.add_parser(
        "record",
        help="record a processed run in the run database",
        description="Summarize a feature store and insert (or update) its run in the run database.",
    )
    p.add_argument("features", help="feature store (.zarr)")
    p.add_argument("--run", help="key of the run (default: the run's path or URL)")
    add_db_option(p)
    p.set_defaults(func=cmd_record)

    p = sub.add_parser(
        "runs",
        help="list the runs in the run database",
        description="List the processed runs recorded in the run database.",
    )
    add_db_option(p)
    p.add_argument(
        "--all",
        action="store_true",
        help="the run summaries' every column (instead of the logbook table)",
    )
    p.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="output format (default %(default)s)",
    )
    from .logbook import add_variables_option

    add_variables_option(p)
    p.add_argument(
        "--features", action="store_true", help="also show each run's feature store and page link"
    )
    p.add_argument(
        "--export",
        default=None,
        metavar="FILE",
        help="also write the table to FILE: .csv, .xlsx (Excel) or .md (Markdown)",
    )
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a processed run",
        description="Write an HTML report (plots, flags, run figures) that works offline.",
    )
    p.add_argument("features", help="feature store (.zarr)")
    p.add_argument("--html", required=True, help="output HTML file")
    p.add_argument("--title", default=None, help="page title")
    p.set_defaults(func=cmd_report)


def cmd_export_hits(args: argparse.Namespace) -> int:
    from ..outputs.hits import export_hits

    res = export_hits(
        args.features,
        args.cxi,
        lst=args.lst,
        geom=args.geom,
        lst_original=args.lst_original,
        source=args.source,
        half_pixel_shift=not args.no_half_pixel_shift,
        compression="gzip" if args.compress else None,
        overwrite=args.overwrite,
        stream=args.stream,
    )
    print(
        f"wrote {res.hits} hits to {res.cxi}"
        + (f" ({res.unreadable} unreadable frames left out)" if res.unreadable else "")
    )
    if res.cut_message():
        print(f"note: {res.cut_message()}")
    if res.stream is not None:
        print(f"wrote {res.indexed} indexed hits to the CrystFEL stream {res.stream}")
    for what, path in (
        ("event list", res.lst),
        ("geometry", res.geom),
        ("event list of the original files", res.lst_original),
    ):
        if path is not None:
            print(f"{what}: {path}")
    if res.geom is not None and res.lst is not None:
        print(f"index with: indexamajig -i {res.lst} -g {res.geom} --peaks=cxi -o hits.stream")
    return 0


def cmd_export_table(args: argparse.Namespace) -> int:
    from ..outputs.tables import write_table

    table = write_table(args.features, args.out, peaks=args.peaks, fmt=args.format)
    print(
        f"wrote {len(table)} {'peaks' if args.peaks else 'frames'} "
        f"x {table.shape[1]} columns to {args.out}"
    )
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from ..outputs.rundb import RunDB
    from ..outputs.summary import summarize

    summary = summarize(args.features, run=args.run)
    with RunDB(args.db) as db:
        rid = db.record(summary)
        where = db.safe_url
    print(f"recorded run {summary.run} as id {rid} in {where}")
    return 0


def _cell(v) -> str:
    import pandas as pd

    if v is None or v is pd.NaT or (isinstance(v, float) and v != v):
        return "-"  # a run that never finished has no end time (NaT), an empty one no rate
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, list):  # flags
        return ",".join(f["name"] for f in v) or "-"
    if hasattr(v, "strftime"):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    return str(v)


def cmd_runs(args: argparse.Namespace) -> int:
    from ..outputs.rundb import BRIEF, RunDB

    if not args.all:  # the logbook: live rows, comments, tags, variables
        from .logbook import cmd_runs_logbook

        return cmd_runs_logbook(args)
    with RunDB(args.db) as db:
        df = db.to_frame(None if args.all else BRIEF)
        where = db.safe_url
    if args.format == "json":
        print(json.dumps(df.to_dict(orient="records"), default=str, indent=1))
        return 0
    if args.format == "csv":
        print(df.to_csv(index=False), end="")
        return 0
    if df.empty:
        print(f"no runs recorded in {where}")
        return 0
    text = df.map(_cell) if hasattr(df, "map") else df.applymap(_cell)
    print(text.to_string(index=False))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..outputs.report import write_report

    s = write_report(args.features, args.html, title=args.title)
    print(
        f"wrote the report of {s.run} ({s.frames} frames, {s.hits} hits, "
        f"status {s.status}) to {args.html}"
    )
    return 0
