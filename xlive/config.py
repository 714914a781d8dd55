"""The run configuration: one TOML file -> frozen dataclasses (stored with the features).

Tables: ``[geometry]`` overrides (``distance`` m, ``wavelength`` Å, ``beam_center_x/y`` pixels),
``[analyzers]`` (keyword arguments of :func:`xlive.analyzers.default_analyzers`), ``[live]``
(:class:`~xlive.live.LiveParams`), ``[flags]`` (:class:`~xlive.flags.FlagThresholds`) and
``[aggregate]`` (:class:`~xlive.aggregate.AggregateParams`). Unknown keys are errors that list
the allowed ones.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .aggregate import AggregateParams
from .errors import ConfigError
from .flags import FlagThresholds
from .geometry import Geometry
from .live import LiveParams

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

GEOMETRY_KEYS = ("distance", "wavelength", "beam_center_x", "beam_center_y")
TABLES = ("geometry", "analyzers", "live", "flags", "aggregate", "logbook")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything a run's analysis can be told."""

    #: geometry overrides (distance m, wavelength Å, beam_center_x/y pixels)
    geometry: dict = field(default_factory=dict)
    #: keyword arguments of default_analyzers
    analyzers: dict = field(default_factory=dict)
    live: LiveParams = field(default_factory=LiveParams)
    flags: FlagThresholds = field(default_factory=FlagThresholds)
    aggregate: AggregateParams = field(default_factory=AggregateParams)
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
            p = dataclasses.replace(geom.panels[0],
                                    corner_x=-float(g.get("beam_center_x", bx)),
                                    corner_y=-float(g.get("beam_center_y", by)))
            changes["panels"] = (p,)
        return geom.replace(**changes)

    def build_analyzers(self, geometry: Geometry) -> list:
        """The default analyzers with this configuration's ``[analyzers.*]`` parameters."""
        from .analyzers import RadialParams, SpotParams, StatsParams, default_analyzers

        kinds = {"radial": RadialParams, "spots": SpotParams, "stats": StatsParams}
        unknown = sorted(set(self.analyzers) - set(kinds))
        if unknown:
            raise ConfigError(f"[analyzers] has unknown tables {unknown}; allowed: {sorted(kinds)}")
        params = {k: _build(kinds[k], v, f"analyzers.{k}") for k, v in self.analyzers.items()}
        return default_analyzers(geometry, **params)

    def to_dict(self) -> dict:
        return {"geometry": dict(self.geometry), "analyzers": dict(self.analyzers),
                "live": dataclasses.asdict(self.live), "flags": dataclasses.asdict(self.flags),
                "aggregate": dataclasses.asdict(self.aggregate)}


def _build(cls, table: dict, name: str):
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"[{name}] has unknown keys {unknown}; allowed: {sorted(allowed)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"[{name}]: {e}") from e


def parse_config(data: dict, *, origin: str = "configuration") -> RunConfig:
    unknown = sorted(set(data) - set(TABLES))
    if unknown:
        raise ConfigError(f"{origin}: unknown tables {unknown}; allowed: {list(TABLES)}")
    geom = dict(data.get("geometry", {}))
    bad = sorted(set(geom) - set(GEOMETRY_KEYS))
    if bad:
        raise ConfigError(f"{origin} [geometry] has unknown keys {bad}; allowed: {list(GEOMETRY_KEYS)}")
    for k, v in geom.items():
        if not isinstance(v, (int, float)) or v <= 0 and k in ("distance", "wavelength"):
            raise ConfigError(f"{origin} [geometry] {k} must be a positive number, got {v!r}")
    analyzers = dict(data.get("analyzers", {}))
    return RunConfig(
        geometry=geom, analyzers=analyzers,
        live=_build(LiveParams, data.get("live", {}), "live"),
        flags=_build(FlagThresholds, data.get("flags", {}), "flags"),
        aggregate=_build(AggregateParams, data.get("aggregate", {}), "aggregate"),
        logbook=_logbook(data.get("logbook", {}), origin),
    )


def _logbook(table: dict, origin: str) -> dict:
    from .variables import check_config_table

    return check_config_table(table, origin)


def load_config(path: str | Path | None) -> RunConfig:
    """Read a run configuration file (None: the defaults)."""
    if path is None:
        return RunConfig()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    return parse_config(data, origin=str(path))
