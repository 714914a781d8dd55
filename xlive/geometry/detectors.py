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

    def is_integer(self) -> bool:
        return np.dtype(self.dtype).kind in "iu"


_EIGER = dict(
    module_shape=(512, 1028), gap=(38, 12), pixel_size=75e-6, dtype="uint32",
    gap_value=2**32 - 1, bad_value=2**32 - 1, saturation_value=65535.0, distance=0.12,
)
_PILATUS = dict(
    module_shape=(195, 487), gap=(17, 7), pixel_size=172e-6, dtype="int32",
    gap_value=-1, bad_value=-2, saturation_value=1048500.0, distance=0.25,
)

DETECTORS: dict[str, DetectorModel] = {
    "eiger4m": DetectorModel("eiger4m", "Dectris EIGER2 X 4M", modules=(4, 2), **_EIGER),
    "eiger16m": DetectorModel("eiger16m", "Dectris EIGER2 X 16M", modules=(8, 4), **_EIGER),
    "pilatus6m": DetectorModel("pilatus6m", "Dectris PILATUS3 6M", modules=(12, 5), **_PILATUS),
    "jungfrau4m": DetectorModel(
        "jungfrau4m", "PSI JUNGFRAU 4M (assembled, photon units)", module_shape=(514, 1030),
        modules=(4, 2), gap=(36, 8), pixel_size=75e-6, dtype="float32", gap_value=0.0,
        bad_value=0.0, saturation_value=12000.0, distance=0.12, sensor_thickness=320e-6,
    ),
    # small models for tests and quick demos
    "eiger500k": DetectorModel("eiger500k", "Dectris EIGER2 X 500K", modules=(1, 1),
                               **{**_EIGER, "distance": 0.06}),
    "eiger1m": DetectorModel("eiger1m", "Dectris EIGER2 X 1M", modules=(2, 1),
                             **{**_EIGER, "distance": 0.07}),
    "pilatus300k": DetectorModel("pilatus300k", "Dectris PILATUS3 300K", modules=(3, 1),
                                 **{**_PILATUS, "distance": 0.12}),
}


def get_detector(name: str) -> DetectorModel:
    try:
        return DETECTORS[name]
    except KeyError:
        raise ConfigError(
            f"unknown detector {name!r}; choose one of: {', '.join(DETECTORS)}"
        ) from None
