"""Write a run as a folder of miniCBF files (Pilatus style), one renamed into place at a time."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

import fabio.cbfimage
import numpy as np

from ..geometry.core import Geometry


def minicbf_header(
    geometry: Geometry,
    *,
    description: str,
    frame_time: float,
    saturation_value: float,
    timestamp: float,
) -> str:
    bcx, bcy = geometry.beam_center
    px = geometry.pixel_size
    when = _dt.datetime.fromtimestamp(timestamp, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[
        :-3
    ]
    lines = [
        f"Detector: {description}, S/N 00-0000 (xlive simulator)",
        when,
        f"Pixel_size {px:.6g} m x {px:.6g} m",
        "Silicon sensor, thickness 0.000450 m",
        f"Exposure_time {frame_time * 0.99:.7f} s",
        f"Exposure_period {frame_time:.7f} s",
        "Tau = 0 s",
        f"Count_cutoff {int(saturation_value)} counts",
        f"Wavelength {geometry.wavelength:.5f} A",
        f"Detector_distance {geometry.distance:.5f} m",
        f"Beam_xy ({bcx:.2f}, {bcy:.2f}) pixels",
        "Start_angle 0.0000 deg.",
        "Angle_increment 0.0000 deg.",
        "Polarization 0.990",
    ]
    return "\r\n".join("# " + s for s in lines)


class CbfRunWriter:
    """Append frames as ``NAME_00001.cbf``, ``NAME_00002.cbf``, ... (1-based, like Pilatus)."""

    def __init__(
        self,
        folder: str | Path,
        *,
        name: str,
        geometry: Geometry,
        description: str,
        frame_time: float,
        saturation_value: float,
    ):
        self.folder = Path(folder)
        self.name = name
        self.geometry = geometry
        self.description = description
        self.frame_time = frame_time
        self.saturation_value = saturation_value
        self.n = 0

    def append(self, frames: np.ndarray, meta: dict) -> int:
        for i, frame in enumerate(frames):
            header = {
                "_array_data.header_convention": "PILATUS_1.2",
                "_array_data.header_contents": minicbf_header(
                    self.geometry,
                    description=self.description,
                    frame_time=self.frame_time,
                    saturation_value=self.saturation_value,
                    timestamp=float(meta["timestamp"][i]),
                ),
            }
            img = fabio.cbfimage.CbfImage(
                data=np.ascontiguousarray(frame.astype(np.int32)), header=header
            )
            final = self.folder / f"{self.name}_{self.n + 1:05d}.cbf"
            tmp = final.with_name("." + final.name + ".part")
            img.write(str(tmp))
            os.replace(tmp, final)
            self.n += 1
        return self.n

    def close(self) -> None:
        pass
