"""Fuzz the stream receiver over zeromq on 127.0.0.1: malformed messages of 23 kinds and random
bytes between valid frames. The receiver survives, keeps every valid frame, counts every bad
message (and records them in the spool, where the source and the flags find them)."""

from __future__ import annotations

import json
import random
import time

import cbor2
import numpy as np
import pytest
import zmq

from xlive.aggregate.faults import fault_flags
from xlive.sources._bslz4 import bslz4_encode
from xlive.sources.stream.protocol import (
    encode_v1_end,
    encode_v1_header,
    encode_v1_image,
    encode_v2_image,
)
from xlive.sources.stream.receiver import StreamReceiver, StreamSource

from ..conftest import free_port

pytestmark = pytest.mark.network

SHAPE = (48, 64)  # (ny, nx)
NIMAGES = 1000


def frame(k: int) -> np.ndarray:
    return np.random.default_rng(k).poisson(2.0, SHAPE).astype(np.uint16)


def v1_image(k: int, **over) -> list[bytes]:
    parts = encode_v1_image(
        1, k, frame(k), shape=SHAPE, dtype=np.uint16, encoding="bs16-lz4<", t=time.time()
    )
    return [bytes(p) for p in parts]


def with_json(parts: list[bytes], index: int, **changes) -> list[bytes]:
    d = json.loads(parts[index])
    for key, value in changes.items():
        if value is _DELETE:
            d.pop(key)
        else:
            d[key] = value
    return [*parts[:index], json.dumps(d).encode(), *parts[index + 1 :]]


_DELETE = object()


def cbor_image(**over) -> bytes:
    msg = cbor2.loads(
        encode_v2_image(
            1, 999, bslz4_encode(frame(0)), shape=SHAPE, dtype=np.dtype("uint16"), t=1.0
        )
    )
    msg = dict(msg)
    for key, value in over.items():
        if value is _DELETE:
            msg.pop(key)
        else:
            msg[key] = value
    return cbor2.dumps(msg)


def malformed(last_valid: int) -> dict[str, list[bytes]]:
    """The malformed kinds; ``last_valid`` is the frame number sent just before."""
    good = v1_image(last_valid + 1)  # a template; never sent as it is
    return {
        "json_list": [b"[1, 2, 3]"],
        "json_string": [b'"dimage-1.0"'],
        "dimage_without_frame": with_json(good, 0, frame=_DELETE),
        "dimage_without_shape": with_json(good, 1, shape=_DELETE),
        "bad_dtype": with_json(good, 1, type="float128"),
        "garbage_header_config": [
            json.dumps({"htype": "dheader-1.0", "series": 1, "header_detail": "basic"}).encode(),
            b"\xff{]garbage",
        ],
        "cbor_image_without_data": [cbor_image(data=_DELETE)],
        "frame_10_30": with_json(good, 0, frame=10**30),
        "series_dotdot": with_json(good, 0, series="../../etc/passwd"),
        "absurd_shape": with_json(good, 1, shape=[10**6, 10**6]),
        "shape_not_the_headers": with_json(good, 1, shape=[32, 32]),
        "two_parts_only": good[:2],
        "unknown_encoding": with_json(good, 1, encoding="zstd<"),
        "raw_blob_wrong_size": [*with_json(good, 1, encoding="<")[:2], b"\x00" * 17, good[3]],
        "bslz4_truncated": [good[0], good[1], good[2][:5], good[3]],
        "cbor_list": [cbor2.dumps([1, "image", {"data": 1}])],
        "cbor_image_data_not_tag40": [cbor_image(data={"threshold_1": b"\x00" * 10})],
        "empty_message": [b""],
        "duplicate_frame": v1_image(last_valid),
        "negative_frame": with_json(good, 0, frame=-1),
        "cbor_image_id_text": [cbor_image(image_id="7")],
        "beyond_nimages": with_json(good, 0, frame=NIMAGES + 5),
        "not_utf8_json": [b'{"htype": "dimage-1.0", "frame": 1\xff\xfe}', *good[1:]],
    }


def random_message(rng: random.Random) -> list[bytes]:
    return [
        bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        for _ in range(rng.randint(1, 4))
    ]


def test_receiver_survives_malformed_and_random_messages(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDTIMEO, 10_000)
    push.setsockopt(zmq.LINGER, 5_000)
    push.bind(address)
    rec = StreamReceiver(address, tmp_path / "spool.zarr").start()
    cfg = {
        "x_pixels_in_detector": SHAPE[1],
        "y_pixels_in_detector": SHAPE[0],
        "nimages": NIMAGES,
        "ntrigger": 1,
        "beam_center_x": 30.0,
        "beam_center_y": 20.0,
        "detector_distance": 0.1,
        "wavelength": 1.0,
        "x_pixel_size": 75e-6,
    }
    rng = random.Random(15)
    sent_valid, sent_bad, kinds = [], 0, []
    try:
        push.send_multipart(encode_v1_header(1, "basic", cfg, None))
        k = 0
        push.send_multipart(v1_image(k))
        sent_valid.append(k)  # noqa: E702
        for name, parts in malformed(k).items():  # each kind, then a valid frame after it
            push.send_multipart(parts)
            sent_bad += 1
            kinds.append(name)
            k += 1
            push.send_multipart(v1_image(k))
            sent_valid.append(k)  # noqa: E702
        for _ in range(100):  # random bytes, 1 to 4 parts
            push.send_multipart(random_message(rng))
            sent_bad += 1
            if rng.random() < 0.2:
                k += 1
                push.send_multipart(v1_image(k))
                sent_valid.append(k)  # noqa: E702
        k += 1
        push.send_multipart(v1_image(k))
        sent_valid.append(k)  # noqa: E702
        push.send_multipart(encode_v1_end(1))
        t0 = time.monotonic()
        while rec.series_ended < 1 and time.monotonic() - t0 < 30:
            assert rec._thread.is_alive(), "the receiver thread died"
            time.sleep(0.05)
        assert rec._thread.is_alive()
    finally:
        rec.stop()
        push.close()
    assert len(kinds) >= 18
    assert rec.received == len(sent_valid), rec.errors[-5:]
    assert rec.bad_messages == sent_bad, rec.errors[-5:]
    src = StreamSource(None, spool=tmp_path / "spool.zarr")
    assert src.refresh() == len(sent_valid)
    assert src.frames().frame_number.values.tolist() == sent_valid  # one segment, no gap
    for i in (0, len(sent_valid) // 2, len(sent_valid) - 1):
        np.testing.assert_array_equal(src.read_frame(i), frame(sent_valid[i]))
    assert src.geometry.distance == pytest.approx(0.1)  # the header survived the garbage
    faults = src.faults()
    assert faults["bad_messages"] == sent_bad and "dropped" not in faults
    assert [f.name for f in fault_flags(faults)] == ["stream_errors"]
    assert f"{sent_bad} malformed stream messages" in fault_flags(faults)[0].message


def test_each_malformed_kind_is_counted_once(tmp_path):
    """Every kind alone is refused with a reason (decode or spool check), never an exception."""
    from xlive.sources.stream.protocol import ProtocolError, decode, decode_v1
    from xlive.sources.stream.spool import Spool

    spool = Spool(tmp_path / "s.zarr")
    cfg = {"x_pixels_in_detector": SHAPE[1], "y_pixels_in_detector": SHAPE[0], "nimages": NIMAGES}
    spool.start(decode_v1(encode_v1_header(1, "basic", cfg, None)))
    spool.image(decode(v1_image(0)))
    for name, parts in malformed(0).items():
        with pytest.raises(ProtocolError) as exc:
            msg = decode(parts)
            spool.image(msg)  # decoded: the series refuses it (shape, duplicate, range)
        assert str(exc.value), name
