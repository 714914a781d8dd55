"""Which frames the live loop computes: fixed sampling, and sampling when it falls behind.

Pure arithmetic on frame indices and rates, no dask and no clock, so it is tested directly
(``tests/engine/test_backlog.py``); :class:`~xlive.engine.live.LiveProcessor` applies it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def fixed_step(sample: float | None) -> int:
    """Every k-th frame computes for a fixed sampling fraction (None or 1: every frame)."""
    return max(1, round(1 / sample)) if sample else 1


@dataclass(frozen=True)
class Sampling:
    """What to do with the queue: compute ``keep`` (in order), skip ``skip``."""

    #: every k-th frame is kept (1: all)
    step: int
    keep: list[int]
    skip: list[int]


def sample_backlog(
    queue: Sequence[int],
    *,
    in_flight: int,
    rate: float,
    frames_stored: int,
    block: int,
    latency_budget: float,
    adaptive: bool = True,
) -> Sampling | None:
    """Thin the queue when the backlog would take longer than half the latency budget.

    Parameters
    ----------
    queue
        Frame indices waiting to be submitted, oldest first.
    in_flight
        Frames submitted and not yet stored.
    rate
        Frames stored per second recently.
    frames_stored
        Frames stored so far (no decision before ``4 * block``: no rate estimate yet).
    block
        Frames per task; the newest ``block`` frames are always kept (what users look at).
    latency_budget
        Seconds of lag the loop aims to stay under.

    Returns
    -------
    None when no decision can or need be made (sampling off, short queue, no rate yet);
    otherwise the step and the frames to keep and to skip (step 1: keep all).
    """
    if not adaptive or len(queue) < 2 * block or frames_stored < 4 * block or rate <= 0:
        return None
    backlog = len(queue) + in_flight
    budget = 0.5 * latency_budget
    if backlog / rate <= budget:
        return Sampling(1, list(queue), [])
    k = math.ceil(backlog / (rate * budget))
    newest = set(queue[-block:])
    keep, skip = [], []
    for i in queue:
        (keep if i % k == 0 or i in newest else skip).append(i)
    return Sampling(k, keep, skip)
