"""The Karabo bridge spool keeps every pixel of what the package's own server sends: trains in
the bridge's online layout (stored as received, zarr transposing on reading) and in the file
layout, several modules, a train of another length, and a gap in train ids counted as lost."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("karabo_bridge")

from karabo_bridge import ServerInThread  # noqa: E402

from xlive.sources import open_source  # noqa: E402
from xlive.sources.karabo import KaraboReceiver, train_frames  # noqa: E402

from .conftest import free_port  # noqa: E402

SRC = "SPB_DET_AGIPD1M-1/DET/APPEND"


def train(tid: int, image: np.ndarray, pulses: int) -> tuple[dict, dict]:
    data = {
        SRC: {
            "image.data": image,
            "image.pulseId": np.arange(pulses, dtype=np.uint64) * 2,
            "image.trainId": np.full(pulses, tid, np.uint64),
        }
    }
    return data, {SRC: {"timestamp.tid": tid}}


def reference(image: np.ndarray, pulses: int, online: bool) -> np.ndarray:
    """Frames ``(p, m * ss, fs)`` computed with plain numpy, independently of the receiver."""
    if online:  # (m, fs, ss, p)
        m, nf, ns, p = image.shape
        return image.transpose(3, 0, 2, 1).reshape(p, m * ns, nf)
    p, m, ns, nf = image.shape  # (p, m, ss, fs)
    return image.reshape(p, m * ns, nf)


@pytest.mark.network
@pytest.mark.parametrize("online", [True, False], ids=["online", "file"])
def test_spool_equals_what_the_bridge_server_sent(tmp_path, online):
    rng = np.random.default_rng(1)
    m, nf, ns = 3, 16, 8
    dtype = np.uint16 if online else np.float32
    trains = []
    for tid, p in [(100, 5), (101, 5), (103, 5), (104, 3), (105, 5)]:  # 102 lost; 104 short
        shape = (m, nf, ns, p) if online else (p, m, ns, nf)
        trains.append((tid, p, rng.integers(0, 60000, shape).astype(dtype)))
    port = free_port()
    server = ServerInThread(f"tcp://127.0.0.1:{port}", sock="PUSH", maxlen=len(trains))
    server.start()
    try:
        for tid, p, image in trains:
            server.feed(*train(tid, image, p))
        rec = KaraboReceiver(f"tcp://127.0.0.1:{port}", tmp_path / "s.zarr")
        rec.run(until=time.monotonic() + 60, max_trains=len(trains))
    finally:
        server.stop()
    assert rec.errors == [] and rec.trains == len(trains) and rec.lost == 1
    src = open_source(tmp_path / "s.zarr")
    assert src.refresh() == sum(p for _, p, _ in trains)
    want = np.concatenate([reference(img, p, online) for _, p, img in trains])
    got = np.stack([src.read_frame(i) for i in range(src.n_frames)])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(src.frames().values, want)  # block reads (dask) too
    meta = src.metadata()
    assert meta["train_id"].tolist() == [t for t, p, _ in trains for _ in range(p)]
    assert meta["pulse_id"].tolist() == [2 * k for _, p, _ in trains for k in range(p)]


def test_train_frames_matches_the_numpy_reference():
    rng = np.random.default_rng(2)
    for shape, online in [((2, 40, 24, 7), True), ((40, 24, 7), True), ((7, 2, 24, 40), False)]:
        image = rng.integers(0, 1000, shape).astype(np.uint16)
        data, _ = train(1, image, 7)
        frames, pulses = train_frames(data[SRC])
        full = image if image.ndim == 4 else image[None]
        np.testing.assert_array_equal(frames, reference(full, 7, online))
        assert frames.flags.c_contiguous and pulses.tolist() == list(range(0, 14, 2))


@pytest.mark.network
def test_karabo_source_removes_its_temporary_spool_and_keeps_a_given_one(tmp_path):
    from xlive.errors import SourceError
    from xlive.sources.karabo import KaraboSource

    image = np.arange(2 * 16 * 8 * 4, dtype=np.uint16).reshape(2, 16, 8, 4)  # online layout
    port = free_port()
    server = ServerInThread(f"tcp://127.0.0.1:{port}", sock="PUSH", maxlen=4)
    server.start()
    try:
        for tid in (1, 2):
            server.feed(*train(tid, image, 4))
        temp = KaraboSource(f"karabo://127.0.0.1:{port}", wait=30)
        folder = temp.receiver.path.parent
        assert temp.refresh() >= 4 and folder.exists()
        np.testing.assert_array_equal(temp.read_frame(0), reference(image, 4, True)[0])
        temp.close()
        assert not folder.exists()
        kept = tmp_path / "kept.zarr"
        server.feed(*train(3, image, 4))
        src = KaraboSource(f"karabo://127.0.0.1:{port}", spool=kept, wait=30)
        src.close()
        assert kept.exists()
        with pytest.raises(SourceError, match="exists"):
            KaraboSource(f"karabo://127.0.0.1:{port}", spool=kept, wait=1)
    finally:
        server.stop()
