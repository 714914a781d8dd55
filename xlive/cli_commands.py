"""Subcommands beyond ``simulate``; each registers itself on the ``xlive`` parser."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the remaining subcommands to the ``xlive`` parser."""
