"""Aggregates of the features analyzers declare with a :class:`~xlive.analyzers.base.Show`.

A strip-chart feature becomes a per-frame series of the running aggregates (so flags can read
its recent values); a histogram feature is counted into fixed bins over the whole run; an image
feature is added up over the run (mean, max or sum per pixel). Nothing here knows any feature
by name: the analyzers' declarations say what to keep.
"""

from __future__ import annotations

import numpy as np


class HistogramAggregate:
    """Counts of a per-frame value in ``show.bins`` bins over ``show.range`` (the whole run)."""

    def __init__(self, spec):
        self.spec = spec
        self.edges = np.linspace(*spec.show.range, spec.show.bins + 1)
        self.counts = np.zeros(spec.show.bins, np.int64)

    def add(self, values: np.ndarray) -> None:
        v = np.asarray(values, float)
        self.counts += np.histogram(v[np.isfinite(v)], self.edges)[0]


class ImageAggregate:
    """A 2-D per-frame feature added up over the run: per-pixel ``mean``, ``max`` or ``sum`` of
    the finite values."""

    def __init__(self, spec):
        self.spec = spec
        self.reduce = spec.show.reduce
        self.total: np.ndarray | None = None
        self.count: np.ndarray | None = None
        self.frames = 0

    def add(self, values: np.ndarray) -> None:
        v = np.asarray(values, float)
        if v.shape[0] == 0:
            return
        fin = np.isfinite(v)
        if self.total is None:
            self.total = np.full(v.shape[1:], -np.inf if self.reduce == "max" else 0.0)
            self.count = np.zeros(v.shape[1:], np.int64)
        if self.reduce == "max":
            self.total = np.maximum(self.total, np.where(fin, v, -np.inf).max(axis=0))
        else:
            self.total += np.where(fin, v, 0.0).sum(axis=0)
        self.count += fin.sum(axis=0)
        self.frames += v.shape[0]

    @property
    def image(self) -> np.ndarray | None:
        """The image so far (NaN where no frame had a value; None before any frame)."""
        if self.total is None:
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.reduce == "mean":
                return np.where(self.count > 0, self.total / np.maximum(self.count, 1), np.nan)
            return np.where(self.count > 0, self.total, np.nan)
