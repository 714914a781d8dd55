"""Time per dashboard update as a run grows from 1k to 100k frames (updates send only new data).

A real LiveSession on a small simulated run provides the source and geometry; its listener is
then fed blocks of real features (analysed from simulated frames, repeated with growing frame
indices), 1000 frames between two updates, as a live run at ~2 kHz with a 0.5 s refresh would.
Every view's ``update`` runs, bokeh models included (attached to a Document, as on a page).

    python bench/views_update.py [--frames 100000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from bokeh.document import Document

from xlive.analyzers import analyze_frames
from xlive.engine.block import Block
from xlive.engine.session import LiveSession
from xlive.simulate import write_run
from xlive.views.layout import Dashboard


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--per-update", type=int, default=1000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="xlive-bench-"))
    write_run(
        tmp / "run",
        frames=64,
        rate=0,
        detector="eiger500k",
        seed=5,
        hit_fraction=0.4,
        laser_on_fraction=0.5,
    )
    session = LiveSession(tmp / "run", tmp / "features.zarr")
    frames = np.stack([session.read_frame(i) for i in range(64)])
    feats = analyze_frames(frames, session.source.geometry, session.processor.analyzers)
    dash = Dashboard(session)
    doc = Document()
    doc.add_root(dash.root)
    block = 100
    t_rows = []
    done = 0
    rng = np.random.default_rng(0)
    while done < args.frames:
        for _ in range(args.per_update // block):
            pick = rng.integers(0, 64, block)
            result = Block(
                np.arange(done, done + block),
                np.zeros(block, bool),
                {k: v[pick] for k, v in feats.items()},
            )
            meta = {
                "laser_on": rng.random(block) < 0.5,
                "frame_number": np.arange(done, done + block),
                "timestamp": time.time() + np.zeros(block),
            }
            session._on_block(result, meta)
            session.latest_hit = int(pick[-1])  # a frame the source can read
            done += block
        t0 = time.perf_counter()
        dash.update()
        t_rows.append((done, time.perf_counter() - t0))
    session.close()
    print(f"{'frames':>8} {'update (ms)':>12}   (median of the 5 updates ending there)")
    arr = np.array(t_rows)
    for mark in (1_000, 5_000, 10_000, 25_000, 50_000, 75_000, 100_000):
        if mark > args.frames:
            break
        k = int(np.searchsorted(arr[:, 0], mark))
        sel = arr[max(0, k - 4) : k + 1, 1]
        print(f"{mark:>8} {1000 * np.median(sel):>12.1f}")
    first, last = arr[: max(1, len(arr) // 10), 1], arr[-max(1, len(arr) // 10) :, 1]
    print(
        f"first 10 %: {1000 * np.median(first):.1f} ms, last 10 %: {1000 * np.median(last):.1f} ms "
        f"per update of {args.per_update} new frames"
    )


if __name__ == "__main__":
    main()
