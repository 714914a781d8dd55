"""CPU per frame of reading an Eiger HDF5 data file's bitshuffle-LZ4 frames: h5py + hdf5plugin
(HDF5's filter) against xlive's reader (``xlive.sources.hdf5.H5SegmentsReader``: single-frame
chunks read as stored with ``read_direct_chunk`` and decoded by ``bitshuffle.decompress_lz4``),
alternated round by round in one process, with freed frame buffers kept for reuse as the dask
workers keep them.

    python bench/eiger_h5_read.py                     # EIGER 4M, simulated here (uint32)
    python bench/eiger_h5_read.py --run /tmp/erun     # an `xlive simulate --format eiger-h5` run
    python bench/eiger_h5_read.py --dtype uint16      # the frames rewritten as 16-bit (counts
                                                      # above 65535 clipped), as EIGERs often write
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--run", help="an `xlive simulate --format eiger-h5` run (default: simulate)")
    ap.add_argument("--detector", default="eiger4m")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=3, help="reads of each frame per round")
    ap.add_argument("--dtype", choices=("uint32", "uint16"), default="uint32")
    args = ap.parse_args()
    keep_frame_buffers()
    hdf5(args)


def hdf5(args) -> None:
    """The alternation (see the module docstring)."""
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
        if args.dtype == "uint16":  # the same frames in a 16-bit data file, chunked the same
            import hdf5plugin

            with h5py.File(path, "r") as f:
                frames = np.minimum(f["/entry/data/data"][()], 65535).astype(np.uint16)
            path = str(Path(tmp) / "data16.h5")
            with h5py.File(path, "w") as f:
                f.create_dataset(
                    "/entry/data/data",
                    data=frames,
                    chunks=(1, *frames.shape[1:]),
                    **hdf5plugin.Bitshuffle(cname="lz4"),
                )
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
