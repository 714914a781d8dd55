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
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zarr

from ..conventions import FRAMES_COMPLETE, PULSE_ID, TRAIN_ID
from ..errors import SourceError
from .zarr_store import ZarrSource

BLOCK = 1024


def _client(address: str, sock: str, timeout: float):
    try:
        from karabo_bridge import Client
    except ImportError:  # pragma: no cover - the extra is installed in CI
        raise SourceError(
            "the Karabo bridge needs the karabo-bridge client: pip install 'xlive[xfel]'"
        ) from None
    return Client(address, sock=sock, timeout=timeout)


def _pulses_first(arr: np.ndarray, block: int = 2048) -> np.ndarray:
    """``arr (..., p)`` as ``(p, ...)`` in C order, transposed block by block.

    The pulse axis is the fastest in the bridge's online layout: copying pulse by pulse reads
    every cache line once per pulse (5 ms per AGIPD module frame here); blocks of ``block``
    pixels stay in cache, so the train is read once.
    """
    p = arr.shape[-1]
    src = arr.reshape(-1, p)
    out = np.empty((p, src.shape[0]), arr.dtype)
    for i in range(0, src.shape[0], block):
        out[:, i : i + block] = src[i : i + block].T
    return out.reshape(p, *arr.shape[:-1])


def train_frames(data: dict, key: str = "image.data") -> tuple[np.ndarray, np.ndarray]:
    """``(frames (n, modules * ss, fs), pulse ids)`` of one source's train data."""
    arr = np.asarray(data[key])
    pulses = np.asarray(data.get("image.pulseId", np.arange(1)), np.uint64).ravel()
    n = pulses.size
    if arr.ndim >= 3 and arr.shape[-1] == n and arr.shape[0] != n:  # online: (m?, fs, ss, p)
        arr = _pulses_first(arr)  # (p, m?, fs, ss)
        arr = np.swapaxes(arr, -1, -2)  # (p, m?, ss, fs): a view, each frame fits in cache
    elif arr.shape[0] != n:
        raise SourceError(f"cannot tell the pulse axis of {key} {arr.shape} with {n} pulse ids")
    if arr.ndim == 4:  # modules stacked along the slow scan
        arr = arr.reshape(n, arr.shape[1] * arr.shape[2], arr.shape[3])
    return arr, pulses  # a view: each frame is copied once, when it is written


class KaraboReceiver:
    """Receive a Karabo bridge stream into a Zarr spool.

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
    ):
        self.address, self.sock = address, sock
        self.path = Path(spool)
        self.source, self.key = source, key
        self.publish_interval = publish_interval
        self.geometry = geometry
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
        self._tids: list[np.ndarray] = []
        self._pids: list[np.ndarray] = []

    # ------------------------------------------------------------------ thread
    def start(self) -> KaraboReceiver:
        self._thread = threading.Thread(target=self.run, name="xlive-karabo-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self, *, until: float | None = None, max_trains: int | None = None) -> None:
        """Receive until :meth:`stop`, the monotonic deadline ``until`` or ``max_trains``."""
        client = _client(self.address, self.sock, timeout=self.publish_interval)
        last_publish = time.monotonic()
        try:
            while not self._stop.is_set():
                if until is not None and time.monotonic() > until:
                    break
                if max_trains is not None and self.trains >= max_trains:
                    break
                try:
                    data, meta = client.next()
                except TimeoutError:
                    self.publish()
                    continue
                self._train(data, meta)
                if time.monotonic() - last_publish >= self.publish_interval:
                    self.publish()
                    last_publish = time.monotonic()
        finally:
            self.publish()
            client._context.destroy(linger=0)

    # ------------------------------------------------------------------ writing
    def _train(self, data: dict, meta: dict) -> None:
        src = self.source or next((s for s in data if self.key in data[s]), None)
        if src is None or src not in data:
            self.errors.append(f"train without {self.key!r} in {sorted(data)}")
            return
        tid = int(meta.get(src, {}).get("timestamp.tid", data[src].get("image.trainId", [0])[0]))
        frames, pulses = train_frames(data[src], self.key)
        if self._group is None:
            self._create(frames.shape[1:], frames.dtype, src)
        if self.last_train is not None and tid > self.last_train + 1:
            self.lost += tid - self.last_train - 1
        self.first_train = tid if self.first_train is None else self.first_train
        self.last_train = tid
        n0, n1 = self.frames, self.frames + len(frames)
        arr = self._arrays["frames"]
        if n1 > arr.shape[0]:
            cap = (n1 // BLOCK + 1) * BLOCK
            arr.resize((cap, *arr.shape[1:]))
            for name in (TRAIN_ID, PULSE_ID):
                self._arrays[name].resize((cap,))
        # each frame is one raw chunk file (no compressor: the chunk is the frame's bytes),
        # written whole and renamed, as the Eiger spool does: zarr's own write path costs
        # more per chunk than a 10 Hz train of hundreds of pulses allows
        little = frames.dtype.newbyteorder("<")
        for k in range(len(frames)):
            name = f"c.{n0 + k}.0.0"  # chunk keys with "." separators: no folder per frame
            tmp = self._chunk_dir / f".{name}.partial"
            with open(tmp, "wb") as f:
                f.write(np.ascontiguousarray(frames[k], dtype=little).data)
            os.replace(tmp, self._chunk_dir / name)
        self._tids.append(np.full(len(frames), tid, np.uint64))
        self._pids.append(pulses)
        self.frames = n1
        self.trains += 1

    def _create(self, shape: tuple[int, int], dtype: np.dtype, src: str) -> None:
        g = zarr.open_group(str(self.path), mode="w")
        info = {"detector": src, "stream": "karabo-bridge " + self.address}
        if self.geometry is not None:
            info["geometry"] = self.geometry
        g.attrs.update({FRAMES_COMPLETE: 0, "xlive": info, "trains_lost": 0})
        # raw chunks: compressing a 10 Hz x 352-pulse stream would cost more than writing it
        self._arrays["frames"] = g.create_array(
            "frames",
            shape=(BLOCK, *shape),
            chunks=(1, *shape),
            dtype=dtype,
            fill_value=0,
            compressors=None,
            dimension_names=("frame", "y", "x"),
            chunk_key_encoding={"name": "default", "separator": "."},
            config={"write_empty_chunks": True},
        )
        for name in (TRAIN_ID, PULSE_ID):
            self._arrays[name] = g.create_array(
                name, shape=(BLOCK,), chunks=(BLOCK,), dtype="uint64", fill_value=0
            )
        self._group = g
        self._chunk_dir = self.path / "frames"

    def publish(self) -> None:
        """Frames first, their ids next, the counter last (see formats.md, Zarr v3)."""
        if self._group is None or self.frames == self._published:
            return
        lo, hi = self._published, self.frames
        self._arrays[TRAIN_ID][lo:hi] = np.concatenate(self._tids)
        self._arrays[PULSE_ID][lo:hi] = np.concatenate(self._pids)
        self._tids, self._pids = [], []
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
        Where received frames go (default: a temporary folder).
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
        spool = Path(spool) if spool is not None else Path(tempfile.mkdtemp()) / "karabo.zarr"
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
            self.receiver.stop()
            raise SourceError(
                f"no train from the Karabo bridge at {address} within {wait:g} s; check the "
                "address and that the server's socket matches sock= (PUSH server: PULL, "
                "REP server: REQ, PUB server: SUB)"
            )
        super().__init__(spool, **options)

    def close(self) -> None:
        self.receiver.stop()


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
