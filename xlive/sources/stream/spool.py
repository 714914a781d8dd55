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
from .protocol import Image, Start

BLOCK = 1024


def geometry_from_config(cfg: dict, shape: tuple[int, int], mask: np.ndarray | None) -> Geometry | None:
    """Geometry from a V1 ``basic`` config or a V2 start message (None when incomplete)."""
    try:
        wl = cfg.get("wavelength", cfg.get("incident_wavelength"))
        px = cfg.get("x_pixel_size", cfg.get("pixel_size_x"))
        return Geometry.simple(
            shape=shape, pixel_size=float(px), distance=float(cfg["detector_distance"]),
            beam_center_x=float(cfg["beam_center_x"]), beam_center_y=float(cfg["beam_center_y"]),
            wavelength=float(wl),
            mask=None if mask is None or mask.shape != shape else (mask.astype(np.uint64) & 0xFFFF) != 0,
            saturation_value=cfg.get("saturation_value", cfg.get("countrate_correction_count_cutoff")),
            description=str(cfg.get("description", cfg.get("detector_description", "Eiger stream"))),
        )
    except (KeyError, TypeError, ValueError):
        return None


class SegmentWriter:
    """Writes one series into ``root/segNNN``; chunks first, counter last."""

    def __init__(self, root: zarr.Group, index: int, first: Image, start: Start | None):
        self.name = f"seg{index:03d}"
        ny, nx = first.shape
        self.group = root.create_group(self.name)
        self.dir = Path(root.store.root) / (root.path or "") / self.name  # a LocalStore
        geom = None
        if start is not None:
            geom = geometry_from_config(start.config, (ny, nx), start.pixel_mask)
        info = {"detector": str(start.config.get("description", "")) if start else ""}
        if geom is not None:
            info["geometry"] = geom.to_dict()
        self.group.attrs.update({FRAMES_COMPLETE: 0, "xlive": info, "series": first.series,
                                 "dropped": 0, "dropped_ranges": [], "ended": False,
                                 "stream_version": first.version})
        self.frames = self.group.create_array(
            "frames", shape=(BLOCK, ny, nx), chunks=(1, ny, nx), dtype=first.dtype,
            compressors=[BitshuffleLZ4Codec(elem_size=first.dtype.itemsize)], fill_value=0,
            dimension_names=("frame", "y", "x"))
        if start is not None and start.pixel_mask is not None and start.pixel_mask.shape == (ny, nx):
            m = self.group.create_array("mask", shape=(ny, nx), chunks=(ny, nx), dtype="uint32",
                                        fill_value=0)
            m[...] = start.pixel_mask.astype(np.uint32)
        self.meta = {
            FRAME_NUMBER: self.group.create_array(FRAME_NUMBER, shape=(BLOCK,), chunks=(BLOCK,),
                                                  dtype="int64", fill_value=-1),
            TIMESTAMP: self.group.create_array(TIMESTAMP, shape=(BLOCK,), chunks=(BLOCK,),
                                               dtype="float64", fill_value=np.nan),
        }
        self.shape, self.dtype = (ny, nx), first.dtype
        self.chunk_dir = self.dir / "frames" / "c"
        self.n = 0
        self.published = 0
        self.frame_numbers: list[int] = []
        self.times: list[float] = []
        self.next_number = first.frame
        self.dropped_ranges: list[list[int]] = []
        self.dropped = 0

    def write(self, image: Image) -> None:
        if image.frame > self.next_number:  # the detector or the network lost frames
            self.dropped_ranges.append([self.next_number, image.frame])
            self.dropped += image.frame - self.next_number
        self.next_number = max(self.next_number, image.frame + 1)
        d = self.chunk_dir / str(self.n) / "0"  # chunk key frames/c/<n>/0/0
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / ".0.partial"
        with open(tmp, "wb") as f:
            f.write(image.bslz4())
        os.replace(tmp, d / "0")
        self.frame_numbers.append(image.frame)
        self.times.append(image.start_time)
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
            self.meta[FRAME_NUMBER][lo:hi] = np.asarray(self.frame_numbers[lo:hi], np.int64)
            self.meta[TIMESTAMP][lo:hi] = np.asarray(self.times[lo:hi], np.float64)
        self.group.attrs.update({FRAMES_COMPLETE: self.n, "dropped": self.dropped,
                                 "dropped_ranges": self.dropped_ranges, "ended": ended})
        self.published = self.n


class Spool:
    """A spool store: a Zarr group holding one segment per received series."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.root = zarr.open_group(str(self.path), mode="a")
        self.segments = sorted(k for k in self.root.group_keys() if k.startswith("seg"))
        self.current: SegmentWriter | None = None
        self.pending_start: Start | None = None
        self.last_publish = time.monotonic()

    def start(self, msg: Start) -> None:
        self.close_segment()
        self.pending_start = msg

    def image(self, msg: Image) -> None:
        cur = self.current
        if cur is None or msg.series != cur.group.attrs["series"] or msg.shape != cur.shape \
                or msg.frame < cur.next_number - 1:
            self.close_segment()  # a new series (or a restarted sender) starts a new segment
            start = self.pending_start if self.pending_start and \
                self.pending_start.series == msg.series else None
            cur = self.current = SegmentWriter(self.root, len(self.segments), msg, start)
            self.segments.append(cur.name)
            self.pending_start = None
        cur.write(msg)

    def end(self) -> None:
        self.close_segment()

    def close_segment(self) -> None:
        if self.current is not None:
            self.current.publish(ended=True)
            self.current = None

    def maybe_publish(self, interval: float) -> None:
        now = time.monotonic()
        if self.current is not None and now - self.last_publish >= interval:
            self.current.publish()
            self.last_publish = now
