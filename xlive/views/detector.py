"""Detector image of the latest hit or a chosen frame: found (and predicted) spots circled,
masked pixels overlaid, resolution rings drawn, value / d-spacing / panel under the cursor.

Coordinates: the image is drawn in array-index coordinates, pixel ``(row j, column i)``
covering ``i - 0.5 .. i + 0.5`` and ``j - 0.5 .. j + 0.5``, the convention of the spot finder's
``peak_x`` (column) and ``peak_y`` (row). A binned image (detectors larger than
:data:`MAX_SIDE`) covers ``f * ceil(w / f)`` pixels, so its extent is that, not ``w``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from bokeh.models import (
    ColorBar,
    ColumnDataSource,
    CustomJSHover,
    DataRange1d,
    HoverTool,
    LabelSet,
    Legend,
    LegendItem,
    LinearColorMapper,
    LogColorMapper,
)
from bokeh.palettes import Greys256

from ._base import View, make_figure
from ._rings import ring_radii_px

#: longest side of the image sent to the browser (larger detectors are binned by their maximum)
MAX_SIDE = 1100
MASK_COLOR = "#ff8c00"
SPOT_COLOR = "red"
TRANSPARENT = "rgba(0, 0, 0, 0)"
#: the browser's answer for the pixel under the cursor: counts, d-spacing, panel, pixel
_HOVER_JS = """
const k = special_vars.image_index;
if (k == null) return "";
const f = k.flat_index;
if (format == "d") {
    const d = maps.data.d.length ? maps.data.d[0][f] : NaN;
    return isFinite(d) ? d.toFixed(2) + " Å" : "–";
}
if (format == "panel") {
    if (names.length == 1) return names[0];
    const p = maps.data.panel.length ? maps.data.panel[0][f] : -1;
    return p >= 0 && p < names.length ? names[p] : "–";
}
return Math.round(special_vars.x) + ", " + Math.round(special_vars.y);
"""


def bin_max(img: np.ndarray, f: int) -> np.ndarray:
    """Maximum over ``f x f`` blocks (NaN-aware), so that binning never hides a spot."""
    if f <= 1:
        return img
    h, w = img.shape
    pad = np.pad(img, ((0, (-h) % f), (0, (-w) % f)), constant_values=np.nan)
    blocks = pad.reshape(pad.shape[0] // f, f, pad.shape[1] // f, f)
    with np.errstate(invalid="ignore"):
        out = np.fmax.reduce(np.fmax.reduce(blocks, axis=3), axis=1)
    return out


def bin_mean(img: np.ndarray, f: int) -> np.ndarray:
    """Mean over ``f x f`` blocks, ignoring NaN (for maps such as the d-spacing)."""
    if f <= 1:
        return img
    h, w = img.shape
    pad = np.pad(img.astype(float), ((0, (-h) % f), (0, (-w) % f)), constant_values=np.nan)
    blocks = pad.reshape(pad.shape[0] // f, f, pad.shape[1] // f, f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # blocks all NaN stay NaN
        return np.nanmean(blocks, axis=(1, 3))


def binning(shape: tuple[int, int], max_side: int = MAX_SIDE) -> int:
    """Binning factor sending an image of ``shape`` with at most ``max_side`` pixels a side."""
    return max(1, int(math.ceil(max(shape) / max_side)))


def image_extent(shape: tuple[int, int], f: int) -> dict[str, float]:
    """``x, y, dw, dh`` (array-index coordinates) of an image of ``shape`` binned by ``f``:
    the binned image covers ``f * ceil(n / f)`` pixels along each side."""
    h, w = shape
    return {
        "x": -0.5,
        "y": -0.5,
        "dw": float(f * math.ceil(w / f)),
        "dh": float(f * math.ceil(h / f)),
    }


class DetectorView(View):
    """The frame on display: by default the latest hit, else the frame chosen with :meth:`show`.

    Spots come from the live run (``session.hit_peaks``) or, for other frames and trial
    parameters, from :meth:`set_peaks`. Zoom with the wheel or a box; ``scale`` is ``"log"`` or
    ``"linear"``; :meth:`set_levels` fixes the grey levels (counts), None makes them automatic
    (1st and 99.9th percentile of the frame).
    """

    name = "detector"

    def __init__(self, *, scale: str = "log", height: int = 460, max_side: int = MAX_SIDE):
        self.scale = scale
        self.max_side = max_side
        self.follow = True
        self.frame: int | None = None
        #: (low, high) grey levels in counts, or None: automatic
        self.levels: tuple[float, float] | None = None
        #: (low, high) the levels in use now (automatic or fixed)
        self.levels_shown: tuple[float, float] | None = None
        self._shown: tuple | None = None
        self._peaks: dict[int, tuple[np.ndarray, np.ndarray, int | None]] = {}
        self._rings_for = None
        self._maps_for = None
        #: send the d-spacing and panel maps the cursor's read-out uses (False: a page's first
        #: document sends the image and mask only; :meth:`add_hover_maps` sends them later)
        self.hover_maps = True
        self.source = ColumnDataSource(
            {"image": [], "x": [], "y": [], "dw": [], "dh": []}, name="detector_source"
        )
        #: static per geometry: d-spacing and panel index per (binned) pixel, and the mask
        self.maps = ColumnDataSource(
            {"d": [], "panel": [], "mask": [], "x": [], "y": [], "dw": [], "dh": []},
            name="detector_maps",
        )
        self.spots = ColumnDataSource({"x": [], "y": []}, name="detector_spots")
        #: predicted spots of the frame's indexed lattices (lattice 0, 1, ...)
        self.predicted = ColumnDataSource(
            {"x": [], "y": [], "color": [], "lattice": []}, name="detector_predicted"
        )
        self.rings = ColumnDataSource(
            {"x": [], "y": [], "radius": [], "label": [], "lx": [], "ly": []}, name="detector_rings"
        )
        palette = Greys256[::-1]
        self.mappers = {
            "linear": LinearColorMapper(palette=palette, nan_color=TRANSPARENT),
            "log": LogColorMapper(palette=palette, nan_color=TRANSPARENT, low=1, high=10),
        }
        self.mapper = self.mappers[scale]
        fig = make_figure(
            self.name,
            "Detector: waiting for the first hit",
            x_label="x (pixel)",
            y_label="y (pixel)",
            height=height,
            match_aspect=True,
            active_scroll="wheel_zoom",
        )
        fig.y_range.flipped = True
        self.image = fig.image(
            "image", x="x", y="y", dw="dw", dh="dh", source=self.source, color_mapper=self.mapper
        )
        # the view fits the detector (rings beyond it are clipped, not zoomed out to)
        fig.x_range = DataRange1d(renderers=[self.image], range_padding=0.02)
        fig.y_range = DataRange1d(renderers=[self.image], range_padding=0.02, flipped=True)
        mask = fig.image(
            "mask",
            x="x",
            y="y",
            dw="dw",
            dh="dh",
            source=self.maps,
            color_mapper=LinearColorMapper(
                palette=[MASK_COLOR], low=0, high=1, nan_color=TRANSPARENT
            ),
            global_alpha=0.55,
        )
        # legend glyphs for the image overlays (an image has no legend glyph of its own)
        # (one point at NaN: drawn nowhere, but it gives the legend its glyph)
        mask_key = fig.scatter(
            [np.nan], [np.nan], marker="square", size=10, color=MASK_COLOR, alpha=0.55
        )
        predicted_key = fig.scatter(
            [np.nan],
            [np.nan],
            marker="square",
            size=9,
            fill_alpha=0,
            line_color=LATTICE_COLORS[0],
            line_width=1.2,
        )
        found = fig.scatter(
            "x",
            "y",
            source=self.spots,
            marker="circle",
            size=11,
            fill_alpha=0,
            line_color=SPOT_COLOR,
            line_width=1.5,
        )
        predicted = fig.scatter(
            "x",
            "y",
            source=self.predicted,
            marker="square",
            size=9,
            fill_alpha=0,
            line_color="color",
            line_width=1.2,
        )
        rings = fig.circle(
            "x",
            "y",
            radius="radius",
            source=self.rings,
            fill_alpha=0,
            line_color="deepskyblue",
            line_dash="dashed",
            line_alpha=0.8,
        )
        fig.add_layout(
            LabelSet(
                x="lx",
                y="ly",
                text="label",
                source=self.rings,
                text_color="#0277bd",
                text_font_size="8pt",
                text_align="center",
                text_baseline="middle",
                background_fill_color="white",
                background_fill_alpha=0.7,
            )
        )
        self.legend = Legend(
            items=[
                LegendItem(label="found spots", renderers=[found]),
                LegendItem(label="predicted spots", renderers=[predicted_key, predicted]),
                LegendItem(label="masked pixels", renderers=[mask_key, mask]),
                LegendItem(label="resolution rings", renderers=[rings]),
            ],
            location="top_left",
            click_policy="hide",
            label_text_font_size="9pt",
            spacing=0,
            padding=4,
            margin=4,
            name="detector_legend",
        )
        fig.add_layout(self.legend, "right")
        self.colorbar = ColorBar(
            color_mapper=self.mapper, width=8, title=self._bar_title(), title_standoff=4
        )
        fig.add_layout(self.colorbar, "right")
        self.hover = HoverTool(
            renderers=[self.image],
            tooltips=[
                ("pixel (x, y)", "$x{px}"),
                ("counts", "@image{0,0.[0]}"),
                ("d-spacing", "$x{d}"),
                ("panel", "$x{panel}"),
            ],
            formatters={"$x": CustomJSHover(args={"maps": self.maps, "names": []}, code=_HOVER_JS)},
        )
        fig.add_tools(self.hover)
        self.root = fig

    # ------------------------------------------------------------------ control
    def show(self, frame: int | None) -> None:
        """Show ``frame`` (None: follow the latest hit again)."""
        self.follow = frame is None
        self.frame = None if frame is None else int(frame)

    def set_scale(self, scale: str) -> None:
        if scale not in ("log", "linear"):
            raise ValueError(f"scale is 'log' or 'linear', got {scale!r}")
        self.scale = scale

    def set_levels(self, levels: tuple[float, float] | None) -> None:
        """Fix the grey levels to ``(low, high)`` counts; None: automatic (per frame)."""
        if levels is not None:
            lo, hi = (float(v) for v in levels)
            if not hi > lo:
                raise ValueError(f"levels need low < high, got {lo} and {hi}")
            levels = (lo, hi)
        self.levels = levels
        self._shown = None

    def set_peaks(self, frame: int, x, y, n_found: int | None = None) -> None:
        """Circle these spots on ``frame`` (e.g. found with trial spot-finder parameters);
        ``n_found``: how many the finder found (more than ``len(x)`` when capped)."""
        self._peaks = {int(frame): (np.asarray(x, float), np.asarray(y, float), n_found)}
        self._shown = None

    @property
    def target(self) -> int | None:
        return self.frame

    def _bar_title(self) -> str:
        return f"counts ({self.scale})"

    # ------------------------------------------------------------------ update
    def update(self, session) -> bool:
        if self.follow and session.latest_hit is not None:
            self.frame = int(session.latest_hit)
        if self.frame is None:
            return False
        key = (self.frame, self.scale, self.levels)
        if key == self._shown:
            return False
        self._shown = key
        geom = session.source.geometry
        self._draw_rings(geom)
        img = np.asarray(session.read_frame(self.frame), np.float32)
        f = binning(img.shape, self.max_side)
        self._draw_maps(geom, img.shape, f)
        img = np.where(geom.maps.mask | ~np.isfinite(img), np.nan, np.clip(img, 0, None))
        small = bin_max(img, f)
        self._set_levels(small)
        self.source.data = {"image": [small.astype(np.float32)], **_columns(img.shape, f)}
        x, y, n_found = self._frame_peaks(session)
        self.spots.data = {"x": x.tolist(), "y": y.tolist()}
        kind = "hit" if self.frame in session.hit_peaks else "frame"
        lattices = getattr(session, "hit_lattices", {}).get(self.frame, [])
        self.predicted.data = predicted_spots(geom, lattices)
        extra = (
            f", {len(lattices)} lattice{'s' * (len(lattices) != 1)} indexed"
            f" ({len(self.predicted.data['x'])} spots predicted)"
            if lattices
            else ""
        )
        binned = f", binned {f}x{f} (max)" if f > 1 else ""
        self.root.title.text = (
            f"Detector: {kind} {self.frame}, {spots_text(len(x), n_found, _peak_cap(session))}"
            f"{extra}{binned}"
        )
        return True

    def _set_levels(self, small: np.ndarray) -> None:
        mapper = self.mappers[self.scale]
        if mapper is not self.mapper:
            self.mapper = mapper
            self.image.glyph.color_mapper = mapper
            self.colorbar.color_mapper = mapper
            self.colorbar.title = self._bar_title()
        if self.levels is not None:
            lo, hi = self.levels
        else:
            fin = small[np.isfinite(small)]
            lo, hi = np.percentile(fin, [1, 99.9]) if fin.size else (0.0, 1.0)
        if self.scale == "log":  # a log scale starts at one count at least
            lo = max(float(lo), 1.0)
            hi = max(float(hi), lo * 1.01)
        else:
            hi = max(float(hi), float(lo) + 1e-6)
        mapper.low, mapper.high = float(lo), float(hi)
        self.levels_shown = (float(lo), float(hi))

    def _frame_peaks(self, session) -> tuple[np.ndarray, np.ndarray, int | None]:
        if self.frame in self._peaks:
            return self._peaks[self.frame]
        x, y = session.hit_peaks.get(self.frame) or ((), ())
        return np.asarray(x, float), np.asarray(y, float), _n_spots(session, self.frame)

    def _draw_maps(self, geom, shape: tuple[int, int], f: int) -> None:
        key = (id(geom), shape, f, self.hover_maps)
        if self._maps_for == key:
            return
        self._maps_for = key
        maps = geom.maps
        mask = bin_max(np.where(maps.mask, 1.0, np.nan).astype(np.float32), f)
        names = [p.name for p in geom.panels]
        # empty maps: the read-out says "–" until they come
        hover = {"d": [np.zeros((0, 0), np.float32)], "panel": [np.zeros((0, 0), np.int32)]}
        if self.hover_maps:
            d = bin_mean(np.asarray(maps.d, np.float32), f).astype(np.float32)
            if len(names) > 1:  # one panel: its name, no map to send
                panel = bin_max(np.asarray(maps.panel, np.float32), f)
                panel = np.where(np.isfinite(panel), panel, -1).astype(np.int32)
            else:
                panel = np.zeros((0, 0), np.int32)
            hover = {"d": [d], "panel": [panel]}
        self.maps.data = {**hover, "mask": [mask], **_columns(shape, f)}
        self.hover.formatters["$x"].args = {"maps": self.maps, "names": names}

    def add_hover_maps(self, session) -> None:
        """Send the d-spacing and panel maps of the cursor's read-out now (left out so far)."""
        self.hover_maps = True
        if self._maps_for is not None:
            _, shape, f, _ = self._maps_for
            self._draw_maps(session.source.geometry, shape, f)

    def _draw_rings(self, geom) -> None:
        if self._rings_for is geom:
            return
        self._rings_for = geom
        try:
            cx, cy = geom.beam_center
        except Exception:  # multi-panel detectors: rings are not circles in pixel space
            return
        cx, cy = cx - 0.5, cy - 0.5  # beam centre (pyFAI rule) -> array-index coordinates
        ds, rs = ring_radii_px(geom)
        lx, ly = ring_label_positions(cx, cy, rs)
        self.rings.data = {
            "x": [cx] * len(ds),
            "y": [cy] * len(ds),
            "radius": rs,
            "label": [f"{d:g} Å" for d in ds],
            "lx": lx,
            "ly": ly,
        }


def _columns(shape: tuple[int, int], f: int) -> dict[str, list[float]]:
    return {k: [v] for k, v in image_extent(shape, f).items()}


def ring_label_positions(cx: float, cy: float, radii) -> tuple[list[float], list[float]]:
    """Where to write each ring's label: on the ring, at angles that step round the circle
    (below the beam on the right, then further round) so that labels of close rings are far
    apart."""
    lx, ly = [], []
    for k, r in enumerate(radii):
        a = math.radians(-60 + 35 * (k % 4))  # -60, -25, 10, 45 degrees, then again
        lx.append(cx + r * math.cos(a))
        ly.append(cy - r * math.sin(a))
    return lx, ly


def spots_text(shown: int, found: int | None, cap: int | None) -> str:
    """``"256 of 612 spots circled (the strongest 256 are kept)"`` or ``"40 spots found and
    circled"``."""
    if found is not None and found > shown:
        keep = f"; the peak table keeps the strongest {cap}" if cap else ""
        return f"{shown} of {found} spots circled{keep}"
    return f"{shown} spots found and circled"


def _peak_cap(session) -> int | None:
    from .tweak import LiveControls

    params = LiveControls(session).spot_params
    return getattr(params, "max_peaks", None)


def _n_spots(session, frame: int) -> int | None:
    """Spots the finder found in ``frame`` (from the run's recent series; None if gone)."""
    series = session.aggregates.series
    frames = series.get("frame")
    spots = series.get("n_spots")
    if frames is None or spots is None or len(frames) != len(spots):
        return None
    fr = np.asarray(frames.last(len(frames)) if hasattr(frames, "last") else list(frames))
    k = np.flatnonzero(fr == frame)
    if not k.size:
        return None
    sp = spots.last(len(spots)) if hasattr(spots, "last") else list(spots)
    return int(np.asarray(sp)[k[-1]])


LATTICE_COLORS = ("limegreen", "orange", "magenta", "cyan")


def predicted_spots(geometry, orientations, excitation: float = 0.0015) -> dict:
    """Predicted spot positions of each lattice (``A`` matrices) on the detector, as columns
    ``x, y, color, lattice`` for the detector view."""
    from ..analyzers.indexing_predict import predict_reflections

    out = {"x": [], "y": [], "color": [], "lattice": []}
    if not orientations:
        return out
    d_min = float(np.nanmin(geometry.maps.d))
    for j, a in enumerate(orientations):
        refl = predict_reflections(geometry, a, d_min=d_min, excitation=excitation)
        n = len(refl["x"])
        out["x"] += refl["x"].tolist()
        out["y"] += refl["y"].tolist()
        out["color"] += [LATTICE_COLORS[j % len(LATTICE_COLORS)]] * n
        out["lattice"] += [f"lattice {j + 1}"] * n
    return out
