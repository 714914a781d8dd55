"""The logbook widget (notebook) and the ``/logbook`` page of ``xlive serve``."""

from __future__ import annotations

import signal
import sys
import time
import urllib.request

import pytest

from xlive.outputs.logbook_db import LogbookDB
from xlive.views.app import free_port


def test_widget_follows_the_database_and_writes_comments(tmp_path):
    import openpyxl

    from xlive import Logbook

    db = tmp_path / "bt.sqlite"
    with LogbookDB(db) as logdb:
        logdb.set_progress(
            "r1",
            frames_seen=10,
            frames_analysed=8,
            hits=2,
            hit_rate=0.25,
            trend=[0.0, 0.5],
            state="live",
        )
    w = Logbook(db, interval=0.2)  # no running event loop here: update() by hand
    try:
        assert list(w.rows["run"]) == ["r1"] and w.view.source.data["analysed"] == [8.0]
        assert not w.update()  # nothing changed
        with LogbookDB(db) as logdb:
            logdb.set_progress("r1", frames_analysed=10, hits=3, state="finished")
            logdb.set_progress("r2", frames_seen=5, frames_analysed=5, state="live")
        assert w.update()
        data = w.view.source.data
        assert data["run"] == ["r1", "r2"] and data["analysed"] == [10.0, 5.0]
        assert data["state"] == ["finished", "live"] and data["trend"][0] == "▁█"
        # a comment typed in the table (a patch of its source, as BokehJS sends it)
        w.view.source.patch({"comment": [(1, "no jet")], "tags": [(1, "bad, jet")]})
        with LogbookDB(db) as logdb:
            note = logdb.notes()["r2"]
        assert note["comment"] == "no jet" and note["tags"] == ["bad", "jet"]
        # the form of the selected run
        w.view.source.selected.indices = [0]
        assert w.view.note_comment.value == "" and w.view.note_run.value == "r1"
        w.view.note_comment.value, w.view.note_tags.value = "fine", "lyso"
        w.view._save_note()
        with LogbookDB(db) as logdb:
            assert logdb.notes()["r1"]["comment"] == "fine"
        assert w.view.source.data["comment"] == ["fine", "no jet"]
        # a read-only cell typed over is put back
        w.view.source.patch({"hits": [(0, 99.0)]})
        assert w.update()  # (the refresh task does this in a notebook)
        assert w.view.source.data["hits"][0] == 3.0
        # filter and export
        w.view.filter.value = "jet"
        assert w.view.shown_runs() == ["r2"]  # (the source keeps every row: the view hides)
        w.export(tmp_path / "shown.xlsx")
        sheet = openpyxl.load_workbook(tmp_path / "shown.xlsx").active
        assert [c.value for c in sheet["A"]] == ["Run", "r2"]
        w.view.filter.value = "analysed > 6"
        assert w.view.shown_runs() == ["r1"]
        # across runs: a column against a column
        w.view.filter.value = ""
        w.view.xsel.value, w.view.ysel.value = "seen", "analysed"
        assert w.view.scatter_source.data["x"] == [10.0, 5.0]
        assert w.view.scatter_source.data["y"] == [10.0, 5.0]
    finally:
        w.close()


@pytest.mark.slow
def test_serve_records_the_run_and_serves_the_logbook(tmp_path, finished_run, process):
    db = tmp_path / "bt.sqlite"
    (tmp_path / "v.py").write_text(
        "import xlive\n\n@xlive.run_variable(cheap=True)\n"
        "def n_frames(ds):\n    return int(ds.sizes['frame'])\n"
    )
    port = free_port()
    server = process(
        [
            sys.executable,
            "-m",
            "xlive.cli",
            "serve",
            str(finished_run),
            "--port",
            str(port),
            "--db",
            str(db),
            "--variables",
            str(tmp_path / "v.py"),
        ]
    )
    t_end = time.time() + 60
    line = ""
    while "serving" not in line:
        line = server.stdout.readline()
        assert line or server.poll() is None, "xlive serve exited"
        assert time.time() < t_end, "xlive serve did not start within 60 s"
    base = f"http://127.0.0.1:{port}"
    assert "xlive logbook" in urllib.request.urlopen(base + "/logbook", timeout=30).read().decode()
    key = str(finished_run.absolute() / "run.zarr")

    def row():
        with LogbookDB(db) as logdb:
            return next((p for p in logdb.progress() if p["run"] == key), None)

    t_end = time.time() + 120
    while not (r := row()) or r["frames_analysed"] < 80:
        assert time.time() < t_end, f"the live row did not reach 80 frames: {r}"
        time.sleep(0.5)
    assert r["state"] == "live" and r["link"] == base + "/"
    with LogbookDB(db) as logdb:  # the cheap variable, computed live
        live = [v for v in logdb.variables() if v["run"] == key]
    assert live and live[0]["live"] and 0 < live[0]["value"] <= 80
    csv = urllib.request.urlopen(base + "/logbook/export.csv", timeout=30).read().decode()
    assert "run.zarr" in csv and ",live," in csv
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=60)
    with LogbookDB(db) as logdb:
        (var,) = [v for v in logdb.variables() if v["run"] == key]
        runs = logdb.rundb.runs()
    assert row()["state"] == "finished" and var["value"] == 80 and not var["live"]
    assert [r["run"] for r in runs] == [key] and runs[0]["frames"] == 80
