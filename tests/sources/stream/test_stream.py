"""Stream V1/V2 receiving over real zeromq sockets on 127.0.0.1 (senders stop by themselves)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from xlive.sources._bslz4 import bslz4_decode
from xlive.sources.stream.receiver import StreamReceiver, StreamSource
from xlive.sources.stream.sender import synthetic_frames

from ..conftest import free_port, start_python

pytestmark = pytest.mark.network


def receive(tmp_path, sender_args, *, series=1, timeout=30):
    """Run a sender process and a receiver until ``series`` series ended; open the spool."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    proc = start_python(
        ["-m", "xlive.sources.stream.sender", "--bind", address, "--timeout", "15", *sender_args]
    )
    rec = StreamReceiver(address, tmp_path / "spool.zarr")
    rec.run(until=time.monotonic() + timeout, max_series=series)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    stats = json.loads(out.strip().splitlines()[-1])
    src = StreamSource(None, spool=tmp_path / "spool.zarr")
    return rec, src, stats


@pytest.mark.parametrize(
    "encoding,detail,dtype",
    [
        ("bs16-lz4<", "none", "uint16"),
        ("bs32-lz4<", "basic", "uint32"),
        ("lz4<", "all", "uint16"),
        ("<", "basic", "uint32"),
    ],
)
def test_v1_encodings_and_header_details(tmp_path, encoding, detail, dtype):
    args = [
        "--protocol",
        "1",
        "--frames",
        "6",
        "--distinct",
        "3",
        "--synthetic",
        "eiger500k",
        "--header-detail",
        detail,
        "--encoding",
        encoding,
        "--dtype",
        dtype,
    ]
    rec, src, stats = receive(tmp_path, args)
    assert stats["sent"] == 6 and rec.received == 6 and not rec.errors
    assert src.frames().dtype == dtype
    frames = synthetic_frames("eiger500k", 3, 0, dtype)
    np.testing.assert_array_equal(src.frames().values, np.stack([frames[i % 3] for i in range(6)]))
    if detail == "none":
        with pytest.raises(Exception, match="geometry"):
            _ = src.geometry
    else:
        assert src.geometry.distance == pytest.approx(0.1)


def test_bslz4_chunks_are_stored_as_received(tmp_path):
    rec, src, _ = receive(tmp_path, ["--protocol", "2", "--frames", "3", "--distinct", "3"])
    # one file per frame, side by side (no folder per frame)
    chunk = (tmp_path / "spool.zarr" / "seg000" / "frames" / "c.1.0.0").read_bytes()
    from xlive.sources._bslz4 import bslz4_encode

    assert chunk == bslz4_encode(synthetic_frames("eiger500k", 3, 0)[1])


@pytest.mark.realdata
@pytest.mark.parametrize("protocol", [1, 2])
def test_real_captures_replayed(tmp_path, realdata, protocol):
    args = [
        "--protocol",
        str(protocol),
        "--capture",
        str(realdata / "eiger_stream_captures"),
        "--frames",
        "3",
    ]
    rec, src, _ = receive(tmp_path, args)
    assert src.refresh() == 3
    blob = (realdata / "eiger_stream_captures/stream1/frame_sample").read_bytes()
    if protocol == 1:
        expected = bslz4_decode(blob, dtype=np.uint16, shape=(4362, 4148))
    else:
        from xlive.sources.stream.protocol import decode_v2

        expected = decode_v2(
            (realdata / "eiger_stream_captures/stream2/image.cbor").read_bytes()
        ).array()
    np.testing.assert_array_equal(src.read_frame(2), expected)
    assert src.geometry.wavelength == pytest.approx(0.918381073013)
    lo, hi = src.geometry.valid_range(expected.dtype)
    assert hi == 65534.0  # the gap value of the 16-bit stream is invalid in every frame


def test_dropped_frames_and_restart_segments(tmp_path):
    args = ["--protocol", "2", "--frames", "20", "--series", "2", "--skip", "3,4,5,17"]
    rec, src, stats = receive(tmp_path, args, series=2)
    assert stats["skipped"] == 8 and rec.received == 32
    assert src.refresh() == 32
    assert src.dropped_frames == {0: [[3, 6], [17, 18]], 1: [[3, 6], [17, 18]]}
    assert src.n_dropped == 8
    f = src.frames()
    assert f.segment.values.tolist() == [0] * 16 + [1] * 16
    assert f.frame_number.values[:4].tolist() == [0, 1, 2, 6]


def test_sender_restart_with_same_series_starts_new_segment(tmp_path):
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    rec = StreamReceiver(address, tmp_path / "spool.zarr").start()
    for _ in range(2):  # the same series id twice: a restarted detector
        p = start_python(
            [
                "-m",
                "xlive.sources.stream.sender",
                "--bind",
                address,
                "--frames",
                "4",
                "--timeout",
                "15",
            ]
        )
        assert p.wait(timeout=30) == 0
        t0 = time.monotonic()
        while rec.series_ended < _ + 1 and time.monotonic() - t0 < 10:
            time.sleep(0.02)
    rec.stop()
    src = StreamSource(None, spool=tmp_path / "spool.zarr")
    assert src.refresh() == 8
    assert src.frames().segment.values.tolist() == [0] * 4 + [1] * 4
