"""The run database: one row per run, updated when processed again, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pytest
import xarray as xr
import zarr
from xlive_testing import run_xlive

from xlive.aggregate.flags import Flag, evaluate
from xlive.engine.store import open_features
from xlive.outputs._common import aggregates
from xlive.outputs.rundb import RunDB, RunDBError, db_url, default_db, record_run


def _check_round_trip(db, processed):
    ds = open_features(processed.features)
    s = record_run(db, processed.features)
    with RunDB(db) as rdb:
        rows = rdb.runs()
    assert len(rows) == 1
    row = rows[0]
    assert row["run"] == s.run == str(processed.run.absolute() / "run.zarr")
    assert row["frames"] == ds.sizes["frame"] and row["hits"] == int(ds.is_hit.sum())
    assert row["hit_rate"] == pytest.approx(float(ds.is_hit.mean()))
    assert row["median_spots"] == pytest.approx(float(np.median(ds.n_spots.values)))
    assert row["d_min_p50"] == pytest.approx(
        float(np.median(ds.d_min.values[ds.is_hit.values])), rel=1e-6
    )
    assert sum(row["d_min_hist"]["counts"]) == int(ds.is_hit.sum())
    # timestamps are datetime64 (UTC): the run started at the earliest
    t0 = ds.timestamp.min().values.astype("datetime64[us]").item().replace(tzinfo=dt.timezone.utc)
    assert abs((row["started"] - t0).total_seconds()) < 1e-3
    assert row["ended"] >= row["started"] and row["times_processed"] == 1

    # processed again (with a flag raised live): the row is updated, not duplicated
    flag = Flag("ice_rings", "warning", "Ice rings in 40% of recent frames.")
    record_run(db, processed.features, flags=[flag])
    record_run(db, processed.features, run="other-run")
    with RunDB(db) as rdb:
        rows = rdb.runs()
        again = rdb.get(s.run)
    assert [r["run"] for r in rows] == [s.run, "other-run"]
    assert again["id"] == row["id"] and again["times_processed"] == 2
    assert again["flags"] == [{"name": "ice_rings", "severity": "warning", "message": flag.message}]
    assert again["status"] == "amber"
    return rows


def test_sqlite_file_holds_one_row_per_run(processed, tmp_path):
    db = tmp_path / "runs.sqlite"
    _check_round_trip(db, processed)
    assert db_url(db) == f"sqlite:///{db.absolute()}"


def test_runs_command_prints_them(processed, tmp_path):
    db = tmp_path / "runs.sqlite"
    run_xlive("record", str(processed.features), "--db", str(db))
    run_xlive("record", str(processed.features), "--db", str(db))  # no second row
    run_xlive("record", str(processed.features), "--db", str(db), "--run", "r0042")
    out = run_xlive("runs", "--db", str(db)).stdout
    lines = out.strip().splitlines()
    assert len(lines) == 3 and lines[0].split()[:5] == ["run", "start", "seen", "analysed", "hits"]
    assert str(processed.run / "run.zarr") in lines[1] and "r0042" in lines[2]
    assert f" {open_features(processed.features).sizes['frame']} " in lines[1]
    csv = run_xlive("runs", "--db", str(db), "--format", "csv", "--all").stdout
    assert csv.splitlines()[0].startswith("id,run,source,features,frames,hits")
    assert csv.count("\n") == 3


def test_default_database_needs_no_server(processed, tmp_path, monkeypatch):
    monkeypatch.setenv("XLIVE_DB", str(tmp_path / "sub" / "default.sqlite"))
    assert default_db() == tmp_path / "sub" / "default.sqlite"
    record_run(None, processed.features)
    assert (tmp_path / "sub" / "default.sqlite").exists()
    assert "run.zarr" in run_xlive("runs").stdout  # the child inherits XLIVE_DB


def test_bad_url_says_how_to_fix():
    with pytest.raises(RunDBError, match="SQLAlchemy URL"):
        RunDB("nosuchdialect://x/y")
    with pytest.raises(RunDBError, match="cannot reach"):
        RunDB("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")


def test_record_counts_bad_and_skipped_frames(processed, tmp_path):
    copy = tmp_path / "f.zarr"
    shutil.copytree(processed.features, copy)
    status = zarr.open_array(str(copy / "status"), mode="r+")
    status[0], status[1] = 2, 3
    s = record_run(tmp_path / "r.sqlite", copy)
    assert (s.frames_bad, s.frames_skipped) == (1, 1)
    assert s.frames == open_features(processed.features).sizes["frame"] - 2


@pytest.mark.slow
def test_postgresql_holds_one_row_per_run(processed, postgres_url):
    rows = _check_round_trip(postgres_url, processed)
    assert rows[0]["started"].tzinfo is not None
    out = run_xlive("runs", "--db", postgres_url).stdout
    assert "other-run" in out and str(processed.run / "run.zarr") in out


def test_flags_raised_along_the_run_are_kept(tmp_path):
    """A jet lost mid-run and recovered is still a flag of the run (the rules are replayed)."""
    n = 300
    jet = np.ones(n, np.float32)
    jet[100:200] = 0.05
    ds = xr.Dataset(
        {
            "jet_score": ("frame", jet),
            "is_hit": ("frame", np.arange(n) % 3 == 0),
            "n_spots": ("frame", np.arange(n) % 7),
        },
        coords={"frame": np.arange(n), "status": ("frame", np.ones(n, np.uint8))},
    )
    s = record_run(tmp_path / "r.sqlite", ds, run="jet-run")
    (flag,) = [f for f in s.flags if f["name"] == "jet_lost"]
    assert 100 <= flag["first_frame"] < 200 and s.status == "red"  # raised during the loss
    assert "jet_lost" not in {f.name for f in evaluate(aggregates(ds))}  # gone at the end
    with RunDB(tmp_path / "r.sqlite") as rdb:
        assert rdb.get("jet-run")["flags"][0]["name"] == "jet_lost"
