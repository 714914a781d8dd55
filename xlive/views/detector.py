"""Detector image of the latest hit or a chosen frame, spots circled, resolution rings drawn."""

from __future__ import annotations

import numpy as np
from bokeh.models import ColorBar, ColumnDataSource, LabelSet, LinearColorMapper
from bokeh.palettes import Greys256

from ._base import View, make_figure
from ._rings import ring_radii_px

#: longest side of the image sent to the browser (larger detectors are binned by their maximum)
MAX_SIDE = 1100


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


class DetectorView(View):
    """The frame on display: by default the latest hit, else the frame chosen with :meth:`show`.

    Spots come from the live run (``session.hit_peaks``) or, for other frames and trial
    parameters, from :meth:`set_peaks`. Zoom with the wheel or a box; ``scale`` is ``"log"`` or
    ``"linear"``.
    """

    name = "detector"

    def __init__(self, *, scale: str = "log", height: int = 460):
        self.scale = scale
        self.follow = True
        self.frame: int | None = None
        self._shown: tuple | None = None
        self._peaks: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._rings_for = None
        self.source = ColumnDataSource(
            {"image": [], "x": [], "y": [], "dw": [], "dh": []}, name="detector_source"
        )
        self.spots = ColumnDataSource({"x": [], "y": []}, name="detector_spots")
        #: predicted spots of the frame's indexed lattices (lattice 0, 1, ...)
        self.predicted = ColumnDataSource(
            {"x": [], "y": [], "color": [], "lattice": []}, name="detector_predicted"
        )
        self.rings = ColumnDataSource(
            {"x": [], "y": [], "radius": [], "label": [], "lx": [], "ly": []}, name="detector_rings"
        )
        self.mapper = LinearColorMapper(palette=Greys256[::-1], nan_color="#ffe4b5")
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
        fig.image(
            "image", x="x", y="y", dw="dw", dh="dh", source=self.source, color_mapper=self.mapper
        )
        fig.scatter(
            "x",
            "y",
            source=self.spots,
            marker="circle",
            size=12,
            fill_alpha=0,
            line_color="red",
            line_width=1.5,
        )
        fig.scatter(
            "x",
            "y",
            source=self.predicted,
            marker="square",
            size=9,
            fill_alpha=0,
            line_color="color",
            line_width=1.2,
            legend_field="lattice",
        )
        fig.circle(
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
                text_color="deepskyblue",
                text_font_size="8pt",
            )
        )
        fig.add_layout(ColorBar(color_mapper=self.mapper, width=8), "right")
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

    def set_peaks(self, frame: int, x, y) -> None:
        """Circle these spots on ``frame`` (e.g. found with trial spot-finder parameters)."""
        self._peaks = {int(frame): (np.asarray(x, float), np.asarray(y, float))}
        self._shown = None

    @property
    def target(self) -> int | None:
        return self.frame

    # ------------------------------------------------------------------ update
    def update(self, session) -> bool:
        if self.follow and session.latest_hit is not None:
            self.frame = int(session.latest_hit)
        if self.frame is None:
            return False
        key = (self.frame, self.scale)
        if key == self._shown:
            return False
        self._shown = key
        self._draw_rings(session)
        geom = session.source.geometry
        img = np.asarray(session.read_frame(self.frame), np.float32)
        mask = geom.maps.mask
        img = np.where(mask | ~np.isfinite(img), np.nan, img)
        if self.scale == "log":
            img = np.log10(np.clip(img, 0, None) + 1.0)
        f = int(np.ceil(max(img.shape) / MAX_SIDE))
        small = bin_max(img, f)
        fin = small[np.isfinite(small)]
        if fin.size:
            lo, hi = np.percentile(fin, [1, 99.9])
            self.mapper.low, self.mapper.high = float(lo), float(max(hi, lo + 1e-6))
        h, w = img.shape
        self.source.data = {
            "image": [small.astype(np.float32)],
            "x": [-0.5],
            "y": [-0.5],
            "dw": [float(w)],
            "dh": [float(h)],
        }
        x, y = self._peaks.get(self.frame) or session.hit_peaks.get(self.frame) or ((), ())
        self.spots.data = {"x": np.asarray(x, float).tolist(), "y": np.asarray(y, float).tolist()}
        kind = "hit" if self.frame in session.hit_peaks else "frame"
        lattices = getattr(session, "hit_lattices", {}).get(self.frame, [])
        self.predicted.data = predicted_spots(geom, lattices)
        extra = (
            f", {len(lattices)} lattice{'s' * (len(lattices) != 1)} (squares: predicted)"
            if lattices
            else ""
        )
        self.root.title.text = (
            f"Detector: {kind} {self.frame}, {len(x)} spots circled{extra} ({self.scale} scale)"
        )
        return True

    def _draw_rings(self, session) -> None:
        geom = session.source.geometry
        if self._rings_for is geom:
            return
        self._rings_for = geom
        try:
            cx, cy = geom.beam_center
        except Exception:  # multi-panel detectors: rings are not circles in pixel space
            return
        cx, cy = cx - 0.5, cy - 0.5  # beam centre (pyFAI rule) -> array-index coordinates
        ds, rs = ring_radii_px(geom)
        self.rings.data = {
            "x": [cx] * len(ds),
            "y": [cy] * len(ds),
            "radius": rs,
            "label": [f"{d:g} Å" for d in ds],
            "lx": [cx + r * 0.7071 for r in rs],
            "ly": [cy - r * 0.7071 for r in rs],
        }


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
