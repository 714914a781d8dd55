"""Write frames into an HDF5 file in SWMR mode (a growing-file fixture for tests and demos).

The file is created with ``libver='latest'``; ``/entry/data/data`` (N, H, W) is chunked (1, H, W)
with bitshuffle-LZ4 and unlimited ``maxshape``; ``/entry/data/frames_complete`` (1,) is written
and flushed *after* each frame's data, so readers never count a frame whose chunk is not flushed.

    python -m xlive.simulate.write_swmr OUT.h5 --frames 20 --rate 50 --shape 64 80
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np


def frame_value(i: int, shape: tuple[int, int]) -> np.ndarray:
    """The deterministic test frame i (readers can check every pixel)."""
    ny, nx = shape
    return ((np.arange(ny * nx, dtype=np.uint32).reshape(ny, nx) + 7 * i) % 1000).astype(np.uint16)


def write_swmr(
    path: str | Path,
    *,
    frames: int,
    rate: float,
    shape: tuple[int, int],
    ready: str | Path | None = None,
) -> None:
    """Write ``frames`` frames at ``rate`` Hz (0: as fast as possible)."""
    with h5py.File(path, "w", libver="latest") as f:
        g = f.require_group("/entry/data")
        d = g.create_dataset(
            "data",
            shape=(0, *shape),
            maxshape=(None, *shape),
            chunks=(1, *shape),
            dtype="uint16",
            **hdf5plugin.Bitshuffle(),
        )
        c = g.create_dataset("frames_complete", shape=(1,), dtype="int64", data=[0])
        f.swmr_mode = True
        if ready:
            Path(ready).touch()
        t0 = time.monotonic()
        for i in range(frames):
            if rate > 0:
                time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            d.resize((i + 1, *shape))
            d[i] = frame_value(i, shape)
            d.flush()
            c[0] = i + 1
            c.flush()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Write a growing SWMR HDF5 file.")
    p.add_argument("out")
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--rate", type=float, default=50.0)
    p.add_argument("--shape", type=int, nargs=2, default=(64, 80))
    p.add_argument("--ready", default=None, help="touch this file once readers may open")
    a = p.parse_args(argv)
    write_swmr(a.out, frames=a.frames, rate=a.rate, shape=tuple(a.shape), ready=a.ready)


if __name__ == "__main__":
    main()
