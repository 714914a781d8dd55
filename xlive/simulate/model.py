"""The frame model: background (water ring, air, ice) with Poisson noise plus Bragg spots.

Noisy backgrounds are precomputed a few times per kind (jet on/off, ice, laser) and reused;
spots are drawn sparsely into 7 x 7 windows. Every frame is a pure function of
``(params, frame_number)``, so a run is reproducible for a seed whatever the batching.

Ground truth per spot: position (array-index coordinates), hkl, d, expected photons and an
*integrated SNR* ``N / sqrt(N + 9 b)`` (N expected spot photons, b expected background per pixel
at the spot: the noise of a 3 x 3 box sum).
Truth ``d_min`` of a frame: ``1 / quantile(1/d, 0.95)`` over spots with SNR >= 5 on unmasked
pixels (NaN with fewer than 5 such spots): the resolution that 5 % of the detectable spots exceed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.special import ndtr

from ..conventions import ICE_D_SPACINGS
from ..geometry.core import Geometry
from ..geometry.detectors import DetectorModel, get_detector
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
    spots: dict  # arrays: x, y, h, k, l, d, photons, snr, lattice, masked

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
    return dict(x=f, y=f, h=i, k=i, l=i, d=f, photons=f, snr=f, lattice=i,
                masked=np.zeros(0, bool))


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
        self.detector: DetectorModel = get_detector(p.detector)
        det = self.detector
        ny, nx = det.shape
        rng = np.random.default_rng([p.seed, 1])
        gaps = det.gap_mask()
        bad = (rng.random((ny, nx)) < det.bad_fraction) & ~gaps
        #: NXmx pixel_mask: bit 0 gap, bit 1 dead
        self.pixel_mask = (gaps.astype(np.uint32) | (bad.astype(np.uint32) << 1))
        flat = np.flatnonzero(~(gaps | bad))
        self.hot_pixels = rng.choice(flat, size=p.hot_pixels, replace=False)
        distance = p.distance if p.distance is not None else det.distance
        self.geometry = Geometry.simple(
            shape=(ny, nx), pixel_size=det.pixel_size, distance=distance,
            beam_center_x=nx / 2 + p.beam_offset[0], beam_center_y=ny / 2 + p.beam_offset[1],
            wavelength=p.wavelength, mask=self.pixel_mask != 0,
            saturation_value=det.saturation_value, description=det.description,
        )
        self._mask_flat = self.geometry.mask.ravel()
        frame_bytes = ny * nx * np.dtype(det.dtype).itemsize
        self.n_backgrounds = p.n_backgrounds or int(np.clip(128e6 // frame_bytes, 4, 32))
        self._bg_cache: dict[tuple, list[np.ndarray]] = {}

    # ------------------------------------------------------------------ background
    @cached_property
    def reflections(self) -> ReflectionSet:
        d_corner = float(np.nanmin(self.geometry.maps.d))
        return ReflectionSet.build(self.params.unit_cell, d_min=d_corner * 0.98, seed=self.params.seed)

    @cached_property
    def _bg_components(self) -> dict[str, np.ndarray]:
        m = self.geometry.maps
        q = m.q
        det = self.detector
        level = (det.pixel_size / 75e-6) ** 2 * (0.12 / self.geometry.distance) ** 2
        scale = (m.solid_angle * m.polarization() * level * self.params.background_scale)
        water = 2.5 * np.exp(-0.5 * ((q - 20.0) / 3.5) ** 2)
        air = 0.6 * np.exp(-q / 8.0) + 0.05
        ice = np.zeros_like(q)
        for d, amp in zip(ICE_D_SPACINGS, (6.0, 4.0, 7.0, 3.0, 3.0, 2.0, 2.0), strict=True):
            ice += amp * np.exp(-0.5 * ((q - 20.0 * np.pi / d) / 0.08) ** 2)
        return {"water": water * scale, "air": air * scale, "ice": ice * scale}

    def expected_background(self, *, jet_on: bool, ice: bool, laser_on: bool,
                            at: np.ndarray | None = None) -> np.ndarray:
        """Expected photons per pixel (float64) for one kind of frame (or at flat indices)."""
        c = self._bg_components
        if at is not None:
            c = {key: v.reshape(-1)[at] for key, v in c.items()}
        w = c["water"] * ((1.0 + self.params.laser_effect) if laser_on else 1.0)
        bg = c["air"] + (w if jet_on else 0.03 * w)
        if ice:
            bg = bg + c["ice"]
        return bg

    def _backgrounds(self, key: tuple) -> list[np.ndarray]:
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
                flat[self.hot_pixels] = np.asarray(det.saturation_value * 0.3, dtype=det.dtype)
                gaps = (self.pixel_mask & 1).astype(bool)
                img[gaps] = det.gap_value
                img[(self.pixel_mask & 2).astype(bool)] = det.bad_value
                img.setflags(write=False)
                out.append(img)
            self._bg_cache[key] = out
        return self._bg_cache[key]

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
        truth = FrameTruth(frame_number, dropped, n_lat > 0, jet_on, ice, laser_on, n_lat,
                           pulse, _empty_spots())
        return truth, k, rotations

    def frame(self, frame_number: int, out: np.ndarray | None = None) -> tuple[np.ndarray, FrameTruth]:
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
        if not rotations:
            return bg, truth, (*key, k)
        img = bg.copy()
        truth.spots = self._draw_spots(img, frame_number, truth, rotations, k)
        return img, truth, None

    # ------------------------------------------------------------------ spots
    def _draw_spots(self, img, frame_number, truth, rotations, k) -> dict:
        p, g = self.params, self.geometry
        rng = np.random.default_rng([p.seed, 5, frame_number])
        decay = np.exp(-p.dose_decay * frame_number)
        b_eff = p.b_factor + 40.0 * (1.0 - decay)
        parts = []
        for lat, U in enumerate(rotations):
            pred = predict_spots(
                self.reflections, U, wavelength=g.wavelength, distance=g.distance,
                pixel_size=g.pixel_size, beam_center=g.beam_center, shape=g.shape,
                mosaicity_deg=p.mosaicity, bandwidth=p.bandwidth,
            )
            strength = p.crystal_strength * decay * rng.lognormal(0.0, 0.4)
            wilson = np.exp(-0.5 * b_eff * (1.0 / pred.d**2 - 1.0 / 16.0))
            photons = strength * pred.intensity * pred.partiality * wilson * self.pulse_scale(k)
            keep = photons >= 2.0
            parts.append(dict(
                x=pred.x[keep], y=pred.y[keep], h=pred.hkl[keep, 0], k=pred.hkl[keep, 1],
                l=pred.hkl[keep, 2], d=pred.d[keep], photons=photons[keep],
                lattice=np.full(np.count_nonzero(keep), lat, np.int32),
            ))
        spots = {key: np.concatenate([pt[key] for pt in parts]) for key in parts[0]}
        ny, nx = g.shape
        ix = np.clip(np.rint(spots["x"]).astype(np.int64), 0, nx - 1)
        iy = np.clip(np.rint(spots["y"]).astype(np.int64), 0, ny - 1)
        centre = iy * nx + ix
        expected_bg = self.expected_background(
            jet_on=truth.jet_on, ice=truth.ice, laser_on=truth.laser_on, at=centre
        ) * self.pulse_scale(k)
        n = spots["photons"]
        spots["snr"] = n / np.sqrt(n + 9.0 * expected_bg)
        spots["masked"] = self._mask_flat[centre]
        self._render(img, spots, rng)
        return spots

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
        wx = ndtr((px + 0.5 - spots["x"][:, None]) / sig) - ndtr((px - 0.5 - spots["x"][:, None]) / sig)
        wy = ndtr((py + 0.5 - spots["y"][:, None]) / sig) - ndtr((py - 0.5 - spots["y"][:, None]) / sig)
        lam = spots["photons"][:, None, None] * wy[:, :, None] * wx[:, None, :]
        counts = rng.poisson(lam)
        yy = np.broadcast_to(py[:, :, None], lam.shape)
        xx = np.broadcast_to(px[:, None, :], lam.shape)
        ok = (counts > 0) & (xx >= 0) & (xx < nx) & (yy >= 0) & (yy < ny)
        flat_idx = (yy[ok] * nx + xx[ok])
        good = ~self._mask_flat[flat_idx]
        flat_idx, c = flat_idx[good], counts[ok][good]
        flat = img.reshape(-1)
        sat = self.detector.saturation_value
        uniq, inv = np.unique(flat_idx, return_inverse=True)
        sums = np.bincount(inv, weights=c.astype(np.float64))
        acc = flat[uniq].astype(np.float64) + sums
        flat[uniq] = np.minimum(acc, sat).astype(img.dtype)
