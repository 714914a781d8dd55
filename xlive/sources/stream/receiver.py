"""Eiger zeromq stream source: a receiver spools frames to Zarr; the source reads the spool.

:class:`StreamReceiver` connects a PULL socket to the detector (Stream V1 on port 9999, V2 on
31001; both are detected per message), writes every frame into a :class:`Spool` as it arrives
(bitshuffle-LZ4 chunks stored without recompression) and publishes the frame count every
``publish_interval`` seconds and at the end of each series. It runs in its own thread (or as
``python -m xlive.sources.stream.receiver tcp://HOST:PORT SPOOL.zarr`` in its own process), so
nothing received is lost when analysis lags. Gaps in frame numbers are recorded as dropped
frames; a new series, or a sender that restarts its numbering, starts a new segment.

:class:`StreamSource` (``open_source("tcp://HOST:PORT", spool=...)``) starts a receiver and
reads all segments of the spool, in order, as one run with ``segment`` and ``frame_number``
coordinates.
"""

from __future__ import annotations

import argparse
import bisect
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zarr
import zmq

from ...conventions import FRAME_NUMBER, FRAMES_COMPLETE, TIMESTAMP
from ...errors import SourceError
from ...geometry.core import Geometry
from ..base import FrameReader, Source
from .protocol import End, Image, ProtocolError, Start, decode
from .spool import Spool


class StreamReceiver:
    """Receive an Eiger stream into a Zarr spool.

    Parameters
    ----------
    address
        ``tcp://HOST:PORT`` of the detector's PUSH socket (the receiver connects).
    spool
        Path of the spool Zarr store (created if missing).
    publish_interval
        Seconds between frame-count updates while a series runs.
    """

    def __init__(self, address: str, spool: str | Path, *, publish_interval: float = 0.1):
        self.address = address
        self.spool = Spool(spool)
        self.publish_interval = publish_interval
        self.received = 0
        self.errors: list[str] = []
        self.series_ended = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ctx = zmq.Context.instance()

    def start(self) -> StreamReceiver:
        self._thread = threading.Thread(target=self.run, name="xlive-stream-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after draining what already arrived; publish everything."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self, *, until: float | None = None, max_series: int | None = None) -> None:
        """Receive until :meth:`stop`, the deadline ``until`` (monotonic) or ``max_series`` ends."""
        sock = self._ctx.socket(zmq.PULL)
        sock.setsockopt(zmq.RCVHWM, 0)  # never drop on our side: the spool absorbs bursts
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.address)
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        try:
            while True:
                if self._stop.is_set() and not poller.poll(50):
                    break
                if until is not None and time.monotonic() > until:
                    break
                if max_series is not None and self.series_ended >= max_series:
                    break
                if not poller.poll(int(self.publish_interval * 1000)):
                    self.spool.maybe_publish(0.0)
                    continue
                while True:  # drain what is queued before publishing
                    try:
                        parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._handle(parts)
                    self.spool.maybe_publish(self.publish_interval)
        finally:
            self.spool.close_segment()
            sock.close()

    def _handle(self, parts: list) -> None:
        try:
            msg = decode(parts)
        except ProtocolError as exc:
            self.errors.append(str(exc))
            return
        if isinstance(msg, Image):
            self.spool.image(msg)
            self.received += 1
        elif isinstance(msg, Start):
            self.spool.start(msg)
        elif isinstance(msg, End):
            self.spool.end()
            self.series_ended += 1


class ZarrSegmentsReader(FrameReader):
    """Frames spread over spool segments: ``segments`` is a list of (group path, start)."""

    def __init__(self, segments: list[tuple[str, int]], **kw):
        super().__init__(**kw)
        self.segments = segments
        self._arrays: dict[str, zarr.Array] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_arrays": {}}

    def _read(self, index: int) -> np.ndarray:
        k = bisect.bisect_right([s[1] for s in self.segments], index) - 1
        path, start = self.segments[k]
        local = index - start
        arr = self._arrays.get(path)
        if arr is None or arr.shape[0] <= local:
            arr = self._arrays[path] = zarr.open_array(f"{path}/frames", mode="r")
        return arr[local]


class StreamSource(Source):
    """Frames received from an Eiger zeromq stream (V1 or V2), spooled to Zarr.

    Parameters
    ----------
    address
        ``tcp://HOST:PORT`` of the detector stream, or None to only read an existing spool.
    spool
        Spool Zarr store (default: a new folder in the system temporary directory).
    receive
        Start a receiver thread (False: another process, e.g. ``python -m
        xlive.sources.stream.receiver``, fills the spool).
    **options
        See :class:`~xlive.sources.base.Source`.
    """

    name = "stream"

    @staticmethod
    def guess_can_open(target: str) -> bool:
        """A zeromq address ``tcp://HOST:PORT``."""
        return str(target).startswith("tcp://")

    def __init__(self, address: str | None = None, *, spool: str | Path | None = None,
                 receive: bool = True, **options):
        super().__init__(**options)
        if spool is None:
            spool = Path(tempfile.mkdtemp(prefix="xlive-spool-")) / "spool.zarr"
        self.spool_path = Path(spool)
        self.address = address
        self.receiver = None
        if address is not None and receive:
            if not address.startswith("tcp://"):
                raise SourceError(f"stream address {address!r} must look like tcp://HOST:PORT")
            self.receiver = StreamReceiver(address, self.spool_path).start()
        elif not self.spool_path.exists():
            raise SourceError(f"spool {self.spool_path} does not exist and no address was given")
        self._segs: list[tuple[str, int, int]] = []  # (path, start, n)
        self._shape: tuple[int, int] | None = None
        self._dtype: np.dtype | None = None
        self._seg_geometry: Geometry | None = None
        self.refresh()

    def _count(self) -> int:
        if not (self.spool_path / "zarr.json").exists():
            return 0
        try:
            root = zarr.open_group(str(self.spool_path), mode="r")
            names = sorted(k for k in root.group_keys() if k.startswith("seg"))
        except Exception:
            return self._n
        segs, start = [], 0
        for name in names:
            g = root[name]
            if "frames" not in g:
                break  # a segment being created: its frames array comes next
            n = int(g.attrs.get(FRAMES_COMPLETE, 0))
            frames = g["frames"]
            if self._shape is None and n:
                self._shape, self._dtype = tuple(frames.shape[1:]), frames.dtype
                geom = g.attrs.get("xlive", {}).get("geometry")
                if geom:
                    mask = None
                    if "mask" in g:
                        mask = (np.asarray(g["mask"][...]).astype(np.uint64) & 0xFFFF) != 0
                    self._seg_geometry = Geometry.from_dict(geom, mask=mask)
            if n and tuple(frames.shape[1:]) != self._shape:
                break  # a different detector: open that segment on its own
            segs.append((str(self.spool_path / name), start, n))
            start += n
        self._segs = segs
        if self._reader is not None:
            self._reader.segments = [(p, s) for p, s, n in segs if n]
        return start

    def _make_reader(self) -> FrameReader:
        return ZarrSegmentsReader([(p, s) for p, s, n in self._segs if n], shape=self._shape,
                                  dtype=self._dtype, masked_values=self._masked_for(self._dtype))

    def _header_geometry(self) -> Geometry | None:
        return self._seg_geometry

    def _native_metadata(self, n: int) -> dict[str, np.ndarray]:
        out = {FRAME_NUMBER: [], TIMESTAMP: [], "segment": []}
        for k, (path, _start, count) in enumerate(self._segs):
            g = zarr.open_group(path, mode="r")
            out[FRAME_NUMBER].append(np.asarray(g[FRAME_NUMBER][:count]))
            out[TIMESTAMP].append(np.asarray(g[TIMESTAMP][:count]))
            out["segment"].append(np.full(count, k, np.int32))
        return {k: (np.concatenate(v)[:n] if v else np.zeros(0)) for k, v in out.items()}

    @property
    def dropped_frames(self) -> dict[int, list[list[int]]]:
        """Per segment: [first, stop) ranges of detector frame numbers that never arrived."""
        out = {}
        for k, (path, _s, _n) in enumerate(self._segs):
            ranges = zarr.open_group(path, mode="r").attrs.get("dropped_ranges", [])
            if ranges:
                out[k] = [list(r) for r in ranges]
        return out

    @property
    def n_dropped(self) -> int:
        return sum(b - a for ranges in self.dropped_frames.values() for a, b in ranges)

    def _frame_shape_hint(self) -> tuple[int, int]:
        return self._shape or (0, 0)

    def _dtype_hint(self) -> np.dtype:
        return self._dtype or np.dtype("uint16")

    def close(self) -> None:
        if self.receiver is not None:
            self.receiver.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Receive an Eiger zeromq stream into a Zarr spool.")
    p.add_argument("address", help="tcp://HOST:PORT of the detector stream")
    p.add_argument("spool", help="spool Zarr store to write")
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--series", type=int, default=None, help="stop after this many series ended")
    a = p.parse_args(argv)
    rec = StreamReceiver(a.address, a.spool)
    until = None if a.timeout is None else time.monotonic() + a.timeout
    rec.run(until=until, max_series=a.series)
    print(f"received {rec.received} frames into {a.spool}")


if __name__ == "__main__":
    main()
