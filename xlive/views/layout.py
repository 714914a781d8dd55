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

#: every built-in view by name, in the order they are built and updated
VIEWS = {
    "status": StatusLine,
    "flags": FlagsPanel,
    "hit_rate": HitRateChart,
    "spots": SpotsChart,
    "d_min": DminChart,
    "radial": RadialProfileView,
    "waterfall": WaterfallView,
    "powder": PowderView,
    "separation": SeparationView,
    "peakogram": PeakogramView,
    "detector": DetectorView,
    "lag": LagView,
    "grid": GridMapView,
    "indexing_rate": IndexingRateChart,
    "cells": CellHistograms,
    "correlation": CorrelationView,
}


class Dashboard:
    """All views of ``session``; ``root`` is the bokeh layout, ``update()`` refreshes it.

    Tapping a point of the hit-rate, spots or d_min chart shows that frame in the detector view.
    With ``defer=True`` only the views in :attr:`FIRST` are built and the detector view sends
    its image and mask without the cursor's d-spacing and panel maps (a page's first document:
    fewer models and bytes for the server to build and send and the browser to draw);
    :meth:`complete` adds the others.

    Examples
    --------
    >>> from xlive.engine.session import LiveSession          # doctest: +SKIP
    >>> dash = Dashboard(LiveSession("run"))           # doctest: +SKIP
    >>> dash.update(); dash.views["hit_rate"].source.data["rate"][-1]   # doctest: +SKIP
    """

    #: views of the first document a page gets (``defer=True``): what shows the run's first
    #: frames; the others are built once the browser has drawn these (:meth:`complete`)
    FIRST = ("status", "flags", "hit_rate", "spots", "d_min", "detector")
    #: the plots under the detector, two a row: a hidden view (no indexing, no grid, a finished
    #: run's lag) leaves its row to the other one
    PAIRS = (
        ("hit_rate", "indexing_rate"),
        ("spots", "d_min"),
        ("lag", "cells"),
        ("radial", "waterfall"),
        ("powder", "peakogram"),
        ("separation", "grid"),
    )

    def __init__(self, session, *, defer: bool = False):
        self.session = session
        history_for(session)  # start collecting per-frame history now
        correlation_for(session)
        self.views = {}
        self.on_frame_chosen: list = []
        #: called after every :meth:`update` (e.g. controls that show the run's state)
        self.after_update: list = []
        #: called once the deferred views are built (:meth:`complete`)
        self.on_complete: list = []
        self.updates = 0
        self._build_views(self.FIRST)
        v = self.views
        self.detector: DetectorView = v["detector"]
        # a first document: the image and its mask; the cursor's maps come with the others
        self.detector.hover_maps = not defer
        # flag episodes shaded on the plots along the run (updated with the views)
        self.flag_bands = FlagBands([v[k].root for k in ("hit_rate", "spots", "d_min")])
        #: the detector image (and, on a page, its controls under it)
        self.detector_box = column(v["detector"].root, sizing_mode="stretch_width")
        self.plots = column(sizing_mode="stretch_width", name="xlive_plots")
        #: views of the features the analyzers declare (filled by :meth:`update`)
        self.features = column(sizing_mode="stretch_width", name="xlive_features")
        self.root = column(
            v["status"].root,
            row(self.detector_box, v["flags"].root, sizing_mode="stretch_width"),
            self.plots,
            self.features,
            sizing_mode="stretch_width",
            name="xlive_dashboard",
        )
        #: True while views are left to build (``defer=True``, until :meth:`complete`)
        self.deferred = True
        if defer:
            self._arrange()
        else:
            self.complete()

    def _build_views(self, names) -> None:
        """Build the views ``names`` not built yet (tapping a chart's point shows its frame)."""
        for name in names:
            if name in self.views:
                continue
            view = VIEWS[name]()
            self.views[name] = view
            if name in ("spots", "d_min", "hit_rate", "indexing_rate"):
                view.source.selected.on_change("indices", self._tapped(view.source))
            if name in ("grid", "indexing_rate", "cells"):
                # indexing views appear once the run is indexed (an empty chart says nothing)
                view.root.visible = False

    def _arrange(self) -> None:
        """(Re)fill the plots' rows with the views built so far."""
        v = self.views
        rows = [[v[k].root for k in pair if k in v] for pair in self.PAIRS]
        rows.append([v["correlation"].root] if "correlation" in v else [])
        self.plots.children = [row(*r, sizing_mode="stretch_width") for r in rows if r]

    def complete(self) -> bool:
        """Build the views a deferred dashboard left out, refresh them and show them;
        False when there was nothing left to build."""
        if not self.deferred:
            return False
        self.deferred = False
        # the views' models need no session: built without its lock, which the live loop
        # takes to hand over every block (building them all takes 0.3-1 s)
        self._build_views(VIEWS)
        # updated in the order of VIEWS, then the declared features' views
        self.views = {
            **{k: self.views[k] for k in VIEWS},
            **{k: v for k, v in self.views.items() if k not in VIEWS},
        }
        with self.session.lock:
            self._add_declared_views()
            self.detector.add_hover_maps(self.session)
        self._arrange()
        for f in self.on_complete:
            f()
        if self.updates:
            self.update()
        return True

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
            if not self.deferred:  # a deferred dashboard adds them with the other views
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
