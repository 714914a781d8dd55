"""Frame x q waterfall of radial profiles: the jet, water ring and ice over the run's recent past."""

from __future__ import annotations

import warnings

import numpy as np
from bokeh.models import ColorBar, ColumnDataSource, LinearColorMapper
from bokeh.palettes import Viridis256

from ._base import View, make_figure
from ._history import history_for
from .resolution import add_d_axis, q_axis

#: rows (frames) and columns (q bins) sent to the browser at most
MAX_ROWS = 400
MAX_COLS = 256


def _shrink(a: np.ndarray, axis: int, n: int) -> np.ndarray:
    """Average groups along ``axis`` so that it has at most ``n`` entries."""
    size = a.shape[axis]
    if size <= n:
        return a
    f = int(np.ceil(size / n))
    pad = (-size) % f
    widths = [(0, 0)] * a.ndim
    widths[axis] = (0, pad)
    a = np.pad(a, widths, constant_values=np.nan)
    shape = list(a.shape)
    shape[axis : axis + 1] = [shape[axis] // f, f]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN groups stay NaN
        return np.nanmean(a.reshape(shape), axis=axis + 1)


class WaterfallView(View):
    """Radial profile of the last frames (rows: frame, columns: q), colour = intensity.

    The buffer is bounded (:class:`~xlive.views._history.ViewHistory`), so the image sent has a
    fixed maximum size whatever the length of the run.
    """

    name = "waterfall"

    def __init__(self):
        self._added = -1
        self.source = ColumnDataSource(
            {"image": [], "x": [], "y": [], "dw": [], "dh": []}, name="waterfall_source"
        )
        self.mapper = LinearColorMapper(palette=Viridis256, nan_color="white")
        fig = make_figure(
            self.name, "Waterfall: radial profile per frame", x_label="q (1/nm)", y_label="frame"
        )
        fig.image(
            "image", x="x", y="y", dw="dw", dh="dh", source=self.source, color_mapper=self.mapper
        )
        add_d_axis(fig)
        fig.add_layout(
            ColorBar(color_mapper=self.mapper, width=8, title="intensity", title_standoff=4),
            "right",
        )
        self.root = fig

    def update(self, session) -> bool:
        hist = history_for(session)
        if hist.profiles_added == self._added or not hist.profiles:
            return False
        self._added = hist.profiles_added
        rows = sorted(hist.profiles, key=lambda r: r[0])
        frames = np.array([r[0] for r in rows])
        img = np.stack([r[1] for r in rows]).astype(float)
        q = q_axis(session)
        if q is None or len(q) != img.shape[1]:
            q = np.arange(img.shape[1], dtype=float)
        img = _shrink(_shrink(img, 0, MAX_ROWS), 1, MAX_COLS)
        fin = img[np.isfinite(img)]
        if fin.size:
            self.mapper.low, self.mapper.high = (float(v) for v in np.percentile(fin, [1, 99]))
        self.source.data = {
            "image": [img.astype(np.float32)],
            "x": [float(q[0])],
            "y": [float(frames[0])],
            "dw": [float(q[-1] - q[0]) or 1.0],
            "dh": [float(frames[-1] - frames[0] + 1)],
        }
        return True
