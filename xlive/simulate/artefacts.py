"""Detector artefacts the mask does not know: hot pixels and zingers.

* **Hot pixels** sit at fixed unmasked positions (``Simulation.hot_pixels``, drawn from the
  seed) and fire in every frame: 0.3 x the saturation value by default, or with
  ``SimParams.hot_pixel_counts`` a Poisson number of counts per frame around a mean drawn
  log-uniformly per pixel (dim hot pixels, some as faint as a weak spot's peak).
* **Zingers** (cosmic rays, sparks): ``SimParams.zingers`` per frame on average (Poisson), each
  one pixel at a random unmasked position with log-uniform counts in
  ``SimParams.zinger_counts``, new in every frame (a pure function of the seed and the frame
  number).

Both are recorded in the truth (x, y in array-index coordinates, counts) so that a spot finder
reporting them can be charged a false positive.
"""

from __future__ import annotations

import numpy as np

from .params import SimParams


def empty() -> dict:
    f = np.zeros(0)
    return dict(x=f, y=f, counts=f)


def _log_uniform(rng: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(low), np.log(high), size=n))


def hot_pixel_rates(params: SimParams) -> np.ndarray | None:
    """Mean counts per frame of each hot pixel (None: the legacy fixed value)."""
    if params.hot_pixel_counts is None:
        return None
    rng = np.random.default_rng([params.seed, 8])
    return _log_uniform(rng, *params.hot_pixel_counts, params.hot_pixels)


def draw_zingers(params: SimParams, frame_number: int, unmasked: np.ndarray, nx: int) -> dict:
    """The zingers of one frame: x, y (array-index coordinates of the data array), counts."""
    if params.zingers <= 0:
        return empty()
    rng = np.random.default_rng([params.seed, 6, frame_number])
    n = int(rng.poisson(params.zingers))
    at = unmasked[rng.integers(len(unmasked), size=n)]
    counts = np.rint(_log_uniform(rng, *params.zinger_counts, n))
    at, first = np.unique(at, return_index=True)  # one zinger per pixel
    counts = counts[first]
    return dict(x=(at % nx).astype(np.float64), y=(at // nx).astype(np.float64), counts=counts)


def combined(zingers: dict, hot: dict) -> dict:
    """Zingers and hot pixels in one table with a ``kind`` column ("zinger" or "hot")."""
    out = {key: np.concatenate([zingers[key], hot[key]]) for key in ("x", "y", "counts")}
    out["kind"] = np.array(["zinger"] * len(zingers["x"]) + ["hot"] * len(hot["x"]))
    return out
