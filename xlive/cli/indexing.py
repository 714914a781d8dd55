"""Indexing options shared by the commands that analyse: ``--cell``, ``--space-group``,
``--index`` and ``--index-budget``, applied to the run configuration (``[indexing]``)."""

from __future__ import annotations

import argparse
import dataclasses

from ..errors import ConfigError


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
            f"--cell takes six numbers a,b,c,alpha,beta,gamma (Å, degrees), got {len(cell)}"
        )
    return cell


def add_indexing_options(p: argparse.ArgumentParser) -> None:
    """Add ``--cell``, ``--space-group``, ``--index``, ``--index-budget`` to a command."""
    g = p.add_argument_group("indexing (unit cell and lattices of every hit)")
    g.add_argument(
        "--cell",
        type=parse_cell,
        default=None,
        metavar="A,B,C,AL,BE,GA",
        help="expected unit cell (Å, degrees): index hits to it (implies --index)",
    )
    g.add_argument(
        "--space-group",
        default=None,
        help="space group of the expected cell (sets its centring), e.g. 'P 43 21 2'",
    )
    g.add_argument(
        "--index",
        action="store_true",
        help="index hits, finding the cell from the data if --cell is not given",
    )
    g.add_argument(
        "--index-budget",
        type=float,
        default=None,
        metavar="FRACTION",
        help="indexing may use at most this share of the frame analysis time; "
        "hits beyond it are left for later (default: index every hit)",
    )


def apply_indexing_options(
    cfg, args: argparse.Namespace, *, default_cell=None, default_budget: float | None = None
):
    """The run configuration with the command line's indexing options applied.

    ``default_cell``/``default_budget``: index with these when neither the options nor the
    configuration ask for indexing (the demo indexes to the cell it simulates).
    """
    from ..analyzers.indexing import IndexingParams

    current = cfg.analyzers.get("indexing")
    asked = args.index or args.cell is not None or args.space_group or args.index_budget is not None
    if not asked and (current is not None or default_cell is None):
        return cfg
    if args.space_group and args.cell is None and (current is None or current.cell is None):
        raise ConfigError("--space-group needs --cell (or cell in the [indexing] table)")
    base = dataclasses.asdict(current) if current is not None else {}
    if current is None and not asked:
        base.update(cell=default_cell, budget=default_budget)
    changes = {"cell": args.cell, "space_group": args.space_group, "budget": args.index_budget}
    base.update({k: v for k, v in changes.items() if v is not None})
    if current is None and asked and "budget" not in base and default_budget is not None:
        base["budget"] = default_budget
    try:
        return cfg.with_indexing(IndexingParams(**base))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"indexing options: {e}") from None
