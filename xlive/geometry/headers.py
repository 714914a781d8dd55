"""Geometry quantities from the headers of single-image files, as fabio reads them.

Each reader returns the quantities it found (a dict with any of :data:`QUANTITIES`), never
fails for missing ones: the caller completes them from ``--geometry``, the run configuration's
``[geometry]`` table, and says which are still missing (:func:`geometry_from_quantities`).

- miniCBF / PILATUS TIFF: ``Pixel_size``, ``Detector_distance``, ``Wavelength``, ``Beam_xy``
  (pixels), ``Count_cutoff`` (the TIFF header keeps the same lines as separate keys);
- SMV (ADSC, d*TREK, Rigaku): ``PIXEL_SIZE`` (mm), ``DISTANCE`` (mm), ``WAVELENGTH`` (Å),
  ``BEAM_CENTER_X/Y`` along the fast/slow axes, in mm (ADSC) or in pixels when the value lies
  beyond the detector's width in mm (some writers store pixels).
"""

from __future__ import annotations

from ..errors import GeometryError
from .core import Geometry
from .minicbf import _PATTERNS

#: what a single flat detector needs, with units
QUANTITIES = {
    "pixel_size": "m",
    "distance": "m",
    "wavelength": "Å",
    "beam_center_x": "pixels",
    "beam_center_y": "pixels",
}


def quantities_from_pilatus_text(text: str) -> dict:
    """Quantities in miniCBF / PILATUS header lines (``# Pixel_size 172e-6 m x 172e-6 m``)."""
    out: dict = {}
    m = _PATTERNS["pixel_size"].search(text)
    if m:
        out["pixel_size"] = float(m.group(1))
    m = _PATTERNS["distance"].search(text)
    if m:
        out["distance"] = float(m.group(1)) * (1e-3 if m.group(2) == "mm" else 1.0)
    m = _PATTERNS["wavelength"].search(text)
    if m:
        out["wavelength"] = float(m.group(1)) * (10.0 if m.group(2) == "nm" else 1.0)
    m = _PATTERNS["beam_xy"].search(text)
    if m:
        out["beam_center_x"], out["beam_center_y"] = float(m.group(1)), float(m.group(2))
    m = _PATTERNS["cutoff"].search(text)
    if m:
        out["saturation_value"] = float(m.group(1))
    return out


def quantities_from_smv(header: dict, shape: tuple[int, int]) -> dict:
    """Quantities in an SMV header (keys as fabio gives them)."""

    def num(key):
        try:
            return float(header[key])
        except (KeyError, ValueError):
            return None

    out: dict = {}
    px_mm = num("PIXEL_SIZE")
    if px_mm:
        out["pixel_size"] = px_mm * 1e-3
    if num("DISTANCE"):
        out["distance"] = num("DISTANCE") * 1e-3
    if num("WAVELENGTH"):
        out["wavelength"] = num("WAVELENGTH")
    if num("SATURATED_VALUE"):
        out["saturation_value"] = num("SATURATED_VALUE")
    ny, nx = shape
    for key, axis, size in (
        ("BEAM_CENTER_X", "beam_center_x", nx),
        ("BEAM_CENTER_Y", "beam_center_y", ny),
    ):
        v = num(key)
        if v is not None and px_mm:
            out[axis] = v if v > size * px_mm else v / px_mm  # pixels, or mm (ADSC)
    return out


def quantities_from_header(header: dict, shape: tuple[int, int]) -> dict:
    """Whatever geometry a fabio header holds (miniCBF, PILATUS TIFF or SMV)."""
    text = header.get("_array_data.header_contents")
    if text:
        return quantities_from_pilatus_text(text)
    if "Pixel_size" in header:  # PILATUS TIFF: the miniCBF lines as separate keys
        return quantities_from_pilatus_text("\n".join(f"# {k} {v}" for k, v in header.items()))
    if "PIXEL_SIZE" in header or "DISTANCE" in header:
        return quantities_from_smv(header, shape)
    return {}


def missing_quantities(q: dict) -> list[str]:
    return [k for k in QUANTITIES if q.get(k) is None]


def how_to_give(missing) -> str:
    """The command-line and configuration ways to give ``missing`` quantities."""
    lines = "; ".join(f"{k} = ... ({QUANTITIES[k]})" for k in missing)
    return (
        "give a geometry file with --geometry FILE (CrystFEL .geom, pyFAI .poni or an "
        f"NXmx master), or the values in the run configuration's [geometry] table ({lines}) "
        "with --config run.toml"
    )


def geometry_from_quantities(
    q: dict, *, shape: tuple[int, int], mask=None, description: str = "", sentinels=None
) -> Geometry:
    """A single flat detector from ``q``; raises GeometryError naming what is missing."""
    missing = missing_quantities(q)
    if missing:
        raise GeometryError(
            f"the detector geometry lacks {', '.join(missing)}: " + how_to_give(missing)
        )
    return Geometry.simple(
        shape=shape,
        pixel_size=q["pixel_size"],
        distance=q["distance"],
        beam_center_x=q["beam_center_x"],
        beam_center_y=q["beam_center_y"],
        wavelength=q["wavelength"],
        mask=mask,
        saturation_value=q.get("saturation_value"),
        description=description,
        sentinels=sentinels,
    )
