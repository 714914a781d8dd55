"""Read detector geometry from the files beamlines write: NXmx/Eiger masters, miniCBF headers,
pyFAI PONI files and CrystFEL ``.geom`` files (one module per format), and write ``.geom``.

Every reader returns an :class:`xlive.geometry.Geometry` (pyFAI/DIALS beam-centre rule).
"""

from __future__ import annotations

from .crystfel import read_crystfel_geom, write_crystfel_geom
from .minicbf import geometry_from_minicbf_header, read_minicbf_geometry
from .nxmx import nxmx_mask, read_nxmx_geometry
from .poni import geometry_from_poni, read_poni_geometry

__all__ = [
    "geometry_from_minicbf_header",
    "geometry_from_poni",
    "nxmx_mask",
    "read_crystfel_geom",
    "read_minicbf_geometry",
    "read_nxmx_geometry",
    "read_poni_geometry",
    "write_crystfel_geom",
]
