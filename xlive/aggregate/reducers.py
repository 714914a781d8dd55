"""Reducers: per-block partial aggregates that need pixels (run on the workers with the frames).

A reducer turns frames into a small partial result that adds up across blocks (``a + b``): the
mean image of all frames and the sum / maximum projections of hits (binned, so that they travel
cheaply from workers), and sparse hot-pixel candidates from every ``stride``-th frame.
``reducer(frames, result, good, into)`` adds ``frames`` to ``into`` (the block's partial so far,
or None) and returns the partial, so a block accumulates in place frame by frame. The driver
adds the blocks' partials in :class:`~xlive.aggregate.running.RunAggregates`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..analyzers.base import in_photons, valid_range
from ..geometry.core import Geometry
from ._kernels import band_bounds, fold_bands, no_max, project_bands, ring_outliers


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


class BandSums:
    """Frames summed (and maximised) over bands of ``f`` rows, at full column resolution: a
    frame is then one pass over its pixels without dependencies between them (the compiler
    vectorises it), and the column binning (a strided loop, slower than the pass itself)
    runs once per :meth:`fold_into` instead of once per frame. ``all``: sampled frames;
    ``hits``: hits (their maximum in ``max``)."""

    def __init__(self, shape: tuple[int, int], dtype, f: int):
        self.dtype, self.f = np.dtype(dtype), int(f)
        rows = (-(-shape[0] // self.f), shape[1])
        _, _, acc, self.limit = band_bounds(self.dtype, 0.0, 0.0, self.f)
        self.all = np.zeros(rows, acc)
        self.hits = np.zeros(rows, acc)
        self.max = np.zeros(rows, self.dtype)
        #: frames added since the last fold (the sums hold ``limit`` frames without overflow)
        self.n = 0

    def add(self, frame, valid, lo: float, hi: float, *, hit: bool, sample: bool) -> None:
        """Add ``frame``'s valid pixels into ``hits`` and ``max`` (``hit``) and / or into
        ``all`` (``sample``), in one pass."""
        if not (hit or sample):
            return
        lo, hi, _, _ = band_bounds(frame.dtype, lo, hi, self.f)
        first = self.hits if hit else self.all
        both = hit and sample
        mx = self.max if hit else no_max(frame.dtype)
        project_bands(frame, valid, lo, hi, self.f, first, self.all, both, mx, hit)
        self.n += 1

    def fold_into(self, sum_all: np.ndarray, sum_hits: np.ndarray, max_hits: np.ndarray) -> None:
        """Bin the columns, add them into the binned float images; start again from zero."""
        if self.n == 0:
            return
        fold_bands(self.all, self.f, sum_all, False)
        fold_bands(self.hits, self.f, sum_hits, False)
        fold_bands(self.max, self.f, max_hits, True)
        for a in (self.all, self.hits, self.max):
            a.fill(0)
        self.n = 0


class Projections:
    """Binned sums: a sample of all frames (every stride-th), hits; maximum over hits.

    On a worker, frames go first into :class:`BandSums` (``bands``); reading ``sum_all``,
    ``sum_hits`` or ``max_hits`` (adding partials, shipping one) bins them into the images.
    """

    def __init__(
        self,
        factor: int,
        n_all: int,
        sum_all: np.ndarray | None,
        n_hits: int,
        sum_hits: np.ndarray | None,
        max_hits: np.ndarray | None,
        bands: BandSums | None = None,
    ):
        self.factor, self.n_all, self.n_hits = factor, n_all, n_hits
        self._images = (sum_all, sum_hits, max_hits)
        self.bands = bands

    def _folded(self) -> tuple:
        if self.bands is not None and self.bands.n:
            self.bands.fold_into(*self._images)
        return self._images

    @property
    def sum_all(self) -> np.ndarray | None:
        return self._folded()[0]

    @property
    def sum_hits(self) -> np.ndarray | None:
        return self._folded()[1]

    @property
    def max_hits(self) -> np.ndarray | None:
        return self._folded()[2]

    def __repr__(self) -> str:
        return f"Projections(factor={self.factor}, n_all={self.n_all}, n_hits={self.n_hits})"

    def __add__(self, other: Projections) -> Projections:
        # an empty partial (no sampled frame, no hit) carries no arrays: cheap to ship
        if self.n_all + self.n_hits == 0:
            return other
        if other.n_all + other.n_hits == 0:
            return self
        return Projections(
            self.factor,
            self.n_all + other.n_all,
            self.sum_all + other.sum_all,
            self.n_hits + other.n_hits,
            self.sum_hits + other.sum_hits,
            np.maximum(self.max_hits, other.max_hits),
        )

    def mean_image(self) -> np.ndarray:
        return self.sum_all / max(self.n_all, 1)

    def __getstate__(self) -> dict:
        # shipped from workers binned, in float32 (half the bytes; counts stay exact below
        # 2**24), without the band sums
        images = tuple(None if a is None else a.astype(np.float32) for a in self._folded())
        return {
            "factor": self.factor,
            "n_all": self.n_all,
            "n_hits": self.n_hits,
            "_images": images,
        }

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.bands = None


class ProjectionReducer:
    """Mean image (every ``stride``-th frame) and sum / max projections of hits, binned."""

    name = "projections"

    def __init__(self, geometry: Geometry, *, factor: int | None = None, stride: int = 10):
        self.shape = geometry.shape
        self.geometry = geometry
        self.factor = factor or bin_factor(geometry.shape)
        self.valid = ~geometry.maps.mask
        #: the mean image uses every stride-th frame (it only needs to be a fair sample)
        self.stride = stride

    def __call__(self, frames: np.ndarray, block, into: Projections | None = None) -> Projections:
        lo, hi = valid_range(frames.dtype, self.geometry)
        lo, hi = max(lo, -3e38), min(hi, 3e38)
        f = self.factor
        hits = np.asarray(block.get("is_hit", np.zeros(len(frames), bool)), bool)
        sampled = block.frames % self.stride == 0
        todo = np.flatnonzero(block.good & (hits | sampled))
        if todo.size == 0:
            return into if into is not None else Projections(f, 0, None, 0, None, None)
        if into is None or into._images[0] is None:
            binned_shape = (-(-self.shape[0] // f), -(-self.shape[1] // f))
            into = Projections(
                f, 0, np.zeros(binned_shape), 0, np.zeros(binned_shape), np.zeros(binned_shape)
            )
        if into.bands is None or into.bands.dtype != frames.dtype:
            into._folded()
            into.bands = BandSums(self.shape, frames.dtype, f)
        for k in todo:
            hit, sample = bool(hits[k]), bool(sampled[k])
            if into.bands.n >= into.bands.limit:
                into._folded()  # the band sums are full: bin them now
            # a hit into the hit sums (with the maximum), a sampled frame into the sample's;
            # a frame that is both, in one pass into both
            into.bands.add(frames[k], self.valid, lo, hi, hit=hit, sample=sample)
            into.n_hits += int(hit)
            into.n_all += int(sample)
        return into


@dataclass
class HotCandidates:
    """Pixels (flat indices) found far above their ring, with how many frames were sampled."""

    frames: int
    indices: np.ndarray

    def __add__(self, other: HotCandidates) -> HotCandidates:
        return HotCandidates(
            self.frames + other.frames, np.concatenate([self.indices, other.indices])
        )


class HotPixelReducer:
    """Hot-pixel candidates from every ``stride``-th frame: pixels far above their ring's mean
    (Poisson: mean + ``nsigma`` sqrt(mean)). Spots move from frame to frame; a hot pixel stays,
    so :meth:`RunAggregates.hot_pixels` keeps pixels found in most sampled frames."""

    name = "hot_pixels"

    def __init__(
        self,
        geometry: Geometry,
        *,
        stride: int = 25,
        nsigma: float = 8.0,
        ring_width: float = 4.0,
        max_candidates: int = 100_000,
    ):
        self.stride = stride
        self.geometry = geometry
        self.nsigma = nsigma
        self.max_candidates = max_candidates
        m = geometry.maps
        with np.errstate(invalid="ignore"):
            ring = np.floor(m.radius / geometry.pixel_size / ring_width)
        ring = np.where(np.isfinite(ring) & ~m.mask, ring, -1).astype(np.int32)
        self.ring = ring
        self.n_rings = int(ring.max(initial=-1)) + 1

    def __call__(
        self, frames: np.ndarray, block, into: HotCandidates | None = None
    ) -> HotCandidates:
        pick = np.flatnonzero(block.good & (block.frames % self.stride == 0))
        if into is not None and not pick.size:
            return into  # nothing sampled here: no new partial to add
        out = []
        buf = np.empty(self.max_candidates, np.int64)
        for k in pick:
            frame = in_photons(frames[k], self.geometry)  # the outlier rule is Poisson
            lo, hi = valid_range(frame.dtype, self.geometry)
            lo, hi = max(lo, -3e38), min(hi, 3e38)
            n = ring_outliers(frame, self.ring, self.n_rings, lo, hi, self.nsigma, buf)
            out.append(buf[:n].copy())
        indices = np.concatenate(out) if out else np.zeros(0, np.int64)
        found = HotCandidates(len(pick), indices)
        return found if into is None else into + found


def merge_partials(parts: list[dict]) -> dict:
    """Add up partial aggregates by name."""
    out: dict = {}
    for p in parts:
        for name, part in p.items():
            out[name] = part if name not in out else out[name] + part
    return out


def default_reducers(geometry: Geometry) -> list:
    return [ProjectionReducer(geometry), HotPixelReducer(geometry)]
