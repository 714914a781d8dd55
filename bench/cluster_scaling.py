"""Cores, network and storage a detector needs: per-frame CPU of the worker path, measured here,
scaled to a frame rate (all frames, or a sample). The numbers behind docs/scaling.md.

For each detector model a short simulated run is written (Zarr, Blosc bitshuffle-LZ4 as the
simulator writes it), then one thread runs exactly what a dask worker runs per frame:
``analyze_block`` on one frame (read and decode the chunk, the default analyzers, the default
reducers). CPU time is measured with ``time.thread_time`` (it counts this thread only, so other
processes on a busy machine inflate it less than wall time; caches and memory bandwidth are
still shared). The first frame of each detector warms numba up and is not counted.

Cores needed = rate x fraction x CPU s/frame / efficiency, where efficiency is the measured
parallel efficiency of several workers on one machine (bench/workers_scaling.py: 2 worker
processes gave 1.79x one, so 0.9). Network = the compressed frames the workers read (only the
sampled ones); storage = what the detector writes (every frame, compressed) plus the features.

With ``--realdata`` the real Pilatus 6M thaumatin frames (../shared/realdata) are compressed with
the same codec, to compare the simulated frames' compression with measured crystal frames.

    python bench/cluster_scaling.py --frames 12
    python bench/cluster_scaling.py --frames 12 --realdata ../shared/realdata
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from xlive.aggregate.reducers import default_reducers
from xlive.analyzers import default_analyzers
from xlive.engine.features import analyze_block
from xlive.simulate import write_run
from xlive.sources import open_source

#: (label, detector model, frames per second) of the cases in the issue
CASES = [
    ("EIGER2 16M at 133 Hz", "eiger16m", 133.0),
    ("JUNGFRAU 4M at 1 kHz", "jungfrau4m", 1000.0),
    ("EIGER2 4M at 500 Hz", "eiger4m", 500.0),
]


def measure(detector: str, frames: int, folder: Path) -> dict:
    """CPU s per frame (median, mean), compressed bytes per frame, feature bytes per frame."""
    run = folder / detector
    write_run(run, frames=frames + 1, rate=0, detector=detector, seed=3, hit_fraction=0.3)
    src = open_source(run)
    src.refresh()
    geom = src.geometry
    analyzers, reducers = default_analyzers(geom), default_reducers(geom)
    reader = src.reader
    analyze_block(reader, analyzers, np.array([0]), reducers)  # numba loads its kernels
    cpu, feature_bytes = [], []
    for i in range(1, frames + 1):
        t0 = time.thread_time()
        out = analyze_block(reader, analyzers, np.array([i]), reducers)
        cpu.append(time.thread_time() - t0)
        feature_bytes.append(
            sum(v.nbytes for v in out.features.values()) + out.bad.nbytes + out.frames.nbytes
        )
    chunks = [
        p
        for p in (run / "run.zarr").rglob("*")
        if p.is_file() and "frames" in p.parts and p.name not in ("zarr.json",)
    ]
    stored = sum(p.stat().st_size for p in chunks)
    shape = reader.shape
    return dict(
        cpu_median=statistics.median(cpu),
        cpu_mean=statistics.fmean(cpu),
        bytes_frame=stored / (frames + 1),
        raw_frame=int(np.prod(shape)) * np.dtype(reader.dtype).itemsize,
        pixels=int(np.prod(shape)),
        feature_bytes=statistics.fmean(feature_bytes),
    )


def realdata_ratio(folder: Path) -> list[float]:
    """Bits per pixel of the real Pilatus 6M thaumatin frames with the simulator's codec."""
    import fabio
    import numcodecs

    codec = numcodecs.Blosc(cname="lz4", clevel=1, shuffle=numcodecs.Blosc.BITSHUFFLE)
    files = sorted((folder / "pilatus6M_thaumatin_grid").glob("*.cbf*"))
    if not files:
        print(f"no frames in {folder / 'pilatus6M_thaumatin_grid'}")
        return []
    bits = []
    for f in files:
        data = fabio.open(str(f)).data.astype(np.int32)
        # as an EIGER writes counts: unsigned, gaps and bad pixels at the maximum value
        data = np.where(data < 0, np.iinfo(np.uint32).max, data).astype(np.uint32)
        size = len(codec.encode(np.ascontiguousarray(data)))
        bits.append(8 * size / data.size)
        print(f"  real {f.name}: {bits[-1]:.2f} bits/pixel (uint32, Blosc bitshuffle-LZ4)")
    return bits


def rates_table(results: dict, sample: float, bits: float | None = None) -> None:
    """Network (frames the workers read) and storage (every frame written) per case, with the
    simulated frames' compression, or ``bits`` per pixel."""
    print(
        f"{'case':<22} {'fraction':>8} {'network MB/s':>13} {'Gbit/s':>7} "
        f"{'storage MB/s':>13} {'uncompressed MB/s':>18}"
    )
    for label, det, rate in CASES:
        r = results[det]
        size = r["bytes_frame"] if bits is None else bits * r["pixels"] / 8
        for frac in (1.0, sample):
            net = rate * frac * size
            print(
                f"{label:<22} {frac:>8.0%} {net / 1e6:>13.0f} {8 * net / 1e9:>7.2f} "
                f"{rate * size / 1e6:>13.0f} {rate * r['raw_frame'] / 1e6:>18.0f}"
            )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=12, help="frames timed per detector")
    ap.add_argument(
        "--efficiency",
        type=float,
        default=0.9,
        help="parallel efficiency of workers (default 0.9: bench/workers_scaling.py)",
    )
    ap.add_argument("--sample", type=float, default=0.1, help="sampled fraction (default 0.1)")
    ap.add_argument(
        "--realdata",
        type=Path,
        default=None,
        help="../shared/realdata: compare compression with real Pilatus 6M frames",
    )
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            det: measure(det, args.frames, Path(tmp)) for det in sorted({d for _, d, _ in CASES})
        }
    print("\nper frame, one thread (worker path: read + decode + analyzers + reducers)")
    print(
        f"{'detector':<11} {'Mpixel':>7} {'CPU ms median':>14} {'mean':>7} {'ns/pixel':>9} "
        f"{'stored MB':>10} {'raw MB':>7} {'bits/px':>8} {'features kB':>12}"
    )
    for det, r in results.items():
        print(
            f"{det:<11} {r['pixels'] / 1e6:>7.2f} {1e3 * r['cpu_median']:>14.1f} "
            f"{1e3 * r['cpu_mean']:>7.1f} {1e9 * r['cpu_median'] / r['pixels']:>9.2f} "
            f"{r['bytes_frame'] / 1e6:>10.2f} {r['raw_frame'] / 1e6:>7.1f} "
            f"{8 * r['bytes_frame'] / r['pixels']:>8.2f} {r['feature_bytes'] / 1e3:>12.1f}"
        )
    print(f"\ncores needed (efficiency {args.efficiency}), network to the workers, storage written")
    print(
        f"{'case':<22} {'fraction':>8} {'cores':>6} {'network MB/s':>13} {'Gbit/s':>7} "
        f"{'storage MB/s':>13} {'features MB/s':>14}"
    )
    for label, det, rate in CASES:
        r = results[det]
        for frac in (1.0, args.sample):
            cores = math.ceil(rate * frac * r["cpu_median"] / args.efficiency)
            net = rate * frac * r["bytes_frame"]
            store = rate * r["bytes_frame"]
            feats = rate * frac * r["feature_bytes"]
            print(
                f"{label:<22} {frac:>8.0%} {cores:>6d} {net / 1e6:>13.0f} "
                f"{8 * net / 1e9:>7.2f} {store / 1e6:>13.0f} {feats / 1e6:>14.2f}"
            )
    if args.realdata is not None:
        print("\ncompression of measured crystal frames with the same codec:")
        bits = realdata_ratio(args.realdata)
        if bits:
            print(
                f"\nnetwork and storage if frames compress like the least compressible "
                f"measured frame ({max(bits):.2f} bits/pixel):"
            )
            rates_table(results, args.sample, max(bits))


if __name__ == "__main__":
    main()
