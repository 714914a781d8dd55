"""The beamtime logbook: one row per run of a run database, filled while runs are processed.

A row joins the run's summary (``xlive_runs``), its live progress, the comment and tags users
typed, and the values of their run variables (:mod:`xlive.outputs.variables`). :class:`LiveRecorder`
is the live loop's listener that keeps a run's row current while it is analysed;
:func:`refresh_variables` (re)computes the variables of past runs when the variables file
changed; :func:`logbook_frame` builds the table every view shows.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..conventions import FRAME
from .logbook_db import LogbookDB, now
from .variables import VariableSet, evaluate

log = logging.getLogger(__name__)

#: bins of the hit-rate sparkline
TREND_BINS = 40
#: a live row not updated for this long is shown as "stalled" (its process died or hangs)
STALLED_AFTER = 60.0
_BARS = "▁▂▃▄▅▆▇█"

#: the built-in columns, in order, with their headings
COLUMNS = {
    "run": "Run",
    "start": "Start",
    "seen": "Seen",
    "analysed": "Analysed",
    "hits": "Hits",
    "hit_rate": "Hit rate",
    "indexing_rate": "Indexing rate",
    "d_min": "Median d_min (Å)",
    "cell": "Median cell",
    "flags": "Flags",
    "lag": "Lag (s)",
    "state": "State",
    "trend": "Hit rate trend",
    "comment": "Comment",
    "tags": "Tags",
}


# --------------------------------------------------------------------------- features
def lazy_features(path: str | Path) -> xr.Dataset:
    """A feature store as a lazy Dataset of its computed frames (dask arrays over Zarr).

    As :func:`xlive.open_features`: nothing but ``status`` is read until used, so a variable
    that looks at ``is_hit`` never reads the radial profiles.
    """
    from ..engine.store import open_features

    return open_features(path)


def run_key(ds: xr.Dataset, features: str | Path | None = None) -> str:
    """The run's database key, as :func:`xlive.outputs.summary.summarize` makes it."""
    source = str(ds.attrs.get("source") or "")
    if source and "://" not in source:
        source = str(Path(source).absolute())
    return source or str(features or "")


def run_metadata(ds: xr.Dataset, run: str) -> xr.Dataset:
    """Per-frame metadata of a run (every column its source knows), indexed by frame.

    Falls back to the metadata kept in the feature store when the run cannot be opened.
    """
    from ..engine.store import META_FIELDS

    cols: dict = {}
    try:
        from ..sources import open_source

        src = open_source(ds.attrs["source"])
        try:
            src.refresh()
            cols = {k: np.asarray(v) for k, v in src.metadata().items()}
        finally:
            src.close()
    except Exception:  # the run moved or is gone: what the store kept
        cols = {}
    if cols:
        n = min(len(v) for v in cols.values())
        meta = xr.Dataset(
            {k: (FRAME, v[:n]) for k, v in cols.items()}, coords={FRAME: np.arange(n)}
        )
    else:
        meta = xr.Dataset(
            {k: (FRAME, ds[k].values) for k in META_FIELDS if k in ds.coords},
            coords={FRAME: ds[FRAME].values},
        )
    meta.attrs.update({"run": run, "source": str(ds.attrs.get("source") or "")})
    return meta


def compute_variables(
    variables: VariableSet, features: str | Path, run: str | None = None
) -> tuple[str, dict]:
    """``(run key, {name: (value, error)})`` of a feature store; a store that cannot be read
    gives its error in every cell."""
    try:
        ds = lazy_features(features)
    except Exception as exc:
        msg = f"cannot read the features {features}: {exc}"
        return run or str(features), {n: (None, msg) for n in variables.names}
    key = run or run_key(ds, features)
    import dask

    # local threads, never the live loop's dask cluster (when this process has one)
    with dask.config.set(scheduler="threads"):
        return key, evaluate(variables, ds, lambda: run_metadata(ds, key))


# --------------------------------------------------------------------------- run figures
def trend(is_hit: np.ndarray, bins: int = TREND_BINS) -> list:
    """Hit rate in up to ``bins`` equal stretches of the run (None where nothing analysed).

    ``is_hit`` is per frame seen: 1.0 hit, 0.0 miss, NaN not analysed.
    """
    x = np.asarray(is_hit, float)
    if not x.size:
        return []
    k = min(bins, x.size)
    out = []
    for part in np.array_split(x, k):
        ok = np.isfinite(part)
        out.append(round(float(part[ok].mean()), 4) if ok.any() else None)
    return out


def sparkline(values) -> str:
    """Text sparkline of hit rates: ▁ (zero) to █ (the highest), a space where unknown."""
    if not values:
        return ""
    known = [v for v in values if v is not None]
    top = max(known) if known else 0.0
    if top <= 0:
        return "".join(_BARS[0] if v is not None else " " for v in values)
    return "".join(
        " " if v is None else _BARS[min(int(v / top * (len(_BARS) - 1) + 0.5), len(_BARS) - 1)]
        for v in values
    )


def _median_cell(indexed: np.ndarray, cell: np.ndarray | None) -> list | None:
    if cell is None or not indexed.any():
        return None
    c = np.asarray(cell, float)
    if c.ndim == 3:  # (frame, lattice, cell_param): the first lattice of each frame
        c = c[:, 0, :]
    c = c[indexed]
    c = c[np.all(np.isfinite(c), axis=1)]
    return [round(float(v), 2) for v in np.median(c, axis=0)] if len(c) else None


def figures(
    hit: np.ndarray, d_min: np.ndarray | None, indexed: np.ndarray | None, cell: np.ndarray | None
) -> dict:
    """Hit rate, indexing rate (indexed hits / hits), median d_min of hits, median cell."""
    hit = np.asarray(hit, bool)
    n, nh = hit.size, int(hit.sum())
    out = {
        "frames_analysed": n,
        "hits": nh,
        "hit_rate": nh / n if n else None,
        "indexing_rate": None,
        "d_min": None,
        "cell": None,
    }
    if d_min is not None and nh:
        d = np.asarray(d_min, float)[hit]
        d = d[np.isfinite(d)]
        out["d_min"] = float(np.median(d)) if d.size else None
    if indexed is not None:
        idx = np.asarray(indexed, bool)
        out["indexing_rate"] = float((idx & hit).sum() / nh) if nh else None
        out["cell"] = _median_cell(idx, cell)
    return out


def store_figures(features: str | Path) -> dict:
    """The logbook figures of a feature store (finished or still growing)."""
    from ..engine.store import FeatureStore

    ds = lazy_features(features)
    store = FeatureStore.open(features)
    n_seen = store.frames_seen
    names = [k for k in ("is_hit", "d_min", "indexed", "unit_cell") if k in ds]
    small = ds[names].compute(scheduler="threads") if names else ds
    hit = small["is_hit"].values if "is_hit" in small else np.zeros(small.sizes[FRAME], bool)
    out = figures(
        hit,
        small["d_min"].values if "d_min" in small else None,
        small["indexed"].values if "indexed" in small else None,
        small["unit_cell"].values if "unit_cell" in small else None,
    )
    per_frame = np.full(n_seen, np.nan)
    per_frame[ds[FRAME].values] = hit
    out.update(
        frames_seen=n_seen,
        trend=trend(per_frame),
        source=str(ds.attrs.get("source") or ""),
        features=str(Path(features).absolute()),
    )
    out["run"] = run_key(ds, features)
    return out


# --------------------------------------------------------------------------- live
class LiveRecorder:
    """A live-loop listener that keeps a run's logbook row current.

    Every ``interval`` seconds it writes the frames seen and analysed, hit and indexing
    rates, median d_min and cell, flags raised, lag and the hit-rate trend, and recomputes the
    variables declared ``cheap``. :meth:`finish` writes the final row (state ``finished``) with
    every variable.

    Parameters
    ----------
    db
        Run database (path, URL, :class:`~xlive.outputs.rundb.RunDB`).
    variables
        The :class:`~xlive.outputs.variables.VariableSet` (or None).
    interval
        Seconds between writes.
    link
        URL of the run's live page, shown in the table.
    flags
        Callable returning the flags raised so far (default: evaluated by the recorder's own
        :class:`~xlive.aggregate.running.RunAggregates`).
    """

    def __init__(
        self,
        db,
        *,
        variables: VariableSet | None = None,
        interval: float = 2.0,
        link: str | None = None,
        flags=None,
        aggregate_params=None,
        thresholds=None,
    ):
        self.logdb = LogbookDB(db)
        self.variables = variables
        self.interval = interval
        self.link = link
        self._flags_fn = flags
        self._agg = None
        if flags is None:
            from ..aggregate.running import RunAggregates

            self._agg = RunAggregates(aggregate_params)
            self._thresholds = thresholds
        self.processor = None
        self._hit = np.zeros(0)
        self._dmin = np.zeros(0)
        self._indexed = np.zeros(0, bool)
        self._last = 0.0
        self._started = now()
        self.run: str | None = None
        self.writes = 0
        self._lock = threading.RLock()
        self._timer: threading.Timer | None = None
        self._closed = False

    def attach(self, processor) -> LiveRecorder:
        """Follow ``processor`` (a :class:`~xlive.engine.live.LiveProcessor`) and listen to it."""
        self.processor = processor
        if self not in processor.listeners:
            processor.listeners.append(self)
        return self

    def _grow(self, n: int) -> None:
        if n > self._hit.size:
            pad = n - self._hit.size
            self._hit = np.concatenate([self._hit, np.full(pad, np.nan)])
            self._dmin = np.concatenate([self._dmin, np.full(pad, np.nan)])
            self._indexed = np.concatenate([self._indexed, np.zeros(pad, bool)])

    def __call__(self, block, meta: dict) -> None:
        with self._lock:
            self._take(block, meta)

    def _take(self, block, meta: dict) -> None:
        idx = block.frames
        if idx.size:
            self._grow(int(idx.max()) + 1)
            good = block.good
            hit = np.asarray(block.get("is_hit", np.zeros(idx.size)), float)
            self._hit[idx[good]] = hit[good]
            if "d_min" in block:
                self._dmin[idx[good]] = np.asarray(block["d_min"], float)[good]
            if "indexed" in block:
                self._indexed[idx[good]] = np.asarray(block["indexed"], bool)[good]
        if self._agg is not None:
            if self._agg.geometry is None and self.processor is not None:
                self._agg.geometry = self.processor.source.geometry
            if self.processor is not None:
                self._agg.declare(self.processor.specs)
            self._agg.update(block, meta)
        wait = self.interval - (time.time() - self._last)
        if wait <= 0:
            self.write()
        elif self._timer is None:  # the run's last blocks reach the row without a next block
            self._timer = threading.Timer(wait, self._flush)
            self._timer.daemon = True
            self._timer.start()

    def _flush(self) -> None:
        self._timer = None
        if self._closed:
            return
        try:
            self.write()
        except Exception as exc:  # the next block writes again
            log.warning("logbook: writing the live row failed: %s", exc)

    def _flag_names(self) -> list[str]:
        if self._flags_fn is not None:
            flags = self._flags_fn()
        else:
            from ..aggregate.flags import evaluate as evaluate_flags

            flags = evaluate_flags(self._agg, self._thresholds)
        return [f.name for f in flags]

    def _features(self):
        store = getattr(self.processor, "store", None)
        return getattr(store, "path", None) if store is not None else None

    def write(self, state: str = "live") -> None:
        """Write the row now (and the cheap variables)."""
        self._cancel()
        with self._lock:
            if self._closed and state == "live":  # a timer that fired as the run finished
                return
            self._write(state)

    def _cancel(self) -> None:
        t, self._timer = self._timer, None
        if t is not None:
            t.cancel()

    def _write(self, state: str) -> None:
        self._last = time.time()
        feats = self._features()
        if feats is None:
            return
        if self.run is None:
            self.run = run_key(lazy_features(feats), feats)
        seen = max(self.processor.source.n_frames if self.processor else 0, self._hit.size)
        analysed = np.isfinite(self._hit)
        hit = self._hit[analysed] > 0.5
        fig = figures(hit, self._dmin[analysed], None, None)
        if self._indexed.any():
            fig["indexing_rate"] = float((self._indexed[analysed] & hit).sum() / max(hit.sum(), 1))
        per_frame = np.full(seen, np.nan)
        per_frame[: self._hit.size] = self._hit
        lag = self.processor.stats.lag_percentile(95) if self.processor else float("nan")
        self.logdb.set_progress(
            self.run,
            source=str(self.processor.store.info.get("source") or ""),
            features=str(Path(feats).absolute()),
            frames_seen=int(seen),
            frames_analysed=fig["frames_analysed"],
            hits=fig["hits"],
            hit_rate=fig["hit_rate"],
            indexing_rate=fig["indexing_rate"],
            d_min=fig["d_min"],
            trend=trend(per_frame),
            flags=self._flag_names(),
            lag=lag if np.isfinite(lag) else None,
            state=state,
            link=self.link,
            started=self._started,
        )
        cheap = self.variables.cheap() if self.variables is not None else None
        if cheap is not None and cheap.variables:
            _, res = compute_variables(cheap, feats, self.run)
            self.logdb.set_variables(
                self.run,
                res,
                titles=cheap.titles,
                digest=cheap.digest,
                live=True,
                since=self._started,
            )
        self.writes += 1

    def finish(self, state: str = "finished", flags: list | None = None) -> None:
        """The final row: figures from the store, every variable, ``state``."""
        self._closed = True
        self._cancel()
        with self._lock:
            self._finish(state, flags)

    def _finish(self, state: str, flags) -> None:
        feats = self._features()
        if feats is None:
            return
        lag = self.processor.stats.lag_percentile(95) if self.processor else float("nan")
        names = (
            [f["name"] if isinstance(f, dict) else f.name for f in flags]
            if flags is not None
            else self._flag_names()
        )
        self.run = record_final(
            self.logdb,
            feats,
            variables=self.variables,
            flags=names,
            state=state,
            link=self.link,
            started=self._started,
            lag=lag if np.isfinite(lag) else None,
        )

    def close(self) -> None:
        self._closed = True
        self._cancel()
        self.logdb.close()


def record_final(
    logdb: LogbookDB,
    features,
    *,
    variables: VariableSet | None = None,
    flags: list[str] | None = None,
    state: str = "finished",
    **extra,
) -> str:
    """Write a run's logbook row from its feature store (and every variable); returns the
    run's key. ``extra`` are more progress columns (``link``, ``lag``, ``started``)."""
    fig = store_figures(features)
    run = fig.pop("run")
    rec = logdb.rundb.get(run)
    if flags is None:
        flags = [f["name"] for f in (rec or {}).get("flags") or []]
    logdb.set_progress(run, **fig, flags=flags, state=state, **extra)
    if variables is not None:
        _, res = compute_variables(variables, features, run)
        basis = f"{rec['times_processed']}@{rec['processed_at']}" if rec else None
        logdb.set_variables(
            run,
            res,
            titles=variables.titles,
            digest=variables.digest,
            live=state != "finished",
            replace=True,
            basis=basis,
        )
    return run


# --------------------------------------------------------------------------- past runs
def _known_runs(logdb: LogbookDB) -> dict[str, dict]:
    """Every run of the database: key -> {features, state, basis (names its last record)}."""
    runs: dict[str, dict] = {}
    for r in logdb.rundb.runs():
        runs[r["run"]] = {
            "features": r["features"],
            "state": "finished",
            "basis": f"{r['times_processed']}@{r['processed_at']}",
        }
    for p in logdb.progress():
        e = runs.setdefault(p["run"], {"features": None, "state": None, "basis": None})
        e["features"] = p["features"] or e["features"]
        e["state"] = p["state"]
        e["started"] = p["started"]
        if e["basis"] is None and p["state"] != "live":
            e["basis"] = f"progress@{p['updated']}"
    return runs


def refresh_variables(
    logdb: LogbookDB, variables: VariableSet, *, include_live: bool = True
) -> list[str]:
    """Compute the variables of every run whose stored values are stale; returns those runs.

    Stale: computed from another version of the file (its hash differs), a variable missing,
    a live value of a run since finished, or a run recorded again since. Runs in progress get
    their ``cheap`` variables only (the others wait for the end of the run).
    """
    stored: dict[str, dict[str, dict]] = {}
    for v in logdb.variables():
        stored.setdefault(v["run"], {})[v["name"]] = v
    done = []
    for run, info in _known_runs(logdb).items():
        if not info["features"] or (info["state"] == "live" and not include_live):
            continue
        live = info["state"] == "live"
        todo = variables.cheap() if live else variables
        have = {k: v for k, v in stored.get(run, {}).items() if k in todo.names or not live}
        stale = (
            set(todo.names) - set(have)
            or any(v["digest"] != todo.digest for v in have.values())
            or (not live and any(v["live"] or v["basis"] != info["basis"] for v in have.values()))
        )
        if not stale or not todo.variables:
            continue
        _, res = compute_variables(todo, info["features"], run)
        logdb.set_variables(
            run,
            res,
            titles=todo.titles,
            digest=todo.digest,
            live=live,
            replace=not live,
            basis=info["basis"],
            since=info.get("started"),
        )
        done.append(run)
    return done


def fill_missing_rows(logdb: LogbookDB) -> list[str]:
    """Give runs recorded without a live process (``xlive record``), or recorded again since
    their row was written, their logbook figures (frames seen, trend, indexing rate, cell) from
    their feature stores; returns those runs."""
    rows = {p["run"]: p for p in logdb.progress()}
    done = []
    for r in logdb.rundb.runs():
        p = rows.get(r["run"])
        if p is not None and (
            p["state"] == "live"
            or p["updated"] is None
            or r["processed_at"] is None
            or p["updated"] >= r["processed_at"]
        ):
            continue
        if not r["features"] or not Path(r["features"]).exists():
            continue
        try:
            record_final(logdb, r["features"], started=r["started"])
        except Exception:  # not a readable store: the summary's figures stay
            continue
        done.append(r["run"])
    return done


class LogbookKeeper:
    """Keeps a database's logbook complete: rows for runs recorded without a live process, and
    the variables of a file up to date for every run (re-read when the file changes).

    Views call :meth:`step` themselves (the notebook) or share one keeper whose thread steps
    (:meth:`start`; a page server), so that computing variables never blocks a page.

    Parameters
    ----------
    logdb
        The :class:`~xlive.outputs.logbook_db.LogbookDB`.
    variables
        A variables file (path, watched) or a :class:`~xlive.outputs.variables.VariableSet`.
    every
        Seconds between looks for stale variables (a changed file is seen at once).
    """

    def __init__(self, logdb: LogbookDB, variables=None, *, every: float = 5.0):
        self.logdb = logdb
        self._arg = variables
        self.variables: VariableSet | None = (
            variables if isinstance(variables, VariableSet) else None
        )
        #: why the variables file cannot be used ("" when it can)
        self.message = ""
        self.every = every
        self._mtime = None
        self._last = -float("inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _load(self) -> None:
        if self._arg is None or isinstance(self._arg, VariableSet):
            return
        from .variables import load_variables

        try:
            mtime = Path(self._arg).stat().st_mtime_ns
        except OSError:
            mtime = None
        if self.variables is not None and mtime == self._mtime:
            return
        try:
            self.variables = load_variables(self._arg)
            self.message = ""
        except Exception as exc:  # a file missing, half-saved or broken: say so, keep the old
            self.message = f"variables: {exc}"
        self._mtime = mtime
        self._last = -float("inf")

    def step(self) -> list[str]:
        """Fill missing rows, and compute stale variables if due; returns the runs computed."""
        self._load()
        fill_missing_rows(self.logdb)
        if self.variables is None or time.time() - self._last < self.every:
            return []
        self._last = time.time()
        return refresh_variables(self.logdb, self.variables)

    def start(self, interval: float = 1.0) -> LogbookKeeper:
        """Step in a daemon thread every ``interval`` seconds until :meth:`stop`."""

        def loop():
            while not self._stop.is_set():
                try:
                    self.step()
                except Exception as exc:  # the pages go on; the next step tries again
                    log.warning("logbook: keeping the logbook failed: %s", exc)
                self._stop.wait(interval)

        if self._thread is None:
            self._thread = threading.Thread(target=loop, name="xlive-logbook-keeper", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


# --------------------------------------------------------------------------- the table
def _state(p: dict | None) -> str:
    if p is None:
        return "finished"
    state = p.get("state") or "finished"
    upd = p.get("updated")
    if state == "live" and upd is not None and (now() - upd).total_seconds() > STALLED_AFTER:
        return "stalled"
    return state


def logbook_frame(logdb: LogbookDB, variables: VariableSet | None = None) -> pd.DataFrame:
    """The logbook: one row per run, built-in columns then one per variable.

    Variables shown: those of ``variables`` (in file order) or, without it, every variable
    stored. A variable's error goes into the ``errors`` column (``{name: message}``).
    """
    summaries = {r["run"]: r for r in logdb.rundb.runs()}
    progress = {p["run"]: p for p in logdb.progress()}
    notes = logdb.notes()
    stored: dict[str, dict] = {}
    titles: dict[str, str] = {}
    for v in logdb.variables():
        stored.setdefault(v["run"], {})[v["name"]] = v
        titles.setdefault(v["name"], v["title"] or v["name"])
    names = variables.names if variables is not None else list(titles)
    rows = []
    for run in dict.fromkeys([*summaries, *progress]):
        s, p, n = summaries.get(run), progress.get(run), notes.get(run, {})
        seen = (
            p["frames_seen"]
            if p
            else (s["frames"] + s["frames_bad"] + s["frames_skipped"] + s["frames_pending"])
        )

        def pick(k, sk=None, p=p, s=s):
            return p[k] if p and p.get(k) is not None else (s.get(sk or k) if s else None)

        flags = (
            p["flags"]
            if p and p.get("flags") is not None
            else [f["name"] for f in (s or {}).get("flags") or []]
        )
        if s and s.get("flags") and p and p.get("state") != "live":  # the run's full record
            flags = list(dict.fromkeys([*flags, *(f["name"] for f in s["flags"])]))
        row = {
            "run": run,
            "start": (s or {}).get("started") or (p or {}).get("started"),
            "seen": seen,
            "analysed": pick("frames_analysed", "frames"),
            "hits": pick("hits"),
            "hit_rate": pick("hit_rate"),
            "indexing_rate": (p or {}).get("indexing_rate"),
            "d_min": pick("d_min", "d_min_p50"),
            "cell": (p or {}).get("cell"),
            "flags": flags,
            "lag": (p or {}).get("lag"),
            "state": _state(p),
            "trend": sparkline((p or {}).get("trend") or []),
            "comment": n.get("comment") or "",
            "tags": n.get("tags") or [],
        }
        errors = {}
        for name in names:
            v = stored.get(run, {}).get(name)
            row[name] = None if v is None else v["value"]
            if v is not None and v["error"]:
                errors[name] = v["error"]
        row["errors"] = errors
        row["features"] = (p or {}).get("features") or (s or {}).get("features")
        row["link"] = (p or {}).get("link")
        rows.append(row)
    df = pd.DataFrame(rows, columns=[*COLUMNS, *names, "errors", "features", "link"])
    if len(df):
        order = sorted(
            range(len(df)),
            key=lambda i: (
                df["start"].iloc[i] is None or pd.isna(df["start"].iloc[i]),
                df["start"].iloc[i] if isinstance(df["start"].iloc[i], dt.datetime) else now(),
                df["run"].iloc[i],
            ),
        )
        df = df.iloc[order].reset_index(drop=True)
    df.attrs["titles"] = {
        **COLUMNS,
        **{k: titles.get(k, k) for k in names},
        **(variables.titles if variables is not None else {}),
    }
    df.attrs["variables"] = names
    return df


# --------------------------------------------------------------------------- text and export
def cell_text(value, name: str | None = None) -> str:
    """A cell as text (tables, CSV, Markdown): lists joined, floats to 3-4 digits."""
    if value is None or value is pd.NaT or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        if name in ("hit_rate", "indexing_rate"):
            return f"{value:.1%}"
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(cell_text(v) for v in value)
    return str(value)


def text_frame(df: pd.DataFrame, *, errors_in_cells: bool = True) -> pd.DataFrame:
    """The logbook as strings; a variable that raised shows ``error: ...`` in its cell."""
    out = pd.DataFrame(
        {c: [cell_text(v, c) for v in df[c]] for c in df.columns}, columns=df.columns
    )
    if errors_in_cells and "errors" in df:
        for i, errs in enumerate(df["errors"]):
            for name, msg in (errs or {}).items():
                if name in out:
                    out.loc[i, name] = f"error: {msg}"
    return out


def export(df: pd.DataFrame, fmt: str) -> bytes:
    """The logbook as a CSV, Excel (``xlsx``) or Markdown file's bytes."""
    cols = [c for c in df.columns if c not in ("errors", "features", "link")]
    titles = df.attrs.get("titles", {})
    text = text_frame(df)[cols].rename(columns=lambda c: titles.get(c, c))
    if fmt == "csv":
        return text.to_csv(index=False).encode()
    if fmt == "md":
        return (text.to_markdown(index=False) + "\n").encode()
    if fmt == "xlsx":
        import io

        plain = df[cols].copy()
        for i, errs in enumerate(df["errors"] if "errors" in df else ()):
            for name, msg in (errs or {}).items():
                if name in plain:
                    plain[name] = plain[name].astype(object)
                    plain.iloc[i, plain.columns.get_loc(name)] = f"error: {msg}"
        for c in cols:  # Excel takes numbers and text; lists, dicts and times become text
            if (
                plain[c].map(lambda v: isinstance(v, (list, dict, dt.datetime))).any()
                or plain[c].dtype == object
            ):
                plain[c] = [
                    v if isinstance(v, (int, float, bool)) and v is not None else cell_text(v, c)
                    for v in plain[c]
                ]
        buf = io.BytesIO()
        plain.rename(columns=lambda c: titles.get(c, c)).to_excel(
            buf, index=False, sheet_name="logbook", engine="openpyxl"
        )
        return buf.getvalue()
    raise ValueError(f"unknown export format {fmt!r}; use csv, xlsx or md")
