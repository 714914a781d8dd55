"""A self-contained HTML report of a processed run (bokeh standalone, BokehJS inline).

The page needs no network and no server: hit rate along the run, spots per frame, d_min of the
hits, the mean radial profile, the virtual powder pattern and peakogram, one plot per feature
an analyzer declares with a ``show`` (strip chart, histogram or image), the flags raised and a
table of the run's figures. Open it in any browser, mail it, attach it to the e-logbook.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import xarray as xr

from ..conventions import FRAME, LASER_ON
from ._common import aggregates, declared_specs, features_dataset
from .summary import RunSummary, summarize

_W, _H = 560, 280
_COLORS = {"green": "#2e7d32", "amber": "#ef8f00", "red": "#c62828"}


def _rolling(x: np.ndarray, window: int) -> np.ndarray:
    x = x.astype(float)
    c = np.concatenate([[0.0], np.cumsum(x)])
    lo = np.maximum(np.arange(1, len(x) + 1) - window, 0)
    return (c[1:] - c[lo]) / (np.arange(1, len(x) + 1) - lo)


def _legend_outside(p) -> None:
    """The legend to the right of the plot area, where it hides no data."""
    for leg in list(p.legend):
        if leg in p.center:
            p.center.remove(leg)
        leg.location = "top_left"
        leg.click_policy = "hide"
        leg.label_text_font_size = "9pt"
        p.add_layout(leg, "right")


def _fig(title: str, x_label: str, y_label: str, name: str, **kw):
    from bokeh.plotting import figure

    p = figure(
        title=title,
        width=_W,
        height=_H,
        name=name,
        tools="pan,wheel_zoom,box_zoom,reset,save,hover",
        **kw,
    )
    p.xaxis.axis_label, p.yaxis.axis_label = x_label, y_label
    return p


def hit_rate_plot(ds: xr.Dataset, window: int | None = None):
    """Rolling hit rate along the run (all frames; laser on / off when both occur)."""
    n = ds.sizes[FRAME]
    window = window or max(5, min(200, n // 10 or 1))
    frame = ds[FRAME].values
    hit = ds["is_hit"].values.astype(bool) if "is_hit" in ds else np.zeros(n, bool)
    p = _fig(
        f"Hit rate ({window}-frame rolling window)",
        "frame",
        "hit rate",
        "hit_rate",
        y_range=(0, 1.05),
    )
    p.line(frame, _rolling(hit, window), line_width=2, legend_label="all frames")
    if LASER_ON in ds.coords:
        laser = ds[LASER_ON].values.astype(bool)
        if laser.any() and (~laser).any():
            for sel, label, color in (
                (laser, "laser on", "#d81b60"),
                (~laser, "laser off", "#1e88e5"),
            ):
                p.line(
                    frame[sel],
                    _rolling(hit[sel], max(3, window // 2)),
                    color=color,
                    legend_label=label,
                    line_dash="dashed",
                )
    _legend_outside(p)
    return p


def spots_plot(ds: xr.Dataset):
    """Spots per frame, hits and non-hits in two colours."""
    p = _fig("Spots per frame", "frame", "spots", "spots")
    hit = ds["is_hit"].values.astype(bool)
    frame, spots = ds[FRAME].values, ds["n_spots"].values
    p.scatter(frame[~hit], spots[~hit], size=4, color="#9e9e9e", legend_label="no hit")
    p.scatter(frame[hit], spots[hit], size=5, color="#1565c0", legend_label="hit")
    _legend_outside(p)
    return p


def d_min_plot(ds: xr.Dataset):
    """Resolution estimate of each hit along the run."""
    p = _fig("Resolution estimate of the hits", "frame", "d_min (Å)", "d_min")
    hit = ds["is_hit"].values.astype(bool)
    p.scatter(ds[FRAME].values[hit], ds["d_min"].values[hit], size=5, color="#6a1b9a")
    return p


def radial_plot(ds: xr.Dataset, agg):
    """Mean radial profile (laser on / off separately when both occur), d-spacing above."""
    from ..views.resolution import add_d_axis

    p = _fig("Mean radial profile", "q (1/nm)", "mean intensity", "radial")
    add_d_axis(p)
    q = ds["q"].values
    p.line(q, agg.mean_profile(), line_width=2, legend_label="all frames")
    if True in agg.radial and False in agg.radial:
        p.line(
            q, agg.mean_profile(True), color="#d81b60", legend_label="laser on", line_dash="dashed"
        )
        p.line(
            q,
            agg.mean_profile(False),
            color="#1e88e5",
            legend_label="laser off",
            line_dash="dashed",
        )
    _legend_outside(p)
    return p


def powder_plots(agg):
    """Virtual powder pattern (spots by resolution) and peakogram (resolution x log10
    intensity), against q (1/nm) with the d-spacing (Å) above, as on the dashboard."""
    from bokeh.models import ColorBar, LinearColorMapper

    from ..views.resolution import Q_PER_INV_D, add_d_axis

    edges = agg.inv_d_edges * Q_PER_INV_D
    p = _fig("Virtual powder pattern (all spots)", "q (1/nm)", "spots", "powder")
    add_d_axis(p)
    p.quad(left=edges[:-1], right=edges[1:], bottom=0, top=agg.powder, color="#00838f")
    lo, hi = agg.params.log_i_range
    g = _fig(
        "Peakogram: spot intensity by resolution",
        "q (1/nm)",
        "log10 spot intensity",
        "peakogram",
        x_range=(0, float(edges[-1])),
        y_range=(lo, hi),
    )
    add_d_axis(g)
    img = np.log10(1.0 + agg.peakogram.T.astype(float))
    mapper = LinearColorMapper(palette="Viridis256", low=0, high=float(max(img.max(), 1.0)))
    g.image(image=[img], x=0, y=lo, dw=float(edges[-1]), dh=hi - lo, color_mapper=mapper)
    g.add_layout(ColorBar(color_mapper=mapper, width=8, title="log10(1 + spots)"), "right")
    return p, g


def declared_plot(ds: xr.Dataset, agg, spec):
    """The plot of a feature an analyzer declares (its ``show``): strip, histogram or image."""
    kind = spec.show.kind
    if kind == "strip":
        p = _fig(spec.title, "frame", spec.units or spec.name, spec.name)
        hit = (
            ds["is_hit"].values.astype(bool) if "is_hit" in ds else np.zeros(ds.sizes[FRAME], bool)
        )
        frame, value = ds[FRAME].values, ds[spec.name].values.astype(float)
        if spec.show.hits_only:
            frame, value, hit = frame[hit], value[hit], hit[hit]
        p.scatter(frame[~hit], value[~hit], size=4, color="#9e9e9e")
        p.scatter(frame[hit], value[hit], size=5, color="#c62828")
        return p
    if kind == "histogram":
        h = agg.histograms[spec.name]
        p = _fig(
            spec.title,
            f"{spec.name} ({spec.units})" if spec.units else spec.name,
            "frames",
            spec.name,
        )
        p.quad(left=h.edges[:-1], right=h.edges[1:], bottom=0, top=h.counts, color="#00897b")
        return p
    from bokeh.models import ColorBar, LinearColorMapper

    img = agg.images[spec.name].image
    a, b = spec.dims[1:]
    p = _fig(
        f"{spec.title} ({spec.show.reduce} over the run)",
        b,
        a,
        spec.name,
        x_range=(0, img.shape[1]),
        y_range=(0, img.shape[0]),
    )
    fin = img[np.isfinite(img)]
    mapper = LinearColorMapper(
        palette="Viridis256",
        low=float(fin.min()) if fin.size else 0.0,
        high=float(max(fin.max(), fin.min() + 1e-9)) if fin.size else 1.0,
    )
    p.image(
        image=[img.astype(np.float32)],
        x=0,
        y=0,
        dw=img.shape[1],
        dh=img.shape[0],
        color_mapper=mapper,
    )
    p.add_layout(ColorBar(color_mapper=mapper, width=8, title=spec.units or spec.name), "right")
    return p


def _figures_table(s: RunSummary) -> str:
    def fmt(v, spec="{}"):
        return "–" if v is None else spec.format(v)

    rows = [
        ("Run", s.run),
        ("Source", s.source),
        ("Frames analysed", s.frames),
        ("Bad frames", s.frames_bad),
        ("Skipped by sampling", s.frames_skipped),
        ("Hits", s.hits),
        ("Hit rate", fmt(s.hit_rate, "{:.1%}")),
        ("Median spots (all frames)", fmt(s.median_spots, "{:.0f}")),
        ("Median spots (hits)", fmt(s.median_spots_hits, "{:.0f}")),
        (
            "d_min of hits, 10/50/90 % (Å)",
            " / ".join(fmt(v, "{:.2f}") for v in (s.d_min_p10, s.d_min_p50, s.d_min_p90)),
        ),
        *(
            [
                (
                    "Indexing rate (of hits tried)",
                    f"{fmt(s.indexing_rate, '{:.1%}')} ({s.hits_indexed} of {s.hits_tried})",
                ),
                ("Indexed hits per frame", fmt(s.indexing_rate_frames, "{:.1%}")),
                (
                    "Median unit cell (Å, °)",
                    fmt(s.median_cell and ", ".join(f"{v:.2f}" for v in s.median_cell)),
                ),
                ("Hits with two lattices or more", s.multi_lattice_hits),
            ]
            if s.hits_tried is not None
            else []
        ),
        ("Started (UTC)", fmt(s.started and s.started.strftime("%Y-%m-%d %H:%M:%S"))),
        ("Ended (UTC)", fmt(s.ended and s.ended.strftime("%Y-%m-%d %H:%M:%S"))),
    ]
    body = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
        f"<td>{html.escape(str(v))}</td></tr>"
        for k, v in rows
    )
    return f"<table class='xlive-figures'>{body}</table>"


def _span_html(f: dict) -> str:
    """`` (frames 104-196, worst 0.05)`` for a flag episode."""
    if "raised_at" not in f and "first_frame" not in f:
        return ""
    start = f.get("raised_at", f.get("first_frame"))
    end = f.get("cleared_at")
    span = f"frames {start}–{end}" if end is not None else f"from frame {start} to the end"
    worst = f.get("worst")
    worst = f", worst value {worst:.3g}" if isinstance(worst, (int, float)) else ""
    return f" <i class='xlive-flag-span'>({span}{worst})</i>"


def add_flag_bands(fig, flags: list[dict], last_frame: int) -> None:
    """Shade the frames during which each flag was raised (red: error, amber: warning)."""
    from bokeh.models import BoxAnnotation

    for f in flags:
        start = f.get("raised_at", f.get("first_frame"))
        if start is None:
            continue
        end = f.get("cleared_at")
        color = _COLORS["red" if f.get("severity") == "error" else "amber"]
        fig.add_layout(
            BoxAnnotation(
                left=start,
                right=end if end is not None else last_frame,
                fill_color=color,
                fill_alpha=0.15,
                line_alpha=0,
                name=f"flag_band_{f.get('name')}",
            )
        )


def _flags_html(s: RunSummary) -> str:
    color = _COLORS.get(s.status, "#000")
    head = f"<p class='xlive-status'>Status: <b style='color:{color}'>{s.status.upper()}</b></p>"
    if not s.flags:
        return head + "<p class='xlive-flags'>No flags raised.</p>"
    items = "".join(
        f"<li><b style='color:{_COLORS['red' if f['severity'] == 'error' else 'amber']}'>"
        f"{html.escape(f['name'])}</b> ({html.escape(f['severity'])}): "
        f"{html.escape(f['message'])}" + _span_html(f) + "</li>"
        for f in s.flags
    )
    return head + f"<ul class='xlive-flags'>{items}</ul>"


def build_report(features: str | Path | xr.Dataset, *, flags=None, title: str | None = None):
    """The report's bokeh layout (and the run summary it shows)."""
    from bokeh.layouts import column, gridplot
    from bokeh.models import Div

    ds = features_dataset(features)
    if ds.sizes[FRAME] and np.any(np.diff(ds[FRAME].values) < 0):
        ds = ds.sortby(FRAME)  # every plot along the run reads in frame order
    agg = aggregates(ds)
    summary = summarize(features, flags=flags)
    title = title or f"xlive report: {Path(summary.source).name or 'run'}"
    plots = []
    if "is_hit" in ds:
        plots.append(hit_rate_plot(ds))
    if "n_spots" in ds and "is_hit" in ds:
        plots.append(spots_plot(ds))
    if "d_min" in ds and "is_hit" in ds:
        plots.append(d_min_plot(ds))
    cells = None
    if "index_tried" in ds and "is_hit" in ds:
        from .report_indexing import cell_histograms, indexing_rate_plot

        plots.append(indexing_rate_plot(ds))
        cells = cell_histograms(ds)
    if "radial_profile" in ds and agg.mean_profile() is not None:
        plots.append(radial_plot(ds, agg))
    if "peak_d" in ds:
        plots.extend(powder_plots(agg))
    for spec in declared_specs(ds):
        if spec.show is not None and (
            spec.show.kind != "image" or agg.images[spec.name].image is not None
        ):
            plots.append(declared_plot(ds, agg, spec))
    last = int(ds[FRAME].values.max()) if ds.sizes[FRAME] else 0
    for p in plots:
        if p.name in ("hit_rate", "spots", "d_min"):  # plots along the run's frames
            add_flag_bands(p, summary.flags, last)
    header = Div(text=f"<h1>{html.escape(title)}</h1>", name="title")
    figures = Div(text="<h2>Run figures</h2>" + _figures_table(summary), name="figures")
    flag_div = Div(text="<h2>Flags</h2>" + _flags_html(summary), name="flags")
    grid = gridplot(plots, ncols=2) if plots else Div(text="<p>No features to plot.</p>")
    parts = [header, figures, flag_div, grid]
    if cells is not None:
        parts += [Div(text="<h2>Unit cells of the indexed hits</h2>", name="cells_title"), cells]
    return column(*parts), summary, title


def write_report(
    features: str | Path | xr.Dataset, out: str | Path, *, flags=None, title: str | None = None
) -> RunSummary:
    """Write the HTML report of a processed run to ``out`` (self-contained, works offline).

    Examples
    --------
    >>> write_report("features.zarr", "report.html")  # doctest: +SKIP
    """
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    layout, summary, title = build_report(features, flags=flags, title=title)
    Path(out).write_text(file_html(layout, resources=INLINE, title=title), encoding="utf-8")
    return summary
