"""analyze(): a lazy Dataset whose construction computes nothing and whose selections compute
only the frames selected; values equal the analyzers run eagerly."""

from __future__ import annotations

import dask
import numpy as np
import pytest
from dask.callbacks import Callback

from xlive.analyzers.radial import RadialParams, RadialProfile
from xlive.engine.features import analyze
from xlive.engine.store import BAD, DONE
from xlive.simulate import write_run
from xlive.sources import open_source


class CountTasks(Callback):
    """Counts executed tasks of the analyze graph (in the spirit of xarray's
    ``raise_if_dask_computes``, which counts scheduler calls)."""

    def __init__(self):
        super().__init__()
        self.blocks: list = []
        self.any = 0

    def _pretask(self, key, dask, state):
        self.any += 1
        # graph optimisation may fuse a block task into its feature getter: count block indices
        if isinstance(key, tuple) and str(key[0]).startswith("xlive-analyze"):
            self.blocks.append(key[1])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("feat") / "run"
    write_run(
        out,
        frames=12,
        rate=0,
        detector="eiger500k",
        seed=4,
        hit_fraction=0.5,
        laser_on_fraction=0.5,
    )
    return out


def test_building_computes_nothing(run):
    src = open_source(run)
    with CountTasks() as cb, dask.config.set(scheduler="sync"):
        ds = analyze(src, [RadialProfile(src.geometry, RadialParams(n_bins=64))], block=4)
        assert ds.sizes["frame"] == 12 and ds.sizes["q"] == 64
        assert "laser_on" in ds.coords and "timestamp" in ds.coords
    assert cb.any == 0


def test_selection_computes_only_its_blocks(run):
    src = open_source(run)
    rp = RadialProfile(src.geometry, RadialParams(n_bins=64))
    ds = analyze(src, [rp], block=4)
    with CountTasks() as cb, dask.config.set(scheduler="sync"):
        sub = ds.radial_profile.sel(frame=[5, 6]).compute()
    assert set(cb.blocks) == {1}  # frames 4..7 form block 1 of 4 frames
    frames = np.stack([src.read_frame(i) for i in (5, 6)])
    np.testing.assert_allclose(sub.values, rp(frames)["radial_profile"], rtol=1e-6)


def test_frames_subset_and_a_corrupt_frame(run, tmp_path):
    import shutil

    from xlive.errors import ConfigError

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "run.zarr" / "frames" / "c" / "3" / "0" / "0").write_bytes(b"not a blosc chunk")
    src = open_source(copy)
    rp = RadialProfile(src.geometry, RadialParams(n_bins=32))
    ds = analyze(src, [rp], frames=[0, 3, 9], block=2).compute()
    assert list(ds.frame.values) == [0, 3, 9]
    # one status convention with open_features: a coordinate, 1 done, 2 bad frame
    assert "status" in ds.coords and "bad" not in ds.variables
    assert ds.status.values.tolist() == [DONE, BAD, DONE]
    assert np.isnan(ds.radial_profile.sel(frame=3)).all()
    assert np.isfinite(ds.radial_profile.sel(frame=9)).any()
    with pytest.raises(ConfigError, match="frame indices"):
        analyze(src, [rp], frames=[50])
