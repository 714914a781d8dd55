"""The controls of both front-ends, as bokeh widgets: frame, scale, spot finder, sampling, flags.

The server page and the notebook monitor (:mod:`xlive.views.monitor`, through jupyter_bokeh)
show this one set; it acts through :class:`~xlive.views.tweak.LiveControls`.
"""

from __future__ import annotations

from bokeh.layouts import column, row
from bokeh.models import Button, Div, RadioButtonGroup, Slider, Spinner

from .tweak import FLAG_FIELDS, SPOT_FIELDS, LiveControls


def _label(name: str) -> str:
    return name.replace("_", " ")


def build_controls(dashboard):
    """A bokeh layout of controls acting on ``dashboard`` and its session."""
    session = dashboard.session
    live = LiveControls(session)
    det = dashboard.detector
    message = Div(text="", name="controls_message", sizing_mode="stretch_width")

    frame = Spinner(
        title="frame (tap a strip-chart point, or type)",
        low=0,
        step=1,
        value=0,
        width=200,
        name="frame_spinner",
    )
    latest = Button(label="follow latest hit", width=140, name="follow_button")
    scale = RadioButtonGroup(labels=["log", "linear"], active=0, name="scale_buttons")

    def on_frame(attr, old, new):
        if new is not None and 0 <= int(new) < session.source.n_frames:
            dashboard.show_frame(int(new))

    frame.on_change("value", on_frame)
    latest.on_click(lambda: dashboard.show_frame(None))
    dashboard.on_frame_chosen.append(lambda f: setattr(frame, "value", f) if f is not None else 0)

    def on_scale(attr, old, new):
        det.set_scale(["log", "linear"][new])
        dashboard.update()

    scale.on_change("active", on_scale)

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
        det.set_peaks(p.frame, p.x, p.y)
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
        title="fraction of frames analysed",
        start=0.05,
        end=1.0,
        step=0.05,
        value=live.sample,
        width=220,
        name="sample_slider",
    )
    sample.on_change("value_throttled", lambda a, o, n: live.set_sample(n))
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
        row(frame, latest, scale),
        Div(text="<b>Spot finder</b> (tried at once on the frame shown)"),
        row(*spot_widgets.values(), apply),
        row(sample, *flag_widgets),
        message,
        sizing_mode="stretch_width",
        name="xlive_controls",
    )
