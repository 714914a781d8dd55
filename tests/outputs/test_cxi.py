"""Hits for CrystFEL: the CXI file reads back with plain h5py to the feature store's peaks and
frames, the .geom reads back to the same pixel maps, the .lst names every row."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from xlive.engine.block import Block
from xlive.engine.live import LiveParams, LiveProcessor, default_client
from xlive.engine.store import open_features
from xlive.errors import ConfigError
from xlive.geometry.crystfel import read_crystfel_geom
from xlive.outputs.cxi import CXIHitsListener, CXIHitsWriter, read_cxi_peaks
from xlive.outputs.hits import export_hits, original_events
from xlive.simulate import write_run
from xlive.sources import open_source


@pytest.fixture(scope="module")
def exported(processed, tmp_path_factory):
    out = tmp_path_factory.mktemp("cxi")
    res = export_hits(
        processed.features, out / "hits.cxi", lst=out / "hits.lst", geom=out / "hits.geom"
    )
    return res


def _expected(ds, frame):
    px, py = ds.peak_x.sel(frame=frame).values, ds.peak_y.sel(frame=frame).values
    ok = np.isfinite(px)
    return px[ok], py[ok], ds.peak_intensity.sel(frame=frame).values[ok]


def test_cxi_reads_back_with_h5py_to_the_feature_store(processed, exported):
    ds = open_features(processed.features)
    hit_frames = ds.frame.values[ds.is_hit.values]
    assert exported.hits == len(hit_frames) > 3
    src = open_source(processed.run)
    with h5py.File(exported.cxi, "r") as f:
        data = f["entry_1/data_1/data"]
        assert data.dtype == np.float32 and data.chunks == (1, *data.shape[1:])
        assert data.shape == (len(hit_frames), *src.geometry.shape)
        n_peaks = f["entry_1/result_1/nPeaks"][:]
        xs, ys = f["entry_1/result_1/peakXPosRaw"][:], f["entry_1/result_1/peakYPosRaw"][:]
        inten = f["entry_1/result_1/peakTotalIntensity"][:]
        assert xs.shape == (len(hit_frames), ds.sizes["peak"])
        np.testing.assert_array_equal(f["entry_1/xlive/frame_index"][:], hit_frames)
        for row, frame in enumerate(hit_frames):
            ex, ey, ei = _expected(ds, frame)
            assert n_peaks[row] == len(ex) > 0
            assert n_peaks[row] == min(int(ds.n_spots.sel(frame=frame)), ds.sizes["peak"])
            np.testing.assert_array_equal(xs[row, : n_peaks[row]], ex)
            np.testing.assert_array_equal(ys[row, : n_peaks[row]], ey)
            np.testing.assert_array_equal(inten[row, : n_peaks[row]], ei)
            assert not xs[row, n_peaks[row] :].any()  # unused slots are zero
            np.testing.assert_array_equal(data[row], src.read_frame(int(frame)).astype(np.float32))
        # xlive positions are pixel-centre indices; CrystFEL's default +0.5 completes them
        assert "CrystFEL adds 0.5" in f["entry_1/result_1/peakXPosRaw"].attrs["xlive_convention"]


def test_peaks_sit_on_the_bright_pixels(exported):
    """Positions are array indices (centre of data[i, j] at x=j, y=i), not shifted by 0.5."""
    with h5py.File(exported.cxi, "r") as f:
        n = f["entry_1/result_1/nPeaks"][0]
        x = f["entry_1/result_1/peakXPosRaw"][0, :n]
        y = f["entry_1/result_1/peakYPosRaw"][0, :n]
        img = f["entry_1/data_1/data"][0]
    at = img[np.rint(y).astype(int), np.rint(x).astype(int)]
    assert np.median(at) > 3 * np.median(img[img < 1e9])


def test_lst_names_every_row(exported):
    lines = exported.lst.read_text().splitlines()
    assert lines == [f"{exported.cxi.absolute()} //{k}" for k in range(exported.hits)]


def test_geom_reads_back_to_the_same_pixel_maps(processed, exported):
    geom = open_source(processed.run).geometry
    back = read_crystfel_geom(exported.geom)
    for name in ("q", "d", "two_theta", "lab_x", "lab_y", "lab_z", "panel", "mask"):
        np.testing.assert_allclose(
            getattr(back.maps, name), getattr(geom.maps, name), rtol=1e-12, err_msg=name
        )
    text = exported.geom.read_text()
    assert "data = /entry_1/data_1/data" in text and "peak_list = /entry_1/result_1" in text
    assert "peak_list_type = cxi" in text and "dim0 = %" in text


def test_live_listener_wrote_the_same_hits(processed, exported):
    assert processed.hits_live == exported.hits
    with h5py.File(processed.live_cxi, "r") as live, h5py.File(exported.cxi, "r") as exp:
        order = np.argsort(live["entry_1/xlive/frame_index"][:])  # blocks may finish out of order
        np.testing.assert_array_equal(
            live["entry_1/xlive/frame_index"][:][order], exp["entry_1/xlive/frame_index"][:]
        )
        for k in ("nPeaks", "peakXPosRaw", "peakYPosRaw", "peakTotalIntensity"):
            np.testing.assert_array_equal(
                live["entry_1/result_1"][k][:][order], exp["entry_1/result_1"][k][:], err_msg=k
            )
        np.testing.assert_array_equal(
            live["entry_1/data_1/data"][:][order], exp["entry_1/data_1/data"][:]
        )
    lines = processed.live_lst.read_text().splitlines()
    assert lines == [f"{processed.live_cxi.absolute()} //{k}" for k in range(exported.hits)]


def test_writer_resumes_without_duplicates(processed, tmp_path):
    ds = open_features(processed.features)
    hits = ds.isel(frame=np.flatnonzero(ds.is_hit.values))
    result = Block(
        hits.frame.values,
        np.zeros(hits.sizes["frame"], bool),
        {k: hits[k].values for k in ("peak_x", "peak_y", "peak_intensity")},
    )
    frames = np.zeros((hits.sizes["frame"], 4, 5), np.float32)
    rows = np.arange(hits.sizes["frame"])
    with CXIHitsWriter(tmp_path / "h.cxi", frame_shape=(4, 5), max_peaks=ds.sizes["peak"]) as w:
        assert w.append(frames[:2], result, rows[:2]) == 2
        with h5py.File(tmp_path / "h.cxi", "r") as f:  # readable while the writer lives
            assert f["entry_1/result_1/nPeaks"].shape == (2,)
    with h5py.File(tmp_path / "h.cxi", "a") as f:  # an append killed before frame_index
        f["entry_1/data_1/data"].resize(3, axis=0)
        f["entry_1/result_1/nPeaks"].resize(3, axis=0)
        f["entry_1/xlive/frame_index"].resize(3, axis=0)  # grown, value never written (-1)
    with CXIHitsWriter(tmp_path / "h.cxi", frame_shape=(4, 5), max_peaks=ds.sizes["peak"]) as w:
        assert w.append(frames, result, rows) == len(rows) - 2  # the first two were there
        assert w.n == len(rows)
    with h5py.File(tmp_path / "h.cxi", "r") as f:
        assert f["entry_1/data_1/data"].shape[0] == f["entry_1/result_1/nPeaks"].shape[0]
        np.testing.assert_array_equal(f["entry_1/xlive/frame_index"][:], hits.frame.values)
    with pytest.raises(ConfigError, match="shape"):
        CXIHitsWriter(tmp_path / "h.cxi", frame_shape=(4, 6), max_peaks=ds.sizes["peak"])


def test_no_half_pixel_shift_adds_half_a_pixel(processed, exported, tmp_path):
    res = export_hits(processed.features, tmp_path / "s.cxi", half_pixel_shift=False)
    with h5py.File(res.cxi, "r") as f, h5py.File(exported.cxi, "r") as g:
        n = f["entry_1/result_1/nPeaks"][:]
        for row in range(res.hits):
            np.testing.assert_allclose(
                f["entry_1/result_1/peakXPosRaw"][row, : n[row]],
                g["entry_1/result_1/peakXPosRaw"][row, : n[row]] + 0.5,
            )


def test_existing_output_and_zarr_originals_are_refused(processed, exported):
    with pytest.raises(ConfigError, match="exists"):
        export_hits(processed.features, exported.cxi)
    with pytest.raises(ConfigError, match="CrystFEL cannot read"):
        export_hits(
            processed.features,
            exported.cxi.with_name("z.cxi"),
            lst_original=exported.cxi.with_name("z.lst"),
        )
    assert not exported.cxi.with_name("z.cxi").exists()


def test_original_events_point_into_eiger_data_files(tmp_path):
    run = tmp_path / "eiger"
    write_run(
        run, frames=10, rate=0, fmt="eiger-h5", detector="eiger500k", seed=2, frames_per_file=4
    )
    src = open_source(run)
    src.refresh()
    frames = [0, 3, 4, 9]
    for line, i in zip(original_events(src, frames), frames, strict=True):
        path, event = line.split(" //")
        with h5py.File(path, "r") as f:
            np.testing.assert_array_equal(f["/entry/data/data"][int(event)], src.read_frame(i))


@pytest.mark.slow
def test_listener_follows_a_growing_run(tmp_path):
    """Hits are appended while another process is still writing the run."""
    run = tmp_path / "run"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xlive.cli",
            "simulate",
            str(run),
            "--format",
            "zarr",
            "--frames",
            "24",
            "--rate",
            "15",
            "--detector",
            "eiger500k",
            "--seed",
            "5",
            "--hit-fraction",
            "0.5",
            "-q",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    client = default_client(2)
    try:
        deadline = time.time() + 60
        while not (run / "run.zarr" / "zarr.json").exists():
            assert writer.poll() is None and time.time() < deadline, "the simulator did not start"
            time.sleep(0.05)
        src = open_source(run)
        cxi = tmp_path / "live.cxi"
        with (
            CXIHitsListener(src, cxi) as listener,
            LiveProcessor(
                src,
                tmp_path / "f.zarr",
                client=client,
                listeners=[listener],
                params=LiveParams(block=2, poll_interval=0.1),
            ) as lp,
        ):
            lp.run(until_idle=3.0)
            grew = lp.stats.frames_stored
        assert writer.wait(timeout=60) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        client.close()
        client.cluster.close()
    ds = open_features(tmp_path / "f.zarr")
    assert grew == ds.sizes["frame"] == 24
    peaks = read_cxi_peaks(cxi)
    order = np.argsort(peaks["frame_index"])
    np.testing.assert_array_equal(peaks["frame_index"][order], ds.frame.values[ds.is_hit.values])
    np.testing.assert_array_equal(
        peaks["nPeaks"][order], np.isfinite(ds.peak_x.values[ds.is_hit.values]).sum(axis=1)
    )


def test_original_events_name_image_files(tmp_path):
    run = tmp_path / "cbf"
    write_run(run, frames=4, rate=0, fmt="cbf", detector="eiger500k", seed=3)
    src = open_source(run)
    src.refresh()
    lines = original_events(src, [1, 3])
    assert lines == [str(Path(src.files[i]).absolute()) for i in (1, 3)]
    assert all(line.endswith(".cbf") and " //" not in line for line in lines)
