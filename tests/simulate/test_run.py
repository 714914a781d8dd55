"""Runs written by ``xlive simulate``: read back with plain zarr, h5py + hdf5plugin and fabio,
and watched from another process while they grow."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from pathlib import Path

import fabio
import h5py
import hdf5plugin  # noqa: F401  (registers the bitshuffle filter)
import numpy as np
import pytest
import zarr
from xlive_testing import run_xlive

from xlive.simulate import SimParams, Simulation, read_truth, write_run

DET = "eiger500k"


@functools.lru_cache(maxsize=4)
def _sim(params_json: str) -> Simulation:
    return Simulation(SimParams.from_dict(json.loads(params_json)))


def expected(params: dict, frame_number: int) -> np.ndarray:
    return _sim(json.dumps(params, sort_keys=True)).frame(int(frame_number))[0]


def test_zarr_run_reads_back_with_plain_zarr(tmp_path):
    s = write_run(
        tmp_path / "run",
        frames=12,
        rate=0,
        detector=DET,
        hit_fraction=0.5,
        dropped_fraction=0.2,
        seed=2,
    )
    desc = json.loads((tmp_path / "run" / "xlive-run.json").read_text())
    g = zarr.open_group(str(tmp_path / "run" / "run.zarr"), mode="r")
    assert g.attrs["frames_complete"] == s.frames == 12
    assert g["frames"].shape[0] == 12
    sim = Simulation(SimParams.from_dict(desc["params"]))
    numbers = g["frame_number"][:]
    assert np.all(np.diff(numbers) >= 1)
    truth = read_truth(tmp_path / "run" / "truth.zarr")
    np.testing.assert_array_equal(truth["frame_number"], numbers)
    assert set(truth["dropped_frame_numbers"]).isdisjoint(numbers)
    assert len(truth["dropped_frame_numbers"]) == s.dropped
    assert numbers[-1] + 1 == 12 + s.dropped
    for i in (0, 5, 11):
        np.testing.assert_array_equal(g["frames"][i], sim.frame(int(numbers[i]))[0])
    np.testing.assert_array_equal(g["mask"][:], sim.pixel_mask)
    # truth spot table is consistent with the per-frame view
    i = int(np.argmax(truth["spot_count"]))
    rows = slice(truth["spot_start"][i], truth["spot_start"][i] + truth["spot_count"][i])
    np.testing.assert_allclose(
        truth["spots"]["x"][rows], sim.frame(int(numbers[i]))[1].spots["x"], rtol=1e-6
    )
    assert np.all(truth["spots"]["frame"][rows] == i)


def test_eiger_run_reads_back_with_h5py(tmp_path):
    out = tmp_path / "run"
    write_run(
        out, frames=7, rate=0, fmt="eiger-h5", name="lyso", frames_per_file=3, detector=DET, seed=1
    )
    sim = Simulation(SimParams(detector=DET, seed=1))
    with h5py.File(out / "lyso_master.h5", "r") as f:
        det = f["/entry/instrument/detector"]
        assert det["detector_distance"][()] == pytest.approx(sim.geometry.distance)
        assert det["beam_center_x"][()] == pytest.approx(sim.geometry.beam_center[0])
        assert f["/entry/instrument/beam/incident_wavelength"][()] == pytest.approx(1.0)
        np.testing.assert_array_equal(det["detectorSpecific/pixel_mask"][()], sim.pixel_mask)
        assert det["detectorSpecific/nimages"][()] == 7
        frames = [f[f"/entry/data/data_{i:06d}"] for i in (1, 2, 3)]
        assert [d.shape[0] for d in frames] == [3, 3, 1]
        assert frames[1].attrs["image_nr_low"] == 4 and frames[1].attrs["image_nr_high"] == 6
        assert frames[0].compression_opts is None or 32008 in frames[0]._filters
        np.testing.assert_array_equal(frames[1][2], sim.frame(5)[0])
    assert (out / "metadata.csv").read_text().count("\n") == 8


def test_cbf_run_reads_back_with_fabio(tmp_path):
    out = tmp_path / "run"
    write_run(out, frames=3, rate=0, fmt="cbf", name="thau", detector="pilatus300k", seed=5)
    sim = Simulation(SimParams(detector="pilatus300k", seed=5))
    files = sorted(out.glob("thau_*.cbf"))
    assert [f.name for f in files] == ["thau_00001.cbf", "thau_00002.cbf", "thau_00003.cbf"]
    img = fabio.open(str(files[2]))
    np.testing.assert_array_equal(img.data, sim.frame(2)[0])
    header = img.header["_array_data.header_contents"]
    bx, by = sim.geometry.beam_center
    assert f"Beam_xy ({bx:.2f}, {by:.2f}) pixels" in header
    assert "Wavelength 1.00000 A" in header


# ------------------------------------------------------------------ growing runs, two processes
def _start_writer(out: Path, fmt: str, frames: int, rate: float, extra=()) -> subprocess.Popen:
    return subprocess.Popen(
        [
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
            str(rate),
            "--detector",
            DET,
            "--seed",
            "9",
            "--hit-fraction",
            "0.5",
            "-q",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _watch(proc: subprocess.Popen, poll, timeout: float = 120) -> list[int]:
    """Call ``poll()`` until the writer ends and one more time; returns the counts seen."""
    seen = []
    t_end = time.time() + timeout
    while time.time() < t_end:
        done = proc.poll() is not None
        seen.append(poll())
        if done:
            break
        time.sleep(0.05)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return seen


@pytest.mark.slow
def test_reader_of_growing_zarr_sees_only_complete_frames(tmp_path):
    out = tmp_path / "run"
    expected(SimParams(detector=DET, seed=9, hit_fraction=0.5).to_dict(), 0)
    proc = _start_writer(out, "zarr", 60, 20)
    got: list[tuple[int, np.ndarray]] = []  # (frame number, pixels) as read while it grew
    params: dict = {}

    def poll():
        if not (out / "xlive-run.json").exists() or not (out / "run.zarr" / "zarr.json").exists():
            return 0
        params.update(json.loads((out / "xlive-run.json").read_text())["params"])
        g = zarr.open_group(str(out / "run.zarr"), mode="r")  # re-open: fresh metadata
        n = int(g.attrs["frames_complete"])
        for i in range(len(got), n):
            got.append((int(g["frame_number"][i]), g["frames"][i]))
        return n

    # the frames are checked against the simulation after the run (computing it between
    # polls made them so slow under load that the reader saw the run only at its end)
    seen = _watch(proc, poll)
    assert len(got) == 60
    for i, (number, frame) in enumerate(got):
        np.testing.assert_array_equal(frame, expected(params, number), err_msg=f"frame {i}")
    assert len(set(seen)) > 3, f"the reader never saw the run grow: {sorted(set(seen))}"


@pytest.mark.slow
def test_reader_of_growing_eiger_series_sees_complete_files(tmp_path):
    out = tmp_path / "run"
    params = SimParams(detector=DET, seed=9, hit_fraction=0.5).to_dict()
    expected(params, 0)  # build the reference simulation before the writer starts
    proc = _start_writer(out, "eiger-h5", 30, 8, ["--frames-per-file", "5", "--name", "s"])
    got: list[int] = []

    def poll():
        for k in range(len(got) // 5 + 1, 7):
            path = out / f"s_data_{k:06d}.h5"
            if not path.exists():
                break
            with h5py.File(path, "r") as f:
                d = f["/entry/data/data"]
                lo, hi = d.attrs["image_nr_low"], d.attrs["image_nr_high"]
                assert d.shape[0] == hi - lo + 1 == 5
                for j in range(d.shape[0]):
                    np.testing.assert_array_equal(d[j], expected(params, lo - 1 + j))
                    got.append(int(lo - 1 + j))
        return len(got)

    seen = _watch(proc, poll)
    assert got == list(range(30))
    assert len(set(seen)) > 2


@pytest.mark.slow
def test_reader_of_growing_cbf_folder_sees_complete_files(tmp_path):
    out = tmp_path / "run"
    params = SimParams(detector=DET, seed=9, hit_fraction=0.5).to_dict()
    expected(params, 0)
    proc = _start_writer(out, "cbf", 20, 20)
    got: list[int] = []

    def poll():
        while (out / f"run_{len(got) + 1:05d}.cbf").exists():
            img = fabio.open(str(out / f"run_{len(got) + 1:05d}.cbf"))
            np.testing.assert_array_equal(img.data, expected(params, len(got)).astype(np.int32))
            got.append(len(got))
        return len(got)

    seen = _watch(proc, poll)
    assert got == list(range(20))
    assert len(set(seen)) > 2


# ------------------------------------------------------------------ command line
def test_cli_help_for_every_subcommand():
    out = run_xlive("--help").stdout
    commands = [c for c in ("simulate", "demo", "process", "serve") if f"    {c}" in out]
    assert "simulate" in commands
    for c in commands:
        assert "usage: xlive " + c in run_xlive(c, "--help").stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--detector", "pilatus9m"], "invalid choice: 'pilatus9m'"),
        (["--rate", "-5"], "--rate must be >= 0"),
        (["--frames", "0"], "--frames must be >= 1"),
        (["--hit-fraction", "1.5"], "--hit-fraction must be <= 1, got 1.5"),
        (["--unit-cell", "1,2,3"], "--unit-cell"),
    ],
)
def test_cli_bad_options_are_one_line_errors(tmp_path, args, message):
    p = run_xlive("simulate", str(tmp_path / "r"), *args, check=False)
    assert p.returncode == 2
    last = p.stderr.strip().splitlines()[-1]
    assert message in last, p.stderr


def test_cli_refuses_existing_run_unless_overwrite(tmp_path):
    out = tmp_path / "r"
    args = ("simulate", str(out), "--frames", "2", "--rate", "0", "--detector", DET, "-q")
    run_xlive(*args)
    p = run_xlive(*args, check=False)
    assert p.returncode == 2 and "already holds files" in p.stderr and "--overwrite" in p.stderr
    assert "wrote 2 frames" in run_xlive(*args, "--overwrite").stdout
    other = tmp_path / "notarun"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    p = run_xlive("simulate", str(other), "--frames", "2", "--overwrite", check=False)
    assert p.returncode == 2 and (other / "precious.txt").exists()
