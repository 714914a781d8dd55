"""CPU per frame of decoding 16-bit bitshuffle-LZ4 EIGER frames: xlive's numba decoder
(``xlive.sources._bslz4.bslz4_decode``) against ``bitshuffle.decompress_lz4``, alternated in one
process (round by round, best of each round), with freed frame buffers kept for reuse as the
dask workers keep them.

    python bench/bslz4_decode.py                          # EIGER 4M frames simulated here
    python bench/bslz4_decode.py --run /tmp/run --rounds 8   # frames of an `xlive simulate` run
    python bench/bslz4_decode.py --hdf5     # Eiger HDF5 data file (uint32, as the simulator
                                            # writes it): HDF5's filter vs xlive's direct reads
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from xlive.engine._dask_plugins import keep_frame_buffers
from xlive.sources._bslz4 import bslz4_decode, bslz4_encode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--run", help="an `xlive simulate` run (default: simulate --frames here)")
    ap.add_argument("--detector", default="eiger4m")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=10, help="decodes of each frame per round")
    ap.add_argument(
        "--hdf5",
        action="store_true",
        help="an Eiger HDF5 run (xlive simulate --format eiger-h5): frames read by h5py + "
        "hdf5plugin against xlive's reader (chunks read as stored, decoded by xlive)",
    )
    args = ap.parse_args()
    keep_frame_buffers()
    if args.hdf5:
        hdf5(args)
        return
    import bitshuffle  # after xlive's _bslz4, which turns bitshuffle's OpenMP threads off

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else Path(tmp) / "run"
        if not args.run:
            subprocess.run(
                [sys.executable, "-m", "xlive.cli", "simulate", str(run), "--frames",
                 str(args.frames), "--rate", "0", "--detector", args.detector, "-q"],
                check=True,
            )  # fmt: skip
        import zarr

        g = zarr.open_group(str(run / "run.zarr"), mode="r")
        raw = [np.asarray(g["frames"][i]) for i in range(min(args.frames, g["frames"].shape[0]))]
    # as an EIGER stream carries them (counts above 65534 -> 65535)
    frames = [np.minimum(f, 65535).astype(np.uint16) for f in raw]
    blobs = [bslz4_encode(f) for f in frames]
    shape = frames[0].shape

    def ours(b):
        return bslz4_decode(b, dtype=np.uint16, shape=shape)

    def theirs(b):
        block = int.from_bytes(b[8:12], "big") // 2
        body = np.frombuffer(b, np.uint8, offset=12)
        return bitshuffle.decompress_lz4(body, (frames[0].size,), np.dtype(np.uint16), block)

    for f, b in zip(frames, blobs, strict=True):  # same pixels, and warm (numba, buffers)
        np.testing.assert_array_equal(ours(b), f)
        np.testing.assert_array_equal(theirs(b).reshape(shape), f)
    rows = {"xlive (numba)": [], "bitshuffle": []}
    for _ in range(args.rounds):
        for name, fn in (("xlive (numba)", ours), ("bitshuffle", theirs)):
            t0 = time.process_time()
            for _ in range(args.repeat):
                for b in blobs:
                    fn(b)
            rows[name].append((time.process_time() - t0) / (args.repeat * len(blobs)) * 1e3)
    print(
        f"{len(frames)} {args.detector} frames {shape} uint16, compressed to "
        f"{np.mean([len(b) for b in blobs]) / frames[0].nbytes:.2f}; load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print("CPU ms per frame decoded, each round:")
    for name, v in rows.items():
        print(f"  {name:14s} {' '.join(f'{x:5.2f}' for x in v)}   median {np.median(v):.2f}")
    ratio = np.median(np.array(rows["bitshuffle"]) / np.array(rows["xlive (numba)"]))
    print(f"bitshuffle / xlive, median of the rounds' ratios: {ratio:.2f}")


def hdf5(args) -> None:
    """``--hdf5``: the same alternation on an Eiger HDF5 data file."""
    import h5py

    from xlive.sources.hdf5 import H5SegmentsReader

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else Path(tmp) / "run"
        if not args.run:
            subprocess.run(
                [sys.executable, "-m", "xlive.cli", "simulate", str(run), "--format", "eiger-h5",
                 "--frames", str(args.frames), "--rate", "0", "--detector", args.detector, "-q"],
                check=True,
            )  # fmt: skip
        path = str(sorted(run.glob("*_data_*.h5"))[0])
        with h5py.File(path, "r") as f:
            d = f["/entry/data/data"]
            n, shape, dtype = d.shape[0], d.shape[1:], d.dtype
            reader = H5SegmentsReader([(path, "/entry/data/data", 0, n)], shape=shape, dtype=dtype)
            for k in range(n):  # same pixels, and warm
                np.testing.assert_array_equal(reader.read_one(k), d[k])
            rows = {"xlive reader": [], "h5py": []}
            for _ in range(args.rounds):
                for name, fn in (("xlive reader", reader.read_one), ("h5py", d.__getitem__)):
                    t0 = time.process_time()
                    for _ in range(args.repeat):
                        for k in range(n):
                            fn(k)
                    rows[name].append((time.process_time() - t0) / (args.repeat * n) * 1e3)
            reader.close()
    print(
        f"{n} {args.detector} frames {shape} {dtype} in an Eiger HDF5 data file; load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print("CPU ms per frame read, each round:")
    for name, v in rows.items():
        print(f"  {name:14s} {' '.join(f'{x:5.2f}' for x in v)}   median {np.median(v):.2f}")
    ratio = np.median(np.array(rows["h5py"]) / np.array(rows["xlive reader"]))
    print(f"h5py / xlive, median of the rounds' ratios: {ratio:.2f}")


if __name__ == "__main__":
    main()
