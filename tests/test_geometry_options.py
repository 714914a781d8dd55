"""Real geometry from the command line (--geometry, --mask, --config [geometry]) and the
provenance each feature store records; a different run is refused (issue 14)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from xlive_testing import run_xlive

from xlive.engine.store import FeatureStore
from xlive.geometry import Geometry
from xlive.geometry.plan import GeometryPlan
from xlive.simulate import write_run


def test_plan_mask_file_and_values(tmp_path):
    g = Geometry.simple(
        shape=(40, 50),
        pixel_size=1e-4,
        distance=0.1,
        beam_center_x=20,
        beam_center_y=25,
        wavelength=1.0,
    )
    m = np.zeros((40, 50), np.uint8)
    m[:5, :7] = 1
    np.save(tmp_path / "m.npy", m)
    out = GeometryPlan(
        mask=str(tmp_path / "m.npy"),
        values={"distance": 0.2, "beam_center_x": 21.5, "pixel_size": 2e-4},
    )(g)
    assert out.mask.sum() == 35 and out.mask[:5, :7].all()
    assert out.distance == 0.2 and out.beam_center == (21.5, 25) and out.pixel_size == 2e-4
    np.save(tmp_path / "bad.npy", np.zeros((3, 3)))
    with pytest.raises(Exception, match=r"mask .* is \(3, 3\), the detector is \(40, 50\)"):
        GeometryPlan(mask=str(tmp_path / "bad.npy"))(g)


@pytest.mark.slow
def test_process_takes_geometry_file_and_config_and_records_provenance(tmp_path):
    write_run(tmp_path / "a", frames=6, rate=0, fmt="cbf", detector="eiger500k", seed=1)
    write_run(tmp_path / "b", frames=4, rate=0, fmt="cbf", detector="eiger500k", seed=2)
    px = 75e-6
    (tmp_path / "det.poni").write_text(
        f"Distance: 0.25\nPoni1: {250 * px}\nPoni2: {500 * px}\nRot1: 0\nRot2: 0\nRot3: 0\n"
        "PixelSize1: 7.5e-05\nPixelSize2: 7.5e-05\nWavelength: 1.1e-10\n"
    )
    (tmp_path / "run.toml").write_text("[geometry]\ndistance = 0.3\n")
    feats = tmp_path / "f.zarr"
    run_a = str(tmp_path / "a" / "run_*.cbf")
    out = run_xlive(
        "process",
        run_a,
        "--out",
        str(feats),
        "--geometry",
        str(tmp_path / "det.poni"),
        "--config",
        str(tmp_path / "run.toml"),
        "--no-db",
        "-q",
        "--workers",
        "1",
    ).stdout
    assert "stored features of 6 frames" in out
    info = FeatureStore.open(feats).info  # the store's own record (JSON text in its attributes)
    geom = info["geometry"]
    assert geom["distance"] == 0.3 and geom["wavelength"] == pytest.approx(1.1)  # file + config
    corner = geom["panels"][0]
    assert (-corner["corner_x"], -corner["corner_y"]) == pytest.approx((500, 250))
    from xlive import __version__

    assert info["xlive_version"] == __version__
    assert info["source"].endswith("a/run_*.cbf")  # a folder of files records its source too
    assert info["config"]["geometry"] == {"distance": 0.3}
    assert info["geometry_options"]["file"].endswith("det.poni")
    # exporting needs no --source: the store knows its run
    res = run_xlive("export-hits", str(feats), "--cxi", str(tmp_path / "h.cxi"))
    assert "wrote" in res.stdout
    # another run into the same store is refused, saying which runs
    other = run_xlive(
        "process",
        str(tmp_path / "b" / "run_*.cbf"),
        "--out",
        str(feats),
        "--no-db",
        "-q",
        "--workers",
        "1",
        check=False,
    )
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert "holds features of" in other.stderr and "b/run_*.cbf" in other.stderr
    assert json.loads(json.dumps(info))  # provenance is plain JSON
