"""Read and write CrystFEL ``.geom`` files (crystfel_geometry(5)).

Supported: panels (min/max fs/ss, fs/ss vectors, corner_x/y, coffset, res, no_index,
mask_edge_pixels), global defaults that apply to panels mentioned later, ``clen`` (m or mm),
``photon_energy``/``wavelength``, bad regions in data (``min_fs``...) or lab (``min_x``...)
coordinates, and masks from a ``mask_file`` (``maskN_*`` and the old ``mask*`` names; a pixel is
bad if ``(v & goodbits) != goodbits`` or ``(v & badbits) != 0``). Values that name an HDF5 path
inside the data files (``clen = /LCLS/detectorPosition``) cannot be read from the geometry file:
pass ``distance=`` / ``wavelength=``. Hand-written: no maintained Python library parses .geom.
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np

from ..conventions import HC_EV_ANGSTROM
from ..errors import GeometryError
from .core import Geometry, Panel

_VEC = re.compile(r"([+-]?\s*[0-9.]*(?:[eE][+-]?\d+)?)\s*([xyz])")
_PANEL_KEYS = {"min_fs", "max_fs", "min_ss", "max_ss", "fs", "ss", "corner_x", "corner_y",
               "coffset", "res", "clen", "no_index", "mask_edge_pixels", "photon_energy",
               "adu_per_eV", "adu_per_photon", "max_adu", "data", "dim0", "dim1", "dim2",
               "mask", "mask_file", "mask_good", "mask_bad", "flag_lessthan", "flag_morethan",
               "flag_equal", "saturation_map", "saturation_map_file"}


def _vector(text: str, where: str) -> tuple[float, float, float]:
    v = {"x": 0.0, "y": 0.0, "z": 0.0}
    compact = text.replace(" ", "")
    matches = list(_VEC.finditer(compact))
    if not matches or "".join(m.group(0) for m in matches) != compact:
        raise GeometryError(f"{where}: cannot read the vector {text!r} (expected e.g. '+0.99x -0.01y')")
    for m in matches:
        coef = m.group(1).replace(" ", "")
        v[m.group(2)] = float(coef + "1" if coef in ("", "+", "-") else coef)
    return (v["x"], v["y"], v["z"])


def _length_m(text: str, default_unit: str) -> float | None:
    parts = text.split()
    if not parts or parts[0].startswith("/"):
        return None
    unit = parts[1] if len(parts) > 1 else default_unit
    return float(parts[0]) * {"m": 1.0, "mm": 1e-3}[unit]


def _wavelength_from(props: dict[str, str]) -> float | None:
    if "wavelength" in props:
        parts = props["wavelength"].split()
        if parts[0].startswith("/"):
            return None
        unit = parts[1] if len(parts) > 1 else "m"
        return float(parts[0]) * (1e10 if unit == "m" else 1.0)
    if "photon_energy" in props:
        parts = props["photon_energy"].split()
        if parts[0].startswith("/"):
            return None
        ev = float(parts[0]) * (1e3 if len(parts) > 1 and parts[1] == "keV" else 1.0)
        return HC_EV_ANGSTROM / ev
    return None


def _parse(text: str) -> tuple[dict, dict[str, dict], dict[str, dict]]:
    """(global keys, panels in file order, bad regions) with globals copied into later panels."""
    globals_: dict[str, str] = {}
    panels: dict[str, dict] = {}
    bads: dict[str, dict] = {}
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if "=" not in line:
            continue
        key, value = (s.strip() for s in line.split("=", 1))
        if "/" in key and not key.startswith("/"):
            name, prop = key.split("/", 1)
            if name.startswith(("rigid_group", "group")):
                continue
            if name.startswith("bad"):
                bads.setdefault(name, {})[prop] = value
                continue
            if name not in panels:
                panels[name] = dict(globals_)
            panels[name][prop] = value
        elif key.startswith(("rigid_group", "group_")):
            continue
        else:
            globals_[key] = value
    return globals_, panels, bads


def read_crystfel_geom(path: str | Path, *, distance: float | None = None,
                       wavelength: float | None = None, mask_files: bool = True) -> Geometry:
    """Read a CrystFEL geometry file.

    Parameters
    ----------
    path
        The ``.geom`` file.
    distance
        Camera length in metres, needed when ``clen`` names an HDF5 path (overrides ``clen``).
    wavelength
        Wavelength in angstrom, needed when the photon energy names an HDF5 path.
    mask_files
        Read the mask files the geometry names (False: ignore them, e.g. when they were not
        shipped with the .geom file).

    Examples
    --------
    >>> from xlive.geometry import Geometry
    >>> import tempfile, os
    >>> g = Geometry.simple(shape=(4, 6), pixel_size=75e-6, distance=0.1, beam_center_x=3,
    ...                     beam_center_y=2, wavelength=1.0)
    >>> p = os.path.join(tempfile.mkdtemp(), "d.geom")
    >>> write_crystfel_geom(g, p)
    >>> read_crystfel_geom(p).panels[0].corner_x
    -3.0
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise GeometryError(f"cannot read CrystFEL geometry {path}: {exc}") from exc
    globals_, raw_panels, bads = _parse(text)
    if not raw_panels:
        raise GeometryError(f"{path} describes no panels (expected lines like 'p0/min_fs = 0')")
    panels, clens, wavelengths = [], set(), set()
    for name, props in raw_panels.items():
        where = f"{path.name}: panel {name}"
        try:
            lims = [int(float(props[k])) for k in ("min_fs", "max_fs", "min_ss", "max_ss")]
        except KeyError as exc:
            raise GeometryError(f"{where} lacks {exc.args[0]}") from None
        if "res" not in props:
            raise GeometryError(f"{where} has no 'res' (pixels per metre)")
        clen = _length_m(props.get("clen", ""), "mm" if props.get("clen", "").startswith("/") else "m")
        clens.add(clen)
        wavelengths.add(_wavelength_from({**globals_, **props}))
        panels.append(Panel(
            name=name, min_fs=lims[0], max_fs=lims[1], min_ss=lims[2], max_ss=lims[3],
            fs=_vector(props.get("fs", "x"), where), ss=_vector(props.get("ss", "y"), where),
            corner_x=float(props.get("corner_x", 0.0)), corner_y=float(props.get("corner_y", 0.0)),
            coffset=float(props.get("coffset", 0.0)), pixel_size=1.0 / float(props["res"]),
        ))
    if distance is None:
        known = {c for c in clens if c is not None}
        if len(known) != 1 or None in clens:
            raise GeometryError(
                f"{path.name}: clen is an HDF5 path or differs between panels "
                f"({sorted(raw_panels[n].get('clen', '?') for n in raw_panels)[:2]}); "
                "pass distance=<metres> to read_crystfel_geom"
            )
        distance = known.pop()
    if wavelength is None:
        known = {w for w in wavelengths if w is not None}
        if len(known) != 1:
            raise GeometryError(f"{path.name}: photon energy/wavelength is missing or an HDF5 "
                                "path; pass wavelength=<angstrom> to read_crystfel_geom")
        wavelength = known.pop()
    shape = (max(p.max_ss for p in panels) + 1, max(p.max_fs for p in panels) + 1)
    geom = Geometry(shape=shape, distance=distance, wavelength=wavelength, panels=tuple(panels),
                    saturation_value=_float_or_none(globals_.get("max_adu")),
                    description=f"CrystFEL geometry {path.name}")
    mask = _mask(path, geom, raw_panels, bads, mask_files)
    return geom.replace(mask=mask) if mask.any() else geom


def _float_or_none(text: str | None) -> float | None:
    try:
        return None if text is None else float(text.split()[0])
    except ValueError:
        return None


def _mask(path: Path, geom: Geometry, raw_panels: dict[str, dict], bads: dict[str, dict],
          mask_files: bool) -> np.ndarray:
    mask = np.zeros(geom.shape, bool)
    by_name = {p.name: p for p in geom.panels}
    for p in geom.panels:
        props = raw_panels[p.name]
        sl = (slice(p.min_ss, p.max_ss + 1), slice(p.min_fs, p.max_fs + 1))
        if props.get("no_index", "0").strip() in ("1", "true"):
            mask[sl] = True
        edge = int(props.get("mask_edge_pixels", 0))
        if edge:
            sub = np.ones(p.shape, bool)
            sub[edge:-edge, edge:-edge] = False
            mask[sl] |= sub
        for n in range(-1, 8) if mask_files else ():
            mask[sl] |= _file_mask(path, props, n, p)
    for name, b in bads.items():
        if "min_fs" in b:
            fs0, fs1, ss0, ss1 = (int(float(b[k])) for k in ("min_fs", "max_fs", "min_ss", "max_ss"))
            if "panel" in b and b["panel"] not in by_name:
                raise GeometryError(f"{path.name}: {name}/panel names unknown panel {b['panel']!r}")
            mask[ss0:ss1 + 1, fs0:fs1 + 1] = True
        elif "min_x" in b:
            x0, x1, y0, y1 = (float(b[k]) for k in ("min_x", "max_x", "min_y", "max_y"))
            maps = geom.maps
            px = np.array([p.pixel_size for p in geom.panels])[np.maximum(maps.panel, 0)]
            x, y = maps.lab_x / px, maps.lab_y / px
            mask |= (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    return mask


def _file_mask(path: Path, props: dict[str, str], n: int, p: Panel) -> np.ndarray:
    """Mask N (-1 = the old unnumbered names) of one panel, from its mask file."""
    if n < 0:
        keys = ("mask_file", "mask", "mask_good", "mask_bad")
    else:
        keys = (f"mask{n}_file", f"mask{n}_data", f"mask{n}_goodbits", f"mask{n}_badbits")
    file_key, data_key, good_key, bad_key = keys
    if data_key not in props or file_key not in props:
        return np.zeros(p.shape, bool)  # a mask inside the data files: known only per frame
    mask_path = path.parent / props[file_key]
    if not mask_path.exists():
        raise GeometryError(f"{path.name}: mask file {mask_path} does not exist; put it next to "
                            "the .geom file, or pass mask_files=False to ignore it")
    with h5py.File(mask_path, "r") as f:
        values = np.asarray(f[props[data_key]][p.min_ss:p.max_ss + 1, p.min_fs:p.max_fs + 1])
    good = int(props.get(good_key, "0"), 0)
    bad = int(props.get(bad_key, "0"), 0)
    values = values.astype(np.int64)
    return ((values & good) != good) | ((values & bad) != 0)


def write_crystfel_geom(geometry: Geometry, path: str | Path) -> None:
    """Write ``geometry`` as a CrystFEL ``.geom`` file (mask into ``<stem>-mask.h5`` beside it).

    The file reads back with :func:`read_crystfel_geom` to the same panels, distance,
    wavelength and mask.
    """
    path = Path(path)
    fmt = repr
    lines = [f"; {geometry.description or 'detector'} written by xlive",
             f"clen = {fmt(float(geometry.distance))} m",
             f"photon_energy = {fmt(float(geometry.photon_energy))} eV",
             "dim0 = %", "dim1 = ss", "dim2 = fs", "data = /entry/data/data"]
    if geometry.saturation_value is not None:
        lines.append(f"max_adu = {fmt(float(geometry.saturation_value))}")
    if geometry.mask is not None and geometry.mask.any():
        mask_path = path.with_name(path.stem + "-mask.h5")
        with h5py.File(mask_path, "w") as f:
            f.create_dataset("mask", data=geometry.mask.astype(np.uint8), compression="gzip")
        lines += [f"mask0_file = {mask_path.name}", "mask0_data = /mask",
                  "mask0_goodbits = 0x0", "mask0_badbits = 0x1"]
    lines.append("")
    for p in geometry.panels:
        def vec(v: tuple[float, float, float]) -> str:
            return " ".join(f"{float(c):+.17g}{a}" for c, a in zip(v, "xyz", strict=True))

        lines += [
            f"{p.name}/min_fs = {p.min_fs}", f"{p.name}/max_fs = {p.max_fs}",
            f"{p.name}/min_ss = {p.min_ss}", f"{p.name}/max_ss = {p.max_ss}",
            f"{p.name}/fs = {vec(p.fs)}", f"{p.name}/ss = {vec(p.ss)}",
            f"{p.name}/corner_x = {fmt(float(p.corner_x))}",
            f"{p.name}/corner_y = {fmt(float(p.corner_y))}",
            f"{p.name}/coffset = {fmt(float(p.coffset))}",
            f"{p.name}/res = {fmt(1.0 / p.pixel_size)}", "",
        ]
    path.write_text("\n".join(lines))


__all__ = ["read_crystfel_geom", "write_crystfel_geom"]
