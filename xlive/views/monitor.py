"""The notebook monitor: the dashboard of a run, live in Jupyter, without a bokeh server.

The bokeh layout sits in a ``jupyter_bokeh`` :class:`~jupyter_bokeh.widgets.BokehModel` inside an
ipywidgets layout with the controls. An asyncio task on the kernel's event loop refreshes the
views every ``interval`` seconds; streamed rows travel over the widget's comm. The task runs
whenever the kernel is idle or a cell awaits (``await monitor.wait(...)``).
"""

from __future__ import annotations

import asyncio
import logging
import time

import ipywidgets as W
from jupyter_bokeh.widgets import BokehModel

from .layout import Dashboard
from .runner import SessionRunner
from .tweak import FLAG_FIELDS, SPOT_FIELDS, LiveControls

log = logging.getLogger(__name__)


def ensure_bokehjs() -> None:
    """Load BokehJS into the notebook page from this installation (no CDN, works offline).

    Without BokehJS in the page, ``BokehModel`` widgets fail with "Failed to create view";
    ``output_notebook()`` alone loads it from a CDN that beamline networks often cannot reach.
    """
    from bokeh.io import output_notebook
    from bokeh.resources import INLINE

    output_notebook(INLINE, hide_banner=True)


def _label(name: str) -> str:
    return name.replace("_", " ")


class Monitor:
    """Monitor a run live in a notebook.

    Parameters
    ----------
    target
        A :class:`~xlive.engine.session.LiveSession`, or anything it opens (a run folder, Zarr store,
        Eiger master file, ...).
    interval
        Seconds between view refreshes.
    run
        Drive the session's live loop in a background thread (False: you drive it).
    **session_kw
        Passed to :class:`~xlive.engine.session.LiveSession` when ``target`` is not a session
        (``features``, ``params``, ``thresholds``, ``analyzer_params``, ...).

    Examples
    --------
    >>> from xlive import Monitor                  # doctest: +SKIP
    >>> m = Monitor("run"); m                       # doctest: +SKIP
    >>> await m.wait(frames=500)                    # doctest: +SKIP
    """

    def __init__(self, target, *, interval: float = 0.5, run: bool = True, **session_kw):
        from ..engine.session import LiveSession

        self._own = not isinstance(target, LiveSession)
        self.session = LiveSession(target, **session_kw) if self._own else target
        self.interval = interval
        self.runner = SessionRunner(self.session) if run else None
        self.dashboard = Dashboard(self.session)
        self.live = LiveControls(self.session)
        self.plots = BokehModel(self.dashboard.root)
        self._syncing = False
        self.controls = self._build_controls()
        self.widget = W.VBox([self.plots, self.controls])
        self._task: asyncio.Task | None = None
        self.start()

    # ------------------------------------------------------------------ controls
    def _build_controls(self) -> W.Widget:
        s = self.session
        self.message = W.HTML("")
        self.frame = W.IntSlider(description="frame", min=0, max=max(s.source.n_frames - 1, 0),
                                 continuous_update=False, layout=W.Layout(width="420px"))
        latest = W.Button(description="follow latest hit")
        self.scale = W.ToggleButtons(options=["log", "linear"], value="log")
        self.frame.observe(self._on_frame, "value")
        latest.on_click(lambda _: self.dashboard.show_frame(None))
        self.scale.observe(self._on_scale, "value")
        self.dashboard.on_frame_chosen.append(self._frame_chosen)
        self.spot_widgets = {}
        params = self.live.spot_params
        if params is not None:
            for f in SPOT_FIELDS:
                v = getattr(params, f)
                cls = W.IntText if isinstance(v, int) else W.FloatText
                w = cls(value=v, description=_label(f), continuous_update=False,
                        style={"description_width": "initial"}, layout=W.Layout(width="170px"))
                w.observe(self._on_spot, "value")
                self.spot_widgets[f] = w
        apply = W.Button(description="apply to the live run", button_style="primary")
        apply.on_click(self._on_apply)
        self.sample = W.FloatSlider(value=self.live.sample, min=0.05, max=1.0, step=0.05,
                                    description="fraction analysed", continuous_update=False,
                                    style={"description_width": "initial"})
        self.sample.observe(lambda c: self.live.set_sample(c["new"]), "value")
        self.flag_widgets = {}
        for f in FLAG_FIELDS:
            w = W.FloatText(value=getattr(s.thresholds, f), description=_label(f), step=0.05,
                            style={"description_width": "initial"},
                            layout=W.Layout(width="190px"))
            w.observe(lambda c, f=f: self._on_flag(f, c["new"]), "value")
            self.flag_widgets[f] = w
        return W.VBox([
            W.HBox([self.frame, latest, self.scale]),
            W.HTML("<b>Spot finder</b> (tried at once on the frame shown)"),
            W.HBox([*self.spot_widgets.values(), apply]),
            W.HBox([self.sample]),
            W.HTML("<b>Flag thresholds</b>"),
            W.HBox(list(self.flag_widgets.values())),
            self.message,
        ])

    def _on_frame(self, change) -> None:
        if not self._syncing:
            self.dashboard.show_frame(int(change["new"]))

    def _frame_chosen(self, frame) -> None:
        if frame is None:
            return
        self._syncing = True
        try:
            self.frame.max = max(self.frame.max, frame)
            self.frame.value = frame
        finally:
            self._syncing = False

    def _on_scale(self, change) -> None:
        self.dashboard.detector.set_scale(change["new"])
        self.update()

    def _trial(self):
        p = self.live.spot_params
        return self.live.trial_params(**{f: type(getattr(p, f))(w.value)
                                         for f, w in self.spot_widgets.items()})

    def _on_spot(self, change) -> None:
        det = self.dashboard.detector
        if det.frame is None:
            self.message.value = "no frame on display yet"
            return
        p = self.live.preview(det.frame, self._trial())
        det.set_peaks(p.frame, p.x, p.y)
        det.show(p.frame)
        self.update()
        self.message.value = (f"frame {p.frame} with these settings: {p.n_spots} spots, "
                              f"{'a hit' if p.is_hit else 'not a hit'}")

    def _on_apply(self, _) -> None:
        self.live.apply_spot_params(self._trial())
        self.message.value = "the live run now uses these spot-finder settings for new frames"

    def _on_flag(self, name: str, value: float) -> None:
        flags = self.live.set_thresholds(**{name: float(value)})
        self.message.value = f"{len(flags)} flag(s) with the new thresholds"
        self.update()

    # ------------------------------------------------------------------ running
    def update(self) -> list[str]:
        """Refresh the views now; returns the names of the views that changed."""
        changed = self.dashboard.update()
        n = self.session.source.n_frames
        if n and self.frame.max != n - 1:
            self.frame.max = n - 1
        return changed

    def start(self) -> Monitor:
        """Start the live loop (if this monitor drives it) and the refresh task."""
        if self.runner is not None:
            self.runner.start()
        if self._task is None or self._task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no running loop (plain script): call update() yourself
                return self
            self._task = loop.create_task(self._refresh())
        return self

    async def _refresh(self) -> None:
        while True:
            try:
                self.update()
            except Exception as e:  # keep refreshing; say what went wrong under the plots
                log.exception("xlive monitor: a view update failed")
                self.message.value = (f"<span style='color:#c62828'>xlive views: update failed: "
                                      f"{type(e).__name__}: {e}</span>")
            await asyncio.sleep(self.interval)

    async def wait(self, frames: int | None = None, *, idle: float = 2.0,
                   timeout: float = 300.0) -> int:
        """Let the views update until ``frames`` frames were handled (stored or sampled out),
        or, with ``frames=None``, until the run has not grown for ``idle`` seconds and all
        is computed. Returns the frames handled."""
        stats = self.session.processor.stats
        t_end = time.time() + timeout
        last_n, last_change = -1, time.time()
        while time.time() < t_end:
            done = stats.frames_stored + stats.frames_skipped
            if frames is not None and done >= frames:
                break
            n = self.session.source.n_frames
            if n != last_n:
                last_n, last_change = n, time.time()
            if (frames is None and self.session.processor.idle and done >= n
                    and time.time() - last_change >= idle):
                break
            if self.session.error is not None:
                raise self.session.error
            await asyncio.sleep(min(self.interval, 0.25))
        self.update()
        return stats.frames_stored + stats.frames_skipped

    def stop(self) -> None:
        """Stop refreshing and (if this monitor drives it) the live loop."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.runner is not None:
            self.runner.stop()

    def close(self) -> None:
        """Stop, and close the session if this monitor opened it."""
        self.stop()
        if self._own:
            self.session.close()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        ensure_bokehjs()
        display(self.widget)
