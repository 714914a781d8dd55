"""European XFEL runs through extra-data, with extra-geom geometries.

A run directory (``RAW-R0012-*.h5`` / ``CORR-R0012-*.h5`` files) holds one or more multi-module
detectors (AGIPD, JUNGFRAU, LPD, DSSC: :func:`extra_data.components.identify_multimod_detectors`)
or a single-module camera such as ePix100 (``detector="SOURCE"`` naming its instrument
source). Every pulse (AGIPD, LPD, DSSC) or memory cell (JUNGFRAU) of every train is a frame;
the modules are stacked along the slow scan (``(modules * ss, fs)``), as CrystFEL geometries for
these detectors describe them, and the train and pulse ids are per-frame coordinates.

EuXFEL files record neither the detector distance nor the photon energy, and the detector's
panel positions live in a separate geometry: pass ``geometry=`` (e.g. a CrystFEL .geom read
with :func:`xlive.geometry.crystfel.read_crystfel_geom`), or ``distance=`` and ``wavelength=``/
``photon_energy=`` to use extra-geom's *default* layout for the detector, which is only a
placeholder for the real positions (the geometry says so and the CLI and dashboard warn).
Raw (uncalibrated) data are refused: xlive works on corrected data (ADU, keV or photons).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np

from ..conventions import HC_EV_ANGSTROM, PULSE_ID, TRAIN_ID
from ..errors import GeometryError, SourceError
from ..geometry import Geometry
from .base import FrameReader, Source

_FILE = re.compile(r"^(RAW|CORR)-R\d{4}-.*-S\d{5}\.h5$")
_IMAGE_KEYS = {
    "AGIPD1M": "image.data",
    "AGIPD500K": "image.data",
    "LPD1M": "image.data",
    "DSSC1M": "image.data",
    "JUNGFRAU": "data.adc",
}


def _need_extra_data():
    try:
        import extra_data
    except ImportError:  # pragma: no cover - the extra is installed in CI
        raise SourceError(
            "reading European XFEL runs needs extra-data: pip install 'xlive[xfel]'"
        ) from None
    return extra_data


def is_euxfel_run(path: str | Path) -> bool:
    """Whether ``path`` is a folder of EuXFEL run files (``RAW-R0012-AGIPD00-S00000.h5``...)."""
    try:
        return os.path.isdir(path) and any(_FILE.match(n) for n in os.listdir(path))
    except OSError:
        return False


class _Detector:
    """The frames of one detector in a run: a lookup of (train, pulse) per frame."""

    def __init__(self, path: str, detector: str | None, key: str | None):
        ed = _need_extra_data()
        from extra_data.components import identify_multimod_detectors

        self.run = ed.RunDirectory(path)
        found = {name: cls for name, cls in identify_multimod_detectors(self.run)}
        if detector is None:
            if len(found) != 1:
                cams = sorted(s for s in self.run.instrument_sources if "EPIX" in s.upper())
                raise SourceError(
                    f"{path} holds {len(found)} multi-module detectors "
                    f"({', '.join(sorted(found)) or 'none'}) and cameras {cams}: choose one with "
                    "detector=NAME (--detector NAME on the command line)"
                )
            detector = next(iter(found))
        self.name = detector
        if detector in found:
            cls = found[detector]
            try:
                self.component = cls(self.run, detector, raw=False)
            except ed.SourceNameError:
                raise SourceError(
                    f"{detector} in {path} holds raw (uncalibrated) data: xlive needs corrected "
                    "data (float ADU, keV or photons: the run's proc/CORR files); open the "
                    "run's proc folder instead"
                ) from None
            self.kind = cls.__name__
            self.key = key or _IMAGE_KEYS.get(self.kind, "image.data")
            self.n_modules = self.component.n_modules
            kd = self.component[self.key]
            self.module_shape = tuple(kd.shape[-2:])
            if np.dtype(kd.dtype).kind == "u":
                raise SourceError(
                    f"{detector} in {path} holds raw (uncalibrated) {kd.dtype} data: xlive "
                    "needs corrected data (float ADU, keV or photons: the run's proc/CORR "
                    "files); open the run's proc folder instead"
                )
            self.dtype = np.dtype(kd.dtype)
        elif (
            detector in self.run.instrument_sources
            or detector + ":daqOutput" in self.run.instrument_sources
        ):
            src = detector if detector in self.run.instrument_sources else detector + ":daqOutput"
            self.component = None
            self.kind = "camera"
            self.key = key or next(
                (k for k in ("data.image.pixels", "data.image.data") if k in self.run[src].keys()),
                None,
            )
            if self.key is None:
                raise SourceError(
                    f"{src} has no image key; pass key=NAME "
                    f"(it has {sorted(self.run[src].keys())[:10]})"
                )
            self.source = src
            kd = self.run[src, self.key]
            self.n_modules = 1
            self.module_shape = tuple(kd.shape[-2:])
            self.dtype = np.dtype(kd.dtype)
        else:
            raise SourceError(
                f"{path} has no detector {detector!r}; multi-module detectors: "
                f"{sorted(found) or 'none'}; instrument sources: "
                f"{sorted(self.run.instrument_sources)[:10]}"
            )
        self.train_ids, self.pulse_ids = self._frames()

    def _frames(self) -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "camera":
            tids = np.asarray(self.run[self.source, self.key].train_id_coordinates(), np.uint64)
            return tids, np.zeros(tids.size, np.uint64)
        if self.kind == "JUNGFRAU":
            kd = self.component[self.key]
            n_cells = kd.shape[-3]
            tids = np.repeat(np.asarray(self.component.train_ids, np.uint64), n_cells)
            return tids, np.tile(np.arange(n_cells, dtype=np.uint64), len(self.component.train_ids))
        ids = self.component.get_array("image.pulseId", fill_value=0)
        # (module, train, pulse) ... or (module, train_pulse): take the first module present
        arr = np.asarray(ids)
        tids = np.asarray(ids.coords["train"].values, np.uint64)
        pulses = arr.max(axis=0).reshape(len(tids), -1)
        return np.repeat(tids, pulses.shape[1]), pulses.ravel().astype(np.uint64)

    @property
    def shape(self) -> tuple[int, int]:
        ss, fs = self.module_shape
        return (self.n_modules * ss, fs)

    def read(self, index: int) -> np.ndarray:
        from extra_data import by_id, by_index

        tid = int(self.train_ids[index])
        first = int(np.searchsorted(self.train_ids, self.train_ids[index]))
        k = index - first
        if self.kind == "camera":
            return self.run[self.source, self.key].select_trains(by_id[[tid]]).ndarray()[0]
        sel = self.component.select_trains(by_id[[tid]])
        if self.kind == "JUNGFRAU":
            a = np.asarray(sel.get_array(self.key))  # (module, train, cell, ss, fs)
            a = a[:, 0, k]
        else:
            a = np.asarray(sel.get_array(self.key, pulses=by_index[[k]]))[:, 0, 0]
        return a.reshape(self.shape)


class ExtraDataReader(FrameReader):
    """Reads frame i = (train, pulse) of a detector (the run is reopened once per process)."""

    def __init__(self, path: str, detector: str, key: str, **kw):
        super().__init__(**kw)
        self.path, self.detector, self.key = path, detector, key
        self._det: _Detector | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_det": None}

    def _read(self, index: int) -> np.ndarray:
        if self._det is None:
            self._det = _Detector(self.path, self.detector, self.key)
        return self._det.read(index)


class ExtraDataSource(Source):
    """Frames of one detector of a European XFEL run directory.

    Parameters
    ----------
    path
        The run directory (raw or proc folder of one run).
    detector
        Detector name (``SPB_DET_AGIPD1M-1``, ``SPB_IRDA_JF4M``) or a camera's instrument
        source (ePix100); default: the run's only multi-module detector.
    key
        Image key (default ``image.data``, JUNGFRAU ``data.adc``, cameras ``data.image.pixels``).
    distance, wavelength, photon_energy
        Metres, angstrom, eV: for extra-geom's default layout when no ``geometry`` is given.
    **options
        See :class:`~xlive.sources.base.Source` (``geometry=`` the real detector geometry).
    """

    name = "euxfel"

    @staticmethod
    def guess_can_open(target: str) -> bool:
        return is_euxfel_run(target)

    def __init__(
        self,
        path: str | Path,
        *,
        detector: str | None = None,
        key: str | None = None,
        distance: float | None = None,
        wavelength: float | None = None,
        photon_energy: float | None = None,
        **options,
    ):
        super().__init__(**options)
        self.path = str(path)
        self._det = _Detector(self.path, detector, key)
        self.distance = distance
        if wavelength is None and photon_energy is not None:
            wavelength = HC_EV_ANGSTROM / float(photon_energy)
        self.wavelength = wavelength
        self.refresh()

    @property
    def detector(self) -> str:
        return self._det.name

    def _count(self) -> int:
        return int(self._det.train_ids.size)

    def _make_reader(self) -> FrameReader:
        return ExtraDataReader(
            self.path,
            self._det.name,
            self._det.key,
            shape=self._det.shape,
            dtype=self._det.dtype,
            masked_values=self._masked_for(self._det.dtype),
        )

    def _native_metadata(self, n: int) -> dict[str, np.ndarray]:
        return {TRAIN_ID: self._det.train_ids[:n], PULSE_ID: self._det.pulse_ids[:n]}

    def _frame_shape_hint(self) -> tuple[int, int]:
        return self._det.shape

    def _dtype_hint(self) -> np.dtype:
        return self._det.dtype

    def _header_geometry(self) -> Geometry | None:
        if self.distance is None or self.wavelength is None:
            raise GeometryError(
                f"European XFEL files record neither the detector distance nor the photon "
                f"energy, and {self._det.name}'s panel positions live in a geometry file: pass "
                "geometry=read_crystfel_geom('detector.geom') (CLI: --geometry detector.geom), "
                "or distance= and wavelength= (CLI: [geometry] distance and wavelength in the "
                "--config file) to use extra-geom's default layout as a placeholder"
            )
        return default_geometry(self._det, self.distance, self.wavelength)


def default_geometry(det: _Detector, distance: float, wavelength: float) -> Geometry:
    """extra-geom's default layout of ``det`` (a placeholder for the real panel positions)."""
    try:
        import extra_geom
    except ImportError:  # pragma: no cover - the extra is installed in CI
        raise GeometryError(
            "extra-geom is needed for EuXFEL detector layouts: pip install "
            "'xlive[xfel]', or pass geometry= yourself"
        ) from None
    from ..geometry.crystfel import read_crystfel_geom

    if det.kind in ("AGIPD1M",):
        eg = extra_geom.AGIPD_1MGeometry.from_quad_positions(
            [(-525, 625), (-550, -10), (520, -160), (542.5, 475)]
        )
    elif det.kind == "camera" and det.module_shape == (704, 768):
        eg = extra_geom.Epix100Geometry.from_origin()
    else:
        raise GeometryError(
            f"xlive knows no default layout for {det.kind} {det.name} (JUNGFRAU module "
            "positions differ between instruments): pass its geometry, e.g. "
            "geometry=read_crystfel_geom('jf.geom') (CLI: --geometry jf.geom)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "default.geom"
        eg.write_crystfel_geom(
            str(path),
            dims=("frame", "modno", "ss", "fs"),
            clen=distance,
            photon_energy=HC_EV_ANGSTROM / wavelength,
            adu_per_ev=1e-3,
        )
        if det.kind == "camera":  # a single module: no module index in the data
            path.write_text(re.sub(r"(?m)^\S+/dim1 = 0\n", "", path.read_text()))
        geom = read_crystfel_geom(path, mask_files=False)
    if geom.shape != det.shape:
        raise GeometryError(
            f"extra-geom's default {det.kind} layout is {geom.shape}, the data "
            f"{det.shape}: pass geometry="
        )
    panels = tuple(p.__class__(**{**p.__dict__, "adu_per_ev": None}) for p in geom.panels)
    return geom.replace(
        panels=panels,
        sentinels=(),
        description=f"{det.name}: extra-geom default {det.kind} layout",
        placeholder=(
            f"{det.name} uses extra-geom's default {det.kind} layout, not this "
            "experiment's panel positions: give the real geometry with --geometry "
            "FILE.geom (CrystFEL, e.g. from EXtra-geom or the facility)"
        ),
    )
