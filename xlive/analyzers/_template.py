"""Copy-me template for a new per-frame feature: one file plus one configuration table.

This file is the whole feature. Switch it on in the run configuration::

    [analyzers.max_pixel]      # the analyzer's ``name``; the keys are its ``params_class``
    alarm_level = 60000

and ``xlive process`` / ``xlive serve`` / ``Monitor`` compute it, store it with the other
features, show it on the dashboard and in the report, aggregate it over the run and raise its
flag, with no other file edited. The keys are checked when the configuration is loaded.

To add your own, copy this file and rename the class, its ``name`` and its outputs. Then either

- put it in ``xlive/analyzers/NAME.py`` (an in-tree analyzer is found by its module name), or
- keep it in your own package and register it in that package's ``pyproject.toml``::

      [project.entry-points."xlive.analyzers"]
      max_pixel = "my_package.my_analyzer:MaxPixel"

Rules: build everything that depends only on the geometry in ``__init__``; keep ``__call__``
free of shared mutable state (it runs on many threads) and never write into the frames it is
given (the Eiger stream and HDF5 readers hand over read-only arrays: copy first); declare every
output in ``describe`` with dims starting with ``"frame"``; return arrays with the frame count
as leading dimension.
``Show`` says how an output is drawn and added up over the run: ``"strip"`` (value per frame),
``"histogram"`` (values counted over the run) or ``"image"`` (a 2-D output per frame, averaged
or max-projected over the run). ``FeatureFlag`` raises a flag from an output's recent values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xlive.analyzers.base import FeatureFlag, FeatureSpec, Show, as_block, valid_range
from xlive.conventions import FRAME
from xlive.geometry import Geometry


@dataclass(frozen=True, kw_only=True)
class MaxPixelParams:
    """Settings of the example analyzer (the ``[analyzers.max_pixel]`` table)."""

    #: ignore pixels masked in the geometry
    use_mask: bool = True
    #: flag frames whose largest pixel reaches this value (counts)
    alarm_level: float = 60000.0
    #: pixels per side of the tiles of the max-projection image
    tile: int = 32


class MaxPixel:
    """Largest valid pixel per frame (strip chart + flag), its histogram, a tiled max image."""

    name = "max_pixel"
    params_class = MaxPixelParams

    def __init__(self, geometry: Geometry, params: MaxPixelParams | None = None):
        self.geometry = geometry
        self.params = p = params or MaxPixelParams()
        self.use = ~geometry.maps.mask if p.use_mask else np.ones(geometry.shape, bool)
        ny, nx = geometry.shape
        self.tiles = (-(-ny // p.tile), -(-nx // p.tile))

    def describe(self) -> list[FeatureSpec]:
        p = self.params
        flag = FeatureFlag(
            name="max_pixel_alarm",
            above=p.alarm_level,
            fraction=0.5,
            message="Half of the recent frames have a pixel at {limit:.0f} counts "
            "or more ({fraction:.0%}): attenuate the beam.",
        )
        return [
            FeatureSpec(
                "max_pixel",
                (FRAME,),
                "float64",
                "counts",
                "largest valid value",
                show=Show(kind="strip", title="Largest pixel per frame"),
                flags=(flag,),
            ),
            FeatureSpec(
                "max_pixel_log",
                (FRAME,),
                "float32",
                "",
                "log10 of the largest value",
                show=Show(kind="histogram", range=(0.0, 7.0), bins=70),
            ),
            FeatureSpec(
                "max_pixel_tiles",
                (FRAME, "tile_y", "tile_x"),
                "float32",
                "counts",
                "largest value per tile",
                sizes={"tile_y": self.tiles[0], "tile_x": self.tiles[1]},
                show=Show(kind="image", reduce="max", title="Largest pixel per tile"),
            ),
        ]

    def coords(self) -> dict[str, tuple[str, np.ndarray, dict]]:
        return {}

    def __call__(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        frames = as_block(frames, self.geometry.shape, self.name)
        lo, hi = valid_range(frames.dtype, self.geometry)
        t, (ty, tx) = self.params.tile, self.tiles
        out = np.full(frames.shape[0], np.nan)
        tiles = np.full((frames.shape[0], ty, tx), np.nan, np.float32)
        for k, f in enumerate(frames):
            ok = self.use & (f >= lo) & (f <= hi)
            if not ok.any():
                continue
            v = np.where(ok, f, -np.inf).astype(np.float64)
            out[k] = v.max()
            pad = np.full((ty * t, tx * t), -np.inf)
            pad[: v.shape[0], : v.shape[1]] = v
            m = pad.reshape(ty, t, tx, t).max(axis=(1, 3))
            tiles[k] = np.where(np.isfinite(m), m, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            log = np.log10(np.maximum(out, 1.0)).astype(np.float32)
        return {"max_pixel": out, "max_pixel_log": log, "max_pixel_tiles": tiles}
