"""Open a geometry file by its kind, and tell users when a geometry is only a placeholder."""

from __future__ import annotations

from pathlib import Path

from ..errors import GeometryError
from .core import Geometry

#: values a configuration may give a geometry file that lacks them
FILE_VALUES = ("clen", "distance", "wavelength", "photon_energy")


def read_geometry_file(path: str | Path, **values) -> Geometry:
    """A CrystFEL ``.geom``, pyFAI ``.poni`` or NXmx ``.h5/.nxs`` geometry.

    ``values`` (``clen``, ``distance`` m, ``wavelength`` Å, ``photon_energy`` eV) complete a
    CrystFEL geometry whose values live in the data files; other formats take ``distance`` and
    ``wavelength`` as overrides.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    values = {k: v for k, v in values.items() if v is not None}
    if suffix == ".geom":
        from .crystfel import read_crystfel_geom

        return read_crystfel_geom(path, **values)
    if suffix == ".poni":
        from .poni import read_poni_geometry

        geom = read_poni_geometry(path)
    elif suffix in (".h5", ".nxs", ".hdf5"):
        from .nxmx import read_nxmx_geometry

        geom = read_nxmx_geometry(path)
    else:
        raise GeometryError(
            f"{path}: unknown geometry file kind {suffix!r}; give a CrystFEL "
            ".geom, a pyFAI .poni or an NXmx .h5/.nxs file"
        )
    changes = {k: float(values[k]) for k in ("distance", "wavelength") if k in values}
    return geom.replace(**changes) if changes else geom


def placeholder_warning(geometry: Geometry | None) -> str | None:
    """The loud warning for a geometry known to be a placeholder (None for a real one)."""
    if geometry is None or not geometry.placeholder:
        return None
    return (
        "WARNING: the detector geometry is only a placeholder, so 2-theta, d-spacings and "
        f"resolution are meaningless: {geometry.placeholder}"
    )
