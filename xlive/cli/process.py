"""Subcommands beyond ``simulate``: ``demo`` and ``process`` (each thin: parse, call, print)."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ..errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the remaining subcommands to the ``xlive`` parser."""
    from .simulate import add_simulation_options

    p = sub.add_parser(
        "demo", help="simulate a beamtime run and monitor it live",
        description="Simulate a serial-crystallography run in one process and monitor it live "
                    "in this one: hit rate, spots, resolution, lag and red flags.")
    p.add_argument("--out", default=None, help="folder for the run and its features "
                                               "(default: a new temporary folder)")
    add_simulation_options(p, frames=0, rate=20.0, detector="eiger1m")
    p.set_defaults(hit_fraction=0.35)
    p.add_argument("--no-browser", action="store_true",
                   help="do not open a web browser on the dashboard")
    p.add_argument("--port", type=int, default=5006,
                   help="port of the dashboard on 127.0.0.1 (default %(default)s; taken: any)")
    add_config_option(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "process", help="compute per-frame features of a run (finished or growing), resumably",
        description="Compute per-frame features of a run into a feature store. Killed and "
                    "started again, it resumes where it stopped.")
    p.add_argument("target", help="run: a .zarr store, an Eiger master .h5, a folder or glob "
                                  "of image files, tcp://HOST:PORT, or an xlive run folder")
    p.add_argument("--out", required=True, help="feature store (.zarr) to create or resume")
    p.add_argument("--live", action="store_true",
                   help="keep polling the run for new frames until it stays idle")
    p.add_argument("--idle-timeout", type=float, default=30.0,
                   help="with --live: stop after this many seconds without new frames")
    p.add_argument("--sample", type=float, default=None,
                   help="compute only this fraction of frames (every k-th), e.g. 0.1")
    p.add_argument("--fill-in", action="store_true",
                   help="compute frames an earlier pass skipped")
    p.add_argument("--latency-budget", type=float, default=None,
                   help="with --live: sample when the lag would exceed this (s; default 5)")
    p.add_argument("--no-sampling", action="store_true",
                   help="with --live: never skip frames, however late")
    p.add_argument("--scheduler", default=None,
                   help="address of a running dask.distributed scheduler (default: local)")
    p.add_argument("--workers", type=int, default=None,
                   help="local dask worker threads (or processes with --processes)")
    p.add_argument("--processes", action="store_true", help="local workers as processes")
    add_config_option(p, " (--fill-in: default the one stored with the features)")
    p.add_argument("--hits-cxi", default=None,
                   help="also write hits as they are found into this CXI file (+ .lst beside)")
    from .outputs import add_db_option

    add_db_option(p)
    p.add_argument("--no-db", action="store_true", help="do not record the run in the run database")
    from .logbook import add_variables_option

    add_variables_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_process)


def add_config_option(p: argparse.ArgumentParser, more: str = "") -> None:
    p.add_argument("--config", default=None,
                   help="run configuration (TOML): geometry overrides, analyzers and their "
                        f"parameters, live-loop settings, flag thresholds{more}")


# --------------------------------------------------------------------------- process
def _client(args):
    from ..engine.live import default_client

    if args.scheduler:
        from dask.distributed import Client

        return Client(args.scheduler)
    return default_client(args.workers, processes=args.processes)


def cmd_process(args: argparse.Namespace) -> int:
    import dataclasses

    from tqdm import tqdm

    from ..config import load_config, stored_config
    from ..engine.live import LiveProcessor, fill_in
    from ..engine.store import FeatureStore
    from ..sources import open_source

    if args.sample is not None and not 0 < args.sample <= 1:
        raise ConfigError(f"--sample must be in (0, 1], got {args.sample}")
    if args.fill_in and args.config is None and Path(args.out).exists():
        cfg = stored_config(FeatureStore.open(args.out).info)  # computed as the first pass was
    else:
        cfg = load_config(args.config)
    from .logbook import finish_recorder, start_recorder, variables_from

    variables = variables_from(args, cfg)
    source = open_source(args.target)
    n = source.refresh()
    if cfg.geometry and n:
        geometry = cfg.apply_geometry(source.geometry)
        source.close()
        source = open_source(args.target, geometry=geometry)
        n = source.refresh()
    client = _client(args)
    listeners = []
    try:
        if args.fill_in:
            stats = fill_in(source, args.out, client=client, config=cfg)
            print(f"filled in {stats.frames_stored} frames into {args.out}")
            if _record(args) is not None:
                from .logbook import record_final_row

                record_final_row(args, variables)
            return 0
        params = dataclasses.replace(
            cfg.live, sample=args.sample if args.sample is not None else cfg.live.sample,
            latency_budget=args.latency_budget if args.latency_budget is not None
            else cfg.live.latency_budget,
            adaptive=args.live and not args.no_sampling and cfg.live.adaptive)
        if args.hits_cxi:
            from ..outputs.cxi import CXIHitsListener

            listeners.append(CXIHitsListener(source, args.hits_cxi,
                                             lst=Path(args.hits_cxi).with_suffix(".lst")))
        # the analyzers are built from the configuration at the first frame
        with LiveProcessor(source, args.out, client=client, params=params, config=cfg,
                           listeners=listeners) as lp, \
                tqdm(total=n, unit="frame", disable=args.quiet, desc="process") as bar:
            recorder = start_recorder(args, lp, variables, cfg)
            done_before = lp.store.frames_done_count() if lp.store is not None else 0
            bar.update(done_before)

            def progress(proc):
                bar.total = max(bar.total or 0, proc.source.n_frames)
                bar.n = done_before + proc.stats.frames_stored + proc.stats.frames_skipped
                bar.set_postfix(lag=f"{proc.stats.lag_percentile(95):.1f}s",
                                rate=f"{proc.stats.throughput():.0f}/s", refresh=False)
                bar.refresh()

            try:
                stats = lp.run(until_idle=args.idle_timeout if args.live else 0.0,
                               progress=progress)
            except BaseException:
                finish_recorder(recorder, ok=False)
                raise
        print(f"stored features of {stats.frames_stored} frames in {args.out} "
              f"({stats.frames_skipped} skipped; 95% lag {stats.lag_percentile(95):.2f} s)")
        finish_recorder(recorder, _record(args))
    finally:
        for f in listeners:
            f.close()
        client.close()
    return 0


def _record(args):
    """Record (or update) the run's summary in the run database (returns it)."""
    if args.no_db:
        return None
    from ..outputs.rundb import record_run

    summary = record_run(args.db, args.out)
    print(f"recorded in the run database: {summary.hits} hits of {summary.frames} frames")
    return summary


# --------------------------------------------------------------------------- demo
def _start_simulator(args, run: Path):
    """The simulated run, written by :func:`~xlive.simulate.write_run` in another process."""
    import dataclasses
    import multiprocessing

    from ..simulate import write_run
    from .simulate import simulation_params

    frames = args.frames if args.frames > 0 else 10**9
    if args.jet_loss:
        jet_loss = args.jet_loss
    elif args.frames:  # lose the jet for the 60-70 % stretch of the run, to show the flag
        jet_loss = ((int(frames * 0.6), int(frames * 0.7)),)
    else:
        jet_loss = ((600, 700),)
    # the demo shows every flag: defaults that make them happen now and then
    params = dataclasses.replace(
        simulation_params(args), jet_loss=tuple(jet_loss),
        ice_fraction=args.ice_fraction or 0.1,
        multi_lattice_fraction=args.multi_lattice_fraction or 0.15,
        laser_on_fraction=args.laser_on_fraction or 0.5,
        dropped_fraction=args.dropped_fraction or 0.002)
    proc = multiprocessing.get_context("spawn").Process(
        target=write_run, args=(str(run),), name="xlive-demo-simulator", daemon=True,
        kwargs=dict(frames=frames, rate=args.rate, fmt="zarr", params=params))
    proc.start()
    return proc


def _wait_for_run(run: Path, writer, timeout: float = 120.0) -> None:
    t_end = time.time() + timeout
    while not (run / "run.zarr" / "zarr.json").exists():
        if not writer.is_alive():
            raise ConfigError(f"the simulator stopped before writing (exit code "
                              f"{writer.exitcode}; its messages are above)")
        if time.time() > t_end:
            raise ConfigError(f"no run appeared in {run} within {timeout:.0f} s")
        time.sleep(0.1)


def cmd_demo(args: argparse.Namespace) -> int:
    import dataclasses

    from tqdm import tqdm

    from ..config import load_config
    from ..engine.session import LiveSession
    from ..views.app import serve_session

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="xlive-demo-"))
    run, feats = out / "run", out / "features.zarr"
    if run.exists() or feats.exists():
        raise ConfigError(f"{out} already holds a demo; give a new --out")
    print(f"simulating a {args.detector} run at {args.rate:g} frames/s into {run}")
    writer = _start_simulator(args, run)
    session = handle = None
    try:
        _wait_for_run(run, writer)
        cfg = load_config(args.config)
        if args.config is None:  # the demo keeps the lag short
            cfg = dataclasses.replace(cfg, live=dataclasses.replace(cfg.live, latency_budget=3.0))
        session = LiveSession(run, feats, config=cfg)
        # analyzers exist once the first frame does: the page then has its spot controls
        deadline = time.monotonic() + 60
        while not session.processor.prepare() and writer.is_alive() \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            handle = serve_session(session, port=args.port, open_browser=not args.no_browser)
        except OSError:  # the port is taken: any free one
            handle = serve_session(session, port=0, open_browser=not args.no_browser)
        print(f"live dashboard: {handle.url}")
        lp, agg = session.processor, session.aggregates
        with tqdm(total=args.frames or None, unit="frame", desc="live") as bar:
            while True:
                finished = not writer.is_alive()
                session.step()
                n_done = lp.stats.frames_stored + lp.stats.frames_skipped
                if n_done == bar.n and not finished:
                    continue
                bar.n = n_done
                with session.lock:
                    flags = session.flags
                    rate = agg.rolling_hit_rate()[0]
                bar.set_postfix_str(
                    f"seen {session.source.n_frames} | hit rate {rate:.0%} | "
                    f"lag {lp.stats.lag_percentile(95):.1f}s | {session.status.upper()}"
                    f"{': ' + ', '.join(f.name for f in flags) if flags else ''}", refresh=False)
                bar.refresh()
                if finished and lp.idle and session.source.refresh() == lp.frames_seen:
                    break
        if writer.exitcode:
            raise ConfigError(f"the simulator failed (exit code {writer.exitcode}; its messages "
                              "are above)")
        flags = session.update_flags()
        info = json.loads((run / "xlive-run.json").read_text())
        print(f"\nrun finished: {agg.frames} frames analysed ({lp.stats.frames_skipped} sampled "
              f"out), {info.get('frames_dropped', 0)} dropped by the detector")
        print(f"hits: {agg.hits} ({agg.hit_rate:.1%}); 95% lag {lp.stats.lag_percentile(95):.2f} s")
        print(f"status: {session.status.upper()}")
        for f in flags:
            print(f"  [{f.severity}] {f.message}")
        print(f"features: {feats}  (xlive.open_features({str(feats)!r}))")
    finally:
        if writer.is_alive():
            writer.terminate()
            writer.join(timeout=30)
        if handle is not None:
            handle.stop()
        if session is not None:
            session.close()
    return 0
