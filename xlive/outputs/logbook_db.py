"""The logbook's own tables in the run database: live progress, comments and tags, variables.

They sit beside ``xlive_runs`` (:mod:`xlive.outputs.rundb`) and are keyed by the same run key.
Recording a run again (``xlive process``, ``xlive record``) updates ``xlive_runs`` and the
progress row only: comments and tags live in their own table, which nothing but the logbook
writes, so they survive any reprocessing.

- ``xlive_logbook_progress``: one row per run, written every few seconds by the process that
  analyses it (frames seen and analysed, hit rate, lag, ``state`` live/finished, ...).
- ``xlive_logbook_notes``: the comment and tags users type.
- ``xlive_logbook_variables``: one row per run and variable (value or error, the hash of the
  variables file it came from, whether it was a live value).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    select,
)
from sqlalchemy import exc as sa_exc

from .rundb import RunDB, _utc

_meta = MetaData()
progress_table = Table(
    "xlive_logbook_progress",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run", String(512), nullable=False, unique=True),
    Column("source", Text),
    Column("features", Text),
    Column("frames_seen", Integer),
    Column("frames_analysed", Integer),
    Column("hits", Integer),
    Column("hit_rate", Float),
    Column("indexing_rate", Float),
    Column("d_min", Float),
    Column("cell", JSON),
    Column("trend", JSON),
    Column("flags", JSON),
    Column("lag", Float),
    Column("state", String(16)),
    Column("link", Text),
    Column("started", DateTime(timezone=True)),
    Column("updated", DateTime(timezone=True)),
)
notes_table = Table(
    "xlive_logbook_notes",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run", String(512), nullable=False, unique=True),
    Column("comment", Text),
    Column("tags", JSON),
    Column("updated", DateTime(timezone=True)),
)
variables_table = Table(
    "xlive_logbook_variables",
    _meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run", String(512), nullable=False),
    Column("name", String(200), nullable=False),
    Column("title", Text),
    Column("value", JSON),
    Column("error", Text),
    Column("digest", String(64)),
    Column("live", Boolean),
    Column("basis", String(80)),
    Column("computed", DateTime(timezone=True)),
    UniqueConstraint("run", "name", name="uq_xlive_logbook_variable"),
)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def parse_tags(text) -> list[str]:
    """Tags from a list or from text separated by commas or spaces (order kept, no repeats)."""
    items = text if isinstance(text, (list, tuple)) else str(text or "").replace(",", " ").split()
    out: list[str] = []
    for t in (str(i).strip() for i in items):
        if t and t not in out:
            out.append(t)
    return out


class LogbookDB:
    """The logbook tables of a run database (created on first use).

    Parameters
    ----------
    db
        A :class:`~xlive.outputs.rundb.RunDB`, a SQLite file path, a SQLAlchemy URL or None
        (the default database).
    """

    def __init__(self, db=None):
        self._own = not isinstance(db, RunDB)
        self.rundb = db if isinstance(db, RunDB) else RunDB(db)
        self.engine = self.rundb.engine
        _meta.create_all(self.engine)

    # ------------------------------------------------------------------ helpers
    def _upsert(self, table, key: dict, values: dict) -> None:
        """Update the row matching ``key`` or insert it (a racing insert is retried once)."""
        cond = [table.c[k] == v for k, v in key.items()]
        for attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    row = conn.execute(select(table.c.id).where(*cond)).first()
                    if row is None:
                        conn.execute(table.insert().values(**key, **values))
                    else:
                        conn.execute(table.update().where(table.c.id == row.id).values(**values))
                return
            except sa_exc.IntegrityError:
                if attempt:
                    raise

    def _rows(self, table, *where) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(table).where(*where).order_by(table.c.id)).mappings().all()
        return [{k: _utc(v) for k, v in r.items()} for r in rows]

    # ------------------------------------------------------------------ progress
    def set_progress(self, run: str, **values) -> None:
        """Write the progress row of ``run`` (only the given columns change)."""
        values.setdefault("updated", now())
        self._upsert(progress_table, {"run": run}, values)

    def progress(self) -> list[dict]:
        return self._rows(progress_table)

    # ------------------------------------------------------------------ notes
    def set_note(self, run: str, *, comment: str | None = None, tags=None) -> None:
        """Set the comment and/or the tags of ``run`` (None leaves one as it is)."""
        values: dict = {"updated": now()}
        if comment is not None:
            values["comment"] = str(comment)
        if tags is not None:
            values["tags"] = parse_tags(tags)
        self._upsert(notes_table, {"run": run}, values)

    def notes(self) -> dict[str, dict]:
        return {r["run"]: r for r in self._rows(notes_table)}

    # ------------------------------------------------------------------ variables
    def set_variables(
        self,
        run: str,
        results: dict,
        *,
        titles: dict,
        digest: str,
        live: bool = False,
        replace: bool = False,
        basis: str | None = None,
        since: dt.datetime | None = None,
    ) -> None:
        """Store variable results ``{name: (value, error)}`` of ``run``.

        ``replace`` also deletes the run's variables not in ``results`` (a file that dropped
        them); ``basis`` names the record of the run they were computed from. Live values
        never replace final values computed at or after ``since`` (when this processing of
        the run started): a late live update cannot undo the run's final values.
        """
        t = variables_table
        stamp = now()
        with self.engine.begin() as conn:
            if replace:
                conn.execute(delete(t).where(t.c.run == run, t.c.name.not_in(list(results))))
            rows = conn.execute(
                select(t.c.id, t.c.name, t.c.live, t.c.computed).where(t.c.run == run)
            ).all()
            have = {r.name: r.id for r in rows}
            final = {
                r.name
                for r in rows
                if live
                and since is not None
                and r.live is False
                and r.computed is not None
                and _utc(r.computed) >= since
            }
            for name, (value, error) in results.items():
                if name in final:
                    continue
                values = dict(
                    title=titles.get(name, name),
                    value=value,
                    error=error,
                    digest=digest,
                    live=live,
                    computed=stamp,
                    basis=basis,
                )
                if name in have:
                    conn.execute(t.update().where(t.c.id == have[name]).values(**values))
                else:
                    conn.execute(t.insert().values(run=run, name=name, **values))

    def variables(self) -> list[dict]:
        return self._rows(variables_table)

    def close(self) -> None:
        if self._own:
            self.rundb.close()

    def __enter__(self) -> LogbookDB:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
