"""Geometry from a NeXus NXmx file (Dectris legacy Eiger masters, DLS/Odin masters, EIGER2).

Reads ``/entry/instrument/detector`` (``beam_center_x/y`` in pixels or lengths, ``detector_distance``
or ``distance``, ``x/y_pixel_size``), ``/entry/instrument/beam/incident_wavelength`` (or the
photon energy) and the pixel mask (NXmx rule: a pixel is masked if ``mask & 0xFFFF != 0``; extra
``pixel_mask_N`` are OR-ed in).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..conventions import HC_EV_ANGSTROM
from ..errors import GeometryError
from .core import Geometry

_LENGTH = {"m": 1.0, "mm": 1e-3, "um": 1e-6, "microns": 1e-6, "cm": 1e-2, "nm": 1e-9}


def _units(ds: h5py.Dataset) -> str:
    u = ds.attrs.get("units", b"")
    return (u.decode() if isinstance(u, bytes) else str(u)).strip()


def _scalar(group: h5py.Group, *names: str) -> tuple[float, str] | None:
    for name in names:
        if name in group:
            ds = group[name]
            value = np.asarray(ds[()]).ravel()
            if value.size:
                return float(value[0]), _units(ds)
    return None


def _length(value: tuple[float, str], what: str) -> float:
    v, unit = value
    if unit in ("", "pixel", "pixels"):
        return v
    if unit not in _LENGTH:
        raise GeometryError(
            f"{what} has unknown length unit {unit!r}; expected one of {list(_LENGTH)}"
        )
    return v * _LENGTH[unit]


def nxmx_mask(detector: h5py.Group) -> np.ndarray | None:
    """Boolean mask (True = ignore) from ``pixel_mask`` (+ ``pixel_mask_N``) of an NXdetector."""
    found = []
    for group in (detector, detector.get("detectorSpecific")):
        if group is None:
            continue
        for name in group:
            if name == "pixel_mask" or (name.startswith("pixel_mask_") and name[11:].isdigit()):
                ds = group[name]
                if isinstance(ds, h5py.Dataset) and ds.ndim == 2:
                    found.append((np.asarray(ds[()]).astype(np.uint64) & 0xFFFF) != 0)
        if found:
            break
    if not found:
        return None
    mask = found[0]
    for m in found[1:]:
        if m.shape == mask.shape:
            mask = mask | m
    return mask


def read_nxmx_geometry(source: str | Path | h5py.File, *, entry: str = "/entry") -> Geometry:
    """Read the detector geometry of an NXmx (Eiger master) file.

    Parameters
    ----------
    source
        Path of the master file, or an open ``h5py.File``.
    entry
        The NXentry group.

    Raises
    ------
    GeometryError
        When the beam centre, distance, pixel size or wavelength is missing.
    """
    if not isinstance(source, h5py.File):
        with h5py.File(source, "r") as f:
            return read_nxmx_geometry(f, entry=entry)
    f = source
    det_path = f"{entry}/instrument/detector"
    if det_path not in f:
        raise GeometryError(f"{f.filename} has no {det_path} group; is it an NXmx master file?")
    det = f[det_path]
    spec = det.get("detectorSpecific", det)

    px = _scalar(det, "x_pixel_size")
    py = _scalar(det, "y_pixel_size")
    if px is None:
        raise GeometryError(f"{f.filename}: {det_path}/x_pixel_size is missing")
    pixel_x = _length(px, "x_pixel_size")
    pixel_y = _length(py, "y_pixel_size") if py else pixel_x

    dist = _scalar(det, "detector_distance", "distance")
    if dist is None:
        raise GeometryError(f"{f.filename}: no detector_distance or distance in {det_path}")
    distance = _length(dist, "detector distance")

    centre = []
    for axis, pix in (("x", pixel_x), ("y", pixel_y)):
        c = _scalar(det, f"beam_center_{axis}")
        if c is None:
            raise GeometryError(f"{f.filename}: {det_path}/beam_center_{axis} is missing")
        value, unit = c
        centre.append(value if unit in ("", "pixel", "pixels") else _length(c, "beam centre") / pix)

    wl = _scalar(f.get(f"{entry}/instrument/beam", f), "incident_wavelength", "wavelength")
    if wl is not None:
        value, unit = wl
        wavelength = value * {"m": 1e10, "nm": 10.0}.get(unit, 1.0)
    else:
        energy = _scalar(spec, "photon_energy")
        if energy is None:
            raise GeometryError(f"{f.filename}: no incident_wavelength or photon_energy")
        wavelength = HC_EV_ANGSTROM / energy[0]

    mask = nxmx_mask(det)
    nx = _scalar(spec, "x_pixels_in_detector")
    ny = _scalar(spec, "y_pixels_in_detector")
    if nx is not None and ny is not None:
        shape = (int(ny[0]), int(nx[0]))
    elif mask is not None:
        shape = mask.shape
    else:
        raise GeometryError(
            f"{f.filename}: cannot tell the detector size "
            "(no x/y_pixels_in_detector and no pixel_mask)"
        )
    if mask is not None and mask.shape != shape:
        mask = None
    sat = _scalar(det, "saturation_value") or _scalar(spec, "countrate_correction_count_cutoff")
    desc = det["description"][()] if "description" in det else b"NXmx detector"
    desc = desc.decode() if isinstance(desc, bytes) else str(desc)
    geom = Geometry.simple(
        shape=shape,
        pixel_size=pixel_x,
        distance=distance,
        beam_center_x=centre[0],
        beam_center_y=centre[1],
        wavelength=wavelength,
        mask=mask,
        saturation_value=None if sat is None else sat[0],
        description=desc,
    )
    if pixel_y != pixel_x:  # rectangular pixels: stretch the slow-scan vector
        p = geom.panels[0]
        ratio = pixel_y / pixel_x
        p = type(p)(**{**p.__dict__, "ss": (0.0, ratio, 0.0), "corner_y": p.corner_y * ratio})
        geom = geom.replace(panels=(p,))
    return geom
