"""Indexing analyzer: unit cell, orientation and lattices of every hit, from its spots.

:class:`Indexer` works on the spot finder's peak table (``peak_x``, ``peak_y``, ``peak_snr``,
``is_hit``), so it can run right after the spot finder on the same block
(:class:`IndexedAnalyzer`) or later over a feature store (:func:`index_features`), e.g. to fill
in hits that a live run left unindexed to keep up. The method is in
:mod:`xlive.analyzers.indexing_core`.

Per frame: ``indexed``, ``n_lattices``, ``index_tried`` (False for a hit left for later); per
lattice (dim ``lattice``): ``unit_cell`` (``cell_param`` = a, b, c in Å, alpha, beta, gamma in
degrees; in the given cell's setting, or the conventional setting of the Bravais lattice found),
``orientation`` (A = UB: columns a*, b*, c* in the lab frame, 1/Å), ``bravais`` (code into
:data:`~xlive.analyzers.indexing_cells.BRAVAIS`), ``n_indexed``, ``indexed_fraction`` and
``rmsd_px`` (observed vs predicted spot positions); per peak-table row: ``peak_lattice``
(lattice indexing it, -1 none). With a given cell, a hit whose spots index only to another cell
gets that cell in ``unmatched_cell`` (what the "cell differs" flag looks at).
"""

from __future__ import annotations

import time

import numpy as np

from ..conventions import FRAME, PEAK
from ..geometry import Geometry
from .base import FeatureSpec
from .indexing_cells import BRAVAIS
from .indexing_core import IndexingParams, Lattice, index_spots
from .indexing_predict import spot_pixels
from .indexing_search import DirectionGrid

LATTICE = "lattice"
CELL_PARAM = "cell_param"
CELL_PARAMS = ("a", "b", "c", "alpha", "beta", "gamma")
XYZ = "xyz"
AXIS = "axis"

#: the peak-table features the indexer reads
INPUTS = ("peak_x", "peak_y", "peak_snr", "is_hit")

__all__ = [
    "Indexer",
    "IndexedAnalyzer",
    "IndexingParams",
    "index_features",
    "CELL_PARAMS",
    "LATTICE",
    "CELL_PARAM",
]


def reciprocal_vectors(lab: np.ndarray, wavelength: float) -> np.ndarray:
    """Spots' lab positions ``(n, 3)`` (m) -> reciprocal vectors ``s1 - s0`` (1/Å)."""
    s1 = lab / np.linalg.norm(lab, axis=1, keepdims=True) / wavelength
    s1[:, 2] -= 1.0 / wavelength
    return s1


class Indexer:
    """Indexes hits from their peak tables.

    Parameters
    ----------
    geometry
        The detector geometry the peaks were found with.
    params
        :class:`IndexingParams`; ``cell`` (and ``space_group``) to index to a known cell.
    max_peaks
        Rows of the peak table (the spot finder's ``max_peaks``), for ``peak_lattice``.

    Examples
    --------
    >>> from xlive.simulate import Simulation
    >>> from xlive.analyzers import SpotFinder
    >>> sim = Simulation(detector="eiger500k", seed=1, hit_fraction=1.0)
    >>> spots = SpotFinder(sim.geometry)(sim.frame(0)[0])
    >>> out = Indexer(sim.geometry).index_block(spots)
    >>> bool(out["indexed"][0]), int(out["n_lattices"][0])
    (True, 1)
    """

    #: not "indexing": the registry would take this class for a frame analyzer of that name
    name = "indexer"

    def __init__(
        self, geometry: Geometry, params: IndexingParams | None = None, *, max_peaks: int = 256
    ):
        self.geometry = geometry
        self.params = params or IndexingParams()
        self.max_peaks = int(max_peaks)
        self.grid = DirectionGrid(self.params.step)
        if self.params.cell is not None:
            self.params.target.bravais  # noqa: B018 - checks the space group early

    # ------------------------------------------------------------------ declarations
    def describe(self) -> list[FeatureSpec]:
        nl = self.params.max_lattices
        lat = {LATTICE: nl}
        return [
            FeatureSpec("indexed", (FRAME,), "bool", "", "at least one lattice found", fill=0),
            FeatureSpec("n_lattices", (FRAME,), "int8", "", "lattices found", fill=0),
            FeatureSpec(
                "index_tried",
                (FRAME,),
                "bool",
                "",
                "indexing was attempted (False: not a hit, or a hit left for later)",
                fill=0,
            ),
            FeatureSpec(
                "unit_cell",
                (FRAME, LATTICE, CELL_PARAM),
                "float32",
                "angstrom, degree",
                "a, b, c (angstrom), alpha, beta, gamma (degrees) of each lattice",
                sizes={**lat, CELL_PARAM: 6},
            ),
            FeatureSpec(
                "orientation",
                (FRAME, LATTICE, XYZ, AXIS),
                "float32",
                "1/angstrom",
                "A = UB: columns a*, b*, c* in the lab frame",
                sizes={**lat, XYZ: 3, AXIS: 3},
            ),
            FeatureSpec(
                "bravais",
                (FRAME, LATTICE),
                "int8",
                "",
                "Bravais lattice: " + " ".join(f"{i}={b}" for i, b in enumerate(BRAVAIS)),
                fill=-1,
                sizes=lat,
            ),
            FeatureSpec(
                "n_indexed",
                (FRAME, LATTICE),
                "int32",
                "",
                "spots indexed by the lattice",
                fill=0,
                sizes=lat,
            ),
            FeatureSpec(
                "indexed_fraction",
                (FRAME, LATTICE),
                "float32",
                "",
                "fraction of the frame's spots indexed by the lattice",
                sizes=lat,
            ),
            FeatureSpec(
                "rmsd_px",
                (FRAME, LATTICE),
                "float32",
                "pixel",
                "RMS distance of indexed spots from their predicted positions",
                sizes=lat,
            ),
            FeatureSpec(
                "peak_lattice",
                (FRAME, PEAK),
                "int8",
                "",
                "lattice indexing each peak-table row (-1: none)",
                fill=-1,
                sizes={PEAK: self.max_peaks},
            ),
            FeatureSpec(
                "unmatched_cell",
                (FRAME, CELL_PARAM),
                "float32",
                "angstrom, degree",
                "with a given cell: the cell the hit indexes to instead (NaN otherwise)",
                sizes={CELL_PARAM: 6},
            ),
        ]

    def coords(self) -> dict[str, tuple[str, np.ndarray, dict]]:
        # integer coordinates with their labels in attrs (Zarr v3 has no stable string type)
        return {
            LATTICE: (LATTICE, np.arange(self.params.max_lattices), {"long_name": "lattice slot"}),
            CELL_PARAM: (
                CELL_PARAM,
                np.arange(6),
                {
                    "labels": " ".join(CELL_PARAMS),
                    "long_name": "unit cell parameter",
                    "units": "a, b, c: angstrom; alpha, beta, gamma: degree",
                },
            ),
            XYZ: (XYZ, np.arange(3), {"labels": "x y z", "long_name": "lab axis"}),
            AXIS: (AXIS, np.arange(3), {"labels": "a* b* c*", "long_name": "reciprocal axis"}),
        }

    # ------------------------------------------------------------------ compute
    def spots(self, x: np.ndarray, y: np.ndarray, snr: np.ndarray):
        """Rows of the peak table used (strongest first) and their reciprocal vectors."""
        ok = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
        ok = ok[np.argsort(-np.nan_to_num(snr[ok], nan=-np.inf), kind="stable")]
        ok = ok[: self.params.max_spots]
        lab = self.geometry.lab_positions(x[ok], y[ok])
        good = np.isfinite(lab[:, 0])
        return ok[good], reciprocal_vectors(lab[good], self.geometry.wavelength)

    def index(
        self, x: np.ndarray, y: np.ndarray, snr: np.ndarray
    ) -> tuple[list[Lattice], np.ndarray, np.ndarray]:
        """Lattices of one frame's peaks: ``(lattices, rows used, reciprocal vectors)``."""
        rows, r = self.spots(np.asarray(x, float), np.asarray(y, float), np.asarray(snr, float))
        return index_spots(r, self.params, self.grid), rows, r

    def index_frame(self, x, y, snr, out: dict, k: int) -> None:
        """Index one frame's peaks and write its features into row ``k`` of ``out``."""
        p = self.params
        x = np.asarray(x, float)
        y = np.asarray(y, float)
        lattices, rows, r = self.index(x, y, snr)
        out["index_tried"][k] = True
        out["n_lattices"][k] = len(lattices)
        out["indexed"][k] = bool(lattices)
        for j, lat in enumerate(lattices):
            out["unit_cell"][k, j] = lat.cell
            out["orientation"][k, j] = lat.orientation
            out["bravais"][k, j] = BRAVAIS.index(lat.bravais)
            n_ok = int(lat.indexed.sum())
            out["n_indexed"][k, j] = n_ok
            out["indexed_fraction"][k, j] = n_ok / max(len(r), 1)
            sel = rows[lat.indexed]
            px, py = spot_pixels(self.geometry, lat.orientation, lat.hkl(r[lat.indexed]))
            d2 = (px - x[sel]) ** 2 + (py - y[sel]) ** 2
            out["rmsd_px"][k, j] = np.sqrt(np.nanmean(d2)) if np.isfinite(d2).any() else np.nan
            inside = sel[sel < out["peak_lattice"].shape[1]]
            out["peak_lattice"][k, inside] = j
        if not lattices and p.cell is not None and len(r) >= p.min_spots:
            free = IndexingParams(
                **{**_fields(p), "cell": None, "space_group": None, "max_lattices": 1}
            )
            other = index_spots(r, free, self.grid)
            if other:
                out["unmatched_cell"][k] = other[0].cell

    def empty(self, n: int) -> dict[str, np.ndarray]:
        return {s.name: s.empty(n) for s in self.describe()}

    def index_block(
        self, features: dict, *, only: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Indexing features of a block from its peak-table features (hits only).

        ``only``: boolean mask of the frames to index (default: every hit).
        """
        hit = np.asarray(features["is_hit"], bool).reshape(-1)
        out = self.empty(hit.size)
        todo = hit if only is None else hit & np.asarray(only, bool)
        for k in np.flatnonzero(todo):
            self.index_frame(
                features["peak_x"][k], features["peak_y"][k], features["peak_snr"][k], out, k
            )
        return out

    def __call__(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """Not a frame analyzer on its own: combine it with a spot finder (IndexedAnalyzer)."""
        raise TypeError(
            "Indexer works on peak tables: use IndexedAnalyzer(spot_analyzer, "
            "indexer), or Indexer.index_block(features)"
        )


def _fields(p: IndexingParams) -> dict:
    import dataclasses

    return {f.name: getattr(p, f.name) for f in dataclasses.fields(p)}


class IndexedAnalyzer:
    """A spot-finding analyzer followed by the indexer on each block.

    Outputs are the inner analyzer's plus the indexer's. With ``budget`` (a fraction), indexing
    may take at most that share of the inner analyzer's time (cumulated in this process); hits
    beyond it get ``index_tried = False`` and are indexed later (:func:`index_features`), as a
    live run does with frames it skips.
    """

    def __init__(self, inner, indexer: Indexer, *, budget: float | None = None):
        self.inner = inner
        self.indexer = indexer
        self.budget = budget
        self.name = f"{inner.name}+{indexer.name}"
        self.geometry = getattr(inner, "geometry", indexer.geometry)
        self._inner_time = 0.0
        self._index_time = 0.0
        self._hits_done = 0

    def describe(self) -> list[FeatureSpec]:
        return self.inner.describe() + self.indexer.describe()

    def store_attrs(self) -> dict:
        """Feature-store attributes: the cell and space group indexing was given."""
        p = self.indexer.params
        return {
            "indexing_cell": None if p.cell is None else [float(v) for v in p.cell],
            "indexing_space_group": p.space_group,
        }

    def coords(self) -> dict:
        return {**self.inner.coords(), **self.indexer.coords()}

    def __getattr__(self, name):  # the inner analyzer's parts (e.g. .spots, .radial)
        if name in ("inner", "indexer"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __call__(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        t0 = time.process_time()
        out = self.inner(frames)
        t1 = time.process_time()
        self._inner_time += t1 - t0
        hit = np.asarray(out["is_hit"], bool)
        only = None
        if self.budget is not None:
            # as many hits as the time left in the budget allows, at the cost seen so far
            left = self.budget * self._inner_time - self._index_time
            per_hit = self._index_time / self._hits_done if self._hits_done else 0.03
            only = np.zeros(hit.size, bool)
            only[np.flatnonzero(hit)[: max(int(left / per_hit), 0)]] = True
        res = self.indexer.index_block(out, only=only)
        self._index_time += time.process_time() - t1
        self._hits_done += int(res["index_tried"].sum())
        out.update(res)
        return out


def index_features(
    features: dict,
    geometry: Geometry,
    params: IndexingParams | None = None,
    *,
    only: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Index the hits of stored features (a dict of arrays or an ``xarray.Dataset``)."""
    get = (
        (lambda k: np.asarray(features[k].values))
        if hasattr(features, "data_vars")
        else (lambda k: np.asarray(features[k]))
    )
    feats = {k: get(k) for k in INPUTS}
    idx = Indexer(geometry, params, max_peaks=feats["peak_x"].shape[1])
    return idx.index_block(feats, only=only)
