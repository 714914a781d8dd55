"""Indexing in the HTML report: rolling indexing rate beside the hit rate, unit-cell histograms."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..analyzers.indexing import CELL_PARAMS
from ..conventions import FRAME


def _fig(title: str, x_label: str, y_label: str, name: str, **kw):
    """A report figure (the report's size and tools)."""
    from bokeh.plotting import figure

    p = figure(
        title=title,
        width=560,
        height=280,
        name=name,
        tools="pan,wheel_zoom,box_zoom,reset,save,hover",
        **kw,
    )
    p.xaxis.axis_label, p.yaxis.axis_label = x_label, y_label
    return p


def _rolling_ratio(num: np.ndarray, den: np.ndarray, window: int) -> np.ndarray:
    cn = np.concatenate([[0.0], np.cumsum(num.astype(float))])
    cd = np.concatenate([[0.0], np.cumsum(den.astype(float))])
    hi = np.arange(1, len(num) + 1)
    lo = np.maximum(hi - window, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (cn[hi] - cn[lo]) / (cd[hi] - cd[lo])


def indexing_rate_plot(ds: xr.Dataset, window: int | None = None):
    """Rolling indexing rate of the hits and of all frames, with the hit rate."""
    n = ds.sizes[FRAME]
    window = window or max(5, min(200, n // 10 or 1))
    frame = ds[FRAME].values
    hit = ds["is_hit"].values.astype(bool)
    tried = ds["index_tried"].values.astype(bool) & hit
    ok = ds["indexed"].values.astype(bool) & tried
    p = _fig(
        f"Indexing rate ({window}-frame rolling window)",
        "frame",
        "rate",
        "indexing_rate",
        y_range=(0, 1.05),
    )
    p.line(
        frame,
        _rolling_ratio(hit, np.ones(n), window),
        color="#9e9e9e",
        line_width=2,
        legend_label="hit rate",
    )
    of_hits = _rolling_ratio(ok, tried, window)
    p.line(frame, of_hits, color="#2e7d32", line_width=2, legend_label="indexed / hits")
    p.line(
        frame,
        of_hits * _rolling_ratio(hit, np.ones(n), window),
        color="#1565c0",
        line_width=2,
        legend_label="indexed / frames",
        line_dash="dashed",
    )
    p.legend.location = "bottom_left"
    return p


def cell_histograms(ds: xr.Dataset, bins: int = 40):
    """Histograms of a, b, c, alpha, beta, gamma over the indexed lattices (None: no cells)."""
    from bokeh.layouts import gridplot

    ok = ds["indexed"].values.astype(bool)
    cells = ds["unit_cell"].values[ok].reshape(-1, 6)
    cells = cells[np.isfinite(cells).all(axis=1)]
    if not len(cells):
        return None
    figs = []
    for k, name in enumerate(CELL_PARAMS):
        v = cells[:, k]
        lo, hi = np.percentile(v, [0.5, 99.5])
        pad = max(0.02 * abs(hi - lo), 0.05 if k < 3 else 0.2)
        counts, edges = np.histogram(v, bins=bins, range=(lo - pad, hi + pad))
        unit = "Å" if k < 3 else "°"
        f = _fig(f"{name} ({unit}), median {np.median(v):.2f}", name, "lattices", f"cell_{name}")
        f.width, f.height = 260, 200
        f.quad(left=edges[:-1], right=edges[1:], bottom=0, top=counts, color="#5d4037")
        figs.append(f)
    return gridplot(figs, ncols=3)
