"""FeatureStore.write: contiguous and sampled blocks land in the right rows, nothing else moves."""

import numpy as np
import xarray as xr

from xlive.analyzers.base import FeatureSpec
from xlive.engine.block import Block
from xlive.engine.store import DONE, PENDING, FeatureStore

SPECS = [
    FeatureSpec("level", ("frame",), "float32", "counts", "a level"),
    FeatureSpec("count", ("frame",), "int32", "", "a count"),
    FeatureSpec("hit", ("frame",), "bool", "", "a hit"),
    FeatureSpec("profile", ("frame", "q"), "float32", "counts", "a profile", sizes={"q": 5}),
]


def block(idx):
    idx = np.asarray(idx)
    rng = np.random.default_rng(int(idx.sum()))
    feats = {
        "level": rng.random(idx.size).astype(np.float32),
        "count": rng.integers(0, 100, idx.size).astype(np.int32),
        "hit": rng.random(idx.size) > 0.5,
        "profile": rng.random((idx.size, 5)).astype(np.float32),
    }
    return Block(idx, np.zeros(idx.size, bool), feats)


def test_contiguous_and_sampled_blocks(tmp_path):
    q = np.linspace(0.1, 1.0, 5)
    st = FeatureStore.create(
        tmp_path / "f.zarr", specs=SPECS, coords={"q": ("q", q, {"units": "1/nm"})}
    )
    blocks = [
        block(np.arange(0, 150)),  # over a chunk boundary (128)
        block([150, 153, 156, 300]),  # sampled: merged into the rows they span
        block([151, 155]),  # rows between, written later
        block([400, 5000]),  # far apart: written one by one
    ]
    for b in blocks:
        st.write(b, {"frame_number": b.frames + 7})
    st.see(5001)
    st.flush(exact=True)
    ds = xr.open_zarr(tmp_path / "f.zarr")
    written = np.concatenate([b.frames for b in blocks])
    status = ds["status"].values
    assert set(np.flatnonzero(status == DONE)) == set(written)
    assert np.all(status[np.setdiff1d(np.arange(5001), written)] == PENDING)
    for b in blocks:
        for name, values in b.features.items():
            np.testing.assert_array_equal(ds[name].values[b.frames], values)
        np.testing.assert_array_equal(ds["frame_number"].values[b.frames], b.frames + 7)
    rest = np.setdiff1d(np.arange(5001), written)
    assert np.all(np.isnan(ds["level"].values[rest])) and np.all(ds["count"].values[rest] == 0)
    assert not ds["hit"].values[rest].any()


def test_skipped_frames_marked_with_a_block_write(tmp_path):
    """Frames skipped by sampling go into the status write of the next block: between the
    sampled frames (one span), beyond them, and alone (no frame computed)."""
    from xlive.engine.store import SKIPPED

    st = FeatureStore.create(tmp_path / "f.zarr", specs=SPECS, coords={})
    b = block([10, 12, 14])
    st.write(b, skipped=np.array([11, 13, 15, 200]))
    st.write(Block.empty(SPECS), skipped=np.array([300]))
    st.flush(exact=True)
    status = xr.open_zarr(tmp_path / "f.zarr")["status"].values
    assert status.size == 301
    assert set(np.flatnonzero(status == DONE)) == {10, 12, 14}
    assert set(np.flatnonzero(status == SKIPPED)) == {11, 13, 15, 200, 300}
    assert np.all(status[[0, 9, 16, 199, 299]] == PENDING)
    ds = xr.open_zarr(tmp_path / "f.zarr")
    np.testing.assert_allclose(ds["level"].values[[10, 12, 14]], b.features["level"])
