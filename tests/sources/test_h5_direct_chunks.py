"""Eiger-style HDF5 datasets (one frame per chunk, bitshuffle-LZ4) read chunk by chunk and
decoded by xlive give what HDF5 itself (hdf5plugin's filter) reads; other layouts go through
HDF5."""

from __future__ import annotations

import sys

import h5py
import numpy as np
import pytest

from xlive.errors import BadFrameError
from xlive.sources.hdf5 import H5SegmentsReader

#: run by another process: the datasets as an Eiger (or another writer) writes them
WRITER = """
import sys
import h5py, hdf5plugin, numpy as np

rng = np.random.default_rng(0)
shape = (37, 41)  # n % 8 != 0: a short last block and raw tail elements
with h5py.File(sys.argv[1], "w") as f:
    for dtype in ("uint16", "uint32", "int32"):
        frames = rng.poisson(0.7, (4, *shape)).astype(dtype)
        frames[:, :, 20] = np.iinfo(dtype).max  # a gap column
        d = f.create_dataset(
            f"bslz4_{dtype}", shape=frames.shape, dtype=dtype, chunks=(1, *shape),
            **hdf5plugin.Bitshuffle(cname="lz4"),
        )
        for k in (0, 1, 3):  # frame 2 is never written: HDF5 gives the fill value
            d[k] = frames[k]
    frames = rng.poisson(0.7, (4, *shape)).astype("uint16")
    f.create_dataset("gzip", data=frames, chunks=(1, *shape), compression="gzip")
    f.create_dataset("bs_only", data=frames, chunks=(1, *shape),
                     **hdf5plugin.Bitshuffle(cname="none"))
    f.create_dataset("two_frames_a_chunk", data=frames, chunks=(2, *shape),
                     **hdf5plugin.Bitshuffle(cname="lz4"))
"""


@pytest.fixture(scope="module")
def h5file(tmp_path_factory):
    import subprocess

    path = tmp_path_factory.mktemp("h5") / "frames.h5"
    subprocess.run([sys.executable, "-c", WRITER, str(path)], check=True, timeout=120)
    return path


@pytest.mark.parametrize(
    "name, direct",
    [
        ("bslz4_uint16", True),
        ("bslz4_uint32", True),
        ("bslz4_int32", True),
        ("gzip", False),
        ("bs_only", False),
        ("two_frames_a_chunk", False),
    ],
)
def test_frames_equal_hdf5s_own_reads(h5file, name, direct):
    with h5py.File(h5file, "r") as f:
        expected = f[name][()]
    reader = H5SegmentsReader(
        [(str(h5file), name, 0, 4)], shape=expected.shape[1:], dtype=expected.dtype
    )
    for k in range(4):
        got = reader.read_one(k)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected[k])
    assert reader._direct[(str(h5file), name)] is direct
    with pytest.raises(BadFrameError):
        reader.read_one(4)  # beyond the dataset
    reader.close()


def test_dectris_files_read_directly_equal_hdf5s_reads(realdata):
    # data files written by EIGER and EIGER2 firmware (uint8, uint16, uint32 bitshuffle-LZ4)
    files = sorted((realdata / "eiger_h5_testfiles").glob("*_bslz4*.h5"))
    assert len(files) == 6
    for path in files:
        with h5py.File(path, "r") as f:
            expected = f["/entry/data/data"][()]
        reader = H5SegmentsReader(
            [(str(path), "/entry/data/data", 0, len(expected))],
            shape=expected.shape[1:],
            dtype=expected.dtype,
        )
        for k in range(len(expected)):
            np.testing.assert_array_equal(reader.read_one(k), expected[k])
        assert reader._direct[(str(path), "/entry/data/data")], path.name
        reader.close()
