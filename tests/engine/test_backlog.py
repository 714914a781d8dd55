"""The live loop's sampling policy, on its own: no dask, no clock."""

from __future__ import annotations

import math

import pytest

from xlive.engine.backlog import fixed_step, sample_backlog

KW = dict(in_flight=0, frames_stored=100, block=4, latency_budget=10.0)


@pytest.mark.parametrize(
    ("sample", "step"), [(None, 1), (1.0, 1), (0.5, 2), (0.1, 10), (0.3, 3), (0.001, 1000)]
)
def test_fixed_sampling_step(sample, step):
    assert fixed_step(sample) == step


def test_no_decision_without_a_backlog_or_a_rate():
    q = list(range(100))
    assert sample_backlog(q[:7], rate=1.0, **KW) is None  # shorter than two blocks
    assert sample_backlog(q, rate=0.0, **KW) is None  # nothing stored recently
    assert sample_backlog(q, rate=1.0, **{**KW, "frames_stored": 15}) is None  # no estimate yet
    assert sample_backlog(q, rate=1.0, adaptive=False, **KW) is None


def test_keeps_everything_within_the_budget():
    q = list(range(40))
    d = sample_backlog(q, rate=10.0, **KW)  # 40 frames at 10/s = 4 s <= half of 10 s
    assert d.step == 1 and d.keep == q and d.skip == []


def test_samples_every_kth_frame_and_keeps_the_newest_block():
    q = list(range(1000, 1400))  # 400 queued + 100 in flight at 20/s = 25 s; budget 5 s
    d = sample_backlog(q, rate=20.0, **{**KW, "in_flight": 100})
    assert d.step == math.ceil(500 / (20.0 * 5.0)) == 5
    assert sorted(d.keep + d.skip) == q and not set(d.keep) & set(d.skip)
    assert q[-4:] == d.keep[-4:]  # the newest block is computed whatever its indices
    assert all(i % 5 == 0 for i in d.keep[:-4])
    assert d.keep == sorted(d.keep)  # order kept: oldest first
    # what is kept can be computed within the budget again
    assert (len(d.keep) + 100) / 20.0 <= 5.0 + 100 / 20.0
