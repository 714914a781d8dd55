"""Spool received stream frames into a Zarr v3 store, one group per series ("segment").

Layout of ``SPOOL.zarr/segNNN`` (the same as a simulated Zarr run, so a segment opens with
:class:`~xlive.sources.zarr_store.ZarrSource`): ``frames`` (N, H, W) chunks (1, H, W) whose
chunks are the received bitshuffle-LZ4 blobs written as they are (codec
``xlive.bitshuffle_lz4``); ``frame_number`` (detector frame number) and ``timestamp``; group
attributes ``frames_complete`` (raised after the data), ``xlive`` (geometry when the header gave
one), ``series``, ``dropped`` (count) and ``dropped_ranges`` ([first, stop) frame numbers that
never arrived), ``ended`` (end-of-series seen).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import zarr

from ...conventions import FRAME_NUMBER, FRAMES_COMPLETE, TIMESTAMP
from ...geometry.core import Geometry
from .._bslz4 import BitshuffleLZ4Codec
from .._chunk_write import ChunkWriter, direct_layout, update_attrs
from .._zarr_write import set_many
from .protocol import Image, ProtocolError, Start

BLOCK = 1024
#: bad-message texts kept in the spool's attributes
KEEP_ERRORS = 20
#: a first frame numbered below this means the frames before it were lost; above, the
#: detector numbers from elsewhere
MISSED_AT_START_MAX = 1 << 20


def geometry_from_config(
    cfg: dict, shape: tuple[int, int], mask: np.ndarray | None
) -> Geometry | None:
    """Geometry from a V1 ``basic`` config or a V2 start message (None when incomplete)."""
    try:
        wl = cfg.get("wavelength", cfg.get("incident_wavelength"))
        px = cfg.get("x_pixel_size", cfg.get("pixel_size_x"))
        return Geometry.simple(
            shape=shape,
            pixel_size=float(px),
            distance=float(cfg["detector_distance"]),
            beam_center_x=float(cfg["beam_center_x"]),
            beam_center_y=float(cfg["beam_center_y"]),
            wavelength=float(wl),
            mask=None
            if mask is None or mask.shape != shape
            else (mask.astype(np.uint64) & 0xFFFF) != 0,
            saturation_value=cfg.get(
                "saturation_value", cfg.get("countrate_correction_count_cutoff")
            ),
            description=str(
                cfg.get("description", cfg.get("detector_description", "Eiger stream"))
            ),
        )
    except Exception:  # any garbage in a header: no geometry (--geometry gives one)
        return None


class SegmentWriter:
    """Writes one series into ``root/segNNN``; chunks first, counter last.

    Open a new segment with ``SegmentWriter(root, index, first, start)`` or continue one a
    previous receiver left unfinished with :meth:`reopen`.
    """

    def __init__(
        self, root: zarr.Group | None, index: int, first: Image | None, start: Start | None
    ):
        if root is None:  # reopen() fills the fields in
            return
        self.name = f"seg{index:03d}"
        ny, nx = first.shape
        self.group = root.create_group(self.name)
        geom = None
        if start is not None:
            geom = geometry_from_config(start.config, (ny, nx), start.pixel_mask)
        info = {"detector": str(start.config.get("description", "")) if start else ""}
        if geom is not None:
            info["geometry"] = geom.to_dict()
        self.group.attrs.update(
            {
                FRAMES_COMPLETE: 0,
                "xlive": info,
                "series": first.series,
                "dropped": 0,
                "dropped_ranges": [],
                "ended": False,
                "stream_version": first.version,
            }
        )
        self.frames = self.group.create_array(
            "frames",
            shape=(BLOCK, ny, nx),
            chunks=(1, ny, nx),
            dtype=first.dtype,
            compressors=[BitshuffleLZ4Codec(elem_size=first.dtype.itemsize)],
            fill_value=0,
            dimension_names=("frame", "y", "x"),
            # chunk files frames/c.<n>.0.0 side by side: a file per frame and no folders
            # (with "/", two new folders per frame: three inodes where one does; the
            # receiver's CPU went mostly to ext4 allocating them)
            chunk_key_encoding={"name": "default", "separator": "."},
        )
        if (
            start is not None
            and start.pixel_mask is not None
            and start.pixel_mask.shape == (ny, nx)
        ):
            m = self.group.create_array(
                "mask", shape=(ny, nx), chunks=(ny, nx), dtype="uint32", fill_value=0
            )
            m[...] = start.pixel_mask.astype(np.uint32)
        self.meta = {
            FRAME_NUMBER: self.group.create_array(
                FRAME_NUMBER, shape=(BLOCK,), chunks=(BLOCK,), dtype="int64", fill_value=-1
            ),
            TIMESTAMP: self.group.create_array(
                TIMESTAMP, shape=(BLOCK,), chunks=(BLOCK,), dtype="float64", fill_value=np.nan
            ),
        }
        self.series = first.series
        self.shape, self.dtype = (ny, nx), first.dtype
        self.n_images = start.n_images if start is not None else None
        self._init_counters(root)
        # frames numbered from 0: those before the first one received never arrived
        self.next_number = 0 if first.frame < MISSED_AT_START_MAX else first.frame

    def _init_counters(self, root: zarr.Group) -> None:
        self.dir = Path(root.store.root) / (root.path or "") / self.name  # a LocalStore
        self.frames_dir = self.dir / "frames"
        self._made_dir: Path | None = None
        self.n = 0
        self.published = 0
        #: frame numbers and times of frames written but not yet published
        self.frame_numbers: list[int] = []
        self.times: list[float] = []
        self.dropped_ranges: list[list[int]] = []
        self.dropped = 0
        self.last_frame = -1
        #: chunk writers of frame_number and timestamp (made at the first publication)
        self._writers: list[ChunkWriter] = []

    @classmethod
    def reopen(cls, root: zarr.Group, name: str) -> SegmentWriter | None:
        """Continue segment ``name`` (None when it has no published frame to continue from)."""
        g = root[name]
        n = int(g.attrs.get(FRAMES_COMPLETE, 0))
        if n == 0 or g.attrs.get("ended") or "frames" not in g:
            return None
        self = cls(None, 0, None, None)
        self.name, self.group = name, g
        self.frames = g["frames"]
        self.meta = {FRAME_NUMBER: g[FRAME_NUMBER], TIMESTAMP: g[TIMESTAMP]}
        self.series = int(g.attrs.get("series", 0))
        self.shape, self.dtype = tuple(self.frames.shape[1:]), np.dtype(self.frames.dtype)
        self.n_images = None
        self._init_counters(root)
        self.n = self.published = n
        numbers = np.asarray(self.meta[FRAME_NUMBER][:n])
        self.last_frame = int(numbers.max())
        self.next_number = self.last_frame + 1
        self.dropped_ranges = [list(r) for r in g.attrs.get("dropped_ranges", [])]
        self.dropped = int(g.attrs.get("dropped", 0))
        return self

    def check(self, image: Image) -> None:
        """Raise ProtocolError when ``image`` cannot belong to this series."""
        if image.shape != self.shape or image.dtype != self.dtype:
            raise ProtocolError(
                f"frame {image.frame} of series {image.series} is {image.shape} {image.dtype}, "
                f"but the series is {self.shape} {self.dtype}"
            )
        if image.frame == self.last_frame:
            raise ProtocolError(f"frame {image.frame} of series {image.series} received twice")
        if image.frame < self.last_frame:
            raise ProtocolError(
                f"frame {image.frame} of series {image.series} came after frame "
                f"{self.last_frame} without a new series header"
            )
        if self.n_images is not None and image.frame >= self.n_images:
            raise ProtocolError(
                f"frame {image.frame} is beyond the {self.n_images} frames the "
                f"header of series {image.series} announced"
            )

    def write(self, image: Image) -> None:
        if image.frame > self.next_number:  # the detector or the network lost frames
            self.dropped_ranges.append([self.next_number, image.frame])
            self.dropped += image.frame - self.next_number
        self.next_number = max(self.next_number, image.frame + 1)
        # frames/c.<n>.0.0 (frames/c/<n>/0/0 in spools written before the flat layout)
        path = self.frames_dir / self.frames.metadata.encode_chunk_key((self.n, 0, 0))
        if path.parent != self._made_dir:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made_dir = path.parent
        # written in place: readers read only published frames (the counter is raised after
        # the chunk is complete), and a receiver killed mid-write continues the segment from
        # its published count, so the next frame overwrites a chunk left half-written
        with open(path, "wb") as f:
            f.write(image.bslz4())
        self.frame_numbers.append(image.frame)
        self.times.append(image.start_time)
        self.last_frame = image.frame
        self.n += 1

    def publish(self, *, ended: bool = False) -> None:
        """Make the frames written so far visible to readers (metadata first, counter last)."""
        if self.n == self.published and not ended:
            return
        cap = self.frames.shape[0]
        if self.n > cap:
            cap = (self.n // BLOCK + 1) * BLOCK
            self.frames.resize((cap, *self.shape))
            for a in self.meta.values():
                a.resize((cap,))
        lo, hi = self.published, self.n
        if hi > lo:
            # published five times a second: straight to the chunk files (1.0-1.6 ms of CPU
            # instead of 3.7-4.2 through zarr, both arrays in one pass of its event loop)
            arrays = [self.meta[FRAME_NUMBER], self.meta[TIMESTAMP]]
            values = [np.asarray(self.frame_numbers, np.int64), np.asarray(self.times, np.float64)]
            if all(map(direct_layout, arrays)):
                if len(self._writers) != len(arrays):  # kept: each holds its last chunk
                    self._writers = [ChunkWriter(a) for a in arrays]
                for w, v in zip(self._writers, values, strict=True):
                    w.write(slice(lo, hi), v)
            else:
                set_many(arrays, slice(lo, hi), values)
        update_attrs(
            self.group,
            {
                FRAMES_COMPLETE: self.n,
                "dropped": self.dropped,
                "dropped_ranges": self.dropped_ranges,
                "ended": ended,
            },
        )
        self.published = self.n
        self.frame_numbers.clear()  # published: only unpublished frames stay in memory
        self.times.clear()


def _segment_names(root: zarr.Group) -> list[str]:
    """``segNNN`` groups in numeric order (seg1000 after seg999)."""
    names = [k for k in root.group_keys() if k.startswith("seg") and k[3:].isdigit()]
    return sorted(names, key=lambda k: int(k[3:]))


def remove_partials(path: Path) -> int:
    """Delete ``*.partial`` chunk files a killed receiver left; returns how many."""
    removed = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            if f.endswith(".partial"):
                try:
                    os.unlink(os.path.join(dirpath, f))
                    removed += 1
                except OSError:
                    pass
    return removed


class Spool:
    """A spool store: a Zarr group holding one segment per received series.

    Opening an existing spool continues it: leftover ``*.partial`` files are removed and an
    unfinished last segment is continued when the stream goes on with the same series (frames
    sent while no receiver ran are recorded as dropped).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.root = zarr.open_group(str(self.path), mode="a")
        self.segments = _segment_names(self.root)
        remove_partials(self.path)
        self.current: SegmentWriter | None = None
        self.resumable: SegmentWriter | None = None
        if self.segments:
            self.resumable = SegmentWriter.reopen(self.root, self.segments[-1])
        self.pending_start: Start | None = None
        self.last_publish = time.monotonic()
        #: receiver statistics shown to readers: bad messages, frames that could not be spooled
        prev = self.root.attrs.get("receiver", {})
        self.stats = {
            "bad_messages": int(prev.get("bad_messages", 0)),
            "spool_errors": int(prev.get("spool_errors", 0)),
            "starts": int(prev.get("starts", 0)) + 1,
            "last_errors": list(prev.get("last_errors", []))[-KEEP_ERRORS:],
        }
        self._stats_dirty = True

    def note_error(self, kind: str, message: str) -> None:
        """Count a bad message (``kind`` "bad_messages") or a spool failure ("spool_errors")."""
        self.stats[kind] += 1
        self.stats["last_errors"] = [
            *self.stats["last_errors"][-(KEEP_ERRORS - 1) :],
            message[:300],
        ]
        self._stats_dirty = True

    def start(self, msg: Start) -> None:
        self.close_segment()
        self.resumable = None
        self.pending_start = msg

    def image(self, msg: Image) -> None:
        """Spool one frame; raises ProtocolError when it cannot belong to the stream."""
        cur = self.current
        start = (
            self.pending_start
            if self.pending_start and self.pending_start.series == msg.series
            else None
        )
        if cur is None and start is None and self.resumable is not None:
            if msg.series == self.resumable.series:
                self.resumable.check(msg)
                cur = self.current = self.resumable  # a restarted receiver continues the series
            self.resumable = None
        if start is None and cur is not None and msg.series == cur.series:
            cur.check(msg)  # same series, no new header: must fit and come after the last
        else:
            if start is not None:
                want = start.shape
                if want is not None and msg.shape != want:
                    raise ProtocolError(
                        f"frame {msg.frame} is {msg.shape}, but the header of "
                        f"series {msg.series} announced {want}"
                    )
                if start.n_images is not None and msg.frame >= start.n_images:
                    raise ProtocolError(
                        f"frame {msg.frame} is beyond the {start.n_images} "
                        f"frames the header of series {msg.series} announced"
                    )
            self.close_segment()  # a new series (or a restarted detector) starts a new segment
            cur = self.current = SegmentWriter(self.root, self._next_index(), msg, start)
            self.segments.append(cur.name)
            self.pending_start = None
        cur.write(msg)

    def _next_index(self) -> int:
        return int(self.segments[-1][3:]) + 1 if self.segments else 0

    def end(self) -> None:
        self.close_segment()
        self.resumable = None

    def close_segment(self) -> None:
        if self.current is not None:
            self.current.publish(ended=True)
            self.current = None
        self.publish_stats()

    def publish_stats(self) -> None:
        if self._stats_dirty:
            self.root.attrs["receiver"] = self.stats
            self._stats_dirty = False

    def maybe_publish(self, interval: float) -> None:
        now = time.monotonic()
        if now - self.last_publish >= interval:
            if self.current is not None:
                self.current.publish()
            self.publish_stats()
            self.last_publish = now

    def flush(self) -> None:
        """Publish what was written without ending the segment (the receiver stops)."""
        if self.current is not None:
            self.current.publish()
        self.publish_stats()
