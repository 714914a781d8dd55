"""Feature Datasets follow xarray's conventions (issue 17).

Every variable and coordinate of ``analyze()`` and ``open_features()`` has CF ``long_name`` and
``units`` (none for a quantity its declaration says is dimensionless, never ``units=""``);
``timestamp`` is ``datetime64``; ``status`` is a coordinate in both; ``xarray.open_zarr(store)``
reads the store as the same Dataset as ``open_features`` (finished, and while another process
is still writing it); ``analyze()`` sizes its tasks by bytes, not 4 frames.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import xarray as xr
from xarray.testing import assert_identical

from xlive.analyzers import default_analyzers
from xlive.analyzers._template import MaxPixel
from xlive.analyzers.radial import RadialParams, RadialProfile
from xlive.engine.cf import COORD_ATTRS, is_dimensionless, to_datetime64
from xlive.engine.features import analyze, feature_coords, feature_specs, frame_chunks
from xlive.engine.live import LiveProcessor, default_client
from xlive.engine.store import BAD, DONE, PENDING, SKIPPED, FeatureStore, open_features
from xlive.errors import ConfigError
from xlive.simulate import write_run
from xlive.sources import open_source

N = 12


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("conventions") / "run"
    write_run(out, frames=N, rate=0, detector="eiger500k", seed=17, hit_fraction=0.5)
    return out


@pytest.fixture(scope="module")
def client():
    c = default_client(1)
    yield c
    c.close()
    c.cluster.close()


def declared_dimensionless(analyzers) -> set[str]:
    """Names whose declarations say "dimensionless": features with units "" / "1", the
    analyzers' coordinates given without units, xlive's own coordinates without units."""
    names = {s.name for s in feature_specs(analyzers) if is_dimensionless(s.units)}
    for an in analyzers:
        names |= {k for k, (_, _, a) in an.coords().items() if is_dimensionless(a.get("units"))}
    return names | {k for k, a in COORD_ATTRS.items() if "units" not in a}


def check_cf(ds: xr.Dataset, dimensionless: set[str]) -> None:
    for name, var in ds.variables.items():
        long_name = var.attrs.get("long_name")
        assert isinstance(long_name, str) and long_name.strip(), f"{name} has no long_name"
        assert "description" not in var.attrs, f"{name}: description instead of long_name"
        if "units" in var.attrs:
            units = var.attrs["units"]
            assert isinstance(units, str) and units not in ("", "1"), f"{name}: units={units!r}"
        else:
            assert name in dimensionless, f"{name} has no units and is not declared dimensionless"
    # what xarray's plots print on an axis: no empty brackets
    for name in ds.variables:
        assert "[]" not in ds.xlive.label(name)


def all_analyzers(geometry):
    """The default set with indexing switched on, plus a declared (plugin-style) analyzer."""
    return [*default_analyzers(geometry, indexing=True), MaxPixel(geometry)]


def test_analyze_every_variable_has_cf_attributes_and_status_is_a_coordinate(run):
    src = open_source(run)
    analyzers = all_analyzers(src.geometry)
    ds = analyze(src, analyzers)  # lazy: attributes are there before anything is computed
    names = {s.name for s in feature_specs(analyzers)}
    assert {"unit_cell", "indexed", "max_pixel", "max_pixel_log", "n_spots"} <= names
    assert names <= set(ds.data_vars) and "bad" not in ds.variables
    check_cf(ds, declared_dimensionless(analyzers))
    assert ds["n_spots"].attrs == {"long_name": "spots found"}  # dimensionless: no units
    assert ds["max_pixel"].attrs["units"] == "counts"
    assert ds.xlive.label("d_min").endswith("[angstrom]")
    assert "status" in ds.coords and ds["status"].attrs["flag_values"] == [0, 1, 2, 3]
    assert ds["timestamp"].dtype == np.dtype("datetime64[ns]")
    # the timestamps are the source's (seconds since the epoch) as datetime64
    secs = np.asarray(src.metadata()["timestamp"], float)
    assert secs.min() > 1e9  # wall-clock times
    got = ds["timestamp"].values.astype("datetime64[us]").astype(np.int64) / 1e6
    np.testing.assert_allclose(got, secs, rtol=0, atol=2e-6)


def test_analyze_chunks_are_sized_by_bytes(run):
    src = open_source(run)
    src.refresh()
    frame_bytes = int(np.prod(src.reader.shape)) * np.dtype(src.reader.dtype).itemsize
    # a 2000-frame run of this small detector: tens of tasks, not 500 of 4 frames
    chunks = frame_chunks(src, 2000, "auto")
    assert sum(chunks) == 2000 and len(chunks) <= 50
    import dask

    limit = dask.utils.parse_bytes(dask.config.get("array.chunk-size"))
    assert max(chunks) * frame_bytes <= limit < (max(chunks) + 1) * frame_bytes * 2
    assert len(frame_chunks(src, 2000, 4)) == 500  # what block=4 (the old default) gave
    ds = analyze(src, [RadialProfile(src.geometry, RadialParams(n_bins=16))])
    assert ds.chunks["frame"] == frame_chunks(src, N, "auto") == (N,)
    with pytest.raises(ConfigError, match="block must be"):
        frame_chunks(src, 10, 0)


def test_finished_store_reads_the_same_with_open_zarr(run, tmp_path, client):
    """A real live-loop store of a run with a corrupt frame: same Dataset through xarray."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "run.zarr" / "frames" / "c" / "3" / "0" / "0").write_bytes(b"not a blosc chunk")
    src = open_source(copy)
    analyzers = [*default_analyzers(src.geometry), MaxPixel(src.geometry)]
    with LiveProcessor(src, tmp_path / "f.zarr", analyzers=analyzers, client=client) as lp:
        lp.run(until_idle=0.0)
    store = tmp_path / "f.zarr"
    raw = xr.open_zarr(store)
    full = open_features(store, computed_only=False)
    assert_identical(raw, full)  # values, coordinates and every attribute
    assert raw.sizes["frame"] == N and raw["frame"].values.tolist() == list(range(N))
    assert raw["status"].values.tolist() == [DONE] * 3 + [BAD] + [DONE] * (N - 4)
    assert_identical(raw.xlive.done(), open_features(store))
    # closed: the arrays' own shapes are exact too (a reader ignoring consolidated metadata)
    assert_identical(xr.open_zarr(store, consolidated=False), raw)
    assert raw["timestamp"].dtype == np.dtype("datetime64[ns]")
    assert np.array_equal(raw["timestamp"].values, to_datetime64(src.metadata()["timestamp"])[:N])
    check_cf(open_features(store), declared_dimensionless(analyzers))
    # every attribute netCDF takes: both readers' Datasets save as netCDF and read back equal
    for i, ds in enumerate((raw, open_features(store))):
        ds.to_netcdf(tmp_path / f"features{i}.nc", engine="h5netcdf")
        with xr.open_dataset(tmp_path / f"features{i}.nc", engine="h5netcdf") as back:
            assert back.attrs == ds.attrs
            assert np.array_equal(back["n_spots"].values, ds["n_spots"].values)
    # the same features as analyze() computes, in the same layout
    ref = analyze(src, analyzers).compute(scheduler="threads")
    assert np.array_equal(ref["status"].values, full["status"].values)
    assert ref["status"].attrs == full["status"].attrs
    for name in ("n_spots", "max_pixel", "radial_profile", "is_hit"):
        a, b = ref[name].reset_coords(drop=True), full[name].compute().reset_coords(drop=True)
        ok = ref["status"].values == DONE
        xr.testing.assert_allclose(a.isel(frame=ok), b.isel(frame=ok))
        assert a.attrs == b.attrs


def test_store_attributes_of_indexing_outputs(run, tmp_path):
    """The store declares the indexing outputs' attributes too (nothing computed)."""
    src = open_source(run)
    analyzers = all_analyzers(src.geometry)
    FeatureStore.create(
        tmp_path / "i.zarr", specs=feature_specs(analyzers), coords=feature_coords(analyzers)
    )
    ds = xr.open_zarr(tmp_path / "i.zarr")
    assert ds.sizes["frame"] == 0 and "unit_cell" in ds and "cell_param" in ds.coords
    check_cf(ds, declared_dimensionless(analyzers))
    assert_identical(ds, open_features(tmp_path / "i.zarr", computed_only=False))


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np
    from xlive.analyzers.radial import RadialParams, RadialProfile
    from xlive.engine.features import analyze_block, feature_coords, feature_specs
    from xlive.engine.store import FeatureStore
    from xlive.sources import open_source

    run, out, ctl = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    src = open_source(run)
    n = src.refresh()
    ans = [RadialProfile(src.geometry, RadialParams(n_bins=24))]
    store = FeatureStore.open_or_create(
        out, specs=feature_specs(ans), coords=feature_coords(ans), attrs={"source": run}
    )
    meta = src.metadata()

    def put(a, b):
        idx = np.arange(a, b)
        block = analyze_block(src.reader, ans, idx)
        store.write(block, {k: np.asarray(v)[idx] for k, v in meta.items()})

    # the run has shown 8 frames; blocks finish out of order; two frames skipped by sampling
    store.see(8)
    put(4, 6)
    put(0, 2)
    store.mark_skipped(np.arange(6, 8))
    store.flush()  # what the live loop publishes every second
    (ctl / "paused").touch()
    while not (ctl / "go").exists():
        time.sleep(0.02)
    # the run grows two frames at a time, each block written as it comes
    for a in range(8, n, 2):
        store.see(a + 2)
        put(a, a + 2)
    put(2, 4)
    put(6, 8)  # filled in afterwards
    store.flush(exact=True)  # as the live loop closes
    (ctl / "finished").touch()
    """
)


def wait_for(path, proc, seconds=120.0):
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < seconds, f"{path.name} never appeared"
        time.sleep(0.02)


def test_growing_store_read_by_another_process(run, tmp_path):
    store, ctl = tmp_path / "g.zarr", tmp_path / "ctl"
    ctl.mkdir()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(run), str(store), str(ctl)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(ctl / "paused", proc)
        # mid-run: 8 frames shown, 4 written, 2 skipped, 2 pending
        raw = xr.open_zarr(store)
        assert_identical(raw, open_features(store, computed_only=False))
        assert_identical(raw.xlive.done(), open_features(store))
        assert raw.sizes["frame"] == 8 and raw["frame"].values.tolist() == list(range(8))
        st = raw["status"].values
        assert st.tolist() == [DONE, DONE, PENDING, PENDING, DONE, DONE, SKIPPED, SKIPPED]
        assert np.isnat(raw["timestamp"].values[st != DONE]).all()  # unwritten rows: NaT
        assert not np.isnat(raw["timestamp"].values[st == DONE]).any()
        assert raw.xlive.status_counts() == {"pending": 2, "done": 4, "bad": 0, "skipped": 2}
        # the writer goes on; every read while it writes is one consistent Dataset
        (ctl / "go").touch()
        reads, sizes = 0, []
        while not (ctl / "finished").exists():
            assert proc.poll() in (None, 0), proc.communicate()
            ds = xr.open_zarr(store)  # conflicting sizes would raise here
            sizes.append(ds.sizes["frame"])
            done = ds["status"].values == DONE
            assert not np.isnan(ds["radial_profile"].values[done]).all(axis=1).any()
            assert ds["frame"].values.tolist() == list(range(sizes[-1]))
            assert ds.attrs["frames_seen"] == sizes[-1]  # published with the shapes
            reads += 1
        assert sizes == sorted(sizes) and reads >= 1
        proc.wait(timeout=60)
        assert proc.returncode == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    final = xr.open_zarr(store)
    assert_identical(xr.open_zarr(store, consolidated=False), final)
    assert final.sizes["frame"] == N and (final["status"].values == DONE).all()
    assert_identical(final, open_features(store))  # finished, every frame done
    assert final.attrs["frames_seen"] == N and final.attrs["frames_done"] == N


def test_a_growing_store_is_published_at_most_every_interval(run, tmp_path, monkeypatch):
    """The writer rewrites the group metadata on flush() (or once per PUBLISH_INTERVAL), not
    on every poll; a reader meanwhile sees the last published rows, all consistent."""
    import xlive.engine.store as store_mod

    src = open_source(run)
    ans = [RadialProfile(src.geometry, RadialParams(n_bins=8))]
    path = tmp_path / "p.zarr"
    st = FeatureStore.create(path, specs=feature_specs(ans), coords=feature_coords(ans))
    monkeypatch.setattr(store_mod, "PUBLISH_INTERVAL", 1e9)
    meta_file = path / "zarr.json"
    before = meta_file.stat().st_mtime_ns, meta_file.read_bytes()
    for n in range(1, 40):  # forty polls, each finding a new frame
        st.see(n)
    st.mark_skipped(np.arange(0, 3))
    assert (meta_file.stat().st_mtime_ns, meta_file.read_bytes()) == before
    assert xr.open_zarr(path).sizes["frame"] == 0 and st.frames_seen == 39
    st.flush()
    ds = xr.open_zarr(path)
    assert ds.sizes["frame"] == 39 and ds.attrs["frames_seen"] == 39
    assert ds["status"].values[:4].tolist() == [SKIPPED] * 3 + [PENDING]
    assert FeatureStore.open(path).frames_seen == 39
    # allocated a chunk ahead, published exactly; exact on disk after flush(exact=True)
    assert st.group.store is not None and st._capacity() == 128
    assert xr.open_zarr(path, consolidated=False).sizes["frame"] == 128
    st.flush(exact=True)
    assert_identical(xr.open_zarr(path, consolidated=False), xr.open_zarr(path))
