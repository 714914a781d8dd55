"""Subcommands beyond ``simulate``: ``demo`` and ``process`` (each thin: parse, call, print)."""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

from ..errors import ConfigError, SourceError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the remaining subcommands to the ``xlive`` parser."""
    from .simulate import add_simulation_options, number, positive_int

    p = sub.add_parser(
        "demo",
        help="simulate a beamtime run and monitor it live",
        description="Simulate a serial-crystallography run in one process and monitor it live "
        "in this one: hit rate, spots, resolution, lag and red flags.",
    )
    p.add_argument(
        "--out",
        default=None,
        help="folder for the run and its features (default: a new temporary folder)",
    )
    add_simulation_options(p, frames=0, rate=20.0, detector="eiger1m")
    # what the demo shows unless told otherwise (0 is a value: --ice-fraction 0 means no ice)
    p.set_defaults(
        hit_fraction=0.35,
        ice_fraction=0.1,
        multi_lattice_fraction=0.15,
        laser_on_fraction=0.5,
        dropped_fraction=0.002,
    )
    p.add_argument(
        "--no-browser", action="store_true", help="do not open a web browser on the dashboard"
    )
    p.add_argument(
        "--port",
        type=positive_int("--port", 0, 65535),
        default=5006,
        help="port of the dashboard on 127.0.0.1 (default %(default)s; taken: any)",
    )
    p.add_argument(
        "--exit-at-end",
        action="store_true",
        help="exit when the run ends (default: with a browser, the page stays up "
        "with the run's final state until Ctrl-C)",
    )
    add_config_option(p)
    add_source_options(p, timeout=False, detector=False)
    from .indexing import add_indexing_options

    add_indexing_options(p)  # the demo indexes to the simulated cell unless told otherwise
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "process",
        help="compute per-frame features of a run (finished or growing), resumably",
        description="Compute per-frame features of a run into a feature store. Killed and "
        "started again, it resumes where it stopped.",
    )
    p.add_argument(
        "target",
        help="run: a .zarr store, an Eiger master .h5, a folder or glob "
        "of image files, tcp://HOST:PORT, or an xlive run folder",
    )
    p.add_argument("--out", required=True, help="feature store (.zarr) to create or resume")
    p.add_argument(
        "--live",
        action="store_true",
        help="keep polling the run for new frames until it stays idle",
    )
    p.add_argument(
        "--idle-timeout",
        type=number("--idle-timeout", low=0),
        default=30.0,
        help="with --live: stop after this many seconds without new frames",
    )
    p.add_argument(
        "--sample",
        type=number("--sample", low=0, low_open=True, high=1),
        default=None,
        help="compute only this fraction of frames (every k-th), e.g. 0.1",
    )
    p.add_argument("--fill-in", action="store_true", help="compute frames an earlier pass skipped")
    p.add_argument(
        "--latency-budget",
        type=number("--latency-budget", low=0, low_open=True),
        default=None,
        help="with --live: sample when the lag would exceed this (s; default 5)",
    )
    p.add_argument(
        "--no-sampling", action="store_true", help="with --live: never skip frames, however late"
    )
    p.add_argument(
        "--scheduler",
        default=None,
        help="address of a running dask.distributed scheduler (default: local)",
    )
    add_cluster_option(p)
    p.add_argument(
        "--workers",
        type=positive_int("--workers"),
        default=None,
        help="local dask worker threads (or processes with --processes)",
    )
    p.add_argument("--processes", action="store_true", help="local workers as processes")
    add_config_option(p, " (--fill-in: default the one stored with the features)")
    p.add_argument(
        "--spool",
        default=None,
        help="for tcp:// streams: the spool folder receiving the frames (default: "
        "OUT with '-spool.zarr'); a restarted process continues the same run. For "
        "karabo:// streams: a new folder keeping the frames (default: a temporary one, "
        "removed at the end)",
    )
    add_source_options(p)
    p.add_argument(
        "--hits-cxi",
        default=None,
        help="also write hits as they are found into this CXI file (+ .lst beside)",
    )
    from .indexing import add_indexing_options
    from .outputs import add_db_option

    add_indexing_options(p)

    add_db_option(p)
    p.add_argument("--no-db", action="store_true", help="do not record the run in the run database")
    from .logbook import add_variables_option

    add_variables_option(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_process)


# --------------------------------------------------------------------------- sources
def add_detector_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--detector",
        default=None,
        help="European XFEL runs: the detector (SPB_DET_AGIPD1M-1, an ePix100 "
        "source...); Karabo bridge (karabo://HOST:PORT): the source",
    )


def add_source_options(
    p: argparse.ArgumentParser, *, timeout: bool = True, detector: bool = True
) -> None:
    """``--geometry``, ``--mask``, ``--metadata``, ``--timeout`` and ``--detector``, for the
    commands that open a run."""
    g = p.add_argument_group("geometry, mask and metadata")
    g.add_argument(
        "--geometry",
        default=None,
        metavar="FILE",
        help="detector geometry file: CrystFEL .geom, pyFAI .poni, NXmx .h5 or xlive "
        ".json, used instead of the run's headers (values a .geom leaves to the "
        "data, e.g. its clen, come from [geometry] clen/distance/wavelength in "
        "--config)",
    )
    g.add_argument(
        "--mask",
        default=None,
        metavar="FILE",
        help="extra mask, nonzero = masked: .npy, an image (CBF, TIFF, EDF...) or "
        "HDF5 (FILE or FILE:/dataset)",
    )
    g.add_argument(
        "--metadata",
        default=None,
        metavar="FILE",
        help="per-frame side table (CSV or HDF5: timestamps, laser on/off, ...) "
        "joined by frame (default: metadata.csv or <run>_metadata.csv beside "
        "the run, when there)",
    )
    if timeout:
        from .simulate import number

        p.add_argument(
            "--timeout",
            type=number("--timeout", low=0),
            default=None,
            metavar="SECONDS",
            help="wait at most this long for a run that does not exist yet (default: no limit)",
        )
    if detector:
        add_detector_option(p)


def geometry_values(args: argparse.Namespace) -> dict:
    """The ``[geometry]`` values of ``--config`` a geometry file or an EuXFEL run may need."""
    from ..config import load_config
    from ..geometry.files import FILE_VALUES

    if not getattr(args, "config", None):
        return {}
    return {k: v for k, v in load_config(args.config).geometry.items() if k in FILE_VALUES}


def open_run_source(
    target: str,
    args: argparse.Namespace,
    values: dict | None = None,
    *,
    wait: bool = False,
    **options,
):
    """The run's source with the geometry file, mask, metadata, detector and config values
    the user gave; with ``wait``, a run that does not exist yet is waited for (a
    :class:`~xlive.sources.pending.PendingSource`, up to ``--timeout``). Prints a loud warning
    when the geometry is known to be a placeholder."""
    import sys

    from ..geometry.files import placeholder_warning
    from ..registry import guess_source
    from ..sources import open_source
    from ..sources.pending import PendingSource, target_exists
    from .inputs import geometry_plan

    values = values or {}
    if getattr(args, "metadata", None):
        if not Path(args.metadata).exists() and not wait:
            raise ConfigError(f"metadata file {args.metadata} does not exist")
        options["metadata"] = args.metadata
    kind = (
        guess_source(str(target))
        if "://" not in str(target) or str(target).startswith("karabo://")
        else None
    )
    # streams and EuXFEL runs take the geometry when opened; other runs build theirs at the
    # first frame (a GeometryPlan, which knows the detector shape a PONI file may lack)
    early = "://" in str(target) or kind == "euxfel"
    if getattr(args, "geometry", None) and early:
        options["geometry"] = load_geometry_file(args.geometry, values)
    if getattr(args, "detector", None):
        if kind not in ("euxfel", "karabo"):
            raise ConfigError(
                "--detector applies to European XFEL run folders and karabo://HOST:PORT streams"
            )
        options["detector" if kind == "euxfel" else "source"] = args.detector
    if kind == "euxfel" and "geometry" not in options:
        options.update(
            {k: values[k] for k in ("distance", "wavelength", "photon_energy") if k in values}
        )
    if wait and not target_exists(str(target)):
        source = PendingSource(target, timeout=getattr(args, "timeout", None), **options)
    else:
        try:
            source = open_source(target, **options)
        except SourceError:
            if not wait:
                raise
            # there but not readable yet (a run folder whose data is being created): retry
            source = PendingSource(target, timeout=getattr(args, "timeout", None), **options)
            source.refresh()
    # --geometry, --mask and the [geometry] values apply when the geometry is first built
    plan = geometry_plan(args, file=not early)
    if plan is not None:
        source.geometry_edit = plan
        source._geometry = None
    if source.refresh():
        try:
            warning = placeholder_warning(source.geometry)
        except Exception:  # the geometry error is reported where the geometry is used
            warning = None
        if warning:
            print(f"xlive: {warning}", file=sys.stderr, flush=True)
    return source


def add_config_option(p: argparse.ArgumentParser, more: str = "") -> None:
    p.add_argument(
        "--config",
        default=None,
        help="run configuration (TOML): geometry overrides, analyzers and their "
        f"parameters, live-loop settings, flag thresholds{more}",
    )


def add_cluster_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cluster",
        choices=["local", "slurm"],
        default=None,
        help="where workers run: this machine, or SLURM jobs through dask-jobqueue "
        "sized by the [cluster] table of --config (default: that table's kind, "
        "else local)",
    )


def notice(text: str) -> None:
    """Print a plain-language notice above a progress bar."""
    import sys

    from tqdm import tqdm

    tqdm.write(f"xlive: {text}", file=sys.stderr)


# --------------------------------------------------------------------------- process
def _client(args, cfg):
    """(client, batch-cluster workers or None) for --scheduler / --cluster / local."""
    from ..engine.cluster import cluster_params, make_client

    params = cluster_params(args.cluster, cfg.cluster) if args.cluster else cfg.cluster
    return make_client(
        params,
        scheduler=args.scheduler,
        workers=args.workers,
        processes=args.processes,
        notice=notice,
    )


def cmd_process(args: argparse.Namespace) -> int:

    options = {}
    if args.target.startswith("tcp://"):
        options["spool"] = args.spool or default_spool(args.out)
    elif args.target.startswith("karabo://"):
        options["spool"] = args.spool
    elif args.spool:
        raise ConfigError("--spool applies to tcp:// and karabo:// streams only")
    # a stream's receiver starts first, before the heavy imports: a detector does not wait;
    # with --live (or --timeout), a run that does not exist yet is waited for
    source = open_run_source(
        args.target,
        args,
        geometry_values(args),
        wait=args.live or args.timeout is not None,
        **options,
    )
    try:
        return _process(args, source)
    finally:
        source.close()


def _process(args: argparse.Namespace, source) -> int:
    import dataclasses

    from tqdm import tqdm

    from ..aggregate.running import RunAggregates
    from ..aggregate.timeline import FlagTracker
    from ..config import load_config, stored_config
    from ..engine.live import LiveProcessor, fill_in
    from ..engine.store import FeatureStore
    from .indexing import apply_indexing_options
    from .inputs import provenance

    if args.fill_in and args.config is None and Path(args.out).exists():
        cfg = stored_config(FeatureStore.open(args.out).info)  # computed as the first pass was
    else:
        cfg = load_config(args.config)
    cfg = apply_indexing_options(cfg, args)
    from .logbook import finish_recorder, start_recorder, variables_from

    variables = variables_from(args, cfg)
    n = source.refresh()
    waiting = getattr(source, "waiting_for", "")
    if waiting and not args.live:
        missing = getattr(source, "missing_files", list)()
        raise SourceError(
            f"{args.target}: {len(missing)} data files the master names are "
            f"missing ({', '.join(Path(m).name for m in missing[:3])}"
            f"{', ...' if len(missing) > 3 else ''}); copy them beside it, or "
            "process with --live to wait for them"
        )
    if waiting:
        print(f"xlive process: {waiting}", flush=True)
    if (
        cfg.geometry
        and n
        and not args.geometry
        and not getattr(source, "distance", None)
        and source.geometry_edit is None
    ):
        source.set_geometry(cfg.apply_geometry(source.geometry))
    client, workers = _client(args, cfg)
    if workers is not None:
        notice(f"{workers.summary()}; dask dashboard {workers.dashboard_link}")
    listeners = []
    try:
        if args.fill_in:
            stats = fill_in(source, args.out, client=client, config=cfg)
            print(f"filled in {stats.frames_stored} frames into {args.out}")
            from ..engine.index_fill import fill_in_indexing

            if "index_tried" in FeatureStore.open(args.out).specs:
                n_idx = fill_in_indexing(args.out, cfg.analyzers.get("indexing"))
                print(f"indexed {n_idx} hits left for later into {args.out}")
            _replay_timeline(args.out)  # judged again over every frame
            _print_flags(args.out)
            if _record(args) is not None:
                from .logbook import record_final_row

                record_final_row(args, variables)
            return 0
        params = dataclasses.replace(
            cfg.live,
            sample=args.sample if args.sample is not None else cfg.live.sample,
            latency_budget=args.latency_budget
            if args.latency_budget is not None
            else cfg.live.latency_budget,
            adaptive=args.live and not args.no_sampling and cfg.live.adaptive,
        )
        if args.hits_cxi:
            from ..outputs.cxi import CXIHitsListener

            listeners.append(
                CXIHitsListener(source, args.hits_cxi, lst=Path(args.hits_cxi).with_suffix(".lst"))
            )
        # the analyzers are built from the configuration at the first frame
        tracker = FlagTracker(RunAggregates(cfg.aggregate), cfg.flags)

        def track(block, meta):
            # the analyzers' declared outputs (and their flags) are known once they are built
            tracker.aggregates.declare(lp.specs)
            tracker.update(block, meta)

        with (
            LiveProcessor(
                source,
                args.out,
                client=client,
                params=params,
                config=cfg,
                listeners=listeners,
                history_listeners=[track],
                attrs=provenance(args, cfg),
            ) as lp,
            tqdm(total=n, unit="frame", disable=args.quiet, desc="process") as bar,
        ):
            recorder = start_recorder(args, lp, variables, cfg)
            done_before = lp.store.frames_done_count() if lp.store is not None else 0
            bar.update(done_before)
            if workers is not None:
                workers.attach(lp)

            ended = threading.Event()

            def progress(proc):
                # a run with an end marker (complete flag, planned frames) ends with it
                if (
                    args.live
                    and proc.caught_up
                    and getattr(proc.source, "finished", None)
                    and proc.source.refresh() == proc.source.n_frames
                    and proc.caught_up
                ):
                    ended.set()  # (counted again after the marker: its last frames are in)
                bar.total = max(bar.total or 0, proc.source.n_frames)
                bar.n = done_before + proc.stats.frames_stored + proc.stats.frames_skipped
                bar.set_postfix(
                    lag=f"{proc.stats.lag_percentile(95):.1f}s",
                    rate=f"{proc.stats.throughput():.0f}/s",
                    refresh=False,
                    **({"workers": workers.summary()} if workers else {}),
                )
                bar.refresh()

            try:
                stats = lp.run(
                    until_idle=args.idle_timeout if args.live else 0.0,
                    progress=progress,
                    stop=ended,
                )
            except BaseException:
                finish_recorder(recorder, ok=False)
                raise
            faults = lp.update_faults(force=True)
            if lp.store is not None:
                tracker.aggregates.geometry = source.geometry
                tracker.aggregates.declare(lp.specs)
                tracker.evaluate_all()  # every rule, over the whole run, at its end
                lp.store.set_flag_timeline(
                    tracker.timeline.to_list(), dataclasses.asdict(tracker.thresholds)
                )
        print(
            f"stored features of {stats.frames_stored} frames in {args.out} "
            f"({stats.frames_skipped} skipped; 95% lag {stats.lag_percentile(95):.2f} s)"
        )
        _print_flags(args.out)
        _print_faults(faults)
        finish_recorder(recorder, _record(args))
    finally:
        for f in listeners:
            f.close()
        if workers is not None:
            workers.close()
        else:
            from ..engine.cluster import close_client

            close_client(client)
    return 0


def _print_faults(faults: dict | None) -> None:
    """One line per fault (unreadable, dropped, refused frames): a faulty run never looks clean."""
    from ..aggregate.faults import faults_text

    lines = faults_text(faults)
    if lines:
        print("faults: " + str(len(lines)))
        for line in lines:
            print("  " + line)


def default_spool(out: str) -> str:
    """The spool of a stream beside its feature store: ``feats.zarr`` -> ``feats-spool.zarr``."""
    path = Path(out)
    stem = path.name[:-5] if path.name.endswith(".zarr") else path.name
    return str(path.with_name(stem + "-spool.zarr"))


def load_geometry_file(path: str, values: dict | None = None):
    """A Geometry from a .geom, .poni, NXmx (.h5/.nxs) or xlive .json file; ``values``
    (clen, distance, wavelength, photon_energy) complete or override the file's."""
    from ..errors import GeometryError
    from ..geometry import Geometry

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--geometry {path}: no such file")
    suffix = p.suffix.lower()
    if suffix in (".geom", ".poni", ".h5", ".nxs", ".hdf5"):
        from ..geometry.files import read_geometry_file

        return read_geometry_file(p, **(values or {}))
    if suffix == ".json":
        try:
            d = json.loads(p.read_text())
            return Geometry.from_dict(d.get("geometry", d))
        except (ValueError, KeyError, TypeError) as exc:
            raise GeometryError(f"{path} is not an xlive geometry JSON ({exc})") from None
    raise ConfigError(f"--geometry {path}: unknown kind; expected .geom, .poni, .h5/.nxs or .json")


def _replay_timeline(features) -> None:
    """Judge a whole feature store again (e.g. after fill-in) and store its flag timeline."""
    import dataclasses

    from ..config import stored_config
    from ..engine.store import FeatureStore, open_features
    from ..outputs._common import aggregates, flag_thresholds_of

    ds = open_features(features)
    _, timeline = aggregates(ds, replay_flags=True)
    thresholds = flag_thresholds_of(ds, stored_config(ds.attrs, analyzers=False).flags)
    FeatureStore.open(features, mode="r+").set_flag_timeline(
        timeline.to_list(), dataclasses.asdict(thresholds)
    )


def _print_flags(features) -> None:
    """The end-of-run summary of the flags: every episode, raised or cleared."""
    from ..aggregate.timeline import FlagTimeline
    from ..engine.store import FeatureStore

    if not Path(features).exists():
        return
    episodes = FeatureStore.open(features).flag_timeline()
    if episodes is None:
        return
    timeline = FlagTimeline.from_list(episodes)
    if not timeline.episodes:
        print("flags: none raised during the run (status GREEN)")
        return
    print(f"flags raised during the run (status {timeline.status().upper()}):")
    for e in timeline.episodes:
        print(f"  {e.describe()}: {e.message}")


def _record(args):
    """Record (or update) the run's summary in the run database (returns it)."""
    if args.no_db:
        return None
    from ..outputs.rundb import record_run

    summary = record_run(args.db, args.out)
    print(f"recorded in the run database: {summary.hits} hits of {summary.frames} frames")
    return summary


# --------------------------------------------------------------------------- demo
def demo_params(args):
    """The :class:`~xlive.simulate.SimParams` of the demo's run (and its frame count)."""
    import dataclasses

    from .simulate import simulation_params

    frames = args.frames if args.frames > 0 else 10**9
    if args.jet_loss:
        jet_loss = args.jet_loss
    elif args.frames:  # lose the jet for the 60-70 % stretch of the run, to show the flag
        jet_loss = ((int(frames * 0.6), int(frames * 0.7)),)
    else:
        jet_loss = ((600, 700),)
    # the demo shows every flag: its defaults (set on the parser) make them happen now and then
    return dataclasses.replace(simulation_params(args), jet_loss=tuple(jet_loss)), frames


def _start_simulator(args, run: Path):
    """The simulated run, written by :func:`~xlive.simulate.write_run` in another process."""
    import multiprocessing

    params, frames = demo_params(args)
    proc = multiprocessing.get_context("spawn").Process(
        target=simulate_child,
        args=(str(run),),
        name="xlive-demo-simulator",
        daemon=True,
        kwargs=dict(frames=frames, rate=args.rate, fmt="zarr", params=params),
    )
    proc.start()
    return proc


def simulate_child(*args, **kwargs) -> None:
    """The demo's simulator process: :func:`~xlive.simulate.write_run`, ended by the kernel
    when its parent dies, even by kill -9 (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes
    import os
    import signal

    from ..simulate import write_run

    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux's libc: the parent's own clean-up still stops the child
    if os.getppid() != parent:  # the parent died before prctl took effect
        return
    write_run(*args, **kwargs)


def _wait_for_run(run: Path, writer, timeout: float = 120.0) -> None:
    t_end = time.time() + timeout
    while not (run / "run.zarr" / "zarr.json").exists():
        if not writer.is_alive():
            raise ConfigError(
                f"the simulator stopped before writing (exit code "
                f"{writer.exitcode}; its messages are above)"
            )
        if time.time() > t_end:
            raise ConfigError(f"no run appeared in {run} within {timeout:.0f} s")
        time.sleep(0.1)


def cmd_demo(args: argparse.Namespace) -> int:
    import dataclasses

    from tqdm import tqdm

    from ..config import load_config
    from ..engine.session import LiveSession
    from ..views.app import serve_session
    from .inputs import provenance

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="xlive-demo-"))
    run, feats = out / "run", out / "features.zarr"
    if run.exists() or feats.exists():
        raise ConfigError(f"{out} already holds a demo; give a new --out")
    print(f"simulating a {args.detector} run at {args.rate:g} frames/s into {run}")
    writer = _start_simulator(args, run)
    session = handle = source = None
    try:
        _wait_for_run(run, writer)
        from .indexing import apply_indexing_options
        from .simulate import simulation_params

        cfg = load_config(args.config)
        if args.config is None:  # the demo keeps the lag short
            cfg = dataclasses.replace(cfg, live=dataclasses.replace(cfg.live, latency_budget=3.0))
        # the simulated crystal's cell (a --preset may change it) is the indexer's default
        sim_cell = tuple(simulation_params(args).unit_cell)
        cfg = apply_indexing_options(cfg, args, default_cell=sim_cell, default_budget=0.5)
        # with --geometry, --mask, --metadata; the demo's --detector names the simulated model
        source = open_run_source(run, argparse.Namespace(**{**vars(args), "detector": None}))
        session = LiveSession(source, feats, config=cfg, store_attrs=provenance(args, cfg))
        # analyzers exist once the first frame does: the page then has its spot controls
        deadline = time.monotonic() + 60
        while not session.processor.prepare() and writer.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            handle = serve_session(session, port=args.port, open_browser=not args.no_browser)
        except (OSError, ConfigError):  # the port is taken: any free one
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
                    f"{': ' + ', '.join(f.name for f in flags) if flags else ''}",
                    refresh=False,
                )
                bar.refresh()
                if finished and lp.idle and session.source.refresh() == lp.frames_seen:
                    break
        if writer.exitcode:
            raise ConfigError(
                f"the simulator failed (exit code {writer.exitcode}; its messages are above)"
            )
        flags = session.update_flags()
        info = json.loads((run / "xlive-run.json").read_text())
        print(
            f"\nrun finished: {agg.frames} frames analysed ({lp.stats.frames_skipped} sampled "
            f"out), {info.get('frames_dropped', 0)} dropped by the detector"
        )
        print(f"hits: {agg.hits} ({agg.hit_rate:.1%}); 95% lag {lp.stats.lag_percentile(95):.2f} s")
        ix = agg.indexing
        if ix.tried:
            cell = ", ".join(f"{v:.2f}" for v in ix.median_cell())
            print(
                f"indexed: {ix.indexed} of {ix.tried} hits tried ({ix.rate:.0%}; "
                f"{ix.multi} with two lattices or more); median cell {cell}"
            )
        timeline = session.timeline
        print(
            f"status: {timeline.status().upper()} over the run "
            f"({session.status.upper()} at its end)"
        )
        for e in timeline.episodes:
            print(f"  {e.describe()}: {e.message}")
        if flags:
            print("still raised at the end: " + ", ".join(f.name for f in flags))
        print(f"features: {feats}  (xlive.open_features({str(feats)!r}))")
        if not args.no_browser and not args.exit_at_end:
            from ..views.app import wait_forever

            print(
                f"the dashboard stays up with the run's final state at {handle.url}; Ctrl-C quits",
                flush=True,
            )
            try:
                wait_forever(handle)
            except KeyboardInterrupt:
                pass
    finally:
        if writer.is_alive():
            writer.terminate()
            writer.join(timeout=30)
        if handle is not None:
            handle.stop()
        if session is not None:
            session.close()
        if source is not None:
            source.close()
    return 0
