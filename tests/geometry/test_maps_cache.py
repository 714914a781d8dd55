"""Geometry maps cached on disk: the same arrays as computed, keyed by the geometry's content
and xlive's version, safe against concurrent writers, bounded in size."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

from xlive.geometry import Geometry
from xlive.geometry import cache as gcache
from xlive.geometry.core import GeometryMaps

FIELDS = list(GeometryMaps.__dataclass_fields__)


def _geometry(distance=0.1, mask=None):
    return Geometry.simple(
        shape=(96, 128),
        pixel_size=75e-6,
        distance=distance,
        beam_center_x=60.3,
        beam_center_y=40.7,
        wavelength=1.0,
        mask=mask,
    )


def test_cached_maps_equal_the_computed_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("XLIVE_CACHE_DIR", str(tmp_path))
    mask = np.zeros((96, 128), bool)
    mask[3:9, 70:80] = True
    g = _geometry(mask=mask)
    first = gcache.cached_maps(g, GeometryMaps, min_pixels=0)  # computed, then written
    (entry,) = (tmp_path / "geometry-maps").iterdir()
    assert sorted(p.stem for p in entry.iterdir()) == sorted(FIELDS)
    again = gcache.cached_maps(_geometry(mask=mask.copy()), GeometryMaps, min_pixels=0)  # read back
    reference = GeometryMaps.compute(g)
    for name in FIELDS:
        a, b, ref = getattr(first, name), getattr(again, name), getattr(reference, name)
        assert b.dtype == ref.dtype and b.shape == ref.shape and not b.flags.writeable, name
        assert isinstance(b, np.ndarray) and not isinstance(b, np.memmap), name
        np.testing.assert_array_equal(b, ref, err_msg=name)
        np.testing.assert_array_equal(a, ref, err_msg=name)
    np.testing.assert_array_equal(again.polarization(0.95), reference.polarization(0.95))


def test_the_key_follows_the_geometry_and_xlive_version(monkeypatch):
    import xlive

    g = _geometry()
    key = gcache.maps_key(g)
    assert gcache.maps_key(_geometry()) == key  # content, not identity
    assert gcache.maps_key(_geometry(distance=0.1001)) != key
    assert gcache.maps_key(_geometry(mask=np.zeros((96, 128), bool))) != key
    one = np.zeros((96, 128), bool)
    one[5, 5] = True
    other = np.zeros((96, 128), bool)
    other[5, 6] = True
    assert gcache.maps_key(_geometry(mask=one)) != gcache.maps_key(_geometry(mask=other))
    monkeypatch.setattr(gcache, "_code_hash", lambda: "the maps' code changed")
    assert gcache.maps_key(g) != key
    monkeypatch.undo()
    monkeypatch.setattr(xlive, "__version__", "99.0")
    assert gcache.maps_key(g) != key


def test_a_read_only_cache_is_read(tmp_path, monkeypatch):
    """Entries in a cache folder this process may not write (shared, read-only) are used."""
    import os

    monkeypatch.setenv("XLIVE_CACHE_DIR", str(tmp_path))
    g = _geometry()
    gcache.cached_maps(g, GeometryMaps, min_pixels=0)
    monkeypatch.setattr(os, "utime", _no_write)  # what a read-only folder answers
    maps = gcache.load_maps(g, GeometryMaps)
    assert maps is not None
    np.testing.assert_array_equal(maps.q, GeometryMaps.compute(g).q)


def _no_write(*args, **kwargs):
    raise PermissionError(13, "Permission denied")


def test_small_detectors_and_a_switched_off_cache_write_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("XLIVE_CACHE_DIR", str(tmp_path))
    assert _geometry().maps.q.shape == (96, 128)  # 12k pixels: below MIN_PIXELS
    assert not (tmp_path / "geometry-maps").exists()
    monkeypatch.setenv("XLIVE_CACHE_DIR", "off")
    assert gcache.cache_dir() is None
    maps = gcache.cached_maps(_geometry(), GeometryMaps, min_pixels=0)
    np.testing.assert_array_equal(maps.q, GeometryMaps.compute(_geometry()).q)
    assert not (tmp_path / "geometry-maps").exists()


def test_default_folder_is_the_users_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("XLIVE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert gcache.cache_dir() == tmp_path / "xlive" / "geometry-maps"


def test_concurrent_writers_leave_one_whole_entry(tmp_path):
    folder = tmp_path / "maps"
    g = _geometry()
    maps = GeometryMaps.compute(g)
    start = threading.Barrier(4)
    out = []

    def write():
        start.wait()
        out.append(gcache.save_maps(g, maps, folder))

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    entry = folder / gcache.maps_key(g)
    assert out == [entry] * 4
    assert [p.name for p in folder.iterdir()] == [entry.name]  # no temporary folder left
    np.testing.assert_array_equal(gcache.load_maps(g, GeometryMaps, folder).d, maps.d)


def test_another_process_reads_the_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("XLIVE_CACHE_DIR", str(tmp_path))
    g = _geometry(distance=0.2)
    gcache.save_maps(g, GeometryMaps.compute(g))
    code = (
        "import sys, numpy as np; from xlive.geometry import Geometry; "
        "from xlive.geometry import cache; "
        "g = Geometry.simple(shape=(96, 128), pixel_size=75e-6, distance=0.2, "
        "beam_center_x=60.3, beam_center_y=40.7, wavelength=1.0); "
        "from xlive.geometry.core import GeometryMaps; "
        "m = cache.load_maps(g, GeometryMaps); print(m is not None and float(np.nansum(m.q)))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(res.stdout) == pytest.approx(float(np.nansum(GeometryMaps.compute(g).q)))


def test_only_the_most_recently_used_entries_are_kept(tmp_path):
    import os

    folder = tmp_path / "maps"
    geoms = [_geometry(distance=0.1 + 0.01 * k) for k in range(gcache.KEEP + 2)]
    for k, g in enumerate(geoms):
        gcache.save_maps(g, GeometryMaps.compute(g), folder)
        entry = folder / gcache.maps_key(g)
        os.utime(entry, (1e9 + k, 1e9 + k))  # written in this order, a second apart
    assert gcache.load_maps(geoms[2], GeometryMaps, folder) is not None  # used now: the most recent
    newest = _geometry(distance=0.5)
    gcache.save_maps(newest, GeometryMaps.compute(newest), folder)
    kept = {p.name for p in folder.iterdir()}
    expect = {gcache.maps_key(g) for g in (newest, geoms[2], *geoms[-2:])}
    assert kept == expect


def test_a_damaged_entry_is_computed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("XLIVE_CACHE_DIR", str(tmp_path))
    g = _geometry()
    entry = gcache.save_maps(g, GeometryMaps.compute(g))
    q = np.load(entry / "q.npy")
    (entry / "q.npy").write_bytes((entry / "q.npy").read_bytes()[:1000])  # cut short
    assert gcache.load_maps(g, GeometryMaps) is None and not entry.exists()
    maps = gcache.cached_maps(g, GeometryMaps, min_pixels=0)  # computed and written again
    np.testing.assert_array_equal(maps.q, q)
    np.testing.assert_array_equal(gcache.load_maps(g, GeometryMaps).q, q)
