"""Rows written straight to chunk files read back through zarr as zarr's own writes do."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec

from xlive.sources._chunk_write import ChunkWriter, direct_layout, update_attrs

CASES = [  # dtype, trailing shape, fill value
    ("float32", (5,), float("nan")),
    ("int64", (), -1),
    ("bool", (), False),
    ("uint8", (), 0),
]


def _pair(tmp_path, dtype, rest, fill, **kw):
    made = []
    for name in ("direct", "zarr"):
        made.append(
            zarr.create_array(
                str(tmp_path / f"{name}.zarr"),
                shape=(40, *rest),
                chunks=(8, *rest),
                dtype=dtype,
                fill_value=fill,
                compressors=ZstdCodec(level=0, checksum=False),
                **kw,
            )
        )
    return made


@pytest.mark.parametrize(("dtype", "rest", "fill"), CASES)
def test_direct_rows_equal_zarr_writes(tmp_path, dtype, rest, fill):
    direct, ref = _pair(tmp_path, dtype, rest, fill)
    assert direct_layout(direct)
    w = ChunkWriter(direct)
    rng = np.random.default_rng(1)

    def values(n):
        v = rng.integers(0, 100, (n, *rest))
        return v.astype(dtype) if dtype != "bool" else v % 2 == 1

    # (span, rows): within a chunk, across chunks, a whole chunk, gaps, a chunk never
    # written before (its file missing: fill values), an overwrite
    for span, rows in [
        (slice(2, 5), None),
        (slice(6, 19), None),
        (slice(24, 32), None),
        (slice(3, 30), np.array([0, 2, 9, 20, 26])),
        (slice(33, 36), np.array([0, 2])),
        (slice(4, 10), None),
    ]:
        n = span.stop - span.start if rows is None else rows.size
        v = values(n)
        w.write(span, v, rows)
        if rows is None:
            ref[span] = v
        else:
            ref.set_orthogonal_selection((span.start + rows,), v)
    got, want = zarr.open_array(direct.store, mode="r")[:], ref[:]
    np.testing.assert_array_equal(got, want)  # NaN fill values compare equal
    # rows read back straight from the files (rows never written: fill values)
    for start, stop in [(0, 40), (5, 27), (8, 16), (33, 35), (36, 40), (7, 7)]:
        np.testing.assert_array_equal(ChunkWriter(direct).read(start, stop), want[start:stop])
    assert not list((tmp_path / "direct.zarr").rglob("*.partial"))


def test_chunk_rewritten_by_another_writer_is_read_again(tmp_path):
    """The writer starts from the rows it wrote last only while the chunk file is its own."""
    direct, _ = _pair(tmp_path, "int64", (), -1)
    w = ChunkWriter(direct)
    w.write(slice(0, 3), np.arange(3))
    w.write(slice(3, 4), np.array([30]))  # from the rows kept: no read back
    zarr.open_array(direct.store, mode="r+")[4:6] = [40, 50]  # zarr replaces the chunk file
    w.write(slice(6, 7), np.array([60]))
    got = zarr.open_array(direct.store, mode="r")[:8]
    np.testing.assert_array_equal(got, [0, 1, 2, 30, 40, 50, 60, -1])
    np.testing.assert_array_equal(w.read(6, 12), [60, -1, -1, -1, -1, -1])  # no chunk 1 file


def test_other_layouts_go_through_zarr(tmp_path):
    blosc = zarr.create_array(
        str(tmp_path / "b.zarr"), shape=(16, 4), chunks=(8, 4), dtype="f4", compressors=BloscCodec()
    )
    split = zarr.create_array(
        str(tmp_path / "s.zarr"),
        shape=(16, 4),
        chunks=(8, 2),
        dtype="f4",
        compressors=ZstdCodec(level=0, checksum=False),
    )
    big = zarr.create_array(
        str(tmp_path / "e.zarr"),
        shape=(16,),
        chunks=(8,),
        dtype="f4",
        serializer=BytesCodec(endian="big"),
        compressors=ZstdCodec(level=0, checksum=False),
    )
    mem = zarr.create_array({}, shape=(16,), chunks=(8,), dtype="f4", compressors=ZstdCodec())
    assert not any(direct_layout(a) for a in (blosc, split, big, mem))


def test_group_attributes_written_directly_read_back_by_zarr(tmp_path):
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.attrs.update({"series": 3, "kept": [1, 2]})
    g.create_array("a", shape=(4,), dtype="i8")
    update_attrs(g, {"frames_complete": 7, "dropped_ranges": [[2, 4]], "ended": False})
    update_attrs(g, {"frames_complete": 9})
    want = {"series": 3, "kept": [1, 2], "frames_complete": 9, "dropped_ranges": [[2, 4]]}
    want["ended"] = False
    assert dict(g.attrs) == want  # zarr's own copy in this process
    again = zarr.open_group(str(tmp_path / "g.zarr"), mode="r")
    assert dict(again.attrs) == want and list(again.array_keys()) == ["a"]
    assert not list((tmp_path / "g.zarr").rglob("*.partial"))
