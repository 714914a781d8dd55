"""Write a run as a Dectris-style NXmx series: ``NAME_master.h5`` plus data files.

As the detector does, the master is written at arm time with external links to every data file
the series will have (``/entry/data/data_000001`` -> ``NAME_data_000001.h5:/entry/data/data``),
and each data file appears only when complete: it is written under a hidden temporary name and
renamed into place. Chunks are ``(1, H, W)`` bitshuffle-LZ4 (filter 32008, via hdf5plugin).
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

from ..conventions import HC_EV_ANGSTROM
from ..geometry.core import Geometry


def _ds(group: h5py.Group, name: str, value, units: str | None = None) -> None:
    d = group.create_dataset(name, data=value)
    if units:
        d.attrs["units"] = units


def write_master(
    path: Path,
    *,
    geometry: Geometry,
    pixel_mask: np.ndarray,
    n_frames: int,
    frames_per_file: int,
    name: str,
    description: str,
    frame_time: float,
    saturation_value: float,
) -> None:
    ny, nx = geometry.shape
    bcx, bcy = geometry.beam_center
    with h5py.File(path, "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        n_files = max(1, -(-n_frames // frames_per_file))
        for i in range(1, n_files + 1):
            data[f"data_{i:06d}"] = h5py.ExternalLink(f"{name}_data_{i:06d}.h5", "/entry/data/data")
        inst = entry.create_group("instrument")
        inst.attrs["NX_class"] = "NXinstrument"
        beam = inst.create_group("beam")
        _ds(beam, "incident_wavelength", geometry.wavelength, "angstrom")
        det = inst.create_group("detector")
        det.attrs["NX_class"] = "NXdetector"
        _ds(det, "beam_center_x", bcx, "pixel")
        _ds(det, "beam_center_y", bcy, "pixel")
        _ds(det, "detector_distance", geometry.distance, "m")
        _ds(det, "x_pixel_size", geometry.pixel_size, "m")
        _ds(det, "y_pixel_size", geometry.pixel_size, "m")
        _ds(det, "count_time", frame_time * 0.99, "s")
        _ds(det, "frame_time", frame_time, "s")
        _ds(det, "saturation_value", int(saturation_value))
        _ds(det, "sensor_material", "Si")
        _ds(det, "sensor_thickness", 450e-6, "m")
        _ds(det, "description", description)
        _ds(det, "pixel_mask_applied", 1)
        spec = det.create_group("detectorSpecific")
        _ds(spec, "pixel_mask", pixel_mask.astype(np.uint32))
        _ds(spec, "nimages", n_frames)
        _ds(spec, "ntrigger", 1)
        _ds(spec, "x_pixels_in_detector", nx)
        _ds(spec, "y_pixels_in_detector", ny)
        _ds(spec, "photon_energy", HC_EV_ANGSTROM / geometry.wavelength, "eV")
        _ds(spec, "compression", "bslz4")
        _ds(spec, "countrate_correction_count_cutoff", int(saturation_value))


class EigerRunWriter:
    """Append frames; a data file is renamed into place once it holds ``frames_per_file``."""

    def __init__(
        self,
        folder: str | Path,
        *,
        name: str,
        geometry: Geometry,
        pixel_mask: np.ndarray,
        dtype: str,
        n_frames: int,
        frames_per_file: int = 100,
        description: str = "",
        frame_time: float = 0.01,
        saturation_value: float = 65535,
    ):
        self.folder = Path(folder)
        self.name = name
        self.dtype = np.dtype(dtype)
        self.shape = geometry.shape
        self.fpf = int(frames_per_file)
        write_master(
            self.folder / f"{name}_master.h5",
            geometry=geometry,
            pixel_mask=pixel_mask,
            n_frames=n_frames,
            frames_per_file=self.fpf,
            name=name,
            description=description,
            frame_time=frame_time,
            saturation_value=saturation_value,
        )
        self.n = 0
        self._file: h5py.File | None = None
        self._dset = None
        self._file_index = 0

    def _open_next(self) -> None:
        self._file_index += 1
        final = self.folder / f"{self.name}_data_{self._file_index:06d}.h5"
        self._tmp = final.with_name("." + final.name + ".part")
        self._final = final
        self._file = h5py.File(self._tmp, "w")
        entry = self._file.create_group("entry")
        data = entry.create_group("data")
        self._dset = data.create_dataset(
            "data",
            shape=(0, *self.shape),
            maxshape=(self.fpf, *self.shape),
            chunks=(1, *self.shape),
            dtype=self.dtype,
            **hdf5plugin.Bitshuffle(cname="lz4"),
        )
        self._dset.attrs["image_nr_low"] = self.n + 1

    def _finish_file(self) -> None:
        if self._file is None:
            return
        self._dset.attrs["image_nr_high"] = self.n
        self._file.close()
        os.replace(self._tmp, self._final)
        self._file = None

    def append(self, frames: np.ndarray, meta: dict | None = None) -> int:
        for frame in frames:
            if self._file is None:
                self._open_next()
            k = self._dset.shape[0]
            self._dset.resize((k + 1, *self.shape))
            self._dset[k] = frame
            self.n += 1
            if k + 1 == self.fpf:
                self._finish_file()
        return self.n

    def close(self) -> None:
        self._finish_file()
