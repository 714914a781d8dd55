"""Simulated runs written in the background (``start_run``) and the rotation-series simulation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from xlive.errors import ConfigError
from xlive.simulate import RUN_FILE, RotationSimulation, RotationSweep, SimParams, start_run
from xlive.sources import open_source

DET = "eiger500k"


@pytest.mark.parametrize("axis", [(1.0, 0.0, 0.0), (0.3, -1.0, 0.2)])
def test_sweep_matrix_is_the_rotation_about_the_axis(axis):
    sweep = RotationSweep(start=10.0, step=0.25, axis=axis)
    for n in (0, 7, 400):
        phi = 10.0 + 0.25 * n
        assert sweep.angle(n) == pytest.approx(phi)
        u = np.asarray(axis) / np.linalg.norm(axis)
        ref = Rotation.from_rotvec(np.radians(phi) * u).as_matrix()  # independent reference
        np.testing.assert_allclose(sweep.matrix(n), ref, atol=1e-12)


def test_sweep_refuses_a_zero_step_and_axis():
    with pytest.raises(ConfigError, match="step"):
        RotationSweep(step=0.0)
    with pytest.raises(ConfigError, match="axis"):
        RotationSweep(axis=(0.0, 0.0, 0.0))


def _hkl(truth) -> set:
    s = truth.spots
    ok = (s["snr"] >= 10) & ~s["masked"]
    return set(zip(s["h"][ok].tolist(), s["k"][ok].tolist(), s["l"][ok].tolist(), strict=True))


def test_rotation_frames_show_one_crystal_turning():
    sim = RotationSimulation(RotationSweep(step=0.1), SimParams(detector=DET, seed=3))
    first, nxt = sim.frame(0)[1], sim.frame(1)[1]
    far = sim.frame(900)[1]  # 90 degrees on
    assert first.hit and nxt.hit and far.hit and first.n_lattices == 1
    a, b, c = _hkl(first), _hkl(nxt), _hkl(far)
    assert len(a) > 30
    # 0.1 deg apart (below the 0.15 deg mosaic spread): mostly the same reflections
    assert len(a & b) > 0.5 * min(len(a), len(b))
    # 90 deg apart: other reflections are in diffracting position
    assert len(a & c) < 0.1 * min(len(a), len(c))


def test_dose_weakens_a_rotation_series():
    sim = RotationSimulation(RotationSweep(), SimParams(detector=DET, seed=1, dose_decay=0.01))
    early = [sim.frame(n)[1] for n in range(3)]
    late = [sim.frame(n)[1] for n in range(300, 303)]
    assert np.mean([t.n_spots for t in late]) < 0.5 * np.mean([t.n_spots for t in early])
    assert np.mean([t.d_min for t in late]) > np.mean([t.d_min for t in early]) + 0.5


def test_start_run_returns_while_writing_and_stop_ends_it(tmp_path):
    run = start_run(tmp_path / "run", frames=2000, rate=20, detector=DET)
    assert run.running and run.frames_written >= 1
    assert open_source(run.path).refresh() >= 1  # readable before the run ends
    summary = run.stop()
    assert not run.running and 1 <= summary.frames < 2000
    desc = json.loads((run.path / RUN_FILE).read_text())
    assert desc["complete"] and desc["frames_written"] == summary.frames


def test_start_run_as_context_manager_and_rotation_recorded(tmp_path):
    sweep = RotationSweep(start=5.0, step=0.2)
    with start_run(tmp_path / "rot", frames=6, rate=0, rotation=sweep, detector=DET) as run:
        summary = run.wait(timeout=120)
    assert summary.frames == 6 and run.sweep is sweep
    desc = json.loads((run.path / RUN_FILE).read_text())
    assert desc["params"]["extra"]["rotation"]["step"] == 0.2
    assert desc["params"]["hit_fraction"] == 1.0
    assert open_source(run.path).refresh() == 6


def test_start_run_in_a_temporary_folder_and_errors_surface():
    with start_run(frames=3, rate=0, detector=DET) as run:
        assert run.wait(60).frames == 3
    assert run.path.name == "run" and (run.path / RUN_FILE).exists()
    with pytest.raises(ConfigError, match="detector"):
        start_run(frames=3, detector="no-such-detector")
    with pytest.raises(ConfigError, match="--frames"):
        start_run(frames=0, detector=DET)
