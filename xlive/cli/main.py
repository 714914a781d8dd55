"""The ``xlive`` command: thin subcommands that parse, call the library and print.

One module per group of subcommands, each with a ``register(sub)``: :mod:`.simulate`,
:mod:`.process` (``process``, ``demo``), :mod:`.outputs` (exports, report, run database),
:mod:`.serve` and :mod:`.logbook` (``logbook``; the logbook form of ``runs``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from ..errors import XliveError
from . import logbook, outputs, process, serve, simulate

#: subcommands parsed by their own group alone: registering every group imports the simulator
#: (scipy, zarr: ~1-2 s), which ``xlive serve``'s start-up need not wait for
QUICK = {"serve": serve}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``xlive`` parser; with ``command`` in :data:`QUICK`, only that subcommand's group."""
    parser = argparse.ArgumentParser(
        prog="xlive", description="Live analysis of serial crystallography runs."
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    quick = QUICK.get(command)
    for group in (quick,) if quick else (simulate, process, outputs, serve, logbook):
        group.register(sub)
    return parser


def _version() -> str:
    from .. import __version__

    return f"xlive {__version__}"


def os_error_text(e: OSError) -> str:
    """One line for an operating-system error on files: what, where, and what to do."""
    import errno

    what = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
    }.get(e.errno, e.strerror or str(e))
    where = f" writing {e.filename}" if e.filename else ""
    return (
        f"{what}{where} ({type(e).__name__}, errno {e.errno}). Free space or fix the "
        "permissions (or choose another --out), then run the same command again: "
        "finished work is kept and it resumes"
    )


def _interrupt(signum, frame) -> None:
    """Ctrl-C and kill -TERM: clean up (children stopped, work stored) without the noise the
    dask client's event loop logs about the tasks the interruption cancels."""
    import logging

    noisy = ("asyncio", "distributed", "tornado")  # (dask sets some children's levels itself)
    for name in [*noisy, *logging.root.manager.loggerDict]:
        if name.split(".")[0] in noisy:
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
    try:
        return int(args.func(args) or 0)
    except XliveError as e:
        parser.exit(2, f"xlive {args.command}: error: {e}\n")
    except BrokenPipeError:  # `xlive runs | head`: the reader left; say nothing more
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return 141
    except OSError as e:  # disk full, read-only or forbidden output: one line, not a traceback
        parser.exit(2, f"xlive {args.command}: error: {os_error_text(e)}\n")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
