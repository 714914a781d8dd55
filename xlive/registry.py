"""Plugins: sources and analyzers, built-in or from installed packages, found one way.

Three places, asked in this order: the built-ins named here as ``"module:attribute"`` strings
(imported on first use); a module of that name in the package (``xlive/analyzers/NAME.py`` whose
class has ``name = "NAME"``: a new in-tree analyzer is one file); and installed packages, under
the entry-point groups ``xlive.sources`` and ``xlive.analyzers``::

    [project.entry-points."xlive.analyzers"]
    max_pixel = "my_package.my_analyzer:MaxPixel"

Entry points are read once per process (:func:`refresh` reads them again, e.g. after installing
a package in a running notebook). A plugin that fails to import is reported with a
:class:`PluginWarning` naming it and skipped, never a crash; a plugin cannot replace a built-in
of the same name. This follows xarray's ``backends/plugins.py``.

Sources answer "can I open this?" with ``guess_can_open(target) -> bool``; :func:`open_source`
asks the specific built-ins, then the plugins, then the generic built-ins (any HDF5 file, any
folder or glob of images) and opens the target with the first that says yes.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import os
import pkgutil
import warnings
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

from .errors import AnalyzerError, SourceError, XliveError


class PluginWarning(UserWarning):
    """An installed xlive plugin could not be loaded (it is skipped)."""


def did_you_mean(name: str, choices) -> str:
    """`` (did you mean 'x'?)`` when ``name`` is close to one of ``choices``, else ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@cache
def _entry_points(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def _import(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


class Registry:
    """Plugins of one kind: built-ins by ``"module:attribute"``, then the entry-point group."""

    def __init__(
        self, kind: str, group: str, builtins: dict[str, str], error: type[XliveError], package: str
    ):
        self.kind, self.group, self.builtins, self.error = kind, group, dict(builtins), error
        #: package whose module NAME may define the plugin NAME
        self.package = package
        self._loaded: dict[str, Any] = {}
        self._in_tree: list[str] | None = None

    def _module_plugin(self, name: str) -> Any | None:
        """The class with ``name = NAME`` defined in module ``package.NAME`` (None: none)."""
        if not name.isidentifier() or name.startswith("_"):
            return None
        module_name = f"{self.package}.{name}"
        if importlib.util.find_spec(module_name) is None:
            return None
        module = importlib.import_module(module_name)
        for obj in vars(module).values():
            if (
                inspect.isclass(obj)
                and obj.__module__ == module_name
                and getattr(obj, "name", None) == name
            ):
                return obj
        return None

    def in_tree_names(self) -> list[str]:
        """Modules of the package that define a plugin of their own name (imports them)."""
        if self._in_tree is None:
            pkg = importlib.import_module(self.package)
            mods = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__))
            self._in_tree = [
                m for m in mods if m not in self.builtins and self._module_plugin(m) is not None
            ]
        return self._in_tree

    def _plugins(self) -> dict[str, EntryPoint]:
        eps = _entry_points(self.group)
        for name in sorted(set(eps) & set(self.builtins)):
            if name not in self._loaded:
                warnings.warn(
                    f"xlive {self.kind} plugin {name!r} ({eps[name].value}) has the "
                    f"name of a built-in {self.kind}; the built-in is used",
                    PluginWarning,
                    stacklevel=3,
                )
        return {n: ep for n, ep in eps.items() if n not in self.builtins}

    def names(self) -> list[str]:
        """Built-in names, in-tree modules, then installed plugins."""
        in_tree = self.in_tree_names()
        return [*self.builtins, *in_tree, *(n for n in self._plugins() if n not in in_tree)]

    def get(self, name: str) -> Any:
        """The class (or opener) registered as ``name``; an XliveError naming the choices if
        there is none or it fails to load."""
        if name in self._loaded:
            return self._loaded[name]
        plugins = self._plugins()
        if name in self.builtins:
            obj = _import(self.builtins[name])
        elif (obj := self._module_plugin(name)) is not None:
            pass
        elif name in plugins:
            try:
                obj = plugins[name].load()
            except Exception as exc:  # third-party code: report it with its name
                raise self.error(
                    f"the xlive {self.kind} plugin {name!r} ({plugins[name].value}) "
                    f"failed to load: {type(exc).__name__}: {exc}"
                ) from exc
        else:
            names = self.names()
            raise self.error(
                f"unknown {self.kind} {name!r}{did_you_mean(name, names)}; available: "
                f"{', '.join(names)}. Installed packages add {self.kind}s under the entry-point "
                f"group {self.group!r}"
            )
        self._loaded[name] = obj
        return obj

    def load_all(self) -> dict[str, Any]:
        """Everything by name; a plugin that fails to load warns and is left out."""
        out = {}
        for name in self.names():
            try:
                out[name] = self.get(name)
            except XliveError as exc:
                if name in self.builtins:
                    raise
                warnings.warn(f"{exc}; it is skipped", PluginWarning, stacklevel=2)
        return out

    def forget(self) -> None:
        self._loaded.clear()
        self._in_tree = None


#: sources; the generic ones (last in the dict) are asked after the plugins
SOURCES = Registry(
    "source",
    "xlive.sources",
    {
        "karabo": "xlive.sources.karabo:KaraboSource",
        "euxfel": "xlive.sources.extra_data:ExtraDataSource",
        "stream": "xlive.sources.stream.receiver:StreamSource",
        "run": "xlive.sources.simulated:RunFolder",
        "zarr": "xlive.sources.zarr_store:ZarrSource",
        "eiger": "xlive.sources.eiger:EigerSource",
        "hdf5": "xlive.sources.hdf5:HDF5Source",
        "files": "xlive.sources.files:FilesSource",
    },
    SourceError,
    "xlive.sources",
)
GENERIC_SOURCES = ("hdf5", "files")
#: built-in sources that open only addresses starting so: not imported (zmq, their protocols:
#: ~0.05 s of ``xlive serve``'s start) to ask about a target that does not
ADDRESS_PREFIXES = {"karabo": "karabo://", "stream": "tcp://"}

#: analyzers (``frame`` is the fused default set; the others are switched on by a config table)
ANALYZERS = Registry(
    "analyzer",
    "xlive.analyzers",
    {
        "frame": "xlive.analyzers.combined:FrameAnalyzer",
        "radial": "xlive.analyzers.radial:RadialProfile",
        "spots": "xlive.analyzers.spots:SpotFinder",
        "stats": "xlive.analyzers.stats:FrameStats",
        "max_pixel": "xlive.analyzers._template:MaxPixel",
    },
    AnalyzerError,
    "xlive.analyzers",
)


def refresh() -> None:
    """Read the entry points again (after installing or removing a plugin package)."""
    _entry_points.cache_clear()
    SOURCES.forget()
    ANALYZERS.forget()


# --------------------------------------------------------------------------- sources
def source_order() -> list[str]:
    """The order in which sources are asked whether they can open a target."""
    return list(_source_order())


def _source_order():
    """:func:`source_order`, lazily: the in-tree modules are imported (to find their plugins,
    ~0.15 s: h5py, the stream's modules) only once no specific built-in took the target."""
    yield from (n for n in SOURCES.builtins if n not in GENERIC_SOURCES)
    yield from (n for n in SOURCES.names() if n not in SOURCES.builtins)
    yield from GENERIC_SOURCES


def guess_source(target: str) -> str | None:
    """Name of the first source that says it can open ``target`` (None: none does)."""
    for name in _source_order():
        prefix = ADDRESS_PREFIXES.get(name)
        if prefix is not None and not str(target).startswith(prefix):
            continue
        try:
            opener = SOURCES.get(name)
        except XliveError as exc:  # a broken plugin must not stop the others
            warnings.warn(f"{exc}; it is skipped", PluginWarning, stacklevel=2)
            continue
        guess = getattr(opener, "guess_can_open", None)
        try:
            if guess is not None and guess(target):
                return name
        except Exception as exc:  # third-party code
            warnings.warn(
                f"xlive source {name!r}: guess_can_open({target!r}) failed "
                f"({type(exc).__name__}: {exc}); it is skipped",
                PluginWarning,
                stacklevel=2,
            )
    return None


def open_source(target: str | Path, *, kind: str | None = None, **options: Any):
    """Open a run (growing or finished) as a :class:`~xlive.sources.base.Source`.

    Parameters
    ----------
    target
        A ``.zarr`` store, an Eiger/NXmx master (``.h5``/``.nxs``), an HDF5 data file, a folder
        or glob of image files fabio reads (CBF, TIFF, SMV...), ``tcp://HOST:PORT`` (an Eiger
        zeromq stream, spooled to Zarr), an xlive run folder (``xlive-run.json``), or anything
        an installed source plugin opens.
    kind
        Force a source by name (see :func:`list_sources`).
    **options
        Passed to the source: ``chunk_frames``, ``metadata`` (side table), ``geometry``,
        ``masked_values`` and source-specific ones.

    Raises
    ------
    SourceError
        When no source can open the target; the message lists what was asked.

    Examples
    --------
    >>> src = open_source("run.zarr")  # doctest: +SKIP
    >>> n = src.refresh(); frames = src.frames()  # doctest: +SKIP
    """
    target = os.fspath(target)
    if kind is None:
        kind = guess_source(target)
    if kind is None:
        exists = "exists" if os.path.exists(target) else "does not exist"
        raise SourceError(
            f"no xlive source can open {target!r} ({exists}); tried the sources "
            f"{', '.join(source_order())}. "
            "Expected a .zarr store, an Eiger master .h5/.nxs, an HDF5 file, a folder or glob "
            "of CBF/TIFF/SMV files, tcp://HOST:PORT or an xlive run folder; or pass kind=NAME"
        )
    opener = SOURCES.get(kind)
    remote = "://" in target or any(c in target for c in "*?[")
    if not remote and not Path(target).exists():
        raise SourceError(f"{target} does not exist (tried the {kind!r} source)")
    try:
        return opener(target, **options)
    except SourceError:
        raise
    except TypeError as exc:
        raise SourceError(
            f"the {kind!r} source rejected the options {sorted(options)}: {exc}"
        ) from exc
    except Exception as exc:
        raise SourceError(
            f"the {kind!r} source cannot open {target!r}: {type(exc).__name__}: {exc}"
        ) from exc


def list_sources() -> dict[str, Any]:
    """All sources by name (a broken plugin only warns)."""
    return SOURCES.load_all()


# --------------------------------------------------------------------------- analyzers
def analyzer_class(name: str) -> type:
    """The analyzer class registered as ``name`` (AnalyzerError with the choices if none)."""
    return ANALYZERS.get(name)


def available_analyzers() -> dict[str, type]:
    """All analyzer classes by name (a broken plugin only warns)."""
    return ANALYZERS.load_all()
