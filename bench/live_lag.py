"""Live lag and sampling: `xlive simulate` writes Eiger frames in one process while the live
loop (the engine of `xlive process --live`) runs in this one, started and warmed up before the
run begins, as a monitor is at a beamline. Prints the lag (frame timestamp -> features stored)
percentiles, frames computed and skipped, then fills in the skipped frames. Lag runs from the
moment a frame is written (first seen complete) to the moment its features are stored.

    python bench/live_lag.py --rate 20 --frames 400      # goal: every frame, p95 lag < 2 s
    python bench/live_lag.py --rate 200 --frames 2000    # goal: lag < 5 s by sampling, fill-in completes
    python bench/live_lag.py --replay --rate 100 --frames 3000   # goal: every frame, p95 lag < 1 s

Goals (issues 5 and 16) are for --detector eiger4m on a 2-core machine.

``--replay``: a cheap sender instead of the simulator. ``--distinct`` frames are simulated once
(``xlive simulate``), bitshuffle-LZ4 encoded once by the Eiger stream sender
(``python -m xlive.sources.stream.sender --zarr``) and replayed over the Eiger stream (V1,
zeromq on 127.0.0.1) at ``--rate``; the live loop receives them as ``xlive process --live
tcp://...`` does (``open_source(tcp://..., spool=...)``: a receiver spooling to Zarr, frames
read and decompressed on the workers, analysed, stored); the receiver runs as its own
process (``--receiver process``, the default, as ``xlive process --live tcp://...`` starts it)
or as a thread of the live process (``--receiver thread``). The frames are replayed as 16-bit
pixels, as EIGER streams carry them (``--dtype uint16``, the default: counts above 65534 become
65535, the 16-bit gap/overflow marker; the analyzers' geometry says so), or with
``--dtype uint32`` as the simulator wrote them. Lag runs from the moment a poll of the spool first sees a frame
to its features stored; the age runs from the sender's timestamp (the moment it sent the frame).
The last line is ``computed=N/M p95_lag=X.XXs`` (N frames computed live of M sent).
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from xlive.aggregate.reducers import default_reducers
from xlive.analyzers import default_analyzers
from xlive.engine.live import LiveParams, LiveProcessor, default_client, fill_in, warm_up
from xlive.engine.store import DONE, SKIPPED, FeatureStore
from xlive.simulate import SimParams, Simulation
from xlive.sources import open_source


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rate", type=float, default=20)
    ap.add_argument("--frames", type=int, default=400)
    ap.add_argument("--detector", default="eiger4m")
    ap.add_argument("--budget", type=float, default=4.0, help="latency budget of the live loop")
    ap.add_argument("--trace", action="store_true", help="print the loop's state as it runs")
    ap.add_argument("--no-sampling", action="store_true", help="compute every frame, however late")
    ap.add_argument(
        "--replay",
        action="store_true",
        help="replay frames encoded once over the Eiger stream (instead of simulating each)",
    )
    ap.add_argument("--distinct", type=int, default=8, help="--replay: distinct frames cycled")
    ap.add_argument(
        "--replay-run",
        help="--replay: an `xlive simulate` run whose frames to replay (default: simulate "
        "--distinct frames of --detector)",
    )
    ap.add_argument(
        "--receiver",
        choices=("process", "thread"),
        default="process",
        help="--replay: the stream receiver in its own process (python -m "
        "xlive.sources.stream.receiver) or as a thread of the live process",
    )
    ap.add_argument(
        "--dtype",
        choices=("uint16", "uint32"),
        default=None,
        help="--replay: pixel type sent; default uint16, as EIGER streams carry them (counts "
        "above 65534 sent as 65535, the 16-bit gap/overflow marker); uint32: the simulator's",
    )
    ap.add_argument(
        "--stages",
        action="store_true",
        help="CPU ms per frame of each stage of the live path on one thread (decode, analysis, "
        "reducers, store), uint32 and uint16 side by side, best of --repeat; then exit",
    )
    ap.add_argument("--repeat", type=int, default=3, help="--stages: rounds (best taken)")
    ap.add_argument(
        "--processes",
        action="store_true",
        help="dask worker processes (one thread each) instead of threads of this process",
    )
    args = ap.parse_args()
    if args.replay and args.dtype is None:
        args.dtype = "uint16"
    if args.stages:
        stages(args)
        return
    sim = Simulation(SimParams(detector=args.detector))
    geometry, dtype = sim.geometry, np.dtype(args.dtype or sim.detector.dtype)
    if dtype != np.dtype(sim.detector.dtype):
        # the simulator declares its 32-bit gap marker; a 16-bit stream marks with 65535 (the
        # undeclared rule: the dtype's maximum), as the stream's own header geometry says
        geometry = geometry.replace(sentinels=None)
    client = default_client(processes=args.processes)
    # the monitor is ready before the run starts: analyzers built, kernels loaded
    analyzers, reducers = default_analyzers(geometry), default_reducers(geometry)
    client.run(warm_up, analyzers, geometry.shape, dtype, reducers)
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        run, feats = Path(tmp) / "run", Path(tmp) / "features.zarr"
        if args.replay:
            replay(args, client, analyzers, reducers, run, feats)
            client.close()
            client.cluster.close()
            return
        writer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "xlive.cli",
                "simulate",
                str(run),
                "--frames",
                str(args.frames),
                "--rate",
                str(args.rate),
                "--detector",
                args.detector,
                "-q",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        while not (run / "run.zarr" / "zarr.json").exists():
            time.sleep(0.02)
        src = open_source(run)
        params = LiveParams(latency_budget=args.budget, adaptive=not args.no_sampling)
        stored_at: list[float] = []  # wall time each frame's features were stored, in order
        with LiveProcessor(
            src,
            feats,
            client=client,
            params=params,
            analyzers=analyzers,
            reducers=reducers,
            listeners=[lambda r, m: stored_at.extend([time.time()] * len(r))],
        ) as lp:
            t0 = time.time()
            while writer.poll() is None or not lp.idle or src.refresh() > lp.frames_seen:
                if lp.step() and args.trace:
                    print(
                        f"t={time.time() - t0:5.1f}s seen {lp.frames_seen} stored "
                        f"{lp.stats.frames_stored} queued {len(lp._queue)} skipped "
                        f"{lp.stats.frames_skipped} lag {lp.stats.lags[-1]:.2f}s"
                    )
            lags = np.asarray(lp.stats.lags)
            ages = np.asarray(lp.stats.ages)
        print(writer.communicate()[0].strip())
        status = FeatureStore.open(feats).status()
        done, skipped = int(np.sum(status == DONE)), int(np.sum(status == SKIPPED))
        print(
            f"rate {args.rate:g} Hz, {args.frames} {args.detector} frames: computed {done}, "
            f"skipped {skipped}"
        )
        print(
            f"lag (s), all frames: median {np.median(lags):.2f}, "
            f"p95 {np.percentile(lags, 95):.2f}, max {lags.max():.2f}"
        )
        if ages.size:
            print(
                f"age (s) from the detector timestamp (adds the writer's own delay): median "
                f"{np.median(ages):.2f}, p95 {np.percentile(ages, 95):.2f}"
            )
        steady = lags[np.asarray(stored_at) > t0 + 10.0]
        if steady.size:
            print(
                f"lag (s) after the first 10 s (start-up absorbed): median "
                f"{np.median(steady):.2f}, p95 {np.percentile(steady, 95):.2f}, "
                f"max {steady.max():.2f} over {steady.size} frames"
            )
        t1 = time.time()
        stats = fill_in(src, feats, client=client)
        status = FeatureStore.open(feats).status()
        print(
            f"fill-in: {stats.frames_stored} frames in {time.time() - t1:.1f} s; now "
            f"{int(np.sum(status == DONE))} of {args.frames} frames done"
        )
    client.close()
    client.cluster.close()


def stages(args) -> None:
    """CPU (``time.process_time`` of this process, which runs nothing else meanwhile: the
    decoder's OpenMP threads and zarr's I/O threads count; best of ``--repeat`` rounds) per
    frame of each stage a live frame goes through, on ``--distinct`` frames of
    ``--replay-run`` (or simulated), for 32- and 16-bit pixels. Little affected by the load
    of other processes, unlike wall-clock lags."""
    import zarr

    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.replay_run) if args.replay_run else Path(tmp) / "run"
        if not args.replay_run:
            _simulate(args, run)
        g = zarr.open_group(str(run / "run.zarr"), mode="r")
        n = min(args.distinct, g["frames"].shape[0])
        raw = [np.asarray(g["frames"][i]) for i in range(n)]
        sim = Simulation(SimParams(detector=args.detector))
        print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        rows = {d: _stage_row(args, d, raw, sim, Path(tmp)) for d in ("uint32", "uint16")}
    print(f"CPU ms per frame, stage by stage ({args.detector}, best of {args.repeat}):")
    print(f"  {'stage':44s} {'uint32':>8s} {'uint16':>8s}")
    for (_, v32), (detail, v16) in zip(rows["uint32"].items(), rows["uint16"].items(), strict=True):
        print(f"  {detail:44s} {v32:8.2f} {v16:8.2f}")
    totals = [sum(r.values()) for r in rows.values()]
    print(f"  {'sum':44s} {totals[0]:8.2f} {totals[1]:8.2f}")
    if WHOLE:
        label = "whole worker task (analyze_block, 8 frames)"
        print(f"  {label:44s} {WHOLE['uint32']:8.2f} {WHOLE['uint16']:8.2f}")
    cores = os.cpu_count() or 1
    print(
        f"{args.rate:g} Hz on {cores} cores leaves {cores * 1e3 / args.rate:.1f} ms of CPU per "
        "frame for everything (sender, receiver, these stages, dask and the loop)"
    )


def _best(fn, n: int, repeat: int) -> float:
    """Best CPU ms per call of ``fn(k)`` for k in range(n) over ``repeat`` rounds."""
    fn(0)  # warm: numba caches, buffers
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        for k in range(n):
            fn(k)
        times.append((time.process_time() - t0) / n)
    return min(times) * 1e3


def _stage_row(args, dtype: str, raw: list, sim, tmp: Path) -> dict[str, float]:
    """CPU ms per frame of each stage for ``dtype`` pixels (see :func:`stages`)."""
    from xlive.engine.block import Block
    from xlive.engine.features import analyze_block, coord_parts, feature_specs
    from xlive.sources._bslz4 import bslz4_decode, bslz4_encode

    # as the sender sends them (xlive.sources.stream.sender.as_pixels; inlined so that this
    # bench also runs against older trees for before/after figures)
    frames = [np.clip(f, 0, np.iinfo(dtype).max).astype(dtype) for f in raw]
    n, rep = len(frames), args.repeat
    geometry = sim.geometry.replace(sentinels=None)  # the dtype's maximum marks gaps
    analyzers, reducers = default_analyzers(geometry), default_reducers(geometry)
    files = []
    for k, f in enumerate(frames):  # chunk files as the receiver spools them
        files.append(tmp / f"{dtype}-{k}")
        files[-1].write_bytes(bslz4_encode(f))
    shape, dt = frames[0].shape, frames[0].dtype
    row: dict[str, float] = {}
    row["read + bitshuffle-LZ4 decode"] = _best(
        lambda k: _decode(bslz4_decode, files[k].read_bytes(), dt, shape), n, rep
    )
    results: list[dict] = [{} for _ in frames]

    def analyse(k):
        for an in analyzers:
            results[k].update(an(frames[k][None]))

    row["analysis (default analyzers)"] = _best(analyse, n, rep)
    hits = np.array([bool(np.asarray(res["is_hit"])[0]) for res in results])
    proj, hot = reducers
    # projections: hits and every stride-th frame, added into the worker's running images
    share = hits.mean() + (1 - hits.mean()) / proj.stride
    one = Block(np.array([1]), np.zeros(1, bool), {"is_hit": np.array([True])})
    into = proj(frames[0][None], one, None)
    per_hit = _best(lambda k: proj(frames[k][None], one, into), n, rep)
    row[f"projections ({per_hit:.1f} ms x {share:.2f} of frames)"] = per_hit * share
    sampled = Block(np.array([0]), np.zeros(1, bool), {"is_hit": np.array([False])})
    per_sample = _best(lambda k: hot(frames[k][None], sampled, None), n, rep)
    row[f"hot pixels ({per_sample:.1f} ms / {hot.stride})"] = per_sample / hot.stride
    # the worker's whole task as the live loop runs it (analyze_block on blocks of 8 frames
    # read from the chunk files: read, decode, analyses, reducers and its own Python), to
    # compare with the sum of the stages above
    reader = _ChunkFiles(files, shape, dt)
    hold = (f"stages-{dtype}", 1e9)
    WHOLE[dtype] = (
        _best(
            lambda k: analyze_block(reader, analyzers, np.arange(8 * k, 8 * k + 8), reducers, hold),
            n,
            rep,
        )
        / 8
    )
    # the store: one write per store interval (0.5 s: 50 frames at 100 Hz)
    per = max(1, int(round(args.rate * LiveParams().store_interval)))
    store = FeatureStore.create(
        tmp / f"{dtype}.zarr", specs=feature_specs(analyzers), coords=coord_parts(analyzers)
    )
    feats = {k: np.concatenate([results[i % n][k] for i in range(per)]) for k in results[0]}
    written = [0]

    def write(_k):
        idx = np.arange(written[0], written[0] + per)
        written[0] += per
        store.write(Block(idx, np.zeros(per, bool), feats), {"timestamp": idx + 1e9})

    row[f"store write ({per} frames a write)"] = _best(write, 4, rep) / per
    return row


#: CPU ms per frame of the whole worker task, by dtype (see _stage_row)
WHOLE: dict[str, float] = {}


class _ChunkFiles:
    """Frames from bitshuffle-LZ4 chunk files, cycled (as ZarrSegmentsReader reads the
    spool, without the spool's folders)."""

    def __init__(self, files, shape, dtype):
        self.files, self.shape, self.dtype = files, shape, dtype

    def read_one(self, index: int) -> np.ndarray:
        from xlive.sources._bslz4 import bslz4_decode

        blob = self.files[index % len(self.files)].read_bytes()
        return _decode(bslz4_decode, blob, self.dtype, self.shape)


def _decode(bslz4_decode, blob, dtype, shape):
    """As the spool's reader decodes (read-only frames, DECTRIS's decoder); trees before
    ``writable=`` decode with bitshuffle."""
    try:
        return bslz4_decode(blob, dtype=dtype, shape=shape, writable=False)
    except TypeError:
        return bslz4_decode(blob, dtype=dtype, shape=shape)


def _workers_cpu(client, args) -> float:
    """CPU seconds of the dask worker processes (0 with threads: they are in this process)."""
    if not args.processes:
        return 0.0
    return sum(client.run(time.process_time).values())


def _cpu(who) -> float:
    """User + system CPU seconds of this process (all threads) or of its waited-for children."""
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of this process's live threads now, summed by what they do
    (Python thread names mapped through ``native_id``; Linux /proc only). Threads that ended
    are missing: read it while the loop's threads run."""
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        name = names.get(int(task.name), "other (threads not started by Python)")
        group = next((label for p, label in THREAD_GROUPS if name.startswith(p)), name)
        out[group] = out.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


#: Python thread-name prefixes -> what those threads do
THREAD_GROUPS = (
    ("0-Dask-Default-Threads", "dask worker threads (read, decode, analyse, reduce)"),
    ("xlive-store", "store writer threads"),
    ("zarr_io", "zarr's I/O loop"),
    ("asyncio_", "zarr's asyncio executor threads"),
    ("IO loop", "dask's event loop (scheduler, worker, client)"),
    ("MainThread", "driver (live loop: poll, schedule, gather, store calls)"),
    ("xlive-stream-receiver", "stream receiver thread"),
)


def _print_cpu(before: dict[str, float], after: dict[str, float], frames: int) -> None:
    """CPU ms per frame by thread group between two :func:`thread_cpu` readings."""
    rows = {k: after[k] - before.get(k, 0.0) for k in after}
    total = sum(rows.values())
    print(f"CPU of the live process by thread, ms per received frame ({frames} frames):")
    for k, v in sorted(rows.items(), key=lambda kv: -kv[1]):
        if v * 1e3 / frames >= 0.05:
            print(f"  {v * 1e3 / frames:7.2f}  {k}")
    print(f"  {total * 1e3 / frames:7.2f}  total")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replay(args, client, analyzers, reducers, run: Path, feats: Path) -> None:
    """The ``--replay`` mode (see the module docstring)."""
    if args.replay_run:
        run = Path(args.replay_run)
        if not (run / "run.zarr").exists():
            raise SystemExit(f"--replay-run {run}: no run.zarr inside (an `xlive simulate` run)")
    else:
        _simulate(args, run)
    address = f"tcp://127.0.0.1:{free_port()}"
    spool = feats.parent / "spool.zarr"
    _replay(args, client, analyzers, reducers, run, feats, address, spool)


def _simulate(args, run: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "xlive.cli",
            "simulate",
            str(run),
            "--frames",
            str(args.distinct),
            "--rate",
            "0",
            "--detector",
            args.detector,
            "-q",
        ],
        check=True,
    )


def _replay(args, client, analyzers, reducers, run, feats, address, spool) -> None:
    # the receiver and the live loop first, as at a beamline; the sender then paces itself
    # as `xlive process --live tcp://...` opens it: the receiver in its own process (the
    # default) or, with --receiver thread, as a thread of this one
    src = open_source(address, spool=spool, receiver=args.receiver)
    params = LiveParams(latency_budget=args.budget, adaptive=not args.no_sampling)
    sender = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xlive.sources.stream.sender",
            "--bind",
            address,
            "--zarr",
            str(run / "run.zarr"),
            "--distinct",
            str(args.distinct),
            "--frames",
            str(args.frames),
            "--rate",
            str(args.rate),
            "--protocol",
            "1",
            "--timeout",
            "60",
            *(["--dtype", args.dtype] if args.dtype else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    cpu0, threads0 = _cpu(resource.RUSAGE_SELF), thread_cpu()
    workers0 = _workers_cpu(client, args)
    with LiveProcessor(
        src, feats, client=client, params=params, analyzers=analyzers, reducers=reducers
    ) as lp:
        t0 = time.time()
        while sender.poll() is None or not lp.idle or src.refresh() > lp.frames_seen:
            if lp.step() and args.trace:
                print(
                    f"t={time.time() - t0:5.1f}s seen {lp.frames_seen} stored "
                    f"{lp.stats.frames_stored} queued {len(lp._queue)} skipped "
                    f"{lp.stats.frames_skipped} lag {lp.stats.lags[-1]:.2f}s"
                )
            if sender.poll() is not None and src.refresh() >= args.frames and lp.idle:
                break
        lags = np.asarray(lp.stats.lags)
        ages = np.asarray(lp.stats.ages)
        writes = [k for _, k in lp.stats.stored_times]
        span = time.time() - t0
    cpu, threads1 = _cpu(resource.RUSAGE_SELF) - cpu0, thread_cpu()
    if args.processes:  # the worker processes' CPU, as a thread group of the live process
        workers = _workers_cpu(client, args) - workers0
        threads1["dask worker processes (read, decode, analyse, reduce)"] = workers
        cpu += workers
    src.close()
    sent = sender.communicate()[0].strip()
    if args.receiver == "process":
        print(f"receiver process: {src.receiver.summary}")
    others_cpu = _cpu(resource.RUSAGE_CHILDREN)  # the simulator, the sender (and receiver)
    print(f"sender: {sent}")
    status = FeatureStore.open(feats).status()
    done, skipped = int(np.sum(status == DONE)), int(np.sum(status == SKIPPED))
    print(
        f"replay {args.rate:g} Hz, {args.frames} {args.detector} frames "
        f"({args.dtype or 'uint32'}, bitshuffle-LZ4, "
        f"{args.distinct} distinct): received {status.size}, computed {done}, skipped {skipped}; "
        f"load average now {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    p95 = float(np.percentile(lags, 95)) if lags.size else float("nan")
    if lags.size:
        print(
            f"lag (s), spool poll -> stored: median {np.median(lags):.2f}, p95 {p95:.2f}, "
            f"max {lags.max():.2f}"
        )
    if ages.size:
        print(
            f"age (s), sent -> stored: median {np.median(ages):.2f}, "
            f"p95 {np.percentile(ages, 95):.2f}, max {ages.max():.2f}"
        )
    if writes:  # each store write costs about the same whatever its size (zarr, ~30 arrays)
        print(
            f"store writes: {len(writes)} ({len(writes) / max(span, 1e-9):.1f} per second), "
            f"median {np.median(writes):.0f} frames each"
        )
    _print_cpu(threads0, threads1, max(int(status.size), 1))
    if done:
        per = cpu / done
        print(
            f"CPU of the live process (read + decompress, analysis, reducers, store"
            f"{', receiver thread' if args.receiver == 'thread' else ''}): {per * 1e3:.1f} ms per computed "
            f"frame -> at most {(os.cpu_count() or 1) / per:.0f} Hz on this machine's "
            f"{os.cpu_count()} cores if nothing else ran; child processes "
            f"({'' if args.replay_run else 'simulator, '}sender"
            f"{', receiver' if args.receiver == 'process' else ''}): {others_cpu:.1f} s CPU"
        )
    _print_budget(args, cpu, done, int(status.size), sent, src)
    print(f"computed={done}/{args.frames} p95_lag={p95:.2f}s")


def _print_budget(args, live_cpu: float, done: int, received: int, sent: str, src) -> None:
    """CPU ms per frame of the live process, the receiver and the sender, against the
    machine's budget (cores / rate): the figure to compare across trees under load."""
    import json
    import re

    try:
        info = json.loads(sent.splitlines()[-1])
        sender = info["cpu_seconds"] * 1e3 / max(info["sent"], 1)
    except (ValueError, KeyError, IndexError):
        sender = float("nan")
    receiver = float("nan")
    summary = getattr(getattr(src, "receiver", None), "summary", "") or ""
    m = re.search(r"([0-9.]+) ms per frame", summary)
    if m:
        receiver = float(m.group(1))
    live = live_cpu * 1e3 / max(done, 1)
    total = live + (0.0 if np.isnan(receiver) else receiver) + (0.0 if np.isnan(sender) else sender)
    cores = os.cpu_count() or 1
    print(
        f"CPU ms per frame: live process {live:.1f} per computed frame "
        f"({live_cpu * 1e3 / max(received, 1):.1f} per received), receiver {receiver:.2f}, "
        f"sender {sender:.2f}; together {total:.1f} against {cores * 1e3 / args.rate:.1f} "
        f"available at {args.rate:g} Hz on {cores} cores (every frame computed: at most "
        f"{cores * 1e3 / total:.0f} Hz)"
    )


if __name__ == "__main__":
    main()
