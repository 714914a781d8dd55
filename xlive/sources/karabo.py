"""The European XFEL Karabo bridge stream: trains received by the ``karabo-bridge`` client,
spooled to Zarr so nothing received is lost when the analysis lags.

:class:`KaraboReceiver` runs the package's :class:`karabo_bridge.Client` in a thread (or as
``python -m xlive.sources.karabo tcp://HOST:PORT SPOOL.zarr``), takes the detector image of
each train (``image.data``, in the bridge's *online* ``(modules, fs, ss, pulses)`` or *file*
``(pulses, modules, ss, fs)`` order, told apart by the length of ``image.pulseId``), and writes
every pulse as one frame ``(modules * ss, fs)`` with its train id and pulse id. The spool is an
ordinary xlive Zarr store (frames, then ``train_id``/``pulse_id``, then the ``frames_complete``
counter, in that order), so :class:`KaraboSource` (``open_source("karabo://HOST:PORT", ...)``)
is a Zarr source over it; trains missing from the sequence of train ids are counted as lost.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zarr
from numcodecs import blosc
from zarr.codecs import BloscCodec, TransposeCodec

from ..conventions import FRAMES_COMPLETE, PULSE_ID, TRAIN_ID
from ..errors import SourceError
from .zarr_store import ZarrSource

#: trains of room added to the arrays at a time
BLOCK = 64


def _client(address: str, sock: str, timeout: float, buffer_trains: int = 1):
    try:
        from karabo_bridge import Client
    except ImportError:  # pragma: no cover - the extra is installed in CI
        raise SourceError(
            "the Karabo bridge needs the karabo-bridge client: pip install 'xlive[xfel]'"
        ) from None
    if sock == "PULL" and buffer_trains > 1:
        return _DeepPullClient(address, timeout, buffer_trains)
    return Client(address, sock=sock, timeout=timeout)


class _DeepPullClient:
    """``karabo_bridge.Client``'s PULL case, with room for ``trains`` messages.

    The package's client sets a high-water mark of 1 on both ends: the sender sends the next
    train only once the receiving *Python thread* has taken the last one, so any moment that
    thread waits for a core (a shared machine, the writer thread) stalls the sender. With a
    deeper receive buffer, zeromq's own I/O thread (C, no GIL) receives ahead meanwhile. The
    option must be set before connecting (reconnecting the package's socket would drop the
    message already in its pipe: a lost train), hence this socket; messages are decoded by the
    package's own :func:`karabo_bridge.serializer.deserialize`.
    """

    def __init__(self, address: str, timeout: float, trains: int):
        import zmq

        self._zmq = zmq
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.PULL)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.RCVHWM, trains)
        self._socket.setsockopt(zmq.RCVTIMEO, int(timeout * 1000))
        self._socket.connect(address)

    def next(self) -> tuple[dict, dict]:
        from karabo_bridge.serializer import deserialize

        try:
            msg = self._socket.recv_multipart(copy=False)
        except self._zmq.error.Again:
            raise TimeoutError("no train within the timeout") from None
        return deserialize(msg)


def _pulses_first(arr: np.ndarray, block: int = 8) -> np.ndarray:
    """The online layout ``(m?, fs, ss, p)`` as frames ``(p, m?, ss, fs)`` in C order: one copy.

    The pulse axis is the fastest in the bridge's online layout; a plain transposed copy reads
    every cache line once per pulse. Copying ``block`` rows of the slow scan at a time keeps
    the source lines in cache (about 4x faster than one ``ascontiguousarray`` here, and half
    the time of a blocked pulse transpose followed by a second copy for the ss/fs swap).
    """
    a = arr if arr.ndim == 4 else arr[None]  # (m, fs, ss, p)
    m, nf, ns, p = a.shape
    out = np.empty((p, m, ns, nf), arr.dtype)
    for k in range(m):
        for j in range(0, ns, block):
            out[:, k, j : j + block, :] = a[k, :, j : j + block].transpose(2, 1, 0)
    return out if arr.ndim == 4 else out[:, 0]


def _is_online(arr: np.ndarray, n: int, layout: str | None = None) -> bool:
    """Is ``arr`` in the online layout ``(m?, fs, ss, p)`` rather than ``(p, m?, ss, fs)``?

    Told by which axis has the pulse count; when both do (as many modules as pulses), by the
    stream's ``layout`` seen so far, else online (a last axis of fs pixels rarely equals it).
    """
    last, first = arr.ndim >= 3 and arr.shape[-1] == n, arr.shape[0] == n
    if last and first:
        return layout != "file"
    if not (last or first):
        raise SourceError(f"cannot tell the pulse axis of image data {arr.shape} with {n} pulses")
    return last


def train_frames(
    data: dict, key: str = "image.data", layout: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(frames (n, modules * ss, fs), pulse ids)`` of one source's train data, C-contiguous
    (the file layout is used as received, without a copy; the online layout is copied once)."""
    arr = np.asarray(data[key])
    pulses = np.asarray(data.get("image.pulseId", np.arange(1)), np.uint64).ravel()
    n = pulses.size
    if _is_online(arr, n, layout):  # (m?, fs, ss, p)
        arr = _pulses_first(arr)  # (p, m?, ss, fs)
    if arr.ndim == 4:  # modules stacked along the slow scan
        arr = arr.reshape(n, arr.shape[1] * arr.shape[2], arr.shape[3])
    return np.ascontiguousarray(arr), pulses


def _pieces(
    arr: np.ndarray, n: int, layout: str | None = None
) -> tuple[str, list[np.ndarray], tuple[int, int]]:
    """``(layout, pieces, frame shape)`` of a train's image array with ``n`` pulses.

    Online layout ``(m?, fs, ss, p)``: one piece per module, ``(fs, ss, p)`` (contiguous
    slices of what was received); file layout ``(p, m?, ss, fs)``: one piece, the whole train
    as ``(p, m * ss, fs)``. Frames are ``(m * ss, fs)``, modules stacked along the slow scan.
    """
    if _is_online(arr, n, layout):
        mods = arr if arr.ndim == 4 else arr[None]
        m, nf, ns, _ = mods.shape
        return "online", [mods[j] for j in range(m)], (m * ns, nf)
    frames = arr.reshape(n, -1, arr.shape[-1])
    return "file", [frames], frames.shape[1:]


_STOP = object()


class KaraboReceiver:
    """Receive a Karabo bridge stream into a Zarr spool.

    Two threads: one only receives and deserialises trains (the bridge's client hands numpy
    views of the zeromq frames, no copy) and queues them; the other writes each train as one
    chunk of the frames array (one file per train, written whole and renamed), its train and
    pulse ids as chunks of their own, and publishes the frame counter. The bridge's sockets
    hold one message each side (HWM 1): a receiver that blocks while writing makes the sender
    wait, so receiving never waits for the disk, up to ``queue_bytes`` of trains in memory.

    Parameters
    ----------
    address
        ``tcp://HOST:PORT`` of the bridge server.
    spool
        Path of the spool Zarr store (created).
    sock
        The client's socket: ``PULL`` for a PUSH server, ``REQ`` for a REP server, ``SUB``.
    source, key
        Detector source (default: the first one holding ``key``) and image key.
    queue_bytes
        Most bytes of received trains waiting to be written (then receiving waits).
    compress
        Blosc compressor of the chunks (``"lz4"``, byte shuffle, level 1: about 15 ms per
        8 MB train here, half the bytes on real detector data, next to nothing for empty
        frames), or None to write raw bytes.
    buffer_trains
        Trains zeromq may receive ahead of the receiving thread (PULL sockets; the bridge
        client's own setting is 1, which stalls the sender whenever the thread is late). A disk that takes ~150 MB/s cannot hold a raw
        AGIPD module stream at 25 trains/s (200 MB/s); compression trades CPU for bytes.
    """

    def __init__(
        self,
        address: str,
        spool: str | Path,
        *,
        sock: str = "PULL",
        source: str | None = None,
        key: str = "image.data",
        publish_interval: float = 0.25,
        geometry: dict | None = None,
        queue_bytes: int = 2**30,
        compress: str | None = "lz4",
        buffer_trains: int = 4,
    ):
        self.address, self.sock = address, sock
        self.path = Path(spool)
        self.source, self.key = source, key
        self.publish_interval = publish_interval
        self.geometry = geometry
        self.queue_bytes = queue_bytes
        self.compress = compress
        self.buffer_trains = buffer_trains
        #: monotonic time the first train was received (for rates)
        self.t_first: float | None = None
        #: trains received, trains written (spooled), frames written, trains lost (id gaps)
        self.received = 0
        self.trains = 0
        self.frames = 0
        self.lost = 0
        self.first_train: int | None = None
        self.last_train: int | None = None
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._group: zarr.Group | None = None
        self._arrays: dict = {}
        self._published = 0
        self._queue: queue.Queue = queue.Queue()
        self._queued = 0  # bytes waiting in the queue
        self._room = threading.Condition()
        self._pulses: int | None = None  # frames per chunk: the first train's pulse count
        self._layout: str | None = None  # "online" or "file": the first train's

    # ------------------------------------------------------------------ threads
    def start(self) -> KaraboReceiver:
        self._thread = threading.Thread(target=self.run, name="xlive-karabo-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(
        self,
        *,
        until: float | None = None,
        max_trains: int | None = None,
        seconds_after_first: float | None = None,
    ) -> None:
        """Receive until :meth:`stop`, the monotonic deadline ``until``, ``max_trains`` or
        ``seconds_after_first`` after the first train; then write what was received and
        return."""
        client = _client(self.address, self.sock, self.publish_interval, self.buffer_trains)
        writer = threading.Thread(target=self._write_loop, name="xlive-karabo-writer", daemon=True)
        writer.start()
        try:
            while not self._stop.is_set():
                if until is not None and time.monotonic() > until:
                    break
                if max_trains is not None and self.received >= max_trains:
                    break
                if (
                    seconds_after_first is not None
                    and self.t_first is not None
                    and time.monotonic() - self.t_first > seconds_after_first
                ):
                    break
                try:
                    data, meta = client.next()
                except TimeoutError:
                    continue
                self._put(data, meta)
        finally:
            self._queue.put(_STOP)
            writer.join()
            client._context.destroy(linger=0)

    def _put(self, data: dict, meta: dict) -> None:
        nbytes = sum(getattr(v, "nbytes", 0) for src in data.values() for v in src.values())
        with self._room:
            while self._queued > self.queue_bytes and not self._stop.is_set():
                self._room.wait(0.1)
            self._queued += nbytes
        self._queue.put((data, meta, nbytes))
        if self.t_first is None:
            self.t_first = time.monotonic()
        self.received += 1

    def _write_loop(self) -> None:
        last_publish = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=self.publish_interval)
            except queue.Empty:
                self._publish_safely()
                continue
            if item is _STOP:
                break
            data, meta, nbytes = item
            try:
                self._train(data, meta)
            except Exception as exc:  # a malformed train: counted, the stream goes on
                self.errors.append(f"{type(exc).__name__}: {exc}")
            del data, meta, item
            with self._room:
                self._queued -= nbytes
                self._room.notify()
            if time.monotonic() - last_publish >= self.publish_interval:
                self._publish_safely()
                last_publish = time.monotonic()
        self._publish_safely()

    def _publish_safely(self) -> None:
        try:
            self.publish()
        except Exception as exc:  # e.g. the interpreter shutting down under a daemon thread
            self.errors.append(f"publishing: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ writing
    def _train(self, data: dict, meta: dict) -> None:
        src = self.source or next((s for s in data if self.key in data[s]), None)
        if src is None or src not in data:
            self.errors.append(f"train without {self.key!r} in {sorted(data)}")
            return
        tid = int(meta.get(src, {}).get("timestamp.tid", data[src].get("image.trainId", [0])[0]))
        received = np.asarray(data[src][self.key])
        pulses = np.asarray(data[src].get("image.pulseId", np.arange(1)), np.uint64).ravel()
        layout, pieces, frame_shape = _pieces(received, pulses.size, self._layout)
        if self._group is None:
            self._create(layout, (pulses.size, *frame_shape), pieces[0].shape, received.dtype, src)
        if self.last_train is not None and tid > self.last_train + 1:
            self.lost += tid - self.last_train - 1
        self.first_train = tid if self.first_train is None else self.first_train
        self.last_train = tid
        n = pulses.size
        n0, n1 = self.frames, self.frames + n
        arr = self._arrays["frames"]
        if n1 > arr.shape[0]:
            cap = (n1 // (BLOCK * self._pulses) + 1) * BLOCK * self._pulses
            for a in self._arrays.values():
                a.resize((cap, *a.shape[1:]))
        tids = np.full(n, tid, "<u8")
        pids = pulses.astype("<u8")
        if layout == self._layout and n == self._pulses and n0 % n == 0:
            # the usual case: each piece of the train (a module in the online layout, the
            # whole train in the file layout) is one chunk whose stored bytes are the
            # received bytes (see _create), written whole and renamed as the Eiger spool
            # does: no copy, no transposition here (readers transpose, in parallel)
            k = n0 // n
            little = received.dtype.newbyteorder("<")
            for j, piece in enumerate(pieces):
                chunk = np.ascontiguousarray(piece, dtype=little)  # a view when it can be
                if self.compress:
                    chunk = blosc.compress(
                        chunk, self.compress.encode(), 1, blosc.SHUFFLE, 0, typesize=little.itemsize
                    )
                self._write_chunk("frames", f"c.{k}.{j}.0", chunk)
            self._write_chunk(TRAIN_ID, f"c.{k}", tids)
            self._write_chunk(PULSE_ID, f"c.{k}", pids)
        else:  # a train of another length or layout: through zarr (chunks rewritten, slower)
            frames, _ = train_frames(data[src], self.key, layout)
            arr[n0:n1] = frames
            self._arrays[TRAIN_ID][n0:n1] = tids
            self._arrays[PULSE_ID][n0:n1] = pids
        self.frames = n1
        self.trains += 1

    def _write_chunk(self, array: str, name: str, values) -> None:
        folder = self.path / array
        tmp = folder / f".{name}.partial"
        with open(tmp, "wb") as f:
            f.write(memoryview(values))
        os.replace(tmp, folder / name)

    def _create(self, layout: str, shape: tuple, piece: tuple, dtype: np.dtype, src: str) -> None:
        g = zarr.open_group(str(self.path), mode="w")
        info = {"detector": src, "stream": "karabo-bridge " + self.address, "layout": layout}
        if self.geometry is not None:
            info["geometry"] = self.geometry
        g.attrs.update({FRAMES_COMPLETE: 0, "xlive": info, "trains_lost": 0})
        p = self._pulses = shape[0]
        self._layout = layout
        raw = dict(
            fill_value=0,
            compressors=None,
            chunk_key_encoding={"name": "default", "separator": "."},  # no folder per chunk
            config={"write_empty_chunks": True},
        )
        if layout == "online":
            # a chunk is one module of one train, (p, ss, fs), stored transposed as the
            # bridge sends it, (fs, ss, p): zarr's transpose codec turns it round on reading
            chunks, filters = (p, piece[1], piece[0]), [TransposeCodec(order=(2, 1, 0))]
        else:
            chunks, filters = shape, None  # the whole train, as received
        codec = None
        if self.compress:
            codec = BloscCodec(
                cname=self.compress, clevel=1, shuffle="shuffle", typesize=dtype.itemsize
            )
        self._arrays["frames"] = g.create_array(
            "frames",
            shape=(BLOCK * p, *shape[1:]),
            chunks=chunks,
            dtype=dtype.newbyteorder("<"),
            dimension_names=("frame", "y", "x"),
            filters=filters,
            **{**raw, "compressors": codec},
        )
        for name in (TRAIN_ID, PULSE_ID):
            self._arrays[name] = g.create_array(
                name, shape=(BLOCK * p,), chunks=(p,), dtype="<u8", **raw
            )
        self._group = g

    def publish(self) -> None:
        """Frames and their ids are written (chunk files renamed), the counter goes last."""
        if self._group is None or self.frames == self._published:
            return
        hi = self.frames
        self._group.attrs.update(
            {FRAMES_COMPLETE: hi, "trains_lost": self.lost, "trains_received": self.trains}
        )
        self._published = hi


class KaraboSource(ZarrSource):
    """A Karabo bridge stream followed live: a receiver thread spools, Zarr reads the spool.

    Parameters
    ----------
    address
        ``karabo://HOST:PORT`` or ``tcp://HOST:PORT`` of the bridge server.
    spool
        Where received frames go, a new Zarr store that stays after :meth:`close` (default: a
        temporary folder, removed on :meth:`close`).
    sock, source, key
        See :class:`KaraboReceiver`.
    wait
        Seconds to wait for the first train (the frame shape is needed).
    **options
        See :class:`~xlive.sources.base.Source` (``geometry=``: EuXFEL streams carry none).
    """

    name = "karabo"

    @staticmethod
    def guess_can_open(target: str) -> bool:
        return str(target).startswith("karabo://")

    def __init__(
        self,
        address: str,
        *,
        spool: str | Path | None = None,
        sock: str = "PULL",
        source: str | None = None,
        key: str = "image.data",
        wait: float = 30.0,
        **options,
    ):
        address = "tcp://" + address.removeprefix("karabo://").removeprefix("tcp://")
        #: the temporary folder holding the spool, removed on close (None: the caller's spool)
        self._temporary = None
        if spool is None:
            self._temporary = Path(tempfile.mkdtemp(prefix="xlive-karabo-"))
            spool = self._temporary / "karabo.zarr"
        elif Path(spool).exists():
            # the receiver starts a new store: an old spool's frames would be overwritten
            raise SourceError(
                f"Karabo spool {spool} exists (frames of an earlier run?); give a new --spool "
                "or remove the old one"
            )
        geom = options.get("geometry")
        self.receiver = KaraboReceiver(
            address,
            spool,
            sock=sock,
            source=source,
            key=key,
            geometry=None if geom is None else geom.to_dict(),
        )
        self.receiver.start()
        deadline = time.monotonic() + wait
        while self.receiver._published == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.receiver._published == 0:
            self.close()
            raise SourceError(
                f"no train from the Karabo bridge at {address} within {wait:g} s; check the "
                "address and that the server's socket matches sock= (PUSH server: PULL, "
                "REP server: REQ, PUB server: SUB)"
            )
        super().__init__(spool, **options)

    def close(self) -> None:
        self.receiver.stop()
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Spool a Karabo bridge stream to Zarr.")
    ap.add_argument("address")
    ap.add_argument("spool")
    ap.add_argument("--sock", default="PULL")
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--trains", type=int, default=None)
    a = ap.parse_args(argv)
    rec = KaraboReceiver(a.address, a.spool, sock=a.sock)
    until = time.monotonic() + a.seconds if a.seconds else None
    rec.run(until=until, max_trains=a.trains)
    print(f"{rec.trains} trains, {rec.frames} frames, {rec.lost} trains lost")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
