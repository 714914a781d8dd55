"""Reducers: per-block partial aggregates that need pixels (run on the workers with the frames).

A reducer turns a block of frames into a small partial result that adds up across blocks
(``a + b``): the mean image of all frames and the sum / maximum projections of hits (binned, so
that they travel cheaply from workers), and sparse hot-pixel candidates from every
``stride``-th frame. The driver adds partials in :class:`~xlive.aggregate.RunAggregates`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .analyzers.base import valid_range
from .analyzers.mask import PixelStats
from .geometry import Geometry


def bin_factor(shape: tuple[int, int], target_pixels: float = 6e5) -> int:
    """Binning that brings an image down to about ``target_pixels``."""
    return max(1, int(np.ceil(np.sqrt(shape[0] * shape[1] / target_pixels))))


def bin_image(img: np.ndarray, f: int, reduce=np.add) -> np.ndarray:
    """Bin a 2-D float image by ``f`` x ``f`` (edges padded with 0)."""
    if f == 1:
        return img
    ny, nx = img.shape
    py, px = -ny % f, -nx % f
    a = np.pad(img, ((0, py), (0, px)))
    a = a.reshape(a.shape[0] // f, f, a.shape[1] // f, f)
    return reduce.reduce(reduce.reduce(a, axis=3), axis=1)


@dataclass
class Projections:
    """Binned sums: all frames, hits; maximum over hits (float32)."""

    factor: int
    n_all: int
    sum_all: np.ndarray
    n_hits: int
    sum_hits: np.ndarray
    max_hits: np.ndarray

    def __add__(self, other: Projections) -> Projections:
        return Projections(self.factor, self.n_all + other.n_all, self.sum_all + other.sum_all,
                           self.n_hits + other.n_hits, self.sum_hits + other.sum_hits,
                           np.maximum(self.max_hits, other.max_hits))

    def mean_image(self) -> np.ndarray:
        return self.sum_all / max(self.n_all, 1)


class ProjectionReducer:
    """Mean image of all frames and sum / max projections of hits, binned for transport."""

    name = "projections"

    def __init__(self, geometry: Geometry, *, factor: int | None = None):
        self.shape = geometry.shape
        self.factor = factor or bin_factor(geometry.shape)
        self.valid = ~geometry.maps.mask

    def __call__(self, frames: np.ndarray, result: dict, good: np.ndarray) -> Projections:
        lo, hi = valid_range(frames.dtype)
        f = self.factor
        binned_shape = (-(-self.shape[0] // f), -(-self.shape[1] // f))
        total = np.zeros(binned_shape, np.float32)
        hsum = np.zeros(binned_shape, np.float32)
        hmax = np.zeros(binned_shape, np.float32)
        hits = np.asarray(result.get("is_hit", np.zeros(len(frames), bool)), bool)
        n_all = n_hits = 0
        for k in np.flatnonzero(good):
            v = frames[k].astype(np.float32)
            v = np.where(self.valid & (v >= lo) & (v <= hi), v, 0.0)
            b = bin_image(v, f)
            total += b
            n_all += 1
            if hits[k]:
                hsum += b
                hmax = np.maximum(hmax, bin_image(v, f, np.maximum))
                n_hits += 1
        return Projections(f, n_all, total, n_hits, hsum, hmax)


@dataclass
class HotCandidates:
    """Pixels (flat indices) found far above their ring, with how many frames were sampled."""

    frames: int
    indices: np.ndarray

    def __add__(self, other: HotCandidates) -> HotCandidates:
        return HotCandidates(self.frames + other.frames,
                             np.concatenate([self.indices, other.indices]))


class HotPixelReducer:
    """Hot-pixel candidates from every ``stride``-th frame (the auto-mask's per-frame test)."""

    name = "hot_pixels"

    def __init__(self, geometry: Geometry, *, stride: int = 25):
        self.geometry = geometry
        self.stride = stride

    def __call__(self, frames: np.ndarray, result: dict, good: np.ndarray) -> HotCandidates:
        idx = np.asarray(result["frame_index"])
        pick = np.flatnonzero(good & (idx % self.stride == 0))
        out = []
        for k in pick:
            ps = PixelStats(self.geometry).update(frames[k][None])
            out.append(np.flatnonzero(ps.n_high.ravel()))
        indices = np.concatenate(out) if out else np.zeros(0, np.int64)
        return HotCandidates(len(pick), indices.astype(np.int64))


def default_reducers(geometry: Geometry) -> list:
    return [ProjectionReducer(geometry), HotPixelReducer(geometry)]
