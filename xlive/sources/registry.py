"""Which source opens a target: built-ins in a dict, third parties by entry point.

Third-party packages register a ``Source`` subclass under the entry-point group
``xlive.sources``; the class may define ``guess_can_open(target) -> bool`` to be chosen
automatically. A plugin that fails to load is a warning, never a crash (as in xarray's
``backends/plugins.py``).
"""

from __future__ import annotations

import os
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from ..errors import SourceError
from .base import Source

#: built-in sources: name -> "module:Class" (imported on first use)
BUILTIN: dict[str, str] = {
    "zarr": "xlive.sources.zarr_store:ZarrSource",
    "eiger": "xlive.sources.eiger:EigerSource",
    "hdf5": "xlive.sources.hdf5:HDF5Source",
    "files": "xlive.sources.files:FilesSource",
    "stream": "xlive.sources.stream.receiver:StreamSource",
    "run": "xlive.sources.simulated:open_run_folder",
    "euxfel": "xlive.sources.extra_data:ExtraDataSource",
    "karabo": "xlive.sources.karabo:KaraboSource",
}
GROUP = "xlive.sources"


def _load(spec: str) -> Any:
    import importlib

    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def list_sources() -> dict[str, Any]:
    """All sources by name: built-ins, then entry points (a broken plugin only warns)."""
    found: dict[str, Any] = {name: _load(spec) for name, spec in BUILTIN.items()}
    for ep in entry_points(group=GROUP):
        if ep.name in found:
            continue
        try:
            found[ep.name] = ep.load()
        except Exception as exc:  # any failure of third-party code
            warnings.warn(f"xlive source plugin {ep.name!r} ({ep.value}) failed to load: {exc!r}; "
                          "it is ignored", RuntimeWarning, stacklevel=2)
    return found


def guess_kind(target: str) -> str | None:
    """Name of the built-in source for ``target`` (None when none fits)."""
    from .eiger import is_master
    from .extra_data import is_euxfel_run
    from .simulated import is_run_folder

    t = target.rstrip("/")
    if t.startswith("karabo://"):
        return "karabo"
    if t.startswith("tcp://"):
        return "stream"
    if is_euxfel_run(t):
        return "euxfel"
    if os.path.isdir(t) and is_run_folder(t):
        return "run"
    if t.endswith(".zarr") or (os.path.isdir(t) and os.path.exists(os.path.join(t, "zarr.json"))):
        return "zarr"
    if os.path.isdir(t):
        return "files"
    lower = t.lower()
    if lower.endswith((".h5", ".hdf5", ".nxs", ".hdf", ".cxi")):
        return "eiger" if os.path.exists(t) and is_master(t) else "hdf5"
    if any(ch in t for ch in "*?["):
        return "files"
    if os.path.isfile(t):
        return "files"
    return None


def open_source(target: str | Path, *, kind: str | None = None, **options: Any) -> Source:
    """Open a run (growing or finished) as a :class:`~xlive.sources.base.Source`.

    Parameters
    ----------
    target
        A ``.zarr`` store, an Eiger/NXmx master (``.h5``/``.nxs``), an HDF5 data file, a folder
        or glob of image files fabio reads (CBF, TIFF, SMV...), ``tcp://HOST:PORT`` (an Eiger
        zeromq stream, spooled to Zarr), or an xlive run folder (``xlive-run.json``).
    kind
        Force a source by name (see :func:`list_sources`).
    **options
        Passed to the source: ``chunk_frames``, ``metadata`` (side table), ``geometry``,
        ``masked_values`` and source-specific ones.

    Raises
    ------
    SourceError
        When no source can open the target; the message lists what was tried.

    Examples
    --------
    >>> src = open_source("run.zarr")  # doctest: +SKIP
    >>> n = src.refresh(); frames = src.frames()  # doctest: +SKIP
    """
    target = os.fspath(target)
    sources = list_sources() if kind is None or kind not in BUILTIN else {kind: _load(BUILTIN[kind])}
    tried: list[str] = []
    if kind is None:
        kind = guess_kind(target)
        tried.append("built-in sources by name: " + ", ".join(BUILTIN))
        if kind in (None, "files"):  # generic guesses: plugins may know better
            fallback, kind = kind, None
            for name, cls in sources.items():
                if name in BUILTIN:
                    continue
                guess = getattr(cls, "guess_can_open", None)
                tried.append(f"plugin {name!r}")
                try:
                    if guess is not None and guess(target):
                        kind = name
                        break
                except Exception:
                    continue
            kind = kind or fallback
    if kind is None:
        exists = "exists" if os.path.exists(target) else "does not exist"
        raise SourceError(
            f"no xlive source can open {target!r} ({exists}); tried {'; '.join(tried)}. "
            "Expected a .zarr store, an Eiger master .h5/.nxs, an HDF5 file, a folder or glob "
            "of CBF/TIFF/SMV files, tcp://HOST:PORT or an xlive run folder; or pass kind=NAME"
        )
    if kind not in sources:
        raise SourceError(f"unknown source kind {kind!r}; known: {', '.join(sources)}")
    if kind not in ("stream", "karabo") and not target.startswith(("tcp://", "karabo://")) and not any(c in target for c in "*?[") \
            and not Path(target).exists():
        raise SourceError(f"{target} does not exist (tried the {kind!r} source)")
    try:
        return sources[kind](target, **options)
    except SourceError:
        raise
    except TypeError as exc:
        raise SourceError(f"the {kind!r} source rejected the options {sorted(options)}: {exc}") from exc
    except Exception as exc:
        raise SourceError(f"the {kind!r} source cannot open {target!r}: {type(exc).__name__}: {exc}") \
            from exc
