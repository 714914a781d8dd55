"""Indexing options shared by the commands that analyse: ``--cell``, ``--space-group``,
``--index`` (and ``--index-budget``), applied to the run configuration's ``[indexing]`` table."""

from __future__ import annotations

import argparse

from .errors import ConfigError


def parse_cell(text: str) -> tuple[float, ...]:
    """``"a,b,c,alpha,beta,gamma"`` (Å, degrees) -> 6 floats."""
    try:
        cell = tuple(float(v) for v in text.replace(" ", ",").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--cell takes six numbers a,b,c,alpha,beta,gamma (Å, degrees), got {text!r}"
        ) from None
    if len(cell) != 6:
        raise argparse.ArgumentTypeError(
            f"--cell takes six numbers a,b,c,alpha,beta,gamma (Å, degrees), got {len(cell)}")
    return cell


def add_indexing_options(p: argparse.ArgumentParser) -> None:
    """Add ``--cell``, ``--space-group``, ``--index``, ``--index-budget`` to a command."""
    g = p.add_argument_group("indexing (unit cell and lattices of every hit)")
    g.add_argument("--cell", type=parse_cell, default=None, metavar="A,B,C,AL,BE,GA",
                   help="expected unit cell (Å, degrees): index hits to it (implies --index)")
    g.add_argument("--space-group", default=None,
                   help="space group of the expected cell (sets its centring), e.g. 'P 43 21 2'")
    g.add_argument("--index", action="store_true",
                   help="index hits, finding the cell from the data if --cell is not given")
    g.add_argument("--index-budget", type=float, default=None, metavar="FRACTION",
                   help="indexing may use at most this share of the frame analysis time; "
                        "hits beyond it are left for later (default: index every hit)")


def apply_indexing_options(cfg, args: argparse.Namespace):
    """The run configuration with the command line's indexing options applied."""
    if args.space_group and args.cell is None and not cfg.indexing.get("cell"):
        raise ConfigError("--space-group needs --cell (or [indexing] cell in the configuration)")
    if args.index_budget is not None and args.index_budget <= 0:
        raise ConfigError(f"--index-budget must be > 0, got {args.index_budget}")
    enabled = True if (args.index or args.cell is not None) else None
    return cfg.with_indexing(cell=list(args.cell) if args.cell else None,
                             space_group=args.space_group, enabled=enabled,
                             budget=args.index_budget)


def session_analyzer_params(args: argparse.Namespace, *, default_cell=None,
                            default_budget: float | None = None) -> dict:
    """Keyword arguments of ``default_analyzers`` for a live session from the options
    (``default_cell``: index to this cell when the options ask for nothing)."""
    from .analyzers.indexing import IndexingParams

    cell = args.cell if args.cell is not None else default_cell
    if args.space_group and cell is None:
        raise ConfigError("--space-group needs --cell")
    if not (args.index or cell is not None):
        return {}
    budget = args.index_budget if args.index_budget is not None else default_budget
    return {"indexing": IndexingParams(cell=cell, space_group=args.space_group),
            "indexing_budget": budget}
