"""European XFEL inputs: extra-data runs (mock files from extra-data's own writers, filled with
simulated diffraction) and the Karabo bridge stream from the package's own servers."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import numpy as np
import pytest

pytest.importorskip("extra_data")
pytest.importorskip("karabo_bridge")

from analyzers.conftest import recall_precision  # noqa: E402
from sources.conftest import free_port  # noqa: E402

from xlive.analyzers import FrameAnalyzer  # noqa: E402
from xlive.errors import GeometryError, SourceError  # noqa: E402
from xlive.geometry.crystfel import read_crystfel_geom  # noqa: E402
from xlive.simulate.write_euxfel import write_euxfel_run  # noqa: E402
from xlive.sources import open_source  # noqa: E402


@pytest.fixture(scope="module")
def agipd_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("exfel")
    run = root / "SPB" / "202601" / "p700000" / "raw" / "r0001"
    sim = write_euxfel_run(
        run,
        detector="agipd1m",
        trains=3,
        pulses=3,
        seed=1,
        hit_fraction=1.0,
        crystal_strength=300.0,
    )
    return root, run, sim


def test_extra_data_run_reads_frames_with_train_and_pulse_ids(agipd_run):
    root, run, sim = agipd_run
    src = open_source(run, geometry=read_crystfel_geom(run.with_suffix(".geom")))
    assert type(src).__name__ == "ExtraDataSource" and src.detector == "SPB_DET_AGIPD1M-1"
    assert src.refresh() == 9
    np.testing.assert_array_equal(src.read_frame(4), sim.frame(4)[0])
    meta = src.metadata()
    assert meta["train_id"].tolist() == [10000] * 3 + [10001] * 3 + [10002] * 3
    assert meta["pulse_id"].tolist() == [0, 1, 2] * 3
    frames = src.frames()
    assert frames.coords["train_id"].values[5] == 10001
    # the simulated diffraction is found where the truth has it
    out = FrameAnalyzer(src.geometry)(frames[:3].values)
    peaks = [np.stack([out["peak_x"][k], out["peak_y"][k]], 1) for k in range(3)]
    peaks = [p[np.isfinite(p[:, 0])] for p in peaks]
    recall, precision, n = recall_precision(peaks, [sim.frame(i)[1] for i in range(3)])
    assert n > 100 and recall >= 0.9 and precision >= 0.97, (recall, precision)


def test_extra_geom_default_layout_is_a_placeholder(agipd_run):
    extra_geom = pytest.importorskip("extra_geom")
    _, run, _ = agipd_run
    with pytest.raises(GeometryError, match="--geometry"):
        open_source(run).geometry  # noqa: B018
    g = open_source(run, distance=0.2, wavelength=1.3).geometry
    assert "--geometry" in g.placeholder
    eg = extra_geom.AGIPD_1MGeometry.from_quad_positions(
        [(-525, 625), (-550, -10), (520, -160), (542.5, 475)]
    )
    pos = eg.get_pixel_positions()
    ours = np.stack([g.maps.lab_x, g.maps.lab_y], -1).reshape(16, 512, 128, 2)
    np.testing.assert_allclose(ours, pos[..., :2], rtol=0, atol=1e-6)


def test_bad_xfel_inputs_say_what_to_do(tmp_path, agipd_run):
    _, run, _ = agipd_run
    with pytest.raises(SourceError, match="no detector 'NOPE'"):
        open_source(run, detector="NOPE")
    # raw (uncalibrated) data are refused with the way out
    from extra_data.tests.mockdata import write_file
    from extra_data.tests.mockdata.detectors import AGIPDModule

    raw = tmp_path / "raw"
    raw.mkdir()
    for m in range(2):
        write_file(
            str(raw / f"RAW-R0002-AGIPD{m:02}-S00000.h5"),
            [AGIPDModule(f"SPB_DET_AGIPD1M-1/DET/{m}CH0", frames_per_train=2)],
            ntrains=2,
            chunksize=2,
            format_version="1.0",
        )
    with pytest.raises(SourceError, match="raw .*proc"):
        open_source(raw)


def _serve_run(root, port):
    exe = shutil.which("karabo-bridge-serve-run")
    env = {**os.environ, "EXTRA_DATA_DATA_ROOT": str(root)}
    return subprocess.Popen(
        [
            exe,
            "700000",
            "1",
            "--port",
            f"tcp://127.0.0.1:{port}",
            "-z",
            "PUSH",
            "--append-detector-modules",
            "--include",
            "SPB_DET_AGIPD1M-1/DET/*",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.network
def test_karabo_bridge_replayed_run_is_spooled_with_ids(agipd_run, tmp_path):
    root, run, sim = agipd_run
    port = free_port()
    proc = _serve_run(root, port)
    try:
        src = open_source(
            f"karabo://127.0.0.1:{port}",
            spool=tmp_path / "k.zarr",
            geometry=read_crystfel_geom(run.with_suffix(".geom")),
            wait=60,
        )
        deadline = time.monotonic() + 60
        while src.refresh() < 9 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert src.n_frames == 9
        meta = src.metadata()
        assert meta["train_id"].tolist() == [10000] * 3 + [10001] * 3 + [10002] * 3
        assert meta["pulse_id"].tolist() == [0, 1, 2] * 3
        np.testing.assert_array_equal(src.read_frame(7), sim.frame(7)[0])
        assert src.receiver.lost == 0 and src.geometry.gain == pytest.approx(sim.geometry.gain)
        src.close()
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.network
def test_karabo_bridge_simulator_online_layout(tmp_path):
    port = free_port()
    exe = shutil.which("karabo-bridge-server-sim")
    proc = subprocess.Popen(
        [exe, str(port), "-z", "PUSH", "-d", "AGIPDModule", "-r", "-g", "zeros"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from xlive.sources.karabo import KaraboReceiver

        rec = KaraboReceiver(f"tcp://127.0.0.1:{port}", tmp_path / "s.zarr")
        rec.run(until=time.monotonic() + 60, max_trains=3)
        assert rec.trains == 3 and rec.frames == 3 * 64 and rec.lost == 0
        src = open_source(tmp_path / "s.zarr")
        assert src.refresh() == 192 and src.read_frame(0).shape == (512, 128)
    finally:
        proc.kill()
        proc.wait(10)


def test_karabo_without_server_says_what_to_check(tmp_path):
    with pytest.raises(SourceError, match="no train from the Karabo bridge.*sock="):
        open_source(f"karabo://127.0.0.1:{free_port()}", spool=tmp_path / "x.zarr", wait=1)


def test_xlive_process_a_mock_run_with_its_geometry_file(agipd_run, tmp_path):
    from xlive_testing import run_xlive

    from xlive.engine.store import open_features

    _, run, sim = agipd_run
    out = tmp_path / "f.zarr"
    res = run_xlive(
        "process",
        str(run),
        "--out",
        str(out),
        "--geometry",
        str(run.with_suffix(".geom")),
        "--no-db",
        "-q",
        "--workers",
        "1",
    )
    assert "WARNING" not in res.stderr
    ds = open_features(out)
    assert ds.sizes["frame"] == 9 and ds.train_id.values.tolist()[3] == 10001
    # the command line finds what the analyzers find in this process, on the same frames
    src = open_source(run, geometry=read_crystfel_geom(run.with_suffix(".geom")))
    direct = FrameAnalyzer(src.geometry)(src.frames().values)
    np.testing.assert_array_equal(ds.n_spots.values, direct["n_spots"])
    truth = np.array([sim.frame(i)[1].n_spots for i in range(9)])  # SNR >= 10 spots
    assert np.all(ds.n_spots.values >= truth) and ds.is_hit.values.all()


def test_placeholder_geometry_warns_in_cli_and_status_line(agipd_run, tmp_path):
    from xlive_testing import run_xlive

    from xlive.engine.session import LiveSession
    from xlive.views.status_line import status_text

    _, run, _ = agipd_run
    cfg = tmp_path / "run.toml"
    cfg.write_text("[geometry]\ndistance = 0.2\nwavelength = 1.3\n")
    res = run_xlive(
        "process",
        str(run),
        "--out",
        str(tmp_path / "f.zarr"),
        "--config",
        str(cfg),
        "--no-db",
        "-q",
        "--workers",
        "1",
        "--sample",
        "0.2",
    )
    assert "WARNING" in res.stderr and "placeholder" in res.stderr
    assert "--geometry FILE.geom" in res.stderr
    session = LiveSession(open_source(run, distance=0.2, wavelength=1.3), tmp_path / "s.zarr")
    try:
        status, text = status_text(session)
        assert status == "red" and "placeholder" in text and "--geometry" in text
    finally:
        session.close()
