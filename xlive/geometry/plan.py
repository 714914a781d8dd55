"""The geometry a run is analysed with: its headers, a geometry file, settings and a mask.

Order: a geometry file (``--geometry``: CrystFEL ``.geom``, pyFAI ``.poni``, NXmx master)
replaces what the run's headers say; when neither gives a complete geometry, the quantities
the headers hold (SMV, PILATUS TIFF...) are completed by the configuration's ``[geometry]``
values; the ``[geometry]`` values then override (distance, wavelength, beam centre, pixel
size, saturation); last, an extra mask file (``--mask``) is added. A geometry that still lacks
something raises :class:`~xlive.errors.GeometryError` naming the missing quantities and how to
give them on the command line.

A :class:`GeometryPlan` is set on a source (``source.geometry_edit = plan``) and applied when
the source first builds its geometry, which for a run started later is once its first frame
exists.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, GeometryError
from .core import Geometry
from .headers import QUANTITIES, geometry_from_quantities

#: ``[geometry]`` numbers that override the geometry (besides the QUANTITIES)
EXTRA = ("saturation_value",)
#: ``[geometry]`` numbers only a geometry file that leaves them to the data uses
FILE_ONLY = ("clen", "photon_energy")


def read_geometry_file(path: str | Path, *, shape=None, **values) -> Geometry:
    """A geometry file by its suffix: ``.geom`` (CrystFEL), ``.poni`` (pyFAI; ``shape`` when it
    gives none), ``.h5``/``.nxs`` (NXmx master) or ``.json`` (xlive); ``values`` (``clen``,
    ``distance``, ``wavelength``, ``photon_energy``) complete what the file leaves to the data
    (see :func:`xlive.geometry.files.read_geometry_file`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"geometry file {path} does not exist")
    suffix = path.suffix.lower()
    values = {k: v for k, v in values.items() if v is not None}
    if suffix == ".json":
        import json

        try:
            d = json.loads(path.read_text())
            return Geometry.from_dict(d.get("geometry", d))
        except (ValueError, KeyError, TypeError) as exc:
            raise GeometryError(f"{path} is not an xlive geometry JSON ({exc})") from None
    if suffix == ".poni":
        from .poni import read_poni_geometry

        return read_poni_geometry(
            path,
            shape=tuple(shape) if shape and all(shape) else None,
            wavelength=values.get("wavelength"),
        )
    from .files import read_geometry_file as read_file

    return read_file(path, **values)


def read_mask_file(spec: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """A mask (True = masked, i.e. nonzero pixels) from ``.npy``, HDF5 (``FILE`` with one 2-D
    dataset, or ``FILE:/path``) or any image fabio reads."""
    text = str(spec)
    path, dset = text, ""
    head, _, tail = text.rpartition(":")
    if head and Path(head).is_file():  # FILE:/dataset
        path, dset = head, tail
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"mask file {p} does not exist")
    if p.suffix == ".npy":
        m = np.load(p)
    elif p.suffix in (".h5", ".hdf5", ".nxs"):
        import h5py

        with h5py.File(p, "r") as f:
            if not dset:
                found = []
                f.visititems(
                    lambda n, o: (
                        found.append(n) if isinstance(o, h5py.Dataset) and o.ndim == 2 else None
                    )
                )
                if len(found) != 1:
                    raise ConfigError(
                        f"{p} holds {len(found)} 2-D datasets {found[:5]}; "
                        f"name one: --mask {p}:/path/to/mask"
                    )
                dset = found[0]
            m = f[dset][()]
    else:
        import fabio

        with fabio.open(str(p)) as image:
            m = image.data
    m = np.asarray(m) != 0
    if m.shape != tuple(shape):
        raise GeometryError(f"mask {text} is {m.shape}, the detector is {tuple(shape)}")
    return m


@dataclass(frozen=True)
class GeometryPlan:
    """How to build the analysis geometry from what the run says (see the module doc)."""

    file: str | None = None
    mask: str | None = None
    #: ``[geometry]`` numbers: distance (m), wavelength (Å), beam_center_x/y (pixels),
    #: pixel_size (m), saturation_value
    values: dict = field(default_factory=dict)

    @classmethod
    def from_options(
        cls, *, geometry: str | None = None, mask: str | None = None, table: dict | None = None
    ) -> GeometryPlan | None:
        """From ``--geometry``/``--mask`` and the ``[geometry]`` table (whose ``file``/``mask``
        the options override); None when there is nothing to do."""
        table = dict(table or {})
        file = geometry or table.pop("file", None)
        mask = mask or table.pop("mask", None)
        table.pop("file", None)
        table.pop("mask", None)
        values = {
            k: float(v) for k, v in table.items() if k in QUANTITIES or k in EXTRA or k in FILE_ONLY
        }
        if not (file or mask or values):
            return None
        return cls(file=file, mask=mask, values=values)

    def __call__(self, geom: Geometry | None, source=None) -> Geometry:
        shape = (
            tuple(geom.shape)
            if geom is not None
            else (tuple(source._frame_shape_hint()) if source is not None else (0, 0))
        )
        v = self.values
        if self.file:
            geom = read_geometry_file(
                self.file,
                shape=shape,
                **{k: v[k] for k in ("clen", "distance", "wavelength", "photon_energy") if k in v},
            )
        if geom is None:
            if not all(shape):
                raise GeometryError("the run has no frame yet: its detector shape is unknown")
            q = dict(getattr(source, "header_quantities", None) or {})
            q.update({k: x for k, x in v.items()})
            geom = geometry_from_quantities(
                q,
                shape=shape,
                description="from the headers and [geometry]",
                sentinels=getattr(source, "header_sentinels", None),
            )
        else:
            geom = apply_values(geom, v)
        if self.mask:
            geom = geom.with_mask(read_mask_file(self.mask, geom.shape))
        return geom

    def to_dict(self) -> dict:
        return {"file": self.file, "mask": self.mask, "values": dict(self.values)}


def apply_values(geom: Geometry, values: dict) -> Geometry:
    """``geom`` with the ``[geometry]`` numbers applied."""
    changes = {
        k: float(values[k]) for k in ("distance", "wavelength", "saturation_value") if k in values
    }
    panel_keys = {"beam_center_x", "beam_center_y", "pixel_size"} & set(values)
    if panel_keys:
        if len(geom.panels) != 1:
            raise GeometryError(
                f"{sorted(panel_keys)} apply to single-panel detectors only; "
                "give a geometry file (--geometry FILE) for this detector"
            )
        bx, by = geom.beam_center
        p = geom.panels[0]
        p = dataclasses.replace(
            p,
            corner_x=-float(values.get("beam_center_x", bx)),
            corner_y=-float(values.get("beam_center_y", by)),
            pixel_size=float(values.get("pixel_size", p.pixel_size)),
        )
        changes["panels"] = (p,)
    return geom.replace(**changes) if changes else geom
