"""Detector geometry and the per-pixel maps every analyzer shares.

A detector is a set of flat panels placed in the lab frame, as CrystFEL describes them: each
panel covers an inclusive rectangle ``[min_ss..max_ss, min_fs..max_fs]`` of the raw data array,
and its ``fs``/``ss`` vectors (in pixel units) and ``corner_x/y`` (pixels, the very corner of the
panel) place it in the lab frame (+z along the beam). A single flat detector perpendicular to the
beam is one panel with ``fs = +x``, ``ss = +y`` and its corner at ``-beam_center``.

Beam-centre convention: see :mod:`xlive.conventions` (pyFAI/DIALS, centre of pixel j at j + 0.5).

Maps are computed once per geometry (``Geometry.maps``) and reused for every frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from ..conventions import HC_EV_ANGSTROM
from ..errors import GeometryError


@dataclass(frozen=True)
class Panel:
    """One flat panel of a detector, in CrystFEL's terms."""

    name: str
    min_fs: int
    max_fs: int
    min_ss: int
    max_ss: int
    fs: tuple[float, float, float] = (1.0, 0.0, 0.0)
    ss: tuple[float, float, float] = (0.0, 1.0, 0.0)
    corner_x: float = 0.0
    corner_y: float = 0.0
    #: extra distance along z for this panel, metres
    coffset: float = 0.0
    #: metres per pixel
    pixel_size: float = 75e-6
    #: gain in ADU per photon (CrystFEL ``adu_per_photon``); None: from ``adu_per_ev`` or 1
    adu_per_photon: float | None = None
    #: gain in ADU per eV of photon energy (CrystFEL ``adu_per_eV``)
    adu_per_ev: float | None = None

    def gain(self, photon_energy: float) -> float:
        """ADU per photon at ``photon_energy`` (eV): ``adu_per_photon``, else ``adu_per_ev *
        photon_energy``, else 1 (photon-counting detectors and data already in photons)."""
        if self.adu_per_photon is not None:
            return float(self.adu_per_photon)
        if self.adu_per_ev is not None:
            return float(self.adu_per_ev) * float(photon_energy)
        return 1.0

    @property
    def shape(self) -> tuple[int, int]:
        return (self.max_ss - self.min_ss + 1, self.max_fs - self.min_fs + 1)

    def lab(self, u, v, distance: float) -> tuple:
        """Lab ``(x, y, z)`` in metres of points ``u`` pixels along the fast scan and ``v``
        along the slow scan from the panel's corner (arrays broadcast; pixel centres at +0.5)."""
        px = self.pixel_size
        x = (self.corner_x + self.fs[0] * u + self.ss[0] * v) * px
        y = (self.corner_y + self.fs[1] * u + self.ss[1] * v) * px
        z = (self.fs[2] * u + self.ss[2] * v) * px + distance + self.coffset
        return x, y, z


@dataclass(frozen=True, eq=False)
class Geometry:
    """Immutable detector description; ``maps`` gives per-pixel arrays in the raw data's shape.

    Parameters are keyword-only. ``mask`` is a boolean array in the data's shape, True where a
    pixel must be ignored (gaps, dead, hot, user-masked).

    Detector response: each panel's gain (:meth:`Panel.gain`) turns ADU into photons, so the
    analyzers' thresholds are in photons for every detector; ``sentinels`` are the values the
    *format* declares for gaps and bad pixels (PILATUS -1/-2, EIGER 2**n-1), never guessed from
    the data (:meth:`valid_range`); ``read_noise`` (photons rms) completes the noise model
    ``variance = read_noise**2 + photons`` of integrating detectors (0 for photon counters).
    ``placeholder`` is set when the geometry is known not to be the real one (e.g. a curved or
    multi-module detector written into its file header as one flat panel): it says why.
    """

    shape: tuple[int, int]
    #: sample-to-detector distance, metres
    distance: float
    #: X-ray wavelength, angstrom
    wavelength: float
    panels: tuple[Panel, ...]
    mask: np.ndarray | None = field(default=None, repr=False)
    #: counts at or above this are saturated (None: unknown)
    saturation_value: float | None = None
    #: free-form description (detector name, origin of the geometry)
    description: str = ""
    #: gap/bad-pixel values declared by the format (None: the dtype's rule, see valid_range)
    sentinels: tuple[float, ...] | None = None
    #: read noise of an integrating detector, photons rms
    read_noise: float = 0.0
    #: why this geometry is only a placeholder for the real one ("" when it is real)
    placeholder: str = ""

    def __post_init__(self):
        if self.sentinels is not None:
            object.__setattr__(self, "sentinels", tuple(float(v) for v in self.sentinels))
        # CrystFEL's camera length may be negative (an encoder position) when the panels'
        # coffset brings them in front of the sample: what must be positive is each panel's z
        nearest = self.distance + min((p.coffset for p in self.panels), default=0.0)
        if not nearest > 0:
            raise GeometryError(
                f"detector distance must be > 0 m, got {self.distance!r}"
                + (f" (+ panel coffset: {nearest!r} m)" if nearest != self.distance else "")
            )
        if not self.wavelength or self.wavelength <= 0:
            raise GeometryError(
                f"wavelength must be > 0 angstrom, got {self.wavelength!r}; "
                "give it with wavelength=... or photon_energy in the run configuration"
            )
        if not self.panels:
            raise GeometryError("a geometry needs at least one panel")
        ny, nx = self.shape
        for p in self.panels:
            if p.min_fs < 0 or p.min_ss < 0 or p.max_fs >= nx or p.max_ss >= ny:
                raise GeometryError(
                    f"panel {p.name!r} covers fs {p.min_fs}..{p.max_fs}, ss {p.min_ss}..{p.max_ss} "
                    f"but the data array is {ny} x {nx} (ss x fs)"
                )
        if self.mask is not None:
            m = np.asarray(self.mask, dtype=bool)
            if m.shape != tuple(self.shape):
                raise GeometryError(f"mask shape {m.shape} differs from data shape {self.shape}")
            m.setflags(write=False)
            object.__setattr__(self, "mask", m)

    # ----------------------------------------------------------------- constructors
    @classmethod
    def simple(
        cls,
        *,
        shape: tuple[int, int],
        pixel_size: float,
        distance: float,
        beam_center_x: float,
        beam_center_y: float,
        wavelength: float,
        mask: np.ndarray | None = None,
        saturation_value: float | None = None,
        description: str = "",
        adu_per_photon: float | None = None,
        adu_per_ev: float | None = None,
        sentinels: tuple[float, ...] | None = None,
        read_noise: float = 0.0,
        placeholder: str = "",
    ) -> Geometry:
        """A single flat detector perpendicular to the beam (beam centre in pixels, pyFAI rule)."""
        ny, nx = shape
        panel = Panel(
            name="p0",
            min_fs=0,
            max_fs=nx - 1,
            min_ss=0,
            max_ss=ny - 1,
            corner_x=-float(beam_center_x),
            corner_y=-float(beam_center_y),
            pixel_size=float(pixel_size),
            adu_per_photon=adu_per_photon,
            adu_per_ev=adu_per_ev,
        )
        return cls(
            shape=(int(ny), int(nx)),
            distance=float(distance),
            wavelength=float(wavelength),
            panels=(panel,),
            mask=mask,
            saturation_value=saturation_value,
            description=description,
            sentinels=sentinels,
            read_noise=read_noise,
            placeholder=placeholder,
        )

    # ----------------------------------------------------------------- derived values
    @property
    def photon_energy(self) -> float:
        """Photon energy in eV."""
        return HC_EV_ANGSTROM / self.wavelength

    @property
    def gain(self) -> float | None:
        """ADU per photon shared by every panel (None when panels differ: see gain_map)."""
        gains = {p.gain(self.photon_energy) for p in self.panels}
        return gains.pop() if len(gains) == 1 else None

    def gain_map(self) -> np.ndarray:
        """Per-pixel ADU per photon (float32, 1 outside every panel)."""
        out = np.ones(self.shape, np.float32)
        for p in self.panels:
            out[p.min_ss : p.max_ss + 1, p.min_fs : p.max_fs + 1] = p.gain(self.photon_energy)
        return out

    def valid_range(self, dtype) -> tuple[float, float]:
        """Pixel values that are measurements, ``[lo, hi]``, for frames of ``dtype``.

        Declared ``sentinels`` decide: a negative one invalidates it and everything below (a
        photon counter never counts below zero: PILATUS -1 gaps, -2 bad pixels), a positive one
        invalidates it and everything above (EIGER's 2**n-1 is above the counter's range).
        Without a declaration (``sentinels=None``) unsigned data keep the EIGER rule (the
        dtype's maximum marks gaps) and signed or float data are all measurements (negative
        values of pedestal-subtracted integrating detectors are real). NaN is never valid.
        """
        dt = np.dtype(dtype)
        sentinels = self.sentinels
        if sentinels is None:
            sentinels = (float(np.iinfo(dt).max),) if dt.kind == "u" else ()
        lo, hi = -math.inf, math.inf
        if dt.kind in "ub":
            lo = 0.0
        for v in sentinels:
            if v < 0:
                lo = max(lo, v + 1.0)
            elif v > 0:
                hi = min(hi, v - 1.0)
        if dt.kind == "b":
            hi = min(hi, 1.0)
        return lo, hi

    @property
    def pixel_size(self) -> float:
        """Pixel size of the first panel, metres."""
        return self.panels[0].pixel_size

    @property
    def beam_center(self) -> tuple[float, float]:
        """(x, y) beam centre in pixels of a single-panel detector (pyFAI rule)."""
        if len(self.panels) != 1:
            raise GeometryError("beam_center is defined for single-panel detectors only")
        p = self.panels[0]
        return (-p.corner_x, -p.corner_y)

    def replace(self, **changes) -> Geometry:
        """A copy with some fields changed (e.g. ``geometry.replace(distance=0.2)``)."""
        return replace(self, **changes)

    def with_mask(self, extra: np.ndarray | None) -> Geometry:
        """A copy whose mask also excludes ``extra`` (True = masked)."""
        if extra is None:
            return self
        extra = np.asarray(extra, dtype=bool)
        base = self.mask if self.mask is not None else np.zeros(self.shape, bool)
        return replace(self, mask=base | extra)

    def lab_positions(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Lab coordinates (m), shape ``(n, 3)``, of fractional pixel positions.

        ``x`` runs along the fast scan, ``y`` along the slow scan, integers are pixel centres
        (as in ``maps``, of which this is the exact linear interpolation within a panel). A
        point belongs to the panel holding its nearest pixel; NaN where no panel does. Cheap
        for a few hundred spots, and needs no per-pixel maps (workers need not compute them).
        """
        x = np.asarray(x, float)
        y = np.asarray(y, float)
        out = np.full((x.size, 3), np.nan)
        col, row = np.rint(x), np.rint(y)
        for p in self.panels:
            inside = (
                (col >= p.min_fs)
                & (col <= p.max_fs)
                & (row >= p.min_ss)
                & (row <= p.max_ss)
                & np.isnan(out[:, 0])
            )
            if not inside.any():
                continue
            out[inside] = np.stack(
                p.lab(x[inside] - p.min_fs + 0.5, y[inside] - p.min_ss + 0.5, self.distance), axis=1
            )
        return out

    @cached_property
    def maps(self) -> GeometryMaps:
        """Per-pixel maps, computed once (per process: they are not pickled); those of large
        detectors are cached on disk between processes (:mod:`xlive.geometry.cache`)."""
        from .cache import cached_maps

        return cached_maps(self, GeometryMaps)

    def __getstate__(self) -> dict:
        # the maps are hundreds of MB for a 4M detector: workers recompute them if they need to
        return {k: v for k, v in self.__dict__.items() if k != "maps"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        """JSON-friendly description without the mask (store the mask as an array)."""
        return {
            "shape": list(self.shape),
            "distance": self.distance,
            "wavelength": self.wavelength,
            "saturation_value": self.saturation_value,
            "description": self.description,
            "sentinels": None if self.sentinels is None else list(self.sentinels),
            "read_noise": self.read_noise,
            "placeholder": self.placeholder,
            "panels": [
                {k: (list(v) if isinstance(v, tuple) else v) for k, v in p.__dict__.items()}
                for p in self.panels
            ],
        }

    @classmethod
    def from_dict(cls, d: dict, mask: np.ndarray | None = None) -> Geometry:
        panels = tuple(
            Panel(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in p.items()})
            for p in d["panels"]
        )
        return cls(
            shape=tuple(d["shape"]),
            distance=d["distance"],
            wavelength=d["wavelength"],
            panels=panels,
            mask=mask,
            saturation_value=d.get("saturation_value"),
            description=d.get("description", ""),
            sentinels=d.get("sentinels"),
            read_noise=d.get("read_noise", 0.0),
            placeholder=d.get("placeholder", ""),
        )


@dataclass(frozen=True, eq=False)
class GeometryMaps:
    """Per-pixel maps in the raw data's shape (float64 unless said otherwise).

    ``lab_x/lab_y/lab_z`` metres; ``radius`` metres from the beam axis in the detector plane;
    ``two_theta``, ``azimuth`` radians; ``q`` 1/nm; ``d`` angstrom (inf at the beam);
    ``solid_angle`` relative to a pixel at the beam (cos^3 law, tilt included);
    ``panel`` int16 index (-1 outside every panel); ``mask`` bool, True = ignore.
    """

    lab_x: np.ndarray
    lab_y: np.ndarray
    lab_z: np.ndarray
    radius: np.ndarray
    two_theta: np.ndarray
    azimuth: np.ndarray
    q: np.ndarray
    d: np.ndarray
    solid_angle: np.ndarray
    panel: np.ndarray
    mask: np.ndarray

    @classmethod
    def compute(cls, geom: Geometry) -> GeometryMaps:
        ny, nx = geom.shape
        lab = np.full((3, ny, nx), np.nan)
        panel_id = np.full((ny, nx), -1, np.int16)
        normal_cos = np.ones((ny, nx))
        for i, p in enumerate(geom.panels):
            ss_idx = np.arange(p.min_ss, p.max_ss + 1) - p.min_ss + 0.5
            fs_idx = np.arange(p.min_fs, p.max_fs + 1) - p.min_fs + 0.5
            fs = np.asarray(p.fs, float)
            ss = np.asarray(p.ss, float)
            pos = np.stack(
                np.broadcast_arrays(*p.lab(fs_idx[None, :], ss_idx[:, None], geom.distance))
            )
            sl = (slice(p.min_ss, p.max_ss + 1), slice(p.min_fs, p.max_fs + 1))
            lab[(slice(None),) + sl] = pos
            panel_id[sl] = i
            n = np.cross(fs, ss)
            n_norm = np.linalg.norm(n)
            r = np.linalg.norm(pos, axis=0)
            # cosine between the pixel's line of sight and the panel normal
            normal_cos[sl] = np.abs(np.tensordot(n / n_norm, pos, axes=1)) / r
        x, y, z = lab
        radius = np.hypot(x, y)
        two_theta = np.arctan2(radius, z)
        azimuth = np.arctan2(y, x)
        q = 4.0 * np.pi * np.sin(two_theta / 2.0) / (geom.wavelength / 10.0)
        with np.errstate(divide="ignore"):
            d = np.where(q > 0, 2.0 * np.pi / q * 10.0, np.inf)
        dist = np.sqrt(x * x + y * y + z * z)
        solid_angle = normal_cos * (geom.distance / dist) ** 2
        mask = panel_id < 0
        if geom.mask is not None:
            mask = mask | geom.mask
        maps = cls(
            lab_x=x,
            lab_y=y,
            lab_z=z,
            radius=radius,
            two_theta=two_theta,
            azimuth=azimuth,
            q=q,
            d=d,
            solid_angle=solid_angle,
            panel=panel_id,
            mask=mask,
        )
        for a in maps.__dict__.values():
            a.setflags(write=False)
        return maps

    def polarization(self, factor: float = 0.99) -> np.ndarray:
        """Polarisation correction map (pyFAI's formula, horizontal polarisation ``factor``)."""
        cos2t = np.cos(self.two_theta)
        sin2t2 = np.sin(self.two_theta) ** 2
        cos2a = np.cos(2 * self.azimuth)
        return 0.5 * (1 + cos2t**2 - factor * cos2a * sin2t2)
