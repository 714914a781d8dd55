"""Correlations: any per-frame feature against any per-frame metadata column, binned live.

Hit rate against pulse energy, spots against jet position, d_min against laser delay: the
user picks a feature (``is_hit`` gives the hit rate) and a metadata column (everything the
source or its side table reports per frame); the chart shows the feature's mean ± σ in equal
bins of the metadata value, with the number of frames per bin in the tooltip. The frames
come from a session listener (:func:`correlation_for`) that keeps the latest
:data:`MAX_FRAMES` frames' scalar features and metadata.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import ColumnDataSource, HoverTool, Select, Whisker

from ._base import View, make_figure

#: frames kept for the correlations (the oldest roll out)
MAX_FRAMES = 200_000
#: metadata not worth correlating against
SKIP_META = ("frame_number",)
_BUFFERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def binned(x: np.ndarray, y: np.ndarray, bins: int = 20) -> dict[str, np.ndarray]:
    """Mean, standard deviation and count of ``y`` in ``bins`` equal bins of ``x``.

    Frames where either value is not finite are left out; empty bins are dropped. A column
    of few distinct values (laser on/off, a few delays) gets one bin per value.
    """
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    empty = {k: np.zeros(0) for k in ("x", "mean", "std", "count")}
    if not x.size:
        return empty
    values = np.unique(x)
    if values.size <= bins:  # categorical-like: one bin per value
        edges = np.r_[values - 0.5 * _step(values), values[-1] + 0.5 * _step(values)]
        centres = values
    else:
        edges = np.linspace(x.min(), x.max(), bins + 1)
        centres = 0.5 * (edges[1:] + edges[:-1])
    # scipy.stats.binned_statistic's bins ([lo, hi), the last one closed) with numpy's bincount:
    # importing scipy.stats took ~1 s of the first page's build (serve start-up, issue 16)
    nb = edges.size - 1
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, nb - 1)
    count = np.bincount(idx, minlength=nb).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(idx, y, minlength=nb) / count
        # two passes (deviations from each bin's mean), as scipy does: no cancellation
        std = np.sqrt(np.bincount(idx, (y - mean[idx]) ** 2, minlength=nb) / count)
    keep = count > 0
    return {"x": centres[keep], "mean": mean[keep], "std": std[keep], "count": count[keep]}


def _step(values: np.ndarray) -> float:
    return float(np.min(np.diff(values))) if values.size > 1 else 1.0


class CorrelationBuffer:
    """A session listener keeping per-frame scalar features and metadata of the latest
    ``max_frames`` frames (ring buffers of float32, allocated per column on first sight)."""

    def __init__(self, max_frames: int = MAX_FRAMES):
        self.max_frames = max_frames
        self.columns: dict[str, np.ndarray] = {}
        self.features: set[str] = set()
        self.metadata: set[str] = set()
        self.n = 0  # frames held
        self.pos = 0  # next slot
        self.updates = 0
        self._lock = threading.Lock()

    def __call__(self, block, meta: dict) -> None:
        good = block.good
        k = int(good.sum())
        if not k:
            return
        new: dict[str, np.ndarray] = {}
        for kind, src in (("features", block.features), ("metadata", meta)):
            for name, v in src.items():
                if name in SKIP_META:
                    continue
                a = np.asarray(v)
                if a.ndim != 1 or a.shape[0] != good.size or a.dtype.kind not in "biuf":
                    continue
                new[name] = a[good][-self.max_frames :]
                getattr(self, kind).add(name)
        k = min(k, self.max_frames)
        slots = (self.pos + np.arange(k)) % self.max_frames
        with self._lock:
            for name in set(self.columns) | set(new):
                col = self.columns.get(name)
                if col is None:
                    col = self.columns[name] = np.full(self.max_frames, np.nan, np.float32)
                col[slots] = new[name] if name in new else np.nan
            self.pos = int((self.pos + k) % self.max_frames)
            self.n = min(self.n + k, self.max_frames)
            self.updates += 1

    def pair(self, feature: str, metadata: str) -> tuple[np.ndarray, np.ndarray]:
        """``(metadata values, feature values)`` of the frames held (in no particular order)."""
        with self._lock:
            if feature not in self.columns or metadata not in self.columns:
                return np.zeros(0), np.zeros(0)
            return (
                self.columns[metadata][: self.n].astype(float),
                self.columns[feature][: self.n].astype(float),
            )


def correlation_for(session) -> CorrelationBuffer:
    """The session's :class:`CorrelationBuffer`, attached as a listener on first use."""
    with session.lock:
        buf = _BUFFERS.get(session)
        if buf is None:
            buf = _BUFFERS[session] = CorrelationBuffer()
            session.listeners.append(buf)
        return buf


class CorrelationView(View):
    """A per-frame feature (mean ± σ) in bins of a per-frame metadata column."""

    name = "correlation"

    def __init__(self, feature: str = "is_hit", metadata: str = "pulse_energy", bins: int = 20):
        self.bins = bins
        self.source = ColumnDataSource(
            {k: [] for k in ("x", "mean", "upper", "lower", "count")}, name="correlation_source"
        )
        self.feature = Select(
            title="feature", value=feature, options=[feature], width=170, name="correlation_feature"
        )
        self.metadata = Select(
            title="against metadata",
            value=metadata,
            options=[metadata],
            width=170,
            name="correlation_metadata",
        )
        self.plot = make_figure(
            self.name, "Correlation: feature mean ± σ per bin", x_label=metadata, y_label=feature
        )
        self.plot.add_layout(Whisker(source=self.source, base="x", upper="upper", lower="lower"))
        r = self.plot.scatter("x", "mean", source=self.source, size=7)
        self.plot.add_tools(
            HoverTool(
                renderers=[r], tooltips=[("bin", "@x"), ("mean", "@mean"), ("frames", "@count")]
            )
        )
        self._seen = (-1, None, None)
        for sel in (self.feature, self.metadata):
            sel.on_change("value", lambda attr, old, new: self._force())
        self.root = column(row(self.feature, self.metadata), self.plot, sizing_mode="stretch_width")

    def _force(self) -> None:
        self._seen = (-1, None, None)

    def update(self, session) -> bool:
        buf = correlation_for(session)
        feats = sorted(buf.features)
        metas = sorted(buf.metadata)
        if feats and self.feature.options != feats:
            self.feature.options = feats
            if self.feature.value not in feats:
                self.feature.value = "is_hit" if "is_hit" in feats else feats[0]
        if metas and self.metadata.options != metas:
            self.metadata.options = metas
            if self.metadata.value not in metas:
                self.metadata.value = metas[0]
        key = (buf.updates, self.feature.value, self.metadata.value)
        if key == self._seen:
            return False
        self._seen = key
        x, y = buf.pair(self.feature.value, self.metadata.value)
        b = binned(x, y, self.bins)
        self.source.data = {
            "x": b["x"],
            "mean": b["mean"],
            "upper": b["mean"] + b["std"],
            "lower": b["mean"] - b["std"],
            "count": b["count"],
        }
        self.plot.xaxis.axis_label = self.metadata.value
        self.plot.yaxis.axis_label = (
            "hit rate" if self.feature.value == "is_hit" else self.feature.value
        )
        return True
