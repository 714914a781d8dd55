"""The frame model: background (water ring, air, ice) with Poisson noise plus Bragg spots.

Noisy backgrounds are precomputed a few times per kind (jet on/off, ice, laser) and reused;
spots are drawn sparsely into 7 x 7 windows. Every frame is a pure function of
``(params, frame_number)``, so a run is reproducible for a seed whatever the batching.

Ground truth per spot: position (array-index coordinates), hkl, d, expected photons and an
*integrated SNR* ``N / sqrt(N + 9 (b + r**2))`` (N expected spot photons, b expected background
per pixel at the spot, r the read noise of an integrating detector in photons: the noise of a
3 x 3 box sum). With ``SimParams.spot_sigma_range`` set (the ``"hard"`` preset) spots follow the
footprint model instead: per-spot widths, radial bandwidth streaks, windows sized to the spot
and the SNR over the spot's footprint (definition in :mod:`xlive.simulate.footprint`).
Truth ``blended`` marks spots merged with a neighbour into one lump (same module).

Artefacts the detector mask does not know (:mod:`xlive.simulate.artefacts`): hot pixels at
fixed positions in every frame (``Simulation.hot_pixels``; truth ``hot_pixels`` x, y, counts)
and, with ``SimParams.zingers``, zingers: single bright pixels at random unmasked positions,
new each frame (truth ``zingers`` x, y, counts).

Integrating detectors (JUNGFRAU, AGIPD: :class:`~xlive.detectors.IntegratingModel`) are drawn in
photons on a flat canvas holding every panel and the gaps between them, then moved to the
stacked-module data array and written in ADU (or keV) as float32 with pedestal noise.
Truth ``d_min`` of a frame: ``1 / quantile(1/d, 0.95)`` over spots with SNR >= 5 on unmasked
pixels (NaN with fewer than 5 such spots): the resolution that 5 % of the detectable spots exceed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
from scipy.special import ndtr

from ..conventions import ICE_D_SPACINGS
from ..geometry.core import Geometry
from ..geometry.detectors import DetectorModel, IntegratingModel, get_detector
from . import artefacts, footprint
from .lattice import ReflectionSet, predict_spots, random_rotation
from .params import SimParams

HALF = 3  # spot window half-width, pixels


@dataclass
class FrameTruth:
    frame_number: int
    dropped: bool
    hit: bool
    jet_on: bool
    ice: bool
    laser_on: bool
    n_lattices: int
    pulse_energy: float
    #: arrays: x, y, h, k, l, d, photons, snr, lattice, masked, sigma_r, sigma_t, signal,
    #: npix, blended, separation
    spots: dict
    #: this frame's zingers: x, y (array-index coordinates), counts
    zingers: dict = field(default_factory=artefacts.empty)
    #: the run's hot pixels (same in every frame): x, y, counts (mean counts per frame)
    hot_pixels: dict = field(default_factory=artefacts.empty)

    @property
    def artefacts(self) -> dict:
        """Zingers and hot pixels of this frame together: x, y, counts, kind ("zinger"/"hot")."""
        return artefacts.combined(self.zingers, self.hot_pixels)

    @property
    def n_spots(self) -> int:
        """Detectable spots: SNR >= 10 on unmasked pixels."""
        return int(np.count_nonzero((self.spots["snr"] >= 10) & ~self.spots["masked"]))

    @property
    def d_min(self) -> float:
        s = self.spots
        ok = (s["snr"] >= 5) & ~s["masked"]
        if np.count_nonzero(ok) < 5:
            return float("nan")
        return float(1.0 / np.quantile(1.0 / s["d"][ok], 0.95))


def _empty_spots() -> dict:
    f = np.zeros(0)
    i = np.zeros(0, np.int32)
    return dict(
        x=f,
        y=f,
        h=i,
        k=i,
        l=i,
        d=f,
        photons=f,
        snr=f,
        lattice=i,
        masked=np.zeros(0, bool),
        sigma_r=f,
        sigma_t=f,
        signal=f,
        npix=i,
        blended=np.zeros(0, bool),
        separation=f,
    )


class Simulation:
    """A simulated serial-crystallography experiment on one detector.

    Examples
    --------
    >>> sim = Simulation(SimParams(detector="eiger500k", seed=1))
    >>> frame, truth = sim.frame(0)
    >>> frame.shape == sim.geometry.shape
    True
    """

    def __init__(self, params: SimParams | None = None, **kwargs):
        self.params = params if params is not None else SimParams(**kwargs)
        p = self.params
        self.detector: DetectorModel | IntegratingModel = get_detector(p.detector)
        self._bg_cache: dict[tuple, list[np.ndarray]] = {}
        self._canvas_cache: dict[tuple, list[np.ndarray]] = {}
        #: data pixel -> pixel of the flat canvas the model is drawn on (None: the same array)
        self._gather: np.ndarray | None = None
        if isinstance(self.detector, IntegratingModel):
            self._init_integrating(self.detector)
            return
        det = self.detector
        ny, nx = det.shape
        rng = np.random.default_rng([p.seed, 1])
        gaps = det.gap_mask()
        bad = (rng.random((ny, nx)) < det.bad_fraction) & ~gaps
        #: NXmx pixel_mask: bit 0 gap, bit 1 dead
        self.pixel_mask = gaps.astype(np.uint32) | (bad.astype(np.uint32) << 1)
        flat = np.flatnonzero(~(gaps | bad))
        self.hot_pixels = rng.choice(flat, size=p.hot_pixels, replace=False)
        self._unmasked = flat
        distance = p.distance if p.distance is not None else det.distance
        self.geometry = Geometry.simple(
            shape=(ny, nx),
            pixel_size=det.pixel_size,
            distance=distance,
            beam_center_x=nx / 2 + p.beam_offset[0],
            beam_center_y=ny / 2 + p.beam_offset[1],
            wavelength=p.wavelength,
            mask=self.pixel_mask != 0,
            saturation_value=det.saturation_value,
            description=det.description,
            sentinels=det.sentinels,
        )
        #: the flat detector the model (background, spots, truth) is drawn on
        self._model = self.geometry
        self._mask_flat = self.geometry.mask.ravel()
        self._init_artefacts()
        frame_bytes = ny * nx * np.dtype(det.dtype).itemsize
        self.n_backgrounds = p.n_backgrounds or int(np.clip(128e6 // frame_bytes, 4, 32))

    def _init_integrating(self, det: IntegratingModel) -> None:
        """Multi-panel integrating detector: the model is drawn in photons on a flat canvas
        covering every panel (gaps included), then each data pixel takes its canvas pixel,
        times the gain, plus pedestal (read) noise: float32 ADU with negative values."""
        p = self.params
        ny, nx = det.shape
        rng = np.random.default_rng([p.seed, 1])
        raw = det.panels()
        corners = []
        for q in raw:
            for u, v in ((0, 0), (q.shape[1], 0), (0, q.shape[0]), q.shape[::-1]):
                corners.append(
                    (q.corner_x + q.fs[0] * u + q.ss[0] * v, q.corner_y + q.fs[1] * u + q.ss[1] * v)
                )
        corners = np.array(corners)
        (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
        cw, ch = int(np.ceil(x1 - x0)), int(np.ceil(y1 - y0))
        bcx, bcy = cw / 2 + p.beam_offset[0], ch / 2 + p.beam_offset[1]
        panels = tuple(
            replace(q, corner_x=q.corner_x - x0 - bcx, corner_y=q.corner_y - y0 - bcy) for q in raw
        )
        bad = rng.random((ny, nx)) < det.bad_fraction
        #: bit 1: dead pixel (no gaps inside the stacked modules)
        self.pixel_mask = bad.astype(np.uint32) << 1
        self.hot_pixels = rng.choice(np.flatnonzero(~bad), size=p.hot_pixels, replace=False)
        self._unmasked = np.flatnonzero(~bad)
        distance = p.distance if p.distance is not None else det.distance
        self.geometry = Geometry(
            shape=(ny, nx),
            distance=distance,
            wavelength=p.wavelength,
            panels=panels,
            mask=bad,
            saturation_value=det.saturation_value,
            description=det.description,
            sentinels=(),
            read_noise=det.read_noise,
        )
        m = self.geometry.maps
        col = np.rint(m.lab_x / det.pixel_size + bcx - 0.5).astype(np.int64)
        row = np.rint(m.lab_y / det.pixel_size + bcy - 0.5).astype(np.int64)
        self._gather = (row * cw + col).ravel()
        canvas_mask = np.ones(ch * cw, bool)
        canvas_mask[self._gather] = bad.ravel()
        self._canvas_panel = np.full(ch * cw, -1, np.int64)
        self._canvas_panel[self._gather] = m.panel.ravel()
        self._canvas_data = np.full(ch * cw, -1, np.int64)
        self._canvas_data[self._gather] = np.arange(ny * nx)
        self._model = Geometry.simple(
            shape=(ch, cw),
            pixel_size=det.pixel_size,
            distance=distance,
            beam_center_x=bcx,
            beam_center_y=bcy,
            wavelength=p.wavelength,
            mask=canvas_mask.reshape(ch, cw),
        )
        self._mask_flat = canvas_mask
        self.gain = self.geometry.gain
        self._init_artefacts()
        frame_bytes = ny * nx * 4 + ch * cw * 4
        self.n_backgrounds = p.n_backgrounds or int(np.clip(128e6 // frame_bytes, 4, 32))

    def _init_artefacts(self) -> None:
        p = self.params
        nx = self.geometry.shape[1]
        #: mean counts per frame of each hot pixel (None: 0.3 x saturation, fixed)
        self.hot_pixel_rates = artefacts.hot_pixel_rates(p)
        counts = (
            self.hot_pixel_rates
            if self.hot_pixel_rates is not None
            else np.full(len(self.hot_pixels), 0.3 * self.detector.saturation_value)
        )
        #: the hot pixels' truth: x, y (array-index coordinates), counts (mean per frame)
        self.hot_pixel_truth = dict(
            x=(self.hot_pixels % nx).astype(np.float64),
            y=(self.hot_pixels // nx).astype(np.float64),
            counts=counts.astype(np.float64),
        )

    def _to_data_coordinates(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
        """Canvas positions (pixel-centre coordinates) -> data-array ones (NaN in the gaps)."""
        ch, cw = self._model.shape
        ix, iy = np.rint(x).astype(np.int64), np.rint(y).astype(np.int64)
        inside = (ix >= 0) & (ix < cw) & (iy >= 0) & (iy < ch)
        flat = np.where(inside, iy * cw + ix, 0)
        pix = np.where(inside, self._canvas_data[flat], -1)
        pan = np.where(inside, self._canvas_panel[flat], -1)
        nx = self.geometry.shape[1]
        out_x, out_y = np.full(x.shape, np.nan), np.full(y.shape, np.nan)
        for i in np.unique(pan[pan >= 0]):
            q = self.geometry.panels[i]
            sel = pan == i
            mat = np.array([[q.fs[0], q.ss[0]], [q.fs[1], q.ss[1]]])
            du, dv = np.linalg.solve(mat, np.stack([x[sel] - ix[sel], y[sel] - iy[sel]]))
            out_x[sel] = pix[sel] % nx + du
            out_y[sel] = pix[sel] // nx + dv
        return out_x, out_y

    # ------------------------------------------------------------------ background
    @cached_property
    def reflections(self) -> ReflectionSet:
        d_min = float(np.nanmin(self._model.maps.d)) * 0.98
        if self.params.crystal_d_min is not None:
            d_min = max(d_min, self.params.crystal_d_min)
        return ReflectionSet.build(self.params.unit_cell, d_min=d_min, seed=self.params.seed)

    @cached_property
    def _bg_components(self) -> dict[str, np.ndarray]:
        m = self._model.maps
        q = m.q
        det = self.detector
        level = (det.pixel_size / 75e-6) ** 2 * (0.12 / self._model.distance) ** 2
        scale = m.solid_angle * m.polarization() * level * self.params.background_scale
        water = 2.5 * np.exp(-0.5 * ((q - 20.0) / 3.5) ** 2)
        air = 0.6 * np.exp(-q / 8.0) + 0.05
        ice = np.zeros_like(q)
        for d, amp in zip(ICE_D_SPACINGS, (6.0, 4.0, 7.0, 3.0, 3.0, 2.0, 2.0), strict=True):
            ice += amp * np.exp(-0.5 * ((q - 20.0 * np.pi / d) / 0.08) ** 2)
        return {"water": water * scale, "air": air * scale, "ice": ice * scale}

    def expected_background(
        self, *, jet_on: bool, ice: bool, laser_on: bool, at: np.ndarray | None = None
    ) -> np.ndarray:
        """Expected photons per pixel (float64) for one kind of frame (or at flat indices)."""
        c = self._bg_components
        if at is not None:
            c = {key: v.reshape(-1)[at] for key, v in c.items()}
        w = c["water"] * ((1.0 + self.params.laser_effect) if laser_on else 1.0)
        bg = c["air"] + (w if jet_on else 0.03 * w)
        if ice:
            bg = bg + c["ice"]
        return bg

    def _expected_background_flat(self, key: tuple) -> np.ndarray:
        """:meth:`expected_background` of one kind of frame, flat, computed once."""
        cache = self.__dict__.setdefault("_expected_cache", {})
        if key not in cache:
            jet_on, ice, laser_on = key
            bg = self.expected_background(jet_on=jet_on, ice=ice, laser_on=laser_on)
            cache[key] = bg.reshape(-1)
        return cache[key]

    def _backgrounds(self, key: tuple) -> list[np.ndarray]:
        if key not in self._bg_cache and self._gather is not None:
            self._bg_cache[key] = self._integrating_backgrounds(key)
        if key not in self._bg_cache:
            jet_on, ice, laser_on = key
            det = self.detector
            expected = self.expected_background(jet_on=jet_on, ice=ice, laser_on=laser_on)
            rng = np.random.default_rng([self.params.seed, 2, *map(int, key)])
            out = []
            for k in range(self.n_backgrounds):
                img = rng.poisson(expected * self.pulse_scale(k))
                if not det.is_integer():
                    img = img + rng.normal(0, 0.08, img.shape)
                img = img.astype(det.dtype)
                flat = img.reshape(-1)
                flat[self.hot_pixels] = self._hot_values(flat, key, k)
                gaps = (self.pixel_mask & 1).astype(bool)
                img[gaps] = det.gap_value
                img[(self.pixel_mask & 2).astype(bool)] = det.bad_value
                img.setflags(write=False)
                out.append(img)
            self._bg_cache[key] = out
        return self._bg_cache[key]

    def _integrating_backgrounds(self, key: tuple) -> list[np.ndarray]:
        """Data-space backgrounds: canvas photons x gain + pedestal noise, float32 ADU."""
        jet_on, ice, laser_on = key
        det = self.detector
        expected = self.expected_background(jet_on=jet_on, ice=ice, laser_on=laser_on)
        expected = expected.reshape(-1)[self._gather].reshape(self.geometry.shape)
        rng = np.random.default_rng([self.params.seed, 2, *map(int, key)])
        gain = self.geometry.gain
        out = []
        for k in range(self.n_backgrounds):
            photons = rng.poisson(expected * self.pulse_scale(k))
            img = photons * gain + rng.normal(0.0, det.read_noise * gain, photons.shape)
            img = img.astype(np.float32)
            flat = img.reshape(-1)
            flat[self.hot_pixels] = self._hot_values(flat, key, k)
            img[(self.pixel_mask & 2).astype(bool)] = 0.0
            img.setflags(write=False)
            out.append(img)
        return out

    def _hot_values(self, flat: np.ndarray, key: tuple, k: int) -> np.ndarray:
        """Values of the hot pixels in background realisation ``k`` (in the image's units)."""
        det = self.detector
        if self.hot_pixel_rates is None:
            return np.asarray(det.saturation_value * 0.3, dtype=flat.dtype)
        rng = np.random.default_rng([self.params.seed, 9, *map(int, key), k])
        counts = rng.poisson(self.hot_pixel_rates)
        gain = 1.0 if self._gather is None else self.geometry.gain
        value = flat[self.hot_pixels].astype(np.float64) + counts * gain
        return np.minimum(value, det.saturation_value).astype(flat.dtype)

    def prepare(self) -> None:
        """Compute every background kind this run can show (jet, ice, laser) now."""
        p = self.params
        for jet in (True, False) if p.jet_loss else (True,):
            for ice in (False, True) if p.ice_fraction > 0 else (False,):
                for laser in (False, True) if p.laser_on_fraction > 0 else (False,):
                    self._backgrounds((jet, ice, laser))

    def pulse_scale(self, k: int) -> float:
        n = self.n_backgrounds
        return 1.0 if n == 1 else 0.85 + 0.3 * k / (n - 1)

    # ------------------------------------------------------------------ events
    def event(self, frame_number: int) -> tuple[FrameTruth, int, list[np.ndarray]]:
        """Decide what happens at one detector trigger (no pixels yet)."""
        p = self.params
        rng = np.random.default_rng([p.seed, 3, frame_number])
        dropped = bool(rng.random() < p.dropped_fraction)
        jet_on = not any(a <= frame_number < b for a, b in p.jet_loss)
        block_rng = np.random.default_rng([p.seed, 4, frame_number // 40])
        ice = bool(block_rng.random() < p.ice_fraction)
        laser_on = bool(rng.random() < p.laser_on_fraction)
        hit = jet_on and bool(rng.random() < p.hit_fraction)
        n_lat = (2 if rng.random() < p.multi_lattice_fraction else 1) if hit else 0
        k = int(rng.integers(self.n_backgrounds))
        pulse = 1.0 * self.pulse_scale(k) * (1.0 + 0.01 * rng.normal())
        rotations = [random_rotation(rng) for _ in range(n_lat)]
        truth = FrameTruth(
            frame_number, dropped, n_lat > 0, jet_on, ice, laser_on, n_lat, pulse, _empty_spots()
        )
        return truth, k, rotations

    def frame(
        self, frame_number: int, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, FrameTruth]:
        """The image written at ``frame_number`` (into ``out`` if given) and its ground truth."""
        img, truth, _ = self.frame_shared(frame_number)
        if out is not None:
            np.copyto(out, img)
            img = out
        elif not img.flags.writeable:
            img = img.copy()
        return img, truth

    def frame_shared(self, frame_number: int) -> tuple[np.ndarray, FrameTruth, tuple | None]:
        """Like :meth:`frame`, but a frame without spots is the shared read-only background.

        The third value is a key naming that background (None when spots were drawn), so
        writers can reuse its encoded bytes.
        """
        truth, k, rotations = self.event(frame_number)
        key = (truth.jet_on, truth.ice, truth.laser_on)
        bg = self._backgrounds(key)[k]
        truth.hot_pixels = self.hot_pixel_truth
        truth.zingers = artefacts.draw_zingers(
            self.params, frame_number, self._unmasked, self.geometry.shape[1]
        )
        if not rotations:
            if not len(truth.zingers["x"]):
                return bg, truth, (*key, k)
            img = bg.copy()
            self._add_zingers(img, truth.zingers)
            return img, truth, None
        if self._gather is None:
            img = bg.copy()
            truth.spots = self._draw_spots(img, frame_number, truth, rotations, k)
            self._add_zingers(img, truth.zingers)
            return img, truth, None
        # integrating: spot photons drawn on the canvas, moved to the data pixels, x gain
        canvas = np.zeros(self._model.shape, np.float64)
        spots = self._draw_spots(canvas, frame_number, truth, rotations, k)
        spots["x"], spots["y"] = self._to_data_coordinates(spots["x"], spots["y"])
        spots["masked"] |= ~np.isfinite(spots["x"])
        truth.spots = spots
        img = bg + (canvas.reshape(-1)[self._gather].reshape(bg.shape) * self.gain).astype(
            np.float32
        )
        np.minimum(img, np.float32(self.detector.saturation_value), out=img)
        img[(self.pixel_mask & 2).astype(bool)] = 0.0
        self._add_zingers(img, truth.zingers)
        return img, truth, None

    def _add_zingers(self, img: np.ndarray, zingers: dict) -> None:
        """Add the zingers' counts (in place; ADU on integrating detectors), clipped."""
        if not len(zingers["x"]):
            return
        flat = img.reshape(-1)
        at = (zingers["y"] * img.shape[1] + zingers["x"]).astype(np.int64)
        gain = 1.0 if self._gather is None else self.geometry.gain
        value = flat[at].astype(np.float64) + zingers["counts"] * gain
        flat[at] = np.minimum(value, self.detector.saturation_value).astype(img.dtype)

    # ------------------------------------------------------------------ spots
    def _draw_spots(self, img, frame_number, truth, rotations, k) -> dict:
        p, g = self.params, self._model
        rng = np.random.default_rng([p.seed, 5, frame_number])
        decay = np.exp(-p.dose_decay * frame_number)
        b_eff = p.b_factor + 40.0 * (1.0 - decay)
        parts = []
        for lat, U in enumerate(rotations):
            pred = predict_spots(
                self.reflections,
                U,
                wavelength=g.wavelength,
                distance=g.distance,
                pixel_size=g.pixel_size,
                beam_center=g.beam_center,
                shape=g.shape,
                mosaicity_deg=p.mosaicity,
                bandwidth=p.bandwidth,
            )
            strength = p.crystal_strength * decay * rng.lognormal(0.0, 0.4)
            wilson = np.exp(-0.5 * b_eff * (1.0 / pred.d**2 - 1.0 / 16.0))
            photons = strength * pred.intensity * pred.partiality * wilson * self.pulse_scale(k)
            keep = photons >= 2.0
            parts.append(
                dict(
                    x=pred.x[keep],
                    y=pred.y[keep],
                    h=pred.hkl[keep, 0],
                    k=pred.hkl[keep, 1],
                    l=pred.hkl[keep, 2],
                    d=pred.d[keep],
                    photons=photons[keep],
                    lattice=np.full(np.count_nonzero(keep), lat, np.int32),
                )
            )
        spots = {key: np.concatenate([pt[key] for pt in parts]) for key in parts[0]}
        ny, nx = g.shape
        ix = np.clip(np.rint(spots["x"]).astype(np.int64), 0, nx - 1)
        iy = np.clip(np.rint(spots["y"]).astype(np.int64), 0, ny - 1)
        centre = iy * nx + ix
        expected_bg = self.expected_background(
            jet_on=truth.jet_on, ice=truth.ice, laser_on=truth.laser_on, at=centre
        ) * self.pulse_scale(k)
        n = spots["photons"]
        read_var = self.detector.read_noise**2 if self._gather is not None else 0.0
        spots["masked"] = self._mask_flat[centre]
        if p.spot_sigma_range is None:
            spots["snr"] = n / np.sqrt(n + 9.0 * (expected_bg + read_var))
            self._render(img, spots, rng)
            sig = np.full(n.shape, p.spot_sigma)
            spots.update(sigma_r=sig, sigma_t=sig, signal=n, npix=np.full(n.shape, 9, np.int32))
            cov = footprint.covariances(spots["x"], spots["y"], sig, sig, (0.0, 0.0))
        else:
            cov = self._render_footprint(img, spots, truth, k, rng, read_var)
        spots["separation"] = footprint.separation(spots["x"], spots["y"], spots["signal"], cov)
        spots["blended"] = spots["separation"] < 1.0
        return spots

    def _render_footprint(self, img, spots, truth, k, rng, read_var) -> np.ndarray:
        """Footprint model: draw the spots' photons into ``img`` and fill their truth
        (``snr``, ``signal``, ``npix``, ``sigma_r``, ``sigma_t``); returns the covariances."""
        p, g = self.params, self._model
        n = len(spots["x"])
        beam_xy = (g.beam_center[0] - 0.5, g.beam_center[1] - 0.5)
        sigma_t = rng.uniform(*p.spot_sigma_range, size=n)
        streak = 0.0
        if p.streaks:
            streak = footprint.streak_sigma(
                spots["x"],
                spots["y"],
                beam_xy=beam_xy,
                distance=g.distance,
                pixel_size=g.pixel_size,
                bandwidth=p.bandwidth,
            )
        sigma_r = np.hypot(sigma_t, streak)
        cov = footprint.covariances(spots["x"], spots["y"], sigma_r, sigma_t, beam_xy)
        signal, background = np.zeros(n), np.zeros(n)
        npix = np.zeros(n, np.int32)
        pulse = self.pulse_scale(k)
        expected_bg = self._expected_background_flat((truth.jet_on, truth.ice, truth.laser_on))
        for idx, flat, lam, ok in footprint.footprints(
            spots["x"], spots["y"], spots["photons"], cov, g.shape
        ):
            fp = ok & ~self._mask_flat[flat]
            signal[idx] = np.where(fp, lam, 0.0).sum(axis=1)
            npix[idx] = fp.sum(axis=1)
            rows = np.broadcast_to(np.arange(len(idx))[:, None], fp.shape)[fp]
            b = expected_bg[flat[fp]]
            background[idx] = np.bincount(rows, weights=b * pulse, minlength=len(idx))
        hits = footprint.draw_photons(rng, spots["x"], spots["y"], spots["photons"], cov, g.shape)
        hits = hits[~self._mask_flat[hits]]
        per_pixel = np.bincount(hits, minlength=self._mask_flat.size)
        at = np.flatnonzero(per_pixel)
        self._accumulate(img, at, per_pixel[at])
        spots.update(
            snr=signal / np.sqrt(np.maximum(signal + background + npix * read_var, 1e-30)),
            signal=signal,
            npix=npix,
            sigma_r=sigma_r,
            sigma_t=sigma_t,
        )
        return cov

    def _render(self, img: np.ndarray, spots: dict, rng: np.random.Generator) -> None:
        """Add Poisson photons of Gaussian spots into ``img`` (in place), sparse 7 x 7 windows."""
        if spots["x"].size == 0:
            return
        ny, nx = img.shape
        sig = self.params.spot_sigma
        off = np.arange(-HALF, HALF + 1)
        x0 = np.rint(spots["x"]).astype(np.int64)
        y0 = np.rint(spots["y"]).astype(np.int64)
        px = x0[:, None] + off[None, :]
        py = y0[:, None] + off[None, :]
        wx = ndtr((px + 0.5 - spots["x"][:, None]) / sig) - ndtr(
            (px - 0.5 - spots["x"][:, None]) / sig
        )
        wy = ndtr((py + 0.5 - spots["y"][:, None]) / sig) - ndtr(
            (py - 0.5 - spots["y"][:, None]) / sig
        )
        lam = spots["photons"][:, None, None] * wy[:, :, None] * wx[:, None, :]
        counts = rng.poisson(lam)
        yy = np.broadcast_to(py[:, :, None], lam.shape)
        xx = np.broadcast_to(px[:, None, :], lam.shape)
        ok = (counts > 0) & (xx >= 0) & (xx < nx) & (yy >= 0) & (yy < ny)
        flat_idx = yy[ok] * nx + xx[ok]
        good = ~self._mask_flat[flat_idx]
        self._accumulate(img, flat_idx[good], counts[ok][good])

    def _accumulate(self, img: np.ndarray, flat_idx: np.ndarray, c: np.ndarray) -> None:
        """Add counts ``c`` at flat pixels ``flat_idx`` (repeats summed), clipped at saturation."""
        flat = img.reshape(-1)
        sat = self.detector.saturation_value if self._gather is None else np.inf
        uniq, inv = np.unique(flat_idx, return_inverse=True)
        sums = np.bincount(inv, weights=c.astype(np.float64))
        acc = flat[uniq].astype(np.float64) + sums
        flat[uniq] = np.minimum(acc, sat).astype(img.dtype)
