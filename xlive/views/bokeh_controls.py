"""The controls of both front-ends, as bokeh widgets: frame, previous/next hit, scale and grey
levels, spot finder, sampling, flags.

The server page and the notebook monitor (:mod:`xlive.views.monitor`, through jupyter_bokeh)
show this one set (:func:`build_controls`); it acts through
:class:`~xlive.views.tweak.LiveControls`. :func:`detector_controls` alone gives the detector
view's row (frame, previous/next hit, scale, levels) for a layout of one's own.
"""

from __future__ import annotations

from bokeh.layouts import column, row
from bokeh.models import Button, Checkbox, Div, RadioButtonGroup, Slider, Spinner

from .tweak import FLAG_FIELDS, SPOT_FIELDS, LiveControls, sampling_note


def _label(name: str) -> str:
    return name.replace("_", " ")


def detector_controls(dashboard):
    """The detector view's controls: frame, previous / next hit, follow the latest hit, log or
    linear scale, grey levels (automatic, or the low and high counts typed)."""
    session = dashboard.session
    det = dashboard.detector
    frame = Spinner(
        title="frame (tap a strip-chart point, or type)",
        low=0,
        step=1,
        value=0,
        width=200,
        name="frame_spinner",
    )
    latest = Button(label="follow latest hit", width=140, name="follow_button")
    previous = Button(label="◀ previous hit", width=120, name="previous_hit_button")
    following = Button(label="next hit ▶", width=100, name="next_hit_button")
    scale = RadioButtonGroup(labels=["log", "linear"], active=0, name="scale_buttons")
    auto = Checkbox(label="auto levels", active=True, width=100, name="levels_auto")
    low = Spinner(title="low (counts)", value=0, step=1, width=110, name="levels_low")
    high = Spinner(title="high (counts)", value=100, step=1, width=110, name="levels_high")

    def on_frame(attr, old, new):
        if new is not None and 0 <= int(new) < session.source.n_frames:
            dashboard.show_frame(int(new))

    frame.on_change("value", on_frame)
    latest.on_click(lambda: dashboard.show_frame(None))
    previous.on_click(lambda: dashboard.step_hit(-1))
    following.on_click(lambda: dashboard.step_hit(+1))
    dashboard.on_frame_chosen.append(lambda f: setattr(frame, "value", f) if f is not None else 0)

    def on_levels(attr, old, new):
        if auto.active:
            det.set_levels(None)
        elif low.value is not None and high.value is not None and high.value > low.value:
            det.set_levels((low.value, high.value))
        dashboard.update()

    for w in (low, high):
        w.on_change("value", lambda a, o, n: None if auto.active else on_levels(a, o, n))
    auto.on_change("active", on_levels)

    def show_levels():  # the spinners show the automatic levels, ready to be typed over
        if auto.active and det.levels_shown is not None:
            low.value, high.value = (round(v, 1) for v in det.levels_shown)

    dashboard.after_update.append(show_levels)

    def on_scale(attr, old, new):
        det.set_scale(["log", "linear"][new])
        dashboard.update()

    scale.on_change("active", on_scale)
    return row(frame, previous, following, latest, scale, auto, low, high, name="detector_controls")


def page_layout(dashboard):
    """The whole page of a dashboard: its plots, the detector's controls right under the
    detector image, and the run's controls (spot finder, sampling, flags) below the plots.
    The ``xlive serve`` page and the notebook ``Monitor`` show this."""
    dashboard.detector_box.children.append(detector_controls(dashboard))
    page = column(dashboard.root, sizing_mode="stretch_width", name="xlive_page")

    def add_controls():
        page.children.append(build_controls(dashboard, detector=False))

    if dashboard.deferred:  # a page's first document: the controls come with the other views
        dashboard.on_complete.append(add_controls)
    else:
        add_controls()
    return page


def build_controls(dashboard, *, detector: bool = True):
    """A bokeh layout of controls acting on ``dashboard`` and its session: the detector's
    (:func:`detector_controls`), the spot finder's (tried at once on the frame shown, then
    applied to the live run), the sampling of frames and the flag thresholds (``detector``:
    with the detector's controls too)."""
    session = dashboard.session
    live = LiveControls(session)
    det = dashboard.detector
    message = Div(text="", name="controls_message", sizing_mode="stretch_width")

    spot_widgets = {}
    params = live.spot_params
    if params is not None:
        for f in SPOT_FIELDS:
            v = getattr(params, f)
            spot_widgets[f] = Spinner(
                title=_label(f),
                value=v,
                step=1 if isinstance(v, int) else 0.5,
                low=0,
                width=120,
                name=f"spot_{f}",
            )

    def trial():
        return live.trial_params(
            **{f: type(getattr(live.spot_params, f))(w.value) for f, w in spot_widgets.items()}
        )

    def on_spot(attr, old, new):
        if det.frame is None:
            return
        p = live.preview(det.frame, trial())
        det.set_peaks(p.frame, p.x, p.y, n_found=p.n_spots)
        det.show(p.frame)
        dashboard.update()
        message.text = (
            f"frame {p.frame} with these settings: {p.n_spots} spots, "
            f"{'a hit' if p.is_hit else 'not a hit'}"
        )

    for w in spot_widgets.values():
        w.on_change("value", on_spot)
    apply = Button(
        label="apply to the live run", button_type="primary", width=180, name="apply_button"
    )

    def on_apply():
        live.apply_spot_params(trial())
        message.text = "the live run now uses these spot-finder settings for new frames"

    apply.on_click(on_apply)
    sample = Slider(
        title="fraction of frames to analyse",
        start=0.05,
        end=1.0,
        step=0.05,
        value=live.sample,
        width=420,
        name="sample_slider",
    )
    sample.on_change("value_throttled", lambda a, o, n: live.set_sample(n))

    def show_sampling():  # the slider's title says what the lag chart's title says
        text = f"fraction of frames to analyse (now {sampling_note(session)})"
        if sample.title != text:
            sample.title = text

    dashboard.after_update.append(show_sampling)
    flag_widgets = [
        Spinner(
            title=_label(f),
            value=getattr(session.thresholds, f),
            step=0.05,
            low=0,
            width=140,
            name=f"flag_{f}",
        )
        for f in FLAG_FIELDS
    ]
    for f, w in zip(FLAG_FIELDS, flag_widgets, strict=True):
        w.on_change("value", lambda a, o, n, f=f: live.set_thresholds(**{f: float(n)}))
    return column(
        *([detector_controls(dashboard)] if detector else []),
        Div(text="<b>Spot finder</b> (tried at once on the frame shown)"),
        row(*spot_widgets.values(), apply),
        row(sample),
        Div(text="<b>Flag thresholds</b> (the flags are judged again at once)"),
        row(*flag_widgets),
        message,
        sizing_mode="stretch_width",
        name="xlive_controls",
    )
