"""The run configuration: one TOML file -> frozen dataclasses, checked at load, stored with the
features.

Tables: ``[geometry]`` overrides (``distance`` m, ``wavelength`` Å, ``beam_center_x/y`` pixels);
``[analyzers.NAME]``: ``radial``, ``spots`` and ``stats`` tune the built-in analyzers, any other
NAME switches on the analyzer registered under it (its keys are the fields of its
``params_class``); ``[live]`` (:class:`~xlive.engine.live.LiveParams`), ``[flags]``
(:class:`~xlive.aggregate.flags.FlagThresholds`), ``[aggregate]``
(:class:`~xlive.aggregate.running.AggregateParams`) and ``[cluster]``
(:class:`~xlive.engine.cluster.ClusterParams`: where the workers run). ``[indexing]`` switches
on indexing of the hits (:class:`~xlive.analyzers.indexing.IndexingParams`: ``cell``,
``space_group``, ``budget``...); it is the same as ``[analyzers.indexing]``.

Everything is checked when the file is loaded: an unknown table, analyzer or key is an error
that suggests the nearest allowed name; a value of the wrong type is an error naming the key
(``[live] block must be an integer, got 2.5``). The processed configuration is stored in the
feature store (:meth:`RunConfig.to_dict`), and the commands that read a store use it
(:func:`stored_config`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from .aggregate.flags import FlagThresholds
from .aggregate.running import AggregateParams
from .engine.cluster import ClusterParams
from .engine.live import LiveParams
from .errors import ConfigError, XliveError
from .geometry.core import Geometry
from .registry import did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

GEOMETRY_KEYS = (
    "distance",
    "wavelength",
    "beam_center_x",
    "beam_center_y",
    "clen",
    "photon_energy",
    "pixel_size",
    "saturation_value",
    "file",
    "mask",
)
# file, mask: paths (as --geometry FILE, --mask FILE)
TABLES = ("geometry", "analyzers", "live", "flags", "aggregate", "cluster", "indexing", "logbook")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything a run's analysis can be told."""

    #: geometry overrides (distance m, wavelength Å, beam_center_x/y pixels)
    geometry: dict = field(default_factory=dict)
    #: ``[analyzers.NAME]`` tables: NAME -> parameter object (None: an analyzer without any)
    analyzers: dict = field(default_factory=dict)
    live: LiveParams = field(default_factory=LiveParams)
    flags: FlagThresholds = field(default_factory=FlagThresholds)
    aggregate: AggregateParams = field(default_factory=AggregateParams)
    #: where workers run (:class:`~xlive.engine.cluster.ClusterParams`)
    cluster: ClusterParams = field(default_factory=ClusterParams)
    #: ``[logbook]``: ``variables`` = a file of @xlive.run_variable functions (issue 18)
    logbook: dict = field(default_factory=dict)

    def apply_geometry(self, geom: Geometry) -> Geometry:
        """The geometry with this configuration's overrides applied."""
        g = self.geometry
        if not g:
            return geom
        changes = {k: float(g[k]) for k in ("distance", "wavelength") if k in g}
        if "beam_center_x" in g or "beam_center_y" in g:
            if len(geom.panels) != 1:
                raise ConfigError("beam_center_x/y overrides apply to single-panel detectors only")
            bx, by = geom.beam_center
            p = dataclasses.replace(
                geom.panels[0],
                corner_x=-float(g.get("beam_center_x", bx)),
                corner_y=-float(g.get("beam_center_y", by)),
            )
            changes["panels"] = (p,)
        return geom.replace(**changes)

    def with_indexing(self, params) -> RunConfig:
        """A copy that indexes hits with ``params`` (IndexingParams; None: no change)."""
        if params is None:
            return self
        return dataclasses.replace(self, analyzers={**self.analyzers, "indexing": params})

    def build_analyzers(self, geometry: Geometry) -> list:
        """The built-in analyzers tuned by, plus the analyzers switched on by, ``[analyzers.*]``."""
        from .analyzers import build_analyzers

        return build_analyzers(geometry, self.analyzers)

    def to_dict(self) -> dict:
        """Plain data (JSON/TOML-able); :func:`parse_config` reads it back."""
        return {
            "geometry": dict(self.geometry),
            "analyzers": {
                k: {} if p is None else dataclasses.asdict(p) for k, p in self.analyzers.items()
            },
            "live": dataclasses.asdict(self.live),
            "flags": dataclasses.asdict(self.flags),
            "aggregate": dataclasses.asdict(self.aggregate),
            "cluster": dataclasses.asdict(self.cluster),
        }


# --------------------------------------------------------------------------- checking values
def _describe(tp) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0])} values"
        return f"a list of {len(args)} values"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    return {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "a string",
        dict: "a table",
    }.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp) -> tuple[bool, Any]:
    """``(ok, value as the field wants it)``: lists become tuples, integers floats."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True, value
    if origin in (Union, types.UnionType):
        for a in args:
            ok, v = _coerce(value, a)
            if ok:
                return True, v
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is str:
        return isinstance(value, str), value
    if origin is Literal:
        return value in args, value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False, value
        items = args[:1] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if args and len(items) != len(value):
            return False, value
        out = []
        for v, a in zip(value, items or (Any,) * len(value), strict=True):
            ok, v = _coerce(v, a)
            if not ok:
                return False, value
            out.append(v)
        return True, tuple(out)
    if tp is dict or origin is dict:
        return isinstance(value, dict), value
    if isinstance(tp, type):
        return isinstance(value, tp), value
    return True, value  # an annotation this checker does not know: the dataclass judges


def _build(cls, table: Any, name: str):
    """``cls(**table)``, with unknown keys and wrongly typed values reported by name."""
    if not isinstance(table, dict):
        raise ConfigError(f"[{name}] must be a table of keys, got {table!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in table:
        if key not in fields:
            raise ConfigError(
                f"[{name}] has no key {key!r}{did_you_mean(key, fields)}; "
                f"allowed: {', '.join(fields)}"
            )
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in table.items():
        ok, v = _coerce(value, hints.get(key, Any))
        if not ok:
            raise ConfigError(
                f"[{name}] {key} must be {_describe(hints[key])}, "
                f"got {value!r} ({type(value).__name__})"
            )
        values[key] = v
    try:
        return cls(**values)
    except (TypeError, ValueError, XliveError) as e:
        raise ConfigError(f"[{name}]: {e}") from e


def _analyzer_tables(tables: Any, origin: str) -> dict:
    """``[analyzers.NAME]`` tables -> NAME: parameter object, each checked against its class."""
    from .analyzers import DEFAULT_TABLES, analyzer_class

    if not isinstance(tables, dict):
        raise ConfigError(f"{origin}: [analyzers] must hold tables [analyzers.NAME]")
    out = {}
    for name, table in tables.items():
        if name in DEFAULT_TABLES:
            cls = DEFAULT_TABLES[name]
        elif name == "frame":
            raise ConfigError(
                f"{origin}: [analyzers.frame] is the built-in set; tune it with "
                f"[analyzers.{'], [analyzers.'.join(DEFAULT_TABLES)}]"
            )
        else:
            try:
                cls = getattr(analyzer_class(name), "params_class", None)
            except XliveError as e:
                raise ConfigError(f"{origin} [analyzers.{name}]: {e}") from None
        if cls is None:
            if table:
                raise ConfigError(
                    f"{origin} [analyzers.{name}]: this analyzer takes no "
                    f"parameters, got {sorted(table)}"
                )
            out[name] = None
        else:
            out[name] = _build(cls, table, f"analyzers.{name}")
    return out


def parse_config(data: dict, *, origin: str = "configuration") -> RunConfig:
    """A :class:`RunConfig` from parsed TOML (or :meth:`RunConfig.to_dict`), checked."""
    for key in data:
        if key not in TABLES:
            raise ConfigError(
                f"{origin}: unknown table [{key}]{did_you_mean(key, TABLES)}; "
                f"allowed: {', '.join(TABLES)}"
            )
    geom = dict(data.get("geometry", {}))
    for k, v in geom.items():
        if k not in GEOMETRY_KEYS:
            raise ConfigError(
                f"{origin} [geometry] has no key {k!r}{did_you_mean(k, GEOMETRY_KEYS)}"
                f"; allowed: {', '.join(GEOMETRY_KEYS)}"
            )
        if k in ("file", "mask"):
            if not isinstance(v, str):
                raise ConfigError(f"{origin} [geometry] {k} must be a file path, got {v!r}")
            continue
        if (
            not isinstance(v, (int, float))
            or isinstance(v, bool)
            or (v <= 0 and k in ("distance", "wavelength"))
        ):
            raise ConfigError(f"{origin} [geometry] {k} must be a positive number, got {v!r}")
    analyzers = _analyzer_tables(data.get("analyzers", {}), origin)
    if "indexing" in data:  # [indexing] is [analyzers.indexing]
        if "indexing" in analyzers:
            raise ConfigError(f"{origin}: give [indexing] or [analyzers.indexing], not both")
        from .analyzers.indexing import IndexingParams

        analyzers["indexing"] = _build(IndexingParams, data["indexing"], "indexing")
    return RunConfig(
        geometry=geom,
        analyzers=analyzers,
        live=_build(LiveParams, data.get("live", {}), "live"),
        flags=_build(FlagThresholds, data.get("flags", {}), "flags"),
        aggregate=_build(AggregateParams, data.get("aggregate", {}), "aggregate"),
        cluster=_build(ClusterParams, data.get("cluster", {}), "cluster"),
        logbook=_logbook(data.get("logbook", {}), origin),
    )


def _logbook(table: dict, origin: str) -> dict:
    """``[logbook]``: ``variables = "FILE"``, a path relative to the configuration file."""
    for k in table:
        if k != "variables":
            raise ConfigError(f"{origin} [logbook] has no key {k!r}; allowed: variables")
    out = dict(table)
    if "variables" in out:
        if not isinstance(out["variables"], str) or not out["variables"]:
            raise ConfigError(f"{origin} [logbook] variables must be a file path (a string)")
        path = Path(out["variables"]).expanduser()
        base = Path(origin).parent if Path(origin).is_file() else Path.cwd()
        out["variables"] = str(path if path.is_absolute() else base / path)
    return out


def load_config(path: str | Path | RunConfig | None) -> RunConfig:
    """Read a run configuration file (None: the defaults; a RunConfig: itself)."""
    if path is None:
        return RunConfig()
    if isinstance(path, RunConfig):
        return path
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    return parse_config(data, origin=str(path))


def stored_config(attrs: dict, *, analyzers: bool = True) -> RunConfig:
    """The configuration a feature store was computed with, from its attributes (defaults for
    a store written before configurations were stored). ``analyzers=False`` leaves out the
    ``[analyzers.*]`` tables, so reading a store needs no analyzer plugin installed."""
    cfg = attrs.get("config")
    if isinstance(cfg, str):
        cfg = json.loads(cfg)
    if not cfg:
        return RunConfig()
    if not analyzers:
        cfg = {k: v for k, v in cfg.items() if k != "analyzers"}
    return parse_config(cfg, origin="the feature store's configuration")
