"""Start before the run: a source that waits for its target, the end of a run from its marker
or its cadence, an Eiger master's missing data files named, its side table picked up."""

from __future__ import annotations

import time

import pytest
from xlive_testing import run_xlive

from xlive.engine.run_clock import RunClock
from xlive.errors import SourceError
from xlive.simulate import write_run
from xlive.sources import open_source
from xlive.sources.pending import PendingSource


def test_pending_source_waits_then_opens(tmp_path):
    run = tmp_path / "run"
    src = PendingSource(run)
    assert src.refresh() == 0 and src.waiting and src.finished is False
    assert src.waiting_for == f"waiting for {run} to appear"
    run.mkdir()  # a folder with nothing readable yet: still waiting, saying why
    assert src.refresh() == 0 and "waiting for" in src.waiting_for
    write_run(tmp_path / "w", frames=6, rate=0, detector="eiger500k")
    (tmp_path / "w").rename(tmp_path / "run2")
    src2 = PendingSource(tmp_path / "run2")
    assert src2.refresh() == 6 and not src2.waiting and src2.finished is True
    assert src2.geometry.shape == (512, 1028) and src2.read_frame(5).shape == (512, 1028)
    assert src2.metadata()["timestamp"].shape == (6,)


def test_pending_source_timeout_says_what_never_appeared(tmp_path):
    src = PendingSource(tmp_path / "nothing.zarr", timeout=0.2)
    assert src.refresh() == 0
    time.sleep(0.3)
    with pytest.raises(SourceError, match="nothing.zarr did not appear within 0.2 s.*--timeout"):
        src.refresh()


def test_run_clock_learns_the_cadence():
    clock = RunClock(min_idle=1.0, factor=3.0)
    for t, n in ((0, 100), (4, 200), (8, 300)):  # a data file of 100 frames every 4 s
        clock.observe(n, now=t)
    assert clock.idle_time == 12.0
    assert not clock.is_over(None, now=8 + 5)  # 5 s without a file is not the end
    assert clock.is_over(None, now=8 + 12.5) and clock.finished_at == 20.5
    assert not clock.is_over(False, now=1000)  # an end marker saying "not yet" wins
    assert clock.is_over(True, now=1001)


@pytest.fixture(scope="module")
def eiger_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("eiger") / "run"
    write_run(
        run,
        frames=30,
        rate=0,
        fmt="eiger-h5",
        frames_per_file=10,
        detector="eiger500k",
        laser_on_fraction=0.5,
    )
    return run


def test_eiger_master_picks_up_the_side_table_beside_it(eiger_run):
    src = open_source(eiger_run / "run_master.h5")  # the master itself, not the run folder
    assert src.refresh() == 30 and src.finished is True
    meta = src.metadata()
    assert {"laser_on", "timestamp"} <= set(meta) and meta["laser_on"].any()


def test_missing_data_files_are_named(eiger_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(eiger_run, copy)
    (copy / "run_data_000003.h5").unlink()
    src = open_source(copy / "run_master.h5")
    assert src.refresh() == 20 and src.finished is False
    assert [p.rsplit("/", 1)[1] for p in src.missing_files()] == ["run_data_000003.h5"]
    assert src.waiting_for == "waiting for data file run_data_000003.h5"
    res = run_xlive(
        "process",
        str(copy / "run_master.h5"),
        "--out",
        str(tmp_path / "f.zarr"),
        "--no-db",
        "-q",
        check=False,
    )
    assert res.returncode == 2 and "run_data_000003.h5" in res.stderr and "--live" in res.stderr
    assert "Traceback" not in res.stderr
