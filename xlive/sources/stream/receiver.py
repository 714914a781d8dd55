"""Eiger zeromq stream source: a receiver spools frames to Zarr; the source reads the spool.

:class:`StreamReceiver` connects a PULL socket to the detector (Stream V1 on port 9999, V2 on
31001; both are detected per message), writes every frame into a :class:`Spool` as it arrives
(bitshuffle-LZ4 chunks stored without recompression) and publishes the frame count every
``publish_interval`` seconds and at the end of each series. It runs as
``python -m xlive.sources.stream.receiver tcp://HOST:PORT SPOOL.zarr`` in its own process
(:class:`ReceiverProcess`, what :class:`StreamSource` starts) or in a thread, so nothing
received is lost when analysis lags. Gaps in frame numbers are recorded as dropped
frames; a new series, or a sender that restarts its numbering, starts a new segment.

:class:`StreamSource` (``open_source("tcp://HOST:PORT", spool=...)``) starts a receiver and
reads all segments of the spool, in order, as one run with ``segment`` and ``frame_number``
coordinates.
"""

from __future__ import annotations

import argparse
import atexit
import bisect
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zarr
import zmq

from ...conventions import FRAME_NUMBER, FRAMES_COMPLETE, TIMESTAMP
from ...errors import BadFrameError, SourceError
from ...geometry.core import Geometry
from .._bslz4 import BitshuffleLZ4Codec, bslz4_decode
from .._chunk_write import ChunkWriter, direct_layout
from ..base import FrameReader, Source
from .protocol import End, Image, ProtocolError, Start, decode
from .spool import KEEP_ERRORS, Spool

#: seconds between frame-count updates of the spool (each costs ~5-10 ms of CPU: the frame
#: numbers, times and counter written through zarr). Every 0.1 s this was 0.5-1 ms of CPU
#: per frame at 100 Hz, a third of the receiver's (bench/live_lag.py); the live loop looks
#: at the spool every 0.25 s (LiveParams.poll_interval), so frames wait at most 0.1 s more
PUBLISH_INTERVAL = 0.2
#: seconds a stopping receiver keeps taking frames that already arrived
DRAIN_SECONDS = 0.5


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

    def __init__(
        self, address: str, spool: str | Path, *, publish_interval: float = PUBLISH_INTERVAL
    ):
        self.address = address
        self.spool = Spool(spool)
        self.publish_interval = publish_interval
        self.received = 0
        #: messages refused (malformed, or not fitting the series); the last texts in errors
        self.bad_messages = 0
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

    def run(
        self,
        *,
        until: float | None = None,
        max_series: int | None = None,
        ready=None,
        parent: int | None = None,
    ) -> None:
        """Receive until :meth:`stop`, the deadline ``until`` (monotonic) or ``max_series``
        ends, or (``parent``) until the process ``parent`` is no longer this one's parent
        (it died, even by ``kill -9``); ``ready()`` is called once the socket is connected."""
        sock = self._ctx.socket(zmq.PULL)
        sock.setsockopt(zmq.RCVHWM, 0)  # never drop on our side: the spool absorbs bursts
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.address)
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        if ready is not None:
            ready()
        stopping = None
        try:
            while True:
                if parent is not None and os.getppid() != parent:
                    self._stop.set()  # orphaned: take what already arrived, then end
                if self._stop.is_set():
                    # drain what already arrived, for at most DRAIN_SECONDS: a detector
                    # that goes on sending would keep the queue full for ever
                    stopping = time.monotonic() if stopping is None else stopping
                    if time.monotonic() - stopping > DRAIN_SECONDS or not poller.poll(50):
                        break
                if until is not None and time.monotonic() > until:
                    break
                if max_series is not None and self.series_ended >= max_series:
                    break
                if not poller.poll(int(self.publish_interval * 1000)):
                    self._publish(0.0)
                    continue
                while True:  # drain what is queued before publishing
                    try:
                        parts = sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._handle(parts)
                    self._publish(self.publish_interval)
        finally:
            try:
                self.spool.flush()  # a restarted receiver continues this segment
            except Exception as exc:  # e.g. zarr's I/O loop gone at interpreter shutdown
                # what was not published is received again or counted as dropped on restart
                self._note(
                    "spool_errors", f"could not publish the spool ({type(exc).__name__}: {exc})"
                )
            finally:
                sock.close()

    def _publish(self, interval: float) -> None:
        try:
            self.spool.maybe_publish(interval)
        except Exception as exc:  # disk full or read-only: keep receiving, publish later
            self._note("spool_errors", f"could not publish the spool ({type(exc).__name__}: {exc})")

    def _handle(self, parts: list) -> None:
        """Decode and spool one message; a bad one is counted, recorded and skipped."""
        try:
            msg = decode(parts)
            if isinstance(msg, Image):
                self.spool.image(msg)
                self.received += 1
            elif isinstance(msg, Start):
                self.spool.start(msg)
            elif isinstance(msg, End):
                self.spool.end()
                self.series_ended += 1
        except ProtocolError as exc:
            self.bad_messages += 1
            self._note("bad_messages", f"bad message skipped: {exc}")
        except Exception as exc:  # the spool could not take it (disk full...): go on
            self._note("spool_errors", f"could not spool a message ({type(exc).__name__}: {exc})")

    def _note(self, kind: str, text: str) -> None:
        self.errors.append(text)
        del self.errors[:-KEEP_ERRORS]
        try:
            self.spool.note_error(kind, text)
        except Exception:  # noqa: S110 - counting must never stop the receiver
            pass


class ReceiverProcess:
    """A :class:`StreamReceiver` in a child process (``python -m
    xlive.sources.stream.receiver``).

    In its own process the receiver has its own interpreter lock: as a thread of the live
    process it shares it with the live loop, dask and the analysis, and falls behind at
    EIGER rates (bench/live_lag.py --replay --receiver thread: frames sent at 100 Hz waited
    tens of seconds in zeromq's queue). The child writes the spool; the parent reads it. Its
    messages go to ``SPOOL.receiver.log`` beside the spool. It stops with :meth:`stop`, or by
    itself when the parent dies (even by ``kill -9``: it then publishes what arrived and
    ends, as the receiver thread would have died with it).

    Parameters
    ----------
    address, spool
        As for :class:`StreamReceiver`.
    timeout
        Seconds to wait for the child to open the spool.
    """

    def __init__(self, address: str, spool: str | Path, *, timeout: float = 60.0):
        self.summary = ""
        self.spool = Path(spool)
        self.log_path = self.spool.with_name(self.spool.name + ".receiver.log")
        self.spool.parent.mkdir(parents=True, exist_ok=True)
        existed = (self.spool / "zarr.json").exists()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    __name__,
                    address,
                    str(self.spool),
                    "--ready",
                    "--parent",
                    str(os.getpid()),
                ],
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        # the child says "ready" once its socket is connected and the spool is open
        line = _readline(self.proc.stdout, timeout)
        if line.strip() != b"ready":
            self.stop(timeout=5)
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise SourceError(
                f"the stream receiver for {address} did not start "
                f"({'spool existed; ' if existed else ''}{' | '.join(tail) or 'no message'}); "
                f"see {self.log_path}"
            )

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the child to stop (it drains what arrived and publishes it), then wait."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            #: the child's last words: frames received and its CPU time
            self.summary = self.proc.stdout.read().decode(errors="replace").strip()
            self.proc.stdout.close()


def _readline(stream, timeout: float) -> bytes:
    """One line from a child's pipe, or b"" after ``timeout`` seconds."""
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    try:
        return stream.readline() if sel.select(timeout) else b""
    finally:
        sel.close()


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
        chunk = Path(path) / "frames" / arr.metadata.encode_chunk_key((local, 0, 0))
        if _spool_layout(arr):
            # the chunk file is the frame's bitshuffle-LZ4 blob as received: decode it
            # directly (zarr's async read path costs about as much CPU again as the decoding)
            try:
                blob = chunk.read_bytes()
            except FileNotFoundError:
                blob = None
            if blob is not None:
                # read-only frames (DECTRIS's decoder, ~2x faster for 16-bit; see bslz4_decode)
                return bslz4_decode(blob, dtype=arr.dtype, shape=arr.shape[1:], writable=False)
        elif chunk.exists():
            return arr[local]
        raise BadFrameError(
            f"frame {index} (segment {Path(path).name}, frame {local}) has "
            "no chunk file in the spool: it is missing"
        )


def _readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a``."""
    view = a.view()
    view.flags.writeable = False
    return view


def _segment_dirs(spool: Path) -> list[str]:
    """The spool's ``segNNN`` groups in numeric order, listed from the folder (as
    :func:`~xlive.sources.stream.spool._segment_names` lists them through zarr)."""
    if not (spool / "zarr.json").exists():
        return []
    names = [
        e.name
        for e in os.scandir(spool)
        if e.name.startswith("seg") and e.name[3:].isdigit() and e.is_dir()
    ]
    return sorted(names, key=lambda k: int(k[3:]))


def _group_attrs(path: Path) -> dict:
    """The attributes of the Zarr v3 group at ``path`` (KeyError: not a group yet)."""
    meta = json.loads((path / "zarr.json").read_bytes())
    if meta.get("node_type") != "group":
        raise KeyError(path)
    return meta.get("attributes", {})


def _spool_layout(arr: zarr.Array) -> bool:
    """Whether ``arr`` is laid out as the spool writes it: one frame per chunk, little-endian
    bytes compressed by the bitshuffle-LZ4 codec only (so a chunk file is one frame's blob)."""
    codecs = getattr(arr.metadata, "codecs", ())
    return (
        sys.byteorder == "little"
        and arr.chunks == (1, *arr.shape[1:])
        and len(codecs) == 2
        and type(codecs[0]).__name__ == "BytesCodec"
        and getattr(getattr(codecs[0], "endian", None), "value", "little") == "little"
        and isinstance(codecs[1], BitshuffleLZ4Codec)
    )


class StreamSource(Source):
    """Frames received from an Eiger zeromq stream (V1 or V2), spooled to Zarr.

    Parameters
    ----------
    address
        ``tcp://HOST:PORT`` of the detector stream, or None to only read an existing spool.
    spool
        Spool Zarr store (default: a new folder in the system temporary directory).
    receive
        Start a receiver (False: another process, e.g. ``python -m
        xlive.sources.stream.receiver``, fills the spool).
    receiver
        ``"process"`` (default): the receiver runs as a child process, with its own
        interpreter lock (see :class:`ReceiverProcess`); ``"thread"``: a thread of this
        process.
    **options
        See :class:`~xlive.sources.base.Source`.
    """

    name = "stream"

    @staticmethod
    def guess_can_open(target: str) -> bool:
        """A zeromq address ``tcp://HOST:PORT``."""
        return str(target).startswith("tcp://")

    def __init__(
        self,
        address: str | None = None,
        *,
        spool: str | Path | None = None,
        receive: bool = True,
        receiver: str = "process",
        **options,
    ):
        super().__init__(**options)
        own = None  # the temporary folder of a spool the user did not ask for
        if spool is None:
            own = tempfile.mkdtemp(prefix="xlive-spool-")
            spool = Path(own) / "spool.zarr"
        self.spool_path = Path(spool)
        self.address = address
        self.receiver = None
        try:
            self._start_receiver(receive, receiver)
        except BaseException:
            _remove_spool(None, own)
            raise
        #: removes a temporary spool (after stopping its receiver) on close or at interpreter
        #: exit, not when the source is collected: lazy frames and features read it on
        #: through their readers (``xlive.analyze("tcp://...")`` keeps no source); a spool
        #: the user gave stays
        self._remove_spool = None if own is None else _AtExit(_remove_spool, self.receiver, own)
        self._segs: list[tuple[str, int, int]] = []  # (path, start, n)
        self._seg_shapes: dict[str, tuple[int, ...]] = {}  # frame shape of each segment
        self._shape: tuple[int, int] | None = None
        self._dtype: np.dtype | None = None
        self._seg_geometry: Geometry | None = None
        #: per segment: frame numbers and times read so far, and the arrays they come from
        self._meta_rows: dict[str, tuple[int, np.ndarray, np.ndarray]] = {}
        #: each segment's attributes as read at the last count
        self._seg_attrs: dict[str, dict] = {}
        self._meta_arrays: dict[str, tuple[zarr.Array, zarr.Array]] = {}
        self._meta_readers: dict[str, list[ChunkWriter | None]] = {}
        self.refresh()

    def _count(self) -> int:
        """Frames published in the spool's segments (a segment being created is skipped).

        The live loop asks several times a second: the segments' counters are read from
        their ``zarr.json`` documents directly (zarr writes each one atomically); zarr
        opens a segment's arrays only the first time it is seen (through zarr, a count cost
        ~10 ms of CPU per poll)."""
        try:
            names = _segment_dirs(self.spool_path)
        except OSError:
            return self._n
        segs, start, seg_attrs = [], 0, {}
        for name in names:
            try:
                attrs = _group_attrs(self.spool_path / name)
                seg_attrs[str(self.spool_path / name)] = attrs
                n = int(attrs.get(FRAMES_COMPLETE, 0))
                if not n:
                    continue  # created, nothing published yet (its arrays may not exist)
                shape = self._seg_shapes.get(name)
                if shape is None:
                    shape = self._seg_shapes[name] = self._first_look(name)
            except (KeyError, FileNotFoundError, ValueError):
                continue  # being created by the receiver right now
            if shape != self._shape:
                break  # a different detector: open that segment on its own
            segs.append((str(self.spool_path / name), start, n))
            start += n
        # a resumed segment grows after later ones cannot exist: counts only ever increase
        self._segs = segs
        self._seg_attrs = seg_attrs
        if self._reader is not None:
            self._reader.segments = [(p, s) for p, s, n in segs if n]
        return start

    def _first_look(self, name: str) -> tuple[int, ...]:
        """A segment's frame shape (and, for the first segment, the run's dtype and header
        geometry), read through zarr once."""
        g = zarr.open_group(str(self.spool_path / name), mode="r")
        frames = g["frames"]
        if self._shape is None:
            self._shape, self._dtype = tuple(frames.shape[1:]), frames.dtype
            geom = g.attrs.get("xlive", {}).get("geometry")
            if geom:
                mask = None
                if "mask" in g:
                    mask = (np.asarray(g["mask"][...]).astype(np.uint64) & 0xFFFF) != 0
                self._seg_geometry = Geometry.from_dict(geom, mask=mask)
        return tuple(frames.shape[1:])

    def _make_reader(self) -> FrameReader:
        return ZarrSegmentsReader(
            [(p, s) for p, s, n in self._segs if n],
            shape=self._shape,
            dtype=self._dtype,
            masked_values=self._masked_for(self._dtype),
        )

    def _header_geometry(self) -> Geometry | None:
        return self._seg_geometry

    def _native_metadata(self, n: int) -> dict[str, np.ndarray]:
        out = {FRAME_NUMBER: [], TIMESTAMP: [], "segment": []}
        for k, (path, _start, count) in enumerate(self._segs):
            numbers, times = self._segment_metadata(path, count)
            out[FRAME_NUMBER].append(numbers)
            out[TIMESTAMP].append(times)
            out["segment"].append(np.full(count, k, np.int32))
        # one segment (the usual run): its rows as they are, read-only, not copied at every
        # call (the live loop asks at every store write)
        return {
            k: (_readonly(v[0][:n]) if len(v) == 1 else np.concatenate(v)[:n] if v else np.zeros(0))
            for k, v in out.items()
        }

    def _segment_metadata(self, path: str, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame numbers and times of a segment's first ``count`` frames. Published rows never
        change, so only the rows published since the last call are read (the live loop asks
        at every store write: reading whole segments cost more the longer the run)."""
        rows, numbers, times = self._meta_rows.get(path, (0, np.zeros(0, np.int64), np.zeros(0)))
        if rows < count:
            arrays = self._meta_arrays.get(path)
            if arrays is None or arrays[0].shape[0] < count:  # the receiver grew the arrays
                g = zarr.open_group(path, mode="r")
                arrays = self._meta_arrays[path] = (g[FRAME_NUMBER], g[TIMESTAMP])
                # the receiver's layout: rows read straight from the chunk files (through
                # zarr's event loop, 2 ms of CPU for both at every store write)
                self._meta_readers[path] = [
                    ChunkWriter(a) if direct_layout(a) else None for a in arrays
                ]
            if numbers.size < count:  # room for twice as many: appends cost O(1) per row
                numbers = np.concatenate([numbers[:rows], np.zeros(2 * count, np.int64)])
                times = np.concatenate([times[:rows], np.zeros(2 * count)])
            readers = self._meta_readers[path]
            for out, arr, direct in zip((numbers, times), arrays, readers, strict=True):
                out[rows:count] = arr[rows:count] if direct is None else direct.read(rows, count)
            rows = count
            self._meta_rows[path] = (rows, numbers, times)
        return numbers[:count], times[:count]

    @property
    def dropped_frames(self) -> dict[int, list[list[int]]]:
        """Per segment: [first, stop) ranges of detector frame numbers that never arrived."""
        out = {}
        for k, (path, _s, _n) in enumerate(self._segs):
            # as the segment's counter said at the last refresh (its zarr.json, read then)
            attrs = self._seg_attrs.get(path)
            if attrs is None:
                attrs = zarr.open_group(path, mode="r").attrs
            ranges = attrs.get("dropped_ranges", [])
            if ranges:
                out[k] = [list(r) for r in ranges]
        return out

    @property
    def n_dropped(self) -> int:
        return sum(b - a for ranges in self.dropped_frames.values() for a, b in ranges)

    def receiver_stats(self) -> dict:
        """What the receiver recorded: bad messages, spool errors, starts, last error texts."""
        try:  # the spool's zarr.json read directly (asked with the faults, every 2 s)
            return dict(_group_attrs(self.spool_path).get("receiver", {}))
        except Exception:
            return {}

    def faults(self) -> dict:
        """Frames dropped (gaps in the detector's numbering) and messages refused."""
        out = super().faults()
        dropped = self.dropped_frames
        if dropped:
            out["dropped"] = self.n_dropped
            out["dropped_ranges"] = {f"segment {k}": v for k, v in dropped.items()}
        rs = self.receiver_stats()
        for key in ("bad_messages", "spool_errors"):
            if rs.get(key):
                out[key] = int(rs[key])
        if rs.get("last_errors"):
            out["last_errors"] = list(rs["last_errors"])[-3:]
        return out

    def _frame_shape_hint(self) -> tuple[int, int]:
        return self._shape or (0, 0)

    def _dtype_hint(self) -> np.dtype:
        return self._dtype or np.dtype("uint16")

    def _start_receiver(self, receive: bool, receiver: str) -> None:
        address = self.address
        if address is not None and receive:
            if not re.fullmatch(r"tcp://(\[[0-9a-fA-F:.]+\]|[^:/\[\]]+):\d+", address):
                raise SourceError(f"stream address {address!r} must look like tcp://HOST:PORT")
            if receiver not in ("process", "thread"):
                raise SourceError(f"receiver must be 'process' or 'thread', not {receiver!r}")
            try:
                if receiver == "process":
                    self.receiver = ReceiverProcess(address, self.spool_path)
                else:
                    self.receiver = StreamReceiver(address, self.spool_path).start()
            except OSError as exc:
                raise SourceError(
                    f"cannot write the stream spool {self.spool_path} "
                    f"({exc.strerror or exc}); give a writable --spool"
                ) from None
        elif not self.spool_path.exists():
            raise SourceError(f"spool {self.spool_path} does not exist and no address was given")

    def close(self) -> None:
        if self.receiver is not None:
            self.receiver.stop()
        if self._remove_spool:
            self._remove_spool()  # once; later calls do nothing


class _AtExit:
    """``fn(*args)`` once: when called, else at interpreter exit."""

    def __init__(self, fn, *args):
        self._call = (fn, args)
        atexit.register(self)

    def __call__(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            atexit.unregister(self)
            call[0](*call[1])


def _remove_spool(receiver, folder: str | None) -> None:
    """Stop ``receiver`` (it would write on), then remove the temporary spool ``folder``."""
    if receiver is not None:
        receiver.stop()
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Receive an Eiger zeromq stream into a Zarr spool.")
    p.add_argument("address", help="tcp://HOST:PORT of the detector stream")
    p.add_argument("spool", help="spool Zarr store to write")
    p.add_argument("--timeout", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--series", type=int, default=None, help="stop after this many series ended")
    p.add_argument(
        "--ready", action="store_true", help="print 'ready' once connected and the spool is open"
    )
    p.add_argument(
        "--parent",
        type=int,
        default=None,
        help="stop (after draining) when the process PID is no longer the parent",
    )
    p.add_argument(
        "--publish-interval",
        type=float,
        default=PUBLISH_INTERVAL,
        help="seconds between frame-count updates of the spool while a series runs",
    )
    a = p.parse_args(argv)
    rec = StreamReceiver(a.address, a.spool, publish_interval=a.publish_interval)
    # SIGTERM (ReceiverProcess.stop): drain what arrived, publish it, exit
    signal.signal(signal.SIGTERM, lambda *_: rec._stop.set())
    until = None if a.timeout is None else time.monotonic() + a.timeout
    cpu0 = time.process_time()
    rec.run(
        until=until,
        max_series=a.series,
        ready=_say_ready if a.ready else None,
        parent=a.parent,
    )
    cpu = time.process_time() - cpu0
    per = f", {cpu * 1e3 / rec.received:.2f} ms per frame" if rec.received else ""
    print(f"received {rec.received} frames into {a.spool} ({cpu:.2f} s CPU after start-up{per})")


def _say_ready() -> None:
    print("ready", flush=True)


if __name__ == "__main__":
    main()
