"""Parameters of a simulated run (frozen, keyword-only, one docstring line each)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import ConfigError
from ..geometry.detectors import get_detector


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

    def to_dict(self) -> dict:
        d = asdict(self)
        d["unit_cell"] = list(self.unit_cell)
        d["jet_loss"] = [list(r) for r in self.jet_loss]
        d["beam_offset"] = list(self.beam_offset)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SimParams:
        d = dict(d)
        d["unit_cell"] = tuple(d["unit_cell"])
        d["jet_loss"] = tuple(tuple(r) for r in d.get("jet_loss", ()))
        d["beam_offset"] = tuple(d.get("beam_offset", (0.0, 0.0)))
        return cls(**d)
