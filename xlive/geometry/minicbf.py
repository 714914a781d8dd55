"""Geometry from miniCBF headers (PILATUS/EIGER ``_array_data.header_contents`` lines).

Uses ``Pixel_size``, ``Detector_distance``, ``Wavelength``, ``Beam_xy`` (pixels, taken with the
pyFAI/DIALS rule as dxtbx does) and ``Count_cutoff`` (saturation).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import GeometryError
from .core import Geometry

_NUM = r"([-+0-9.eE]+)"
_PATTERNS = {
    "pixel_size": re.compile(rf"Pixel_size\s+{_NUM}\s*m\s*x\s*{_NUM}\s*m"),
    "distance": re.compile(rf"Detector_distance\s+{_NUM}\s*(m|mm)?"),
    "wavelength": re.compile(rf"Wavelength\s+{_NUM}\s*(A|nm)?"),
    "beam_xy": re.compile(rf"Beam_xy\s+\(\s*{_NUM}\s*,\s*{_NUM}\s*\)"),
    "cutoff": re.compile(rf"Count_cutoff\s+{_NUM}"),
    "detector": re.compile(r"Detector:\s*([^\n\r]+)"),
}


def geometry_from_minicbf_header(
    header: str, *, shape: tuple[int, int], mask: np.ndarray | None = None
) -> Geometry:
    """Build a Geometry from the text of a miniCBF header (``_array_data.header_contents``)."""
    found = {k: p.search(header) for k, p in _PATTERNS.items()}
    missing = [k for k in ("pixel_size", "distance", "wavelength", "beam_xy") if found[k] is None]
    if missing:
        raise GeometryError(
            f"miniCBF header lacks {', '.join(missing)}; pass geometry=... to open_source "
            "(e.g. from a PONI or CrystFEL .geom file)"
        )
    px = float(found["pixel_size"].group(1))
    dist = float(found["distance"].group(1)) * (1e-3 if found["distance"].group(2) == "mm" else 1.0)
    wl = float(found["wavelength"].group(1)) * (
        10.0 if found["wavelength"].group(2) == "nm" else 1.0
    )
    bx, by = float(found["beam_xy"].group(1)), float(found["beam_xy"].group(2))
    sat = float(found["cutoff"].group(1)) if found["cutoff"] else None
    desc = found["detector"].group(1).strip() if found["detector"] else "miniCBF detector"
    # the PILATUS header convention (PILATUS and EIGER miniCBFs) writes -1 into module gaps
    # and -2 into bad pixels: declared here, checked per frame, never learnt from a frame
    return Geometry.simple(
        shape=shape,
        pixel_size=px,
        distance=dist,
        beam_center_x=bx,
        beam_center_y=by,
        wavelength=wl,
        mask=mask,
        saturation_value=sat,
        description=desc,
        sentinels=(-1, -2),
        placeholder=_known_placeholder(desc, shape),
    )


#: detectors whose miniCBF header can only describe one flat panel although they are not one:
#: (pattern in the ``Detector:`` line, why)
CURVED = (
    (
        re.compile(r"PILATUS\S*\s+12M", re.I),
        "the PILATUS 12M is a cylinder of 24 module rows (Diamond I23)",
    ),
)


def _known_placeholder(description: str, shape: tuple[int, int]) -> str:
    for pattern, why in CURVED:
        if pattern.search(description):
            return (
                f"the miniCBF header of this {description} describes one flat panel, but "
                f"{why}; give the real geometry with --geometry FILE.geom (a CrystFEL "
                "geometry of its modules) or geometry= in Python"
            )
    return ""


def read_minicbf_geometry(path: str | Path) -> Geometry:
    """Read the geometry of a miniCBF file (``.cbf`` or compressed ``.cbf.bz2/.gz``).

    The geometry declares the format's markers (-1 module gaps, -2 bad pixels) as
    ``sentinels``; no pixel is masked for the value it holds in this image.
    """
    import fabio  # here: opening runs of other formats (and `xlive serve`) needs no fabio

    with fabio.open(str(path)) as image:
        header = image.header.get("_array_data.header_contents", "")
        shape = image.data.shape
    return geometry_from_minicbf_header(header, shape=shape)
