"""Per-pixel maps of large detectors, cached on disk between processes.

An EIGER 4M's ten maps (~360 MB of float64) take 1-3 s to compute, on every start of
``xlive serve`` and in every worker process. A geometry's maps depend only on the geometry,
so they are kept in the user's cache folder under a hash of the geometry's content (panels,
distance, wavelength, mask) and xlive's version, and read back memory-mapped (the pages are
read when an analyzer first uses them).

Where: ``$XLIVE_CACHE_DIR/geometry-maps`` when set (``off`` switches the cache off), else the
platform's user cache folder (``~/.cache/xlive`` on Linux). Writers build an entry in a
temporary folder and rename it into place, so concurrent writers and readers never see half
an entry; the most recently used :data:`KEEP` entries are kept.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np

#: detectors with fewer pixels compute their maps faster than reading them back pays
MIN_PIXELS = 2_000_000
#: entries kept (the most recently used); each is ~80 bytes per pixel (~360 MB for a 4M)
KEEP = 4
#: bumped when the maps' layout or formulas change (with xlive's version in the key)
FORMAT = 1


def cache_dir() -> Path | None:
    """The folder of cached maps (None: caching is off)."""
    env = os.environ.get("XLIVE_CACHE_DIR")
    if env is not None:
        return (
            None if env.strip().lower() in ("", "off", "0", "none") else Path(env) / "geometry-maps"
        )
    import platformdirs

    return Path(platformdirs.user_cache_dir("xlive", appauthor=False)) / "geometry-maps"


@functools.cache
def _code_hash() -> str:
    """Hash of the geometry package's source: a change to how maps are computed makes new
    keys even when nobody bumps :data:`FORMAT` or the version (a development tree)."""
    h = hashlib.sha256()
    for f in sorted(Path(__file__).parent.glob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _plain(value):
    """JSON for numpy scalars and arrays in a geometry's dict (e.g. ``distance=np.float32``)."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def maps_key(geometry) -> str:
    """Hash of everything the maps depend on, of the code computing them and xlive's version."""
    from .. import __version__

    h = hashlib.sha256()
    info = [FORMAT, __version__, _code_hash(), geometry.to_dict()]
    h.update(json.dumps(info, sort_keys=True, default=_plain).encode())
    if geometry.mask is not None:
        mask = np.ascontiguousarray(geometry.mask, bool)
        h.update(repr(mask.shape).encode())
        h.update(np.packbits(mask).tobytes())
    return h.hexdigest()[:32]


def load_maps(geometry, maps_class, folder: Path | None = None):
    """The cached maps of ``geometry`` (a ``maps_class``: :class:`~.core.GeometryMaps`;
    memory-mapped, read-only), or None."""
    folder = cache_dir() if folder is None else folder
    if folder is None:
        return None
    entry = folder / maps_key(geometry)
    try:
        arrays = {
            name: np.load(entry / f"{name}.npy", mmap_mode="r", allow_pickle=False)
            for name in maps_class.__dataclass_fields__
        }
    except OSError:  # absent, or removed meanwhile: compute them
        return None
    except (ValueError, EOFError):  # damaged (e.g. a disk that filled up): computed again
        _discard(entry)
        return None
    if any(a.shape != tuple(geometry.shape) for a in arrays.values()):
        _discard(entry)
        return None
    try:
        os.utime(entry)  # most recently used
    except OSError:  # a shared cache folder we may read but not write
        pass
    return maps_class(**{k: np.asarray(a) for k, a in arrays.items()})


def save_maps(geometry, maps, folder: Path | None = None) -> Path | None:
    """Store ``maps`` as the entry of ``geometry`` (nothing when one is there already)."""
    folder = cache_dir() if folder is None else folder
    if folder is None:
        return None
    entry = folder / maps_key(geometry)
    if entry.is_dir():
        return entry
    tmp = folder / f".tmp-{entry.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir(parents=True)
        for name, a in maps.__dict__.items():
            np.save(tmp / f"{name}.npy", a, allow_pickle=False)
        os.rename(tmp, entry)  # atomic; fails when another writer was first
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return entry if entry.is_dir() else None
    prune(folder)
    return entry


def prune(folder: Path, keep: int = KEEP) -> None:
    """Remove all but the ``keep`` most recently used entries (and stale temporary ones)."""
    entries = []
    for p in folder.iterdir():
        try:
            entries.append((p.stat().st_mtime, p))
        except OSError:
            continue
    done = sorted((e for e in entries if not e[1].name.startswith(".")), reverse=True)
    old = [p for _, p in done[keep:]]
    # a temporary folder left by a killed writer an hour ago
    old += [p for t, p in entries if p.name.startswith(".") and t < time.time() - 3600]
    for p in old:
        _discard(p)


def _discard(entry: Path) -> None:
    """Remove an entry: out of readers' sight first (a rename), then from the disk."""
    gone = entry.parent / f".old-{entry.name}-{uuid.uuid4().hex[:8]}"
    try:
        os.rename(entry, gone)
    except OSError:  # removed by another process meanwhile
        return
    shutil.rmtree(gone, ignore_errors=True)


def cached_maps(geometry, maps_class, min_pixels: int = MIN_PIXELS):
    """The maps of ``geometry``: read from the cache for large detectors, else computed
    (``maps_class.compute``) and cached when large."""
    big = int(np.prod(geometry.shape)) >= min_pixels
    if big:
        maps = load_maps(geometry, maps_class)
        if maps is not None:
            return maps
    maps = maps_class.compute(geometry)
    if big:
        try:
            save_maps(geometry, maps)
        except OSError:  # a full or read-only cache folder costs only the next start's time
            pass
    return maps
