"""CPU of the live loop's writes: a feature-store write (the default features, ``--frames``
frames a write: 50 was one ``store_interval`` at 100 Hz, 25 now) and a stream-spool publication (20
frames: one ``PUBLISH_INTERVAL`` at 100 Hz), written straight to the chunk files
(:mod:`xlive.sources._chunk_write`, what the store and the spool do) and through zarr (what
they did before), alternated in one run; best of ``--repeat`` rounds.

    python bench/store_write.py
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from xlive.analyzers import default_analyzers
from xlive.engine.block import Block
from xlive.engine.features import analyze_block, coord_parts, feature_specs
from xlive.engine.store import FeatureStore
from xlive.simulate import SimParams, Simulation
from xlive.sources import _chunk_write
from xlive.sources._bslz4 import bslz4_encode
from xlive.sources.stream import spool as spool_mod
from xlive.sources.stream.protocol import Image


class _SimReader:
    def __init__(self, sim):
        self.sim, self.shape, self.dtype = sim, sim.geometry.shape, np.dtype("uint32")

    def read_one(self, i):
        f = self.sim.frame(i)
        return np.asarray(f[0] if isinstance(f, tuple) else f)


def store_write(tmp: Path, per: int, writes: int, direct: bool, feats, specs, coords) -> float:
    """CPU ms per write of ``per`` frames."""
    st = FeatureStore.create(
        tmp / f"f-{direct}-{time.monotonic_ns()}.zarr", specs=specs, coords=coords
    )
    if not direct:  # every array through zarr (as before the chunk writer)
        st._writers = {name: None for name in st._names()}
    n = 0

    def write():
        nonlocal n
        idx = np.arange(n, n + per)
        n += per
        st.write(Block(idx, np.zeros(per, bool), feats), {"timestamp": idx + 1e9})

    write()
    t0 = time.process_time()
    for _ in range(writes):
        write()
    return (time.process_time() - t0) / writes * 1e3


def spool_publish(tmp: Path, per: int, rounds: int, direct: bool) -> float:
    """CPU ms per publication of ``per`` frames."""
    saved = spool_mod.direct_layout, spool_mod.update_attrs
    if not direct:
        spool_mod.direct_layout = lambda a: False
        spool_mod.update_attrs = lambda g, attrs: g.attrs.update(attrs)
    try:
        sp = spool_mod.Spool(tmp / f"s-{direct}-{time.monotonic_ns()}.zarr")
        blob = bslz4_encode(np.zeros((64, 64), np.uint16))
        k = 0

        def image():
            nonlocal k
            sp.image(Image(1, k, (64, 64), np.dtype("uint16"), "bslz4", blob, 1e9 + k))
            k += 1

        image()
        sp.current.publish()
        cpu = 0.0
        for _ in range(rounds):
            for _ in range(per):
                image()
            t0 = time.process_time()
            sp.current.publish()
            cpu += time.process_time() - t0
        return cpu / rounds * 1e3
    finally:
        spool_mod.direct_layout, spool_mod.update_attrs = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=50, help="frames per store write")
    ap.add_argument("--writes", type=int, default=20, help="store writes per round")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    assert _chunk_write.direct_layout  # the module under test
    sim = Simulation(SimParams(detector="eiger500k"))
    analyzers = default_analyzers(sim.geometry)
    specs, coords = feature_specs(analyzers), coord_parts(analyzers)
    b = analyze_block(_SimReader(sim), analyzers, np.arange(4))
    feats = {
        k: np.concatenate([v] * (args.frames // 4 + 1))[: args.frames]
        for k, v in b.features.items()
    }
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    res = {("store", True): [], ("store", False): [], ("spool", True): [], ("spool", False): []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):  # alternated: direct, zarr, direct, zarr...
            for direct in (True, False):
                res["store", direct].append(
                    store_write(Path(tmp), args.frames, args.writes, direct, feats, specs, coords)
                )
                res["spool", direct].append(spool_publish(Path(tmp), 20, 20, direct))
    print(f"CPU ms per operation (best of {args.repeat}; load now {os.getloadavg()[0]:.1f}):")
    print(f"  {'':44s} {'direct':>8s} {'zarr':>8s} {'ratio':>6s}")
    for what, label in (
        ("store", f"feature-store write ({args.frames} frames, {len(specs)} features)"),
        ("spool", "spool publication (20 frames)"),
    ):
        d, z = min(res[what, True]), min(res[what, False])
        print(f"  {label:44s} {d:8.2f} {z:8.2f} {z / d:6.2f}")


if __name__ == "__main__":
    main()
