"""Command-line defects a tired user hits at a beamline, one test each (issue 14)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys

import pytest

from xlive.cli.main import build_parser, main
from xlive.errors import XliveError
from xlive.outputs.rundb import RunDB
from xlive.outputs.summary import RunSummary


def _summary(run: str, *, finished: bool) -> RunSummary:
    t0 = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.timezone.utc)
    return RunSummary(
        run=run,
        source=run,
        features="",
        frames=100 if finished else 0,
        hits=30 if finished else 0,
        hit_rate=0.3 if finished else None,
        median_spots=12.0 if finished else None,
        median_spots_hits=None,
        frames_pending=0 if finished else 50,
        started=t0 if finished else None,
        ended=t0 if finished else None,
    )


def test_runs_lists_a_run_that_never_finished(tmp_path, capsys):
    db = tmp_path / "runs.sqlite"
    with RunDB(db) as rdb:
        rdb.record(_summary("run-done", finished=True))
        rdb.record(_summary("run-unfinished", finished=False))
    assert main(["runs", "--db", str(db)]) == 0  # the logbook view
    assert "run-unfinished" in capsys.readouterr().out
    assert main(["runs", "--all", "--db", str(db)]) == 0  # every column
    out = capsys.readouterr().out
    (line,) = [ln for ln in out.splitlines() if "run-unfinished" in ln]
    assert "-" in line.rsplit("run-unfinished", 1)[1]  # no start, no end: shown as "-"


def test_runs_json_into_a_pipe_closed_early(tmp_path):
    db = tmp_path / "runs.sqlite"
    with RunDB(db) as rdb:  # more JSON than a pipe buffers, so writes meet the closed pipe
        for k in range(300):
            rdb.record(_summary(f"run-{k:04d}-" + "x" * 200, finished=True))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    res = subprocess.run(
        f"{sys.executable} -m xlive.cli runs --all --format json --db {db} | head -n 2",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert res.stdout.startswith("[")
    assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr, res.stderr


def test_serve_on_a_busy_port_says_so():
    from xlive.views.app import serve_session

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(XliveError, match=f"port {port} .* is taken.*--port"):
            serve_session(object(), port=port)  # the page is never built: the port fails first


@pytest.mark.parametrize(
    "option",
    ["--ice-fraction", "--multi-lattice-fraction", "--laser-on-fraction", "--dropped-fraction"],
)
def test_demo_takes_zero_as_zero(option):
    from xlive.cli.process import demo_params

    field = option[2:].replace("-", "_")
    params, _ = demo_params(build_parser().parse_args(["demo", option, "0"]))
    assert getattr(params, field) == 0.0
    default, _ = demo_params(build_parser().parse_args(["demo"]))
    assert getattr(default, field) > 0  # the demo's own default otherwise


def test_export_hits_says_when_peak_lists_are_cut(tmp_path):
    import re

    from xlive_testing import run_xlive

    from xlive.engine.store import open_features
    from xlive.simulate import write_run

    write_run(tmp_path / "run", frames=12, rate=0, detector="eiger500k", seed=4, hit_fraction=0.6)
    (tmp_path / "cfg.toml").write_text("[analyzers.spots]\nmax_peaks = 8\n")
    feats = tmp_path / "f.zarr"
    run_xlive(
        "process",
        str(tmp_path / "run"),
        "--out",
        str(feats),
        "--config",
        str(tmp_path / "cfg.toml"),
        "--no-db",
        "-q",
        "--workers",
        "1",
    )
    ds = open_features(feats)
    spots = ds.n_spots.values[ds.is_hit.values]
    assert (spots > 8).sum() >= 2
    out = run_xlive("export-hits", str(feats), "--cxi", str(tmp_path / "h.cxi")).stdout
    m = re.search(r"(\d+) hits keep 8 of up to (\d+) peaks", out)
    assert m, out
    assert int(m.group(1)) == (spots > 8).sum() and int(m.group(2)) == spots.max()
    assert "max_peaks in [analyzers.spots]" in out
