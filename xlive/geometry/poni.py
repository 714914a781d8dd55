"""Geometry from a pyFAI PONI file (versions 1 and 2), including detector tilts.

pyFAI places pixel ``(i, j)`` (slow, fast; centre at ``(i+0.5)*pixel1``) at
``R @ (p1 - poni1, p2 - poni2, dist)`` with ``R = rot3 @ rot2 @ rot1`` (pyFAI's
``Geometry.rotation_matrix``); xlive's lab frame is pyFAI's ``(t2, t1, t3)``. The panel's fs/ss
vectors, corner and z offset are built from that, so q maps agree with pyFAI's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import GeometryError
from .core import Geometry, Panel


def _rotation(rot1: float, rot2: float, rot3: float) -> np.ndarray:
    c1, c2, c3 = np.cos([rot1, rot2, rot3])
    s1, s2, s3 = np.sin([rot1, rot2, rot3])
    r1 = np.array([[1.0, 0.0, 0.0], [0.0, c1, s1], [0.0, -s1, c1]])
    r2 = np.array([[c2, 0.0, -s2], [0.0, 1.0, 0.0], [s2, 0.0, c2]])
    r3 = np.array([[c3, -s3, 0.0], [s3, c3, 0.0], [0.0, 0.0, 1.0]])
    return r3 @ r2 @ r1


def _parse(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if ":" in line:
            key, value = line.split(":", 1)
            out[key.strip().lower()] = value.strip()
    return out


def geometry_from_poni(
    *,
    dist: float,
    poni1: float,
    poni2: float,
    rot1: float = 0.0,
    rot2: float = 0.0,
    rot3: float = 0.0,
    pixel1: float,
    pixel2: float,
    shape: tuple[int, int],
    wavelength: float,
    mask: np.ndarray | None = None,
    description: str = "",
) -> Geometry:
    """Geometry from pyFAI parameters (lengths in metres, angles in radians, wavelength in m)."""
    r = _rotation(rot1, rot2, rot3)
    corner = r @ np.array([-poni1, -poni2, dist])  # pixel corner (0, 0), pyFAI (t1, t2, t3)
    px = pixel2
    fs = r[:, 1] * (pixel2 / px)
    ss = r[:, 0] * (pixel1 / px)
    panel = Panel(
        name="p0",
        min_fs=0,
        max_fs=shape[1] - 1,
        min_ss=0,
        max_ss=shape[0] - 1,
        fs=(float(fs[1]), float(fs[0]), float(fs[2])),
        ss=(float(ss[1]), float(ss[0]), float(ss[2])),
        corner_x=float(corner[1] / px),
        corner_y=float(corner[0] / px),
        coffset=float(corner[2] - dist),
        pixel_size=float(px),
    )
    return Geometry(
        shape=(int(shape[0]), int(shape[1])),
        distance=float(dist),
        wavelength=float(wavelength) * 1e10,
        panels=(panel,),
        mask=mask,
        description=description or "pyFAI PONI",
    )


def read_poni_geometry(
    path: str | Path, *, shape: tuple[int, int] | None = None, wavelength: float | None = None
) -> Geometry:
    """Read a pyFAI ``.poni`` file.

    Parameters
    ----------
    path
        The PONI file.
    shape
        Detector shape (slow, fast) when the file does not give ``max_shape``.
    wavelength
        Wavelength in angstrom when the file has none.
    """
    d = _parse(Path(path).read_text())
    try:
        dist, poni1, poni2 = (float(d[k]) for k in ("distance", "poni1", "poni2"))
    except KeyError as exc:
        raise GeometryError(f"PONI file {path} lacks {exc.args[0]!r}") from None
    pixel1 = pixel2 = None
    if "detector_config" in d:
        cfg = json.loads(d["detector_config"])
        pixel1, pixel2 = cfg.get("pixel1"), cfg.get("pixel2")
        shape = shape or (tuple(cfg["max_shape"]) if cfg.get("max_shape") else None)
    pixel1 = float(d.get("pixelsize1", pixel1 or 0)) or None
    pixel2 = float(d.get("pixelsize2", pixel2 or 0)) or None
    if pixel1 is None or pixel2 is None:
        raise GeometryError(f"PONI file {path}: no pixel size (PixelSize1/2 or Detector_config)")
    if shape is None:
        raise GeometryError(f"PONI file {path} gives no detector shape; pass shape=(ny, nx)")
    if "wavelength" in d:
        wl_m = float(d["wavelength"])
    elif wavelength is not None:
        wl_m = wavelength * 1e-10
    else:
        raise GeometryError(f"PONI file {path} has no Wavelength; pass wavelength=... (angstrom)")
    return geometry_from_poni(
        dist=dist,
        poni1=poni1,
        poni2=poni2,
        rot1=float(d.get("rot1", 0)),
        rot2=float(d.get("rot2", 0)),
        rot3=float(d.get("rot3", 0)),
        pixel1=pixel1,
        pixel2=pixel2,
        shape=shape,
        wavelength=wl_m,
        description=f"pyFAI PONI {Path(path).name}",
    )
