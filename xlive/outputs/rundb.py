"""The run database: one row of figures per processed run, through SQLAlchemy.

By default a SQLite file (``$XLIVE_DB``, else ``$XDG_DATA_HOME/xlive/runs.sqlite``, i.e.
``~/.local/share/xlive/runs.sqlite``), which needs no server; at a facility any SQLAlchemy URL
(``postgresql+psycopg://user@host/db``, ``mysql+pymysql://...``) with its driver installed.
The table is ``xlive_runs``, keyed by ``run`` (the run's path or URL unless given): recording a
run again updates its row and counts ``times_processed``; it never adds a second row.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pandas as pd
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    select,
)
from sqlalchemy import exc as sa_exc

from ..errors import XliveError
from .summary import RunSummary, summarize

TABLE = "xlive_runs"
_meta = MetaData()
runs_table = Table(
    TABLE,
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run", String(512), nullable=False, unique=True),
    Column("source", Text),
    Column("features", Text),
    Column("frames", Integer),
    Column("hits", Integer),
    Column("hit_rate", Float),
    Column("median_spots", Float),
    Column("median_spots_hits", Float),
    Column("frames_bad", Integer),
    Column("frames_skipped", Integer),
    Column("frames_pending", Integer),
    Column("d_min_p10", Float),
    Column("d_min_p50", Float),
    Column("d_min_p90", Float),
    Column("d_min_hist", JSON),
    Column("flags", JSON),
    Column("status", String(8)),
    Column("started", DateTime(timezone=True)),
    Column("ended", DateTime(timezone=True)),
    Column("processed_at", DateTime(timezone=True)),
    Column("times_processed", Integer, nullable=False, default=1),
    Column("xlive_version", String(32)),
    Column("hits_tried", Integer),
    Column("hits_indexed", Integer),
    Column("indexing_rate", Float),
    Column("indexing_rate_frames", Float),
    Column("median_cell", JSON),
    Column("multi_lattice_hits", Integer),
)
#: columns ``xlive runs`` shows by default
BRIEF = (
    "id",
    "run",
    "frames",
    "hits",
    "hit_rate",
    "median_spots",
    "d_min_p50",
    "status",
    "flags",
    "started",
    "ended",
)


class RunDBError(XliveError):
    """The run database cannot be opened, reached or written."""


def default_db() -> Path:
    """``$XLIVE_DB`` if set, else ``$XDG_DATA_HOME/xlive/runs.sqlite`` (``~/.local/share``)."""
    env = os.environ.get("XLIVE_DB")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "xlive" / "runs.sqlite"


def db_url(db: str | Path | None = None) -> str:
    """A SQLAlchemy URL for ``db``: a URL as is, a file path as SQLite, None as the default."""
    if isinstance(db, str) and "://" in db:
        return db
    path = Path(db).expanduser() if db is not None else default_db()
    path.absolute().parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.absolute()}"


def _utc(value):
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)  # SQLite and MySQL keep naive UTC
    return value


class RunDB:
    """A connection to the run database (created on first use).

    Examples
    --------
    >>> db = RunDB("runs.sqlite")  # doctest: +SKIP
    >>> db.record(summarize("features.zarr")); db.runs()[0]["hit_rate"]  # doctest: +SKIP
    """

    def __init__(self, db: str | Path | None = None):
        self.url = db_url(db)
        try:
            kw = {"connect_args": {"timeout": 30}} if self.url.startswith("sqlite") else {}
            self.engine = create_engine(self.url, **kw)
            _meta.create_all(self.engine)
            self._add_missing_columns()
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError) as exc:
            raise RunDBError(
                f"cannot use the database URL {self.safe_url}: {exc}; give a file "
                "path or a SQLAlchemy URL like postgresql+psycopg://user@host/db "
                "with its driver installed"
            ) from exc
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            raise RunDBError(
                f"cannot reach the run database {self.safe_url}: "
                f"{exc.orig or exc}; check the server, the URL and the "
                "credentials, or use a local file with --db runs.sqlite"
            ) from exc

    def _add_missing_columns(self) -> None:
        """Columns added in later versions (indexing figures) into a table made before them."""
        from sqlalchemy import inspect, text

        have = {c["name"] for c in inspect(self.engine).get_columns(TABLE)}
        with self.engine.begin() as conn:
            for col in runs_table.columns:
                if col.name not in have:
                    kind = col.type.compile(dialect=self.engine.dialect)
                    conn.execute(text(f"ALTER TABLE {TABLE} ADD COLUMN {col.name} {kind}"))

    @property
    def safe_url(self) -> str:
        """The URL without its password."""
        try:
            from sqlalchemy.engine import make_url

            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return "<unreadable URL>"

    def record(self, summary: RunSummary) -> int:
        """Insert the run, or update its row if the run is already there; returns its id."""
        from .. import __version__

        values = summary.to_dict()
        values["xlive_version"] = __version__
        for attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    row = conn.execute(
                        select(runs_table.c.id, runs_table.c.times_processed).where(
                            runs_table.c.run == summary.run
                        )
                    ).first()
                    if row is None:
                        res = conn.execute(runs_table.insert().values(**values, times_processed=1))
                        return int(res.inserted_primary_key[0])
                    conn.execute(
                        runs_table.update()
                        .where(runs_table.c.id == row.id)
                        .values(**values, times_processed=(row.times_processed or 0) + 1)
                    )
                    return int(row.id)
            except sa_exc.IntegrityError:
                if attempt:  # another process inserted the same run at the same moment
                    raise
        raise AssertionError("unreachable")

    def runs(self) -> list[dict]:
        """Every run, oldest first, as dicts (datetimes in UTC)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(runs_table).order_by(runs_table.c.id)).mappings().all()
        return [{k: _utc(v) for k, v in r.items()} for r in rows]

    def get(self, run: str) -> dict | None:
        """One run by its key (None if absent)."""
        with self.engine.connect() as conn:
            r = conn.execute(select(runs_table).where(runs_table.c.run == run)).mappings().first()
        return None if r is None else {k: _utc(v) for k, v in r.items()}

    def to_frame(self, columns=None) -> pd.DataFrame:
        """The runs as a DataFrame (all columns, or ``columns``)."""
        df = pd.DataFrame(self.runs(), columns=[c.name for c in runs_table.columns])
        return df if columns is None else df[list(columns)]

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> RunDB:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def record_run(
    db: str | Path | None, features, *, flags=None, run: str | None = None
) -> RunSummary:
    """Summarize a processed run and record it in the run database (insert or update).

    Parameters
    ----------
    db
        SQLite file path, SQLAlchemy URL, or None for :func:`default_db`.
    features
        The run's feature store (path) or Dataset.
    flags
        Flags raised live (default: evaluated over the stored features).
    run
        Key of the run (default: the run's path or URL).
    """
    summary = summarize(features, flags=flags, run=run)
    with RunDB(db) as rdb:
        rdb.record(summary)
    return summary
