"""Views of the features analyzers declare with a :class:`~xlive.analyzers.base.Show`.

One component per declared feature, chosen by ``show.kind``: a strip chart of the per-frame
value, the run's histogram, or the run's image. The dashboard adds them as the analyzers
declare features, so a new analyzer appears on the page without touching this package.
"""

from __future__ import annotations

import numpy as np
from bokeh.models import ColorBar, ColumnDataSource, LinearColorMapper
from bokeh.palettes import Viridis256

from ._base import HistogramView, View, make_figure
from ._strip import StripChart


class FeatureStrip(StripChart):
    """Per-frame value of a declared feature along the run (hits in red)."""

    def __init__(self, spec):
        self.name, self.series = spec.name, spec.name
        self.title = spec.title
        self.y_label = spec.units or spec.name
        self.hits_only = spec.show.hits_only
        super().__init__()


class FeatureHistogram(HistogramView):
    """The run's histogram of a declared feature (fixed bins, from the aggregates)."""

    color = "teal"
    y_label = "frames"

    def __init__(self, spec):
        self.name, self.title = spec.name, spec.title
        self.x_label = f"{spec.name} ({spec.units})" if spec.units else spec.name
        super().__init__()

    def histogram(self, agg):
        h = agg.histograms[self.name]
        return h.edges, h.counts


class FeatureImage(View):
    """The run's image of a declared 2-D feature (mean, max or sum over the frames)."""

    def __init__(self, spec):
        self.name = spec.name
        self._frames = -1
        self.source = ColumnDataSource(
            {"image": [], "dw": [], "dh": []}, name=f"{self.name}_source"
        )
        self.mapper = LinearColorMapper(palette=Viridis256)
        a, b = spec.dims[1:]
        fig = make_figure(
            self.name,
            f"{spec.title} ({spec.show.reduce} over the run)",
            x_label=b,
            y_label=a,
            match_aspect=True,
        )
        fig.image("image", x=0, y=0, dw="dw", dh="dh", source=self.source, color_mapper=self.mapper)
        fig.add_layout(
            ColorBar(color_mapper=self.mapper, width=8, title=spec.units or spec.name), "right"
        )
        self.root = fig

    def update(self, session) -> bool:
        agg = session.aggregates.images[self.name]
        if agg.frames == self._frames or agg.image is None:
            return False
        self._frames = agg.frames
        img = agg.image.astype(np.float32)
        fin = img[np.isfinite(img)]
        if fin.size:
            self.mapper.low, self.mapper.high = (
                float(fin.min()),
                float(max(fin.max(), fin.min() + 1e-9)),
            )
        self.source.data = {"image": [img], "dw": [img.shape[1]], "dh": [img.shape[0]]}
        return True


VIEWS = {"strip": FeatureStrip, "histogram": FeatureHistogram, "image": FeatureImage}


def feature_view(spec) -> View:
    """The view component of a declared feature."""
    return VIEWS[spec.show.kind](spec)
