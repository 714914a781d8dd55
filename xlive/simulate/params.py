"""Parameters of a simulated run (frozen, keyword-only, one docstring line each).

Named presets (:data:`PRESETS`, :meth:`SimParams.preset`) fill in a set of fields at once; the
``"hard"`` preset switches on the harder features (per-spot widths 1.5-3.5 px, radial bandwidth
streaks, a large crowded cell, zingers and dim hot pixels outside the mask), see
:mod:`xlive.simulate.footprint` and :mod:`xlive.simulate.artefacts`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import ConfigError
from ..geometry.detectors import get_detector

#: file formats :func:`xlive.simulate.write_run` writes (here, not in ``run``: the CLI's
#: parser lists them without importing the simulator)
FORMATS = ("zarr", "eiger-h5", "cbf")


@dataclass(frozen=True, kw_only=True)
class SimParams:
    """What the simulated beamtime looks like."""

    #: detector model name (see ``xlive.geometry.detectors.DETECTORS``)
    detector: str = "eiger4m"
    #: random seed; the run is a pure function of the parameters
    seed: int = 0
    #: fraction of frames with a crystal in the beam
    hit_fraction: float = 0.3
    #: unit cell a, b, c (Å), alpha, beta, gamma (deg); default tetragonal lysozyme
    unit_cell: tuple[float, float, float, float, float, float] = (
        79.1,
        79.1,
        37.9,
        90.0,
        90.0,
        90.0,
    )
    #: X-ray wavelength, Å
    wavelength: float = 1.0
    #: detector distance, m (None: the detector model's default)
    distance: float | None = None
    #: beam centre offset from the array centre, pixels (x, y)
    beam_offset: tuple[float, float] = (7.3, -11.6)
    #: mosaic spread, degrees
    mosaicity: float = 0.15
    #: relative bandwidth of the beam (XFEL SASE ~ 0.002)
    bandwidth: float = 0.003
    #: Gaussian spot width, pixels
    spot_sigma: float = 0.7
    #: Wilson B factor, Å²
    b_factor: float = 12.0
    #: expected photons of an average reflection at d = 4 Å, fully recorded
    crystal_strength: float = 600.0
    #: fraction of hits with two lattices
    multi_lattice_fraction: float = 0.0
    #: fraction of frames showing ice rings (in blocks of frames, as ice forms and melts)
    ice_fraction: float = 0.0
    #: half-open frame ranges [start, stop) where the jet is lost
    jet_loss: tuple[tuple[int, int], ...] = ()
    #: per-frame relative decay of diffraction (sample dying); 0 = none
    dose_decay: float = 0.0
    #: fraction of frames with the pump laser on (pump-probe)
    laser_on_fraction: float = 0.0
    #: relative change of the water ring when the laser is on
    laser_effect: float = 0.03
    #: fraction of detector frames dropped before they were written
    dropped_fraction: float = 0.0
    #: scale of the solvent and air background
    background_scale: float = 1.0
    #: number of hot pixels (not in the detector mask)
    hot_pixels: int = 12
    #: noisy background realisations reused per background kind (None: as many as ~128 MB
    #: hold, 4 to 32; more means less repeated noise from frame to frame)
    n_backgrounds: int | None = None
    #: per-spot Gaussian widths drawn uniformly in [low, high] pixels; setting it switches on
    #: the footprint spot model (windows sized to the spot, truth SNR over the spot's
    #: footprint, see xlive.simulate.footprint); None: every spot spot_sigma in 7 x 7 windows
    spot_sigma_range: tuple[float, float] | None = None
    #: elongate spots radially by the beam's bandwidth (footprint spot model only)
    streaks: bool = False
    #: resolution limit of the crystals, Å (no reflections beyond; None: the detector corner)
    crystal_d_min: float | None = None
    #: mean number of zingers per frame (single bright pixels at random unmasked positions)
    zingers: float = 0.0
    #: counts of a zinger, drawn log-uniformly in [low, high]
    zinger_counts: tuple[float, float] = (30.0, 3000.0)
    #: mean counts per frame of the hot pixels, drawn log-uniformly in [low, high] per pixel
    #: (Poisson each frame); None: every hot pixel at 0.3 x the saturation value
    hot_pixel_counts: tuple[float, float] | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        get_detector(self.detector)
        for name in (
            "hit_fraction",
            "multi_lattice_fraction",
            "ice_fraction",
            "laser_on_fraction",
            "dropped_fraction",
        ):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name.replace('_', '-')} must be between 0 and 1, got {v}")
        if self.wavelength <= 0:
            raise ConfigError(f"wavelength must be > 0 angstrom, got {self.wavelength}")
        if self.distance is not None and self.distance <= 0:
            raise ConfigError(f"distance must be > 0 m, got {self.distance}")
        if len(self.unit_cell) != 6:
            raise ConfigError("unit cell needs six numbers: a b c alpha beta gamma")
        if self.n_backgrounds is not None and self.n_backgrounds < 1:
            raise ConfigError("n-backgrounds must be >= 1")
        for name, low in (
            ("spot_sigma_range", 0.3),
            ("zinger_counts", 1.0),
            ("hot_pixel_counts", 1.0),
        ):
            v = getattr(self, name)
            if v is not None and (len(v) != 2 or not low <= v[0] <= v[1]):
                raise ConfigError(
                    f"{name.replace('_', '-')} needs two numbers low <= high with low >= {low}, "
                    f"got {v}"
                )
        if self.streaks and self.spot_sigma_range is None:
            raise ConfigError(
                "streaks need the footprint spot model: give spot-sigma-range too "
                "(or use the 'hard' preset)"
            )
        if self.zingers < 0:
            raise ConfigError(f"zingers must be >= 0 per frame, got {self.zingers}")
        if self.crystal_d_min is not None and self.crystal_d_min <= 0:
            raise ConfigError(f"crystal-d-min must be > 0 angstrom, got {self.crystal_d_min}")

    @classmethod
    def preset(cls, name: str, **overrides) -> SimParams:
        """Parameters of a named preset (:data:`PRESETS`), with ``overrides`` on top.

        Examples
        --------
        >>> p = SimParams.preset("hard", detector="eiger500k", seed=2)
        >>> p.spot_sigma_range, p.streaks, p.unit_cell[0] >= 250
        ((1.5, 3.5), True, True)
        """
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, d: dict) -> SimParams:
        d = dict(d)
        d["unit_cell"] = tuple(d["unit_cell"])
        d["jet_loss"] = tuple(tuple(r) for r in d.get("jet_loss", ()))
        d["beam_offset"] = tuple(d.get("beam_offset", (0.0, 0.0)))
        for name in ("spot_sigma_range", "zinger_counts", "hot_pixel_counts"):
            if d.get(name) is not None:
                d[name] = tuple(d[name])
        return cls(**d)

    def to_dict(self) -> dict:
        d = asdict(self)
        for name, v in d.items():
            if isinstance(v, tuple):
                d[name] = [list(r) if isinstance(r, tuple) else r for r in v]
        return d


#: named sets of fields; "default" is the plain dataclass defaults
PRESETS: dict[str, dict] = {
    "default": {},
    # broad weak spots, crowded large cell, bandwidth streaks, zingers and hot pixels: what a
    # spot finder must survive (issue 16); about 0.5 photons/pixel of background
    "hard": dict(
        hit_fraction=0.5,
        unit_cell=(252.0, 263.0, 281.0, 90.0, 90.0, 90.0),
        distance=0.14,
        crystal_d_min=3.5,
        mosaicity=0.03,
        bandwidth=0.004,
        spot_sigma_range=(1.5, 3.5),
        streaks=True,
        b_factor=30.0,
        crystal_strength=250.0,
        background_scale=2.1,
        multi_lattice_fraction=0.3,
        hot_pixels=30,
        hot_pixel_counts=(5.0, 500.0),
        zingers=3.0,
    ),
}
