"""The logbook tables on SQLite and on a real PostgreSQL server: live rows written by several
processes at once, notes that survive reprocessing, variables, the joined table and exports."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap

import numpy as np
import openpyxl
import pandas as pd
import pytest

from xlive.engine.store import open_features
from xlive.outputs.logbook import (
    export,
    fill_missing_rows,
    logbook_frame,
    refresh_variables,
    sparkline,
    trend,
)
from xlive.outputs.logbook_db import LogbookDB, parse_tags
from xlive.outputs.rundb import record_run
from xlive.outputs.variables import load_variables

# a separate process writing its run's live row many times (like `xlive process --live`)
WRITER = textwrap.dedent("""
    import sys
    from xlive.outputs.logbook_db import LogbookDB
    db, run = sys.argv[1], sys.argv[2]
    with LogbookDB(db) as logdb:
        for i in range(40):
            logdb.set_progress(run, frames_seen=i + 1, frames_analysed=i, hits=i // 2,
                               hit_rate=0.5, trend=[0.5] * (i % 5), state="live")
            logdb.set_note("shared-run", tags=[run])
        logdb.set_progress(run, state="finished")
""")


def _check_logbook(db, processed, tmp_path):
    key = str(processed.run.absolute() / "run.zarr")
    record_run(db, processed.features)
    with LogbookDB(db) as logdb:
        logdb.set_note(key, comment="first sample, jet stable", tags="lysozyme, chip3 chip3")
        logdb.set_note(key, tags=["lysozyme", "good"])  # the comment stays
        assert fill_missing_rows(logdb) == [key]
        assert fill_missing_rows(logdb) == []

    # runs processed again never lose their notes
    record_run(db, processed.features)
    with LogbookDB(db) as logdb:
        logdb.set_progress(key, frames_analysed=3, state="live")
        logdb.set_progress(key, state="finished", frames_analysed=32)
        note = logdb.notes()[key]
    assert note["comment"] == "first sample, jet stable" and note["tags"] == ["lysozyme", "good"]

    # several processes write their rows at once
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), f"proc-{i}"], stderr=subprocess.PIPE, text=True
        )
        for i in range(3)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()

    vars_py = tmp_path / "vars.py"
    vars_py.write_text(
        "import xlive\n\n@xlive.run_variable(title='Hits')\n"
        "def n_hits(ds):\n    return int(ds.is_hit.sum())\n"
    )
    vs = load_variables(vars_py)
    with LogbookDB(db) as logdb:
        assert refresh_variables(logdb, vs) == [key]  # the others have no feature store
        df = logbook_frame(logdb, vs)
    rows = {r["run"]: r for r in df.to_dict(orient="records")}
    assert set(rows) == {key, "proc-0", "proc-1", "proc-2"}
    ds = open_features(processed.features)
    assert rows[key]["n_hits"] == int(ds.is_hit.sum()) == rows[key]["hits"]
    assert rows[key]["seen"] == ds.sizes["frame"] and rows[key]["analysed"] == 32
    assert rows[key]["comment"] == "first sample, jet stable"
    assert rows[key]["trend"] and rows[key]["state"] == "finished"
    for i in range(3):
        r = rows[f"proc-{i}"]
        assert (r["seen"], r["analysed"], r["state"]) == (40, 39, "finished")
        assert pd.isna(r["n_hits"])
    return df


def test_logbook_on_sqlite(processed, tmp_path):
    df = _check_logbook(tmp_path / "runs.sqlite", processed, tmp_path)
    md = export(df, "md").decode()
    assert md.splitlines()[0].startswith("| Run") and "first sample, jet stable" in md
    csv = export(df, "csv").decode()
    assert csv.splitlines()[0].split(",")[:3] == ["Run", "Start", "Seen"]
    sheet = openpyxl.load_workbook(io.BytesIO(export(df, "xlsx"))).active
    cells = [[c.value for c in r] for r in sheet.iter_rows()]
    assert len(cells) == 1 + len(df) and "Hits" in cells[0]
    col = cells[0].index("Seen")
    assert sorted(r[col] for r in cells[1:]) == sorted(df["seen"])  # numbers stay numbers


@pytest.mark.slow
def test_logbook_on_postgresql(processed, postgres_url, tmp_path):
    import sqlalchemy as sa
    from xlive_testing import run_xlive

    # a database of its own (other tests share the server)
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("CREATE DATABASE xlive_logbook"))
    admin.dispose()
    url = postgres_url.rsplit("/", 1)[0] + "/xlive_logbook"
    _check_logbook(url, processed, tmp_path)
    out = json.loads(run_xlive("runs", "--db", url, "--format", "json").stdout)
    assert {r["run"] for r in out} >= {"proc-0", "proc-1", "proc-2"}


def test_trend_and_sparkline():
    x = np.r_[np.ones(10), np.zeros(10), np.full(10, np.nan), np.ones(10) * 0.5]
    t = trend(x, bins=4)
    assert t == [1.0, 0.0, None, 0.5]
    assert sparkline(t) == "█▁ ▅"
    assert sparkline([0.0, 0.0]) == "▁▁" and sparkline([]) == ""
    assert parse_tags("a, b  a,c") == ["a", "b", "c"]


def test_indexing_rate_and_median_cell_when_the_features_have_them():
    from xlive.outputs.logbook import figures

    hit = np.array([1, 1, 1, 1, 0, 0], bool)
    indexed = np.array([1, 1, 0, 1, 0, 0], bool)
    cell = np.full((6, 2, 6), np.nan)
    cell[[0, 1, 3], 0] = [
        [79, 79, 38, 90, 90, 90],
        [80, 80, 37, 90, 90, 90],
        [78, 81, 38, 90, 90, 91],
    ]
    cell[1, 1] = [10, 10, 10, 60, 60, 60]  # a second lattice does not count
    d_min = np.array([2.0, 3.0, np.nan, 1.0, 9.0, 9.0])
    f = figures(hit, d_min, indexed, cell)
    assert f["indexing_rate"] == 0.75 and f["hit_rate"] == 4 / 6
    assert f["cell"] == [79.0, 80.0, 38.0, 90.0, 90.0, 90.0]
    assert f["d_min"] == 2.0  # median over hits with a d_min
    assert figures(hit, None, None, None)["indexing_rate"] is None
