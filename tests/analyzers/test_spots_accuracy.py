"""The integrated spot finder on the harder simulator, scored against its truth with the
default definition of :func:`xlive.simulate.scoring.score` (recall over integrated SNR >= 10,
unmasked, not blended; a spot reported twice counts as a false peak)."""

from __future__ import annotations

import pytest

from xlive.analyzers import SpotFinder, SpotParams
from xlive.simulate import SimParams, Simulation
from xlive.simulate.scoring import score


@pytest.fixture(scope="module", params=[1, 4])
def hard(request):
    """Four frames of the harder simulator (broad weak spots, a 250+ A cell, streaks, zingers
    and hot pixels outside the mask, two lattices on some hits), two seeds."""
    sim = Simulation(SimParams.preset("hard", detector="eiger500k", seed=request.param))
    return sim, [sim.frame(i) for i in range(4)]


def test_hard_simulator_recall_precision_and_no_duplicates(hard):
    """Measured (eiger500k, frames 0-3): seed 1 recall 0.953 / precision 0.971, seed 4
    0.944 / 0.961, no duplicate, no peak on a zinger or hot pixel; without the split at the
    Laplacian's maxima (and its peeling) 0.921 / 0.966 and 0.888 / 0.950; the threshold
    method ~0.7 / ~0.92.
    The issue's 0.97 / 0.98 is not reached: most misses are broad spots 1-1.35 widths from
    a neighbour (bench/spots_misses.py)."""
    sim, pairs = hard
    truths = [t for _, t in pairs]

    def run(params):
        sf = SpotFinder(sim.geometry, params)
        return score([sf.find(f)[:, :2] for f, _ in pairs], truths)

    ours = run(SpotParams(method="integrated"))
    nosplit = run(SpotParams(method="integrated", split_log_sigma=0))
    old = run(SpotParams(method="threshold"))
    assert ours.n_expected > 800
    assert ours.recall >= 0.935 and ours.precision >= 0.955, ours
    assert ours.n_duplicates == 0 and ours.n_artefacts == 0, ours
    assert ours.recall >= nosplit.recall + 0.025 and ours.precision >= nosplit.precision, nosplit
    assert ours.recall >= old.recall + 0.15 and ours.precision > old.precision, old
