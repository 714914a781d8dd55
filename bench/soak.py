"""Memory soak: 100,000 small frames through the live session (source -> dask workers ->
feature store -> aggregates -> flags), RSS of this process (driver + worker threads) sampled.

The frames are synthesised on the fly by a picklable reader (64 x 64 uint16: Poisson background,
a few Gaussian spots on every third frame), so the figure measures xlive's own per-frame
bookkeeping, not a file format's caches. The run grows by ``--batch`` frames at each poll, as a
fast detector would. Prints RSS every ``--every`` frames and the growth per 10,000 frames
between the first sample and the end (the first samples include warm-up: numba, dask).

    python bench/soak.py --frames 100000            # ~10-20 min on 2 idle cores
    python bench/soak.py --frames 30000 --trace     # + the 15 biggest allocation growths

Aim: no growth beyond caches (bounded histories: ``AggregateParams.history`` frames).
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import gc
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import psutil

from xlive.engine.live import LiveParams, default_client
from xlive.engine.session import LiveSession
from xlive.geometry import Geometry
from xlive.sources.base import FrameReader, Source

SHAPE = (64, 64)


class TinyReader(FrameReader):
    """Frame ``i``: Poisson(2) background, 12 spots of ~500 photons when i % 3 == 0."""

    def _read(self, index: int) -> np.ndarray:
        rng = np.random.default_rng(index)
        frame = rng.poisson(2.0, self.shape).astype(np.float64)
        if index % 3 == 0:
            yy, xx = np.mgrid[: self.shape[0], : self.shape[1]]
            for y, x in rng.uniform(6, self.shape[0] - 6, (12, 2)):
                frame += 500 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 1.0)
        return frame.astype(self.dtype)


class TinySource(Source):
    """A run of ``total`` synthetic frames that grows by ``batch`` frames per refresh."""

    name = "tiny"

    def __init__(self, total: int, batch: int):
        super().__init__()
        self.total, self.batch, self._avail = total, batch, 0
        self.path = None
        self._geom = Geometry.simple(
            shape=SHAPE,
            pixel_size=600e-6,
            distance=0.1,
            beam_center_x=32.0,
            beam_center_y=32.0,
            wavelength=1.0,
        )

    def _count(self) -> int:
        self._avail = min(self.total, self._avail + self.batch)
        return self._avail

    def _make_reader(self) -> FrameReader:
        return TinyReader(shape=SHAPE, dtype=np.uint16, masked_values=(65535,))

    def _header_geometry(self) -> Geometry:
        return self._geom

    def _native_metadata(self, n: int) -> dict[str, np.ndarray]:
        i = np.arange(n)
        return {"frame_number": i, "timestamp": 1.7e9 + i / 1000.0}


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--every", type=int, default=10_000, help="frames between RSS samples")
    p.add_argument("--batch", type=int, default=256, help="frames the run grows per poll")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--trace", action="store_true", help="tracemalloc: top growth sites")
    p.add_argument(
        "--objects",
        action="store_true",
        help="at each sample, the Python object types whose count grew most",
    )
    p.add_argument(
        "--trim",
        action="store_true",
        help="glibc malloc_trim(0) before each sample: memory freed but kept by the "
        "allocator is returned, what remains is held",
    )
    p.add_argument("--out", default=None, help="feature store (default: a temporary folder)")
    a = p.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="xlive-soak-")) / "features.zarr"
    client = default_client(a.workers)
    source = TinySource(a.frames, a.batch)
    session = LiveSession(
        source, out, client=client, params=LiveParams(adaptive=False, poll_interval=0.05)
    )
    samples: list[tuple[int, float, float]] = []
    snap0 = None
    last_counts = None
    t0 = time.time()
    next_sample = 0
    lp = session.processor
    try:
        while True:
            session.step()
            done = lp.stats.frames_stored
            if done >= next_sample:
                gc.collect()
                if a.trim:
                    ctypes.CDLL("libc.so.6").malloc_trim(0)
                samples.append((done, rss_mb(), time.time() - t0))
                print(
                    f"{done:>8} frames  RSS {samples[-1][1]:8.1f} MB  {samples[-1][2]:7.1f} s",
                    flush=True,
                )
                if a.objects:
                    counts = collections.Counter(type(o).__name__ for o in gc.get_objects())
                    if last_counts is not None:
                        grew = (counts - last_counts).most_common(8)
                        print("          grew: " + ", ".join(f"{k} +{v}" for k, v in grew))
                    last_counts = counts
                if a.trace and snap0 is None and done >= a.every:
                    tracemalloc.start(12)
                    snap0 = tracemalloc.take_snapshot()
                next_sample += a.every
            if done >= a.frames and lp.idle:
                break
        session.update_flags()
        gc.collect()
        samples.append((lp.stats.frames_stored, rss_mb(), time.time() - t0))
        print(f"{samples[-1][0]:>8} frames  RSS {samples[-1][1]:8.1f} MB  {samples[-1][2]:7.1f} s")
        if a.trace and snap0 is not None:
            top = tracemalloc.take_snapshot().compare_to(snap0, "lineno")
            print("\nbiggest allocation growths since the tracing started:")
            for stat in top[:15]:
                print(f"  {stat}")
    finally:
        session.close()
        client.close()
    # growth per 10,000 frames: from the second sample (after warm-up) to the end
    (f1, r1, _), (f2, r2, _) = samples[min(1, len(samples) - 1)], samples[-1]
    slope = (r2 - r1) / max(f2 - f1, 1) * 10_000
    print(
        f"\nRSS {r1:.1f} MB at {f1} frames -> {r2:.1f} MB at {f2} frames: "
        f"{slope:+.2f} MB per 10,000 frames ({(f2 - f1) / max(samples[-1][2] - samples[1][2], 1e-9):.0f}"
        " frames/s)"
    )


if __name__ == "__main__":
    main()
