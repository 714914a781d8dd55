"""Flags with memory: episodes (raised at, cleared at, worst value), the same whatever the
block sizes, and found under sampling."""

from __future__ import annotations

import numpy as np
import pytest

from xlive.aggregate.flags import Flag
from xlive.aggregate.timeline import FlagTimeline, FlagTracker, replay
from xlive.engine.block import Block

N = 400
LOSS = (150, 250)


def _blocks(size: int, step: int = 1):
    """Blocks of a run whose jet is lost for frames 150-249 (score 0.05, else 0.9)."""
    idx = np.arange(0, N, step)
    jet = np.where((idx >= LOSS[0]) & (idx < LOSS[1]), 0.05, 0.9)
    for s in range(0, len(idx), size):
        sl = slice(s, s + size)
        k = len(idx[sl])
        yield (
            Block(
                idx[sl],
                np.zeros(k, bool),
                {"jet_score": jet[sl], "is_hit": (idx[sl] % 3 == 0), "n_spots": np.full(k, 20)},
            ),
            {},
        )


def _jet_episodes(tracker):
    return [e for e in tracker.timeline.episodes if e.name == "jet_lost"]


@pytest.mark.parametrize("size", [1, 7, 32, 400])
def test_jet_loss_episode_whatever_the_block_size(size):
    tracker = replay(_blocks(size))
    (ep,) = _jet_episodes(tracker)
    # the median of the last 20 frames is below 0.3 with 11 of them lost, above with 10
    # (checked every 10 frames)
    assert LOSS[0] + 10 <= ep.raised_at <= LOSS[0] + 20
    assert LOSS[1] + 9 <= ep.cleared_at <= LOSS[1] + 19
    assert ep.worst == pytest.approx(0.05) and ep.severity == "error"
    assert "jet_lost" not in {f.name for f in tracker.flags}  # the jet is back at the end
    assert tracker.timeline.status() == "red"


def test_jet_loss_found_under_sampling():
    """Every 4th frame analysed (25 frames of the loss): the loss is still an episode."""
    (ep,) = _jet_episodes(replay(_blocks(32, step=4)))
    assert LOSS[0] <= ep.raised_at < LOSS[1] and ep.cleared_at >= LOSS[1]


def test_block_sizes_give_the_same_timeline():
    ref = replay(_blocks(1)).timeline.to_list()
    assert replay(_blocks(64)).timeline.to_list() == ref


def test_timeline_round_trip_and_worst_value():
    tl = FlagTimeline()
    assert tl.observe([Flag("ice_rings", "warning", "20 %", 0.2)], 10)
    assert tl.observe([Flag("ice_rings", "warning", "60 %", 0.6)], 20)  # worse
    assert not tl.observe([Flag("ice_rings", "warning", "40 %", 0.4)], 30)
    assert tl.observe([], 40)
    (ep,) = tl.episodes
    assert (ep.raised_at, ep.cleared_at, ep.worst, ep.message) == (10, 40, 0.6, "60 %")
    again = FlagTimeline.from_list(tl.to_list())
    assert again.to_list() == tl.to_list() and not again.open
    assert "frames 10-40, worst 0.6" in ep.describe()


def test_tracker_reports_changes_once():
    seen = []
    tracker = FlagTracker(on_change=lambda t: seen.append(len(t.timeline.episodes)), clock=None)
    for result, meta in _blocks(50):
        tracker.update(result, meta)
    assert seen == [1, 1]  # raised, then cleared
