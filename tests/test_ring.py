"""RingSeries against the collections.deque(maxlen=...) it replaces in the run aggregates."""

from __future__ import annotations

import collections
import random

import numpy as np
import pytest

from xlive.aggregate.ring import RingSeries


@pytest.mark.parametrize("maxlen", [1, 5, 100, 3000])
def test_ring_matches_deque(maxlen):
    ring, ref = RingSeries(maxlen), collections.deque(maxlen=maxlen)
    rng = random.Random(maxlen)
    assert not ring and len(ring) == 0
    for _ in range(400):
        k = rng.choice([0, 1, 2, 7, 50, maxlen, maxlen + 3, 1500])
        values = [rng.random() for _ in range(k)]
        ring.extend(values)
        ref.extend(values)
        assert len(ring) == len(ref) and bool(ring) == bool(ref)
        np.testing.assert_array_equal(np.asarray(ring), np.asarray(ref, float))
        n = rng.randrange(0, maxlen + 5)
        np.testing.assert_array_equal(ring.last(n), np.asarray(ref, float)[max(len(ref) - n, 0) :])
        assert list(reversed(ring)) == list(reversed(ref)) and list(ring) == list(ref)
    ring.append(7.0)
    ref.append(7.0)
    assert list(ring) == list(ref)


def test_ring_memory_is_bounded_and_typed():
    ring = RingSeries(1000, np.bool_)
    for _ in range(100):
        ring.extend(np.ones(37, bool))
    assert ring._buf.nbytes <= 2000 and ring.last().dtype == np.bool_
    assert isinstance(list(ring)[0], bool)  # Python values for bokeh and JSON
