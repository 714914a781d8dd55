"""xlive's per-frame analyzers side by side with pyFAI and OM's peakfinder8, one thread.

Usage::

    NUMBA_NUM_THREADS=1 OMP_NUM_THREADS=1 python bench/compare_peers.py \
        --detector eiger4m --detector eiger16m --frames 20

Peers: ``pip install -e ".[bench]"`` (pyFAI, ondamonitor). Single-threaded: the thread
variables above are set by this script before numpy, numba and pyFAI load (xlive's kernels are
not parallel anyway; pyFAI's OpenMP and BLAS would be). All tools see the same simulated uint32
frames (hit fraction 0.5; ``--preset hard``: the harder simulator). Prints ms/frame, speed
ratios and spot recall (truth SNR >= 10) and precision against the simulator's truth, then
recall, precision, duplicates and artefacts by :mod:`xlive.simulate.scoring` for xlive and
peakfinder8 normal and fast side by side. ``--method threshold|integrated`` picks xlive's spot
finder (default: the library's).

Times are CPU seconds of this process (all tools are single-threaded), best of ``--repeat``
round-robin rounds. The *memory floor* is the time ``np.max`` takes over one frame: one read
of the frame at memory bandwidth, the least any per-frame analysis can cost.
"""

from __future__ import annotations

import os

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

np.float64 = np.float64  # OM's wrapper module uses it (removed in NumPy 2); see peers.md
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "analyzers"))


def timed(fn, frames):
    """Mean ms per frame of ``fn`` over ``frames`` (after one warm-up call): CPU time of this
    process, which is the work of the one thread every tool runs on; unlike wall time it does
    not count the time other jobs on a loaded machine hold the cores."""
    fn(frames[0])
    t0 = time.process_time()
    for f in frames:
        fn(f)
    return (time.process_time() - t0) / len(frames) * 1e3


def run(
    detector: str, n_frames: int, repeat: int, preset: str | None = None, method: str | None = None
) -> None:
    from conftest import recall_precision
    from peers_om import OMPeakfinder8
    from pyFAI.integrator.azimuthal import AzimuthalIntegrator

    from xlive.analyzers import FrameAnalyzer, FrameStats, RadialProfile, SpotFinder
    from xlive.analyzers.spots import SpotParams
    from xlive.simulate import SimParams, Simulation

    sp = SpotParams(method=method) if method else SpotParams()

    if preset:  # e.g. the "hard" simulator runs of issue 16
        sim = Simulation(SimParams.preset(preset, detector=detector, seed=1))
    else:
        sim = Simulation(SimParams(detector=detector, seed=1, hit_fraction=0.5))
    g = sim.geometry
    pairs = [sim.frame(i) for i in range(n_frames)]
    frames = [f for f, _ in pairs]
    truths = [t for _, t in pairs]
    n_bins = 500
    radial = RadialProfile(g)
    spots = SpotFinder(g, sp)
    stats = FrameStats(g)
    full = FrameAnalyzer(g, spots=sp)
    bx, by = g.beam_center
    px = g.pixel_size
    ai = AzimuthalIntegrator(
        dist=g.distance,
        poni1=by * px,
        poni2=bx * px,
        pixel1=px,
        pixel2=px,
        wavelength=g.wavelength * 1e-10,
    )
    mask = np.array(g.maps.mask, np.int8)

    def pyfai(method):
        return lambda f: ai.integrate1d(f, n_bins, unit="q_nm^-1", method=method, mask=mask)

    pf8 = OMPeakfinder8(g)
    pf8_fast = OMPeakfinder8(g, fast=True)
    csc = pyfai(("no", "csc", "cython"))
    tools = {
        "memory floor (np.max)": np.max,
        "xlive radial_profile": radial,
        "pyFAI integrate1d csc": csc,
        "pyFAI integrate1d histogram": pyfai(("no", "histogram", "cython")),
        "xlive spots (+hit, spot stats)": spots,
        "OM peakfinder8 normal": pf8,
        "OM peakfinder8 fast": pf8_fast,
        "xlive frame stats": stats,
        "xlive full per-frame set (FrameAnalyzer)": full,
        "xlive three separate analyzers": lambda f: (radial(f), spots(f), stats(f)),
        "peakfinder8 + pyFAI csc": lambda f: (pf8(f), csc(f)),
    }
    t = dict.fromkeys(tools, np.inf)
    for _ in range(repeat):  # round robin, so bursts of other jobs hit every tool alike
        for name, fn in tools.items():
            t[name] = min(t[name], timed(fn, frames))
    found = {
        "xlive": [spots.find(f)[:, :2] for f in frames],
        "peakfinder8 normal": [pf8(f)[:, :2] for f in frames],
        "peakfinder8 fast": [pf8_fast(f)[:, :2] for f in frames],
    }
    try:  # the simulator's scorer (expected spots, duplicates, artefacts), where it exists
        from xlive.simulate.scoring import score
    except ImportError:
        score = None
    acc = {k: recall_precision(v, truths) for k, v in found.items()}
    load = os.getloadavg()
    print(
        f"\n## {g.description} {g.shape[0]} x {g.shape[1]} uint32, {n_frames} frames "
        f"{f'(preset {preset}) ' if preset else ''}"
        f"({sum(t_.hit for t_ in truths)} hits), spot finder {sp.method!r}, one thread, "
        "CPU ms/frame, "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}\n"
    )
    print(
        f"memory floor: np.max over one frame ({frames[0].nbytes / 1e6:.1f} MB read once) = "
        f"{t['memory floor (np.max)']:.2f} ms\n"
    )
    print("| what | ms/frame |\n|---|---:|")
    for k, v in t.items():
        print(f"| {k} | {v:.2f} |")
    r = t
    print("\n| ratio | value | target |\n|---|---:|---:|")
    print(
        f"| pyFAI csc / xlive radial | {r['pyFAI integrate1d csc'] / r['xlive radial_profile']:.1f} | >= 5 |"
    )
    print(
        f"| pyFAI histogram / xlive radial | {r['pyFAI integrate1d histogram'] / r['xlive radial_profile']:.1f} | |"
    )
    print(
        f"| peakfinder8 normal / xlive spots | {r['OM peakfinder8 normal'] / r['xlive spots (+hit, spot stats)']:.1f} | >= 3 |"
    )
    print(
        f"| peakfinder8 fast / xlive spots | {r['OM peakfinder8 fast'] / r['xlive spots (+hit, spot stats)']:.1f} | >= 2 |"
    )
    print(
        f"| (peakfinder8 + pyFAI) / xlive full set | {r['peakfinder8 + pyFAI csc'] / r['xlive full per-frame set (FrameAnalyzer)']:.1f} | >= 10 |"
    )
    print(
        f"| xlive full set / memory floor | {r['xlive full per-frame set (FrameAnalyzer)'] / r['memory floor (np.max)']:.1f} | <= 15 |"
    )
    print(
        f"\n{g.description} ({sp.method}): full set "
        f"{r['xlive full per-frame set (FrameAnalyzer)']:.2f} ms = "
        f"{r['peakfinder8 + pyFAI csc'] / r['xlive full per-frame set (FrameAnalyzer)']:.1f}x "
        f"(peakfinder8 normal + pyFAI csc) [target >= 10], "
        f"{r['xlive full per-frame set (FrameAnalyzer)'] / r['memory floor (np.max)']:.1f}x "
        f"the memory floor [target <= 15]"
    )
    print("\n| spot finder | recall (SNR >= 10) | precision | truth spots |\n|---|---:|---:|---:|")
    for k, (rec, prec, n) in acc.items():
        print(f"| {k} | {rec:.4f} | {prec:.4f} | {n} |")
    if score is not None:
        print(
            "\nscored by xlive.simulate.scoring (expected: SNR >= 10, unmasked, not blended)\n\n"
            "| spot finder | recall | precision | duplicates | artefacts | expected |\n"
            "|---|---:|---:|---:|---:|---:|"
        )
        for k, v in found.items():
            sc = score(v, truths)
            print(
                f"| {k} | {sc.recall:.4f} | {sc.precision:.4f} | {sc.n_duplicates} | "
                f"{sc.n_artefacts} | {sc.n_expected} |"
            )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--detector",
        action="append",
        help="eiger4m, eiger16m, eiger1m, ... (repeatable; default: eiger4m and eiger16m)",
    )
    ap.add_argument("--frames", type=int, default=20, help="frames per detector (default 20)")
    ap.add_argument(
        "--preset",
        help='simulator preset (e.g. "hard": broad weak spots, crowded frames, zingers); '
        "default: the standard simulator with hit fraction 0.5",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="timing rounds over all tools (round robin), best kept per tool",
    )
    ap.add_argument(
        "--method",
        choices=("threshold", "integrated"),
        help="xlive's spot-finding method (SpotParams.method); default: the library default",
    )
    args = ap.parse_args(argv)
    for det in args.detector or ["eiger4m", "eiger16m"]:
        run(det, args.frames, args.repeat, args.preset, args.method)


if __name__ == "__main__":
    main()
