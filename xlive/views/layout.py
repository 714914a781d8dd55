"""The dashboard: every view component of one session, assembled into one bokeh layout.

Built here, scheduled elsewhere (:mod:`xlive.views.monitor` in notebooks, :mod:`xlive.views.app`
on a bokeh server page): the scheduler calls :meth:`Dashboard.update` from the thread that owns
the bokeh document. Features the analyzers declare with a ``show`` get their own views
(:mod:`.declared`) in a section below the built-in plots, added as the analyzers appear.
"""

from __future__ import annotations

from bokeh.layouts import column, row

from ._history import history_for
from .correlation import CorrelationView, correlation_for
from .declared import feature_view
from .detector import DetectorView
from .dmin_chart import DminChart
from .flag_bands import FlagBands
from .flags_panel import FlagsPanel
from .grid_map import GridMapView
from .hit_rate import HitRateChart
from .indexing import CellHistograms, IndexingRateChart
from .lag import LagView
from .peakogram import PeakogramView
from .powder import PowderView
from .radial import RadialProfileView
from .separation import SeparationView
from .spots_chart import SpotsChart
from .status_line import StatusLine
from .waterfall import WaterfallView


class Dashboard:
    """All views of ``session``; ``root`` is the bokeh layout, ``update()`` refreshes it.

    Tapping a point of the hit-rate, spots or d_min chart shows that frame in the detector view.

    Examples
    --------
    >>> from xlive.engine.session import LiveSession          # doctest: +SKIP
    >>> dash = Dashboard(LiveSession("run"))           # doctest: +SKIP
    >>> dash.update(); dash.views["hit_rate"].source.data["rate"][-1]   # doctest: +SKIP
    """

    def __init__(self, session):
        self.session = session
        history_for(session)  # start collecting per-frame history now
        correlation_for(session)
        views = [
            StatusLine(),
            FlagsPanel(),
            HitRateChart(),
            SpotsChart(),
            DminChart(),
            RadialProfileView(),
            WaterfallView(),
            PowderView(),
            SeparationView(),
            PeakogramView(),
            DetectorView(),
            LagView(),
            GridMapView(),
            IndexingRateChart(),
            CellHistograms(),
            CorrelationView(),
        ]
        self.views = {v.name: v for v in views}
        self.detector: DetectorView = self.views["detector"]
        self.on_frame_chosen: list = []
        for name in ("spots", "d_min", "hit_rate", "indexing_rate"):
            src = self.views[name].source
            src.selected.on_change("indices", self._tapped(src))
        self.views["grid"].root.visible = False
        # indexing views appear once the run is indexed (an empty chart says nothing)
        for name in ("indexing_rate", "cells"):
            self.views[name].root.visible = False
        #: called after every :meth:`update` (e.g. controls that show the run's state)
        self.after_update: list = []
        # flag episodes shaded on the plots along the run (updated with the views)
        self.flag_bands = FlagBands([self.views[k].root for k in ("hit_rate", "spots", "d_min")])
        self.updates = 0
        v = self.views
        #: the detector image (and, on a page, its controls under it)
        self.detector_box = column(v["detector"].root, sizing_mode="stretch_width")
        # rows of two: a hidden view (no indexing, no grid, a finished run's lag) leaves its
        # row to the other one
        pairs = [
            ("hit_rate", "indexing_rate"),
            ("spots", "d_min"),
            ("lag", "cells"),
            ("radial", "waterfall"),
            ("powder", "peakogram"),
            ("separation", "grid"),
        ]
        plots = column(
            *[row(v[a].root, v[b].root, sizing_mode="stretch_width") for a, b in pairs],
            row(v["correlation"].root, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
            name="xlive_plots",
        )
        #: views of the features the analyzers declare (filled by :meth:`update`)
        self.features = column(sizing_mode="stretch_width", name="xlive_features")
        self.root = column(
            v["status"].root,
            row(self.detector_box, v["flags"].root, sizing_mode="stretch_width"),
            plots,
            self.features,
            sizing_mode="stretch_width",
            name="xlive_dashboard",
        )
        self._add_declared_views()

    def _add_declared_views(self) -> None:
        """Add a view for every declared feature that has none yet (two per row)."""
        new = [
            feature_view(spec)
            for name, spec in self.session.aggregates.declared.items()
            if name not in self.views and spec.show is not None
        ]
        for view in new:
            self.views[view.name] = view
            last = self.features.children[-1] if self.features.children else None
            if last is not None and len(last.children) < 2:
                last.children.append(view.root)
            else:
                self.features.children.append(row(view.root, sizing_mode="stretch_width"))

    def _tapped(self, src):
        def callback(attr, old, new):
            if new:
                frame = int(src.data["frame"][new[0]])
                self.show_frame(frame)

        return callback

    def show_frame(self, frame: int | None) -> None:
        """Show ``frame`` in the detector view (None: follow the latest hit)."""
        self.detector.show(frame)
        for f in self.on_frame_chosen:
            f(frame)
        self.update()

    def hits(self) -> list[int]:
        """Frames of the recent hits the detector view can show (increasing)."""
        with self.session.lock:
            return sorted(self.session.hit_peaks)

    def step_hit(self, step: int) -> int | None:
        """Show the hit ``step`` hits after (``+1``) or before (``-1``) the frame on display;
        returns that frame (None when there is none that way)."""
        hits = self.hits()
        if not hits:
            return None
        now = self.detector.frame
        if now is None:
            target = hits[-1]
        elif step > 0:
            later = [h for h in hits if h > now]
            target = later[min(step, len(later)) - 1] if later else None
        else:
            earlier = [h for h in hits if h < now]
            target = earlier[max(step, -len(earlier))] if earlier else None
        if target is not None:
            self.show_frame(target)
        return target

    def update(self) -> list[str]:
        """Refresh every view from the session; returns the names of the views that changed."""
        changed = []
        with self.session.lock:
            self._add_declared_views()
            for name, view in self.views.items():
                if view.update(self.session):
                    changed.append(name)
            if self.flag_bands.update(self.session):
                changed.append(self.flag_bands.name)
        if "grid" in changed:
            self.views["grid"].root.visible = True
        for name in ("indexing_rate", "cells"):
            if name in changed:
                self.views[name].root.visible = True
        for f in self.after_update:
            f()
        self.updates += 1
        return changed
