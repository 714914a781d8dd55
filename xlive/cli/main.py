"""The ``xlive`` command: thin subcommands that parse, call the library and print.

One module per group of subcommands, each with a ``register(sub)``: :mod:`.simulate`,
:mod:`.process` (``process``, ``demo``), :mod:`.outputs` (exports, report, run database),
:mod:`.serve` and :mod:`.logbook` (``logbook``; the logbook form of ``runs``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import XliveError
from . import logbook, outputs, process, serve, simulate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xlive", description="Live analysis of serial crystallography runs.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in (simulate, process, outputs, serve, logbook):
        group.register(sub)
    return parser


def _version() -> str:
    from .. import __version__

    return f"xlive {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except XliveError as e:
        parser.exit(2, f"xlive {args.command}: error: {e}\n")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
