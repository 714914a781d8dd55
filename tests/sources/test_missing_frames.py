"""Unreadable and missing frames are counted and shown, never green: a truncated Eiger data file
("10 frames unreadable in data file 2"), a Zarr chunk lost from a run that has moved past it
(a missing frame, not zeros)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xlive.aggregate.faults import fault_flags, run_faults
from xlive.errors import BadFrameError
from xlive.sources import open_source


def simulate(out: Path, fmt: str, frames: int, **kw) -> None:
    args = [
        sys.executable,
        "-m",
        "xlive.cli",
        "simulate",
        str(out),
        "--format",
        fmt,
        "--frames",
        str(frames),
        "--rate",
        "0",
        "--detector",
        "eiger500k",
        "-q",
    ]
    for k, v in kw.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    subprocess.run(args, check=True, capture_output=True, timeout=300)


def test_missing_zarr_chunk_is_a_bad_frame_not_zeros(tmp_path):
    simulate(tmp_path / "run", "zarr", 6)
    group = tmp_path / "run" / "run.zarr"
    chunk = group / "frames" / "c" / "2" / "0" / "0"
    assert chunk.exists()
    chunk.unlink()  # lost (a disk error, a copy that missed it): the run has 6 frames
    src = open_source(str(group))
    assert src.refresh() == 6
    with pytest.raises(BadFrameError, match="missing"):
        src.read_frame(2)
    block = src.reader.read_block(0, 6)
    assert src.reader.bad == {2} and not block[2].any() and block[3].any()
    faults = run_faults(src, [2])
    assert faults["unreadable"] == {"the run": 1}
    assert "1 frame unreadable in the run" in fault_flags(faults)[0].message


@pytest.mark.slow
def test_truncated_data_file_shows_in_process_output_and_summary(tmp_path):
    run = tmp_path / "run"
    simulate(run, "eiger-h5", 20, frames_per_file=10)
    data2 = run / "run_data_000002.h5"
    data2.write_bytes(data2.read_bytes()[: data2.stat().st_size // 2])  # truncated to half
    out = tmp_path / "f.zarr"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "xlive.cli",
            "process",
            str(run / "run_master.h5"),
            "--out",
            str(out),
            "--no-db",
            "-q",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "10 frames unreadable in data file 2 (run_data_000002.h5)" in r.stdout, r.stdout
    from xlive.engine.store import BAD, FeatureStore
    from xlive.outputs.summary import summarize

    store = FeatureStore.open(out)
    status = store.status()
    assert np.sum(status == BAD) == 10 and np.all(status[10:] == BAD)
    assert store.faults()["unreadable"] == {"data file 2 (run_data_000002.h5)": 10}
    s = summarize(out)
    assert s.status != "green" and s.frames_bad == 10
    assert any(f["name"] == "frames_unreadable" for f in s.flags)
