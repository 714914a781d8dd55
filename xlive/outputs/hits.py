"""Export a processed run's hits for CrystFEL: CXI file, ``.geom`` and ``.lst`` event lists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ..conventions import FRAME
from ..engine.block import Block
from ..errors import BadFrameError, ConfigError
from ..geometry.core import Geometry
from ._common import META, attr_json, features_dataset, require, run_source
from .cxi import DATA, PEAKS, CXIHitsWriter


@dataclass(frozen=True)
class HitsExport:
    """What :func:`export_hits` wrote."""

    #: hit frames written (rows of the CXI file)
    hits: int
    #: hit frames that could not be read from the run and were left out
    unreadable: int
    cxi: Path
    lst: Path | None = None
    geom: Path | None = None
    lst_original: Path | None = None
    #: width of the peak table (``max_peaks`` of ``[analyzers.spots]``)
    max_peaks: int = 0
    #: hits with more spots than the table holds: their peak lists keep the strongest only
    peaks_cut: int = 0
    #: most spots found on one of those hits
    most_spots: int = 0
    stream: Path | None = None
    #: indexed hits written to the stream
    indexed: int = 0

    def cut_message(self) -> str | None:
        """ "N hits keep 256 of up to 1000 peaks ..." (None when no peak list was cut)."""
        if not self.peaks_cut:
            return None
        return (
            f"{self.peaks_cut} hits keep {self.max_peaks} of up to {self.most_spots} peaks "
            f"(the strongest by SNR): the feature store's peak table holds {self.max_peaks} "
            "per frame; to keep more, set max_peaks in [analyzers.spots] of the run "
            "configuration and process the run again"
        )


def write_hits_geom(
    geometry: Geometry, path: str | Path, *, data: str = DATA, peak_list: str | None = PEAKS
) -> Path:
    """A CrystFEL ``.geom`` for ``geometry`` that reads frames at ``data`` (``dim0 = %``) and,
    with ``peak_list``, peaks from the CXI result group (``peak_list_type = cxi``).

    Written with :func:`xlive.geometry.crystfel.write_crystfel_geom` (mask into
    ``<stem>-mask.h5`` beside it), then pointed at the CXI layout.
    """
    from ..geometry.crystfel import write_crystfel_geom

    path = Path(path)
    write_crystfel_geom(geometry, path)
    lines = path.read_text().splitlines()
    out = []
    for line in lines:
        if line.strip().startswith("data ="):
            out.append(f"data = {data}")
            if peak_list:
                out += [
                    f"peak_list = {peak_list}",
                    "peak_list_type = cxi",
                    "; peak positions are pixel-centre indices: keep CrystFEL's default "
                    "half-pixel shift",
                ]
        else:
            out.append(line)
    path.write_text("\n".join(out) + "\n")
    return path


def original_events(source, frames) -> list[str]:
    """``.lst`` lines that point CrystFEL at ``frames`` in the run's own files.

    HDF5 runs (Eiger master + data files, single HDF5/SWMR files) give ``datafile //k`` with
    ``k`` the frame inside that data file (use a ``.geom`` whose ``data`` names the dataset, see
    :func:`write_hits_geom`); image-file series (CBF...) give one file name per frame. Zarr
    stores and streams are not readable by CrystFEL: use the CXI file instead.
    """
    frames = [int(i) for i in frames]
    files = getattr(source, "files", None)
    if files is not None and not callable(files):
        return [str(Path(files[i]).absolute()) for i in frames]
    segments = getattr(source.reader, "segments", None)
    if segments is None:
        raise ConfigError(
            f"CrystFEL cannot read the frames of a {type(source).__name__} run "
            "directly; use the CXI file and its --lst instead of --lst-original"
        )
    starts = [s[2] for s in segments]
    out = []
    for i in frames:
        k = int(np.searchsorted(starts, i, side="right")) - 1
        path, _dset, start, _n = segments[k]
        out.append(f"{Path(path).absolute()} //{i - start}")
    return out


def export_hits(
    features: str | Path | xr.Dataset,
    cxi: str | Path,
    *,
    lst: str | Path | None = None,
    geom: str | Path | None = None,
    lst_original: str | Path | None = None,
    source=None,
    half_pixel_shift: bool = True,
    compression: str | None = None,
    overwrite: bool = False,
    batch: int = 16,
    stream: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> HitsExport:
    """Write the hits of a processed run as a CXI file for ``indexamajig --peaks=cxi``.

    Parameters
    ----------
    features
        Feature store (path) or its Dataset, with ``is_hit`` and ``peak_x``/``peak_y``.
    cxi
        Output ``.cxi`` (see :mod:`xlive.outputs.cxi` for the layout and the half-pixel rule).
    lst
        Event list of the CXI rows (``/abs/out.cxi //k``).
    geom
        CrystFEL geometry for the CXI file, from the run's geometry (mask included).
    lst_original
        Event list pointing at the same hits in the run's own files (HDF5 or image series).
    source
        The run (path or Source); default: the one recorded in the feature store.
    stream
        CrystFEL stream of the indexed hits (:mod:`xlive.outputs.stream`): peaks, crystals
        and predicted reflections integrated on the frames; events point at the CXI rows.
    half_pixel_shift, compression
        As for :class:`~xlive.outputs.cxi.CXIHitsWriter`.
    overwrite
        Replace existing output files (otherwise an existing ``cxi`` is an error).

    Examples
    --------
    >>> export_hits("features.zarr", "hits.cxi", lst="hits.lst", geom="hits.geom")  # doctest: +SKIP
    """
    ds = features_dataset(features)
    require(ds, "is_hit", "peak_x", "peak_y", what="exporting hits")
    cxi = Path(cxi)
    if stream is not None:
        require(
            ds,
            "indexed",
            "unit_cell",
            "orientation",
            "peak_lattice",
            what="writing a CrystFEL stream (process the run with --cell or --index)",
        )
    outputs = [Path(p) for p in (cxi, lst, geom, lst_original, stream) if p is not None]
    for p in outputs:
        if p.exists() and not overwrite:
            raise ConfigError(
                f"{p} exists; choose another name or pass overwrite=True (--overwrite)"
            )
    for p in outputs:
        p.unlink(missing_ok=True)
    src = run_source(ds, source)
    if lst_original is not None:
        original_events(src, [])  # fails early for runs CrystFEL cannot read
    hits = ds.isel({FRAME: np.flatnonzero(ds["is_hit"].values.astype(bool))})
    names = [
        k
        for k in ("peak_x", "peak_y", "peak_intensity", "peak_npix", "peak_snr")
        if k in hits.variables
    ]
    written, unreadable, kept, n_indexed = 0, 0, [], 0
    max_peaks = int(ds.sizes.get("peak", ds["peak_x"].shape[1]))
    # n_spots counts every spot found; the table keeps the strongest max_peaks of them
    n_spots = hits["n_spots"].values.astype(np.int64) if "n_spots" in hits else np.zeros(0, int)
    cut = n_spots > max_peaks
    sw = None
    if stream is not None:
        from ..analyzers.indexing_cells import TargetCell
        from .stream import StreamWriter, lattices_of

        cell = attr_json(ds, "indexing_cell")
        target = TargetCell(tuple(cell), attr_json(ds, "indexing_space_group")) if cell else None
        sw = StreamWriter(stream, src.geometry, target=target)
        names = names + [
            k
            for k in (
                "indexed",
                "n_lattices",
                "unit_cell",
                "orientation",
                "bravais",
                "peak_lattice",
                "d_min",
            )
            if k in hits.variables and k not in names
        ]
    with CXIHitsWriter(
        cxi,
        frame_shape=tuple(src.geometry.shape),
        max_peaks=max_peaks,
        lst=lst,
        half_pixel_shift=half_pixel_shift,
        compression=compression,
    ) as writer:
        for s in range(0, hits.sizes[FRAME], batch):
            sub = hits.isel({FRAME: slice(s, s + batch)}).compute()
            result = Block(
                sub[FRAME].values,
                np.zeros(sub.sizes[FRAME], bool),
                {k: sub[k].values for k in names},
            )
            meta = {k: sub[k].values for k in META if k in sub.coords}
            rows, frames = [], []
            for r, i in enumerate(result.frames):
                try:
                    frames.append(src.read_frame(int(i)))
                    rows.append(r)
                except BadFrameError:
                    unreadable += 1
            if rows:
                first = written
                written += writer.append(np.stack(frames), result, np.array(rows), meta)
                kept.extend(int(result.frames[r]) for r in rows)
                if sw is not None:
                    for row, (r, img) in enumerate(zip(rows, frames, strict=True)):
                        if not result["indexed"][r]:
                            continue
                        n_indexed += 1
                        peaks = {
                            "x": result["peak_x"][r],
                            "y": result["peak_y"][r],
                            "intensity": result.get(
                                "peak_intensity", np.zeros_like(result["peak_x"])
                            )[r],
                        }
                        d_min = float(result["d_min"][r]) if "d_min" in result else None
                        sw.chunk(
                            filename=str(cxi.absolute()),
                            event=f"//{first + row}",
                            peaks=peaks,
                            lattices=lattices_of(result, r, src.geometry),
                            frame=img,
                            d_min=d_min,
                        )
            if progress:
                progress(sub.sizes[FRAME])
    if sw is not None:
        sw.close()
    if geom is not None:
        write_hits_geom(src.geometry, geom)
    if lst_original is not None:
        lines = original_events(src, kept)
        Path(lst_original).write_text("".join(f"{line}\n" for line in lines))
    return HitsExport(
        hits=written,
        unreadable=unreadable,
        cxi=cxi,
        lst=Path(lst) if lst else None,
        geom=Path(geom) if geom else None,
        lst_original=Path(lst_original) if lst_original else None,
        max_peaks=max_peaks,
        peaks_cut=int(cut.sum()),
        most_spots=int(n_spots.max()) if cut.any() else 0,
        stream=Path(stream) if stream else None,
        indexed=n_indexed,
    )
