"""Indexed hits as a CrystFEL stream: the same parser reads xlive's stream and a real
indexamajig stream, and finds the same layout; the crystals agree with the features."""

from __future__ import annotations

import numpy as np
import pytest

from xlive.analyzers import default_analyzers
from xlive.analyzers.indexing import IndexingParams
from xlive.analyzers.indexing_cells import cell_parameters
from xlive.engine.live import LiveParams, LiveProcessor, default_client
from xlive.engine.store import open_features
from xlive.outputs.hits import export_hits
from xlive.outputs.stream import read_stream
from xlive.simulate import write_run
from xlive.sources import open_source

LYSOZYME = (79.1, 79.1, 37.9, 90.0, 90.0, 90.0)


@pytest.fixture(scope="module")
def indexed_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stream")
    run = tmp / "run"
    write_run(run, frames=12, rate=0, detector="eiger500k", seed=12, hit_fraction=0.5)
    src = open_source(run)
    feats = tmp / "features.zarr"
    params = IndexingParams(cell=LYSOZYME, space_group="P 43 21 2")
    client = default_client(1)
    try:
        with LiveProcessor(
            src,
            feats,
            client=client,
            params=LiveParams(block=4),
            analyzers=lambda g: default_analyzers(g, indexing=params),
        ) as lp:
            lp.run(until_idle=0.0)
    finally:
        client.close()
        client.cluster.close()
    res = export_hits(feats, tmp / "hits.cxi", lst=tmp / "hits.lst", stream=tmp / "hits.stream")
    return tmp, feats, res


@pytest.fixture(scope="module")
def real_stream(realdata):
    return read_stream(realdata / "crystfel" / "test.stream")


@pytest.mark.realdata
def test_the_parser_reads_indexamajigs_stream(real_stream):
    s = real_stream
    assert s["header"][0] == "CrystFEL stream format 2.3"
    assert len(s["chunks"]) == 70
    assert sum(len(c["crystals"]) for c in s["chunks"]) == 32
    assert s["cell"]["lattice_type"] == "orthorhombic" and s["cell"]["centering"] == "C"
    for c in s["chunks"]:
        assert int(c["num_peaks"]) == len(c["peaks"]) == len(c["peak_panels"])
        for cr in c["crystals"]:
            assert int(cr["num_reflections"]) == len(cr["reflections"])


@pytest.mark.realdata
def test_xlive_stream_has_indexamajigs_layout(indexed_run, real_stream):
    tmp, feats, res = indexed_run
    ours = read_stream(tmp / "hits.stream")
    ds = open_features(feats)
    n_indexed = int(ds["indexed"].sum())
    assert n_indexed >= 4 and res.indexed == n_indexed == len(ours["chunks"])
    assert ours["header"][0] == real_stream["header"][0]
    assert "clen" in ours["geometry"] and "min_fs" in ours["geometry"]
    assert ours["cell"]["lattice_type"] == "tetragonal" and ours["cell"]["unique_axis"] == "c"
    real_chunk = real_stream["chunks"][0]
    real_crystal = next(cr for c in real_stream["chunks"] for cr in c["crystals"])
    skip = {"crystals", "peaks", "peak_panels"}
    chunk_keys = {k for k in real_chunk if k not in skip and not k.startswith("hdf5/")}
    crystal_keys = {k for k in real_crystal if not k.startswith("predict_refine")}
    for c in ours["chunks"]:
        assert chunk_keys - {"Event"} <= set(c), chunk_keys - set(c)
        assert c["Image filename"] == str((tmp / "hits.cxi").absolute())
        assert int(c["num_peaks"]) == len(c["peaks"]) > 15
        assert c["indexed_by"] != "none" and c["crystals"]
        for cr in c["crystals"]:
            assert crystal_keys <= set(cr), crystal_keys - set(cr)
            assert int(cr["num_reflections"]) == len(cr["reflections"]) > 10
            assert cr["reflections"].shape[1] == real_crystal["reflections"].shape[1]


def test_stream_crystals_agree_with_the_features(indexed_run):
    tmp, feats, _ = indexed_run
    ours = read_stream(tmp / "hits.stream")
    ds = open_features(feats)
    idx = ds.isel(frame=np.flatnonzero(ds["indexed"].values))
    lines = (tmp / "hits.lst").read_text().split()
    assert len(lines) >= len(ours["chunks"])
    for k, c in enumerate(ours["chunks"]):
        n_lat = int(idx["n_lattices"][k])
        assert len(c["crystals"]) == n_lat
        for j, cr in enumerate(c["crystals"]):
            # cell line (nm) = features (Å); astar/bstar/cstar (nm^-1) give the same cell
            np.testing.assert_allclose(cr["cell"][:3] * 10, idx["unit_cell"][k, j, :3], rtol=1e-4)
            a = np.stack([cr["astar"], cr["bstar"], cr["cstar"]], axis=1) / 10.0
            np.testing.assert_allclose(
                cell_parameters(np.linalg.inv(a)), cr["cell"] * [10, 10, 10, 1, 1, 1], rtol=1e-4
            )
            np.testing.assert_allclose(cell_parameters(np.linalg.inv(a)), LYSOZYME, rtol=0.01)
            # most observed peaks lie within 2 pixels of a predicted reflection
            refl = cr["reflections"]
            peaks = c["peaks"][:, :2]
            d = np.hypot(peaks[:, None, 0] - refl[None, :, 7], peaks[:, None, 1] - refl[None, :, 8])
            assert np.mean(d.min(axis=1) < 2.0) > 0.7
            # integrated intensities are mostly positive where a peak was found
            near = d.min(axis=0) < 2.0
            assert np.mean(refl[near, 3] > 0) > 0.8
