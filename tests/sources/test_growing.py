"""A writer process and a reader overlap: the reader sees every frame once, in order, complete."""

from __future__ import annotations

import time
from pathlib import Path

import fabio
import h5py
import hdf5plugin  # noqa: F401
import numpy as np
import pytest
import zarr

from xlive.errors import SourceError
from xlive.simulate.write_swmr import frame_value
from xlive.sources import open_source
from xlive.sources.stream.sender import synthetic_frames

from .conftest import free_port, start_python

pytestmark = pytest.mark.slow


def watch(target, proc, *, timeout: float = 60.0, **options):
    """Poll like the live loop; read each new frame exactly once. Returns (source, frames, overlap)."""
    src, seen, overlap = None, [], False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = proc.poll() is not None
        if src is None:
            try:
                src = open_source(target, **options)
            except SourceError:
                if done:
                    raise
                time.sleep(0.05)
                continue
        n = src.refresh()
        if n > len(seen):
            overlap |= proc.poll() is None
            seen.extend(src.frames()[len(seen) : n].values)  # only the new frames
        if done and src.refresh() == len(seen):
            break
        time.sleep(0.03)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return src, np.stack(seen), overlap


def simulate(out: Path, fmt: str, frames: int, rate: float, detector: str, **kw):
    extra = "".join(f", {k}={v!r}" for k, v in kw.items())
    return start_python(
        [
            "-c",
            f"from xlive.simulate import write_run; write_run({str(out)!r}, "
            f"frames={frames}, rate={rate}, fmt={fmt!r}, detector={detector!r}"
            f"{extra})",
        ]
    )


def test_zarr_run_grows(tmp_path):
    proc = simulate(tmp_path / "run", "zarr", 30, 30, "eiger500k")
    src, seen, overlap = watch(tmp_path / "run", proc)
    assert overlap, "the reader never saw the run while it was being written"
    g = zarr.open_group(str(tmp_path / "run" / "run.zarr"), mode="r")
    n = g.attrs["frames_complete"]
    np.testing.assert_array_equal(seen, g["frames"][:n])
    fn = src.frames().frame_number.values
    assert (np.diff(fn) > 0).all()


def test_eiger_master_data_files_appear(tmp_path):
    proc = simulate(tmp_path / "run", "eiger-h5", 30, 30, "eiger500k", frames_per_file=6)
    src, seen, overlap = watch(tmp_path / "run", proc)
    assert overlap and type(src).__name__ == "EigerSource"
    expected = []
    for path in sorted((tmp_path / "run").glob("run_data_*.h5")):
        with h5py.File(path, "r") as f:
            expected.extend(f["/entry/data/data"][()])
    np.testing.assert_array_equal(seen, np.stack(expected))
    assert len(seen) == src.n_frames and not src.bad_frames
    assert np.isfinite(src.frames().timestamp.values).all()  # side table joined


def test_cbf_series_with_half_written_files(tmp_path):
    proc = simulate(tmp_path / "run", "cbf", 20, 25, "pilatus300k")
    src, seen, overlap = watch(tmp_path / "run", proc)
    assert overlap
    files = sorted((tmp_path / "run").glob("run_*.cbf"))
    np.testing.assert_array_equal(seen, np.stack([fabio.open(str(p)).data for p in files]))


def test_cbf_newest_file_half_written_is_retried(tmp_path, realdata):
    """A truncated newest CBF is not counted; once complete it is (never a crash, never bad)."""
    src_file = next((realdata / "pilatus6M_thaumatin_grid").glob("*.cbf.bz2"))
    data = fabio.open(str(src_file)).data[:300, :400].copy()
    for i in range(2):
        fabio.cbfimage.CbfImage(data=data + i).write(str(tmp_path / f"img_{i:03d}.cbf"))
    whole = (tmp_path / "img_001.cbf").read_bytes()
    (tmp_path / "img_001.cbf").write_bytes(whole[: len(whole) // 2])
    src = open_source(tmp_path / "*.cbf")
    assert src.refresh() == 1 and not src.bad_frames
    (tmp_path / "img_001.cbf").write_bytes(whole)
    assert src.refresh() == 2 and not src.bad_frames
    np.testing.assert_array_equal(src.read_frame(1), data + 1)


def test_swmr_file_grows(tmp_path):
    out, ready = tmp_path / "swmr.h5", tmp_path / "ready"
    proc = start_python(
        [
            "-m",
            "xlive.simulate.write_swmr",
            str(out),
            "--frames",
            "40",
            "--rate",
            "40",
            "--shape",
            "48",
            "64",
            "--ready",
            str(ready),
        ]
    )
    t0 = time.monotonic()
    while not ready.exists() and time.monotonic() - t0 < 30:
        time.sleep(0.02)
    src, seen, overlap = watch(out, proc)
    assert overlap and len(seen) == 40
    np.testing.assert_array_equal(seen, np.stack([frame_value(i, (48, 64)) for i in range(40)]))


@pytest.mark.network
def test_stream_frames_reach_the_spool(tmp_path):
    port = free_port()
    proc = start_python(
        [
            "-m",
            "xlive.sources.stream.sender",
            "--bind",
            f"tcp://127.0.0.1:{port}",
            "--synthetic",
            "eiger500k",
            "--frames",
            "60",
            "--rate",
            "60",
            "--distinct",
            "5",
            "--timeout",
            "20",
        ]
    )
    src, seen, overlap = watch(f"tcp://127.0.0.1:{port}", proc, spool=tmp_path / "spool.zarr")
    # the receiver publishes at the end of the series; wait for the last count
    t0 = time.monotonic()
    while src.refresh() < 60 and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    if len(seen) < src.n_frames:
        seen = np.concatenate([seen, src.frames()[len(seen) :].values])
    src.close()
    assert overlap and len(seen) == 60
    frames = synthetic_frames("eiger500k", 5, 0)
    np.testing.assert_array_equal(seen, np.stack([frames[i % 5] for i in range(60)]))
    np.testing.assert_array_equal(src.frames().frame_number.values, np.arange(60))


def test_group_being_created_waits_for_its_frames_array(tmp_path):
    import threading

    g = zarr.open_group(str(tmp_path / "r.zarr"), mode="w")  # the writer has only begun

    def create_later():
        a = g.create_array(
            "frames", shape=(2, 12, 10), chunks=(1, 12, 10), dtype="uint16", fill_value=0
        )
        a[...] = 7

    timer = threading.Timer(0.5, create_later)
    timer.start()
    try:
        src = open_source(tmp_path / "r.zarr")
        assert src.refresh() == 2 and (src.read_frame(1) == 7).all()
    finally:
        timer.join()
