"""Running aggregates of a run, updated from each stored block of features.

``RunAggregates.update(block, meta)`` is a live-loop listener (a
:class:`~xlive.engine.block.Block` and its per-frame metadata). It keeps what the views and
flags need, in O(new frames) per update: counts and a rolling hit rate (also split by laser
on/off), a virtual powder pattern (histogram of spot 1/d) and a peakogram (1/d x log intensity),
a spot-separation histogram, running sums of the radial profile (laser on / off, with sums of
squares for the pump-probe difference and its uncertainty), and recent per-frame series.
Features that analyzers declare with a ``show`` are kept too (:meth:`RunAggregates.declare`,
:mod:`.declared`).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

from ..conventions import FRAME, FRAME_NUMBER, LASER_ON, TIMESTAMP
from ..engine.cf import to_seconds
from ..errors import ConfigError
from ..validate import check_fields
from .declared import HistogramAggregate, ImageAggregate
from .ring import RingSeries

#: rolling hit-rate points kept (one per stored block; older ones are dropped)
MAX_HIT_RATE_POINTS = 20_000


@dataclass(frozen=True, kw_only=True)
class AggregateParams:
    """Windows and histogram ranges."""

    #: frames in the rolling hit-rate window
    window: int = 200
    #: powder / peakogram bins along 1/d (1/Å)
    inv_d_bins: int = 300
    #: largest 1/d (1/Å) in the powder pattern
    inv_d_max: float = 1.0
    #: separation histogram bins (pixels, 0..max)
    separation_bins: int = 60
    separation_max: float = 120.0
    #: peakogram bins along log10(intensity)
    log_i_bins: int = 60
    log_i_range: tuple[float, float] = (0.0, 6.0)
    #: how many recent frames keep full per-frame series
    history: int = 100_000

    def __post_init__(self):
        check_fields(
            self,
            "aggregate",
            error=ConfigError,
            ranges={
                "window": (1, None),
                "inv_d_bins": (1, None),
                "inv_d_max": (1e-06, None),
                "separation_bins": (1, None),
                "separation_max": (1e-06, None),
                "log_i_bins": (1, None),
                "history": (1, None),
            },
        )


class RunAggregates:
    """Everything the live views and flags read, updated block by block."""

    SERIES = (
        "n_spots",
        "is_hit",
        "d_min",
        "jet_score",
        "ice_score",
        "n_saturated",
        "multi_lattice_score",
        "background",
        "total_intensity",
        "spot_separation_min",
        "spot_separation_median",
    )

    def __init__(self, params: AggregateParams | None = None, *, geometry=None):
        p = self.params = params or AggregateParams()
        #: detector geometry (for the hot-pixel and beam-centre checks); may stay None
        self.geometry = geometry
        #: partial aggregates from the reducers (projections, hot-pixel candidates)
        self.partials: dict = {}
        self.hot_counts: dict[int, int] = {}
        self.frames = 0
        self.hits = 0
        self.bad = 0
        #: runs without laser metadata are not split into laser on / off
        self.has_laser = False
        #: frames the hot-pixel reducer sampled
        self.hot_frames = 0
        self.hits_by_laser = {True: 0, False: 0}
        self.frames_by_laser = {True: 0, False: 0}
        self._recent = collections.deque(maxlen=p.window)  # (is_hit, laser_on)
        # numpy rings, not deques of Python floats: 8 bytes a value instead of 32
        self.series: dict[str, RingSeries] = {
            k: RingSeries(p.history, np.float64)
            for k in (*self.SERIES, FRAME_NUMBER, TIMESTAMP, "peak_intensity_mean")
        }
        self.series["frame"] = RingSeries(p.history, np.int64)
        self.series[LASER_ON] = RingSeries(p.history, np.bool_)
        #: rolling hit rate points: frame index, rate, rate laser on, rate laser off (the
        #: newest MAX_HIT_RATE_POINTS; ``hit_rate_count`` counts every point ever added)
        self.hit_rate_points: collections.deque[tuple[int, float, float, float]] = (
            collections.deque(maxlen=MAX_HIT_RATE_POINTS)
        )
        self.hit_rate_count = 0
        self.inv_d_edges = np.linspace(0.0, p.inv_d_max, p.inv_d_bins + 1)
        self.powder = np.zeros(p.inv_d_bins, np.int64)
        self.log_i_edges = np.linspace(*p.log_i_range, p.log_i_bins + 1)
        self.peakogram = np.zeros((p.inv_d_bins, p.log_i_bins), np.int64)
        self.sep_edges = np.linspace(0.0, p.separation_max, p.separation_bins + 1)
        self.separation = np.zeros(p.separation_bins, np.int64)
        self.radial: dict[bool, dict[str, np.ndarray | int]] = {}
        #: radial profile of the newest good frame
        self.latest_profile: np.ndarray | None = None
        self.updates = 0
        from .indexing import IndexingAggParams, IndexingAggregates

        #: indexing rate, lattices and unit cells (idle for runs without indexing)
        self.indexing = IndexingAggregates(IndexingAggParams(window=p.window))
        #: features declared by the analyzers (name -> FeatureSpec), see :meth:`declare`
        self.declared: dict = {}
        self.histograms: dict[str, HistogramAggregate] = {}
        self.images: dict[str, ImageAggregate] = {}
        self._series_names: list[str] = list(self.SERIES)

    def declare(self, specs) -> None:
        """Keep the features among ``specs`` that have a ``show`` or ``flags`` (the analyzers'
        :meth:`describe`): scalar ones as per-frame series, histograms, images. Idempotent."""
        for s in specs:
            if s.name in self.declared or (s.show is None and not s.flags):
                continue
            self.declared[s.name] = s
            if s.dims == (FRAME,) and s.name not in self.series:
                # aligned with the other series: NaN for the frames already seen
                self.series[s.name] = collections.deque(
                    [np.nan] * len(self.series["frame"]), maxlen=self.params.history
                )
                self._series_names.append(s.name)
            kind = s.show.kind if s.show is not None else None
            if kind == "histogram":
                self.histograms[s.name] = HistogramAggregate(s)
            elif kind == "image":
                self.images[s.name] = ImageAggregate(s)

    # ------------------------------------------------------------------ update
    def __call__(self, block, meta: dict) -> None:
        self.update(block, meta)

    def update(self, block, meta: dict) -> None:
        result = block  # features by name: result["n_spots"]
        good = block.good
        idx = block.frames[good]
        n = int(idx.size)
        self.bad += int((~good).sum())
        self.updates += 1
        self._update_partials(block.partials)
        if n == 0:
            return
        self.indexing.update(block, meta)
        self.has_laser = self.has_laser or LASER_ON in meta
        laser = np.asarray(meta.get(LASER_ON, np.zeros(good.size, bool)), bool)[good]
        hit = np.asarray(result.get("is_hit", np.zeros(good.size, bool)), bool)[good]
        self.frames += n
        self.hits += int(hit.sum())
        for flag in (True, False):
            sel = laser == flag
            self.frames_by_laser[flag] += int(sel.sum())
            self.hits_by_laser[flag] += int((hit & sel).sum())
        for h, las in zip(hit, laser, strict=True):
            self._recent.append((bool(h), bool(las)))
        self.hit_rate_points.append((int(idx.max()), *self.rolling_hit_rate()))
        self.hit_rate_count += 1
        # per-frame series
        self.series["frame"].extend(idx.tolist())
        self.series[LASER_ON].extend(laser.tolist())
        # every series gets one value per frame (NaN when unknown), so they stay aligned
        nan = np.full(n, np.nan)
        for k in (FRAME_NUMBER, TIMESTAMP):
            # kept as float (timestamps: epoch seconds, from a source or a Dataset's datetime64)
            v = to_seconds(meta[k])[good] if k in meta else nan
            self.series[k].extend(v.tolist())
        for k in self._series_names:
            v = np.asarray(result[k], float)[good] if k in result else nan
            self.series[k].extend(v.tolist())
        if "peak_intensity" in result:
            pi = np.asarray(result["peak_intensity"], float)[good]
            if pi.ndim == 2 and pi.shape[1]:
                cnt = np.isfinite(pi).sum(axis=1)
                means = np.where(cnt > 0, np.nansum(pi, axis=1) / np.maximum(cnt, 1), np.nan)
            else:
                means = np.full(n, np.nan)
            self.series["peak_intensity_mean"].extend(means.tolist())
        else:
            self.series["peak_intensity_mean"].extend([np.nan] * n)
        self._update_powder(result, good)
        self._update_radial(result, good, laser)
        for name, agg in (*self.histograms.items(), *self.images.items()):
            if name in result:
                agg.add(np.asarray(result[name])[good])

    def _update_partials(self, partials: dict) -> None:
        for name, part in partials.items():
            if name == "hot_pixels":
                uniq, counts = np.unique(part.indices, return_counts=True)
                for i, c in zip(uniq.tolist(), counts.tolist(), strict=True):
                    self.hot_counts[i] = self.hot_counts.get(i, 0) + c
                self.hot_frames += part.frames
            else:
                old = self.partials.get(name)
                self.partials[name] = part if old is None else old + part

    def _update_powder(self, result, good: np.ndarray) -> None:
        if "peak_d" not in result:
            return
        d = np.asarray(result["peak_d"], float)[good]
        inten = np.asarray(result.get("peak_intensity", np.full_like(d, np.nan)), float)[good]
        ok = np.isfinite(d) & (d > 0)
        inv_d = 1.0 / d[ok]
        self.powder += np.histogram(inv_d, self.inv_d_edges)[0]
        li = np.log10(np.clip(inten[ok], 1.0, None))
        self.peakogram += np.histogram2d(inv_d, li, [self.inv_d_edges, self.log_i_edges])[0].astype(
            np.int64
        )
        if "spot_separation_min" in result:
            sep = np.asarray(result["spot_separation_min"], float)[good]
            sep = sep[np.isfinite(sep)]
            self.separation += np.histogram(
                np.clip(sep, 0, self.params.separation_max - 1e-9), self.sep_edges
            )[0]

    def _update_radial(self, result, good: np.ndarray, laser: np.ndarray) -> None:
        if "radial_profile" not in result:
            return
        prof = np.asarray(result["radial_profile"], float)[good]
        for flag in (True, False):
            sel = prof[laser == flag]
            if not len(sel):
                continue
            zeros = np.zeros(prof.shape[1])
            acc = self.radial.setdefault(
                flag,
                {
                    "n": zeros.copy(),
                    "sum": zeros.copy(),
                    "nsum": zeros.copy(),
                    "nsumsq": zeros.copy(),
                },
            )
            fin = np.isfinite(sel)
            v = np.where(fin, sel, 0.0)
            acc["n"] += fin.sum(axis=0)
            acc["sum"] += v.sum(axis=0)
            # normalised by each frame's mean level: pulse-energy jitter cancels (pump-probe)
            with np.errstate(invalid="ignore", divide="ignore"):
                scale = v.sum(axis=1) / np.maximum(fin.sum(axis=1), 1)
                nv = np.where(scale[:, None] > 0, v / scale[:, None], 0.0)
            acc["nsum"] += nv.sum(axis=0)
            acc["nsumsq"] += (nv * nv).sum(axis=0)
        self.latest_profile = prof[-1]

    # ------------------------------------------------------------------ read
    def rolling_hit_rate(self) -> tuple[float, float, float]:
        """Hit rate over the window: all frames, laser on, laser off (NaN if none)."""
        if not self._recent:
            return (float("nan"),) * 3
        arr = np.array(self._recent, bool)
        rate = float(arr[:, 0].mean())
        if not self.has_laser:
            return rate, float("nan"), float("nan")
        on, off = arr[arr[:, 1]], arr[~arr[:, 1]]
        return (
            rate,
            float(on[:, 0].mean()) if len(on) else float("nan"),
            float(off[:, 0].mean()) if len(off) else float("nan"),
        )

    @property
    def hit_rate(self) -> float:
        return self.hits / self.frames if self.frames else float("nan")

    def mean_profile(self, laser_on: bool | None = None) -> np.ndarray | None:
        """Mean radial profile over all frames (or laser on / off only)."""
        accs = [self.radial[k] for k in self.radial if laser_on is None or k == laser_on]
        if not accs:
            return None
        n = sum(a["n"] for a in accs)
        s = sum(a["sum"] for a in accs)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, s / n, np.nan)

    def pump_probe_difference(self) -> tuple[np.ndarray, np.ndarray] | None:
        """On-minus-off mean radial profile and its standard error (None without both).

        Each frame's profile is first divided by its own mean level (pulse-energy jitter
        cancels), so the difference is relative to the mean level of a frame.
        """
        if True not in self.radial or False not in self.radial:
            return None
        out = []
        for flag in (True, False):
            a = self.radial[flag]
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = a["nsum"] / a["n"]
                var = (a["nsumsq"] / a["n"] - mean**2) * a["n"] / np.maximum(a["n"] - 1, 1)
                out.append((mean, var / a["n"]))
        (m1, v1), (m0, v0) = out
        return m1 - m0, np.sqrt(v1 + v0)

    def hot_pixels(self, fraction: float = 0.5, min_frames: int = 5) -> np.ndarray:
        """Flat indices of pixels far above their ring in >= ``fraction`` of sampled frames."""
        n = self.hot_frames
        if n < min_frames:
            return np.zeros(0, np.int64)
        return np.array(
            sorted(i for i, c in self.hot_counts.items() if c >= fraction * n), np.int64
        )

    def recent(self, name: str, n: int | None = None) -> np.ndarray:
        """The newest ``n`` values of a series (all it holds when None), as floats."""
        s = self.series[name]
        if isinstance(s, RingSeries):
            return s.last(n).astype(float, copy=False)
        arr = np.asarray(s, float)
        return arr if n is None else arr[-n:]
