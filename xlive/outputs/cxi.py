"""Hits-only CXI files that CrystFEL's ``indexamajig --peaks=cxi`` reads, with ``.lst`` event lists.

Layout (the one ``image_hdf5_read_peaks_cxi`` reads and Cheetah / LCLS btx write)::

    /entry_1/data_1/data                 (N, ss, fs) float32, chunks (1, ss, fs), growable
    /entry_1/result_1/nPeaks             (N,) int32
    /entry_1/result_1/peakXPosRaw        (N, maxPeaks) float32, fs in data-array coordinates
    /entry_1/result_1/peakYPosRaw        (N, maxPeaks) float32, ss in data-array coordinates
    /entry_1/result_1/peakTotalIntensity (N, maxPeaks) float32
    /entry_1/result_1/peakNPixels, peakSNR (N, maxPeaks) float32 (extras, ignored by CrystFEL)
    /entry_1/xlive/frame_index           (N,) int64 frame of the run each row came from
    /entry_1/xlive/{frame_number, timestamp, laser_on, pulse_energy}  per-row metadata

Row ``k`` is event ``//k``. Unused peak slots hold 0 (CrystFEL reads only the first ``nPeaks``).

Half-pixel shift
----------------
xlive's ``peak_x``/``peak_y`` put the centre of pixel ``data[i, j]`` at ``(x=j, y=i)`` (see
:mod:`xlive.conventions`), as Cheetah does. CrystFEL's own coordinates put that centre at
``(j + 0.5, i + 0.5)``, so by default it adds 0.5 to every CXI peak position. We therefore write
xlive's positions unchanged (``half_pixel_shift=True``: the reader will shift), and the file says
so in each position dataset's ``xlive_convention`` attribute. With ``half_pixel_shift=False``
the file holds ``peak + 0.5`` instead, for ``indexamajig --no-half-pixel-shift``.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from ..engine.cf import to_seconds
from ..errors import BadFrameError, ConfigError, SourceError

DATA = "/entry_1/data_1/data"
PEAKS = "/entry_1/result_1"
XLIVE = "/entry_1/xlive"
_PEAK_FIELDS = {  # CXI name -> xlive feature
    "peakXPosRaw": "peak_x",
    "peakYPosRaw": "peak_y",
    "peakTotalIntensity": "peak_intensity",
    "peakNPixels": "peak_npix",
    "peakSNR": "peak_snr",
}
_META = {
    "frame_number": "int64",
    "timestamp": "float64",
    "laser_on": "bool",
    "pulse_energy": "float32",
}


def pack_peaks(result: dict[str, np.ndarray], rows: np.ndarray) -> tuple[np.ndarray, dict]:
    """``nPeaks`` and the CXI peak arrays of ``rows`` of a block: valid peaks first, zero-padded.

    A peak is valid where ``peak_x`` and ``peak_y`` are finite (the feature store pads with NaN).
    """
    px = np.asarray(result["peak_x"], np.float32)[rows]
    py = np.asarray(result["peak_y"], np.float32)[rows]
    ok = np.isfinite(px) & np.isfinite(py)
    n_peaks = ok.sum(axis=1).astype(np.int32)
    # stable sort puts valid slots first, keeping their order
    order = np.argsort(~ok, axis=1, kind="stable")
    keep = np.take_along_axis(ok, order, axis=1)
    out = {}
    for cxi, name in _PEAK_FIELDS.items():
        if name not in result:
            continue
        v = np.take_along_axis(np.asarray(result[name], np.float32)[rows], order, axis=1)
        out[cxi] = np.where(keep, np.nan_to_num(v, nan=0.0), 0.0).astype(np.float32)
    return n_peaks, out


class CXIHitsWriter:
    """Append hit frames and their peaks to a CXI file (created, or resumed when it exists).

    Parameters
    ----------
    path
        The ``.cxi`` file. An existing file written by xlive is resumed: frames it already holds
        are not written again.
    frame_shape
        ``(ss, fs)`` of a frame.
    max_peaks
        Width of the peak arrays (the feature store's ``peak`` size).
    lst
        Optional event list kept in step with the file (``/abs/path.cxi //k`` per row).
    half_pixel_shift
        True (default): positions as xlive stores them, for CrystFEL's default +0.5 shift.
        False: positions + 0.5, for ``indexamajig --no-half-pixel-shift``.
    compression
        HDF5 filter for the frames (``"gzip"`` or None).

    Notes
    -----
    The file is open only while a block is appended, so other programs (CrystFEL,
    ``h5py``) can read it between appends; ``/entry_1/xlive/frame_index`` is written last, and
    a reopened file is cut back to the rows it lists, so an append killed half-way leaves no
    partial row. The ``.lst`` is extended after the file is closed.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        frame_shape: tuple[int, int],
        max_peaks: int,
        lst: str | Path | None = None,
        half_pixel_shift: bool = True,
        compression: str | None = None,
    ):
        self.path = Path(path).absolute()
        self.offset = 0.0 if half_pixel_shift else 0.5
        self.lst = Path(lst) if lst is not None else None
        exists = self.path.exists()
        with self._open("a" if exists else "w-") as f:
            if exists:
                self._check(f, frame_shape)
            else:
                self._create(f, tuple(frame_shape), int(max_peaks), compression)
            self.max_peaks = int(f[PEAKS]["peakXPosRaw"].shape[1])
            done = f[XLIVE]["frame_index"][:]
            done = done[: np.argmax(done < 0)] if (done < 0).any() else done  # -1: never written
            self._truncate(f, len(done))  # drop rows of an append that was cut short
        self.n = len(done)
        self.frames_written = set(done.tolist())
        if self.lst is not None:
            self._write_lst(range(self.n))

    def _open(self, mode: str) -> h5py.File:
        # the file stays closed between appends, so CrystFEL can read it while hits arrive
        try:
            return h5py.File(self.path, mode)
        except OSError as exc:
            raise SourceError(
                f"cannot open {self.path} for writing hits ({exc}); is another "
                "program holding it open?"
            ) from exc

    @staticmethod
    def _rows(f: h5py.File) -> list[h5py.Dataset]:
        return [
            f[DATA],
            *(f[PEAKS][k] for k in ("nPeaks", *_PEAK_FIELDS)),
            *(f[XLIVE][k] for k in ("frame_index", *_META)),
        ]

    def _truncate(self, f: h5py.File, n: int) -> None:
        for ds in self._rows(f):
            if ds.shape[0] != n:
                ds.resize(n, axis=0)

    # ------------------------------------------------------------------ layout
    def _create(
        self, f: h5py.File, shape: tuple[int, int], max_peaks: int, compression: str | None
    ) -> None:
        f.attrs["creator"] = "xlive"
        f.create_dataset("cxi_version", data=150)
        d = f.create_dataset(
            DATA,
            shape=(0, *shape),
            maxshape=(None, *shape),
            dtype="float32",
            chunks=(1, *shape),
            compression=compression,
        )
        d.attrs["axes"] = "experiment_identifier:y:x"
        r = f.require_group(PEAKS)
        r.create_dataset("nPeaks", shape=(0,), maxshape=(None,), dtype="int32", chunks=(1024,))
        for name in _PEAK_FIELDS:
            ds = r.create_dataset(
                name,
                shape=(0, max_peaks),
                maxshape=(None, max_peaks),
                dtype="float32",
                chunks=(1, max_peaks),
            )
            if name in ("peakXPosRaw", "peakYPosRaw"):
                ds.attrs["xlive_convention"] = (
                    f"centre of pixel data[ss, fs] at (fs, ss) + {self.offset:g}; CrystFEL adds "
                    "0.5 unless --no-half-pixel-shift"
                )
        x = f.require_group(XLIVE)
        x.create_dataset(
            "frame_index", shape=(0,), maxshape=(None,), dtype="int64", chunks=(1024,), fillvalue=-1
        )
        for name, dt in _META.items():
            x.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dt, chunks=(1024,))
        x.attrs["half_pixel_shift_in_reader"] = self.offset == 0.0

    def _check(self, f: h5py.File, shape) -> None:
        if DATA not in f or XLIVE not in f:
            raise ConfigError(
                f"{self.path} exists but is not a CXI hits file written by xlive; "
                "choose another name or delete it"
            )
        have = f[DATA].shape[1:]
        if tuple(have) != tuple(shape):
            raise ConfigError(
                f"{self.path} holds frames of shape {have}, not {tuple(shape)}; "
                "write these hits to another file"
            )
        if bool(f[XLIVE].attrs["half_pixel_shift_in_reader"]) != (self.offset == 0.0):
            raise ConfigError(
                f"{self.path} was written with the other half-pixel convention; "
                "write to another file"
            )

    # ------------------------------------------------------------------ writing
    def append(
        self,
        frames: np.ndarray,
        result,
        rows: np.ndarray,
        meta: dict[str, np.ndarray] | None = None,
    ) -> int:
        """Append ``frames`` (k, ss, fs), the peaks of block ``rows`` and their metadata.

        ``result`` is a :class:`~xlive.engine.block.Block` (``peak_x``... with a leading block
        dimension); ``rows`` picks the block rows that ``frames`` belong to, in order. Frames
        already in the file are skipped. Returns the number of rows written.
        """
        rows = np.asarray(rows, np.int64)
        index = result.frames[rows]
        new = np.array([i not in self.frames_written for i in index.tolist()], bool)
        if not new.any():
            return 0
        rows, index = rows[new], index[new]
        frames = np.asarray(frames)[new]
        n_peaks, peaks = pack_peaks(result, rows)
        width = self.max_peaks
        if np.any(n_peaks > width):
            raise ConfigError(
                f"{self.path} holds at most {width} peaks per frame, "
                f"a frame has {int(n_peaks.max())}; write to another file"
            )
        start, k = self.n, len(rows)

        def put(ds: h5py.Dataset, values: np.ndarray) -> None:
            ds.resize(start + k, axis=0)
            ds[start : start + k] = values

        with self._open("a") as f:
            put(f[DATA], frames.astype(np.float32, copy=False))
            r = f[PEAKS]
            put(r["nPeaks"], n_peaks)
            for name in _PEAK_FIELDS:
                v = np.zeros((k, width), np.float32)
                if name in peaks:
                    v[:, : peaks[name].shape[1]] = peaks[name][:, :width]
                if name in ("peakXPosRaw", "peakYPosRaw") and self.offset:
                    v = np.where(np.arange(width)[None, :] < n_peaks[:, None], v + self.offset, 0)
                put(r[name], v)
            x = f[XLIVE]
            for name, dt in _META.items():
                vals = (meta or {}).get(name)
                if name == "timestamp" and vals is not None:  # HDF5: epoch seconds, as CXI
                    vals = to_seconds(vals)
                fill = np.nan if np.dtype(dt).kind == "f" else 0
                arr = np.full(k, fill, dt) if vals is None else np.asarray(vals)[rows].astype(dt)
                put(x[name], arr)
            put(x["frame_index"], index)  # last: it says which rows are complete
        self.n = start + k
        self.frames_written.update(index.tolist())
        if self.lst is not None:  # after the file is closed: listed rows are readable
            self._write_lst(range(start, start + k), append=True)
        return k

    def _write_lst(self, rows, append: bool = False) -> None:
        with open(self.lst, "a" if append else "w") as f:
            f.writelines(f"{self.path} //{k}\n" for k in rows)
            f.flush()
            os.fsync(f.fileno())

    def close(self) -> None:
        """Nothing to release (the file is closed between appends); kept for symmetry."""

    def __enter__(self) -> CXIHitsWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CXIHitsListener:
    """A live-loop listener that appends each stored block's hits to a growing CXI file.

    ``LiveProcessor(source, store, listeners=[CXIHitsListener(source, "hits.cxi")])``: every
    block's frames with ``is_hit`` (and not ``bad``) are read again with ``source.read_frame``
    and appended with their peaks. Frames that fail to read are left out. Call :meth:`close`
    at the end (or use it as a context manager).

    Parameters
    ----------
    source
        The run's source (frames are read from it).
    path
        The ``.cxi`` file (resumed when it exists).
    **options
        ``lst``, ``half_pixel_shift``, ``compression`` as for :class:`CXIHitsWriter`.
    """

    def __init__(self, source, path: str | Path, **options):
        self.source = source
        self.path = Path(path)
        self.options = options
        self.writer: CXIHitsWriter | None = None
        self.hits = 0

    def __call__(self, result, meta: dict) -> None:
        if "is_hit" not in result or "peak_x" not in result:
            raise ConfigError(
                "writing hits needs the features is_hit and peak_x/peak_y; "
                "run the default analyzers"
            )
        sel = np.asarray(result["is_hit"], bool) & result.good
        rows, frames = [], []
        for r in np.flatnonzero(sel):
            try:
                frames.append(self.source.read_frame(int(result.frames[r])))
            except BadFrameError:
                continue
            rows.append(r)
        if not rows:
            return
        if self.writer is None:
            self.writer = CXIHitsWriter(
                self.path,
                frame_shape=frames[0].shape,
                max_peaks=np.shape(result["peak_x"])[1],
                **self.options,
            )
        self.hits += self.writer.append(np.stack(frames), result, np.array(rows), meta)

    update = __call__

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> CXIHitsListener:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_cxi_peaks(path: str | Path) -> dict[str, np.ndarray]:
    """The peak lists and frame indices of a CXI hits file (plain h5py), e.g. for checks."""
    with h5py.File(path, "r") as f:
        out = {k: f[PEAKS][k][...] for k in ("nPeaks", *_PEAK_FIELDS) if k in f[PEAKS]}
        if XLIVE in f:
            out["frame_index"] = f[XLIVE]["frame_index"][...]
    return out
