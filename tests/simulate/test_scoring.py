"""Scoring peaks against the truth: one-to-one pairing, duplicates, artefacts, blended spots."""

from __future__ import annotations

import numpy as np
import pytest

from xlive.simulate import SimParams, Simulation
from xlive.simulate.model import FrameTruth, _empty_spots
from xlive.simulate.scoring import pair, score


def truth_with(xy, snr, blended=None, zingers=()):
    spots = _empty_spots()
    n = len(xy)
    spots.update(
        x=np.array([p[0] for p in xy], float),
        y=np.array([p[1] for p in xy], float),
        snr=np.array(snr, float),
        masked=np.zeros(n, bool),
        blended=np.zeros(n, bool) if blended is None else np.array(blended),
    )
    spots["separation"] = np.where(spots["blended"], 0.8, np.inf)
    z = dict(
        x=np.array([p[0] for p in zingers], float),
        y=np.array([p[1] for p in zingers], float),
        counts=np.full(len(zingers), 100.0),
    )
    return FrameTruth(0, False, True, True, False, False, 1, 1.0, spots, zingers=z)


def test_pairing_is_one_to_one_closest_first():
    peaks = np.array([[10.4, 10.0], [10.1, 10.0], [30.0, 30.0]])
    truth = np.array([[10.0, 10.0], [11.5, 10.0]])
    # the closest peak takes the first spot; the other is 1.1 px from the second spot
    np.testing.assert_array_equal(pair(peaks, truth, 2.0), [1, 0, -1])


def test_score_counts_duplicates_artefacts_and_leaves_blended_out_of_recall():
    t = truth_with(
        [(10, 10), (50, 50), (90, 90), (95, 90)],
        snr=[15, 40, 12, 30],
        blended=[False, False, True, False],
        zingers=[(200, 200)],
    )
    peaks = np.array(
        [
            [10.3, 10.2],  # spot 0
            [11.0, 10.5],  # spot 0 again: duplicate
            [94.8, 90.1],  # spot 3 (the blended spot 2 is not expected)
            [200.0, 200.0],  # the zinger
            [300.0, 10.0],  # nothing
        ]
    )
    s = score([peaks], [t])
    assert (s.n_expected, s.n_found) == (3, 2)
    assert s.recall == pytest.approx(2 / 3)
    assert (s.n_peaks, s.n_real, s.n_duplicates, s.n_artefacts) == (5, 2, 1, 1)
    assert s.precision == pytest.approx(2 / 5)


def test_truth_positions_score_perfectly_on_the_hard_preset():
    sim = Simulation(
        SimParams.preset("hard", detector="eiger500k", seed=3, hit_fraction=1.0, n_backgrounds=2)
    )
    truths = [sim.frame(n)[1] for n in range(2)]
    rng = np.random.default_rng(1)
    peaks = []
    for t in truths:
        s = t.spots
        keep = s["snr"] >= 3
        xy = np.stack([s["x"][keep], s["y"][keep]], axis=1)
        peaks.append(xy + rng.normal(0, 0.3, xy.shape))
    s = score(peaks, truths)
    assert s.n_expected > 300
    assert s.recall > 0.99 and s.precision > 0.99 and s.n_duplicates == 0
    # the zingers and hot pixels reported as peaks are charged as artefacts
    art = [np.stack([t.artefacts["x"], t.artefacts["y"]], axis=1) for t in truths]
    s2 = score([np.concatenate([p, a]) for p, a in zip(peaks, art, strict=True)], truths)
    assert s2.n_artefacts >= 0.9 * sum(map(len, art)) and s2.precision < s.precision
