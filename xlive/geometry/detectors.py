"""Detector models: array shape, pixel size, module layout and the values real detectors write.

Used by the simulator and by sources that need a default layout. Values from the vendors' data
sheets (module sizes and gaps); small models exist for fast tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class DetectorModel:
    """A pixel-array detector built from identical modules in a regular grid."""

    name: str
    description: str
    module_shape: tuple[int, int]  # (ny, nx) pixels
    modules: tuple[int, int]  # (rows, columns)
    gap: tuple[int, int]  # (gap between module rows, gap between module columns) in pixels
    pixel_size: float  # metres
    dtype: str
    #: value written into module gaps and into masked (dead) pixels
    gap_value: int | float
    bad_value: int | float
    saturation_value: float
    #: typical distance (m) for simulated runs
    distance: float
    sensor: str = "Si"
    sensor_thickness: float = 450e-6
    #: default fraction of bad (dead) pixels known to the detector mask
    bad_fraction: float = 2e-4

    @property
    def shape(self) -> tuple[int, int]:
        (my, mx), (ry, rx), (gy, gx) = self.module_shape, self.modules, self.gap
        return (ry * my + (ry - 1) * gy, rx * mx + (rx - 1) * gx)

    def gap_mask(self) -> np.ndarray:
        """True in module gaps."""
        ny, nx = self.shape
        gaps = np.ones((ny, nx), bool)
        (my, mx), (ry, rx), (gy, gx) = self.module_shape, self.modules, self.gap
        for r in range(ry):
            for c in range(rx):
                y0, x0 = r * (my + gy), c * (mx + gx)
                gaps[y0 : y0 + my, x0 : x0 + mx] = False
        return gaps

    @property
    def sentinels(self) -> tuple[float, ...]:
        """The gap/bad-pixel values this detector's format declares (none for float data)."""
        if not self.is_integer():
            return ()
        return tuple(sorted({float(self.gap_value), float(self.bad_value)}))

    def is_integer(self) -> bool:
        return np.dtype(self.dtype).kind in "iu"


_EIGER = dict(
    module_shape=(512, 1028),
    gap=(38, 12),
    pixel_size=75e-6,
    dtype="uint32",
    gap_value=2**32 - 1,
    bad_value=2**32 - 1,
    saturation_value=65535.0,
    distance=0.12,
)
_PILATUS = dict(
    module_shape=(195, 487),
    gap=(17, 7),
    pixel_size=172e-6,
    dtype="int32",
    gap_value=-1,
    bad_value=-2,
    saturation_value=1048500.0,
    distance=0.25,
)

DETECTORS: dict[str, DetectorModel] = {
    "eiger4m": DetectorModel("eiger4m", "Dectris EIGER2 X 4M", modules=(4, 2), **_EIGER),
    "eiger16m": DetectorModel("eiger16m", "Dectris EIGER2 X 16M", modules=(8, 4), **_EIGER),
    "pilatus6m": DetectorModel("pilatus6m", "Dectris PILATUS3 6M", modules=(12, 5), **_PILATUS),
    "jungfrau4m-photons": DetectorModel(
        "jungfrau4m-photons",
        "PSI JUNGFRAU 4M (assembled, photon units)",
        module_shape=(514, 1030),
        modules=(4, 2),
        gap=(36, 8),
        pixel_size=75e-6,
        dtype="float32",
        gap_value=0.0,
        bad_value=0.0,
        saturation_value=12000.0,
        distance=0.12,
        sensor_thickness=320e-6,
    ),
    # small models for tests and quick demos
    "eiger500k": DetectorModel(
        "eiger500k", "Dectris EIGER2 X 500K", modules=(1, 1), **{**_EIGER, "distance": 0.06}
    ),
    "eiger1m": DetectorModel(
        "eiger1m", "Dectris EIGER2 X 1M", modules=(2, 1), **{**_EIGER, "distance": 0.07}
    ),
    "pilatus300k": DetectorModel(
        "pilatus300k", "Dectris PILATUS3 300K", modules=(3, 1), **{**_PILATUS, "distance": 0.12}
    ),
}


@dataclass(frozen=True)
class IntegratingModel:
    """A multi-module integrating detector (JUNGFRAU, AGIPD): data in ADU or keV, float32.

    The data array stacks the modules along the slow scan, as the facilities' files do
    (``(modules * module_ss, module_fs)``); each ASIC is a CrystFEL panel placed in the lab
    frame with the gaps between ASICs and modules (:meth:`panels`). The detector response is
    ``adu_per_ev`` (ADU per eV of photon energy: 1e-3 gives keV) and a read noise in photons.
    """

    name: str
    description: str
    family: str  # "jungfrau" | "agipd"
    n_modules: int
    pixel_size: float
    distance: float
    adu_per_ev: float
    #: read noise (pedestal noise after correction), photons rms
    read_noise: float
    #: ADU at which the pixel saturates (None: never in a simulation)
    saturation_value: float
    units: str = "ADU"
    dtype: str = "float32"
    sensor: str = "Si"
    sensor_thickness: float = 320e-6
    bad_fraction: float = 2e-4

    # module layouts: (ss, fs) pixels per module, ASIC grid (rows, columns), gap between ASICs
    @property
    def module_shape(self) -> tuple[int, int]:
        return (512, 1024) if self.family == "jungfrau" else (512, 128)

    @property
    def shape(self) -> tuple[int, int]:
        ms, mf = self.module_shape
        return (self.n_modules * ms, mf)

    def is_integer(self) -> bool:
        return False

    @property
    def sentinels(self) -> tuple[float, ...]:
        return ()

    def panels(self) -> tuple:
        """CrystFEL panels (one per ASIC), corners in lab pixels around the array's middle."""
        from .core import Panel

        out = []
        ms, mf = self.module_shape
        for m in range(self.n_modules):
            if self.family == "jungfrau":
                # 2 x 4 ASICs of 256 x 256, 2-pixel ASIC gaps; modules in 2 columns, 36-pixel
                # gaps between module rows and 8 between columns
                col, row = m % 2, m // 2
                x0, y0 = col * (1030 + 8), row * (514 + 36)
                for a in range(8):
                    r, c = divmod(a, 4)
                    out.append(
                        Panel(
                            name=f"m{m}a{a}",
                            min_fs=c * 256,
                            max_fs=c * 256 + 255,
                            min_ss=m * ms + r * 256,
                            max_ss=m * ms + r * 256 + 255,
                            corner_x=x0 + c * 258,
                            corner_y=y0 + r * 258,
                            pixel_size=self.pixel_size,
                            adu_per_ev=self.adu_per_ev,
                        )
                    )
            else:
                # AGIPD: 8 ASICs of 64 (ss) x 128 (fs) along the slow scan, 2-pixel gaps; the
                # slow scan runs along +x and the fast scan along -y in the left half, both
                # turned by 180 degrees in the right half (as the quadrants are mounted)
                quad, k = divmod(m, 4)
                left = quad % 2 == 0
                y_top = (quad // 2) * (4 * 158 + 20) + k * 158
                x0 = 0 if left else 8 * 66 + 30
                for a in range(8):
                    if left:
                        fs, ss = (0.0, -1.0, 0.0), (1.0, 0.0, 0.0)
                        cx, cy = x0 + a * 66, y_top + 128
                    else:
                        fs, ss = (0.0, 1.0, 0.0), (-1.0, 0.0, 0.0)
                        cx, cy = x0 + 8 * 66 - a * 66, y_top
                    out.append(
                        Panel(
                            name=f"p{m}a{a}",
                            min_fs=0,
                            max_fs=mf - 1,
                            min_ss=m * ms + a * 64,
                            max_ss=m * ms + a * 64 + 63,
                            fs=fs,
                            ss=ss,
                            corner_x=cx,
                            corner_y=cy,
                            pixel_size=self.pixel_size,
                            adu_per_ev=self.adu_per_ev,
                        )
                    )
        return tuple(out)


#: integrating detectors (simulated in ADU or keV, stacked modules, CrystFEL panels)
INTEGRATING: dict[str, IntegratingModel] = {
    "jungfrau4m": IntegratingModel(
        "jungfrau4m",
        "PSI JUNGFRAU 4M (8 modules, ADU)",
        "jungfrau",
        8,
        75e-6,
        0.12,
        adu_per_ev=0.04,
        read_noise=0.1,
        saturation_value=1.5e6,
    ),
    "agipd1m": IntegratingModel(
        "agipd1m",
        "EuXFEL AGIPD 1M (16 modules, keV)",
        "agipd",
        16,
        200e-6,
        0.25,
        adu_per_ev=1e-3,
        read_noise=0.25,
        saturation_value=1e5,
        units="keV",
    ),
    # small ones for tests
    "jungfrau1m": IntegratingModel(
        "jungfrau1m",
        "PSI JUNGFRAU 1M (2 modules, ADU)",
        "jungfrau",
        2,
        75e-6,
        0.07,
        adu_per_ev=0.04,
        read_noise=0.1,
        saturation_value=1.5e6,
    ),
    "agipd-quadrant": IntegratingModel(
        "agipd-quadrant",
        "EuXFEL AGIPD, one quadrant (4 modules, keV)",
        "agipd",
        4,
        200e-6,
        0.12,
        adu_per_ev=1e-3,
        read_noise=0.25,
        saturation_value=1e5,
        units="keV",
    ),
}


def get_detector(name: str) -> DetectorModel | IntegratingModel:
    if name in INTEGRATING:
        return INTEGRATING[name]
    try:
        return DETECTORS[name]
    except KeyError:
        raise ConfigError(
            f"unknown detector {name!r}; choose one of: {', '.join([*DETECTORS, *INTEGRATING])}"
        ) from None
