"""ChunkWriter: rows written straight into chunk files read back by zarr as written."""

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec

from xlive.sources._chunk_writer import ChunkWriter


@pytest.mark.parametrize(
    ("dtype", "rest", "fill"),
    [("float32", (), np.nan), ("float32", (5,), np.nan), ("bool", (), False),
     ("uint8", (), 0), ("int64", (), -1), ("uint64", (3,), 7)],
)  # fmt: skip
def test_rows_read_back_by_zarr(tmp_path, dtype, rest, fill):
    rng = np.random.default_rng(1)
    a = zarr.create_array(
        tmp_path / "a", shape=(0, *rest), chunks=(8, *rest), dtype=dtype, fill_value=fill
    )
    w = ChunkWriter.for_array(a)
    assert w is not None
    ref = np.full((40, *rest), fill, dtype)
    a.resize((40, *rest))

    def put(rows, values):
        w.write(rows, values)
        ref[rows] = values

    def random(n):
        return (rng.random((n, *rest)) * 100).astype(dtype)

    put(slice(0, 3), random(3))  # a partial first chunk
    put(slice(3, 21), random(18))  # across two chunk boundaries
    put(np.array([2, 9, 30]), random(3))  # sampled rows, over three chunks
    put(np.array([39]), random(1))  # the last row of the last chunk
    put(slice(5, 7), random(2))  # rows written again
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "a", mode="r")[:], ref)
    # a new writer (a resumed store) reads the chunks it has not written yet through zarr
    w = ChunkWriter.for_array(zarr.open_array(tmp_path / "a", mode="r+"))
    put(np.array([1, 38]), random(2))
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "a", mode="r")[:], ref)


def test_grown_array_keeps_rows(tmp_path):
    a = zarr.create_array(tmp_path / "a", shape=(4,), chunks=(8,), dtype="int32", fill_value=0)
    w = ChunkWriter.for_array(a)
    w.write(slice(0, 4), np.arange(1, 5))
    a.resize((12,))  # rows beyond the old shape come back as the fill value
    w.write(slice(4, 12), np.arange(5, 13))
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "a", mode="r")[:], np.arange(1, 13))


def test_other_layouts_go_through_zarr(tmp_path):
    blosc = zarr.create_array(
        tmp_path / "b", shape=(4,), chunks=(2,), dtype="int32", compressors=[BloscCodec()]
    )
    split = zarr.create_array(tmp_path / "s", shape=(4, 6), chunks=(2, 3), dtype="int32")
    memory = zarr.create_array({}, shape=(4,), chunks=(2,), dtype="int32")
    assert ChunkWriter.for_array(blosc) is None
    assert ChunkWriter.for_array(split) is None  # chunks split the rows: zarr merges them
    assert ChunkWriter.for_array(memory) is None
