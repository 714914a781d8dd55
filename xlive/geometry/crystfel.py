"""Read and write CrystFEL ``.geom`` files (crystfel_geometry(5)).

Supported: panels (min/max fs/ss, fs/ss vectors, corner_x/y, ``coffset``, ``res``, ``no_index``,
``mask_edge_pixels``), global keys that apply to the panels mentioned after them, ``clen`` as a
number (m, or mm) or an HDF5 path, ``photon_energy`` (eV, keV) / ``wavelength`` (m, A) as a value
or a path, the detector response per panel (``adu_per_photon``, or ``adu_per_eV`` times the photon
energy; value or path), ``max_adu``, bad regions in data (``min_fs``...) or lab (``min_x``...)
coordinates, masks from mask files (``maskN_*`` and the old ``mask*`` names; a pixel is bad if
``(v & goodbits) != goodbits`` or ``(v & badbits) != 0``), and module-stacked data described with a
module index among the ``dimN`` keys (``dim1 = 3``: module 3 of a ``(modules, ss, fs)`` array, as
extra-geom writes them; xlive stacks the modules along the slow scan).

Values that name an HDF5 path are read from ``data_file`` (one of the run's files) when given;
otherwise they must be passed (``clen=``, ``distance=``, ``photon_energy=``...). ``clen`` keeps
CrystFEL's meaning: each panel sits at ``clen + coffset``.

Hand-written: no maintained Python library reads .geom files into pixel maps under a licence
xlive can use (cfel_fmt, which extra-geom uses and the tests compare against, is GPL).
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import h5py
import numpy as np

from ..conventions import HC_EV_ANGSTROM
from ..errors import GeometryError
from .core import Geometry, Panel

_VEC = re.compile(r"([+-]?\s*[0-9.]*(?:[eE][+-]?\d+)?)\s*([xyz])")


def _vector(text: str, where: str) -> tuple[float, float, float]:
    v = {"x": 0.0, "y": 0.0, "z": 0.0}
    compact = text.replace(" ", "")
    matches = list(_VEC.finditer(compact))
    if not matches or "".join(m.group(0) for m in matches) != compact:
        raise GeometryError(
            f"{where}: cannot read the vector {text!r} (expected e.g. '+0.99x -0.01y')"
        )
    for m in matches:
        coef = m.group(1).replace(" ", "")
        v[m.group(2)] = float(coef + "1" if coef in ("", "+", "-") else coef)
    return (v["x"], v["y"], v["z"])


def _is_path(text: str | None) -> bool:
    return bool(text) and text.split()[0].startswith("/")


def _number(text: str, where: str) -> tuple[float, str]:
    parts = text.split()
    try:
        return float(parts[0]), (parts[1] if len(parts) > 1 else "")
    except (ValueError, IndexError):
        raise GeometryError(f"{where}: cannot read the number {text!r}") from None


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


class _DataValues:
    """Values the geometry names by HDF5 path, read from one of the run's files."""

    def __init__(self, data_file: str | Path | None, geom_name: str):
        self.path = data_file
        self.geom_name = geom_name

    def get(self, key: str, h5path: str, how_to_fix: str) -> float:
        if self.path is None:
            raise GeometryError(
                f"{self.geom_name}: {key} is the HDF5 path {h5path}, a value stored with the "
                f"data; give data_file=<one of the run's HDF5 files> to read it there, or "
                f"{how_to_fix}"
            )
        try:
            with h5py.File(self.path, "r") as f:
                values = np.asarray(f[h5path][()], np.float64).ravel()
        except (OSError, KeyError) as exc:
            raise GeometryError(
                f"{self.geom_name}: {key} = {h5path}, but {self.path} has no such dataset "
                f"({exc}); {how_to_fix}"
            ) from exc
        values = values[np.isfinite(values)]
        if not values.size:
            raise GeometryError(
                f"{self.geom_name}: {h5path} in {self.path} holds no finite value; {how_to_fix}"
            )
        value = float(np.median(values))
        if np.ptp(values) > 1e-3 * max(abs(value), 1.0):
            warnings.warn(
                f"{key} ({h5path}) changes within {self.path} ({values.min():g} to "
                f"{values.max():g}); xlive uses one geometry per run, the median {value:g}",
                stacklevel=3,
            )
        return value


def read_crystfel_geom(
    path: str | Path,
    *,
    clen: float | None = None,
    distance: float | None = None,
    wavelength: float | None = None,
    photon_energy: float | None = None,
    adu_per_photon: float | None = None,
    data_file: str | Path | None = None,
    mask_files: bool = True,
    mask_asic_edges: int = 0,
) -> Geometry:
    """Read a CrystFEL geometry file.

    Parameters
    ----------
    path
        The ``.geom`` file.
    clen
        Camera length in metres, for a ``clen`` that names an HDF5 path: the value that path
        holds (converted to metres). Each panel's ``coffset`` is added to it, as in CrystFEL.
    distance
        Sample-to-detector distance in metres (overrides ``clen``): the panels keep their
        ``coffset`` relative to each other and their mean distance becomes ``distance``.
    wavelength, photon_energy
        Angstrom or eV, for a geometry whose photon energy is missing or an HDF5 path.
    adu_per_photon
        Gain for panels whose ``adu_per_photon``/``adu_per_eV`` names an HDF5 path.
    data_file
        One HDF5 file of the run, where values named by path (``clen``, ``photon_energy``,
        gains) are read (their median, with a warning if they change within the file).
    mask_files
        Read the mask files the geometry names (False: ignore them, e.g. when they were not
        shipped with the .geom file).
    mask_asic_edges
        Also mask this many pixels along every edge of every panel (ASIC edges of hybrid
        detectors often misbehave).

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
        return _read(
            path,
            clen=clen,
            distance=distance,
            wavelength=wavelength,
            photon_energy=photon_energy,
            adu_per_photon=adu_per_photon,
            data_file=data_file,
            mask_files=mask_files,
            mask_asic_edges=mask_asic_edges,
        )
    except GeometryError:
        raise
    except (
        ValueError,
        OverflowError,
        ArithmeticError,
        LookupError,
        TypeError,
        MemoryError,
        RecursionError,
    ) as exc:  # garbage in a field: one clear error
        raise GeometryError(
            f"{path.name} is not a valid CrystFEL geometry file ({type(exc).__name__}: "
            f"{str(exc)[:200]}); check the line it names or regenerate the file"
        ) from None


#: largest panel coordinate accepted (pixels): beyond, a typo, not a detector
MAX_PIXEL_INDEX = 1 << 16
MAX_PIXELS = 1 << 26


def _read(
    path: Path,
    *,
    clen: float | None,
    distance: float | None,
    wavelength: float | None,
    photon_energy: float | None,
    adu_per_photon: float | None,
    data_file: str | Path | None,
    mask_files: bool,
    mask_asic_edges: int,
) -> Geometry:
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise GeometryError(f"cannot read CrystFEL geometry {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise GeometryError(
            f"{path.name} is not a text file (byte {exc.start} is not UTF-8); "
            "is it really a CrystFEL .geom file?"
        ) from None
    globals_, raw_panels, bads = _parse(text)
    if not raw_panels:
        raise GeometryError(f"{path} describes no panels (expected lines like 'p0/min_fs = 0')")
    values = _DataValues(data_file, path.name)
    fix_clen = (
        "clen=<metres> (the value at that path; coffset is added), or "
        "distance=<sample-to-detector metres>; with the CLI: xlive process --geometry "
        f"{path.name} --config run.toml holding [geometry] clen = <metres> or "
        "distance = <metres>"
    )

    # beam: photon energy (eV)
    if wavelength is not None:
        energy = HC_EV_ANGSTROM / float(wavelength)
    elif photon_energy is not None:
        energy = float(photon_energy)
    else:
        energy = _photon_energy(globals_, raw_panels, values, path.name)

    # modules stacked along the slow scan when a dimN holds a module index
    module_ss = max(int(float(p["max_ss"])) for p in raw_panels.values() if "max_ss" in p) + 1
    panels, clens, offsets = [], set(), {}
    for name, props in raw_panels.items():
        where = f"{path.name}: panel {name}"
        try:
            lims = [int(float(props[k])) for k in ("min_fs", "max_fs", "min_ss", "max_ss")]
        except KeyError as exc:
            raise GeometryError(f"{where} lacks {exc.args[0]}") from None
        if not (
            0 <= lims[0] <= lims[1] < MAX_PIXEL_INDEX and 0 <= lims[2] <= lims[3] < MAX_PIXEL_INDEX
        ):
            raise GeometryError(
                f"{where}: min_fs/max_fs/min_ss/max_ss {lims} must satisfy "
                f"0 <= min <= max < {MAX_PIXEL_INDEX}"
            )
        if "res" not in props:
            raise GeometryError(f"{where} has no 'res' (pixels per metre)")
        module = _module_index(props, where)
        offsets[name] = module * module_ss
        lims[2] += offsets[name]
        lims[3] += offsets[name]
        clens.add(props.get("clen", "").strip() or None)
        gain = _gain(props, values, adu_per_photon, where)
        panels.append(
            Panel(
                name=name,
                min_fs=lims[0],
                max_fs=lims[1],
                min_ss=lims[2],
                max_ss=lims[3],
                fs=_vector(props.get("fs", "x"), where),
                ss=_vector(props.get("ss", "y"), where),
                corner_x=float(props.get("corner_x", 0.0)),
                corner_y=float(props.get("corner_y", 0.0)),
                coffset=float(props.get("coffset", 0.0)),
                pixel_size=1.0 / float(props["res"]),
                adu_per_photon=gain[0],
                adu_per_ev=gain[1],
            )
        )
    if len(clens) != 1:
        raise GeometryError(
            f"{path.name}: panels give different clen values "
            f"({sorted(map(str, clens))}); CrystFEL allows one clen"
        )
    if distance is not None:
        mean_offset = float(np.mean([p.coffset for p in panels]))
        cam = float(distance) - mean_offset
    elif clen is not None:
        cam = float(clen)
    else:
        cam = _clen(clens.pop(), values, path.name, fix_clen)
    bad = [
        f"{k} = {v}"
        for k, v in (
            ("clen", cam),
            ("photon_energy", energy),
            *((f"{p.name}/res", 1 / p.pixel_size) for p in panels),
        )
        if not math.isfinite(v) or (k != "clen" and v <= 0)
    ]
    bad += [
        f"{p.name}/{k} = {getattr(p, k)}"
        for p in panels
        for k in ("corner_x", "corner_y", "coffset")
        if not math.isfinite(getattr(p, k))
    ]
    if bad:
        raise GeometryError(
            f"{path.name}: {bad[0]} is not a usable value "
            "(lengths must be finite, res and photon energy positive)"
        )
    shape = (max(p.max_ss for p in panels) + 1, max(p.max_fs for p in panels) + 1)
    if shape[0] * shape[1] > MAX_PIXELS:
        raise GeometryError(
            f"{path.name}: the panels span {shape[1]} x {shape[0]} pixels, more "
            f"than any detector ({MAX_PIXELS} at most); check max_fs/max_ss"
        )
    sats = [
        _number(raw_panels[p.name]["max_adu"], path.name)[0]
        for p in panels
        if "max_adu" in raw_panels[p.name]
    ]
    geom = Geometry(
        shape=shape,
        distance=cam,
        wavelength=HC_EV_ANGSTROM / energy,
        panels=tuple(panels),
        saturation_value=min(sats) if sats else None,
        description=f"CrystFEL geometry {path.name}",
    )
    mask = _mask(path, geom, raw_panels, bads, offsets, mask_files, mask_asic_edges)
    return geom.replace(mask=mask) if mask.any() else geom


def _module_index(props: dict[str, str], where: str) -> int:
    """The module index among the panel's ``dimN`` keys (0 when there is none)."""
    fixed = [
        v
        for k, v in props.items()
        if re.fullmatch(r"dim\d+", k) and v.strip() not in ("%", "ss", "fs")
    ]
    if len(fixed) > 1:
        raise GeometryError(
            f"{where}: several fixed dimensions {fixed}; xlive reads one module "
            "index (modules, ss, fs)"
        )
    try:
        return int(fixed[0]) if fixed else 0
    except ValueError:
        raise GeometryError(f"{where}: cannot read the dimension {fixed[0]!r}") from None


def _photon_energy(globals_: dict, raw_panels: dict, values: _DataValues, name: str) -> float:
    keys = {**globals_, **next(iter(raw_panels.values()))}
    fix = (
        "photon_energy=<eV> or wavelength=<angstrom>; with the CLI: [geometry] "
        "wavelength = <angstrom> in the --config file"
    )
    if "wavelength" in keys:
        text = keys["wavelength"]
        if _is_path(text):
            return HC_EV_ANGSTROM / (values.get("wavelength", text.split()[0], fix) * 1e10)
        v, unit = _number(text, name)
        return HC_EV_ANGSTROM / (v * (1.0 if unit in ("A", "Å") else 1e10))
    if "photon_energy" in keys:
        text = keys["photon_energy"]
        scale = float(keys.get("photon_energy_scale", 1.0))
        if _is_path(text):
            return values.get("photon_energy", text.split()[0], fix) * scale
        v, unit = _number(text, name)
        return v * (1e3 if unit == "keV" else 1.0) * scale
    raise GeometryError(f"{name}: no photon_energy or wavelength; pass {fix}")


def _clen(text: str | None, values: _DataValues, name: str, fix: str) -> float:
    if text is None:
        raise GeometryError(f"{name}: no clen (camera length); pass {fix}")
    if _is_path(text):
        parts = text.split()
        unit = parts[1] if len(parts) > 1 else "mm"  # CrystFEL: a path's value is in mm
        return values.get("clen", parts[0], fix) * {"m": 1.0, "mm": 1e-3}[unit]
    v, unit = _number(text, name)
    if unit not in ("", "m", "mm"):
        raise GeometryError(f"{name}: clen unit {unit!r}; expected m or mm")
    return v * (1e-3 if unit == "mm" else 1.0)


def _gain(
    props: dict[str, str], values: _DataValues, given: float | None, where: str
) -> tuple[float | None, float | None]:
    """(adu_per_photon, adu_per_ev) of a panel."""
    fix = "adu_per_photon=<ADU per photon>"
    for key in ("adu_per_photon", "adu_per_eV"):
        text = props.get(key)
        if text is None:
            continue
        if _is_path(text):
            v = given if given is not None else values.get(key, text.split()[0], fix)
            return (v, None) if key == "adu_per_photon" or given is not None else (None, v)
        v, _ = _number(text, where)
        return (v, None) if key == "adu_per_photon" else (None, v)
    return (given, None)


def _mask(
    path: Path,
    geom: Geometry,
    raw_panels: dict[str, dict],
    bads: dict[str, dict],
    offsets: dict[str, int],
    mask_files: bool,
    asic_edges: int,
) -> np.ndarray:
    mask = np.zeros(geom.shape, bool)
    by_name = {p.name: p for p in geom.panels}
    for p in geom.panels:
        props = raw_panels[p.name]
        sl = (slice(p.min_ss, p.max_ss + 1), slice(p.min_fs, p.max_fs + 1))
        if props.get("no_index", "0").strip() in ("1", "true"):
            mask[sl] = True
        edge = max(int(props.get("mask_edge_pixels", 0)), int(asic_edges))
        if edge:
            sub = np.ones(p.shape, bool)
            sub[edge:-edge, edge:-edge] = False
            mask[sl] |= sub
        for n in range(-1, 8) if mask_files else ():
            mask[sl] |= _file_mask(path, props, n, p, offsets[p.name])
    for name, b in bads.items():
        if "min_fs" in b:
            fs0, fs1, ss0, ss1 = (
                int(float(b[k])) for k in ("min_fs", "max_fs", "min_ss", "max_ss")
            )
            shift = 0
            if "panel" in b:
                if b["panel"] not in by_name:
                    raise GeometryError(
                        f"{path.name}: {name}/panel names unknown panel {b['panel']!r}"
                    )
                shift = offsets[b["panel"]]
            mask[ss0 + shift : ss1 + shift + 1, fs0 : fs1 + 1] = True
        elif "min_x" in b:
            x0, x1, y0, y1 = (float(b[k]) for k in ("min_x", "max_x", "min_y", "max_y"))
            maps = geom.maps
            px = np.array([p.pixel_size for p in geom.panels])[np.maximum(maps.panel, 0)]
            x, y = maps.lab_x / px, maps.lab_y / px
            mask |= (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    return mask


def _file_mask(path: Path, props: dict[str, str], n: int, p: Panel, offset: int) -> np.ndarray:
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
        raise GeometryError(
            f"{path.name}: mask file {mask_path} does not exist; put it next to "
            "the .geom file, or pass mask_files=False to ignore it"
        )
    ss0, ss1 = p.min_ss - offset, p.max_ss - offset
    with h5py.File(mask_path, "r") as f:
        ds = f[props[data_key]]
        if ds.ndim == 3:  # (modules, ss, fs)
            values = np.asarray(ds[offset // ds.shape[1], ss0 : ss1 + 1, p.min_fs : p.max_fs + 1])
        else:
            values = np.asarray(ds[p.min_ss : p.max_ss + 1, p.min_fs : p.max_fs + 1])
    good = int(props.get(good_key, "0"), 0)
    bad = int(props.get(bad_key, "0"), 0)
    values = values.astype(np.int64)
    return ((values & good) != good) | ((values & bad) != 0)


def write_crystfel_geom(geometry: Geometry, path: str | Path) -> None:
    """Write ``geometry`` as a CrystFEL ``.geom`` file (mask into ``<stem>-mask.h5`` beside it).

    The file reads back with :func:`read_crystfel_geom` to the same panels (gains included),
    distance, wavelength and mask.
    """
    path = Path(path)
    fmt = repr
    lines = [
        f"; {geometry.description or 'detector'} written by xlive",
        f"clen = {fmt(float(geometry.distance))} m",
        f"photon_energy = {fmt(float(geometry.photon_energy))} eV",
        "dim0 = %",
        "dim1 = ss",
        "dim2 = fs",
        "data = /entry/data/data",
    ]
    if geometry.saturation_value is not None:
        lines.append(f"max_adu = {fmt(float(geometry.saturation_value))}")
    if geometry.mask is not None and geometry.mask.any():
        mask_path = path.with_name(path.stem + "-mask.h5")
        with h5py.File(mask_path, "w") as f:
            f.create_dataset("mask", data=geometry.mask.astype(np.uint8), compression="gzip")
        lines += [
            f"mask0_file = {mask_path.name}",
            "mask0_data = /mask",
            "mask0_goodbits = 0x0",
            "mask0_badbits = 0x1",
        ]
    lines.append("")
    for p in geometry.panels:

        def vec(v: tuple[float, float, float]) -> str:
            return " ".join(f"{float(c):+.17g}{a}" for c, a in zip(v, "xyz", strict=True))

        lines += [
            f"{p.name}/min_fs = {p.min_fs}",
            f"{p.name}/max_fs = {p.max_fs}",
            f"{p.name}/min_ss = {p.min_ss}",
            f"{p.name}/max_ss = {p.max_ss}",
            f"{p.name}/fs = {vec(p.fs)}",
            f"{p.name}/ss = {vec(p.ss)}",
            f"{p.name}/corner_x = {fmt(float(p.corner_x))}",
            f"{p.name}/corner_y = {fmt(float(p.corner_y))}",
            f"{p.name}/coffset = {fmt(float(p.coffset))}",
            f"{p.name}/res = {fmt(1.0 / p.pixel_size)}",
        ]
        if p.adu_per_photon is not None:
            lines.append(f"{p.name}/adu_per_photon = {fmt(float(p.adu_per_photon))}")
        elif p.adu_per_ev is not None:
            lines.append(f"{p.name}/adu_per_eV = {fmt(float(p.adu_per_ev))}")
        lines.append("")
    path.write_text("\n".join(lines))


__all__ = ["read_crystfel_geom", "write_crystfel_geom"]
