"""Full imgCIF/CBF files through **pycbf** (CBFlib's own Python binding): several arrays per
file (one per detector element, as cctbx.xfel exports multi-panel detectors), any compression
CBFlib knows (``x-CBF_PACKED``, ``x-CBF_PACKED_V2``, canonical, byte-offset, none), and the
geometry the imgCIF header carries (axes, detector elements, distance, wavelength).

fabio reads single-array byte-offset CBFs (PILATUS/EIGER miniCBF) quickly and stays the reader
for those; :func:`needs_pycbf` tells the other kinds apart from the MIME headers of the binary
sections, so fabio is never handed a file it cannot decode (it fails with an internal message
on a multi-array file and was seen to hang on a packed one).

Frames: the arrays of a file are stacked along the slow scan, in the order of ``_array_data``
(narrower arrays padded on the right, padding masked), and each array is one geometry panel
placed where CBFlib's detector positioner puts it (``construct_detector`` and
``get_pixel_coordinates_fs``), so no axis arithmetic is redone here.

Lab frames: imgCIF has +Z from the sample towards the source, +Y up, +X = Y x Z; xlive has
+z along the beam (see :mod:`xlive.geometry.core`). The map is ``(x, y, z) = (X, -Y, -Z)`` (a
half turn about X): a detector whose fast axis is +X and slow axis -Y (the imgCIF convention
for a PILATUS) then has ``fs = +x``, ``ss = +y``, as :meth:`Geometry.simple` does.
"""

from __future__ import annotations

import bz2
import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadFrameError, SourceError
from ..geometry.core import Geometry, Panel

#: the opening line of a binary section (its closing line ends in "----")
_OPENING = re.compile(rb"--CIF-BINARY-FORMAT-SECTION--(?!--)")


def _pycbf():
    try:
        import pycbf
    except ImportError:  # pragma: no cover - the extra is installed in CI
        raise SourceError(
            "this CBF (several arrays, or a compression other than byte-offset) needs CBFlib's "
            "pycbf: pip install 'xlive[cbf]'"
        ) from None
    return pycbf


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes, ``.bz2``/``.gz`` decompressed (pycbf reads plain CBF only)."""
    p = str(path)
    opener = bz2.open if p.endswith(".bz2") else gzip.open if p.endswith(".gz") else open
    with opener(p, "rb") as f:
        return f.read()


def binary_sections(raw: bytes) -> list[bytes]:
    """The lower-cased ``conversions=`` value of every binary section (``b""`` if absent)."""
    out = []
    for m in _OPENING.finditer(raw):  # a section's opening line, not its closing "----"
        head = raw[m.end() : m.end() + 1024].lower()
        i = head.find(b"conversions=")
        conv = b""
        if i >= 0:
            conv = head[i + len(b"conversions=") :].split(b"\n", 1)[0].strip().strip(b'";\r')
        out.append(conv)
    return out


def needs_pycbf(raw: bytes) -> bool:
    """True unless the CBF holds exactly one byte-offset array (what fabio decodes)."""
    sections = binary_sections(raw)
    return not (len(sections) == 1 and sections[0] == b"x-cbf_byte_offset")


def first_section_needs_pycbf(path: str | Path, head: int = 65536) -> bool:
    """Cheap per-file guard for a plain ``.cbf``: is its first array compressed otherwise than
    byte-offset? Only the first ``head`` bytes are read (a miniCBF header is ~4 KB); a file
    whose first array is byte-offset but holds more arrays is not caught here (fabio then
    fails on it quickly with an error, which makes the frame bad, rather than hanging)."""
    with open(path, "rb") as f:
        sections = binary_sections(f.read(head))
    return bool(sections) and sections[0] != b"x-cbf_byte_offset"


def is_cbf(path: str | Path) -> bool:
    p = str(path).lower()
    return p.endswith((".cbf", ".cbf.bz2", ".cbf.gz"))


def _handle(raw: bytes, origin: str):
    pycbf = _pycbf()
    h = pycbf.cbf_handle_struct()
    try:
        h.read_buffer(raw, pycbf.MSG_DIGEST)
        h.select_datablock(0)
    except Exception as exc:
        raise BadFrameError(f"CBFlib cannot parse {origin}: {str(exc).strip()}") from None
    return h


def _array(h, row: int, origin: str) -> np.ndarray:
    """Array ``row`` of ``_array_data`` as ``(slow, fast)`` (a third dimension must be 1)."""
    h.find_category(b"array_data")
    h.find_column(b"data")
    h.select_row(row)
    try:
        (_, _, elsize, signed, _, n, _, _, bo, nfast, nmid, nslow, _) = (
            h.get_integerarrayparameters_wdims_fs()
        )
        dtype = np.dtype(f"{'i' if signed else 'u'}{elsize}")
        data = h.get_integerarray_as_string()
    except Exception:  # a real-valued array
        try:
            (_, _, elsize, n, bo, nfast, nmid, nslow, _) = h.get_realarrayparameters_wdims_fs()
            dtype = np.dtype(f"f{elsize}")
            data = h.get_realarray_as_string()
        except Exception as exc:
            raise BadFrameError(
                f"CBFlib cannot decode array {row} of {origin}: {str(exc).strip()}"
            ) from None
    # CBFlib hands the elements back in the machine's byte order
    arr = np.frombuffer(data, dtype)
    if nslow > 1 or arr.size != n or n != nfast * max(nmid, 1):
        raise BadFrameError(
            f"array {row} of {origin} is {nfast} x {nmid} x {nslow} ({n} elements); "
            "xlive reads 2-D arrays"
        )
    return arr.reshape(max(nmid, 1), nfast)


def n_arrays(h) -> int:
    h.find_category(b"array_data")
    return h.count_rows()


def read_arrays(path: str | Path, raw: bytes | None = None) -> list[np.ndarray]:
    """Every array of the CBF file, each ``(slow, fast)``, in ``_array_data`` order."""
    raw = read_bytes(path) if raw is None else raw
    h = _handle(raw, str(path))
    try:
        n = n_arrays(h)
    except Exception:
        raise BadFrameError(f"{path} has no _array_data category: not an image CBF") from None
    return [_array(h, i, str(path)) for i in range(n)]


@dataclass(frozen=True)
class Layout:
    """Where each array of a file goes in the stacked frame: ``rows[i]`` is its first row."""

    shapes: tuple[tuple[int, int], ...]

    @property
    def rows(self) -> tuple[int, ...]:
        return tuple(int(v) for v in np.cumsum([0] + [s[0] for s in self.shapes])[:-1])

    @property
    def shape(self) -> tuple[int, int]:
        return (sum(s[0] for s in self.shapes), max(s[1] for s in self.shapes))

    def stack(self, arrays: list[np.ndarray], origin: str = "") -> np.ndarray:
        if tuple(a.shape for a in arrays) != self.shapes:
            raise BadFrameError(
                f"{origin} holds arrays {[a.shape for a in arrays]}, the run's first file "
                f"{list(self.shapes)}"
            )
        if len(arrays) == 1:
            return arrays[0]
        out = np.zeros(self.shape, np.result_type(*arrays))
        for r, a in zip(self.rows, arrays, strict=True):
            out[r : r + a.shape[0], : a.shape[1]] = a
        return out

    def padding(self) -> np.ndarray | None:
        """True on the padding right of narrower arrays (None when there is none)."""
        width = self.shape[1]
        if all(s[1] == width for s in self.shapes):
            return None
        pad = np.zeros(self.shape, bool)
        for r, (ny, nx) in zip(self.rows, self.shapes, strict=True):
            pad[r : r + ny, nx:] = True
        return pad


def read_frame(path: str | Path) -> np.ndarray:
    """The file's arrays as one frame (stacked along the slow scan) through pycbf."""
    arrays = read_arrays(path)
    if not arrays:
        raise BadFrameError(f"{path} holds no array")
    return Layout(tuple(a.shape for a in arrays)).stack(arrays, str(path))


# --------------------------------------------------------------------------- geometry
def _lab(v) -> np.ndarray:
    """imgCIF lab (mm) to xlive lab (mm): (X, -Y, -Z)."""
    x, y, z = (float(c) for c in v)
    return np.array([x, -y, -z])


def geometry_from_cbf(path: str | Path, raw: bytes | None = None) -> Geometry | None:
    """The geometry of a full imgCIF header: one panel per array, placed by CBFlib.

    Returns None when the header lacks the detector description (e.g. a miniCBF, whose
    geometry is in ``_array_data.header_contents``) or the wavelength.
    """
    raw = read_bytes(path) if raw is None else raw
    h = _handle(raw, str(path))
    n = n_arrays(h)
    shapes = []
    for i in range(n):
        shapes.append(_array_shape(h, i))
    layout = Layout(tuple(shapes))
    try:
        wavelength = float(h.get_wavelength())
        detectors = [h.construct_detector(i) for i in range(n)]
    except Exception:
        return None  # no imgCIF detector description: the caller tries other headers
    panels = []
    for i, (d, row0, (ny, nx)) in enumerate(zip(detectors, layout.rows, shapes, strict=True)):
        p00 = _lab(d.get_pixel_coordinates_fs(0, 0))
        step_f = _lab(d.get_pixel_coordinates_fs(1, 0)) - p00
        step_s = _lab(d.get_pixel_coordinates_fs(0, 1)) - p00
        px = float(np.linalg.norm(step_f))  # mm
        corner = p00 - 0.5 * step_f - 0.5 * step_s  # the panel's very corner, pixel (0, 0)
        panels.append(
            dict(
                name=_element_name(h, i),
                min_fs=0,
                max_fs=nx - 1,
                min_ss=row0,
                max_ss=row0 + ny - 1,
                fs=tuple(float(c) for c in step_f / px),
                ss=tuple(float(c) for c in step_s / px),
                corner_x=float(corner[0] / px),
                corner_y=float(corner[1] / px),
                pixel_size=px * 1e-3,
                z=float(corner[2]),
            )
        )
    # the distance: CBFlib's (perpendicular to the first element), each panel's corner z
    # beyond it is its coffset
    distance = float(detectors[0].get_detector_distance())
    for p in panels:
        p["coffset"] = (p.pop("z") - distance) * 1e-3
    overload = _intensities(h, "overload")
    undefined = _intensities(h, "undefined_value")  # the format's own gap / bad-pixel value
    return Geometry(
        shape=layout.shape,
        distance=distance * 1e-3,
        wavelength=wavelength,
        panels=tuple(Panel(**p) for p in panels),
        mask=layout.padding(),
        saturation_value=overload,
        sentinels=None if undefined is None else (undefined,),
        description=f"imgCIF detector of {Path(str(path)).name} ({n} arrays)",
    )


def _array_shape(h, row: int) -> tuple[int, int]:
    h.find_category(b"array_data")
    h.find_column(b"data")
    h.select_row(row)
    try:
        p = h.get_integerarrayparameters_wdims_fs()
        nfast, nmid = p[9], p[10]
    except Exception:
        p = h.get_realarrayparameters_wdims_fs()
        nfast, nmid = p[5], p[6]
    return (max(int(nmid), 1), int(nfast))


def _element_name(h, i: int) -> str:
    try:
        return h.get_element_id(i).decode()
    except Exception:
        return f"array{i}"


def _intensities(h, column: str) -> float | None:
    """``_array_intensities.COLUMN`` of the first array (None when absent)."""
    try:
        h.find_category(b"array_intensities")
        h.find_column(column.encode())
        h.select_row(0)
        return float(h.get_value())
    except Exception:
        return None
