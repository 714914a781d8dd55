"""A raised flag: name, severity and a plain-language message (see :mod:`.flags`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flag:
    name: str
    severity: str  # "warning" or "error"
    message: str
    #: the figure the rule judged (e.g. the jet score, the ice fraction); None if it has none
    value: float | None = None
