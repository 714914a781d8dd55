"""Copy-me template for a new analyzer (a test runs this file as it is).

Copy to ``my_package/my_analyzer.py``, rename, compute something, and register it::

    [project.entry-points."xlive.analyzers"]
    max_pixel = "my_package.my_analyzer:MaxPixel"

Rules: build everything that depends only on the geometry in ``__init__``; keep ``__call__``
free of shared mutable state (it runs on many threads); declare every output in ``describe``
with dims starting with ``"frame"``; return arrays with the frame count as leading dimension.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xlive.analyzers.base import FeatureSpec, as_block, valid_range
from xlive.conventions import FRAME
from xlive.geometry import Geometry


@dataclass(frozen=True, kw_only=True)
class MaxPixelParams:
    """Settings of the example analyzer."""

    #: ignore pixels masked in the geometry
    use_mask: bool = True


class MaxPixel:
    """``max_pixel(frame)``: the largest valid pixel value of each frame."""

    name = "max_pixel"

    def __init__(self, geometry: Geometry, params: MaxPixelParams | None = None):
        self.geometry = geometry
        self.params = params or MaxPixelParams()
        self.use = ~geometry.maps.mask if self.params.use_mask else np.ones(geometry.shape, bool)

    def describe(self) -> list[FeatureSpec]:
        return [FeatureSpec("max_pixel", (FRAME,), "float64", "counts", "largest valid value")]

    def coords(self) -> dict[str, tuple[str, np.ndarray, dict]]:
        return {}

    def __call__(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        frames = as_block(frames, self.geometry.shape, self.name)
        lo, hi = valid_range(frames.dtype, self.geometry)
        out = np.full(frames.shape[0], np.nan)
        for k, f in enumerate(frames):
            v = f[self.use]
            v = v[(v >= lo) & (v <= hi)]
            if v.size:
                out[k] = v.max()
        return {"max_pixel": out}
