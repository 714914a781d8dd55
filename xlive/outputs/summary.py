"""The figures of a processed run, in one record (for the run database and the report)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from ..conventions import TIMESTAMP
from ..engine.cf import to_seconds
from ._common import aggregates, attr_json, features_dataset, store_status

#: d_min histogram edges (angstrom) stored with each run
D_MIN_EDGES = (0.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0, float("inf"))


def _finite(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


@dataclass
class RunSummary:
    """One run's figures; ``None`` where a figure cannot be known (e.g. no hits, no d_min)."""

    #: key of the run in the database (default: the run's path or URL)
    run: str
    source: str
    features: str
    frames: int
    hits: int
    hit_rate: float | None
    median_spots: float | None
    median_spots_hits: float | None
    frames_bad: int = 0
    frames_skipped: int = 0
    frames_pending: int = 0
    #: d_min percentiles over hits (angstrom)
    d_min_p10: float | None = None
    d_min_p50: float | None = None
    d_min_p90: float | None = None
    #: d_min histogram over hits: {"edges": [...], "counts": [...]} (last edge is inf -> null)
    d_min_hist: dict = field(default_factory=dict)
    #: flags raised: [{"name", "severity", "message"}]
    flags: list = field(default_factory=list)
    #: "green", "amber" or "red"
    status: str = "green"
    #: hits indexing was tried on, and indexed (None: the run was not indexed)
    hits_tried: int | None = None
    hits_indexed: int | None = None
    #: indexed / tried hits, and indexed hits per frame
    indexing_rate: float | None = None
    indexing_rate_frames: float | None = None
    #: median a, b, c (Å), alpha, beta, gamma (deg) of the indexed lattices
    median_cell: list | None = None
    #: indexed hits with two lattices or more
    multi_lattice_hits: int | None = None
    started: dt.datetime | None = None
    ended: dt.datetime | None = None
    processed_at: dt.datetime = field(
        default_factory=lambda: dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    )

    def to_dict(self) -> dict:
        return asdict(self)


def _time(ts: np.ndarray, pick) -> dt.datetime | None:
    ts = ts[np.isfinite(ts) & (ts > 0)]
    if not ts.size:
        return None
    return dt.datetime.fromtimestamp(float(pick(ts)), dt.timezone.utc)


def summarize(
    features: str | Path | xr.Dataset, *, flags=None, run: str | None = None
) -> RunSummary:
    """Figures of a processed run: counts, hit rate, spots, d_min distribution, flags, times.

    Parameters
    ----------
    features
        Feature store (path) or its Dataset.
    flags
        A :class:`~xlive.flags.Flag` list to record instead; default: the flag timeline stored
        with the features (each episode: ``raised_at``, ``cleared_at``, ``worst``), or, when
        the store has none, the rules replayed along the run.
    run
        Database key of the run; default: the run's path (or URL) the store records.
    """
    from ..aggregate.flags import Flag, status
    from ..engine.store import BAD, PENDING, SKIPPED

    ds = features_dataset(features)
    st = store_status(features)
    if st is None:
        st = np.asarray(ds["status"].values) if "status" in ds.coords else np.ones(0)
    source = str(ds.attrs.get("source") or "")
    if source and "://" not in source:
        source = str(Path(source).absolute())
    hit = ds["is_hit"].values.astype(bool) if "is_hit" in ds else np.zeros(ds.sizes["frame"], bool)
    spots = ds["n_spots"].values.astype(float) if "n_spots" in ds else np.zeros(0)
    n = int(ds.sizes["frame"])
    if flags is None:
        # the timeline the live loop recorded with the features, else the rules replayed
        # along the stored frames (same rules, same windows)
        flag_dicts = attr_json(ds, "flag_timeline")
        if not isinstance(flag_dicts, list):
            flag_dicts = aggregates(ds, replay_flags=True)[1].to_list()
    else:
        flag_dicts = [{"name": f.name, "severity": f.severity, "message": f.message} for f in flags]
    flag_dicts = _with_faults(flag_dicts, features, st)
    d_min = ds["d_min"].values[hit] if "d_min" in ds else np.zeros(0)
    d_min = d_min[np.isfinite(d_min)].astype(float)
    counts = (
        np.histogram(d_min, np.asarray(D_MIN_EDGES))[0]
        if d_min.size
        else np.zeros(len(D_MIN_EDGES) - 1, int)
    )
    pct = np.percentile(d_min, [10, 50, 90]) if d_min.size else [np.nan] * 3
    ts = to_seconds(ds[TIMESTAMP].values) if TIMESTAMP in ds.coords else np.zeros(0)
    indexing = _indexing_figures(ds, hit)
    return RunSummary(
        run=run or source or str(attr_json(ds, "features") or ""),
        source=source,
        features=str(Path(features).absolute()) if isinstance(features, (str, Path)) else "",
        frames=n,
        hits=int(hit.sum()),
        hit_rate=_finite(hit.mean()) if n else None,
        median_spots=_finite(np.median(spots)) if spots.size else None,
        median_spots_hits=_finite(np.median(spots[hit])) if hit.any() else None,
        frames_bad=int(np.sum(st == BAD)),
        frames_skipped=int(np.sum(st == SKIPPED)),
        frames_pending=int(np.sum(st == PENDING)) if st.size else 0,
        d_min_p10=_finite(pct[0]),
        d_min_p50=_finite(pct[1]),
        d_min_p90=_finite(pct[2]),
        d_min_hist={
            "edges": [e if np.isfinite(e) else None for e in D_MIN_EDGES],
            "counts": [int(c) for c in counts],
        },
        flags=flag_dicts,
        status=status([Flag(f["name"], f["severity"], f["message"]) for f in flag_dicts]),
        started=_time(ts, np.min),
        ended=_time(ts, np.max),
        **indexing,
    )


def _indexing_figures(ds: xr.Dataset, hit: np.ndarray) -> dict:
    """Indexing rate and median cell of a run processed with indexing ({} otherwise)."""
    if "index_tried" not in ds:
        return {}
    tried = ds["index_tried"].values.astype(bool) & hit
    ok = ds["indexed"].values.astype(bool) & tried
    nlat = ds["n_lattices"].values
    cells = ds["unit_cell"].values[ok].reshape(-1, 6)
    cells = cells[np.isfinite(cells).all(axis=1)]
    rate = ok.sum() / tried.sum() if tried.any() else np.nan
    return {
        "hits_tried": int(tried.sum()),
        "hits_indexed": int(ok.sum()),
        "indexing_rate": _finite(rate),
        "indexing_rate_frames": _finite(rate * hit.mean()) if hit.size else None,
        "median_cell": [round(float(v), 3) for v in np.median(cells, axis=0)]
        if len(cells)
        else None,
        "multi_lattice_hits": int(np.sum(ok & (nlat >= 2))),
    }


def _with_faults(flag_dicts: list[dict], features, status: np.ndarray) -> list[dict]:
    """Add the fault flags the store recorded (unreadable, dropped, refused frames); a store
    with bad frames but no record (an older one) still says how many."""
    from ..aggregate.faults import fault_flags
    from ..engine.store import BAD, FeatureStore

    faults = {}
    if isinstance(features, (str, Path)):
        faults = FeatureStore.open(features).faults()
    n_bad = int(np.sum(status == BAD)) if status is not None else 0
    if n_bad and not faults.get("unreadable"):
        faults["unreadable"] = {"the run": n_bad}
    extra = fault_flags(faults)
    names = {f.name for f in extra}
    return [f for f in flag_dicts if f["name"] not in names] + [
        {"name": f.name, "severity": f.severity, "message": f.message} for f in extra
    ]
