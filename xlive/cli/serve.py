"""``xlive serve TARGET``: monitor a run live on a bokeh server page at http://127.0.0.1:PORT/."""

from __future__ import annotations

import argparse
import signal


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``serve`` subcommand to the ``xlive`` parser."""
    from .simulate import number, positive_int

    p = sub.add_parser(
        "serve",
        help="monitor a run live in the browser (bokeh server page)",
        description="Analyse a run (growing or finished) live and serve its dashboard as a web "
        "page on 127.0.0.1. Stop with Ctrl-C.",
    )
    p.add_argument(
        "target",
        help="the run: a simulated run folder, Zarr store, Eiger master file, CBF folder, ...",
    )
    p.add_argument(
        "--port",
        type=positive_int("--port", low=0, high=65535),
        default=5006,
        help="TCP port (default %(default)s; 0 picks a free one)",
    )
    p.add_argument(
        "--address",
        default="127.0.0.1",
        help="interface to listen on (default %(default)s: this machine only)",
    )
    p.add_argument(
        "--features",
        default=None,
        help="feature store to write (and resume from); default: a temporary folder",
    )
    p.add_argument(
        "--sample",
        type=number("--sample", low=0, low_open=True, high=1),
        default=None,
        help="fraction of frames to analyse (default: all, sampling when behind)",
    )
    p.add_argument("--show", action="store_true", help="open the page in a web browser")
    from .indexing import add_indexing_options
    from .process import add_cluster_option, add_config_option, add_source_options

    add_config_option(p, ", where workers run ([cluster])")
    add_cluster_option(p)
    add_source_options(p)
    add_indexing_options(p)
    from .logbook import add_serve_options

    add_serve_options(p)
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the page first, then build the session (see :mod:`xlive.views.app`): the browser
    loads the page and BokehJS while the engine starts. With ``--db`` the logbook pages need
    the session, so it is built first."""
    from ..views.app import PendingSession, wait_forever

    def _terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    early = args.db is None
    pending = PendingSession()
    handle = session = source = runner = recorder = None
    try:
        if early:
            handle = _serve(args, pending)
        source, session = _start_session(args)
        if session.cluster_workers is not None:
            print(
                f"xlive: {session.cluster_workers.summary()}; dask dashboard "
                f"{session.cluster_workers.dashboard_link}",
                flush=True,
            )
        from .logbook import serve_extras

        recorder, apps, patterns = serve_extras(args, session, session.config)
        from ..views.runner import SessionRunner

        # the first frame goes to the pages before the live loop starts the dask cluster
        runner = SessionRunner(session, after_first=lambda: pending.wait_shown(FIRST_SHOWN))
        pending.set(session)
        # pages already open get their document before the live loop starts: the browser
        # draws it while the first block is analysed (see PendingSession.wait_pages)
        pending.wait_pages(timeout=PAGES_FIRST)
        runner.start()
        if handle is None:
            handle = _serve(args, pending, apps, patterns)
        if recorder is not None:
            recorder.link = handle.url
            print(f"xlive: logbook of {args.db} at {handle.url}logbook", flush=True)
        if session.source.n_frames == 0:
            print(f"xlive: {session.waiting_for()}", flush=True)
        wait_forever(handle)
    except KeyboardInterrupt:
        print("xlive: stopping", flush=True)
    except BaseException as exc:
        pending.fail(exc, linger=2.0)  # a page already open says why (before the stop)
        raise
    finally:
        if handle is not None:
            handle.stop()
        if runner is not None:
            runner.stop()
        if session is not None:
            from .logbook import finish_serve

            finish_serve(args, session, recorder)
            session.close()
        if source is not None:
            source.close()
    return 0


#: seconds the live loop waits at most for the pages open at start-up to get their document
PAGES_FIRST = 3.0
#: ... and, after the run's first block, for those pages to send it to their browsers (and
#: these to draw the page) before the dask cluster starts
FIRST_SHOWN = 3.0


def _serve(args: argparse.Namespace, pending, apps=None, patterns=None):
    """Start the page's server and say where it is."""
    from ..views.app import serve_session

    handle = serve_session(
        pending,
        port=args.port,
        address=args.address,
        open_browser=args.show,
        apps=apps,
        extra_patterns=patterns,
    )
    print(f"xlive: serving {args.target} at {handle.url} (Ctrl-C stops)", flush=True)
    return handle


def _start_session(args: argparse.Namespace):
    """The run's source and its LiveSession, from the command's options."""
    import dataclasses

    from ..config import load_config
    from ..engine.session import LiveSession
    from .indexing import apply_indexing_options
    from .inputs import provenance
    from .process import geometry_values, open_run_source

    config = load_config(args.config)
    if args.sample:
        config = dataclasses.replace(
            config, live=dataclasses.replace(config.live, sample=args.sample)
        )
    # live: indexing takes at most half the frame analysis time unless told otherwise
    config = apply_indexing_options(config, args, default_budget=0.5)

    # a run that does not exist yet is waited for: the page says "waiting for RUN"
    source = open_run_source(args.target, args, geometry_values(args), wait=True)
    try:
        session = LiveSession(
            source,
            args.features,
            config=config,
            cluster=args.cluster,
            store_attrs=provenance(args, config),
        )
    except BaseException:
        source.close()
        raise
    return source, session
