"""Measured stills: the PILATUS 6M thaumatin grid-scan hits index to thaumatin's cell."""

from __future__ import annotations

import numpy as np
import pytest

from xlive.analyzers import SpotFinder
from xlive.analyzers.indexing import Indexer, IndexingParams
from xlive.analyzers.indexing_cells import BRAVAIS

pytestmark = pytest.mark.realdata

fabio = pytest.importorskip("fabio")

#: thaumatin, P 41 21 2 (PDB 1RQW and the dials/data-files thaumatin set)
THAUMATIN = (58.6, 58.6, 151.5, 90.0, 90.0, 90.0)


@pytest.fixture(scope="module")
def thaumatin(realdata):
    from xlive.geometry.minicbf import read_minicbf_geometry

    folder = realdata / "pilatus6M_thaumatin_grid"
    geom = read_minicbf_geometry(folder / "thau_3_2_0005.cbf.bz2")
    sf = SpotFinder(geom)
    names = ("0005", "0010", "0016", "0019")  # two strong hits, two blanks
    out = [sf(fabio.open(str(folder / f"thau_3_2_{n}.cbf.bz2")).data) for n in names]
    feats = {k: np.concatenate([o[k] for o in out]) for k in out[0]}
    return geom, feats


@pytest.mark.slow
@pytest.mark.parametrize(
    "params",
    [IndexingParams(cell=THAUMATIN, space_group="P 41 21 2"), IndexingParams()],
    ids=["cell-given", "cell-free"],
)
def test_thaumatin_hits_index_to_the_thaumatin_cell(thaumatin, params):
    geom, feats = thaumatin
    assert feats["is_hit"].tolist() == [True, True, False, False]
    out = Indexer(geom, params).index_block(feats)
    # the hits index, with one lattice each (one crystal: the multiple-lattice flag's input);
    # the blanks do not
    assert out["indexed"].tolist() == [True, True, False, False]
    assert out["n_lattices"].tolist() == [1, 1, 0, 0]
    for k in (0, 1):
        assert BRAVAIS[out["bravais"][k, 0]] == "tP"
        cell = out["unit_cell"][k, 0]
        # a = b (tetragonal); c comes out 1 % long with the header's distance and wavelength
        np.testing.assert_allclose(np.sort(cell[:2]), THAUMATIN[:2], rtol=0.01)
        np.testing.assert_allclose(cell[2], THAUMATIN[2], rtol=0.02)
        np.testing.assert_allclose(cell[3:], 90.0, atol=1.0)
        assert out["indexed_fraction"][k, 0] > 0.8
        assert out["rmsd_px"][k, 0] < 1.5


@pytest.mark.slow
def test_multiple_lattice_flag_stays_silent_on_thaumatin(thaumatin):
    from xlive.aggregate import RunAggregates
    from xlive.aggregate.flags import FlagThresholds, evaluate
    from xlive.engine.block import Block

    geom, feats = thaumatin
    out = Indexer(geom, IndexingParams()).index_block(feats)
    agg = RunAggregates()
    block = Block(np.arange(4), np.zeros(4, bool), {**feats, **out})
    for _ in range(5):  # the same four frames again and again: enough hits for the rules
        agg.update(block, {})
    t = FlagThresholds(window=20, min_frames=4, index_min_hits=4)
    names = {f.name for f in evaluate(agg, t)}
    assert agg.indexing.tried == 10 and agg.indexing.multi == 0
    assert not names & {"multiple_lattices", "hits_do_not_index", "second_cell_population"}
